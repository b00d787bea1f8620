"""The papers' small networks: GAIRAT/FAT SmallCNN, VGG-13, BiLAW's tiny-CNN, FC1 and small-CNN."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .registry import register


def _flat_size(features: nn.Module, in_channels: int, size: int) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, in_channels, size, size)).numel())


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _three_blocks(in_channels: int, size: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = in_channels
    for i, w in enumerate((64, 128, 196)):
        layers += _conv_bn(cin, w) + _conv_bn(w, w)
        if size >> (i + 1) >= 1:
            layers.append(nn.MaxPool2d(2))
        cin = w
    layers.append(nn.Flatten())
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """Three blocks [conv-BN-ReLU ×2, max-pool] of widths 64/128/196, then FC(256) and FC(C)."""

    def __init__(self, in_channels: int, num_classes: int, size: int, fc_bn: bool):
        super().__init__()
        self.features = _three_blocks(in_channels, size)
        flat = _flat_size(self.features, in_channels, size)
        head: list[nn.Module] = [nn.Linear(flat, 256)]
        if fc_bn:
            head.append(nn.BatchNorm1d(256))
        head += [nn.ReLU(inplace=True), nn.Linear(256, num_classes)]
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register("smallcnn", "small-cnn")
def smallcnn(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    """GAIRAT/FAT SmallCNN: 6 conv (64,64,128,128,196,196, BN) + 2 FC (256 with BN, C)"""
    return SmallCNN(in_channels, num_classes, input_size, fc_bn=True)


@register("small-cnn-bilaw", "smallcnn-bilaw")
def small_cnn_bilaw(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    """BiLAW small-CNN: the same 6 conv blocks, FC(256) → ReLU → FC(C) without BN in the head"""
    return SmallCNN(in_channels, num_classes, input_size, fc_bn=False)


@register("tinycnn", "tiny-cnn")
def tinycnn(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    """BiLAW / Wong & Kolter tiny-CNN: Conv(16,4×4,s2) → Conv(32,4×4,s2) → FC(100) → FC(C)"""
    features = nn.Sequential(
        nn.Conv2d(in_channels, 16, 4, 2, 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(16, 32, 4, 2, 1),
        nn.ReLU(inplace=True),
        nn.Flatten(),
    )
    flat = _flat_size(features, in_channels, input_size)
    return nn.Sequential(*features, nn.Linear(flat, 100), nn.ReLU(inplace=True), nn.Linear(100, num_classes))


@register("fc1")
def fc1(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    """BiLAW FC1: one hidden layer of 1024 units"""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * input_size * input_size, 1024),
        nn.ReLU(inplace=True),
        nn.Linear(1024, num_classes),
    )


_VGG13 = [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class VGG(nn.Module):
    def __init__(self, cfg: list, in_channels: int, num_classes: int, size: int):
        super().__init__()
        layers: list[nn.Module] = []
        cin, pools = in_channels, int(math.log2(max(size, 1)))
        for v in cfg:
            if v == "M":
                if pools > 0:  # skip pools a small input cannot take (e.g. 28×28 allows four)
                    layers.append(nn.MaxPool2d(2))
                    pools -= 1
            else:
                layers += _conv_bn(cin, v)
                cin = v
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register("vgg13", "vgg-13")
def vgg13(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    """VGG-13 with BN, CIFAR form (one linear classifier on the pooled 512 features)"""
    return VGG(_VGG13, in_channels, num_classes, input_size)
