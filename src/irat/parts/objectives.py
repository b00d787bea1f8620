"""Outer objectives (docs/methods.md §2): per-example loss terms, the training attack, and where a weight applies.

Each objective is a registered part. `terms` returns a dict of per-example terms so that any weighting
scheme can be applied; `combine` forms the batch loss, multiplying by per-example weights the terms
`weight_targets` names (the place its papers put the weight). `craft` is the objective's training
attack: PGD by default (FAT's early-stopped PGD-K-τ for the FAT variants); plain training, MMA and
squeeze training bring their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from ..attacks.anpgd import an_pgd
from ..attacks.checks import attack_mode
from ..attacks.losses import kl_per_example, soft_logit_margin
from ..attacks.pgd import pgd
from ..attacks.squeeze import pick, rank_by_true_prob, squeeze_pair, symmetric_kl
from ..config import EPOCH_TABLE, Config, set_key
from ..errors import ConfigError
from ..registry import Registry
from ..utils import stepwise_value
from .base import Batch, Part, RunContext, option_fields

OBJECTIVES: Registry[type[Objective]] = Registry("objective", "objective.name")
register_objective = OBJECTIVES.register


def mart_bce(logits_adv: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MART's boosted CE split in its two parts: −log p_y(x') and −log(1 − max_{k≠y} p_k(x')).

    The logs are guarded as in the released code (1.0001 − p + 1e−12), so no NaN can appear.
    """
    p = F.softmax(logits_adv, 1)
    ce = F.cross_entropy(logits_adv, y, reduction="none")
    p_other = p.scatter(1, y[:, None], -1.0).amax(1)
    margin_part = -torch.log(1.0001 - p_other + 1e-12)
    return ce, margin_part


def mma_terms(
    logits_nat: torch.Tensor, logits_mma: torch.Tensor, y: torch.Tensor, counted: torch.Tensor, clean_coeff: float
) -> dict[str, torch.Tensor]:
    """MMA (Ding et al. 2020; released trainer): (1 − c)·L_MMA + c·CE_mean(f(x), y), c = 1/3.

    L_MMA = Σ_i counted_i·CE(f(x̃_i), y_i) / B, where x̃_i is the AN-PGD point for examples the model
    classifies correctly (and counted_i only if its radius is below d_max: the hinge), and x_i itself
    for misclassified ones (always counted: plain CE on them).
    """
    mma = F.cross_entropy(logits_mma, y, reduction="none") * counted.to(logits_mma.dtype)
    return {
        "adv_ce": (1.0 - clean_coeff) * mma,
        "nat_ce": clean_coeff * F.cross_entropy(logits_nat, y, reduction="none"),
    }


def mma_dmax(dmax: float | None, eps: float) -> float:
    """MMA's hinge d_max: the configured value, else 1.5·ε (their MMA-12 at ε = 8/255)."""
    return float(dmax) if dmax is not None else 1.5 * float(eps)


def st_terms(
    logits_nat: torch.Tensor, logits_col: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor, beta: float
) -> dict[str, torch.Tensor]:
    """Squeeze training (Li et al. 2023): CE(f(x), y) + β·symKL(upper, lower), where upper / lower are,
    per example, the point among {x, x_col, x_adv} with the lowest / highest p_y."""
    up, low = rank_by_true_prob([logits_nat.detach(), logits_col.detach(), logits_adv.detach()], y)
    stacked = torch.stack([logits_nat, logits_col, logits_adv])
    return {
        "nat_ce": F.cross_entropy(logits_nat, y, reduction="none"),
        "squeeze": beta * symmetric_kl(pick(stacked, up), pick(stacked, low)),
    }


def _given(t: torch.Tensor | None) -> torch.Tensor:
    """A batch field the objective declared it needs (`needs_natural`, `second_example`, ...), filled by the loop."""
    assert t is not None, "a field this objective needs was not filled in"
    return t


