"""The APL family's plain CNNs (Ma et al., ICML 2020): `ToyModel` of HanxunH/Active-Passive-Losses models.py, the
same as `CNN` of hitcszx/ALFs models.py and `toymodel8l` / `toymodel4l` of Virusdoll/Active-Negative-Loss
models/toymodel.py. Every convolution is 3x3 with padding 1 and a bias, followed by BatchNorm and ReLU; each stage
ends in a 2x2 max-pool; the flattened map goes through Linear, BatchNorm1d, ReLU and a last Linear.

- cnn8 (the CIFAR-10 network): [64, 64] [128, 128] [196, 196], Linear 4·4·196 = 3136 -> 256 -> C.
- cnn4 (the MNIST network): [32] [64], Linear -> 128 -> C.

Both read 32 x 32 images, the size of every dataset here. cnn8 is the authors' network exactly. cnn4 is defined at
MNIST's native 28 x 28 in the authors' code (Linear 7·7·64 = 3136 -> 128); our MNIST is the same digits padded
with two black pixels on each side (data/sources.py), so here the first Linear reads the 8·8·64 = 4096 features
that the two pools leave of a 32 x 32 image: the authors' layers on the same digit with a black border, and
128·(4096 - 3136) = 122,880 more weights in that layer. The authors' last layer has 10 outputs and the first
convolution their dataset's channels; here they follow the dataset. Initialised as the authors' (models/init.py).
"""

import torch
from torch import nn

from models.init import kaiming_xavier

INPUT_SIZE = 32  # the flatten size is fixed by it


class CNN(nn.Module):
    def __init__(self, stages: tuple[tuple[int, ...], ...], hidden: int, in_channels: int, num_classes: int):
        super().__init__()
        layers, channels = [], in_channels
        for widths in stages:
            for width in widths:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        side = INPUT_SIZE // 2 ** len(stages)
        self.fc1 = nn.Sequential(nn.Linear(channels * side * side, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.fc2 = nn.Linear(hidden, num_classes)
        kaiming_xavier(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # flatten, not the authors' view: it also reads a channels_last map, in the same (C, H, W) order.
        return self.fc2(self.fc1(self.features(x).flatten(1)))


def cnn8(in_channels: int, num_classes: int) -> CNN:
    return CNN(((64, 64), (128, 128), (196, 196)), 256, in_channels, num_classes)


def cnn4(in_channels: int, num_classes: int) -> CNN:
    return CNN(((32,), (64,)), 128, in_channels, num_classes)
