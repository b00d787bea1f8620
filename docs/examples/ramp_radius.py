"""A radius scheme: ε grows linearly from a fraction of the threat model's ε to all of it (an ε warm-up)."""

from __future__ import annotations

from dataclasses import dataclass, field

import irat


@irat.register_radius("eps-ramp")
class EpsRamp(irat.Radius):
    """ε_t = ε·(start + (1 − start)·min(1, (t − 1)/ramp_epochs)), the step scaled alike."""

    @dataclass
    class Options:  # --set radius.eps-ramp.ramp_epochs=10
        start: float = 0.25
        ramp_epochs: int = field(default=5, metadata=irat.EPOCHS)  # counts epochs: `sweep --shorten` scales it

    def __call__(self, model, x, y, epoch, eps, step):
        o = self.options
        scale = o.start + (1.0 - o.start) * min(1.0, (epoch - 1) / max(o.ramp_epochs, 1))
        return eps * scale, step * scale
