"""Line-search & momentum PGD (LM-PGD, MAIL App. A, docs/methods.md §6) — shows that κ is path dependent.

v ← γ·v + α_t·sign(g), δ ← Proj(δ + v), with α_t per example the best value on a grid in
[α_min, α_max] of the loss at Proj(δ + γ·v + α·sign g). Defaults follow Fig. 1(a): 50 iterations,
γ = 0.8, α_max = 6/255 and α_min = 4/255 at ε = 8/255 (here 0.75·ε and 0.5·ε, so they scale with ε),
α_min for the first 15 iterations and 0 afterwards. The grid is searched batched: one forward
per grid value for the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .checks import attack_mode, check_batch, check_eps
from .losses import attack_loss
from .pgd import project, random_start


def lm_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 50,
    momentum: float = 0.8,
    alpha_max: float | None = None,
    alpha_min: float | None = None,
    min_until: int = 15,
    grid: int = 8,
    loss: str = "ce",
    start: str = "none",
    bn_mode: str = "eval",
    return_losses: bool = False,
    generator: torch.Generator | None = None,
    check_inputs: bool = True,
):
    """Returns x_adv, or (x_adv, losses) with losses[t] the per-example loss at iterate t (t = 0..steps)."""
    check_eps(eps)
    if check_inputs:
        check_batch(model, x, y)
    a_max = 0.75 * eps if alpha_max is None else alpha_max
    a_min = 0.5 * eps if alpha_min is None else alpha_min
    x = x.detach()
    y = y.long()
    with attack_mode(model, bn_mode):
        x_adv = random_start(x, eps, "linf", start, generator)
        v = torch.zeros_like(x)
        history = []
        for t in range(steps):
            x_adv.requires_grad_(True)
            lval = attack_loss(loss, model(x_adv), y)
            history.append(lval.detach())
            (g,) = torch.autograd.grad(lval.sum(), x_adv)
            x_adv = x_adv.detach()
            s = g.sign()
            lo = a_min if t < min_until else 0.0
            best_loss = torch.full_like(lval, float("-inf"))
            best_a = torch.zeros_like(lval)
            with torch.no_grad():
                for a in torch.linspace(lo, a_max, grid).tolist():
                    cand = project(x_adv + momentum * v + a * s, x, eps, "linf")
                    lc = attack_loss(loss, model(cand), y)
                    better = lc > best_loss
                    best_loss = torch.where(better, lc, best_loss)
                    best_a = torch.where(better, torch.full_like(best_a, a), best_a)
                v = momentum * v + best_a.reshape(-1, *([1] * (x.dim() - 1))) * s
                x_adv = project(x_adv + v, x, eps, "linf")
        with torch.no_grad():
            history.append(attack_loss(loss, model(x_adv), y))
    if return_losses:
        return x_adv, torch.stack(history)
    return x_adv
