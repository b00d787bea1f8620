"""MMA's adaptive-norm PGD (AN-PGD; Ding et al., ICLR 2020, and its released `anpgd.py`).

Per example: PGD on the soft-logit-margin loss inside a ball of the example's current radius
(its last epoch's value, at least `min_eps`), step 2.5·ε/K; then a bisection along the direction
found, over radii in [0, max_eps], for the shortest perturbation that still misclassifies. The
returned radius estimates the example's input-space margin d_θ(x, y).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .checks import attack_mode
from .losses import soft_logit_margin
from .noise import Noise, draw_noise
from .pgd import pgd


def bisection_radius(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    unit: torch.Tensor,
    eps: torch.Tensor,
    margin: torch.Tensor,
    max_eps: float,
    steps: int,
) -> torch.Tensor:
    """Bisection on the radius r of x + r·unit (clamped to [0,1]), as the released `bisection_search`.

    `margin` is the soft logit margin at radius `eps` (< 0: still classified correctly). Each step
    raises the lower end where the example is still correct, lowers the upper end where it is not,
    and evaluates the midpoint; the last midpoint is returned (all examples at once).
    """
    view = (-1,) + (1,) * (x.dim() - 1)
    lo = torch.zeros_like(eps)
    hi = torch.full_like(eps, float(max_eps))
    for _ in range(int(steps)):
        correct = margin < 0
        lo = torch.where(correct, torch.maximum(eps, lo), lo)
        hi = torch.where(correct, hi, torch.minimum(eps, hi))
        eps = (lo + hi) / 2
        with torch.no_grad():
            margin = soft_logit_margin(model((x + eps.reshape(view) * unit).clamp(0.0, 1.0)), y)
    return eps


def an_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    prev_eps: torch.Tensor,
    *,
    max_eps: float,
    steps: int = 10,
    search_steps: int = 10,
    step_scale: float = 2.5,
    norm: str = "linf",
    loss: str = "slm",
    start: str = "uniform",
    generator: torch.Generator | None = None,
    noise: Noise = draw_noise,
) -> tuple[torch.Tensor, torch.Tensor]:
    """AN-PGD: returns (x + r·u clamped to [0,1], r), r the per-example radius found by bisection.

    prev_eps: per-example starting radii (> 0, ≤ max_eps). The PGD runs with BN in eval mode and no
    parameter gradients; u = (x_pgd − x)/prev_eps is the unit-radius perturbation it found.
    """
    prev_eps = prev_eps.to(device=x.device, dtype=x.dtype).clamp(max=max_eps)
    x_pgd = pgd(
        model,
        x,
        y,
        eps=prev_eps,
        alpha=step_scale * prev_eps / max(int(steps), 1),
        steps=steps,
        norm=norm,
        loss=loss,
        start=start,
        bn_mode="eval",
        generator=generator,
        noise=noise,
        check_inputs=False,
    )
    view = (-1,) + (1,) * (x.dim() - 1)
    unit = (x_pgd - x) / (prev_eps.reshape(view) + 1e-12)
    with attack_mode(model, "eval"):
        with torch.no_grad():
            margin = soft_logit_margin(model(x_pgd), y)
        eps = bisection_radius(model, x, y, unit, prev_eps, margin, max_eps, search_steps)
    return (x + eps.reshape(view) * unit).clamp(0.0, 1.0).detach(), eps.detach()
