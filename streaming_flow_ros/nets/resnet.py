"""ResNet-18 as Diffusion Policy uses it for images: torchvision's ResNet-18 layout (He et al.
2016, "basic" blocks [2, 2, 2, 2] at 64-128-256-512 channels), with every BatchNorm replaced by
GroupNorm of channels / 16 groups (DP's ``replace_bn_with_gn``: batch statistics do not suit
small batches nor EMA weights) and without the average pool and classifier (a spatial softmax
follows: nets/encoders.py). Written here from torch alone: torchvision is not installable.

    (N, C, Hh, Ww) float -> (N, 512, ceil(Hh / 32), ceil(Ww / 32))     (11.2 M parameters, C = 3)

Untrained (no ImageNet weights: DP's image policies train the encoder from scratch as well).
"""

from __future__ import annotations

import torch
from torch import nn

GROUP_SIZE = 16  # channels per GroupNorm group (DP: num_groups = num_features // 16)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, channels // GROUP_SIZE), channels)


class BasicBlock(nn.Module):
    """y = ReLU(GN(conv3x3(ReLU(GN(conv3x3_s(x))))) + shortcut(x)); the shortcut is a strided
    1x1 conv + GN when the stride or the width changes, else the identity."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = group_norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = group_norm(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), group_norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class ResNet18Trunk(nn.Module):
    """The convolutional trunk: stem (7x7 stride 2, GN, ReLU, 3x3 max-pool stride 2), then four
    stages of two BasicBlocks (the last three halve the resolution). ``out_channels`` = 512."""

    widths = (64, 128, 256, 512)

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), group_norm(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages, c_in = [], 64
        for i, c in enumerate(self.widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(c_in, c, stride), BasicBlock(c, c)))
            c_in = c
        self.stages = nn.Sequential(*stages)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))
