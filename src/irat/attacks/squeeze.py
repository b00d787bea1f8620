"""Squeeze training's joint search for an adversarial and a collaborative example (ST-AT).

Li, Guo, Zuo & Chen, "Squeeze Training for Adversarial Robustness" (ICLR 2023), and their released
`losses.py`: both examples start at x + 0.001·N(0,I); at every step the three points {x, x_col,
x_adv} are ranked by p_y, the lowest ("upper", most adversarial) and the highest ("lower", most
collaborative) are pushed apart by signed-gradient ascent on their symmetric KL divergence, and the
point ranked lowest becomes the next x_adv, the highest the next x_col (so x itself can take either
role). Everything is per-example masks over the batch; parameters get no gradients.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import attack_mode
from .noise import Noise, draw_noise
from .pgd import _per_example, _step, project, random_start


def rank_by_true_prob(logits: list[torch.Tensor], y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example, the index (into `logits`) with the lowest p_y ("upper") and with the highest ("lower").

    Ties go to the first index, as torch's argmin/argmax (the released code's order: nat, col, adv).
    """
    p = torch.stack([lg.softmax(1).gather(1, y[:, None]).squeeze(1) for lg in logits])
    return p.argmin(0), p.argmax(0)


def pick(stacked: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """stacked[which[i], i] for every example i (differentiable)."""
    return stacked[which, torch.arange(stacked.shape[1], device=stacked.device)]


def symmetric_kl(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """½·[KL(p_lower ‖ p_upper) + KL(p_upper ‖ p_lower)] per example, each target detached (released symmkl)."""
    lu, ll = F.log_softmax(upper, 1), F.log_softmax(lower, 1)
    kl_lu = (ll.detach().exp() * (ll.detach() - lu)).sum(1)
    kl_ul = (lu.detach().exp() * (lu.detach() - ll)).sum(1)
    return 0.5 * (kl_lu + kl_ul)


def squeeze_pair(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    alpha: float | torch.Tensor,
    steps: int,
    norm: str = "linf",
    bn_mode: str = "train-frozen",
    generator: torch.Generator | None = None,
    noise: Noise = draw_noise,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_adv, x_col) after `steps` joint ascent steps on the symmetric KL of the two extremes.

    bn_mode train-frozen (default) is the released code's: batch statistics, running ones untouched.
    """
    x = x.detach()
    y = y.long()
    eps_b, alpha_b = _per_example(eps, x), _per_example(alpha, x)
    x_adv = random_start(x, eps_b, norm, "normal", generator, noise)
    x_col = random_start(x, eps_b, norm, "normal", generator, noise)
    with attack_mode(model, bn_mode):
        x_nat = x.clone().requires_grad_(True)
        logits_nat = model(x_nat)  # x never moves: one forward, its graph kept for every step's backward
        for _ in range(int(steps)):
            points = [x_nat, x_col.requires_grad_(True), x_adv.requires_grad_(True)]
            logits = [logits_nat, model(points[1]), model(points[2])]
            up, low = rank_by_true_prob([lg.detach() for lg in logits], y)
            stacked = torch.stack(logits)
            loss = symmetric_kl(pick(stacked, up), pick(stacked, low)).sum()
            grads = torch.stack(torch.autograd.grad(loss, points, retain_graph=True))
            inputs = torch.stack([p.detach() for p in points])
            new_adv, new_col = pick(inputs, up), pick(inputs, low)
            g_adv, g_col = pick(grads, up), pick(grads, low)
            x_adv = project(new_adv + _step(g_adv, alpha_b, norm), x, eps_b, norm).detach()
            x_col = project(new_col + _step(g_col, alpha_b, norm), x, eps_b, norm).detach()
    return x_adv, x_col
