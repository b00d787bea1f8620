"""Observation of a run, kept out of the loop: callbacks that see each step and each epoch's row.

- `EpochStats`: distributions of the weights, κ, PM-adv and radii per epoch (gathered over ranks),
  and the per-example values of the epochs in `save_per_example` (RUN/per_example/epoch_NNN.npz);
- `Flatness`: loss flatness at friendly and most-adversarial points (GAIRAT Fig. 4);
- `TensorBoard`: every scalar of the row and the histograms, under RUN/tensorboard.

A callback may ask for the training attack's records on an epoch (`wants_records`); it never changes
what is trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import distributed
from ..attacks.checks import attack_mode
from ..attacks.pgd import fat_pgd, pgd
from ..config import Config
from ..data import Splits
from ..margins import pm_dif, probabilistic_margin
from ..parts import Batch
from ..parts.weighting import natural_logits
from ..utils import atomic_write


class Loop(Protocol):
    """What a callback may read of the loop it observes (the Trainer is one; no import of it needed)."""

    cfg: Config
    model: nn.Module
    splits: Splits
    out: Path
    epoch: int
    dist: Any  # distributed.Context: `.main` is rank 0
    meta: dict[str, Any]  # what a checkpoint says of the model (architecture, classes, input shape, dataset)
    history: list[dict[str, Any]]

    def recovery_state(self) -> dict[str, Any]: ...

    @property
    def eps(self) -> float: ...

    @property
    def alpha(self) -> float: ...


class Callback:
    """Sees each step and each epoch's row; one with state for an exact resume names it by `key`."""

    key: str = ""  # its entry in recovery.pt's "callbacks" (empty: no state)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def wants_records(self, epoch: int) -> bool:
        """Whether this epoch's training attack must return its records (κ, the iterate at κ)."""
        return False

    def on_step(self, trainer: Loop, rec: Batch) -> None:
        """After each step."""

    def on_epoch_end(self, trainer: Loop, row: dict[str, Any]) -> None:
        """Complete this epoch's metrics row (every rank, in the trainer's order of callbacks)."""

    def on_row(self, trainer: Loop, row: dict[str, Any]) -> None:
        """After the row is written (rank 0 only)."""


def summarize(values: torch.Tensor, prefix: str) -> dict[str, Any]:
    """min/mean/max and the 10/25/50/75/90 % quantiles of a per-example quantity, for metrics.jsonl."""
    v = values.float()
    if v.numel() == 0:
        return {}
    q = torch.quantile(v, torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9], device=v.device, dtype=v.dtype)).tolist()
    return {
        f"{prefix}_min": v.min().item(),
        f"{prefix}_mean": v.mean().item(),
        f"{prefix}_max": v.max().item(),
        f"{prefix}_q": {"10": q[0], "25": q[1], "50": q[2], "75": q[3], "90": q[4]},
    }


