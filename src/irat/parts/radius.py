"""Perturbation radii (docs/methods.md §3.4) as registered parts: fixed ε, or MWPB's per-example ε_i = exp(α·d_i)·ε.

d_i = p_y(x_i) − max_{j≠y} p_j(x_i) on the *natural* input (eval-mode forward, no gradient); the
step is α_i = ε_i/4. MWPB's two phases: for epochs ≤ `radius.mwpb.phase1_epochs` every example uses ε/2
and step α/2; afterwards the per-example radii.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..attacks.checks import attack_mode
from ..config import EPOCHS_BEFORE_END, Config
from ..margins import probabilistic_margin
from ..registry import Registry
from .base import Part, RunContext


def mwpb_radii(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float) -> torch.Tensor:
    """ε_i = exp(α·d_i)·ε with d_i the natural probabilistic margin."""
    with torch.no_grad(), attack_mode(model, "eval"):
        d = probabilistic_margin(model(x), y)
    return torch.exp(alpha * d) * eps


RADII: Registry[type[Radius]] = Registry("radius scheme", "radius.name")
register_radius = RADII.register


class Radius(Part):
    """A perturbation-radius scheme: (ε, α) for each batch, scalars or per-example tensors."""

    section = "radius"

    def __init__(self, cfg: Config, ctx: RunContext | None = None):
        self.cfg = cfg
        self.ctx = ctx if ctx is not None else RunContext(cfg)
        self.r = cfg.radius
        self.options = self.options_for(cfg)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int, eps: float, step: float
    ) -> tuple[float | torch.Tensor, float | torch.Tensor]:
        raise NotImplementedError


@register_radius("fixed")
class FixedRadius(Radius):
    """The threat model's ε and step for every example."""

    neutral = True

    def __call__(self, model, x, y, epoch, eps, step):
        return eps, step


@dataclass
class MWPBOptions:
    """MWPB's radius exponent and its first phase (`--set radius.mwpb.KEY=VALUE`)."""

    alpha: float = 0.58  # MWPB's α (its CIFAR-10 choice, Fig. 3)
    phase1_epochs: int = field(default=80, metadata=EPOCHS_BEFORE_END)  # epochs ≤ this: ε·phase1_scale for all
    phase1_scale: float = 0.5


@register_radius("mwpb")
class MWPBRadius(Radius):
    """MWPB: ε·phase1_scale for epochs ≤ phase1_epochs, then ε_i = exp(α·d_i)·ε with step ε_i/4."""

    Options = MWPBOptions

    @classmethod
    def idle_reason(cls, cfg: Config) -> str | None:
        first = cls.options_for(cfg).phase1_epochs
        if first >= cfg.epochs:
            return (
                f"radius mwpb: its first phase ({first} epochs) covers the whole run of "
                f"{cfg.epochs}: no per-example radius is used (set radius.mwpb.phase1_epochs)"
            )
        return None

    def __call__(self, model, x, y, epoch, eps, step):
        o = self.options
        if epoch <= o.phase1_epochs:
            return eps * o.phase1_scale, step * o.phase1_scale
        eps_i = mwpb_radii(model, x, y, eps, o.alpha)
        return eps_i, eps_i / 4
