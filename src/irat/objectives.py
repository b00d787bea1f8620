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

    def terms(self, logits_nat: torch.Tensor | None, logits_adv: torch.Tensor, y: torch.Tensor,
              logits_adv2: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
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
}
OBJECTIVES = tuple(_SPECS)


def make_objective(name: str, beta: float = 6.0) -> Objective:
    if name not in _SPECS:
        raise ConfigError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
    loss, start, nat, term = _SPECS[name]
    return Objective(name, loss, start, nat, term, beta=float(beta), early_stop=name.startswith("fat"),
                     second_attack="cw" if name == "trades-mix" else None)


def weight_targets(objective: str, scheme: str) -> list[str]:
    """Where an instance weight applies — each paper's rule (METHODS §3):

    AT, FAT: the adversarial CE. TRADES: the natural CE under GAIR (GAIR-TRADES, Alg. 5), the KL
    term under MAIL, WMMR and BiLAW. MART: only the CE part of BCE under GAIR (GAIR-MART, Eq. 10),
    all of BCE under MAIL and the others.
    """
    base = base_objective(objective)
    if base == "standard":
        return ["nat_ce"]
    if base == "at":
        return ["adv_ce"]
    if base == "trades-mix":
        return ["kl"]
    if base == "trades":
        return ["nat_ce"] if scheme == "gair" else ["kl"]
    if base == "mart":
        return ["adv_ce"] if scheme == "gair" else ["adv_ce", "bce_margin"]
    raise ConfigError(f"unknown objective {objective!r}")
