"""What happens after an epoch's last step, as callbacks in the order the row is built and kept:

- `Validation`: natural and PGD-K accuracy on the validation split (or the test set, the papers' protocol);
- `Checkpointing`: the best epoch by robust validation accuracy (state kept in recovery.pt), and the three
  checkpoints — last.pt and best.pt (the model) and recovery.pt (everything an exact resume needs);
- `MetricsFile`: the row appended to metrics.jsonl (rank 0);
- `ProgressLine`: one JSON line per epoch on stderr (stdout stays for results, e.g. irat demo's table).

The trainer only trains; these keep their own state (`state_dict` / `load_state_dict`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch
from tqdm.auto import tqdm

from ..checkpoints import BEST, LAST, RECOVERY, save_checkpoint
from ..errors import IratError
from ..evaluate import evaluate
from .callbacks import Callback, Loop


class Validation(Callback):
    """Natural and PGD-K accuracy every `val_every` epochs and at the last (`val_nat`, `val_pgd`; `test_*` when
    the best checkpoint is chosen on the test set)."""

    def on_epoch_end(self, trainer: Loop, row: dict[str, Any]) -> None:
        cfg = trainer.cfg
        if trainer.epoch % cfg.val_every == 0 or trainer.epoch == cfg.epochs:
            row.update(validate(trainer))


def validate(trainer: Loop) -> dict[str, float]:
    """Natural and PGD-K accuracy on the validation split (or the test set: the papers' protocol)."""
    cfg = trainer.cfg
    data = (trainer.splits.test if cfg.best_on == "test" else trainer.splits.val).head(cfg.val_n)
    if len(data) == 0:
        return {}
    x, y = data.all()
    rec = evaluate(
        trainer.model,
        x,
        y,
        attacks=["natural", f"pgd{cfg.val_steps}"],
        eps=trainer.eps,
        norm=cfg.attack.norm,
        alpha=trainer.eps / 4,
        batch_size=cfg.eval_batch_size,
        seed=cfg.seed,
        sanity=False,
    )
    trainer.model.train()
    prefix = "test" if cfg.best_on == "test" else "val"
    return {f"{prefix}_nat": rec["results"]["natural"], f"{prefix}_pgd": rec["results"][f"pgd{cfg.val_steps}"]}


class Checkpointing(Callback):
    """Tracks the best epoch (robust validation accuracy; `best_epoch` in every row) and writes last.pt, best.pt
    (when the epoch is the best so far, or none exists yet) and recovery.pt (rank 0)."""

    key = "checkpointing"

    def __init__(self) -> None:
        self.best = {"epoch": 0, "robust": -1.0}

    def on_epoch_end(self, trainer: Loop, row: dict[str, Any]) -> None:
        prefix = "test" if trainer.cfg.best_on == "test" else "val"
        robust = row.get(f"{prefix}_pgd")
        is_best = robust is not None and robust > self.best["robust"]
        if is_best:
            self.best = {"epoch": trainer.epoch, "robust": float(robust)}  # type: ignore[arg-type]
        row["best_epoch"] = self.best["epoch"]
        if not trainer.dist.main:
            return
        model = {
            "config": trainer.cfg.to_dict(),
            "meta": trainer.meta,
            "epoch": trainer.epoch,
            "model": trainer.model.state_dict(),
            "metrics": row,
        }
        save_checkpoint(trainer.out / LAST, model)
        if is_best or not (trainer.out / BEST).exists():
            save_checkpoint(trainer.out / BEST, model)
        save_checkpoint(trainer.out / RECOVERY, {**model, **trainer.recovery_state()})

    def state_dict(self) -> dict[str, Any]:
        return {"best": dict(self.best)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best = state["best"]
        self.best = {"epoch": int(best["epoch"]), "robust": float(best["robust"])}


class MetricsFile(Callback):
    """The row, one JSON line, appended to RUN/metrics.jsonl (rank 0)."""

    def on_epoch_end(self, trainer: Loop, row: dict[str, Any]) -> None:
        if trainer.dist.main:
            with open(trainer.out / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")


class ProgressLine(Callback):
    """The epoch's main figures on stderr (rank 0, when `progress`)."""

    SHOWN = ("epoch", "train_loss", "train_adv_acc", "val_nat", "val_pgd", "train_time_s")

    def on_row(self, trainer: Loop, row: dict[str, Any]) -> None:
        if trainer.cfg.progress:
            shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items() if k in self.SHOWN}
            tqdm.write(json.dumps(shown), file=sys.stderr)


def check_finite(loss_sum: torch.Tensor, epoch: int) -> None:
    """A non-finite training loss stops the run (checked once per epoch: no host sync inside the loop)."""
    if not torch.isfinite(loss_sum):
        raise IratError(
            f"the training loss became {loss_sum.item()} in epoch {epoch}; lower the "
            f"learning rate (the last good state is kept in {RECOVERY})"
        )
