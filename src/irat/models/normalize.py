"""Models whose weights expect normalised inputs, attacked in pixel space.

Attacks work on inputs in [0, 1] with ε in pixel scale; a network trained on (x − mean)/std is wrapped
so that the normalisation happens inside the model, where the attack's gradient passes through it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..errors import ConfigError


class Normalized(nn.Module):
    """f((x − mean)/std): inputs in [0, 1], one mean and std per channel."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, module: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean, std = check_normalize((mean, std))
        self.module = module
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.mean.shape[1]:
            raise ConfigError(
                f"normalize: {self.mean.shape[1]} channel statistics for inputs with {x.shape[1]} channels"
            )
        return self.module((x - self.mean) / self.std)


def check_normalize(value: object) -> tuple[list[float], list[float]]:
    """(mean, std) as two equally long lists of finite numbers, every std > 0 — or one clear message (the
    command line's --normalize and Python's normalize= are checked alike)."""
    import math

    try:
        pair = list(value)  # type: ignore[call-overload]
        if len(pair) != 2:
            raise ValueError
        mean_l, std_l = [float(v) for v in pair[0]], [float(v) for v in pair[1]]
    except (TypeError, ValueError):
        raise ConfigError(
            f"normalize expects (mean, std), each a list of one value per channel, e.g. ([0.1307], [0.3081]) "
            f"or --normalize 0.1307:0.3081; got {value!r}"
        ) from None
    if len(mean_l) != len(std_l) or not mean_l:
        raise ConfigError(f"normalize: one mean and one std per channel, got {len(mean_l)} and {len(std_l)}")
    if not all(math.isfinite(v) for v in mean_l + std_l):
        raise ConfigError(f"normalize: mean and std must be finite numbers, got {mean_l} and {std_l}")
    if any(s <= 0 for s in std_l):
        raise ConfigError(f"normalize: every std must be > 0, got {std_l}")
    return mean_l, std_l


def parse_normalize(text: str) -> tuple[list[float], list[float]]:
    """'0.4914,0.4822,0.4465:0.2471,0.2435,0.2616' → (means, stds), checked."""
    try:
        mean, std = text.split(":")
        values = [float(v) for v in mean.split(",")], [float(v) for v in std.split(",")]
    except ValueError:
        raise ConfigError(f"--normalize expects MEAN,...:STD,... (one value per channel), got {text!r}") from None
    return check_normalize(values)
