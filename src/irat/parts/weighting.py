"""Instance-weighting schemes (docs/methods.md §3) as registered parts: GAIR, MAIL, WMMR (BiLAW in bilaw.py).

A scheme turns per-example geometry (κ, margins) into raw weights w_i ≥ 0 (`Weighting.raw`), after its
burn-in; `normalize` turns those into the ω_i that multiply per-example loss terms, with the batch loss
a mean over the *global* batch. `mean-one` (ω = B·w/Σw) and `sum-one` (ω = w/Σw with a summed loss)
give the same loss, so both are expressed on the mean scale here. Σ runs over the global batch
through the run's `global_sum` (an all-reduce under torchrun, passed in, never patched in).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn as nn

from ..attacks.checks import attack_mode
from ..config import EPOCH_TABLE, Config
from ..data import DeviceData
from ..errors import ConfigError
from ..margins import logit_margin, pm_dif, probabilistic_margin
from ..registry import Registry
from .base import Batch, Part, RunContext

NORMALIZATIONS = ("mean-one", "sum-one", "constant", "none")
GairFunction = Literal["tanh", "sigmoid", "linear", "tanh-rst"]
MailMargin = Literal["pm-adv", "pm-nat", "pm-dif", "logit-adv", "logit-nat"]
NEEDS = {  # what a weighting scheme may need from the training attack (`Weighting.needs`)
    "pgd-info": "the PGD attack's records (κ, PGDInfo) in `batch.info`",
    "kappa-iterate": "also the iterate at κ (PGDInfo.x_at_step)",
    "pgd-examples": "PGD adversarial examples of the threat model (a look-ahead over the objective's terms)",
}


def _identity_sum(t: torch.Tensor) -> torch.Tensor:
    return t


def normalize(
    w: torch.Tensor,
    mode: str = "mean-one",
    constant: float = 1.0,
    global_sum: Callable[[torch.Tensor], torch.Tensor] = _identity_sum,
) -> torch.Tensor:
    """ω from raw weights w: mean-one / sum-one → B·w/Σw (global B and Σ, through `global_sum`);
    constant → c·w; none → w."""
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

    tanh: ½(1 + tanh(λ + 5(1 − 2κ/K)));  sigmoid: σ(λ + 5(1 − 2κ/K));  linear: 1 − κ/(K+1);
    tanh-rst: ½(1 + tanh(λ + K/2 − κ)), the released GAIR-RST code's form (losses.py), equal to Eq. 6 only
    for K = 10 (for other K its slope in κ is 1 instead of 10/K).
    λ = +∞ gives ω ≡ 1 (standard AT). The released code writes ⌊K/2⌋ for K/2: identical for even K.
    """
    k = kappa.to(torch.get_default_dtype())
    if fn == "linear":
        return 1.0 - k / (steps + 1)
    if math.isinf(lam) and lam > 0:
        return torch.ones_like(k)
    if fn == "tanh-rst":
        return torch.sigmoid(2.0 * (lam + steps / 2 - k))
    arg = lam + 5.0 * (1.0 - 2.0 * k / steps)
    if fn == "tanh":
        return torch.sigmoid(2.0 * arg)  # = ½(1 + tanh(arg)) exactly, without float32 cancellation near 0
    if fn == "sigmoid":
        return torch.sigmoid(arg)
    raise ConfigError(f"weighting.gair.fn must be one of {', '.join(typing.get_args(GairFunction))}, got {fn!r}")


def gair_lambda(
    schedule: str, epoch: int, epochs: int, burn_in: int, lam: float, lam_end: float | None, table: list | None
) -> float:
    """λ at a (1-based) epoch after burn-in: fixed; linear from `lam` to `lam_end` over the remaining
    epochs; piecewise from a [[after_epochs, λ], ...] table. (The released `linear` gives NaN with
    λ_max = ∞ and its `piecewise` only ever reaches its first branch; these are the corrected forms.)"""
    if schedule == "fixed":
        return lam
    if schedule == "linear":
        if lam_end is None:
            raise ConfigError("weighting.gair.lam_schedule=linear needs weighting.gair.lam_end")
        if math.isinf(lam) or math.isinf(lam_end):
            return lam_end if epoch >= epochs else lam
        span = max(epochs - burn_in, 1)
        frac = min(max((epoch - burn_in - 1) / max(span - 1, 1), 0.0), 1.0)
        return lam + (lam_end - lam) * frac
    if schedule == "piecewise":
        if not table:
            raise ConfigError(
                "weighting.gair.lam_schedule=piecewise needs weighting.gair.lam_table [[after_epochs, λ], ...]"
            )
        val = lam
        for after, v in sorted((float(a), float(b)) for a, b in table):
            if epoch - 1 >= after:
                val = v
        return val
    raise ConfigError(f"weighting.gair.lam_schedule must be fixed, linear or piecewise, got {schedule!r}")


