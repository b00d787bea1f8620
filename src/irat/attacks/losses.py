"""Per-example attack losses (to be maximised): ce, kl (TRADES), cw (margin, κ=50), dlr (docs/methods.md §1),
slm (MMA's soft logit margin)."""

from __future__ import annotations

import typing

import torch
import torch.nn.functional as F

from ..config import AttackLoss
from ..errors import IratError
from ..margins import true_and_other

ATTACK_LOSSES: tuple[str, ...] = typing.get_args(AttackLoss)


def cw_loss(logits: torch.Tensor, y: torch.Tensor, confidence: float = 50.0) -> torch.Tensor:
    """−relu(z_y − max_{j≠y} z_j + κ): the CW margin loss the released evaluation scripts use."""
    z_y, other = true_and_other(logits, y)
    return -F.relu(z_y - other + confidence)


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein 2020): −(z_y − max_{j≠y} z_j)/(z_π1 − z_π3)."""
    if logits.shape[1] < 3:
        raise IratError("the DLR loss needs at least 3 classes")
    srt = logits.sort(1, descending=True).values
    z_y, other = true_and_other(logits, y)
    return -(z_y - other) / (srt[:, 0] - srt[:, 2] + 1e-12)


def soft_logit_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log Σ_{j≠y} exp(z_j) − z_y: MMA's soft logit margin loss (advertorch's SLM; Ding et al. 2020).

    Negative exactly when the true logit beats the soft maximum of the others (a slightly stricter
    test than argmax); MMA attacks with it and decides with it which examples count as correct.
    """
    others = logits.scatter(1, y[:, None].long(), float("-inf"))
    return torch.logsumexp(others, 1) - logits.gather(1, y[:, None].long()).squeeze(1)


def kl_per_example(p_nat: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """KL(p(x) ‖ p(x')) per example — the TRADES direction, natural distribution as the target."""
    log_p_nat = torch.log(p_nat.clamp_min(1e-30))
    return (p_nat * (log_p_nat - F.log_softmax(logits_adv, 1))).sum(1)


def attack_loss(
    name: str, logits: torch.Tensor, y: torch.Tensor, p_nat: torch.Tensor | None = None, cw_confidence: float = 50.0
) -> torch.Tensor:
    if name == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if name == "kl":
        assert p_nat is not None
        return kl_per_example(p_nat, logits)
    if name == "cw":
        return cw_loss(logits, y, cw_confidence)
    if name == "dlr":
        return dlr_loss(logits, y)
    if name == "slm":
        return soft_logit_margin(logits, y)
    raise IratError(f"unknown attack loss {name!r}; known: {', '.join(ATTACK_LOSSES)}")