class Objective(Part):
    """A training objective: its attack, its per-example terms, their combination."""

    section = "objective"
    attack_loss: ClassVar[str] = "ce"  # default loss of the training attack (attack.loss overrides)
    attack_start: ClassVar[str] = "uniform"  # default start of the training attack (attack.start overrides)
    needs_natural: ClassVar[bool] = False  # whether f(x) on natural inputs is part of the loss
    weighted_term: ClassVar[str] = "adv_ce"  # its one weighted term, when `roles` is not given
    # the terms that play each role a weighting scheme may weight (`Weighting.weights_role`): "robustness" (the
    # term that buys robustness) and "classification" (the CE that fits the labels); default: weighted_term for both
    roles: ClassVar[dict[str, tuple[str, ...]]] = {}
    runs_attack: ClassVar[bool] = True  # False: trains on natural inputs (no weighting, radius or AWP then)
    own_attack: ClassVar[bool] = False  # brings its own attack (no PGD records, no per-example radius)
    second_example: ClassVar[bool] = False  # trains on a second crafted example (Batch.x_adv2)
    freeze_bn_on_second: ClassVar[bool] = False  # the second example's forward leaves BN statistics alone

    def __init__(self, cfg: Config, ctx: RunContext | None = None):
        self.cfg = cfg
        self.ctx = ctx if ctx is not None else RunContext(cfg)
        self.beta = float(cfg.objective.beta)
        self.options = self.options_for(cfg)

    # -- the training attack ----------------------------------------------------------------------
    def attack_kwargs(self, step: Batch) -> dict[str, Any]:
        """The PGD settings of this step's training attack."""
        kw: dict[str, Any] = dict(
            self.ctx.attack.pgd_kwargs(self.attack_loss, self.attack_start),
            eps=step.eps,
            alpha=step.alpha,
            generator=None,
            noise=step.noise,
            check_inputs=False,
        )
        if step.record_kappa_iterate:
            kw["record_step"] = "kappa"
        return kw

    def craft(self, batch: Batch) -> None:
        """This step's training examples into `batch.x_adv`: PGD (and its records into `batch.info` when a part
        asked for them)."""
        kw = self.attack_kwargs(batch)
        if batch.want_info:
            batch.x_adv, batch.info = pgd(batch.net, batch.x, batch.y, return_info=True, **kw)
        else:
            batch.x_adv = pgd(batch.net, batch.x, batch.y, **kw)

    # -- the loss -----------------------------------------------------------------------------------
    def terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-example loss terms [B] from the batch's logits (`logits_adv`, and `logits_nat`, `logits_adv2`,
        `mask` where the objective uses them)."""
        raise NotImplementedError

    def weight_targets(self, weighting: Any) -> list[str]:
        """Which terms an instance weight multiplies under `weighting` (a Weighting class or instance): those
        playing the role the scheme weights."""
        return list(self.roles.get(weighting.weights_role, (self.weighted_term,)))

    def combine(self, terms: dict[str, torch.Tensor], weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Σ over terms of mean_i(ω_i·term_i); a term absent from `weights` gets ω ≡ 1."""
        weights = weights or {}
        total: Any = 0.0
        for k, v in terms.items():
            w = weights.get(k)
            total = total + (v * w).mean() if w is not None else total + v.mean()
        return total

    # -- the loop's hooks ---------------------------------------------------------------------------
    def end_epoch(self) -> None:
        """After an epoch's last step, before its metrics and checkpoint (e.g. merge state over ranks)."""


@register_objective("standard")
class Standard(Objective):
    """Plain training: CE on natural inputs, no attack (BiLAW Table 1's plain rows, RST's teacher)."""

    attack_start = "none"
    weighted_term = "nat_ce"
    runs_attack = False

    def craft(self, batch: Batch) -> None:
        batch.x_adv = batch.x  # the "adversarial" batch is the batch

    def terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"nat_ce": F.cross_entropy(_given(batch.logits_adv), batch.y, reduction="none")}


@register_objective("at")
class AT(Objective):
    """Madry et al.: CE on PGD examples."""

    def terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"adv_ce": F.cross_entropy(_given(batch.logits_adv), batch.y, reduction="none")}


