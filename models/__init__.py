"""Network definitions, chosen by the config's `model.name` (configs/model/): the CIFAR ResNet family the paper
trains (`resnet`, ResNet-20 by default; the only one that packs), and the networks of the peers' recipes: `cnn8`
and `cnn4` (the APL family's CIFAR-10 and MNIST CNNs), `resnet34` (kuangliu's, of the APL family's CIFAR-100 and
CIFAR-N's runs) and `preact_resnet18` (DivideMix's). Each maps (B, C, H, W) images to (B, num_classes) logits.
"""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from models.cnn import INPUT_SIZE, cnn4, cnn8
from models.resnet import ResNet, pack_state_dicts, unpack_state_dict
from models.resnet34_preact18 import preact_resnet18, resnet34


@dataclass(frozen=True)
class Model:
    """How to build one network from (depth, in_channels, num_classes, members), and what it needs."""

    build: Callable[[int | None, int, int, int], nn.Module]
    packs: bool = False  # built grouped: `members` independent copies side by side (models/resnet.py)
    input_size: int | None = None  # the one image size it reads (a fixed flatten size); None: any of 8 or more


MODELS = {
    "resnet": Model(lambda depth, c, k, members: ResNet(depth, c, k, members), packs=True),
    "cnn8": Model(lambda depth, c, k, members: cnn8(c, k), input_size=INPUT_SIZE),
    "cnn4": Model(lambda depth, c, k, members: cnn4(c, k), input_size=INPUT_SIZE),
    "resnet34": Model(lambda depth, c, k, members: resnet34(c, k)),
    "preact_resnet18": Model(lambda depth, c, k, members: preact_resnet18(c, k)),
}


def build(name: str, depth: int | None, in_channels: int, num_classes: int, members: int = 1) -> nn.Module:
    """The network `name` (a run's model.name; `depth` its model.depth, resnet's only): with members > 1, that
    many independent copies side by side (packing), which only the models that pack can be."""
    model = MODELS[name]
    if members != 1 and not model.packs:
        raise ValueError(f"model {name!r} does not pack: build it with members=1")
    return model.build(depth, in_channels, num_classes, members)


__all__ = ["MODELS", "Model", "ResNet", "build", "pack_state_dicts", "unpack_state_dict"]
