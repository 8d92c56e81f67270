"""Network definitions: the CIFAR-style ResNet family the paper trains (ResNet-20 by default)."""

from models.resnet import ResNet, pack_state_dicts, unpack_state_dict

__all__ = ["ResNet", "pack_state_dicts", "unpack_state_dict"]