@register_objective("trades")
class TRADES(Objective):
    """TRADES: CE(f(x), y) + β·KL(p(x) ‖ p(x')), the KL attack from x + 0.001·N(0,I)."""

    attack_loss = "kl"
    attack_start = "normal"
    needs_natural = True
    roles = {"robustness": ("kl",), "classification": ("nat_ce",)}  # GAIR-TRADES: the natural CE (Alg. 5)

    def terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits_nat = _given(batch.logits_nat)
        p_nat = F.softmax(logits_nat, 1)
        kl = kl_per_example(p_nat, _given(batch.logits_adv))
        return {"nat_ce": F.cross_entropy(logits_nat, batch.y, reduction="none"), "kl": self.beta * kl}


@register_objective("mart")
class MART(Objective):
    """MART: boosted CE on x' + β·KL·(1 − p_y(x))."""

    attack_start = "normal"
    needs_natural = True
    roles = {"robustness": ("adv_ce", "bce_margin"), "classification": ("adv_ce",)}  # GAIR-MART: CE part (Eq. 10)

    def terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits_adv, y = _given(batch.logits_adv), batch.y
        p_nat = F.softmax(_given(batch.logits_nat), 1)
        kl = kl_per_example(p_nat, logits_adv)
        ce, margin_part = mart_bce(logits_adv, y)
        p_true = p_nat.gather(1, y[:, None]).squeeze(1)
        return {"adv_ce": ce, "bce_margin": margin_part, "kl": self.beta * kl * (1.0000001 - p_true)}


@dataclass
class FATOptions:
    """FAT's early stopping (`--set objective.fat.KEY=VALUE`; fat-trades and fat-mart read these too)."""

    tau: list = field(default_factory=lambda: [[0, 0]], metadata=EPOCH_TABLE)  # [[from_epoch, τ], ...]
    noise: float = 0.001  # per-step Gaussian noise (released FAT.py; FAT-TRADES/-MART, GAIR-FAT: 0)


class Friendly(Objective):
    """FAT's training attack (docs/methods.md §4): PGD-K-τ, stopped τ steps after an example is misclassified;
    mixed in before an objective (`class FAT(Friendly, AT)`)."""

    Options = FATOptions
    options_key = "fat"

    def attack_kwargs(self, step: Batch) -> dict[str, Any]:
        o = self.options
        tau = int(stepwise_value(o.tau, step.epoch - 1, "objective.fat.tau"))
        return {**super().attack_kwargs(step), "tau": tau, "step_noise": o.noise}


@register_objective("fat")
class FAT(Friendly, AT):
    """FAT: AT on friendly adversarial data from early-stopped PGD-K-τ (docs/methods.md §4)."""


@register_objective("fat-trades")
class FATTrades(Friendly, TRADES):
    """FAT for TRADES: the KL attack early-stopped."""


@register_objective("fat-mart")
class FATMart(Friendly, MART):
    """FAT for MART: the CE attack early-stopped."""


@dataclass
class TradesMixOptions:
    """Where trades-mix's CW attack starts (`--set objective.trades-mix.cw_start=...`)."""

    cw_start: Literal["normal", "uniform", "none"] = "normal"  # normal = x + 0.001·N(0,I) (released GAIR-RST)


