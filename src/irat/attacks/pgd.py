"""The PGD engine (docs/methods.md §1) serving every method, plus FAT's early-stopped PGD-K-τ (docs/methods.md §4).

Everything is a batched tensor update: per-example ε and α, κ counting, first-success steps,
FAT's per-example budgets and stopping, and iterate recording are masks over the whole batch.
Parameters get no gradients (`torch.autograd.grad` w.r.t. the input only, parameters frozen).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal, overload

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Kappa, Norm, Start
from ..errors import IratError
from .checks import attack_mode, check_batch, check_eps
from .losses import ATTACK_LOSSES, attack_loss
from .noise import Noise, draw_noise

NORMS: tuple[str, ...] = typing.get_args(Norm)
STARTS: tuple[str, ...] = typing.get_args(Start)
KAPPAS: tuple[str, ...] = typing.get_args(Kappa)


@dataclass
class PGDInfo:
    """Per-example records of one attack run (all tensors of length B, aligned with the labels).

    kappa_count: iterates x_0..x_{K-1} the model classified correctly, checked before each step
        (the released GA_PGD geometry value; κ ∈ {0..K}).
    kappa_first: index of the first misclassified iterate among x_0..x_{K-1}, K if none
        (the GAIRAT paper's "least number of steps").
    kappa: the one of the two selected by `kappa=`.
    first_success: first iterate index in 0..K that is misclassified, −1 if none.
    x_at_step: the iterate at the requested per-example step (or at κ), when asked for.
    stopped_at: FAT — the step at which an example stopped (K if it ran all steps).
    loss: the attack loss at the returned iterate; correct: whether it is still classified right.
    """

    kappa: torch.Tensor
    kappa_count: torch.Tensor
    kappa_first: torch.Tensor
    first_success: torch.Tensor
    loss: torch.Tensor
    correct: torch.Tensor
    steps: int
    x_at_step: torch.Tensor | None = None
    stopped_at: torch.Tensor | None = None


def _per_example(v: float | torch.Tensor, x: torch.Tensor) -> float | torch.Tensor:
    if torch.is_tensor(v):
        v = v.to(device=x.device, dtype=x.dtype)
        if v.dim() == 0:
            return float(v)
        if v.shape[0] != x.shape[0]:
            raise IratError(
                f"a per-example eps/alpha must have one value per example ({x.shape[0]}), got {tuple(v.shape)}"
            )
        return v.reshape(-1, *([1] * (x.dim() - 1)))
    return float(v)


def per_example_norm(t: torch.Tensor, norm: str) -> torch.Tensor:
    """‖t_i‖∞ or ‖t_i‖₂ of each example (row of the batch)."""
    f = t.flatten(1)
    return f.abs().amax(1) if norm == "linf" else f.norm(dim=1)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float | torch.Tensor, norm: str) -> torch.Tensor:
    """Project onto the ε-ball around x (per-example ε allowed), then clamp to [0,1]."""
    if norm == "linf":
        if torch.is_tensor(eps):
            x_adv = torch.maximum(torch.minimum(x_adv, x + eps), x - eps)
        else:
            x_adv = torch.clamp(x_adv, x - eps, x + eps)
    else:
        delta = x_adv - x
        n = delta.flatten(1).norm(dim=1).reshape(-1, *([1] * (x.dim() - 1)))
        delta = delta * torch.clamp(eps / (n + 1e-12), max=1.0)
        x_adv = x + delta
    return x_adv.clamp(0.0, 1.0)


def random_start(
    x: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str,
    start: str,
    generator: torch.Generator | None = None,
    noise: Noise = draw_noise,
) -> torch.Tensor:
    """uniform: U(−ε,ε) (ℓ∞) or uniform in the ℓ2 ball; normal: x + 0.001·N(0,I); none: x."""
    if start == "none":
        return x.clone()
    if start == "normal":
        jitter = 0.001 * noise(x.shape, normal=True, device=x.device, dtype=x.dtype, generator=generator)
        return project(x + jitter, x, eps, norm)
    if norm == "linf":
        u = noise(x.shape, normal=False, device=x.device, dtype=x.dtype, generator=generator) * 2 - 1
        return project(x + u * eps, x, eps, norm)
    d = noise(x.shape, normal=True, device=x.device, dtype=x.dtype, generator=generator)
    d = d / d.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, *([1] * (x.dim() - 1)))
    r = noise(x.shape[:1], normal=False, device=x.device, dtype=x.dtype, generator=generator) ** (1.0 / x[0].numel())
    return project(x + d * r.reshape(-1, *([1] * (x.dim() - 1))) * eps, x, eps, norm)


def _step(grad: torch.Tensor, alpha: float | torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return alpha * grad.sign()
    g = grad.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, *([1] * (grad.dim() - 1)))
    return alpha * grad / g


def _validate(eps, alpha, steps, norm, loss, start, kappa, restarts, tau) -> None:
    check_eps(eps, "eps")
    check_eps(alpha, "alpha")
    if norm not in NORMS:
        raise IratError(f"norm must be one of {NORMS}, got {norm!r}")
    if loss not in ATTACK_LOSSES:
        raise IratError(f"loss must be one of {ATTACK_LOSSES}, got {loss!r}")
    if start not in STARTS:
        raise IratError(f"start must be one of {STARTS}, got {start!r}")
    if kappa not in KAPPAS:
        raise IratError(f"kappa must be one of {KAPPAS}, got {kappa!r}")
    if int(steps) != steps or steps < 0:
        raise IratError(f"steps must be a whole number >= 0, got {steps}")
    if restarts < 1:
        raise IratError(f"restarts must be >= 1, got {restarts}")
    if tau is not None and (torch.as_tensor(tau) < 0).any():
        raise IratError("FAT's tau must be >= 0")


@overload
def pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, return_info: Literal[False] = ..., **kw
) -> torch.Tensor: ...
@overload
def pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, return_info: Literal[True], **kw
) -> tuple[torch.Tensor, PGDInfo]: ...


def pgd(  # type: ignore[misc]  # the overloads name only return_info; the rest are the keywords below
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    alpha: float | torch.Tensor | None = None,
    steps: int = 10,
    norm: str = "linf",
    loss: str = "ce",
    start: str = "uniform",
    restarts: int = 1,
    bn_mode: str = "eval",
    kappa: str = "count",
    record_step: torch.Tensor | str | None = None,
    tau: int | torch.Tensor | None = None,
    step_noise: float = 0.0,
    cw_confidence: float = 50.0,
    p_natural: torch.Tensor | None = None,
    return_info: bool = False,
    return_first_success: bool = False,
    generator: torch.Generator | None = None,
    noise: Noise = draw_noise,
    check_inputs: bool = True,
):
    """Projected gradient ascent on `loss` inside the ε-ball around x (docs/methods.md §1).

    eps, alpha: scalars or per-example tensors of shape [B]; alpha defaults to ε/4, steps to 10.
    loss: ce | kl (TRADES: KL(p(x) ‖ p(x')), p(x) computed once, or passed as `p_natural`) | cw | dlr.
    start: uniform | normal (x + 0.001·N(0,I)) | none. restarts: keep, per example, a
        misclassifying iterate if any restart finds one, else the highest-loss one.
    bn_mode: eval (TRADES, MART, GAIRAT, FAT, MAIL), train (AWP, WMMR code; updates BN statistics) or
        train-frozen (batch statistics, running ones untouched: ST-AT).
    kappa: which geometry value `info.kappa` holds — count (default) or first-success.
    record_step: per-example step indices, or "kappa", for `info.x_at_step` (MAIL's PM-dif).
    tau: FAT's early-stop budget (scalar or per-example); `step_noise` adds ω·N(0,I) to each step.
    return_first_success: return, per example, the first misclassified iterate (PGD+: an example is
        robust only if every iterate is classified correctly), else the last one.
    generator, noise: where the random start and step noise come from (`irat.attacks.noise`).
    Returns x_adv, or (x_adv, PGDInfo) with `return_info=True`.
    """
    if alpha is None:  # the papers' usual step: a quarter of the radius (per example when ε is)
        alpha = eps / 4
    _validate(eps, alpha, steps, norm, loss, start, kappa, restarts, tau)
    if check_inputs:
        check_batch(model, x, y)
    x = x.detach()
    y = y.long()
    eps_b, alpha_b = _per_example(eps, x), _per_example(alpha, x)
    need_info = return_info or restarts > 1 or return_first_success
    settings = _Settings(
        int(steps),
        norm,
        loss,
        start,
        kappa,
        record_step,
        tau,
        step_noise,
        cw_confidence,
        need_info,
        return_first_success,
    )
    best_adv, best_info = None, None
    with attack_mode(model, bn_mode):
        p_nat = p_natural
        if loss == "kl" and p_nat is None:
            with torch.no_grad():
                p_nat = F.softmax(model(x), 1)
        for _ in range(restarts):
            x_adv, info = _run(model, x, y, eps_b, alpha_b, settings, p_nat, generator, noise)
            if best_adv is None or info is None:
                best_adv, best_info = x_adv, info
                continue
            assert best_info is not None
            # prefer a misclassifying iterate; among equals, the higher loss
            take = (~info.correct & best_info.correct) | (
                (info.correct == best_info.correct) & (info.loss > best_info.loss)
            )
            best_adv = torch.where(take.reshape(-1, *([1] * (x.dim() - 1))), x_adv, best_adv)
            best_info = _merge(best_info, info, take)
    if return_info:
        return best_adv, best_info
    return best_adv


def _merge(a: PGDInfo, b: PGDInfo, take: torch.Tensor) -> PGDInfo:
    def pick(u, v):
        if u is None or v is None:
            return u
        m = take.reshape(-1, *([1] * (u.dim() - 1)))
        return torch.where(m, v, u)

    return PGDInfo(
        pick(a.kappa, b.kappa),
        pick(a.kappa_count, b.kappa_count),
        pick(a.kappa_first, b.kappa_first),
        pick(a.first_success, b.first_success),
        pick(a.loss, b.loss),
        pick(a.correct, b.correct),
        a.steps,
        pick(a.x_at_step, b.x_at_step),
        pick(a.stopped_at, b.stopped_at),
    )


@dataclass(frozen=True)
class _Settings:
    """One PGD call's options, built once and handed to every restart."""

    steps: int
    norm: str
    loss: str
    start: str
    kappa: str
    record_step: torch.Tensor | str | None
    tau: int | torch.Tensor | None
    step_noise: float
    cw_conf: float
    need_info: bool
    first_success_out: bool


def _run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: Any,
    alpha: Any,
    settings: _Settings,
    p_nat: torch.Tensor | None,
    generator: torch.Generator | None,
    noise: Noise,
):
    steps, norm, loss, start, kappa = settings.steps, settings.norm, settings.loss, settings.start, settings.kappa
    record_step: Any = settings.record_step  # a per-example tensor, "kappa" or None (typed loosely in the engine)
    tau: Any = settings.tau
    step_noise, cw_conf = settings.step_noise, settings.cw_conf
    need_info, first_success_out = settings.need_info, settings.first_success_out
    b = x.shape[0]
    dev = x.device
    x_adv = random_start(x, eps, norm, start, generator, noise)
    kappa_count = torch.zeros(b, dtype=torch.long, device=dev)
    first = torch.full((b,), -1, dtype=torch.long, device=dev)
    fat = tau is not None
    if fat:
        budget = torch.as_tensor(tau, device=dev, dtype=torch.long).expand(b).clone()
        active = torch.ones(b, dtype=torch.bool, device=dev)
        stopped_at = torch.full((b,), steps, dtype=torch.long, device=dev)
    keep_all = isinstance(record_step, str)
    if keep_all and record_step != "kappa":
        raise IratError(f"record_step must be a per-example tensor or 'kappa', got {record_step!r}")
    iterates: Any = [x_adv] if keep_all else None
    found = x_adv  # PGD+: the first misclassified iterate per example
    rec = None
    if torch.is_tensor(record_step):
        record_step = record_step.to(dev).long()
        rec = x_adv.clone()
    bshape = (-1,) + (1,) * (x.dim() - 1)
    for k in range(steps):
        x_adv.requires_grad_(True)
        logits = model(x_adv)
        correct = logits.argmax(1) == y
        with torch.no_grad():
            kappa_count += correct
            newly = (first < 0) & ~correct
            first = torch.where(newly, k, first)
            if first_success_out:
                found = torch.where(newly.reshape(bshape), x_adv.detach(), found)
            if rec is not None:
                rec = torch.where((record_step == k).reshape(bshape), x_adv, rec)
            if fat:
                mis = ~correct & active
                stop = mis & (budget == 0)
                budget -= (mis & ~stop).long()
                active &= ~stop
                stopped_at = torch.where(stop, k, stopped_at)
        lval = attack_loss(loss, logits, y, p_nat, cw_conf)
        (grad,) = torch.autograd.grad(lval.sum(), x_adv)
        with torch.no_grad():
            x_adv = x_adv.detach()
            upd = _step(grad, alpha, norm)
            if step_noise:
                upd = upd + step_noise * noise(x.shape, normal=True, device=dev, dtype=x.dtype, generator=generator)
            new = project(x_adv + upd, x, eps, norm)
            x_adv = torch.where(active.reshape(bshape), new, x_adv) if fat else new
            if keep_all:
                iterates.append(x_adv)
    x_adv = x_adv.detach()
    if not need_info:
        return x_adv, None
    kappa_first = torch.where(first < 0, steps, first)  # first misclassified among x_0..x_{K-1}, else K
    with torch.no_grad():
        logits = model(x_adv)
        correct = logits.argmax(1) == y
        first = torch.where((first < 0) & ~correct, steps, first)
        final_loss = attack_loss(loss, logits, y, p_nat, cw_conf)
        if first_success_out and steps > 0:
            early = (first >= 0) & (first < steps)
            x_adv = torch.where(early.reshape(bshape), found, x_adv)
            correct = first < 0
            final_loss = torch.where(early, torch.full_like(final_loss, float("inf")), final_loss)
        if rec is not None:
            rec = torch.where((record_step >= steps).reshape(bshape), x_adv, rec)
    kap = kappa_count if kappa == "count" else kappa_first
    if keep_all:
        stack = torch.stack(iterates)  # (K+1)×B×...
        rec = stack[kap.clamp(0, steps), torch.arange(b, device=dev)]
    return x_adv, PGDInfo(
        kap, kappa_count, kappa_first, first, final_loss, correct, steps, rec, stopped_at if fat else None
    )


def cw(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    alpha: float | torch.Tensor,
    steps: int = 30,
    norm: str = "linf",
    start: str = "uniform",
    confidence: float = 50.0,
    **kw,
) -> torch.Tensor:
    """CW∞ as the papers evaluate it: PGD on the CW margin loss with κ = 50 (not the optimisation-based C&W)."""
    return pgd(
        model,
        x,
        y,
        eps=eps,
        alpha=alpha,
        steps=steps,
        norm=norm,
        loss="cw",
        start=start,
        cw_confidence=confidence,
        **kw,
    )


def pgd_plus(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    alpha: float = 0.01,
    steps: int = 40,
    restarts: int = 5,
    norm: str = "linf",
    **kw,
) -> torch.Tensor:
    """PGD+ (GAIRAT's evaluation): `restarts` × PGD-`steps` with step α = 0.01; an example counts as
    robust only if it is classified correctly at every step of every restart, so the returned input is
    the first misclassified iterate found, if any."""
    return pgd(
        model, x, y, eps=eps, alpha=alpha, steps=steps, restarts=restarts, norm=norm, return_first_success=True, **kw
    )


def fat_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    alpha: float | torch.Tensor,
    steps: int,
    tau: int | torch.Tensor,
    loss: str = "ce",
    start: str = "uniform",
    step_noise: float = 0.001,
    **kw,
):
    """FAT's early-stopped PGD-K-τ (docs/methods.md §4): friendly adversarial data, labels kept aligned."""
    return pgd(
        model, x, y, eps=eps, alpha=alpha, steps=steps, loss=loss, start=start, tau=tau, step_noise=step_noise, **kw
    )
