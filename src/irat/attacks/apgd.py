"""Auto-PGD (Croce & Hein, ICML 2020), untargeted (APGD-CE, APGD-DLR) and targeted (APGD-T).

Defaults are the official AutoAttack's (fra31/auto-attack, `autopgd_base.py` with the `standard`
version's settings): 100 iterations, ρ = 0.75, initial step 2ε, momentum 0.75 (none on the first
step), checkpoints after 22 % of the iterations and then every max(previous − 3 %, 6 %),
oscillation test "loss increased in at most ρ·k of the last k steps" or "no improvement since the
last halving", on a halving the iterate restarts from the best point found. Restarts attack only
the examples still classified correctly. APGD-T runs the targeted DLR loss against the 2nd to
10th most likely classes of the clean input (9 targets). `eot_iter` averages the gradient over
that many forward passes (AutoAttack's `rand` version uses 20).

Everything is batched; the random start draws from `generator` so a seed reproduces the result.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import IratError
from .checks import attack_mode, attack_still_robust, check_batch, check_eps, clean_start, need_classes
from .losses import dlr_loss
from .pgd import per_example_norm, project

APGD_LOSSES = ("ce", "dlr", "dlr-targeted", "ce-targeted")


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, y_target: torch.Tensor) -> torch.Tensor:
    """−(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2): AutoAttack's targeted DLR (needs ≥ 4 classes)."""
    srt = logits.sort(1).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, y_target[:, None]).squeeze(1)
    return -(z_y - z_t) / (srt[:, -1] - 0.5 * (srt[:, -3] + srt[:, -4]) + 1e-12)


def _loss_fn(loss: str, y_target: torch.Tensor | None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if loss == "ce":
        return lambda z, y: F.cross_entropy(z, y, reduction="none")
    if loss == "dlr":
        return dlr_loss
    if loss in ("dlr-targeted", "ce-targeted") and y_target is None:
        raise IratError(f"APGD loss {loss} needs target classes")
    if loss == "dlr-targeted":
        return lambda z, y: dlr_targeted_loss(z, y, y_target)  # type: ignore[arg-type]
    if loss == "ce-targeted":
        return lambda z, y: -F.cross_entropy(z, y_target, reduction="none")  # type: ignore[arg-type]
    raise IratError(f"APGD loss must be one of {APGD_LOSSES}, got {loss!r}")


def _grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, eot_iter: int):
    """Logits, per-example loss and the input gradient averaged over `eot_iter` forward passes."""
    grad = torch.zeros_like(x)
    loss_sum = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    for _ in range(eot_iter):
        xr = x.detach().requires_grad_(True)
        logits = model(xr)
        lval = loss_fn(logits.float(), y)
        (g,) = torch.autograd.grad(lval.sum(), xr)
        grad += g
        loss_sum += lval.detach()
    return logits.detach().float(), loss_sum / eot_iter, grad / eot_iter


def apgd_checkpoints(steps: int) -> list[int]:
    """Iterations (1-based counts) at which APGD tests for oscillation and may halve the step size."""
    k = max(int(0.22 * steps), 1)
    k_min, decr = max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    out, at = [], k
    while at <= steps:
        out.append(at)
        k = max(k - decr, k_min)
        at += k
    return out


def _single_run(model, x, y, eps, norm, steps, loss_fn, rho, eot_iter, generator):
    """One APGD run on all of x; returns (adversarial-or-last-best inputs, still-correct mask)."""
    b = x.shape[0]
    bshape = (-1,) + (1,) * (x.dim() - 1)
    eps_b = torch.as_tensor(eps, dtype=x.dtype, device=x.device).expand(b).reshape(bshape)
    if norm == "linf":
        t = 2 * torch.rand(x.shape, device=x.device, dtype=x.dtype, generator=generator) - 1
        x_adv = x + eps_b * t / per_example_norm(t, norm).reshape(bshape)
    else:
        t = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        x_adv = x + eps_b * t / (per_example_norm(t, norm).reshape(bshape) + 1e-12)
    x_adv = x_adv.clamp(0.0, 1.0)
    checkpoints = apgd_checkpoints(steps)
    last_check = 0
    loss_steps = torch.zeros(steps, b, device=x.device, dtype=x.dtype)
    logits, loss, grad = _grad(model, x_adv, y, loss_fn, eot_iter)
    correct = logits.argmax(1) == y
    x_best, x_best_adv, grad_best, loss_best = x_adv.clone(), x_adv.clone(), grad.clone(), loss.clone()
    step = 2.0 * eps_b.clone()
    x_old = x_adv.clone()
    best_at_check = loss_best.clone()
    reduced_at_check = torch.ones(b, dtype=torch.bool, device=x.device)
    for i in range(steps):
        with torch.no_grad():
            momentum_dir = x_adv - x_old
            x_old = x_adv
            a = 0.75 if i > 0 else 1.0
            if norm == "linf":
                z = project(x_adv + step * grad.sign(), x, eps_b, norm)
            else:
                z = project(
                    x_adv + step * grad / (per_example_norm(grad, norm).reshape(bshape) + 1e-12), x, eps_b, norm
                )
            x_adv = project(x_adv + (z - x_adv) * a + momentum_dir * (1 - a), x, eps_b, norm)
        logits, loss, grad = _grad(model, x_adv, y, loss_fn, eot_iter)
        with torch.no_grad():
            pred_ok = logits.argmax(1) == y
            correct &= pred_ok
            x_best_adv = torch.where((~pred_ok).reshape(bshape), x_adv, x_best_adv)
            loss_steps[i] = loss
            better = loss > loss_best
            x_best = torch.where(better.reshape(bshape), x_adv, x_best)
            grad_best = torch.where(better.reshape(bshape), grad, grad_best)
            loss_best = torch.where(better, loss, loss_best)
            if i + 1 in checkpoints:
                k = i + 1 - last_check
                last_check = i + 1
                # loss increases among the last k steps (index −1 wraps, as in the reference code)
                idx = i - torch.arange(k, device=x.device)
                ups = (loss_steps[idx % steps] > loss_steps[(idx - 1) % steps]).sum(0)
                oscillating = ups <= k * rho
                no_progress = ~reduced_at_check & (best_at_check >= loss_best)
                halve = oscillating | no_progress
                reduced_at_check, best_at_check = halve.clone(), loss_best.clone()
                step = torch.where(halve.reshape(bshape), step / 2.0, step)
                x_adv = torch.where(halve.reshape(bshape), x_best, x_adv)
                grad = torch.where(halve.reshape(bshape), grad_best, grad)
    return x_best_adv, correct