@register_objective("trades-mix")
class TradesMix(TRADES):
    """Released GAIR-RST loss: CE + β·mean[w·KL(x, x_kl) + (1 − w)·KL(x, x_cw)], x_cw from a CW attack
    started at x + 0.001·N(0,I) (`pgd_generate(..., category="trades")`; objective.trades-mix.cw_start).

    While no weights apply (burn-in: the released run's plain-TRADES first half, or no weighting) x_cw
    would enter with weight 1 − 1 = 0: as in the released code it is then neither crafted nor forwarded
    (same loss and gradient, one 10-step attack fewer per batch, BN statistics of x and x_kl alone)."""

    Options = TradesMixOptions
    second_example = True
    roles = {"robustness": ("kl",), "classification": ("kl",)}  # w on KL(x, x_kl), 1 − w on KL(x, x_cw)

    @classmethod
    def check(cls, cfg: Config) -> None:
        from .weighting import WEIGHTINGS  # (weighting does not import objectives: no cycle)

        if not WEIGHTINGS.get(cfg.weighting.name).neutral and cfg.weighting.normalization != "none":
            raise ConfigError(
                f"objective trades-mix weighs KL(x, x_kl) by w and KL(x, x_cw) by 1 − w, a mixture only for w in "
                f"[0, 1]; weighting.normalization={cfg.weighting.normalization} rescales w to mean one (some w > 1, "
                f"so 1 − w < 0): set weighting.normalization=none (the released GAIR-RST form)"
            )

    def craft(self, batch: Batch) -> None:
        super().craft(batch)
        if not batch.weights_active:
            return
        start = self.options.cw_start
        kw2 = dict(self.attack_kwargs(batch), loss="cw", start=start, record_step=None, tau=None)
        batch.x_adv2 = pgd(batch.net, batch.x, batch.y, **kw2)

    def terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        terms = super().terms(batch)
        if batch.logits_adv2 is not None:  # None while no weights apply: plain TRADES
            terms["kl_cw"] = self.beta * kl_per_example(F.softmax(_given(batch.logits_nat), 1), batch.logits_adv2)
        return terms

    def combine(self, terms, weights=None):
        """w on KL(x, x_kl), 1 − w on KL(x, x_cw); ω ≡ 1 gives TRADES."""
        weights = dict(weights or {})
        if "kl_cw" in terms:
            weights["kl_cw"] = 1.0 - weights.get("kl", torch.ones_like(terms["kl"]))
        return super().combine(terms, weights)


@dataclass
class MMAOptions:
    """MMA's hinge and AN-PGD's search (`--set objective.mma.KEY=VALUE`; released trainer's defaults)."""

    dmax: float | None = None  # the hinge d_max; None: 1.5·attack.eps (MMA-12 at ε = 8/255)
    min_eps: float = 0.005  # smallest starting radius of AN-PGD (released CIFAR-10 ℓ∞; MNIST: 0.1)
    clean_coeff: float = 1 / 3  # share of the clean CE in MMA's loss
    search_steps: int = 10  # bisection steps of AN-PGD
    step_scale: float = 2.5  # AN-PGD step = scale·ε_i/K


