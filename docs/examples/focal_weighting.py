"""A weighting scheme: ω = (1 − p_y(x'))^γ, more weight on adversarial examples the model gets wrong."""

from __future__ import annotations

from dataclasses import dataclass

import irat


@irat.register_weighting("focal-margin")
class FocalMargin(irat.Weighting):
    """ω = (1 − p_y(x'))^γ on the adversarial example (a focal-loss-style weight)."""

    reports_pm_adv = True  # also log the PM-adv distribution each epoch

    @dataclass
    class Options:  # --set weighting.focal-margin.gamma=3
        gamma: float = 2.0

    @classmethod
    def check(cls, cfg):  # before any work: one clear message
        if cls.options_for(cfg).gamma < 0:
            raise irat.IratError("weighting.focal-margin.gamma must be >= 0")

    def raw(self, batch):  # the batch as the loop filled it: inputs, crafted examples, logits
        p_true = batch.logits_adv.detach().softmax(1).gather(1, batch.y[:, None]).squeeze(1)
        return (1.0 - p_true) ** self.options.gamma
