"""`irat bench`: training and evaluation throughput on the current device, irat vs a reference-style loop.

The reference-style loop is written the way the papers' scripts train: batches live on the host and
are copied per step, fp32, a per-batch PGD under `model.eval()` whose backward also fills parameter
gradients (GAIRAT/MART style; TRADES uses `autograd.grad` on the KL), `model.train()` for the update,
and a `.item()` per step. irat's side is `Trainer.train_step` on device-resident data with the run's
fast-path flags (precision, channels_last, compile). The two alternate in one process; each figure is
the median over `repeats` timed windows of `iters` batches, after one warm-up window.

The floor: FLOPs of one training step are counted with `torch.utils.flop_counter` on irat's step,
the device's matrix rate is measured once (a large matmul in bf16 on GPUs, fp32 on CPUs), and the
report gives the fraction of that floor the trainer reaches.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Config, apply_dict
from .data.device_data import DeviceData, Splits
from .errors import IratError
from .evaluate import evaluate
from .methods import apply_method
from .models import create_model
from .train import Trainer
from .utils import resolve_device


def synthetic_splits(n: int, channels: int, size: int, classes: int, device: torch.device, seed: int = 0) -> Splits:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    val = DeviceData(x[:256], y[:256], 1 / 255, device)
    return Splits(DeviceData(x, y, 1 / 255, device), val, val, classes, (channels, size, size), "synthetic", False)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    x_host: torch.Tensor,
    y_host: torch.Tensor,
    device: torch.device,
    *,
    eps: float,
    alpha: float,
    steps: int,
    trades: bool,
    beta: float,
) -> float:
    """One step of the papers' training loop, as their scripts write it: TRADES' (KL attack from x + 0.001·N(0,I),
    CE + β·KL) when `trades`, else AT's (CE attack from a uniform start, CE)."""
    x, y = x_host.to(device), y_host.to(device)
    model.eval()
    if trades:
        x_adv = x.detach() + 0.001 * torch.randn_like(x)
        p_nat = F.softmax(model(x), 1).detach()
        for _ in range(steps):
            x_adv.requires_grad_()
            loss_kl = F.kl_div(F.log_softmax(model(x_adv), 1), p_nat, reduction="sum")
            grad = torch.autograd.grad(loss_kl, [x_adv])[0]
            x_adv = x_adv.detach() + alpha * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    else:
        x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0.0, 1.0)
        for _ in range(steps):
            x_adv = x_adv.detach().requires_grad_()
            model.zero_grad()
            loss_adv = F.cross_entropy(model(x_adv), y)
            loss_adv.backward()  # fills parameter gradients too, as the scripts do
            x_adv = x_adv.detach() + alpha * x_adv.grad.sign()  # type: ignore[union-attr]
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    model.train()
    opt.zero_grad()
    if trades:
        logits = model(x)
        loss = F.cross_entropy(logits, y) + beta * F.kl_div(
            F.log_softmax(model(x_adv.detach()), 1), F.softmax(logits, 1), reduction="batchmean"
        )
    else:
        loss = F.cross_entropy(model(x_adv.detach()), y)
    loss.backward()
    opt.step()
    return loss.item()  # the per-step host sync of the scripts


