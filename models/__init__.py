"""Network definitions: the CIFAR-style ResNet family the paper trains (ResNet-20 by default)."""

from omegaconf import DictConfig

from models.resnet import ResNet, pack_state_dicts, unpack_state_dict


def build(cfg: DictConfig, in_channels: int, num_classes: int, members: int = 1) -> ResNet:
    """The network of a run's config (its `model` group): `members` independent copies side by side (packing)."""
    return ResNet(cfg.model.depth, in_channels, num_classes, members)


__all__ = ["ResNet", "build", "pack_state_dicts", "unpack_state_dict"]
