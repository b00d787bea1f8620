"""Learning-rate schedules. Epoch numbers are 1-based as the papers write them; a milestone m
means "divide after m completed epochs" (PyTorch's MultiStepLR convention)."""

from __future__ import annotations

import math
import typing

from .config import OptimConfig, Schedule
from .errors import ConfigError
from .utils import stepwise_value  # noqa: F401  (the table helper, re-exported)

SCHEDULES: tuple[str, ...] = typing.get_args(Schedule)


def milestones(opt: OptimConfig, epochs: int) -> list[float]:
    if opt.milestones is None:  # 50 % and 75 % of the run, never before the first epoch (a 1-epoch run keeps its lr)
        first = max(1, round(epochs * 0.5))
        return [first, max(first + 1, round(epochs * 0.75))]  # distinct: never two drops at once (3 epochs: 2, 3)
    return [float(m) for m in opt.milestones]


def learning_rate(opt: OptimConfig, epochs: int, progress: float) -> float:
    """LR after `progress` completed epochs (fractional when the schedule steps per iteration)."""
    if opt.schedule == "piecewise":
        passed = sum(progress >= m for m in milestones(opt, epochs))
        if opt.milestone_lrs:
            lr = opt.lr if passed == 0 else float(opt.milestone_lrs[min(passed, len(opt.milestone_lrs)) - 1])
        else:
            lr = opt.lr * opt.gamma**passed
    elif opt.schedule == "cosine":
        lr = opt.lr * 0.5 * (1 + math.cos(math.pi * min(progress, epochs) / epochs))
    elif opt.schedule == "cyclic":  # linear up to 2/5 of training, then down to 0 (per iteration)
        peak = 0.4 * epochs
        lr = opt.lr * (progress / peak if progress < peak else max(0.0, (epochs - progress) / (epochs - peak)))
    elif opt.schedule == "constant":
        lr = opt.lr
    else:
        raise ConfigError(f"unknown schedule {opt.schedule!r}; known: {', '.join(SCHEDULES)}")
    if opt.warmup_epochs and progress < opt.warmup_epochs:
        lr *= progress / opt.warmup_epochs
    return lr