class EpochStats(Callback):
    """Per-epoch distributions of weights, κ, margins and radii, and the saved per-example values."""

    def __init__(self, save_epochs: set[int], reports_pm_adv: bool):
        self.save_epochs = save_epochs
        self.reports_pm_adv = reports_pm_adv
        self.buf: dict[str, list[torch.Tensor]] = {}
        self.last: dict[str, torch.Tensor] = {}  # the last epoch's gathered values (TensorBoard histograms)

    def wants_records(self, epoch: int) -> bool:
        return epoch in self.save_epochs

    def on_step(self, trainer: Loop, rec: Batch) -> None:
        buf, saving = self.buf, rec.epoch in self.save_epochs
        if rec.w_raw is not None:
            buf.setdefault("weight", []).append(rec.w_raw.detach())
        if rec.info is not None:
            buf.setdefault("kappa", []).append(rec.info.kappa)
        if torch.is_tensor(rec.eps):
            buf.setdefault("eps", []).append(rec.eps.detach())
        if (self.reports_pm_adv or saving) and rec.logits_adv is not None:
            buf.setdefault("pm_adv", []).append(probabilistic_margin(rec.logits_adv.detach(), rec.y))
        if saving:
            model = trainer.model
            nat = rec.logits_nat.detach() if rec.logits_nat is not None else natural_logits(model, rec.x)
            buf.setdefault("pm_nat", []).append(probabilistic_margin(nat, rec.y))
            if rec.info is not None and rec.info.x_at_step is not None:
                buf.setdefault("pm_dif", []).append(pm_dif(nat, natural_logits(model, rec.info.x_at_step), rec.y))
            buf.setdefault("index", []).append(rec.idx)
            buf.setdefault("label", []).append(rec.y)
            if not torch.is_tensor(rec.eps):
                buf.setdefault("eps_scalar", []).append(torch.full_like(rec.y, float(rec.eps), dtype=torch.float))

    def on_epoch_end(self, trainer: Loop, row: dict[str, Any]) -> None:
        buf = {k: distributed.gather_cat(torch.cat(v)) for k, v in sorted(self.buf.items())}
        self.buf = {}
        self.last = buf
        if "weight" in buf:
            row.update(summarize(buf["weight"], "weight"))
        if "kappa" in buf:
            k = trainer.cfg.attack.steps
            row["kappa_hist"] = torch.bincount(buf["kappa"].clamp(0, k), minlength=k + 1).tolist()
        if "pm_adv" in buf:
            row.update(summarize(buf["pm_adv"], "pm_adv"))
        if "eps" in buf:
            e = buf["eps"]
            row.update({"eps_min": e.min().item(), "eps_mean": e.mean().item(), "eps_max": e.max().item()})
        if "index" in buf and trainer.dist.main:
            self._save(trainer, buf, row["epoch"])

    @staticmethod
    def _save(trainer: Loop, buf: dict[str, torch.Tensor], epoch: int) -> None:
        import numpy as np

        out = {"index": buf["index"], "label": buf["label"], "pm_adv": buf["pm_adv"], "pm_nat": buf["pm_nat"]}
        out["weight"] = buf["weight"] if "weight" in buf else torch.ones_like(buf["label"], dtype=torch.float)
        out["eps"] = buf["eps"] if "eps" in buf else buf["eps_scalar"]
        for k in ("kappa", "pm_dif"):
            if k in buf:
                out[k] = buf[k]
        path = trainer.out / "per_example" / f"epoch_{epoch:03d}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: v.cpu().numpy() for k, v in out.items()}

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]

        atomic_write(path, write)


class Flatness(Callback):
    """Mean ‖∇ₓ CE‖₂ at friendly (PGD stopped at the first misclassification, FAT τ = 0) and at
    most-adversarial (PGD-K) points of the first `n` training examples (GAIRAT Fig. 4)."""

    def __init__(self, n: int):
        self.n = n

    def on_epoch_end(self, trainer: Loop, row: dict[str, Any]) -> None:
        model, cfg = trainer.model, trainer.cfg
        x, y = trainer.splits.train.head(self.n).all()
        a = cfg.attack
        # its own stream, seeded by the epoch's index (0-based), leaves training's RNG alone
        gen = torch.Generator(device=x.device).manual_seed(cfg.seed + row["epoch"] - 1)
        eps, alpha = trainer.eps, trainer.alpha
        for key, xa in (
            (
                "flat_friendly",
                fat_pgd(
                    model, x, y, eps=eps, alpha=alpha, steps=a.steps, tau=0, step_noise=0.0, norm=a.norm, generator=gen
                ),
            ),
            ("flat_adv", pgd(model, x, y, eps=eps, alpha=alpha, steps=a.steps, norm=a.norm, generator=gen)),
        ):
            with attack_mode(model, "eval"):
                xr = xa.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="sum"), xr)
            row[key] = g.flatten(1).norm(dim=1).mean().item()


class TensorBoard(Callback):
    """Per-epoch scalars and weight/margin/κ/radius histograms under RUN/tensorboard."""

    def __init__(self, stats: EpochStats):
        self.stats = stats
        self.writer: Any = None

    def on_row(self, trainer: Loop, row: dict[str, Any]) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(trainer.out / "tensorboard"))
        for k, v in row.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch":
                self.writer.add_scalar(k, v, row["epoch"])
        for k in ("weight", "pm_adv", "kappa", "eps"):
            if k in self.stats.last:
                self.writer.add_histogram(k, self.stats.last[k].float().cpu(), row["epoch"])
        self.writer.flush()
