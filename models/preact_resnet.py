"""PreAct-ResNet-18 as DivideMix builds it (LiJunnan1992/DivideMix PreResNet.py `ResNet18`, @d9d3058), the network
of its CE baseline: a 3x3 convolution to 64 channels followed by BatchNorm and ReLU; PreActBlock stages of
[2, 2, 2, 2] blocks at 64, 128, 256 and 512 channels, stride 2 at the start of stages 2 to 4, each block
BN-ReLU-conv-BN-ReLU-conv with a plain 1x1 convolution shortcut (no BatchNorm), taken after the block's first
BN-ReLU, where the shape changes; then global average pooling (the authors' avg_pool2d(4) of the final 4 x 4 map)
and Linear 512 -> C. No convolution has a bias; PyTorch's default init, as the authors'.

The issue that asked for this network (and our notes) expected a final BatchNorm and ReLU before the pooling; the
authors' code has none: the last block's sum goes straight to the pooling, and the stem is post-activation
(conv-BN-ReLU), so the first block normalises the stem's ReLU output once more. He et al.'s pre-activation
ResNet (ECCV 2016) has it the other way round (a bare stem convolution, a final BN-ReLU); this is DivideMix's.
"""

import torch
import torch.nn.functional as F
from torch import nn

STAGES = ((64, 2), (128, 2), (256, 2), (512, 2))  # (width, blocks)


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


class PreActResNet18(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        blocks, in_planes = [], 64
        for stage, (planes, count) in enumerate(STAGES):
            for i in range(count):
                blocks.append(PreActBlock(in_planes, planes, 2 if stage > 0 and i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))