def _timed(fn: Callable[[int], None], iters: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for i in range(iters):
        fn(i)
    _sync(device)
    return time.perf_counter() - t0


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """Measured dense matmul rate (FLOP/s) — the device's practical peak for the floor estimate."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


@dataclass(frozen=True)
class BenchCase:
    """One training-throughput measurement: the method, the model and its synthetic input, the batch, the
    attack's steps, the timing (iters a window, repeats), the fast-path flags and the radius."""

    method: str
    model: str
    size: int
    channels: int
    classes: int
    batch_size: int
    steps: int
    iters: int
    repeats: int
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    eps: float = 8 / 255


def bench_training(case: BenchCase, device: torch.device) -> dict:
    """Examples/s of irat's train step vs the reference-style loop, alternating, medians and ratio."""
    method, model, size, channels, classes = case.method, case.model, case.size, case.channels, case.classes
    batch_size, steps, iters, repeats, eps = case.batch_size, case.steps, case.iters, case.repeats, case.eps
    precision, channels_last, compile = case.precision, case.channels_last, case.compile
    n = batch_size * iters
    splits = synthetic_splits(n, channels, size, classes, device)
    cfg = Config()
    apply_method(cfg, method)
    apply_dict(
        cfg,
        {
            "model": {"arch": model},
            "attack": {"eps": eps, "steps": steps},
            "batch_size": batch_size,
            "epochs": 1,
            "progress": False,
            "device": str(device),
            "precision": precision,
            "channels_last": channels_last,
            "compile": compile,
        },
    )
    with tempfile.TemporaryDirectory(prefix="irat-bench-") as tmp:  # the trainer writes nothing in train_step
        trainer = Trainer(cfg, tmp, splits=splits)
    ref_model = create_model(model, in_channels=channels, num_classes=classes, input_size=size).to(device)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x_host, y_host = splits.train.x.cpu().float() / 255, splits.train.y.cpu()
    batches = [(splits.train.get(slice(i * batch_size, (i + 1) * batch_size))) for i in range(iters)]
    idx = torch.arange(batch_size, device=device)

    def irat_step(i: int) -> None:
        x, y = batches[i]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with trainer.autocast():
            trainer.train_step(x, y, idx, 1)

    trades = trainer.parts.objective.attack_loss == "kl"  # the TRADES family's reference step

    def ref_step(i: int) -> None:
        sl = slice(i * batch_size, (i + 1) * batch_size)
        reference_step(
            ref_model,
            ref_opt,
            x_host[sl],
            y_host[sl],
            device,
            eps=eps,
            alpha=eps / 4,
            steps=steps,
            trades=trades,  # the TRADES family's step
            beta=6.0,
        )

    trainer.model.train()
    for _ in range(2):  # warm-up: one untimed window per side, twice (kernel caches, allocator, CPU threads)
        _timed(irat_step, iters, device)
        _timed(ref_step, iters, device)
    t_irat, t_ref = [], []
    for _ in range(repeats):
        t_ref.append(_timed(ref_step, iters, device))
        t_irat.append(_timed(irat_step, iters, device))
    ips_irat = n / statistics.median(t_irat)
    ips_ref = n / statistics.median(t_ref)
    flops = step_flops(trainer.model, batches[0][0], batches[0][1], steps, trades) / batch_size
    rate = matmul_rate(device, torch.bfloat16 if precision == "bf16" else torch.float32)  # the precision it ran in
    return {
        "method": method,
        "model": model,
        "input": f"{channels}x{size}x{size}",
        "batch_size": batch_size,
        "attack_steps": steps,
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile and not getattr(trainer, "compile_failed", False),
        "irat_examples_per_s": round(ips_irat, 1),
        "reference_examples_per_s": round(ips_ref, 1),
        "speedup": round(ips_irat / ips_ref, 3),
        "flops_per_example": flops,
        "matmul_flops_per_s": rate,
        "fraction_of_floor": round(flops * ips_irat / rate, 4),
        "irat_times_s": [round(t, 4) for t in t_irat],
        "reference_times_s": [round(t, 4) for t in t_ref],
    }


def step_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, trades: bool) -> float:
    """FLOPs of one training step: a forward (f) and a full backward (b) are counted with
    torch.utils.flop_counter (it cannot trace autograd.grad), then combined per the step's structure —
    each attack step is a forward and an input-only backward (≈ b/2); AT adds one forward + backward,
    TRADES a natural forward for p(x) and forward + backward through both branches."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    total = float(counter.get_total_flops())
    with FlopCounterMode(display=False) as fwd_counter, torch.no_grad():
        model(x)
    f = float(fwd_counter.get_total_flops())
    b = total - f
    return steps * (f + b / 2) + (3 * f + 2 * b if trades else f + b)


def bench_eval(
    *,
    model: str,
    size: int,
    channels: int,
    classes: int,
    n: int,
    device: torch.device,
    eps: float = 8 / 255,
    attacks: tuple[str, ...] = ("pgd20", "apgd-ce", "aa"),
) -> list[dict]:
    """Examples/s of evaluation attacks on an untrained model (every example is attacked, worst case)."""
    torch.manual_seed(0)
    net = create_model(model, in_channels=channels, num_classes=classes, input_size=size).to(device).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, channels, size, size, generator=g).to(device)
    with torch.no_grad():
        y = net(x).argmax(1)  # labels = predictions: every example starts correct and gets attacked
    rows = []
    for a in attacks:
        rec = evaluate(net, x, y, attacks=[a], eps=eps, batch_size=max(n, 1), sanity=False)
        cfg = rec["attacks"][a]
        rows.append({"attack": a, "n": n, "time_s": cfg["time_s"], "examples_per_s": cfg["examples_per_s"]})
    return rows


def run_bench(
    case: BenchCase,
    *,
    methods: list[str],
    batch_sizes: list[int],
    device: str | None,
    eval_n: int,
    eval_attacks: list[str],
) -> dict:
    """`case` for every method and batch size (its own method and batch size are replaced), then evaluation."""
    if case.iters < 1 or case.repeats < 1 or case.steps < 0 or eval_n < 0 or any(b < 1 for b in batch_sizes):
        raise IratError("--iters, --repeats and --batch-size must be >= 1; --steps and --eval-n >= 0")
    if case.precision not in ("fp32", "bf16"):
        raise IratError(f"--precision must be fp32 or bf16, got {case.precision!r}")
    dev = resolve_device(device)
    from .models import canonical

    canonical(case.model)
    train = [bench_training(replace(case, method=m, batch_size=b), dev) for m in methods for b in batch_sizes]
    ev = (
        bench_eval(
            model=case.model,
            size=case.size,
            channels=case.channels,
            classes=case.classes,
            n=eval_n,
            device=dev,
            attacks=tuple(eval_attacks),
        )
        if eval_n
        else []
    )
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return {"device": name, "torch": torch.__version__, "training": train, "evaluation": ev}
