"""FAB: the fast adaptive boundary attack (Croce & Hein, ICML 2020), untargeted and targeted.

FAB looks for the smallest perturbation that changes the decision: at each step it linearises the
closest decision boundary, projects both the current iterate and the original input onto that
hyperplane intersected with the [0,1] box (minimal ℓ∞ or ℓ2 distance), takes a biased combination
of the two projections with extrapolation η, and after each success moves back towards the input by
β. An example counts as broken only if the smallest adversarial perturbation found is within ε;
otherwise the input itself is returned.

Defaults are the official AutoAttack's (`fab_pt.py` / `fab_base.py`, standard version): 100
iterations, α_max = 0.1, η = 1.05, β = 0.9, 1 restart (5 for untargeted FAB in the `plus`
version; restarts after the first start from a random point at half of ε), targeted FAB against the
9 most likely other classes of the clean input.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import IratError
from .apgd import sorted_targets
from .checks import attack_mode, attack_still_robust, check_batch, check_eps, clean_start
from .pgd import per_example_norm


def solve_threshold(a: torch.Tensor, u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Per row, the t ≥ 0 with Σ_i a_i·min(t, u_i) = c (a, u ≥ 0); max_i u_i where c is out of reach.

    The left side is piecewise linear and non-decreasing in t with breakpoints u_i, so sorting u
    gives the segment holding the solution in closed form.
    """
    us, order = u.sort(1)
    a_s = a.gather(1, order)
    before = (a_s * us).cumsum(1) - a_s * us  # Σ_{j<k} a_j u_j
    tail = a_s.flip(1).cumsum(1).flip(1)  # Σ_{j≥k} a_j
    value_at_breaks = before + us * tail
    k = (value_at_breaks < c[:, None]).sum(1)
    reachable = k < u.shape[1]
    kk = k.clamp(max=u.shape[1] - 1)[:, None]
    t = (c - before.gather(1, kk).squeeze(1)) / tail.gather(1, kk).squeeze(1).clamp_min(1e-12)
    return torch.where(reachable, t, us[:, -1])


def project_to_hyperplane_box(p: torch.Tensor, w: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    """The displacement d of smallest ℓ∞/ℓ2 norm with w·(p + d) = b and p + d in [0,1] (rows of p).

    Where the hyperplane cannot be reached inside the box, the displacement that gets closest.
    """
    c = b - (w * p).sum(1)
    v = w * torch.where(c < 0, -1.0, 1.0)[:, None]  # now v·d must equal |c|
    room = torch.where(v > 0, 1.0 - p, p)  # distance to the box face along sign(v)
    s = v.sign()
    if norm == "linf":
        t = solve_threshold(v.abs(), room, c.abs())
        return s * torch.minimum(t[:, None], room)
    va = v.abs()
    u = torch.where(va > 0, room / va.clamp_min(1e-30), torch.zeros_like(room))
    t = solve_threshold(va * va, u, c.abs())
    return s * torch.minimum(t[:, None] * va, room)


def _logit_diffs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None):
    """df[b, j] = z_j − z_y and its input gradient dg[b, j] (all classes, or the target only)."""
    xr = x.detach().requires_grad_(True)
    logits = model(xr).float()
    if target is not None:
        diff = logits.gather(1, target[:, None]) - logits.gather(1, y[:, None])
        (g,) = torch.autograd.grad(diff.sum(), xr)
        return diff.detach(), g[:, None]
    grads = []
    for j in range(logits.shape[1]):  # one backward per class: the Jacobian of the logits
        (g,) = torch.autograd.grad(logits[:, j].sum(), xr, retain_graph=j < logits.shape[1] - 1)
        grads.append(g)
    jac = torch.stack(grads, 1)
    idx = torch.arange(x.shape[0], device=x.device)
    df = logits.detach() - logits.detach()[idx, y][:, None]
    dg = jac - jac[idx, y][:, None]
    df[idx, y] = 1e10
    return df, dg


