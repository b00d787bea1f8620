"""Perturbation radii (METHODS §3.4): fixed ε, or MWPB's per-example ε_i = exp(α·d_i)·ε.

d_i = p_y(x_i) − max_{j≠y} p_j(x_i) on the *natural* input (eval-mode forward, no gradient); the
step is α_i = ε_i/4. MWPB's two phases: for epochs ≤ `phase1_epochs` every example uses ε/2 and
step α/2; afterwards the per-example radii.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .attacks.checks import attack_mode
from .config import RadiusConfig
from .errors import ConfigError
from .margins import probabilistic_margin


def mwpb_radii(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float) -> torch.Tensor:
    """ε_i = exp(α·d_i)·ε with d_i the natural probabilistic margin."""
    with torch.no_grad(), attack_mode(model, "eval"):
        d = probabilistic_margin(model(x), y)
    return torch.exp(alpha * d) * eps


def radius_for(cfg: RadiusConfig, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int, eps: float,
               step: float) -> tuple[float | torch.Tensor, float | torch.Tensor]:
    """(ε, α) for this batch: scalars, or per-example tensors under MWPB's second phase."""
    if cfg.name == "fixed":
        return eps, step
    if cfg.name != "mwpb":
        raise ConfigError(f"radius.name must be fixed or mwpb, got {cfg.name!r}")
    if epoch <= cfg.phase1_epochs:
        return eps * cfg.phase1_scale, step * cfg.phase1_scale
    eps_i = mwpb_radii(model, x, y, eps, cfg.alpha)
    return eps_i, eps_i / 4
