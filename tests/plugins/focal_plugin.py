"""A plug-in as a researcher writes it: one weighting scheme and one evaluation attack, in one file."""

from __future__ import annotations

from dataclasses import dataclass

import torch

import irat


@irat.register_weighting("focal-margin")
class FocalMargin(irat.Weighting):
    """ω = (1 − p_y(x'))^γ: more weight on adversarial examples the model gets wrong."""

    reports_pm_adv = True

    @dataclass
    class Options:
        gamma: float = 2.0

    def raw(self, model, *, info, x, y, logits_adv, logits_nat, epoch):
        p_true = logits_adv.detach().softmax(1).gather(1, y[:, None]).squeeze(1)
        return (1.0 - p_true) ** self.options.gamma


def half_step_pgd(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 5,
    generator: torch.Generator | None = None,
    check_inputs: bool = True,
) -> torch.Tensor:
    """PGD with step ε/2 and a uniform start."""
    return irat.attacks.pgd(
        model, x, y, eps=eps, alpha=eps / 2, steps=steps, norm=norm, generator=generator, check_inputs=check_inputs
    )


irat.register_attack(irat.EvalAttack("pgd-half", half_step_pgd, ("steps",), summary="PGD with step eps/2"))