def _validate(x, y, eps, norm, steps, restarts, rho, eot_iter, model, check_inputs):
    check_eps(eps)
    if norm not in ("linf", "l2"):
        raise IratError(f"norm must be linf or l2, got {norm!r}")
    if int(steps) != steps or steps < 1:
        raise IratError(f"APGD steps must be a whole number >= 1, got {steps}")
    if restarts < 1 or eot_iter < 1:
        raise IratError("APGD restarts and eot_iter must be >= 1")
    if not 0 < rho <= 1:
        raise IratError(f"APGD rho must lie in (0, 1], got {rho}")
    if check_inputs:
        check_batch(model, x, y)


def apgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    restarts: int = 1,
    loss: str = "ce",
    rho: float = 0.75,
    eot_iter: int = 1,
    generator: torch.Generator | None = None,
    check_inputs: bool = True,
) -> torch.Tensor:
    """Untargeted APGD on `loss` (ce | dlr); returns x itself for examples it does not break."""
    _validate(x, y, eps, norm, steps, restarts, rho, eot_iter, model, check_inputs)
    if loss not in ("ce", "dlr"):
        raise IratError(f"untargeted APGD takes loss ce or dlr, got {loss!r}")
    x, y, adv, logits, robust = clean_start(model, x, y)
    if logits is None:
        return adv
    if loss == "dlr":
        need_classes(logits, 3, "APGD-DLR")
    fn = _loss_fn(loss, None)

    def run(todo: torch.Tensor):
        found, still = _single_run(model, x[todo], y[todo], eps, norm, int(steps), fn, rho, eot_iter, generator)
        return found, ~still

    with attack_mode(model, "eval"):
        for _ in range(restarts):
            if not attack_still_robust(adv, robust, run):
                break
    return adv


def sorted_targets(logits: torch.Tensor, n_targets: int) -> list[torch.Tensor]:
    """The 2nd, 3rd, … most likely classes on the clean input (AutoAttack's target order)."""
    order = logits.argsort(1)
    return [order[:, -k] for k in range(2, n_targets + 2)]


def apgd_targeted(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    restarts: int = 1,
    n_target_classes: int = 9,
    loss: str = "dlr-targeted",
    rho: float = 0.75,
    eot_iter: int = 1,
    generator: torch.Generator | None = None,
    check_inputs: bool = True,
) -> torch.Tensor:
    """APGD-T: targeted APGD against each of the top `n_target_classes` other classes in turn.

    With fewer classes than n_target_classes + 1, every other class is targeted.
    """
    _validate(x, y, eps, norm, steps, restarts, rho, eot_iter, model, check_inputs)
    if loss not in ("dlr-targeted", "ce-targeted"):
        raise IratError(f"APGD-T takes loss dlr-targeted or ce-targeted, got {loss!r}")
    if n_target_classes < 1:
        raise IratError(f"n_target_classes must be >= 1, got {n_target_classes}")
    x, y, adv, logits, robust = clean_start(model, x, y)
    if logits is None:
        return adv
    n_cls = need_classes(logits, 4 if loss == "dlr-targeted" else 2, "APGD-T")
    with attack_mode(model, "eval"):
        for target in sorted_targets(logits, min(n_target_classes, n_cls - 1)):

            def run(todo: torch.Tensor, t=target):
                found, still = _single_run(
                    model, x[todo], y[todo], eps, norm, int(steps), _loss_fn(loss, t[todo]), rho, eot_iter, generator
                )
                return found, ~still

            for _ in range(restarts):
                if not attack_still_robust(adv, robust, run):
                    return adv
    return adv