def mail_weight(pm: torch.Tensor, gamma: float, bias: float) -> torch.Tensor:
    """MAIL: w = sigmoid(−γ·(PM − β)) (Eq. 8): small or negative margins get large weights."""
    return torch.sigmoid(-gamma * (pm - bias))


def wmmr_weight(margin: torch.Tensor, alpha: float) -> torch.Tensor:
    """WMMR: w = exp(−α·m), m the probabilistic margin on x'."""
    return torch.exp(-alpha * margin)


WEIGHTINGS: Registry[type[Weighting]] = Registry("weighting scheme", "weighting.name")
register_weighting = WEIGHTINGS.register


@torch.no_grad()
def natural_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """f(x) in eval mode, without gradient."""
    with attack_mode(model, "eval"):
        return model(x)


class Weighting(Part):
    """An instance-weighting scheme. Subclasses implement `raw` (weights from this step's geometry) or,
    for learned schemes, `before_loss` (weights computed before the loss, e.g. by a look-ahead).

    Declarations the loop reads:
    - needs(cfg): what the scheme needs from the objective's PGD attack (`NEEDS`), in one place;
    - weights_role: which role of the objective's loss terms the weight multiplies (`Objective.roles`):
      "robustness" (the term that buys robustness: AT's CE, TRADES' KL, MART's BCE — MAIL, WMMR, BiLAW) or
      "classification" (the CE that fits the labels: TRADES' natural CE, MART's CE part — GAIRAT's rule);
    - reports_pm_adv: the epoch's PM-adv distribution goes to metrics.jsonl;
    - learned: the weights come from `before_loss` (a look-ahead over the objective's terms).
    """

    section = "weighting"
    weights_role: ClassVar[str] = "robustness"
    reports_pm_adv: ClassVar[bool] = False
    learned: ClassVar[bool] = False

    def __init__(self, cfg: Config, ctx: RunContext | None = None):
        self.cfg = cfg
        self.ctx = ctx if ctx is not None else RunContext(cfg)
        self.w = cfg.weighting
        self.options = self.options_for(cfg)

    @classmethod
    def needs(cls, cfg: Config) -> frozenset[str]:
        """What this scheme needs from the training attack (`NEEDS`): none by default. (A plug-in written for
        an earlier release that sets `needs_kappa = True` still gets the records.)"""
        return frozenset({"pgd-info"}) if getattr(cls, "needs_kappa", False) else frozenset()

    @classmethod
    def idle_reason(cls, cfg: Config) -> str | None:
        if cfg.weighting.burn_in >= cfg.epochs:
            return (
                f"weighting {cls.name}: the burn-in ({cfg.weighting.burn_in} epochs) covers the whole run of "
                f"{cfg.epochs}: every weight stays 1 and the run trains the plain objective"
            )
        return None

    def active(self, epoch: int) -> bool:
        """Weights apply after the burn-in (ω ≡ 1 before)."""
        return epoch > self.w.burn_in

    def raw(self, batch: Batch) -> torch.Tensor:
        """Un-normalised weights w_i ≥ 0 [B] from this step's forward (`batch.logits_adv`, `logits_nat`,
        `forward`) and the attack's records (`batch.info`, when `needs` asked for them)."""
        raise NotImplementedError(f"weighting {self.name!r} defines no raw weights")

    def before_loss(self, batch: Batch, loss: Callable[[Any, torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
        """Raw weights computed before the loss (learned schemes); None: `raw` is used in the loss. `loss(forward,
        scale)` is the run's training loss of this batch under another forward (e.g. a look-ahead θ̃) with the
        weights `scale` on the terms the scheme weights (`Parts.loss`)."""
        return None

    def normalize(self, w_raw: torch.Tensor) -> torch.Tensor:
        return normalize(w_raw, self.w.normalization, self.w.constant, self.ctx.global_sum)

    def split_data(self, train: DeviceData) -> DeviceData:
        """The training set this scheme leaves for training (BiLAW takes its validation set from it)."""
        return train

    def new_epoch(self) -> None:
        """Before an epoch's first step."""


@register_weighting("none")
class NoWeighting(Weighting):
    """ω ≡ 1: the objective as its paper states it."""

    neutral = True

    @classmethod
    def idle_reason(cls, cfg: Config) -> str | None:
        return None

    def active(self, epoch: int) -> bool:
        return False


@dataclass
class GAIROptions:
    """GAIRAT's weight function and its λ (`--set weighting.gair.KEY=VALUE`)."""

    fn: GairFunction = "tanh"  # tanh (Eq. 6), sigmoid (Eq. 8), linear (Eq. 7); tanh-rst: the released GAIR-RST form
    lam: float = -1.0  # λ; .inf recovers AT
    lam_schedule: Literal["fixed", "linear", "piecewise"] = "fixed"
    lam_end: float | None = None  # λ at the last epoch (linear)
    lam_table: list | None = field(default=None, metadata=EPOCH_TABLE)  # [[after_epochs, λ], ...] (piecewise)


@register_weighting("gair")
class GAIR(Weighting):
    """GAIRAT: ω from the geometry value κ of the training attack (Eqs. 6-8), with a λ schedule."""

    Options = GAIROptions
    weights_role = "classification"  # GAIR-TRADES' natural CE (Alg. 5), GAIR-MART's CE part (Eq. 10)

    @classmethod
    def needs(cls, cfg: Config) -> frozenset[str]:
        return frozenset({"pgd-info"})  # κ

    def lam(self, epoch: int) -> float:
        o = self.options
        return gair_lambda(o.lam_schedule, epoch, self.cfg.epochs, self.w.burn_in, o.lam, o.lam_end, o.lam_table)

    def raw(self, batch: Batch) -> torch.Tensor:
        info = batch.info
        assert info is not None
        return gair_weight(info.kappa, info.steps, self.lam(batch.epoch), self.options.fn)


@dataclass
class MAILOptions:
    """MAIL's margin and the slope and bias of its sigmoid (`--set weighting.mail.KEY=VALUE`)."""

    margin: MailMargin = "pm-adv"  # PM on x' (the method), on x, their difference (Table 4); logit margins
    gamma: float = 10.0  # slope γ
    bias: float = 0.0  # bias β


@register_weighting("mail")
class MAIL(Weighting):
    """MAIL: ω = sigmoid(−γ(PM − β)) (Eq. 8) on a probabilistic (or logit) margin."""

    Options = MAILOptions
    reports_pm_adv = True

    @classmethod
    def needs(cls, cfg: Config) -> frozenset[str]:
        return frozenset({"pgd-info", "kappa-iterate"}) if cls.options_for(cfg).margin == "pm-dif" else frozenset()

    def raw(self, batch: Batch) -> torch.Tensor:
        o = self.options
        return mail_weight(self.margin(batch), o.gamma, o.bias)

    @torch.no_grad()
    def margin(self, batch: Batch) -> torch.Tensor:
        """MAIL's margin. PM-adv reuses the training forward's adversarial logits (as the released code)."""
        kind, y, info, model = self.options.margin, batch.y, batch.info, batch.forward
        assert batch.logits_adv is not None
        if kind in ("pm-adv", "logit-adv"):
            fn = probabilistic_margin if kind == "pm-adv" else logit_margin
            return fn(batch.logits_adv.detach(), y)
        nat = batch.logits_nat.detach() if batch.logits_nat is not None else natural_logits(model, batch.x)
        if kind == "pm-nat":
            return probabilistic_margin(nat, y)
        if kind == "logit-nat":
            return logit_margin(nat, y)
        assert info is not None and info.x_at_step is not None
        with attack_mode(model, "eval"):
            at_step = model(info.x_at_step)
        return pm_dif(nat, at_step, y)


@dataclass
class WMMROptions:
    """WMMR's weight exp(−α·m) (`--set weighting.wmmr.KEY=VALUE`)."""

    alpha: float = 0.5
    detach: bool = True  # the released WMMR code does not detach (False)


@register_weighting("wmmr")
class WMMR(Weighting):
    """WMMR: ω = exp(−α·m), m the probabilistic margin on x' (undetached in the released code)."""

    Options = WMMROptions
    reports_pm_adv = True

    def raw(self, batch: Batch) -> torch.Tensor:
        o, logits_adv = self.options, batch.logits_adv
        assert logits_adv is not None
        m = probabilistic_margin(logits_adv if not o.detach else logits_adv.detach(), batch.y)
        return wmmr_weight(m, o.alpha)
