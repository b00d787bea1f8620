"""ResNet-18 (CIFAR form: 3×3 stem, no max-pool) and PreAct ResNet-18 (docs/methods.md §8)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        sc = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + sc


class ResNet(nn.Module):
    def __init__(self, block: type, layers: list[int], in_channels: int, num_classes: int, preact: bool = False):
        super().__init__()
        self.preact = preact
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, cin = [], 64
        for i, (n, width) in enumerate(zip(layers, (64, 128, 256, 512))):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, width, (1 if i == 0 else 2) if j == 0 else 1))
                cin = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        if not self.preact:
            out = F.relu(self.bn1(out))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.preact:
            out = F.relu(self.bn1(out))
        # 4×4 average pool on 32×32 inputs; adaptive so that any input size works
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@register("resnet18", "rn18", "resnet-18")
def resnet18(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    """ResNet-18, CIFAR form (3×3 stem, no max-pool, global average pool)"""
    return ResNet(BasicBlock, [2, 2, 2, 2], in_channels, num_classes)


class _PreActResNet(ResNet):
    def __init__(self, in_channels: int, num_classes: int):
        super().__init__(PreActBlock, [2, 2, 2, 2], in_channels, num_classes, preact=True)
        self.bn1 = nn.BatchNorm2d(512)  # the final pre-activation BN before pooling


@register("preact_resnet18", "preactresnet18", "preact-resnet18", "parn18")
def preact_resnet18(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    """PreAct ResNet-18 (He et al. 2016), as in the AWP and robust-overfitting code"""
    return _PreActResNet(in_channels, num_classes)
