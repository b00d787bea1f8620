"""An evaluation attack: FGSM (Goodfellow et al. 2015), one signed-gradient step of size ε."""

from __future__ import annotations

import torch

import irat


def fgsm(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    loss: str = "ce",
    generator: torch.Generator | None = None,
    check_inputs: bool = True,
) -> torch.Tensor:
    """x + ε·sign(∇ₓ loss), clipped to [0, 1] (ℓ2: a step of length ε along the gradient)."""
    return irat.attacks.pgd(
        model,
        x,
        y,
        eps=eps,
        alpha=eps,
        steps=1,
        norm=norm,
        loss=loss,
        start="none",
        generator=generator,
        check_inputs=check_inputs,
    )


# options a user may set (`fgsm:loss=cw`); their defaults are read from fgsm's signature
irat.register_attack(irat.EvalAttack("fgsm", fgsm, ("loss",), summary="FGSM: one step of size eps"))
