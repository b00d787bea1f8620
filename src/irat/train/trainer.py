"""The training loop (docs/design.md): attack → objective terms → (weights) → step, per batch.

Per epoch: validation (natural + PGD-K on the held-out split), `metrics.jsonl`, checkpoints
`last.pt`, `best.pt` and `recovery.pt` (atomic). `resume=True` continues from `recovery.pt`
bit-identically on CPU (model, optimizer, schedule, RNG states, epoch).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .. import distributed
from ..attacks.checks import check_radius
from ..attacks.noise import Noise, draw_noise
from ..checkpoints import recovery_state
from ..config import Config
from ..data import Splits, load_splits
from ..data.unlabeled import build_unlabeled, mixed_batches, n_mixed_batches
from ..errors import ConfigError, IratError
from ..methods import check_method_name
from ..models import create_model
from ..parts import Batch, RunContext, build_parts, idle_parts
from ..plugins import require_recorded
from ..rundir import RunLock, clean_tmp, remove_run_files, sync_metrics
from ..schedules import learning_rate
from ..utils import atomic_write_text, default_dtype, resolve_device
from ..validate import validate_config
from .awp import AWP
from .callbacks import Callback, EpochStats, Flatness, TensorBoard
from .epoch_end import Checkpointing, MetricsFile, ProgressLine, Validation, check_finite, validate
from .opening import open_run_dir, say, snapshot


class Trainer:
    """Adversarial training of one run into one directory."""

    def __init__(
        self,
        cfg: Config,
        out: str | Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        splits: Splits | None = None,
        epochs: int | None = None,
        device: str | None = None,
        changes: list[tuple[str, Any]] | None = None,
    ):
        self.out = Path(out)
        opened = open_run_dir(
            self.out, cfg, resume=resume, overwrite=overwrite, changes=changes, epochs=epochs, device=device
        )
        cfg, state, resume = opened.cfg, opened.state, opened.resume
        self.overwrite, self.resume_changes, self._files_at_start = opened.overwrite, opened.changes, opened.snapshot
        # the parts a plug-in registers must be known before the config is checked; only plug-ins the user named
        require_recorded(cfg.plugins, f"the run in {self.out}" if resume else "this configuration")
        validate_config(cfg)
        check_method_name(cfg)
        self.idle = idle_parts(cfg)  # said at the start of fit and recorded in the first row
        self.dist = distributed.context()
        distributed.check_batch_size(cfg.batch_size)
        self.cfg = cfg
        self.device = distributed.device_for(resolve_device(cfg.device))
        share = os.environ.get("IRAT_CUDA_MEMORY_FRACTION")  # set by irat sweep --jobs-per-device
        if share and self.device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(float(share), self.device)
        if cfg.sync_bn and self.dist.enabled and self.device.type != "cuda":
            raise ConfigError("sync_bn needs CUDA GPUs (PyTorch's SyncBatchNorm does not run on CPU); drop it on CPU")
        self.resume_state = state["data"] if (resume and state is not None) else None
        # precision=fp64: float64 weights, batches and parts' tensors (numerical checks: fingerprints, devices)
        self.dtype = torch.float64 if cfg.precision == "fp64" else torch.get_default_dtype()
        with default_dtype(self.dtype):
            self._build(cfg, splits)

    def _build(self, cfg: Config, splits: Splits | None) -> None:
        """Data, model, parts, optimizer and observers of the run (in the run's float type)."""
        # recorded resolved: `irat eval` from another folder finds the same data
        cfg.data.data_dir = str(Path(cfg.data.data_dir).expanduser().resolve())
        self.splits = (
            splits
            if splits is not None
            else load_splits(
                cfg.data.dataset,
                cfg.data.data_dir,
                download=cfg.data.download,
                val_size=cfg.data.val_size,
                split_seed=cfg.data.split_seed,
                train_subset=cfg.data.train_subset,
                test_subset=cfg.data.test_subset,
                augment=cfg.data.augment,
                device=self.device,
            )
        )
        c, h, _ = self.splits.shape
        check_radius(cfg.attack.eps, cfg.attack.norm, self.splits.shape, "attack.eps (ε)")
        torch.manual_seed(cfg.seed)
        self.model = create_model(cfg.model.arch, in_channels=c, num_classes=self.splits.num_classes, input_size=h).to(
            self.device
        )
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if cfg.sync_bn and self.dist.enabled:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.net = self._compiled(self.model) if cfg.compile else self.model  # forward used by attacks and steps
        self.train_net = self._data_parallel(self.net) if self.dist.enabled else self.net  # the step's forward
        self._frac = 1.0  # this rank's share of the global batch: local mean losses × frac sum to the global mean
        self._told_skip = False  # said once that batches smaller than the number of ranks are skipped
        self.meta = dict(getattr(self.model, "irat_meta"), dataset=self.splits.name)  # noqa: B009
        self.ctx = RunContext(
            cfg,
            device=self.device,
            num_classes=self.splits.num_classes,
            global_sum=distributed.all_reduce_sum,
            distributed=self.dist.enabled,
            sum_tensors=distributed.sum_tensors,
            shard=distributed.shard_range,
        )
        if self.dist.enabled:
            self.ctx.shard_noise = distributed.shard_noise
        self.parts = build_parts(cfg, self.ctx)  # radius, objective, weighting (BiLAW's weight net is made here)
        self.needs = self.parts.weighting.needs(cfg)  # what the weighting needs from the training attack
        self.splits.train = self.parts.weighting.split_data(self.splits.train)
        self.unlabeled, self.unlabeled_info = None, None
        u = cfg.unlabeled
        if u.path or u.withhold:
            self.splits.train, self.unlabeled, self.unlabeled_info = build_unlabeled(
                u, self.splits.train, self.splits.shape, self.splits.num_classes, cfg.data.split_seed
            )
        n_index = 1 + max(int(d.index.max()) for d in (self.splits.train, self.unlabeled) if d is not None and len(d))
        for part in (self.parts.radius, self.parts.objective, self.parts.weighting):
            part.prepare(n_index)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=cfg.optim.lr,
            momentum=cfg.optim.momentum,
            weight_decay=cfg.optim.weight_decay,
            nesterov=cfg.optim.nesterov,
        )
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.awp = AWP(self.model, cfg.awp.gamma, cfg.awp.proxy_lr) if cfg.awp.enabled else None
        self.stats = EpochStats({int(e) for e in cfg.save_per_example}, self.parts.weighting.reports_pm_adv)
        # after each step and each epoch, in this order: observation, validation, checkpoints, the metrics file
        self.callbacks: list[Callback] = [self.stats, *([Flatness(cfg.flatness_n)] if cfg.flatness_n else [])]
        self.callbacks += [Validation(), Checkpointing(), MetricsFile()]
        self.callbacks += [*([TensorBoard(self.stats)] if cfg.tensorboard else []), ProgressLine()]
        self.epoch = 0
        self.history: list[dict[str, Any]] = []  # every epoch's metrics row
        if self.resume_state is not None:
            self._restore(self.resume_state)

    def _compiled(self, model: nn.Module) -> nn.Module:
        """torch.compile'd forward sharing the model's parameters; eager (with a message) if compiling fails.
        The probe runs a forward and a backward, since the backward graph is compiled lazily and can fail on
        its own (seen: inductor's C++ build without vector instructions); the model's state is restored."""
        saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
        try:
            net = torch.compile(model)
            c, h, w = self.splits.shape
            probe = torch.rand(2, c, h, w, device=self.device)
            with self.autocast():
                net(probe).float().sum().backward()
            return net  # type: ignore[return-value]
        except Exception as exc:
            print(
                f"irat: torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                f"training in eager mode",
                file=sys.stderr,
            )
            self.compile_failed = True
            return model
        finally:  # the probe leaves no gradient and no BN statistics behind
            model.load_state_dict(saved)
            for p in model.parameters():
                p.grad = None

    def _data_parallel(self, net: nn.Module) -> nn.Module:
        """DistributedDataParallel around the step's forward; gradients are summed over ranks (each rank's
        loss is already its share of the global mean), not averaged."""
        import warnings

        from torch.nn.parallel import DistributedDataParallel as DDP

        # a size-1 dimension (e.g. one input channel) makes a gradient's strides differ from the bucket's:
        # PyTorch warns, but the copy is correct and costs nothing measurable
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        ddp = DDP(
            net, device_ids=[self.device.index] if self.device.type == "cuda" else None, gradient_as_bucket_view=True
        )
        ddp.register_comm_hook(None, _sum_hook)
        return ddp

    def autocast(self):
        """bf16 autocast for the training forward passes and the training attack (precision=bf16)."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    # -- attack settings ------------------------------------------------------------------------
    @property
    def eps(self) -> float:
        return self.cfg.attack.eps

    @property
    def alpha(self) -> float:
        return self.cfg.attack.alpha if self.cfg.attack.alpha is not None else self.eps / 4

    # -- one batch ------------------------------------------------------------------------------
    def train_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        idx: torch.Tensor,
        epoch: int,
        *,
        global_n: int | None = None,
        noise: Noise = draw_noise,
    ) -> dict[str, torch.Tensor]:
        """Radius → the objective's attack → weights → loss → (AWP) step (docs/design.md). Returns per-batch
        device stats. global_n / noise: the global batch this is a slice of, and its per-example draws."""
        parts = self.parts
        eps, step_size = parts.radius(self.model, x, y, epoch, self.eps, self.alpha)
        records = any(cb.wants_records(epoch) for cb in self.callbacks)
        weighting = parts.weighting
        batch = Batch(
            net=self.net,
            model=self.model,
            x=x,
            y=y,
            idx=idx,
            epoch=epoch,
            eps=eps,
            alpha=step_size,
            lr=self.optimizer.param_groups[0]["lr"],
            global_n=global_n or len(y),
            noise=noise,
            want_info="pgd-info" in self.needs or records,
            record_kappa_iterate="kappa-iterate" in self.needs or records,
            weights_active=weighting.active(epoch),
        )
        parts.objective.craft(batch)
        if batch.weights_active:  # a learned scheme's weights, from a look-ahead over this same loss
            batch.w_raw = weighting.before_loss(batch, lambda fwd, scale: parts.loss(batch, fwd, scale=scale)[0])
        awp_on = self.awp is not None and epoch > self.cfg.awp.warmup
        if awp_on:
            assert self.awp is not None
            diff = self.awp.perturbation(lambda m: self._frac * parts.loss(batch, m)[0])
            self.awp.apply(diff, +1.0)
        self.model.train()
        loss, batch = parts.loss(batch, self.train_net)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * self._frac).backward()
        self.optimizer.step()
        if awp_on:
            assert self.awp is not None
            self.awp.apply(diff, -1.0)
        for cb in self.callbacks:
            cb.on_step(self, batch)
        assert batch.logits_adv is not None
        stats = {"loss": loss.detach() * len(y), "adv_correct": (batch.logits_adv.argmax(1) == y).sum()}
        if batch.logits_nat is not None:
            stats["nat_correct"] = (batch.logits_nat.argmax(1) == y).sum()
        return stats

    def train_batches(self):
        """This epoch's (x, y, index) batches: the training set, topped up with pseudo-labelled data for RST."""
        cfg = self.cfg
        if self.unlabeled is not None:
            return mixed_batches(
                self.splits.train,
                self.unlabeled,
                cfg.batch_size,
                cfg.unlabeled.fraction,
                generator=self.generator,
                augment=self.splits.augment,
                epoch=cfg.unlabeled.epoch,
            )
        return self.splits.train.batches(
            cfg.batch_size, shuffle=True, generator=self.generator, augment=self.splits.augment
        )

    # -- epochs ---------------------------------------------------------------------------------
    def fit(self, max_epochs: int | None = None) -> dict[str, Any]:
        """Train until cfg.epochs (or `max_epochs` more epochs); returns the last metrics row. Rank 0 holds
        the run directory's lock throughout: a second process training into it is refused."""
        lock = RunLock(self.out).acquire() if self.dist.main else None
        if lock is not None and snapshot(self.out) != self._files_at_start:
            lock.release()
            raise IratError(
                f"another process wrote into {self.out} after this one looked at it; nothing was changed — "
                f"run the command again to see what the folder holds now"
            )
        try:
            with default_dtype(self.dtype):
                return self._fit(max_epochs)
        finally:
            self._files_at_start = snapshot(self.out)  # this process's own writes
            if lock is not None:
                lock.release()

    def _fit(self, max_epochs: int | None) -> dict[str, Any]:
        """Epoch after epoch until the run's length (or `max_epochs` more): train, then validate, record and
        checkpoint — the reference training script's shape."""
        cfg = self.cfg
        if self.dist.main:  # only rank 0 writes (checkpoints, logs, per-example files) and shows progress
            self._open_run()
        stop = cfg.epochs if max_epochs is None else min(cfg.epochs, self.epoch + max_epochs)
        last_row: dict[str, Any] = {}
        while self.epoch < stop:
            epoch = self.epoch + 1
            t0 = time.perf_counter()
            acc, seen, lr = self._train_epoch(epoch)
            last_row = self._finish_epoch(epoch, acc, seen, lr, t0)
        return last_row

    def _open_run(self) -> None:
        """Rank 0, before the first epoch of this process: the folder made ready and the config written."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        for name in clean_tmp(self.out):
            say(f"removed {name}, left by an interrupted write")
        if self.overwrite:  # --overwrite: the old run's files go, under the lock, before the new ones come
            remove_run_files(self.out)
            self.overwrite = False
        atomic_write_text(self.out / "config.yaml", cfg.to_yaml())
        for reason in self.idle:
            say(f"warning: {reason}")
        sync_metrics(self.out, self.epoch, self.history, say=say)
        if self.unlabeled_info is not None:
            atomic_write_text(self.out / "unlabeled.json", json.dumps(self.unlabeled_info, indent=1) + "\n")

    def _n_batches(self) -> int:
        cfg = self.cfg
        if self.unlabeled is None:
            return math.ceil(len(self.splits.train) / cfg.batch_size)
        return n_mixed_batches(len(self.splits.train), cfg.batch_size, cfg.unlabeled.fraction, cfg.unlabeled.epoch)

    def _train_epoch(self, epoch: int) -> tuple[dict[str, torch.Tensor], int, float]:
        """One pass of training steps: the summed per-batch statistics (reduced over ranks), the examples seen
        and the last learning rate."""
        cfg, main = self.cfg, self.dist.main
        n_batches = self._n_batches()
        lr = learning_rate(cfg.optim, cfg.epochs, epoch - 1)
        self.model.train()
        self.parts.weighting.new_epoch()
        acc: dict[str, torch.Tensor] = {}
        seen, seen_here, skipped = 0, 0, 0
        # a bar on a terminal only; redirected logs (Slurm, nohup) get the one line per epoch below
        bar_on = cfg.progress and main and sys.stderr.isatty()
        bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", disable=not bar_on, leave=False)
        for i, (x, y, idx) in enumerate(self.train_batches()):
            progress = (epoch - 1) + (i / n_batches if cfg.optim.step_per == "iteration" else 0.0)
            lr = learning_rate(cfg.optim, cfg.epochs, progress)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            n = len(y)
            if n < self.dist.world:  # a last batch too small to give every rank an example (all ranks skip it)
                skipped += n
                continue
            noise = draw_noise
            if self.dist.enabled:  # this rank's slice of the global batch, and of its random draws
                lo, hi = distributed.shard_range(n)
                x, y, idx = x[lo:hi], y[lo:hi], idx[lo:hi]
                self._frac = (hi - lo) / n
                noise = distributed.shard_noise(n, lo, hi)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            stats = self._step_or_eager(x, y, idx, epoch, n, noise)
            for k, v in stats.items():
                acc[k] = acc[k] + v if k in acc else v
            seen += n
            seen_here += len(y)
            bar.update(1)
            if bar_on and (i % 20 == 0 or i == n_batches - 1):
                bar.set_postfix(
                    loss=f"{acc['loss'].item() / seen_here:.3f}",
                    adv_acc=f"{100 * acc['adv_correct'].item() / seen_here:.1f}",
                )
        bar.close()
        acc = self._reduce_stats(acc)
        if skipped and main and not self._told_skip:
            self._told_skip = True
            say(
                f"the last batch of each epoch ({skipped} examples) is smaller than the "
                f"{self.dist.world} ranks and is skipped"
            )
        return acc, seen, lr

    def _step_or_eager(
        self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, epoch: int, n: int, noise: Noise
    ) -> dict[str, torch.Tensor]:
        """One training step; a torch.compile failure that surfaces only now (a graph compiled lazily: the
        backward, another memory format, eval-mode BN) switches the run to eager mode, says so, and takes the
        step again — compile is a speed setting, never a reason to stop a run."""
        try:
            with self.autocast():
                return self.train_step(x, y, idx, epoch, global_n=n, noise=noise)
        except Exception as exc:
            if not self.cfg.compile or getattr(self, "compile_failed", False) or not _is_compile_error(exc):
                raise
            say(f"torch.compile failed ({type(exc).__name__}); training in eager mode from here")
            self.compile_failed = True
            self.net = self.model
            self.train_net = self._data_parallel(self.net) if self.dist.enabled else self.net
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                return self.train_step(x, y, idx, epoch, global_n=n, noise=noise)

    def _finish_epoch(
        self, epoch: int, acc: dict[str, torch.Tensor], seen: int, lr: float, t0: float
    ) -> dict[str, Any]:
        """The epoch's metrics row: the training statistics, then each callback's part of it in order
        (observation, validation, best epoch and checkpoints, the metrics file); rank 0 shows it."""
        check_finite(acc["loss"], epoch)
        row: dict[str, Any] = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": acc["loss"].item() / seen,
            "train_adv_acc": 100 * acc["adv_correct"].item() / seen,
        }
        if "nat_correct" in acc:
            row["train_nat_acc"] = 100 * acc["nat_correct"].item() / seen
        self.parts.objective.end_epoch()
        row.update(self.parts.epoch_metrics())
        row["train_time_s"] = time.perf_counter() - t0
        row["train_examples_per_s"] = seen / row["train_time_s"]
        if self.resume_changes:  # the first row after a resume that changed settings says which
            row["resumed_with"] = self.resume_changes
            self.resume_changes = {}
        self.epoch = epoch
        self.history.append(row)  # (the callbacks complete this same row)
        for cb in self.callbacks:
            cb.on_epoch_end(self, row)
        if self.dist.main:
            for cb in self.callbacks:
                cb.on_row(self, row)
        distributed.barrier()  # no rank runs ahead of rank 0's checkpoint
        return row

    def _reduce_stats(self, acc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The epoch's sums over all ranks (one collective); the identity in one process."""
        if not self.dist.enabled or not acc:
            return acc
        keys = sorted(acc)
        total = distributed.all_reduce_(torch.stack([acc[k].double() for k in keys]))
        return dict(zip(keys, total.unbind()))

    def validate(self) -> dict[str, float]:
        """Natural and PGD-K accuracy on the validation split (or the test set: the papers' protocol)."""
        return validate(self)

    # -- checkpoints ----------------------------------------------------------------------------
    def recovery_state(self) -> dict[str, Any]:
        """What recovery.pt keeps besides the model: optimizer, random streams, the parts' and the callbacks'
        state, and every metrics row (resume restores rows a kill kept from metrics.jsonl)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "data": self.generator.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "device": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            },
            "extra": self.extra_state(),
            "callbacks": {cb.key: cb.state_dict() for cb in self.callbacks if cb.key},
            "history": self.history,
        }

    def extra_state(self) -> dict[str, Any]:
        """The parts' state (MMA's radii, BiLAW's weight net, optimizer and validation order, ...)."""
        return {"parts": self.parts.state_dict()}

    def _restore(self, data: dict[str, Any]) -> None:
        data = recovery_state(data)  # (a recovery.pt of an earlier release, in this release's form)
        self.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.epoch = int(data["epoch"])
        torch.set_rng_state(data["rng"]["torch"].cpu())
        self.generator.set_state(data["rng"]["data"].cpu())
        if self.device.type == "cuda" and data["rng"].get("device") is not None:
            # the training device's stream (the same on every rank), restored on this rank's device
            torch.cuda.set_rng_state(data["rng"]["device"].cpu(), self.device)
        elif torch.cuda.is_available() and data["rng"].get("cuda"):
            torch.cuda.set_rng_state_all([s.cpu() for s in data["rng"]["cuda"]])
        self.parts.load_state_dict(data["extra"]["parts"])
        for cb in self.callbacks:
            if cb.key in data["callbacks"]:
                cb.load_state_dict(data["callbacks"][cb.key])
        self.history = list(data["history"])


def _is_compile_error(exc: BaseException) -> bool:
    """An error of torch.compile's machinery (dynamo, inductor), here or anywhere in its cause chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__module__.startswith(("torch._dynamo", "torch._inductor")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _sum_hook(state, bucket):
    """DDP communication hook: Σ of the bucket's gradients over ranks (the default hook averages)."""
    import torch.distributed as dist

    fut = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])
