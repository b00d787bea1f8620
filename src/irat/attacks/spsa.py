"""SPSA (Uesato et al., ICML 2018): gradient-free attack with a finite-difference gradient estimate.

The gradient of the margin loss z_y − max_{j≠y} z_j is estimated from `samples` random Rademacher
directions v, each evaluated at x ± δ·v (antithetic pairs, as in cleverhans' and advertorch's SPSA:
2·samples forward passes per iteration); Adam with learning rate `lr` descends it, and the iterate is
projected onto the ε-ball and [0,1]. An example stops once misclassified.

Defaults are the papers' protocol (docs/methods.md §7, MWPB): 100 iterations, δ = 0.001, lr = 0.01,
256 samples. `chunk` bounds how many perturbed inputs go through the model at once.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import IratError
from ..margins import logit_margin
from .checks import attack_mode, check_batch, check_eps
from .pgd import project


def _margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int) -> torch.Tensor:
    out = []
    for i in range(0, len(x), chunk):
        out.append(logit_margin(model(x[i : i + chunk]).float(), y[i : i + chunk]))
    return torch.cat(out)


@torch.no_grad()
def spsa(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    delta: float = 0.001,
    lr: float = 0.01,
    samples: int = 256,
    chunk: int = 8192,
    generator: torch.Generator | None = None,
    check_inputs: bool = True,
) -> torch.Tensor:
    """SPSA with Adam; returns, per example, the first misclassified iterate, else x itself."""
    check_eps(eps)
    check_eps(delta, "delta")
    check_eps(lr, "lr")
    if norm not in ("linf", "l2"):
        raise IratError(f"norm must be linf or l2, got {norm!r}")
    if int(steps) != steps or steps < 1 or samples < 1:
        raise IratError("SPSA steps and samples must be whole numbers >= 1")
    if check_inputs:
        check_batch(model, x, y)
    x, y = x.detach(), y.long()
    adv = x.clone()
    b = x.shape[0]
    if b == 0:
        return adv
    beta1, beta2, tiny = 0.9, 0.999, 1e-8  # Adam's defaults
    with attack_mode(model, "eval"):
        robust = _margin(model, x, y, chunk) > 0
        x_cur = x.clone()
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        group = max(1, chunk // (2 * samples))  # examples whose probes fit in one chunk
        for t in range(1, int(steps) + 1):
            todo = robust.nonzero().squeeze(1)
            if len(todo) == 0:
                break
            n = len(todo)
            xc, yc = x_cur[todo], y[todo]
            grad = torch.cat(
                [
                    _grad_estimate(model, xc[i : i + group], yc[i : i + group], delta, samples, chunk, generator)
                    for i in range(0, n, group)
                ]
            )
            m[todo] = beta1 * m[todo] + (1 - beta1) * grad
            v[todo] = beta2 * v[todo] + (1 - beta2) * grad * grad
            m_hat, v_hat = m[todo] / (1 - beta1**t), v[todo] / (1 - beta2**t)
            x_new = project(xc - lr * m_hat / (v_hat.sqrt() + tiny), x[todo], eps, norm)
            x_cur[todo] = x_new
            broken = _margin(model, x_new, yc, chunk) <= 0
            adv[todo[broken]] = x_new[broken]
            robust[todo[broken]] = False
    return adv


def _grad_estimate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: float, samples: int, chunk: int, generator
) -> torch.Tensor:
    """Antithetic finite-difference estimate of the margin's input gradient for a group of examples."""
    n = len(x)
    dirs = _rand_sign((samples, *x.shape), x, generator)  # S×n×C×H×W
    probe = torch.cat([x + delta * dirs, x - delta * dirs]).clamp(0.0, 1.0)
    f = _margin(model, probe.flatten(0, 1), y.repeat(2 * samples), chunk).view(2, samples, n)
    diff = (f[0] - f[1]) / (2 * delta)
    return (diff.reshape(samples, n, *([1] * (x.dim() - 1))) * dirs).mean(0)


def _rand_sign(shape, like: torch.Tensor, generator) -> torch.Tensor:
    return torch.randint(0, 2, shape, device=like.device, generator=generator).to(like.dtype) * 2 - 1
