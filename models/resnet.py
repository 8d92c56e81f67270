"""CIFAR ResNet (He et al. 2016, Sec. 4.2) as fb.resnet.torch builds it, which is what the paper trained.

Depth 6n + 2: a 3x3 conv to 16 channels, three stages of n basic blocks at 16, 32 and 64 channels (stride 2 at
the start of stages 2 and 3), option-A shortcuts, global average pooling and a linear classifier.

Every layer is grouped by `members`: a model with members=K holds K independent networks side by side (each
member's channels form one group, BatchNorm statistics are per channel, the classifier is a grouped 1x1 conv), so
K runs train in one pass with no interaction. members=1 is the plain ResNet, mapping (B, C, H, W) to
(B, num_classes). A packed input is the K members' batches concatenated along channels, (B, K*C, H, W); the
output is (B, K*num_classes), member k's logits in columns k*num_classes to (k+1)*num_classes.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

STAGE_WIDTHS = (16, 32, 64)


def _conv3x3(in_planes: int, out_planes: int, stride: int, members: int) -> nn.Conv2d:
    return nn.Conv2d(members * in_planes, members * out_planes, 3, stride, 1, groups=members, bias=False)


def _bn(planes: int, members: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(members * planes)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, members: int):
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride, members)
        self.bn1 = _bn(planes, members)
        self.conv2 = _conv3x3(planes, planes, 1, members)
        self.bn2 = _bn(planes, members)
        self.stride = stride
        self.extra_planes = planes - in_planes
        self.members = members

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Option A: subsample, then append zero channels (fb.resnet.torch's Concat(Identity, MulConstant(0)))."""
        if self.stride == 1 and self.extra_planes == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_planes:
            b, c, h, w = x.shape
            x = F.pad(x.view(b, self.members, c // self.members, h, w), (0, 0, 0, 0, 0, self.extra_planes))
            x = x.view(b, -1, h, w)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, depth: int = 20, in_channels: int = 3, num_classes: int = 10, members: int = 1):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"model.depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.members = members
        self.num_classes = num_classes
        self.conv1 = _conv3x3(in_channels, STAGE_WIDTHS[0], 1, members)
        self.bn1 = _bn(STAGE_WIDTHS[0], members)
        layers, in_planes = [], STAGE_WIDTHS[0]
        for stage, planes in enumerate(STAGE_WIDTHS):
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(BasicBlock(in_planes, planes, stride, members))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Conv2d(members * in_planes, members * num_classes, 1, groups=members)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """fb.resnet.torch's init: conv ~ N(0, sqrt(2 / (k*k*out))), BN weight 1 / bias 0, linear bias 0.

        The linear weight keeps Torch's nn.Linear default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.fc:
                k = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // self.members
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / k))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        bound = 1.0 / math.sqrt(self.fc.in_channels // self.members)
        nn.init.uniform_(self.fc.weight, -bound, bound)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = self.fc(F.adaptive_avg_pool2d(out, 1))
        return out.flatten(1)


def pack_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack K single-member state dicts into one K-member state dict (member k is slice k of dim 0)."""
    return {
        key: states[0][key].clone() if value.dim() == 0 else torch.cat([s[key] for s in states])
        for key, value in states[0].items()
    }


def unpack_state_dict(state: dict[str, torch.Tensor], members: int) -> list[dict[str, torch.Tensor]]:
    """Split a K-member state dict back into K single-member ones (inverse of pack_state_dicts)."""
    return [
        {key: value.clone() if value.dim() == 0 else value.chunk(members)[k].clone() for key, value in state.items()}
        for k in range(members)
    ]
