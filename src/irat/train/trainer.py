"""The training loop (DESIGN.md): attack → objective terms → (weights) → step, per batch.

Per epoch: validation (natural + PGD-K on the held-out split), `metrics.jsonl`, checkpoints
`last.pt`, `best.pt` and `recovery.pt` (atomic). `resume=True` continues from `recovery.pt`
bit-identically on CPU (model, optimizer, schedule, RNG states, epoch).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..attacks.pgd import pgd
from ..config import Config, from_dict
from ..data import Splits, load_splits
from ..errors import ConfigError, IratError
from ..evaluate.core import evaluate
from ..models import create_model
from ..objectives import make_objective
from ..utils import atomic_write_text, resolve_device
from .checkpoint import load_checkpoint, save_checkpoint
from .schedules import learning_rate, stepwise_value
from .validate import validate_config

RECOVERY, LAST, BEST = "recovery.pt", "last.pt", "best.pt"


def run_state(out: Path) -> dict[str, Any] | None:
    """What a run directory holds: None if no checkpoint, else its epoch and whether it finished."""
    rec = out / RECOVERY
    if not rec.exists():
        return None
    data = load_checkpoint(rec)
    epochs = int(data["config"].get("epochs", 0))
    return {"epoch": int(data["epoch"]), "epochs": epochs, "finished": int(data["epoch"]) >= epochs, "data": data}


class Trainer:
    """Adversarial training of one run into one directory."""

    def __init__(self, cfg: Config, out: str | Path, *, resume: bool = False, overwrite: bool = False,
                 splits: Splits | None = None, epochs: int | None = None, device: str | None = None):
        self.out = Path(out)
        state = None
        if self.out.exists() and not self.out.is_dir():
            raise IratError(f"{self.out} exists and is not a directory")
        if self.out.is_dir():
            state = run_state(self.out)  # raises CheckpointError on a corrupt recovery checkpoint
        if resume:
            if state is None:
                raise IratError(f"--resume: {self.out} holds no run to resume (no {RECOVERY}); "
                                f"start one without --resume")
            cfg = from_dict(state["data"]["config"])
            if epochs is not None:
                cfg.epochs = int(epochs)
            if device is not None:
                cfg.device = device
        elif state is not None and not overwrite:
            what = "a finished run" if state["finished"] else f"an unfinished run (epoch {state['epoch']}/{state['epochs']})"
            raise IratError(f"{self.out} already holds {what}; pass --resume to continue it, --overwrite to "
                            f"replace it, or choose another --out")
        validate_config(cfg)
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.resume_state = state["data"] if (resume and state is not None) else None
        self.splits = splits if splits is not None else load_splits(
            cfg.data.dataset, cfg.data.data_dir, download=cfg.data.download, val_size=cfg.data.val_size,
            split_seed=cfg.data.split_seed, train_subset=cfg.data.train_subset, test_subset=cfg.data.test_subset,
            augment=cfg.data.augment, device=self.device)
        c, h, _ = self.splits.shape
        torch.manual_seed(cfg.seed)
        self.model = create_model(cfg.model.arch, in_channels=c, num_classes=self.splits.num_classes,
                                  input_size=h).to(self.device)
        self.meta = dict(self.model.irat_meta, dataset=self.splits.name)
        self.objective = make_objective(cfg.objective.name, cfg.objective.beta)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                         weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.epoch = 0
        self.best = {"epoch": 0, "robust": -1.0}
        if self.resume_state is not None:
            self._restore(self.resume_state)

    # -- attack settings ------------------------------------------------------------------------
    @property
    def eps(self) -> float:
        return self.cfg.attack.eps

    @property
    def alpha(self) -> float:
        return self.cfg.attack.alpha if self.cfg.attack.alpha is not None else self.eps / 4

    def attack_kwargs(self, epoch: int) -> dict[str, Any]:
        a = self.cfg.attack
        kw = dict(eps=self.eps, alpha=self.alpha, steps=a.steps, norm=a.norm,
                  loss=a.loss or self.objective.attack_loss, start=a.start or self.objective.attack_start,
                  restarts=a.restarts, bn_mode=a.bn_mode, kappa=a.kappa, generator=None, check_inputs=False)
        if self.objective.early_stop:
            kw["tau"] = int(stepwise_value(self.cfg.objective.fat_tau, epoch - 1, "objective.fat_tau"))
            kw["step_noise"] = self.cfg.objective.fat_noise
        return kw

    # -- one batch ------------------------------------------------------------------------------
    def train_step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
        """Craft x', form the objective's per-example terms, and step. Returns per-batch device stats."""
        kw = self.attack_kwargs(epoch)
        x_adv, info = pgd(self.model, x, y, return_info=True, **kw) if self.needs_info else (
            pgd(self.model, x, y, **kw), None)
        self.model.train()
        logits_adv = self.model(x_adv)
        logits_nat = self.model(x) if self.objective.needs_natural else None
        terms = self.objective.terms(logits_nat, logits_adv, y)
        loss = self.objective.combine(terms, self.weights(terms, info, logits_nat, logits_adv, y, idx, epoch))
        if not torch.isfinite(loss):
            raise IratError(f"the training loss became {loss.item()} at epoch {epoch}; lower the learning rate")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        stats = {"loss": loss.detach() * len(y), "adv_correct": (logits_adv.argmax(1) == y).sum()}
        if logits_nat is not None:
            stats["nat_correct"] = (logits_nat.argmax(1) == y).sum()
        return stats

    needs_info = False

    def weights(self, terms, info, logits_nat, logits_adv, y, idx, epoch) -> dict[str, torch.Tensor] | None:
        """Instance weights per term (none for the baseline objectives; the methods issue fills this)."""
        return None

    # -- epochs ---------------------------------------------------------------------------------
    def fit(self, max_epochs: int | None = None) -> dict[str, Any]:
        """Train until cfg.epochs (or `max_epochs` more epochs); returns the last metrics row."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "config.yaml", cfg.to_yaml())
        self._trim_metrics()
        last_row: dict[str, Any] = {}
        stop = cfg.epochs if max_epochs is None else min(cfg.epochs, self.epoch + max_epochs)
        n_batches = math.ceil(len(self.splits.train) / cfg.batch_size)
        while self.epoch < stop:
            epoch = self.epoch + 1
            t0 = time.perf_counter()
            self.model.train()
            acc: dict[str, torch.Tensor] = {}
            bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", disable=not cfg.progress, leave=False)
            for i, (x, y, idx) in enumerate(self.splits.train.batches(cfg.batch_size, shuffle=True,
                                                                      generator=self.generator,
                                                                      augment=self.splits.augment)):
                progress = (epoch - 1) + (i / n_batches if cfg.optim.step_per == "iteration" else 0.0)
                lr = learning_rate(cfg.optim, cfg.epochs, progress)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                stats = self.train_step(x, y, idx, epoch)
                for k, v in stats.items():
                    acc[k] = acc[k] + v if k in acc else v
                bar.update(1)
                if cfg.progress and (i % 20 == 0 or i == n_batches - 1):
                    seen = min((i + 1) * cfg.batch_size, len(self.splits.train))
                    bar.set_postfix(loss=f"{acc['loss'].item() / seen:.3f}",
                                    adv_acc=f"{100 * acc['adv_correct'].item() / seen:.1f}")
            bar.close()
            n = len(self.splits.train)
            row: dict[str, Any] = {"epoch": epoch, "lr": lr, "train_loss": acc["loss"].item() / n,
                                   "train_adv_acc": 100 * acc["adv_correct"].item() / n}
            if "nat_correct" in acc:
                row["train_nat_acc"] = 100 * acc["nat_correct"].item() / n
            row.update(self.extra_metrics())
            row["train_time_s"] = time.perf_counter() - t0
            row["train_examples_per_s"] = n / row["train_time_s"]
            self.epoch = epoch
            if epoch % cfg.val_every == 0 or epoch == cfg.epochs:
                row.update(self.validate())
            self._checkpoint(row)
            with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            last_row = row
            if cfg.progress:
                shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()
                         if k in ("epoch", "train_loss", "train_adv_acc", "val_nat", "val_pgd", "train_time_s")}
                tqdm.write(json.dumps(shown))
        return last_row

    def extra_metrics(self) -> dict[str, Any]:
        return {}

    def validate(self) -> dict[str, float]:
        """Natural and PGD-K accuracy on the validation split (or the test set: the papers' protocol)."""
        cfg = self.cfg
        data = (self.splits.test if cfg.best_on == "test" else self.splits.val).head(cfg.val_n)
        if len(data) == 0:
            return {}
        x, y = data.all()
        rec = evaluate(self.model, x, y, attacks=["natural", f"pgd{cfg.val_steps}"], eps=self.eps,
                       norm=cfg.attack.norm, alpha=self.eps / 4, batch_size=cfg.eval_batch_size, seed=cfg.seed)
        self.model.train()
        prefix = "test" if cfg.best_on == "test" else "val"
        return {f"{prefix}_nat": rec["results"]["natural"], f"{prefix}_pgd": rec["results"][f"pgd{cfg.val_steps}"]}

    # -- checkpoints ----------------------------------------------------------------------------
    def _payload(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "meta": self.meta, "epoch": self.epoch,
                "model": self.model.state_dict(), "metrics": row}

    def _checkpoint(self, row: dict[str, Any]) -> None:
        prefix = "test" if self.cfg.best_on == "test" else "val"
        robust = row.get(f"{prefix}_pgd")
        is_best = robust is not None and robust > self.best["robust"]
        if is_best:
            self.best = {"epoch": self.epoch, "robust": float(robust)}
        row["best_epoch"] = self.best["epoch"]
        payload = self._payload(row)
        save_checkpoint(self.out / LAST, payload)
        if is_best or not (self.out / BEST).exists():
            save_checkpoint(self.out / BEST, payload)
        payload = dict(payload, optimizer=self.optimizer.state_dict(), best=self.best,
                       rng={"torch": torch.get_rng_state(), "data": self.generator.get_state(),
                            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
                       extra=self.extra_state())
        save_checkpoint(self.out / RECOVERY, payload)

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def _restore(self, data: dict[str, Any]) -> None:
        self.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.epoch = int(data["epoch"])
        self.best = {"epoch": int(data["best"]["epoch"]), "robust": float(data["best"]["robust"])}
        torch.set_rng_state(data["rng"]["torch"].cpu())
        self.generator.set_state(data["rng"]["data"].cpu())
        if torch.cuda.is_available() and data["rng"].get("cuda"):
            torch.cuda.set_rng_state_all([s.cpu() for s in data["rng"]["cuda"]])
        self.load_extra_state(data.get("extra", {}))

    def _trim_metrics(self) -> None:
        """Drop metric rows past the restored epoch (written after the last checkpoint, before a kill)."""
        path = self.out / "metrics.jsonl"
        if not path.exists():
            return
        if self.epoch == 0:
            path.unlink()
            return
        keep = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                if ln.strip() and json.loads(ln).get("epoch", 0) <= self.epoch]
        atomic_write_text(path, "".join(k + "\n" for k in keep))


def load_model(run: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu") -> nn.Module:
    """Load a trained model from a run directory (best or last checkpoint) or a checkpoint file.

    The model takes inputs in [0,1] and returns logits; it is returned in eval mode.
    """
    path = Path(run)
    if path.is_dir():
        if checkpoint not in ("best", "last"):
            raise ConfigError(f"checkpoint must be best or last, got {checkpoint!r}")
        path = path / (BEST if checkpoint == "best" else LAST)
    data = load_checkpoint(path, map_location="cpu")
    meta = data["meta"]
    model = create_model(meta["arch"], in_channels=meta["in_channels"], num_classes=meta["num_classes"],
                         input_size=meta["input_size"])
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise IratError(f"{path}: weights do not fit a {meta['arch']} model ({str(exc).splitlines()[0]})") from exc
    model.irat_checkpoint = {"path": str(path), "epoch": data["epoch"], "config": data["config"], "meta": meta}
    return model.to(device).eval()
