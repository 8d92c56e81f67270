"""The ResNets of kuangliu/pytorch-cifar for 32 x 32 images, as the peers copied them: one network class, a 3x3
convolution to 64 channels followed by BatchNorm and ReLU (no max-pool), four stages of blocks at 64, 128, 256
and 512 channels (stride 2 at the start of stages 2 to 4), global average pooling (the authors' avg_pool2d(4) of
the final 4 x 4 map) and Linear 512 -> C. No convolution has a bias.

- resnet34: BasicBlocks [3, 4, 6, 3], a 1x1 convolution + BatchNorm shortcut where the shape changes: the network
  of the APL family's CIFAR-100 runs (hitcszx/ALFs models.py, Virusdoll/Active-Negative-Loss models/resnet.py,
  HanxunH/Active-Passive-Losses models.py) and of CIFAR-N's (UCSC-REAL/cifar-10-100n models/resnet.py).
  Initialised as the APL family does (models/init.py); CIFAR-N's code keeps PyTorch's default init instead.
- preact_resnet18: PreActBlocks [2, 2, 2, 2] (BN-ReLU-conv-BN-ReLU-conv, a bare 1x1 convolution shortcut taken
  after the first BN-ReLU where the shape changes), as DivideMix builds it (LiJunnan1992/DivideMix PreResNet.py
  `ResNet18`, @d9d3058), the network of its CE baseline; PyTorch's default init, as the authors'. One might expect
  a final BatchNorm and ReLU before the pooling; the authors' code has none:
  the last block's sum goes straight to the pooling, and the stem keeps its BN-ReLU, so the first block normalises
  the stem's ReLU output once more. He et al.'s pre-activation ResNet (ECCV 2016) has it the other way round.
"""

import torch
import torch.nn.functional as F
from torch import nn

from models.init import kaiming_xavier

WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out)
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class ResNet(nn.Module):
    def __init__(self, block: type[nn.Module], blocks: tuple[int, ...], in_channels: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0])
        layers, in_planes = [], WIDTHS[0]
        for stage, (planes, count) in enumerate(zip(WIDTHS, blocks, strict=True)):
            for i in range(count):
                layers.append(block(in_planes, planes, 2 if stage > 0 and i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def resnet34(in_channels: int, num_classes: int) -> ResNet:
    model = ResNet(BasicBlock, (3, 4, 6, 3), in_channels, num_classes)
    kaiming_xavier(model)
    return model


def preact_resnet18(in_channels: int, num_classes: int) -> ResNet:
    return ResNet(PreActBlock, (2, 2, 2, 2), in_channels, num_classes)
