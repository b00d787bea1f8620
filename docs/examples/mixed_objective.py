"""An objective: Goodfellow et al.'s mixed adversarial training, (1 − c)·CE(f(x), y) + c·CE(f(x'), y)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

import irat


@irat.register_objective("mixed-at")
class MixedAT(irat.Objective):
    """(1 − c)·CE on natural inputs + c·CE on PGD examples (Goodfellow et al. 2015, Eq. 6 with PGD)."""

    needs_natural = True  # the loss uses f(x): the loop computes it (batch.logits_nat)
    roles = {"robustness": ("adv_ce",), "classification": ("nat_ce",)}  # which term each kind of scheme weights
    attack_loss = "ce"  # the training attack (PGD, from Objective.craft)
    attack_start = "uniform"

    @dataclass
    class Options:  # --set objective.mixed-at.c=0.7
        c: float = 0.5

    def terms(self, batch):  # per-example terms [B] from the batch's logits
        c = self.options.c
        return {
            "nat_ce": (1 - c) * F.cross_entropy(batch.logits_nat, batch.y, reduction="none"),
            "adv_ce": c * F.cross_entropy(batch.logits_adv, batch.y, reduction="none"),
        }
