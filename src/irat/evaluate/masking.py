"""Gradient-masking signals, turned into explicit warnings in the table and the record.

Four kinds, each with a stated threshold (module constants, documented in docs/evaluation.md):
- a black-box attack (Square, SPSA) breaks examples that every white-box attack left robust: more than
  BLACK_BOX_MARGIN percentage points (AutoAttack's `check_square_sr` uses 0.2) **and** significantly more
  than the other way round — a one-sided sign test on the examples only one side broke (p < SIGNIFICANCE),
  so a couple of examples at small n raise no alarm on an honest model;
- a PGD attack is more than PGD_GAP points above APGD or AutoAttack on the same examples;
- accuracy that does not fall with more steps or a larger ε (beyond MONOTONE_TOL points and one example),
  from the attacks run and from a small probe (PGD-10/50 at ε, PGD-50 at 2ε);
- an attack that does not reach near-zero accuracy (≤ LARGE_EPS_MAX_ACC %) at a very large ε
  (ℓ∞: ε = 1, the whole box; ℓ2: the box diagonal);
- shattered gradients: PGD-50 at 2ε still leaves ≥ SHATTERED_MIN_ACC % of the probe's (correctly
  classified) examples robust — a much larger budget barely hurts, as when gradients are useless but
  not zero.
Plus AutoAttack's model checks: randomised outputs, outputs that are already probabilities, and
examples whose input gradient is exactly zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attacks.checks import attack_mode
from ..attacks.pgd import pgd
from .attacks import AttackSpec

BLACK_BOX_MARGIN = 0.2
PGD_GAP = 5.0
MONOTONE_TOL = 1.0
LARGE_EPS_MAX_ACC = 5.0
PROBE_N = 200
SIGNIFICANCE = 0.01
SHATTERED_MIN_ACC = 90.0


def sign_test_p(only_a: int, only_b: int) -> float:
    """One-sided sign (exact McNemar) test: P(X ≥ only_a) for X ~ Binomial(only_a + only_b, ½) — how
    likely `a` breaks this many more examples than `b` if neither is stronger."""
    n = only_a + only_b
    if only_a == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(only_a, n + 1)) / 2.0**n


def _warn(check: str, message: str) -> dict:
    return {"check": check, "message": message}


def _acc(correct: torch.Tensor, mask: torch.Tensor) -> float:
    return 100.0 * float(correct[mask].float().mean()) if bool(mask.any()) else 0.0


def _tol(n: int) -> float:
    return MONOTONE_TOL + (100.0 / n if n else 0.0)


def attack_warnings(
    specs: list[AttackSpec],
    per_example: dict[str, torch.Tensor],
    covered: dict[str, torch.Tensor],
    nat_correct: torch.Tensor,
    aa_components: dict[str, dict[str, torch.Tensor]],
) -> list[dict]:
    """Warnings from comparing the attacks that were run (per example, on the examples they share)."""
    out: list[dict] = []
    white = [s for s in specs if s.white_box]
    for s in specs:
        if not s.black_box or not white:
            continue
        mask = covered[s.name].clone()
        for w in white:
            mask &= covered[w.name]
        survived_white = nat_correct.clone()
        for w in white:
            survived_white &= per_example[w.name]
        extra = survived_white & ~per_example[s.name] & mask
        other = ~survived_white & per_example[s.name] & nat_correct & mask  # broken by white-box only
        share = 100.0 * float(extra.sum()) / max(int(mask.sum()), 1)
        p_value = sign_test_p(int(extra.sum()), int(other.sum()))
        if share > BLACK_BOX_MARGIN and p_value < SIGNIFICANCE:
            out.append(
                _warn(
                    "black-box-beats-white-box",
                    f"{s.name} (black-box) broke {int(extra.sum())} examples ({share:.2f} %) that every "
                    f"white-box attack left robust, against {int(other.sum())} the other way (sign test "
                    f"p = {p_value:.2g}): a sign of gradient masking",
                )
            )
    for name, comps in aa_components.items():
        if "square" in comps:
            order = list(comps)
            i = order.index("square")
            if i > 0:
                before = comps[order[i - 1]]
                mask = covered[name]
                broke = int((before & ~comps["square"] & mask).sum())
                drop = 100.0 * broke / max(int(mask.sum()), 1)
                # Square runs only where the white-box components failed: nothing is discordant the other way
                if drop > BLACK_BOX_MARGIN and sign_test_p(broke, 0) < SIGNIFICANCE:
                    out.append(
                        _warn(
                            "black-box-beats-white-box",
                            f"{name}: Square (black-box) lowered the accuracy left by the white-box "
                            f"components by {drop:.2f} points: a sign of gradient masking",
                        )
                    )
    strong = [s for s in specs if s.attack.reference]
    for p in specs:
        if not p.attack.step_family or p.options["loss"] != "ce":
            continue
        for s in strong:
            mask = covered[p.name] & covered[s.name]
            gap = _acc(per_example[p.name], mask) - _acc(per_example[s.name], mask)
            if gap > PGD_GAP:
                out.append(
                    _warn(
                        "pgd-above-strong-attack",
                        f"{p.name} accuracy is {gap:.1f} points above {s.name} on the same examples: PGD "
                        f"overstates robustness here (gradient masking or a poorly tuned step)",
                    )
                )
    pgds = sorted((s for s in specs if s.attack.step_family), key=lambda s: s.options["steps"])
    for i, a in enumerate(pgds):
        for b in pgds[i + 1 :]:
            same = all(
                a.options[k] == b.options[k]
                for k in ("loss", "restarts", "first_success", "alpha", "alpha_eps", "start")
            )
            if not same or b.options["steps"] <= a.options["steps"]:
                continue
            mask = covered[a.name] & covered[b.name]
            rise = _acc(per_example[b.name], mask) - _acc(per_example[a.name], mask)
            if rise > _tol(int(mask.sum())):
                out.append(
                    _warn(
                        "more-steps-not-stronger",
                        f"{b.name} leaves {rise:.1f} points more accuracy than {a.name} with fewer steps",
                    )
                )
    return out


@torch.no_grad()
def model_warnings(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    """AutoAttack's checks on the model: randomness, probability outputs, zero input gradients."""
    out: list[dict] = []
    xs, ys = x[:PROBE_N], y[:PROBE_N]
    if len(xs) == 0:
        return out
    with attack_mode(model, "eval"):
        z1, z2 = model(xs).float(), model(xs).float()
        if not torch.allclose(z1, z2, atol=1e-5, rtol=1e-5):
            out.append(
                _warn(
                    "randomised-model",
                    "the model's outputs change between two identical forward passes: "
                    "evaluate a randomised defence with aa-rand (expectation over transformation)",
                )
            )
        if (
            bool((z1 >= 0).all())
            and bool((z1 <= 1).all())
            and torch.allclose(z1.sum(1), torch.ones_like(z1[:, 0]), atol=1e-5)
        ):
            out.append(
                _warn(
                    "probability-outputs",
                    "the model outputs probabilities, not logits: CE and DLR on "
                    "probabilities give weak gradients; remove the final softmax",
                )
            )
        with torch.enable_grad():
            xr = xs.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xr).float(), ys, reduction="sum"), xr)
        zero = int((g.flatten(1).abs().amax(1) == 0).sum())
        if zero:
            out.append(
                _warn(
                    "zero-gradients",
                    f"{zero} of {len(xs)} examples have an input gradient of exactly "
                    f"zero: gradient-based attacks cannot move them (gradient masking?)",
                )
            )
    return out