@register_objective("mma")
class MMA(Objective):
    """MMA (Ding et al. 2020): CE at each example's shortest successful perturbation, found by AN-PGD and
    bisection from its last radius (kept per example across epochs and resume)."""

    attack_loss = "slm"
    needs_natural = True
    own_attack = True
    Options = MMAOptions

    def __init__(self, cfg: Config, ctx: RunContext | None = None):
        super().__init__(cfg, ctx)
        self.clean_coeff = float(self.options.clean_coeff)
        self.radii: torch.Tensor | None = None  # every training example's last radius, by example index
        self._touched: torch.Tensor | None = None  # examples this rank updated this epoch (torchrun)

    @classmethod
    def check(cls, cfg: Config) -> None:
        o = cls.options_for(cfg)
        if o.dmax is not None and not o.dmax > 0:
            raise ConfigError(f"objective.mma.dmax must be a number > 0, got {o.dmax!r}")
        if not o.min_eps > 0:
            raise ConfigError(f"objective.mma.min_eps must be a number > 0, got {o.min_eps!r}")
        d_max = mma_dmax(o.dmax, cfg.attack.eps)
        if o.min_eps >= 1.05 * d_max:
            raise ConfigError(
                f"objective.mma.min_eps ({o.min_eps:g}) must be below the attack's largest radius "
                f"1.05·d_max ({1.05 * d_max:g})"
            )
        if not 0 <= o.clean_coeff <= 1:
            raise ConfigError(f"objective.mma.clean_coeff must lie in [0, 1], got {o.clean_coeff!r}")
        if o.search_steps < 1:
            raise ConfigError(f"objective.mma.search_steps must be a whole number >= 1, got {o.search_steps!r}")
        if not o.step_scale > 0:
            raise ConfigError(f"objective.mma.step_scale must be a number > 0, got {o.step_scale!r}")

    def prepare(self, n_index: int) -> None:
        """Room for the radii of examples with indices < n_index."""
        self.radii = torch.zeros(n_index, device=self.ctx.device)
        self._touched = torch.zeros(n_index, dtype=torch.bool, device=self.ctx.device)

    def craft(self, batch: Batch) -> None:
        """MMA's training points (released trainer): AN-PGD from each example's last radius for the examples
        classified correctly (soft logit margin < 0), the clean input for the rest (radius 0). The mask
        counts the misclassified examples and those whose radius is below d_max (the hinge)."""
        assert self.radii is not None and self._touched is not None
        a, o = self.ctx.attack, self.options
        net, x, y, idx = batch.net, batch.x, batch.y, batch.idx
        d_max = mma_dmax(o.dmax, a.eps)
        with torch.no_grad(), attack_mode(net, "eval"):
            correct = soft_logit_margin(net(x), y) < 0
        prev = self.radii[idx].clamp_min(o.min_eps)
        x_an, r = an_pgd(
            net,
            x,
            y,
            prev,
            max_eps=1.05 * d_max,
            steps=a.steps,
            search_steps=o.search_steps,
            step_scale=o.step_scale,
            norm=a.norm,
            loss=a.loss or "slm",
            start=a.start or "uniform",
            noise=batch.noise,
        )
        r = torch.where(correct, r, torch.zeros_like(r))
        self.radii[idx] = r
        if self.ctx.distributed:
            self._touched[idx] = True
        batch.x_adv = torch.where(correct.reshape(-1, *([1] * (x.dim() - 1))), x_an, x)
        batch.mask, batch.eps = ~correct | (r < d_max), r  # the hinge; the radii this attack chose

    def terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits_nat, logits_adv, mask = _given(batch.logits_nat), _given(batch.logits_adv), _given(batch.mask)
        return mma_terms(logits_nat, logits_adv, batch.y, mask, self.clean_coeff)

    def end_epoch(self) -> None:
        """Each rank updated the radii of its own examples: every rank now gets all of them."""
        if not self.ctx.distributed or self.radii is None or self._touched is None:
            return
        radii, touched = self.radii, self._touched
        vals = self.ctx.global_sum(torch.where(touched, radii, torch.zeros_like(radii)))
        count = self.ctx.global_sum(touched.to(radii.dtype))
        self.radii = torch.where(count > 0, vals / count.clamp_min(1), radii)
        touched.zero_()

    def state_dict(self) -> dict[str, Any]:
        return {"mma_eps": self.radii.clone()} if self.radii is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.radii is not None and "mma_eps" in state:
            self.radii.copy_(state["mma_eps"].to(self.radii.device))


@register_objective("st")
class SqueezeTraining(Objective):
    """Squeeze training (Li et al. 2023): CE(f(x), y) + β·symKL(upper, lower) of {x, x_col, x_adv}, the
    adversarial and collaborative examples found jointly."""

    attack_loss = "kl"
    attack_start = "normal"
    needs_natural = True
    weighted_term = "squeeze"
    own_attack = True
    second_example = True
    freeze_bn_on_second = True  # the collaborative example leaves BN's running statistics alone (released code)

    def craft(self, batch: Batch) -> None:
        a = self.ctx.attack
        batch.x_adv, batch.x_adv2 = squeeze_pair(
            batch.net,
            batch.x,
            batch.y,
            eps=batch.eps,
            alpha=batch.alpha,
            steps=a.steps,
            norm=a.norm,
            bn_mode=a.bn_mode,
            noise=batch.noise,
        )

    def terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits_nat, logits_col, logits_adv = (
            _given(batch.logits_nat),
            _given(batch.logits_adv2),
            _given(batch.logits_adv),
        )
        return st_terms(logits_nat, logits_col, logits_adv, batch.y, self.beta)


def make_objective(name: str, beta: float = 6.0, clean_coeff: float = 1 / 3, cfg: Config | None = None) -> Objective:
    """An objective by name (for tests and scripts; the trainer builds its own from the config)."""
    cls = OBJECTIVES.get(name)
    cfg = Config() if cfg is None else cfg
    cfg.objective.name, cfg.objective.beta = name, float(beta)
    if "clean_coeff" in option_fields(cls):
        set_key(cfg, f"objective.{cls.options_key or cls.name}.clean_coeff", float(clean_coeff))
    return cls(cfg)