def _single_run(model, x, y, eps, norm, steps, target, alpha_max, eta, beta, random_start, generator):
    b = x.shape[0]
    bshape = (-1,) + (1,) * (x.dim() - 1)
    idx = torch.arange(b, device=x.device)
    x1 = x.clone()
    if random_start:
        if norm == "linf":
            t = 2 * torch.rand(x.shape, device=x.device, dtype=x.dtype, generator=generator) - 1
        else:
            t = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        x1 = (x + 0.5 * eps * t / per_example_norm(t, norm).clamp_min(1e-12).reshape(bshape)).clamp(0.0, 1.0)
    best = torch.full((b,), 1e10, device=x.device, dtype=x.dtype)
    adv = x.clone()
    for _ in range(steps):
        df, dg = _logit_diffs(model, x1, y, target)
        with torch.no_grad():
            gnorm = dg.flatten(2).abs().sum(-1) if norm == "linf" else dg.flatten(2).norm(dim=-1)
            j = (df.abs() / (gnorm + 1e-12)).argmin(1)  # closest linearised boundary
            w = dg[idx, j].flatten(1)
            bias = -df[idx, j] + (w * x1.flatten(1)).sum(1)
            d = project_to_hyperplane_box(
                torch.cat([x1.flatten(1), x.flatten(1)]), torch.cat([w, w]), torch.cat([bias, bias]), norm
            )
            a0 = per_example_norm(d, norm).clamp_min(1e-8)
            a1, a2 = a0[:b], a0[b:]
            alpha = (a1 / (a1 + a2)).clamp(0.0, alpha_max).reshape(bshape)
            d1, d2 = d[:b].reshape(x.shape), d[b:].reshape(x.shape)
            x1 = ((x1 + eta * d1) * (1 - alpha) + (x + eta * d2) * alpha).clamp(0.0, 1.0)
            is_adv = model(x1).argmax(1) != y
            dist = per_example_norm(x1 - x, norm)
            better = is_adv & (dist < best)
            adv = torch.where(better.reshape(bshape), x1, adv)
            best = torch.where(better, dist, best)
            x1 = torch.where(is_adv.reshape(bshape), x + (x1 - x) * beta, x1)
    return adv, best


def fab(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    restarts: int = 1,
    targeted: bool = False,
    n_target_classes: int = 9,
    alpha_max: float = 0.1,
    eta: float = 1.05,
    beta: float = 0.9,
    generator: torch.Generator | None = None,
    check_inputs: bool = True,
) -> torch.Tensor:
    """FAB (targeted: FAB-T). Returns, per example, a misclassified point within ε, else x itself."""
    check_eps(eps)
    if norm not in ("linf", "l2"):
        raise IratError(f"norm must be linf or l2, got {norm!r}")
    if int(steps) != steps or steps < 1 or restarts < 1 or n_target_classes < 1:
        raise IratError("FAB steps, restarts and n_target_classes must be whole numbers >= 1")
    if check_inputs:
        check_batch(model, x, y)
    x, y, adv, logits, robust = clean_start(model, x, y)
    if logits is None:
        return adv
    targets = sorted_targets(logits, min(n_target_classes, logits.shape[1] - 1)) if targeted else [None]
    with attack_mode(model, "eval"):
        for target in targets:
            for r in range(restarts):

                def run(todo: torch.Tensor, t=target, random_start=r > 0):
                    found, dist = _single_run(
                        model,
                        x[todo],
                        y[todo],
                        eps,
                        norm,
                        int(steps),
                        None if t is None else t[todo],
                        alpha_max,
                        eta,
                        beta,
                        random_start,
                        generator,
                    )
                    with torch.no_grad():
                        return found, (model(found).argmax(1) != y[todo]) & (dist <= eps)

                if not attack_still_robust(adv, robust, run):
                    return adv
    return adv