def sanity_probe(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    nat_correct: torch.Tensor,
    *,
    eps: float,
    norm: str,
    generator: torch.Generator | None,
) -> tuple[dict, list[dict]]:
    """PGD at ε with 10 and 50 steps, at 2ε and at a very large ε on ≤ PROBE_N correctly classified examples."""
    idx = nat_correct.nonzero().squeeze(1)[:PROBE_N]
    if len(idx) == 0:
        return {}, []
    xs, ys = x[idx], y[idx]
    big = 1.0 if norm == "linf" else math.sqrt(xs[0].numel())
    runs = {"pgd10@eps": (eps, 10), "pgd50@eps": (eps, 50), "pgd50@2eps": (2 * eps, 50), "pgd50@large_eps": (big, 50)}
    acc = {}
    for key, (e, steps) in runs.items():
        xa = pgd(model, xs, ys, eps=e, alpha=e / 4, steps=steps, norm=norm, generator=generator, check_inputs=False)
        with torch.no_grad(), attack_mode(model, "eval"):
            acc[key] = round(100.0 * float((model(xa).argmax(1) == ys).float().mean()), 4)
    tol = _tol(len(idx))
    out = []
    if acc["pgd50@eps"] > acc["pgd10@eps"] + tol:
        out.append(
            _warn(
                "more-steps-not-stronger",
                f"probe: PGD-50 leaves {acc['pgd50@eps']:.1f} % vs PGD-10's "
                f"{acc['pgd10@eps']:.1f} % at ε: accuracy does not fall with more steps",
            )
        )
    if acc["pgd50@2eps"] > acc["pgd50@eps"] + tol:
        out.append(
            _warn(
                "larger-eps-not-stronger",
                f"probe: PGD-50 at 2ε leaves {acc['pgd50@2eps']:.1f} % vs "
                f"{acc['pgd50@eps']:.1f} % at ε: accuracy does not fall with a larger ε",
            )
        )
    if acc["pgd50@2eps"] >= SHATTERED_MIN_ACC:
        out.append(
            _warn(
                "larger-eps-near-clean",
                f"probe: PGD-50 at 2ε still leaves {acc['pgd50@2eps']:.1f} % of {len(idx)} correctly classified "
                f"examples robust: doubling the budget barely hurts, as when gradients are shattered (useless but "
                f"not zero); check with black-box attacks (square, spsa) and a larger-budget attack",
            )
        )
    if acc["pgd50@large_eps"] > LARGE_EPS_MAX_ACC:
        out.append(
            _warn(
                "large-eps-not-broken",
                f"probe: PGD-50 at ε = {big:.4g} (the whole input box) still leaves "
                f"{acc['pgd50@large_eps']:.1f} % accuracy; a sound attack should reach ~0 %: gradient "
                f"masking or a broken attack/model",
            )
        )
    return {"n": len(idx), "large_eps": big, "accuracy": acc}, out
