"""Contract checks for parts and attacks — the ones irat's own test suite runs over every registry, exported
so that a plug-in author can run them on their own part (docs/extending.md):

    from irat.testing import check_part, check_attack
    check_part("weighting", "my-scheme")          # raises AssertionError naming what broke
    check_attack("my-attack")

`check_part` trains two short epochs of a tiny CNN on synthetic data with the part plugged into the real
loop and checks, at every step: the radius gives finite ε > 0 (a scalar or one per example), every loss
term has shape [B] and is finite, every weight has shape [B], is finite and ≥ 0; after training the part's
state survives a round trip through `state_dict` / `load_state_dict`.

`check_attack` attacks a 4-class linear model, for which the strongest ℓ∞ attack is known exactly (for each
wrong class the best perturbation is separable per pixel), and checks: every adversarial example lies in the
ε-ball and in [0, 1] (the evaluator refuses it otherwise), no example is broken that the optimum cannot break,
a reference white-box attack comes within 5 points of the optimum, and the same seed gives the same result.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .config import Config, apply_dict, set_chosen_option
from .data.device_data import DeviceData, Splits
from .evaluate import evaluate
from .evaluate.attacks import ATTACKS
from .methods import apply_method
from .parts import OBJECTIVES, RADII, WEIGHTINGS, Batch
from .registry import Registry
from .train import Trainer

REGISTRIES: dict[str, Registry] = {"objective": OBJECTIVES, "weighting": WEIGHTINGS, "radius": RADII}
_BASE = {"objective": "at", "weighting": "none", "radius": "fixed"}


def synthetic(n: int = 192, classes: int = 4, size: int = 8, seed: int = 0) -> Splits:
    """Learnable synthetic images: a class is a bright square in one of `classes` places, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randint(0, 60, (n, 1, size, size), generator=g)
    half = size // 2
    for c in range(classes):
        r, col = divmod(c, 2)
        x[y == c, :, r * half : (r + 1) * half, col * half : (col + 1) * half] += 150
    x = x.clamp(0, 255).to(torch.uint8)
    tr, va = DeviceData(x[: n - 64], y[: n - 64], 1 / 255), DeviceData(x[n - 64 :], y[n - 64 :], 1 / 255)
    return Splits(tr, va, va, classes, (1, size, size), "synthetic", False)


def logits_batch(
    y: torch.Tensor,
    logits_adv: torch.Tensor,
    logits_nat: torch.Tensor | None = None,
    logits_adv2: torch.Tensor | None = None,
    *,
    mask: torch.Tensor | None = None,
    x: torch.Tensor | None = None,
    forward: Any = None,
) -> Batch:
    """A batch record at the loss stage, for unit tests of `Objective.terms` and `Weighting.raw` on hand-made
    logits (the fields a test does not give are placeholders)."""
    n = len(y)
    x = torch.zeros(n, 1) if x is None else x
    return Batch(
        net=forward, model=forward, x=x, y=y, idx=torch.arange(n), epoch=1, eps=0.0, alpha=0.0, lr=0.0, global_n=n,
        x_adv=x, mask=mask, forward=forward, logits_adv=logits_adv, logits_nat=logits_nat, logits_adv2=logits_adv2,
    )  # fmt: skip


def _config(section: str, name: str, options: dict[str, Any] | None) -> Config:
    cfg = Config()
    apply_method(cfg, "at")
    apply_dict(
        cfg,
        {
            "model": {"arch": "tinycnn"},
            "attack": {"eps": 0.1, "steps": 3},
            "epochs": 2,
            "batch_size": 32,
            "val_n": 32,
            "val_steps": 2,
            "device": "cpu",
            "progress": False,
            "weighting": {"burn_in": 1},
        },
    )
    for sec, base in _BASE.items():
        getattr(cfg, sec).name = name if sec == section else base
    set_chosen_option(cfg, "radius", "phase1_epochs", 1)  # a first phase, then the part's own radii
    set_chosen_option(cfg, "weighting", "meta_size", 24)  # a validation set that fits the synthetic data
    if options:
        getattr(cfg, section).options.setdefault(name, {}).update(options)
    return cfg


def _same(a: Any, b: Any) -> bool:
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, z) for x, z in zip(a, b))
    return bool(a == b)


