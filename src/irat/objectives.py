"""Outer objectives (METHODS §2): per-example loss terms, and where an instance weight applies.

Each objective returns a dict of per-example terms so that any weighting scheme can be applied;
`combine` forms the batch loss, multiplying by per-example weights the terms named in `weights`
(the objective's `weighted_term` by default: the place its papers put the weight).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .attacks.losses import kl_per_example
from .attacks.squeeze import pick, rank_by_true_prob, symmetric_kl
from .errors import ConfigError


def mart_bce(logits_adv: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MART's boosted CE split in its two parts: −log p_y(x') and −log(1 − max_{k≠y} p_k(x')).

    The logs are guarded as in the released code (1.0001 − p + 1e−12), so no NaN can appear.
    """
    p = F.softmax(logits_adv, 1)
    ce = F.cross_entropy(logits_adv, y, reduction="none")
    p_other = p.scatter(1, y[:, None], -1.0).amax(1)
    margin_part = -torch.log(1.0001 - p_other + 1e-12)
    return ce, margin_part


def base_objective(name: str) -> str:
    """The loss a FAT variant trains on friendly data: fat → at, fat-trades → trades, fat-mart → mart."""
    return "at" if name == "fat" else name.removeprefix("fat-")


@dataclass
class Objective:
    """A training objective. `terms` are per-example; `combine` makes the batch loss."""
    name: str
    attack_loss: str          # default loss of the training attack
    attack_start: str         # default start of the training attack
    needs_natural: bool       # whether f(x) on natural inputs is part of the loss
    weighted_term: str        # where the papers put an instance weight by default
    beta: float = 6.0
    early_stop: bool = False  # FAT: friendly adversarial data from PGD-K-τ
    second_attack: str | None = None  # trades-mix: a second adversarial example from this attack loss
    clean_coeff: float = 1 / 3        # mma: share of the clean CE in the loss

    def terms(self, logits_nat: torch.Tensor | None, logits_adv: torch.Tensor, y: torch.Tensor,
              logits_adv2: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-example loss terms. logits_adv2: trades-mix's CW example, or ST-AT's collaborative one.
        mask (mma): the examples whose MMA term counts (see `mma_terms`)."""
        if self.name == "mma":
            assert logits_nat is not None and mask is not None
            return mma_terms(logits_nat, logits_adv, y, mask, self.clean_coeff)
        if self.name == "st":
            assert logits_nat is not None and logits_adv2 is not None
            return st_terms(logits_nat, logits_adv2, logits_adv, y, self.beta)
        if self.name == "trades-mix":
            assert logits_nat is not None and logits_adv2 is not None
            p_nat = F.softmax(logits_nat, 1)
            return {"nat_ce": F.cross_entropy(logits_nat, y, reduction="none"),
                    "kl": self.beta * kl_per_example(p_nat, logits_adv),
                    "kl_cw": self.beta * kl_per_example(p_nat, logits_adv2)}
        if self.name == "standard":   # plain training: logits_adv are the natural logits (no attack is run)
            return {"nat_ce": F.cross_entropy(logits_adv, y, reduction="none")}
        base = base_objective(self.name)
        if base == "at":
            return {"adv_ce": F.cross_entropy(logits_adv, y, reduction="none")}
        assert logits_nat is not None
        p_nat = F.softmax(logits_nat, 1)
        kl = kl_per_example(p_nat, logits_adv)
        if base == "trades":
            return {"nat_ce": F.cross_entropy(logits_nat, y, reduction="none"), "kl": self.beta * kl}
        ce, margin_part = mart_bce(logits_adv, y)
        p_true = p_nat.gather(1, y[:, None]).squeeze(1)
        return {"adv_ce": ce, "bce_margin": margin_part, "kl": self.beta * kl * (1.0000001 - p_true)}

    def combine(self, terms: dict[str, torch.Tensor], weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Σ over terms of mean_i(ω_i·term_i); a term absent from `weights` gets ω ≡ 1."""
        weights = dict(weights or {})
        if "kl_cw" in terms:  # trades-mix: w on KL(x, x_kl), 1 − w on KL(x, x_cw); ω ≡ 1 gives TRADES
            weights["kl_cw"] = 1.0 - weights.get("kl", torch.ones_like(terms["kl"]))
        total = 0.0
        for k, v in terms.items():
            w = weights.get(k)
            total = total + (v * w).mean() if w is not None else total + v.mean()
        return total  # type: ignore[return-value]

    def per_example(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(terms.values())).sum(0)


def mma_terms(logits_nat: torch.Tensor, logits_mma: torch.Tensor, y: torch.Tensor, counted: torch.Tensor,
              clean_coeff: float) -> dict[str, torch.Tensor]:
    """MMA (Ding et al. 2020; released trainer): (1 − c)·L_MMA + c·CE_mean(f(x), y), c = 1/3.

    L_MMA = Σ_i counted_i·CE(f(x̃_i), y_i) / B, where x̃_i is the AN-PGD point for examples the model
    classifies correctly (and counted_i only if its radius is below d_max: the hinge), and x_i itself
    for misclassified ones (always counted: plain CE on them).
    """
    mma = F.cross_entropy(logits_mma, y, reduction="none") * counted.to(logits_mma.dtype)
    return {"adv_ce": (1.0 - clean_coeff) * mma, "nat_ce": clean_coeff * F.cross_entropy(logits_nat, y, reduction="none")}


def mma_dmax(dmax: float | None, eps: float) -> float:
    """MMA's hinge d_max: the configured value, else 1.5·ε (their MMA-12 at ε = 8/255)."""
    return float(dmax) if dmax is not None else 1.5 * float(eps)


def st_terms(logits_nat: torch.Tensor, logits_col: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
             beta: float) -> dict[str, torch.Tensor]:
    """Squeeze training (Li et al. 2023): CE(f(x), y) + β·symKL(upper, lower), where upper / lower are,
    per example, the point among {x, x_col, x_adv} with the lowest / highest p_y."""
    up, low = rank_by_true_prob([logits_nat.detach(), logits_col.detach(), logits_adv.detach()], y)
    stacked = torch.stack([logits_nat, logits_col, logits_adv])
    return {"nat_ce": F.cross_entropy(logits_nat, y, reduction="none"),
            "squeeze": beta * symmetric_kl(pick(stacked, up), pick(stacked, low))}


_SPECS = {
    # name: (attack loss, start, needs natural forward, default weighted term)
    "standard": ("ce", "none", False, "nat_ce"),   # no attack: CE on natural inputs
    "at": ("ce", "uniform", False, "adv_ce"),
    "trades": ("kl", "normal", True, "kl"),
    "mart": ("ce", "normal", True, "adv_ce"),
    "fat": ("ce", "uniform", False, "adv_ce"),
    "fat-trades": ("kl", "normal", True, "kl"),
    "fat-mart": ("ce", "normal", True, "adv_ce"),
    # released GAIR-RST loss: CE + β·mean[w·KL(x, x_kl) + (1 − w)·KL(x, x_cw)], x_cw from a CW attack
    "trades-mix": ("kl", "normal", True, "kl"),
    # MMA: AN-PGD on the soft logit margin (own attack: per-example radius by bisection)
    "mma": ("slm", "uniform", True, "adv_ce"),
    # squeeze training: joint adversarial / collaborative search on the symmetric KL (own attack)
    "st": ("kl", "normal", True, "squeeze"),
}
OBJECTIVES = tuple(_SPECS)


def make_objective(name: str, beta: float = 6.0, clean_coeff: float = 1 / 3) -> Objective:
    if name not in _SPECS:
        raise ConfigError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
    loss, start, nat, term = _SPECS[name]
    return Objective(name, loss, start, nat, term, beta=float(beta), early_stop=name.startswith("fat"),
                     second_attack="cw" if name == "trades-mix" else None, clean_coeff=float(clean_coeff))


def weight_targets(objective: str, scheme: str) -> list[str]:
    """Where an instance weight applies — each paper's rule (METHODS §3):

    AT, FAT, MMA: the adversarial CE. ST-AT: the squeeze regulariser (as TRADES' KL). TRADES: the natural CE under GAIR (GAIR-TRADES, Alg. 5), the KL
    term under MAIL, WMMR and BiLAW. MART: only the CE part of BCE under GAIR (GAIR-MART, Eq. 10),
    all of BCE under MAIL and the others.
    """
    base = base_objective(objective)
    if base == "standard":
        return ["nat_ce"]
    if base == "st":
        return ["squeeze"]
    if base in ("at", "mma"):
        return ["adv_ce"]
    if base == "trades-mix":
        return ["kl"]
    if base == "trades":
        return ["nat_ce"] if scheme == "gair" else ["kl"]
    if base == "mart":
        return ["adv_ce"] if scheme == "gair" else ["adv_ce", "bce_margin"]
    raise ConfigError(f"unknown objective {objective!r}")
