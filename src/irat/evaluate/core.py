"""`evaluate`: accuracy under a list of attacks, per-example results, bound checks and a JSON record."""
from __future__ import annotations

import time
from typing import Sequence

import torch
import torch.nn as nn

from ..attacks.checks import attack_mode, check_batch, check_eps
from ..errors import IratError
from .attacks import AttackSpec, parse_attack, run_attack

BOUND_TOL = 1e-6


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted classes in eval mode, batched."""
    with attack_mode(model, "eval"):
        return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def check_bounds(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str, attack: str) -> None:
    """Refuse a result whose adversarial inputs leave the ε-ball (+1e-6) or [0,1]."""
    if x_adv.shape != x.shape:
        raise IratError(f"{attack}: adversarial batch has shape {tuple(x_adv.shape)}, expected {tuple(x.shape)}")
    d = (x_adv - x).flatten(1)
    dist = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    if bool((dist > eps + BOUND_TOL).any()) or bool((x_adv < -BOUND_TOL).any()) or bool((x_adv > 1 + BOUND_TOL).any()):
        raise IratError(f"{attack}: an adversarial example left the {norm} ball of radius {eps} or [0,1] "
                        f"(max distance {float(dist.max()):.6g}); the result is refused")


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, attacks: Sequence[str | AttackSpec],
             eps: float, norm: str = "linf", alpha: float | None = None, batch_size: int = 512, seed: int = 0,
             device: torch.device | str | None = None) -> dict:
    """Accuracy (percent) under each attack, on examples still classified correctly.

    Returns a JSON-ready record {"n", "eps", "norm", "alpha", "results", "attacks", "worst_case"}
    plus "per_example": {attack: bool tensor of correctness}, which callers save apart.
    α defaults to ε/4 (GAIRAT, BiLAW); pass the papers' values (0.003 MAIL, 1/255 MWPB) as needed.
    """
    check_eps(eps)
    if norm not in ("linf", "l2"):
        raise IratError(f"norm must be linf or l2, got {norm!r}")
    specs = [a if isinstance(a, AttackSpec) else parse_attack(a) for a in attacks]
    if not specs:
        raise IratError("no attacks given")
    if device is not None:
        model = model.to(device)
    dev = next(model.parameters()).device
    x, y = x.to(dev), y.to(dev).long()
    check_batch(model, x, y)
    alpha = eps / 4 if alpha is None else float(alpha)
    check_eps(alpha, "alpha")
    gen = torch.Generator(device=dev).manual_seed(seed)
    n = len(y)
    nat_correct = predict(model, x, batch_size) == y
    results, configs, per_example = {}, {}, {}
    worst = nat_correct.clone()
    for spec in specs:
        t0 = time.perf_counter()
        if spec.kind == "natural":
            correct = nat_correct.clone()
        else:
            correct = nat_correct.clone()
            todo = correct.nonzero().squeeze(1)  # attack only the examples still classified right
            for i in range(0, len(todo), batch_size):
                sel = todo[i:i + batch_size]
                xa = run_attack(model, x[sel], y[sel], spec, eps=eps, norm=norm, alpha=alpha, generator=gen)
                check_bounds(xa, x[sel], eps, norm, spec.name)
                correct[sel] = predict(model, xa, batch_size) == y[sel]
        if bool((correct & ~nat_correct).any()):
            raise IratError(f"{spec.name}: robust accuracy exceeds natural accuracy on some example; result refused")
        results[spec.name] = round(100.0 * correct.float().mean().item(), 4) if n else 0.0
        cfg = spec.config()
        cfg["alpha"] = spec.alpha or (alpha if spec.kind != "natural" else None)
        cfg["time_s"] = round(time.perf_counter() - t0, 3)
        configs[spec.name] = cfg
        per_example[spec.name] = correct.cpu()
        worst &= correct
    return {"n": n, "eps": eps, "norm": norm, "alpha": alpha, "results": results, "attacks": configs,
            "worst_case": round(100.0 * worst.float().mean().item(), 4) if n else 0.0,
            "per_example": per_example}
