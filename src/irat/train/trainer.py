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
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import distributed
from ..attacks.anpgd import an_pgd
from ..attacks.checks import attack_mode, frozen_bn_stats
from ..attacks.losses import soft_logit_margin
from ..attacks.pgd import pgd
from ..attacks.squeeze import squeeze_pair
from ..config import Config, from_dict
from ..data import Splits, load_splits
from ..data.unlabeled import build_unlabeled, mixed_batches, n_mixed_batches
from ..errors import ConfigError, IratError
from ..evaluate.core import evaluate
from ..models import create_model
from ..objectives import make_objective, mma_dmax
from ..utils import atomic_write_text, resolve_device
from .checkpoint import load_checkpoint, save_checkpoint
from .schedules import learning_rate, stepwise_value
from .validate import validate_config
from .awp import AWP
from .bilaw import BiLAW
from .reweight import Reweighter, natural_logits, summarize
from ..margins import pm_dif, probabilistic_margin
from ..radius import radius_for
from ..utils import atomic_write

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
        self.dist = distributed.context()
        distributed.check_batch_size(cfg.batch_size)
        self.cfg = cfg
        self.device = distributed.device_for(resolve_device(cfg.device))
        if cfg.sync_bn and self.dist.enabled and self.device.type != "cuda":
            raise ConfigError("sync_bn needs CUDA GPUs (PyTorch's SyncBatchNorm does not run on CPU); drop it on CPU")
        self.resume_state = state["data"] if (resume and state is not None) else None
        self.splits = splits if splits is not None else load_splits(
            cfg.data.dataset, cfg.data.data_dir, download=cfg.data.download, val_size=cfg.data.val_size,
            split_seed=cfg.data.split_seed, train_subset=cfg.data.train_subset, test_subset=cfg.data.test_subset,
            augment=cfg.data.augment, device=self.device)
        c, h, _ = self.splits.shape
        torch.manual_seed(cfg.seed)
        self.model = create_model(cfg.model.arch, in_channels=c, num_classes=self.splits.num_classes,
                                  input_size=h).to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and self.dist.enabled:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.net = self._compiled(self.model) if cfg.compile else self.model   # forward used by attacks and steps
        self.train_net = self._data_parallel(self.net) if self.dist.enabled else self.net   # the step's forward
        self._frac = 1.0   # this rank's share of the global batch: local mean losses × frac sum to the global mean
        self._told_skip = False   # said once that batches smaller than the number of ranks are skipped
        self.meta = dict(self.model.irat_meta, dataset=self.splits.name)
        self.objective = make_objective(cfg.objective.name, cfg.objective.beta, cfg.objective.mma_clean_coeff)
        self.reweighter = Reweighter(cfg, self.objective)
        self.save_epochs = {int(e) for e in cfg.save_per_example}
        self._epoch_buf: dict[str, list[torch.Tensor]] = {}
        self._tb = None  # TensorBoard writer, opened on first use
        self.bilaw = None
        if cfg.weighting.name in ("bilaw", "bilaw-np"):
            meta_idx, keep_idx = _split_meta(len(self.splits.train), cfg.weighting.bilaw_meta_size, cfg.data.split_seed)
            meta = self.splits.train.subset(meta_idx)
            self.splits.train = self.splits.train.subset(keep_idx)
            self.bilaw = BiLAW(self.splits.num_classes, meta, hidden=cfg.weighting.bilaw_hidden,
                               lr=cfg.weighting.bilaw_lr, batch_size=cfg.batch_size, seed=cfg.seed,
                               parametric=cfg.weighting.name == "bilaw", device=self.device,
                               net_input=cfg.weighting.bilaw_input)
        self.unlabeled, self.unlabeled_info = None, None
        u = cfg.unlabeled
        if u.path or u.withhold:
            self.splits.train, self.unlabeled, self.unlabeled_info = build_unlabeled(
                u, self.splits.train, self.splits.shape, self.splits.num_classes, cfg.data.split_seed)
        self.mma_eps = None   # MMA: every training example's last radius (its margin estimate), by example index
        if cfg.objective.name == "mma":
            n_index = 1 + max(int(d.index.max()) for d in (self.splits.train, self.unlabeled) if d is not None and len(d))
            self.mma_eps = torch.zeros(n_index, device=self.device)
            self._mma_touched = torch.zeros(n_index, dtype=torch.bool, device=self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                         weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.awp = AWP(self.model, cfg.awp.gamma, cfg.awp.proxy_lr) if cfg.awp.enabled else None
        self.epoch = 0
        self.best = {"epoch": 0, "robust": -1.0}
        if self.resume_state is not None:
            self._restore(self.resume_state)

    def _compiled(self, model: nn.Module) -> nn.Module:
        """torch.compile'd forward sharing the model's parameters; eager (with a message) if compiling fails."""
        try:
            net = torch.compile(model)
            c, h, w = self.splits.shape
            probe = torch.rand(2, c, h, w, device=self.device)
            with torch.no_grad(), self.autocast():
                net(probe)
            return net
        except Exception as exc:  # noqa: BLE001 — any backend failure falls back to eager
            import sys
            print(f"irat: torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                  f"training in eager mode", file=sys.stderr)
            self.compile_failed = True
            return model

    def _data_parallel(self, net: nn.Module) -> nn.Module:
        """DistributedDataParallel around the step's forward; gradients are summed over ranks (each rank's
        loss is already its share of the global mean), not averaged."""
        import warnings
        from torch.nn.parallel import DistributedDataParallel as DDP
        # a size-1 dimension (e.g. one input channel) makes a gradient's strides differ from the bucket's:
        # PyTorch warns, but the copy is correct and costs nothing measurable
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        ddp = DDP(net, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                  gradient_as_bucket_view=True)
        ddp.register_comm_hook(None, _sum_hook)
        return ddp

    def autocast(self):
        """bf16 autocast for the training forward passes and the training attack (precision=bf16)."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                              enabled=self.cfg.precision == "bf16")

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
        """Radius → attack → objective terms → weights → (AWP) step. Returns per-batch device stats."""
        eps, step = radius_for(self.cfg.radius, self.model, x, y, epoch, self.eps, self.alpha)
        kw = self.attack_kwargs(epoch)
        kw.update(eps=eps, alpha=step)
        saving = epoch in self.save_epochs
        want_info = self.reweighter.needs_kappa or saving
        if self.reweighter.record_step or saving:
            kw["record_step"] = "kappa"
        net = self.net
        x_adv2, info, mask = None, None, None
        name = self.objective.name
        if name == "standard":      # plain training: the "adversarial" batch is the batch
            x_adv = x
        elif name == "mma":         # AN-PGD points of correctly classified examples, x itself for the others
            x_adv, eps, mask = self.mma_attack(net, x, y, idx)
        elif name == "st":          # the adversarial and the collaborative example, found jointly
            x_adv, x_adv2 = squeeze_pair(net, x, y, eps=eps, alpha=step, steps=kw["steps"], norm=kw["norm"],
                                         bn_mode=kw["bn_mode"])
        else:
            x_adv, info = pgd(net, x, y, return_info=True, **kw) if want_info else (pgd(net, x, y, **kw), None)
        if self.objective.second_attack:
            kw2 = dict(kw, loss=self.objective.second_attack, start="uniform", record_step=None, tau=None)
            x_adv2 = pgd(net, x, y, **kw2)
        w_raw = None
        if self.bilaw is not None and self.reweighter.active(epoch):
            w_raw = self.bilaw.weights(self.model, self.objective, self.reweighter.targets, x, x_adv, y,
                                       self.optimizer.param_groups[0]["lr"], self.meta_attack)
        awp_on = self.awp is not None and epoch > self.cfg.awp.warmup
        if awp_on:
            diff = self.awp.perturbation(
                lambda m: self._frac * self.batch_loss(m, x, x_adv, y, info, epoch, w_raw, x_adv2, mask)[0])
            self.awp.apply(diff, +1.0)
        self.model.train()
        loss, logits_adv, logits_nat, w_used = self.batch_loss(self.train_net, x, x_adv, y, info, epoch, w_raw,
                                                               x_adv2, mask)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * self._frac).backward()
        self.optimizer.step()
        if awp_on:
            self.awp.apply(diff, -1.0)
        self._observe(x, y, idx, eps, info, logits_adv, logits_nat, w_used, saving)
        stats = {"loss": loss.detach() * len(y), "adv_correct": (logits_adv.argmax(1) == y).sum()}
        if logits_nat is not None:
            stats["nat_correct"] = (logits_nat.argmax(1) == y).sum()
        return stats

    def batch_loss(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, info, epoch: int,
                   w_raw: torch.Tensor | None = None, x_adv2: torch.Tensor | None = None,
                   mask: torch.Tensor | None = None):
        """The (weighted) training loss of one batch on `model` (the model itself or AWP's proxy)."""
        logits_adv = model(x_adv)
        logits_nat = model(x) if self.objective.needs_natural else None
        logits_adv2 = None
        if x_adv2 is not None:   # ST-AT's collaborative example leaves BN's running statistics alone (released code)
            with frozen_bn_stats(model, self.objective.name == "st"):
                logits_adv2 = model(x_adv2)
        terms = self.objective.terms(logits_nat, logits_adv, y, logits_adv2, mask)
        weights = None
        if self.reweighter.active(epoch):
            if w_raw is None:
                w_raw = self.reweighter.raw(model, info=info, x=x, y=y, logits_adv=logits_adv, logits_nat=logits_nat,
                                            epoch=epoch)
            weights = self.reweighter.term_weights(w_raw)
        return self.objective.combine(terms, weights), logits_adv, logits_nat, w_raw

    def mma_attack(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor):
        """MMA's training points (released trainer): AN-PGD from each example's last radius for the examples
        classified correctly (soft logit margin < 0), the clean input for the rest (radius 0). Returns
        (inputs, radii, counted) — counted: misclassified, or radius below d_max (the hinge)."""
        a, o = self.cfg.attack, self.cfg.objective
        d_max = mma_dmax(o.mma_dmax, self.eps)
        with torch.no_grad(), attack_mode(net, "eval"):
            correct = soft_logit_margin(net(x), y) < 0
        prev = self.mma_eps[idx].clamp_min(o.mma_min_eps)
        x_an, r = an_pgd(net, x, y, prev, max_eps=1.05 * d_max, steps=a.steps, search_steps=o.mma_search_steps,
                         step_scale=o.mma_step_scale, norm=a.norm, loss=a.loss or "slm", start=a.start or "uniform")
        r = torch.where(correct, r, torch.zeros_like(r))
        self.mma_eps[idx] = r
        if self.dist.enabled:
            self._mma_touched[idx] = True
        x_mma = torch.where(correct.reshape(-1, *([1] * (x.dim() - 1))), x_an, x)
        return x_mma, r, ~correct | (r < d_max)

    def train_batches(self):
        """This epoch's (x, y, index) batches: the training set, topped up with pseudo-labelled data for RST."""
        cfg = self.cfg
        if self.unlabeled is not None:
            return mixed_batches(self.splits.train, self.unlabeled, cfg.batch_size, cfg.unlabeled.fraction,
                                 generator=self.generator, augment=self.splits.augment)
        return self.splits.train.batches(cfg.batch_size, shuffle=True, generator=self.generator,
                                         augment=self.splits.augment)

    def meta_attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """PGD examples of a validation batch for BiLAW's look-ahead (CE, the training threat model)."""
        a = self.cfg.attack
        return pgd(model, x, y, eps=self.eps, alpha=self.alpha, steps=a.steps, norm=a.norm, loss="ce",
                   start="uniform", bn_mode=a.bn_mode, check_inputs=False)

    def _observe(self, x, y, idx, eps, info, logits_adv, logits_nat, w_raw, saving) -> None:
        """Collect per-example quantities on the device for the epoch's metrics (and saved values)."""
        buf = self._epoch_buf
        if w_raw is not None:
            buf.setdefault("weight", []).append(w_raw.detach())
        if info is not None:
            buf.setdefault("kappa", []).append(info.kappa)
        if torch.is_tensor(eps):
            buf.setdefault("eps", []).append(eps.detach())
        if self.reweighter.w.name in ("mail", "wmmr") or saving:
            buf.setdefault("pm_adv", []).append(probabilistic_margin(logits_adv.detach(), y))
        if saving:
            nat = logits_nat.detach() if logits_nat is not None else natural_logits(self.model, x)
            buf.setdefault("pm_nat", []).append(probabilistic_margin(nat, y))
            if info is not None and info.x_at_step is not None:
                buf.setdefault("pm_dif", []).append(pm_dif(nat, natural_logits(self.model, info.x_at_step), y))
            buf.setdefault("index", []).append(idx)
            buf.setdefault("label", []).append(y)
            if not torch.is_tensor(eps):
                buf.setdefault("eps_scalar", []).append(torch.full_like(y, float(eps), dtype=torch.float))
        if self.bilaw is not None:
            buf.setdefault("bilaw_val_loss", []).append(self.bilaw.last_val_loss.reshape(1))

    # -- epochs ---------------------------------------------------------------------------------
    def fit(self, max_epochs: int | None = None) -> dict[str, Any]:
        """Train until cfg.epochs (or `max_epochs` more epochs); returns the last metrics row."""
        cfg = self.cfg
        main = self.dist.main   # only rank 0 writes (checkpoints, logs, per-example files) and shows progress
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / "config.yaml", cfg.to_yaml())
            self._trim_metrics()
        last_row: dict[str, Any] = {}
        stop = cfg.epochs if max_epochs is None else min(cfg.epochs, self.epoch + max_epochs)
        n_batches = (math.ceil(len(self.splits.train) / cfg.batch_size) if self.unlabeled is None else
                     n_mixed_batches(len(self.splits.train), cfg.batch_size, cfg.unlabeled.fraction))
        if self.unlabeled_info is not None and main:
            atomic_write_text(self.out / "unlabeled.json", json.dumps(self.unlabeled_info, indent=1) + "\n")
        while self.epoch < stop:
            epoch = self.epoch + 1
            t0 = time.perf_counter()
            self.model.train()
            if self.bilaw is not None:
                self.bilaw.new_epoch()
            acc: dict[str, torch.Tensor] = {}
            seen, seen_here, skipped = 0, 0, 0
            bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", disable=not (cfg.progress and main),
                       leave=False)
            for i, (x, y, idx) in enumerate(self.train_batches()):
                progress = (epoch - 1) + (i / n_batches if cfg.optim.step_per == "iteration" else 0.0)
                lr = learning_rate(cfg.optim, cfg.epochs, progress)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                n = len(y)
                if n < self.dist.world:   # a last batch too small to give every rank an example (all ranks skip it)
                    skipped += n
                    continue
                with distributed.batch_shard(n) as (lo, hi):   # this rank's slice of the global batch
                    if self.dist.enabled:
                        x, y, idx = x[lo:hi], y[lo:hi], idx[lo:hi]
                        self._frac = (hi - lo) / n
                    if cfg.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    with self.autocast():
                        stats = self.train_step(x, y, idx, epoch)
                for k, v in stats.items():
                    acc[k] = acc[k] + v if k in acc else v
                seen += n
                seen_here += len(y)
                bar.update(1)
                if cfg.progress and main and (i % 20 == 0 or i == n_batches - 1):
                    bar.set_postfix(loss=f"{acc['loss'].item() / seen_here:.3f}",
                                    adv_acc=f"{100 * acc['adv_correct'].item() / seen_here:.1f}")
            bar.close()
            acc = self._reduce_stats(acc)
            if skipped and main and not self._told_skip:
                self._told_skip = True
                tqdm.write(f"irat: the last batch of each epoch ({skipped} examples) is smaller than the "
                           f"{self.dist.world} ranks and is skipped")
            if not torch.isfinite(acc["loss"]):   # checked once per epoch: no host sync inside the loop
                raise IratError(f"the training loss became {acc['loss'].item()} in epoch {epoch}; lower the "
                                f"learning rate (the last good state is kept in {RECOVERY})")
            row: dict[str, Any] = {"epoch": epoch, "lr": lr, "train_loss": acc["loss"].item() / seen,
                                   "train_adv_acc": 100 * acc["adv_correct"].item() / seen}
            if "nat_correct" in acc:
                row["train_nat_acc"] = 100 * acc["nat_correct"].item() / seen
            row.update(self.extra_metrics())
            row["train_time_s"] = time.perf_counter() - t0
            if cfg.flatness_n:
                row.update(self.flatness())
            row["train_examples_per_s"] = seen / row["train_time_s"]
            self.epoch = epoch
            if epoch % cfg.val_every == 0 or epoch == cfg.epochs:
                row.update(self.validate())
            self._checkpoint(row)
            if main:
                with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                if cfg.tensorboard:
                    self._tensorboard(row)
            distributed.barrier()   # no rank runs ahead of rank 0's checkpoint
            last_row = row
            if cfg.progress and main:
                shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()
                         if k in ("epoch", "train_loss", "train_adv_acc", "val_nat", "val_pgd", "train_time_s")}
                tqdm.write(json.dumps(shown))
        return last_row

    def _reduce_stats(self, acc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The epoch's sums over all ranks (one collective); the identity in one process."""
        if not self.dist.enabled or not acc:
            return acc
        keys = sorted(acc)
        total = distributed.all_reduce_(torch.stack([acc[k].double() for k in keys]))
        return dict(zip(keys, total.unbind()))

    def _sync_mma_radii(self) -> None:
        """Each rank updated the radii of its own examples this epoch; every rank now gets all of them."""
        touched = self._mma_touched
        vals = distributed.all_reduce_(torch.where(touched, self.mma_eps, torch.zeros_like(self.mma_eps)))
        count = distributed.all_reduce_(touched.to(self.mma_eps.dtype))
        self.mma_eps = torch.where(count > 0, vals / count.clamp_min(1), self.mma_eps)
        touched.zero_()

    def extra_metrics(self) -> dict[str, Any]:
        """Per-epoch distributions of weights, κ, margins and radii (gathered over ranks); saves
        per-example values if asked."""
        if self.mma_eps is not None and self.dist.enabled:
            self._sync_mma_radii()
        buf = {k: torch.cat(v) for k, v in sorted(self._epoch_buf.items())}
        buf = {k: v if k == "bilaw_val_loss" else distributed.gather_cat(v) for k, v in buf.items()}
        self._epoch_buf = {}
        self._last_buf = buf
        row: dict[str, Any] = {}
        if "weight" in buf:
            row.update(summarize(buf["weight"], "weight"))
        if "kappa" in buf:
            k = self.cfg.attack.steps
            row["kappa_hist"] = torch.bincount(buf["kappa"].clamp(0, k), minlength=k + 1).tolist()
        if "pm_adv" in buf:
            row.update(summarize(buf["pm_adv"], "pm_adv"))
        if "eps" in buf:
            e = buf["eps"]
            row.update({"eps_min": e.min().item(), "eps_mean": e.mean().item(), "eps_max": e.max().item()})
        if "bilaw_val_loss" in buf:
            row["bilaw_val_loss"] = buf["bilaw_val_loss"].mean().item()
        if "index" in buf and self.dist.main:
            self._save_per_example(buf)
        return row

    def flatness(self) -> dict[str, float]:
        """Mean ‖∇ₓ CE‖₂ at friendly (PGD stopped at the first misclassification, FAT τ = 0) and at
        most-adversarial (PGD-K) points of the first `flatness_n` training examples (GAIRAT Fig. 4)."""
        from ..attacks import fat_pgd, pgd
        x, y = self.splits.train.head(self.cfg.flatness_n).all()
        a = self.cfg.attack
        gen = torch.Generator(device=x.device).manual_seed(self.cfg.seed + self.epoch)  # leaves training's RNG alone
        out = {}
        for key, xa in (("flat_friendly", fat_pgd(self.model, x, y, eps=self.eps, alpha=self.alpha, steps=a.steps,
                                                  tau=0, step_noise=0.0, norm=a.norm, generator=gen)),
                        ("flat_adv", pgd(self.model, x, y, eps=self.eps, alpha=self.alpha, steps=a.steps,
                                         norm=a.norm, generator=gen))):
            with attack_mode(self.model, "eval"):
                xr = xa.detach().requires_grad_(True)
                g, = torch.autograd.grad(F.cross_entropy(self.model(xr), y, reduction="sum"), xr)
            out[key] = g.flatten(1).norm(dim=1).mean().item()
        return out

    def _tensorboard(self, row: dict[str, Any]) -> None:
        """Per-epoch scalars and weight/margin/κ/radius histograms under RUN/tensorboard."""
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(self.out / "tensorboard"))
        for k, v in row.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch":
                self._tb.add_scalar(k, v, row["epoch"])
        for k in ("weight", "pm_adv", "kappa", "eps"):
            if k in getattr(self, "_last_buf", {}):
                self._tb.add_histogram(k, self._last_buf[k].float().cpu(), row["epoch"])
        self._tb.flush()

    def _save_per_example(self, buf: dict[str, torch.Tensor]) -> None:
        import numpy as np
        out = {"index": buf["index"], "label": buf["label"], "pm_adv": buf["pm_adv"], "pm_nat": buf["pm_nat"]}
        out["weight"] = buf["weight"] if "weight" in buf else torch.ones_like(buf["label"], dtype=torch.float)
        out["eps"] = buf.get("eps", buf.get("eps_scalar"))
        for k in ("kappa", "pm_dif"):
            if k in buf:
                out[k] = buf[k]
        path = self.out / "per_example" / f"epoch_{self.epoch + 1:03d}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: v.cpu().numpy() for k, v in out.items()}

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        atomic_write(path, write)

    def validate(self) -> dict[str, float]:
        """Natural and PGD-K accuracy on the validation split (or the test set: the papers' protocol)."""
        cfg = self.cfg
        data = (self.splits.test if cfg.best_on == "test" else self.splits.val).head(cfg.val_n)
        if len(data) == 0:
            return {}
        x, y = data.all()
        rec = evaluate(self.model, x, y, attacks=["natural", f"pgd{cfg.val_steps}"], eps=self.eps,
                       norm=cfg.attack.norm, alpha=self.eps / 4, batch_size=cfg.eval_batch_size, seed=cfg.seed,
                       sanity=False)
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
        if not self.dist.main:
            return
        payload = self._payload(row)
        save_checkpoint(self.out / LAST, payload)
        if is_best or not (self.out / BEST).exists():
            save_checkpoint(self.out / BEST, payload)
        payload = dict(payload, optimizer=self.optimizer.state_dict(), best=self.best,
                       rng={"torch": torch.get_rng_state(), "data": self.generator.get_state(),
                            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                            "device": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None},
                       extra=self.extra_state())
        save_checkpoint(self.out / RECOVERY, payload)

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"bilaw": self.bilaw.state_dict()} if self.bilaw is not None else {}
        if self.mma_eps is not None:
            state["mma_eps"] = self.mma_eps.clone()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.bilaw is not None and "bilaw" in state:
            self.bilaw.load_state_dict(state["bilaw"])
        if self.mma_eps is not None and "mma_eps" in state:
            self.mma_eps.copy_(state["mma_eps"].to(self.mma_eps.device))

    def _restore(self, data: dict[str, Any]) -> None:
        self.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.epoch = int(data["epoch"])
        self.best = {"epoch": int(data["best"]["epoch"]), "robust": float(data["best"]["robust"])}
        torch.set_rng_state(data["rng"]["torch"].cpu())
        self.generator.set_state(data["rng"]["data"].cpu())
        if self.device.type == "cuda" and data["rng"].get("device") is not None:
            # the training device's stream (the same on every rank), restored on this rank's device
            torch.cuda.set_rng_state(data["rng"]["device"].cpu(), self.device)
        elif torch.cuda.is_available() and data["rng"].get("cuda"):
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


def _sum_hook(state, bucket):  # noqa: ANN001 — DDP checks these annotations: left empty on purpose
    """DDP communication hook: Σ of the bucket's gradients over ranks (the default hook averages)."""
    import torch.distributed as dist
    fut = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


def _split_meta(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """BiLAW's second validation set (drives the weight net), split off the training set, seeded."""
    if size < 1 or size >= n:
        raise ConfigError(f"weighting.bilaw_meta_size must be in [1, {n - 1}] for {n} training examples, got {size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    return perm[:size].sort().values, perm[size:].sort().values


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
