"""Square Attack (Andriushchenko et al., ECCV 2020): score-based black-box, ℓ∞ and ℓ2.

Uses only the model's outputs (no gradients), so it is not fooled by gradient masking. Random
square-shaped updates are accepted when they lower the margin z_y − max_{j≠y} z_j; an example is
done once it is misclassified.

Defaults are AutoAttack's (`square.py` as `autoattack.py` builds it): 5000 queries, p_init = 0.8,
margin loss, 1 restart, and the p schedule *not* rescaled to the query budget
(`resc_schedule=False`): p halves after iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000.
As in that implementation, in ℓ∞ one square position and one sign per channel are drawn per
iteration for the whole batch, and the start is vertical stripes of ±ε; in ℓ2 the square positions
are shared and the signs drawn per example.

One deliberate difference: the reference draws a square's corner from {0, …, h − s − 1}, so a square
never touches the last row or column once squares are small; irat draws from {0, …, h − s}, so every
pixel can be changed. This can only strengthen the attack (it matters on small images).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import IratError
from ..margins import logit_margin
from .checks import attack_mode, attack_still_robust, check_batch, check_eps, clean_start


def p_schedule(it: int, p_init: float, n_queries: int, rescale: bool = False) -> float:
    """Fraction of pixels a square covers at iteration `it`."""
    if rescale:
        it = int(it / n_queries * 10000)
    for bound, div in (
        (8000, 512),
        (6000, 256),
        (4000, 128),
        (2000, 64),
        (1000, 32),
        (500, 16),
        (200, 8),
        (50, 4),
        (10, 2),
    ):
        if it > bound:
            return p_init / div
    return p_init


def _rand_sign(shape, like: torch.Tensor, generator) -> torch.Tensor:
    return torch.sign(2 * torch.rand(shape, device=like.device, dtype=like.dtype, generator=generator) - 1)


def _rand_int(low: int, high: int, x: torch.Tensor, generator) -> int:
    """Uniform in {low, …, high} (inclusive; see the module note on the reference's off-by-one)."""
    return int(torch.randint(low, high + 1, (1,), device=x.device, generator=generator))


def _margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return logit_margin(model(x).float(), y)


def rectangles(h: int, w: int, device) -> torch.Tensor:
    """Square's ℓ2 window profile: nested rectangles weighted 1/(k+1)², unit ℓ2 norm."""
    delta = torch.zeros(h, w, device=device)
    ch, cw = h // 2 + 1, w // 2 + 1
    r0, c0 = ch - 1, cw - 1
    for k in range(max(ch, cw)):
        delta[max(r0, 0) : min(r0 + 2 * k + 1, h), max(c0, 0) : min(c0 + 2 * k + 1, w)] += 1.0 / (k + 1) ** 2
        r0 -= 1
        c0 -= 1
    return delta / delta.pow(2).sum().sqrt()


def window(s: int, device, generator) -> torch.Tensor:
    """A ±-split rectangle profile of size s×s (transposed with probability 1/2), unit ℓ2 norm."""
    delta = torch.zeros(s, s, device=device)
    delta[: s // 2] = rectangles(s // 2, s, device)
    delta[s // 2 :] = -rectangles(s - s // 2, s, device)
    delta = delta / delta.pow(2).sum().sqrt()
    if float(torch.rand(1, device=device, generator=generator)) > 0.5:
        delta = delta.t()
    return delta


def _l2n(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).reshape(-1, *([1] * (t.dim() - 1)))


def _search(model, x, y, x_best, n_queries, propose):
    """Square's random search: each iteration `propose(it, x, x_best)` gives one candidate per example
    still classified correctly; it is kept when it lowers the margin (or misclassifies)."""
    margin = _margin(model, x_best, y)
    for it in range(n_queries):
        todo = (margin > 0).nonzero().squeeze(1)
        if len(todo) == 0:
            break
        xb = x_best[todo]
        x_new = propose(it, x[todo], xb)
        m_new = _margin(model, x_new, y[todo])
        take = m_new < margin[todo]
        margin[todo] = torch.where(take, m_new, margin[todo])
        x_best[todo] = torch.where(take.reshape(-1, 1, 1, 1), x_new, xb)
    return x_best


def _run_linf(model, x, y, eps, n_queries, p_init, generator):
    c, h, w = x.shape[1:]

    def propose(it, xc, xb):
        s = min(max(int(round(math.sqrt(p_schedule(it, p_init, n_queries) * h * w))), 1), h, w)
        vh, vw = _rand_int(0, h - s, x, generator), _rand_int(0, w - s, x, generator)
        delta = torch.zeros(c, h, w, device=x.device, dtype=x.dtype)
        delta[:, vh : vh + s, vw : vw + s] = 2.0 * eps * _rand_sign((c, 1, 1), x, generator)
        return torch.minimum(torch.maximum(xb + delta, xc - eps), xc + eps).clamp(0.0, 1.0)

    start = (x + eps * _rand_sign((x.shape[0], c, 1, w), x, generator)).clamp(0.0, 1.0)
    return _search(model, x, y, start, n_queries, propose)


def l2_window_budget(d: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """The ℓ2 norm the new window may take, per example **and channel** (B×C×1×1), as the official
    AutoAttack's Square: √(max(ε² − ‖d‖², 0)/C + ‖d·mask‖²_channel), the unused budget shared
    equally among the channels plus what the two windows held in that channel."""
    c = d.shape[1]
    norm_img = _l2n(d)
    norm_wins = (d * mask).pow(2).sum((-2, -1), keepdim=True).sqrt()
    return ((eps**2 - norm_img**2).clamp_min(0.0) / c + norm_wins**2).sqrt()


def _run_l2(model, x, y, eps, n_queries, p_init, generator):
    c, h, w = x.shape[1:]
    dev = x.device
    delta0 = torch.zeros_like(x)
    s = max(h // 5, 1)
    offset = (h - s * 5) // 2
    vh = offset
    for _ in range(h // s):
        vw = offset
        for _ in range(w // s):
            delta0[:, :, vh : vh + s, vw : vw + s] += window(s, dev, generator).view(1, 1, s, s) * _rand_sign(
                (x.shape[0], c, 1, 1), x, generator
            )
            vw += s
        vh += s

    def propose(it, xc, xb):
        d = xb - xc
        s = max(int(round(math.sqrt(p_schedule(it, p_init, n_queries) * h * w))), 3)
        s = min(s + 1 if s % 2 == 0 else s, h, w)
        vh, vw = _rand_int(0, h - s, x, generator), _rand_int(0, w - s, x, generator)
        vh2, vw2 = _rand_int(0, h - s, x, generator), _rand_int(0, w - s, x, generator)
        mask = torch.zeros_like(xc)
        mask[:, :, vh : vh + s, vw : vw + s] = 1.0
        mask[:, :, vh2 : vh2 + s, vw2 : vw2 + s] = 1.0
        norm_win1 = d[:, :, vh : vh + s, vw : vw + s].pow(2).sum((-2, -1), keepdim=True).sqrt()
        new = window(s, dev, generator).view(1, 1, s, s) * _rand_sign((len(xc), c, 1, 1), x, generator)
        new = new + d[:, :, vh : vh + s, vw : vw + s] / (1e-12 + norm_win1)
        new = new / (1e-12 + new.pow(2).sum((-2, -1), keepdim=True).sqrt()) * l2_window_budget(d, mask, eps)
        d = d.clone()
        d[:, :, vh2 : vh2 + s, vw2 : vw2 + s] = 0.0
        d[:, :, vh : vh + s, vw : vw + s] = new
        return (xc + d / (_l2n(d) + 1e-12) * eps).clamp(0.0, 1.0)

    start = (x + delta0 / (_l2n(delta0) + 1e-12) * eps).clamp(0.0, 1.0)
    return _search(model, x, y, start, n_queries, propose)


@torch.no_grad()
def square(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    n_queries: int = 5000,
    p_init: float = 0.8,
    restarts: int = 1,
    generator: torch.Generator | None = None,
    check_inputs: bool = True,
) -> torch.Tensor:
    """Square Attack; returns, per example, a misclassified point within ε if found, else x itself."""
    check_eps(eps)
    if norm not in ("linf", "l2"):
        raise IratError(f"norm must be linf or l2, got {norm!r}")
    if int(n_queries) != n_queries or n_queries < 1 or restarts < 1:
        raise IratError("Square's n_queries and restarts must be whole numbers >= 1")
    if not 0 < p_init <= 1:
        raise IratError(f"Square's p_init must lie in (0, 1], got {p_init}")
    if check_inputs:
        check_batch(model, x, y)
    x, y, adv, logits, robust = clean_start(model, x, y)
    if logits is None:
        return adv
    search = _run_linf if norm == "linf" else _run_l2

    def run(todo: torch.Tensor):
        found = search(model, x[todo], y[todo], eps, int(n_queries), p_init, generator)
        return found, model(found).argmax(1) != y[todo]

    with attack_mode(model, "eval"):
        for _ in range(restarts):
            if not attack_still_robust(adv, robust, run):
                break
    return adv