def check_part(section: str, name: str, *, options: dict[str, Any] | None = None) -> dict[str, int]:
    """Run the part's contract (module docstring); returns how many steps were checked."""
    if section not in REGISTRIES:
        raise ValueError(f"section must be one of {', '.join(REGISTRIES)}, got {section!r}")
    cfg = _config(section, name, options)
    seen = {"steps": 0, "weighted_steps": 0}
    with tempfile.TemporaryDirectory(prefix="irat-contract-") as tmp:
        trainer = Trainer(cfg, Path(tmp) / "run", splits=synthetic())
        parts = trainer.parts
        radius, combine = parts.radius, parts.objective.combine

        class CheckedRadius:  # the loop calls the part; every call's output is checked on the way
            def __getattr__(self, attr: str) -> Any:
                return getattr(radius, attr)

            def __call__(self, model, x, y, epoch, eps, step):
                e, s = radius(model, x, y, epoch, eps, step)
                for what, v in (("ε", e), ("step size", s)):
                    t = torch.as_tensor(v)
                    assert t.dim() == 0 or tuple(t.shape) == (len(y),), f"{name}: {what} has shape {tuple(t.shape)}"
                    assert torch.isfinite(t).all() and (t > 0).all(), f"{name}: {what} must be finite and > 0"
                return e, s

        def checked_combine(terms, weights=None):
            b = next(iter(terms.values())).shape[0]
            for k, v in terms.items():
                assert tuple(v.shape) == (b,), f"{name}: loss term {k!r} has shape {tuple(v.shape)}, not [B]"
                assert torch.isfinite(v).all(), f"{name}: loss term {k!r} is not finite"
            for k, w in (weights or {}).items():
                assert tuple(w.shape) == (b,), f"{name}: weight on {k!r} has shape {tuple(w.shape)}, not [B]"
                assert torch.isfinite(w).all() and (w >= 0).all(), f"{name}: weights must be finite and >= 0"
            seen["steps"] += 1
            seen["weighted_steps"] += bool(weights)
            return combine(terms, weights)

        parts.radius = CheckedRadius()  # type: ignore[assignment]
        parts.objective.combine = checked_combine  # type: ignore[method-assign]
        try:
            trainer.fit()
        finally:
            parts.radius = radius
        part = getattr(parts, section)
        state = part.state_dict()
        fresh = REGISTRIES[section].get(name)(cfg, trainer.ctx)
        n_index = 1 + int(trainer.splits.train.index.max())
        fresh.prepare(n_index)
        fresh.load_state_dict(state)
        assert _same(fresh.state_dict(), state), f"{name}: state_dict does not survive load_state_dict"
    assert seen["steps"] > 0, f"{name}: the loop never combined a loss"
    if section == "weighting" and not REGISTRIES[section].get(name).neutral:
        assert seen["weighted_steps"] > 0, f"{name}: no step after the burn-in carried weights"
    return seen


class Linear(nn.Module):
    """f(x) = W·vec(x) + b: the model whose strongest ℓ∞ attack is known."""

    def __init__(self, d: int, classes: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(classes, d, generator=g))
        self.b = nn.Parameter(torch.randn(classes, generator=g) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T + self.b


@torch.no_grad()
def optimal_linf_robust(model: Linear, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Per example: robust against every ℓ∞ perturbation of size eps inside [0, 1]? For each wrong class k the
    margin (w_y − w_k)·x + b_y − b_k is lowered most by moving each pixel by up to eps (and within the box)
    against the sign of w_y − w_k; the example is broken iff some k's margin can be made < 0."""
    xf = x.flatten(1)
    robust = torch.ones(len(y), dtype=torch.bool)
    for k in range(model.w.shape[0]):
        d = model.w[y] - model.w[k]  # [B, D]
        margin = (d * xf).sum(1) + model.b[y] - model.b[k]
        room = torch.where(d > 0, xf.clamp(max=eps), (1 - xf).clamp(max=eps))  # how far each pixel can move
        best = margin - (d.abs() * room).sum(1)
        robust &= (y == k) | (best > 0)
    return robust


def check_attack(name: str, *, eps: float = 0.05, n: int = 64, seed: int = 0) -> dict[str, float]:
    """Run an evaluation attack's contract on a 4-class linear model (module docstring); returns the accuracies."""
    torch.manual_seed(seed)
    model = Linear(16, 4, seed).eval()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(n, 1, 4, 4, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)  # every example starts correct
    kw = dict(attacks=["natural", name], eps=eps, sanity=False, batch_size=n, seed=seed)
    a = evaluate(model, x, y, **kw)  # type: ignore[arg-type]
    b = evaluate(model, x, y, **kw)  # type: ignore[arg-type]
    key = [k for k in a["per_example"] if k != "natural"][0]
    assert torch.equal(a["per_example"][key], b["per_example"][key]), f"{name}: not deterministic under one seed"
    optimal = optimal_linf_robust(model, x, y, eps)
    broken_impossible = (~a["per_example"][key].bool() & optimal).sum().item()
    assert broken_impossible == 0, f"{name}: broke {broken_impossible} examples the optimal attack cannot break"
    acc, opt = a["results"][key], 100.0 * optimal.float().mean().item()
    spec_kind = a["attacks"][key]["kind"]
    if ATTACKS.get(spec_kind).reference:
        assert acc <= opt + 5.0, f"{name}: {acc:.1f} % robust where the optimum leaves {opt:.1f} %"
    return {"robust": acc, "optimal": opt}
