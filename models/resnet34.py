"""ResNet-34 for 32 x 32 images as kuangliu/pytorch-cifar builds it, the network of the APL family's CIFAR-100
runs (hitcszx/ALFs models.py, Virusdoll/Active-Negative-Loss models/resnet.py, HanxunH/Active-Passive-Losses
models.py) and of CIFAR-N's (UCSC-REAL/cifar-10-100n models/resnet.py): a 3x3 convolution to 64 channels with
BatchNorm and ReLU and no max-pool; BasicBlock stages of [3, 4, 6, 3] blocks at 64, 128, 256 and 512 channels,
stride 2 at the start of stages 2 to 4; a 1x1 convolution + BatchNorm shortcut where the shape changes; global
average pooling (the authors' avg_pool2d(4) of the final 4 x 4 map) and Linear 512 -> C. No convolution has a bias.

Initialised as the APL family does (models/init.py); CIFAR-N's code keeps PyTorch's default init instead.
"""

import torch
import torch.nn.functional as F
from torch import nn

from models.init import kaiming_xavier

STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))  # (width, blocks)


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


class ResNet34(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        blocks, in_planes = [], 64
        for stage, (planes, count) in enumerate(STAGES):
            for i in range(count):
                blocks.append(BasicBlock(in_planes, planes, 2 if stage > 0 and i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(in_planes, num_classes)
        kaiming_xavier(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))
