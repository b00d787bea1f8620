"""Instance-weighting schemes (METHODS §3): GAIR, MAIL, WMMR; normalisation; burn-in; λ schedules.

A scheme turns per-example geometry (κ, margins) into raw weights w_i ≥ 0; `normalize` turns those
into the ω_i that multiply per-example loss terms, with the batch loss a mean over the *global*
batch. `mean-one` (ω = B·w/Σw) and `sum-one` (ω = w/Σw with a summed loss) give the same loss, so
both are expressed on the mean scale here. Σ runs over the global batch through `global_sum`, which
the data-parallel trainer replaces by an all-reduce.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .errors import ConfigError

NORMALIZATIONS = ("mean-one", "sum-one", "constant", "none")
GAIR_FUNCTIONS = ("tanh", "sigmoid", "linear")


def _identity_sum(t: torch.Tensor) -> torch.Tensor:
    return t


global_sum: Callable[[torch.Tensor], torch.Tensor] = _identity_sum  # DDP: replaced by an all-reduce


def normalize(w: torch.Tensor, mode: str = "mean-one", constant: float = 1.0) -> torch.Tensor:
    """ω from raw weights w: mean-one / sum-one → B·w/Σw (global B and Σ); constant → c·w; none → w."""
    if mode in ("mean-one", "sum-one"):
        stats = global_sum(torch.stack([w.sum(), torch.tensor(float(w.numel()), device=w.device, dtype=w.dtype)]))
        return w * stats[1] / stats[0].clamp_min(1e-12)
    if mode == "constant":
        return constant * w
    if mode == "none":
        return w
    raise ConfigError(f"weighting.normalization must be one of {', '.join(NORMALIZATIONS)}, got {mode!r}")


def gair_weight(kappa: torch.Tensor, steps: int, lam: float, fn: str = "tanh") -> torch.Tensor:
    """GAIRAT weights from the geometry value κ ∈ {0..K} (Eqs. 6-8).

    tanh: ½(1 + tanh(λ + 5(1 − 2κ/K)));  sigmoid: σ(λ + 5(1 − 2κ/K));  linear: 1 − κ/(K+1).
    λ = +∞ gives ω ≡ 1 (standard AT). The released code writes ⌊K/2⌋ for K/2: identical for even K.
    """
    k = kappa.float()
    if fn == "linear":
        return 1.0 - k / (steps + 1)
    if math.isinf(lam) and lam > 0:
        return torch.ones_like(k)
    arg = lam + 5.0 * (1.0 - 2.0 * k / steps)
    if fn == "tanh":
        return torch.sigmoid(2.0 * arg)  # = ½(1 + tanh(arg)) exactly, without float32 cancellation near 0
    if fn == "sigmoid":
        return torch.sigmoid(arg)
    raise ConfigError(f"weighting.gair_fn must be one of {', '.join(GAIR_FUNCTIONS)}, got {fn!r}")


def gair_lambda(schedule: str, epoch: int, epochs: int, burn_in: int, lam: float, lam_end: float | None,
                table: list | None) -> float:
    """λ at a (1-based) epoch after burn-in: fixed; linear from `lam` to `lam_end` over the remaining
    epochs; piecewise from a [[after_epochs, λ], ...] table. (The released `linear` gives NaN with
    λ_max = ∞ and its `piecewise` only ever reaches its first branch; these are the corrected forms.)"""
    if schedule == "fixed":
        return lam
    if schedule == "linear":
        if lam_end is None:
            raise ConfigError("weighting.gair_lambda_schedule=linear needs weighting.gair_lambda_end")
        if math.isinf(lam) or math.isinf(lam_end):
            return lam_end if epoch >= epochs else lam
        span = max(epochs - burn_in, 1)
        frac = min(max((epoch - burn_in - 1) / max(span - 1, 1), 0.0), 1.0)
        return lam + (lam_end - lam) * frac
    if schedule == "piecewise":
        if not table:
            raise ConfigError("weighting.gair_lambda_schedule=piecewise needs weighting.gair_lambda_table [[after_epochs, λ], ...]")
        val = lam
        for after, v in sorted((float(a), float(b)) for a, b in table):
            if epoch - 1 >= after:
                val = v
        return val
    raise ConfigError(f"weighting.gair_lambda_schedule must be fixed, linear or piecewise, got {schedule!r}")


def mail_weight(pm: torch.Tensor, gamma: float, bias: float) -> torch.Tensor:
    """MAIL: w = sigmoid(−γ·(PM − β)) (Eq. 8): small or negative margins get large weights."""
    return torch.sigmoid(-gamma * (pm - bias))


def wmmr_weight(margin: torch.Tensor, alpha: float) -> torch.Tensor:
    """WMMR: w = exp(−α·m), m the probabilistic margin on x'."""
    return torch.exp(-alpha * margin)
