"""`irat doctor`: does irat run correctly and fast on this machine, and which settings should I use?

One command, one verdict per line and a JSON record, in four sections:

- **environment**: device, its memory, PyTorch / CUDA versions, bf16 and TF32 support, the measured
  dense matmul rate in fp32 and bf16;
- **correctness on this device**: a few training steps of one method of each part family (and AT with
  bf16 + channels_last + compile): finite losses, weights that moved and stayed finite; for a small fixed
  model, this device's fp32 training step, κ and per-example PGD / AutoAttack-component results against
  the CPU's (skipped when this device *is* the CPU: it needs a second device); a short run stopped after
  one epoch and resumed, against the same run uninterrupted;
- **speed**: irat's training step against the reference-style loop (`irat bench`) in fp32 and in
  bf16 + channels_last, the projected seconds per CIFAR-10 epoch of PGD-10 AT, the fraction of the
  matmul rate reached, and evaluation throughput (PGD-20, APGD-CE, AutoAttack);
- **recommendations**: the fast-path settings that measured faster here, how many small-model jobs a
  sweep should run per device, and (`--preset NAME`) the estimated time of a preset's run.

`--quick` shrinks every measurement (about two minutes on a 2-core CPU, as CI runs it); without it the
sizes are those of the papers' CIFAR-10 runs (ResNet-18, 32×32, batch 128 and 512).
"""

from __future__ import annotations

import copy
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .bench import BenchCase, bench_eval, bench_training, matmul_rate
from .config import Config, apply_dict, set_chosen_option
from .errors import IratError
from .methods import apply_method
from .utils import resolve_device

# one method of each part family (objective, weighting, radius, AWP, learned weights, own attacks)
FAMILIES = ("at", "trades", "mart", "fat", "gairat", "mail-trades", "mwpb-at", "awp-at", "bilaw", "mma", "st-at")
CIFAR10_TRAIN = 50_000
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "svhn": 73_257, "mnist": 60_000, "fashion-mnist": 60_000}
TRAIN_SIZES.update({"tiny-imagenet": 100_000, "digits": 1_797 - 360})  # digits: the embedded set less its test split


@dataclass
class Sizes:
    """How large each measurement is: `quick` for CI and a first look, `full` for a GPU."""

    matmul_n: int
    bench_model: str
    bench_batches: tuple[int, ...]
    bench_steps: int
    bench_iters: int
    bench_repeats: int
    eval_model: str
    eval_size: int
    eval_channels: int
    eval_n: int


QUICK = Sizes(512, "resnet18", (16,), 2, 1, 1, "tinycnn", 28, 1, 16)
FULL = Sizes(4096, "resnet18", (128, 512), 10, 5, 3, "resnet18", 32, 3, 512)


def check(name: str, ok: bool | None, detail: str, **data: Any) -> dict[str, Any]:
    """One verdict: pass / FAIL / skip (ok None), what was measured, and the numbers."""
    return {"check": name, "verdict": "skip" if ok is None else ("pass" if ok else "FAIL"), "detail": detail, **data}


# -- environment -------------------------------------------------------------------------------------------
def environment(dev: torch.device, sizes: Sizes) -> dict[str, Any]:
    env: dict[str, Any] = {
        "device": str(dev),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env.update(
            name=props.name,
            memory_gib=round(props.total_memory / 2**30, 1),
            bf16=bool(torch.cuda.is_bf16_supported()),
            tf32=props.major >= 8,  # Ampere and later
            capability=f"{props.major}.{props.minor}",
        )
    else:
        env.update(name=platform.processor() or platform.machine(), memory_gib=_host_memory_gib(), tf32=False)
        try:  # bf16 on a CPU: supported by PyTorch's kernels, fast only with AVX-512-BF16 / AMX
            torch.ones(2, 2, dtype=torch.bfloat16) @ torch.ones(2, 2, dtype=torch.bfloat16)
            env["bf16"] = True
        except RuntimeError:
            env["bf16"] = False
    env["matmul_tflops_fp32"] = round(matmul_rate(dev, torch.float32, n=sizes.matmul_n, reps=3) / 1e12, 4)
    env["matmul_tflops_bf16"] = (
        round(matmul_rate(dev, torch.bfloat16, n=sizes.matmul_n, reps=3) / 1e12, 4) if env["bf16"] else None
    )
    return env


def _host_memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


# -- correctness -------------------------------------------------------------------------------------------
def _tiny_config(method: str, dev: torch.device, **extra: Any) -> Config:
    cfg = Config()
    apply_method(cfg, method)
    apply_dict(
        cfg,
        {
            "data": {"dataset": "digits", "train_subset": 128, "val_size": 64},
            "model": {"arch": "tinycnn"},
            "attack": {"eps": 0.1, "steps": 3},
            "weighting": {"burn_in": 0},
            "epochs": 2,
            "batch_size": 32,
            "val_n": 32,
            "val_steps": 2,
            "device": str(dev),
            "progress": False,
            "seed": 0,
            **extra,
        },
    )
    set_chosen_option(cfg, "radius", "phase1_epochs", 0)  # MWPB's radii from the first epoch
    set_chosen_option(cfg, "weighting", "meta_size", 32)  # BiLAW's validation set, fitted to 128 examples
    return cfg


def _trainer(cfg: Config, out: Path):
    from .train import Trainer

    return Trainer(cfg, out)


def family_steps(dev: torch.device, work: Path) -> list[dict[str, Any]]:
    """A few training steps of one method per part family, and AT with the fast-path flags."""
    out = []
    cases: list[tuple[str, str, dict[str, Any]]] = [(m, m, {}) for m in FAMILIES]
    fast = {"precision": "bf16", "channels_last": True, "compile": True}
    cases.append(("at+bf16+channels_last+compile", "at", fast))
    for label, method, extra in cases:
        t0 = time.perf_counter()
        try:
            trainer = _trainer(_tiny_config(method, dev, epochs=1, **extra), work / label.replace("+", "_"))
            before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            row = trainer.fit()
            after = trainer.model.state_dict()
            moved = any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
            finite = all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
            ok = bool(moved and finite and math.isfinite(row["train_loss"]))
            detail = f"loss {row['train_loss']:.4f}, weights {'moved' if moved else 'DID NOT MOVE'}" + (
                "" if finite else ", NON-FINITE weights"
            )
            if extra.get("compile") and getattr(trainer, "compile_failed", False):
                detail += " (torch.compile fell back to eager)"
            out.append(check(f"train {label}", ok, detail, seconds=round(time.perf_counter() - t0, 2)))
        except Exception as exc:  # a doctor reports a broken path; it does not stop at it
            out.append(check(f"train {label}", False, f"{type(exc).__name__}: {str(exc)[:200]}"))
    return out


def _fixed_problem(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    from .models import create_model

    torch.manual_seed(seed)
    model = create_model("tinycnn", in_channels=1, num_classes=10, input_size=8)
    g = torch.Generator().manual_seed(seed + 1)
    return model, torch.rand(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)


def device_run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dev: torch.device) -> dict[str, torch.Tensor]:
    """On `dev`: one fp32 AT training step (GA-PGD with κ), then PGD-10 and AutoAttack's APGD-CE / APGD-T
    per example — without random starts, so two devices must agree up to float rounding."""
    from .attacks import pgd
    from .evaluate import evaluate

    model = copy.deepcopy(model).to(dev)
    x, y = x.to(dev), y.to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.eval()
    x_adv, info = pgd(model, x, y, eps=0.1, alpha=0.025, steps=5, start="none", return_info=True)
    model.train()
    loss = nn.functional.cross_entropy(model(x_adv), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    model.eval()
    rec = evaluate(
        model,
        x,
        y,
        attacks=["natural", "pgd10:start=none", "aa:components=apgd-ce+apgd-t:steps=20"],
        eps=0.1,
        sanity=False,
        batch_size=64,
    )
    flat = torch.cat([p.detach().flatten().cpu() for p in model.parameters()])
    return {
        "weights": flat,
        "kappa": info.kappa_count.cpu(),
        **{k: v.cpu() for k, v in rec["per_example"].items()},
    }


def compare_runs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Relative weight difference after the step, κ agreement and per-example agreement of every attack."""
    w = float((a["weights"] - b["weights"]).norm() / b["weights"].norm().clamp_min(1e-12))
    out: dict[str, Any] = {"weights_rel_diff": w, "kappa_agree": float((a["kappa"] == b["kappa"]).float().mean())}
    for k in a:
        if k not in ("weights", "kappa"):
            out[f"{k}_agree"] = float((a[k] == b[k]).float().mean())
    return out


# float32 on two devices: one step moves the weights apart by ~1e-6 (summation order, TF32 off); an attack's
# per-example outcome flips only at a near-tie (a few in a thousand at most). Beyond these, a path is broken.
WEIGHT_TOL = 1e-4
AGREE_MIN = 0.95


def device_vs_reference(
    dev: torch.device, reference: torch.device, run: Callable[..., dict[str, torch.Tensor]] = device_run
) -> dict[str, Any]:
    """This device's training step and attacks against the reference device's, on a fixed small problem."""
    model, x, y = _fixed_problem()
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # compare fp32 with fp32
    try:
        numbers = compare_runs(run(model, x, y, dev), run(model, x, y, reference))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    agree = [v for k, v in numbers.items() if k.endswith("_agree")]
    ok = numbers["weights_rel_diff"] <= WEIGHT_TOL and min(agree) >= AGREE_MIN
    detail = (
        f"weights differ by {numbers['weights_rel_diff']:.2e} (≤ {WEIGHT_TOL:g}), lowest per-example agreement "
        + (f"{min(agree):.3f} (≥ {AGREE_MIN})")
    )
    return check(f"{dev} vs {reference}: training step, κ, PGD, AutoAttack components", ok, detail, **numbers)


def kill_and_resume(dev: torch.device, work: Path) -> dict[str, Any]:
    """A 2-epoch run stopped after its first epoch and resumed from recovery.pt, against the run uninterrupted:
    bit-identical on a CPU; on a GPU within float rounding (cuDNN may pick non-deterministic kernels)."""
    from .checkpoints import load_checkpoint
    from .train import Trainer

    cfg = _tiny_config("gairat", dev)
    _trainer(copy.deepcopy(cfg), work / "whole").fit()
    _trainer(copy.deepcopy(cfg), work / "stopped").fit(max_epochs=1)
    Trainer(None, work / "stopped", resume=True).fit()  # type: ignore[arg-type]
    a = load_checkpoint(work / "whole" / "last.pt")["model"]
    b = load_checkpoint(work / "stopped" / "last.pt")["model"]
    diffs = [float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point()]
    worst = max(diffs)
    ok = worst == 0.0 if dev.type == "cpu" else worst <= 1e-5
    return check("stop after epoch 1, resume", ok, f"largest weight difference {worst:.3g}", max_abs_diff=worst)


# -- speed ---------------------------------------------------------------------------------------------------
def speed(dev: torch.device, sizes: Sizes, bf16: bool) -> dict[str, Any]:
    variants = [("fp32", dict(precision="fp32", channels_last=False, compile=False))]
    if bf16:
        variants.append(("bf16+channels_last", dict(precision="bf16", channels_last=True, compile=False)))
        if dev.type == "cuda":
            variants.append(("bf16+channels_last+compile", dict(precision="bf16", channels_last=True, compile=True)))
    rows = []
    for label, flags in variants:
        for b in sizes.bench_batches:
            case = BenchCase("at", sizes.bench_model, 32, 3, 10, b, sizes.bench_steps, sizes.bench_iters, 1)
            r = bench_training(replace(case, repeats=sizes.bench_repeats, **flags), dev)  # type: ignore[arg-type]
            # an AT step costs about (K + 1) forward-backward passes: project PGD-10 from the measured PGD-K
            per_example_s = (1 / r["irat_examples_per_s"]) * (10 + 1) / (sizes.bench_steps + 1)
            rows.append(
                {
                    "variant": label,
                    "batch_size": b,
                    "irat_examples_per_s": r["irat_examples_per_s"],
                    "reference_examples_per_s": r["reference_examples_per_s"],
                    "speedup_vs_reference": r["speedup"],
                    "fraction_of_matmul_rate": r["fraction_of_floor"],
                    "projected_cifar10_epoch_s_pgd10": round(CIFAR10_TRAIN * per_example_s, 1),
                    "attack_steps_measured": sizes.bench_steps,
                }
            )
    ev = bench_eval(
        model=sizes.eval_model,
        size=sizes.eval_size,
        channels=sizes.eval_channels,
        classes=10,
        n=sizes.eval_n,
        device=dev,
        attacks=("pgd20", "apgd-ce", "aa"),
    )
    return {"training": rows, "evaluation": ev, "model": sizes.bench_model, "eval_model": sizes.eval_model}


# -- recommendations ---------------------------------------------------------------------------------------
def _small_model_step(dev: torch.device, *, steps: int, iters: int) -> dict[str, Any]:
    """Throughput of a BiLAW Table 1-sized job: AT, tiny-CNN, MNIST-shaped inputs, batch 128."""
    return bench_training(BenchCase("at", "tinycnn", 28, 1, 10, 128, steps, iters, 1), dev)


def thread_scaling(dev: torch.device) -> dict[str, Any]:
    """A small-model training step with one thread and with all of them: how much one job gains from more
    threads decides how many jobs a sweep should run side by side on a CPU."""
    if dev.type != "cpu":
        return {}
    threads = torch.get_num_threads()
    times = {}
    for t in sorted({1, threads}):
        torch.set_num_threads(t)
        try:
            times[t] = _small_model_step(dev, steps=5, iters=2)["irat_examples_per_s"]
        finally:
            torch.set_num_threads(threads)
    return {"examples_per_s_by_threads": times, "gain": round(times[threads] / times[1], 2) if threads > 1 else 1.0}


def gpu_jobs(dev: torch.device) -> dict[str, Any]:
    """On a GPU: the memory one small-model job takes and the share of the matmul rate it reaches."""
    if dev.type != "cuda":
        return {}
    torch.cuda.reset_peak_memory_stats(dev)
    r = _small_model_step(dev, steps=10, iters=5)
    peak = torch.cuda.max_memory_allocated(dev)
    total = torch.cuda.get_device_properties(dev).total_memory
    return {
        "peak_memory_gib": round(peak / 2**30, 3),
        "fraction_of_matmul_rate": r["fraction_of_floor"],
        "total": total,
    }


def recommend(
    dev: torch.device, env: dict[str, Any], spd: dict[str, Any], checks: list[dict[str, Any]], sizes: Sizes
) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    rows = spd["training"]
    base = {r["batch_size"]: r["irat_examples_per_s"] for r in rows if r["variant"] == "fp32"}
    failed = {c["check"] for c in checks if c["verdict"] == "FAIL"}
    settings = {}
    for r in rows:
        if r["variant"] == "fp32":
            continue
        gain = r["irat_examples_per_s"] / base[r["batch_size"]]
        works = "train at+bf16+channels_last+compile" not in failed
        settings[f"{r['variant']} (batch {r['batch_size']})"] = {
            "speedup_vs_fp32": round(gain, 2),
            "use": bool(gain > 1.05 and works),
        }
    rec["fast_path"] = settings
    rec["fast_path_settings"] = next(
        (
            {"precision": "bf16", "channels_last": True, "compile": "compile" in k}
            for k, v in sorted(settings.items(), key=lambda kv: -kv[1]["speedup_vs_fp32"])
            if v["use"]
        ),
        {"precision": "fp32", "channels_last": False, "compile": False},
    )
    if dev.type == "cpu":
        scaling = thread_scaling(dev)
        cores = os.cpu_count() or 1
        jobs = cores if scaling.get("gain", 1.0) < 1.5 else max(1, cores // 2)
        rec["small_model_jobs_per_device"] = jobs
        rec["why_jobs"] = (
            f"one tiny-CNN job runs {scaling.get('gain', 1.0)}× faster on {torch.get_num_threads()} threads than on "
            f"one: {'threads pay little, so run one job per core' if jobs == cores else 'keep two threads per job'}"
        )
        rec["thread_scaling"] = scaling
    else:
        g = gpu_jobs(dev)
        by_memory = int(0.8 * g["total"] / max(g["peak_memory_gib"] * 2**30, 1))
        by_compute = max(1, int(0.5 / max(g["fraction_of_matmul_rate"], 1e-3)))
        rec["small_model_jobs_per_device"] = max(1, min(8, by_memory, by_compute))
        rec["why_jobs"] = (
            f"one tiny-CNN job takes {g['peak_memory_gib']} GiB and reaches {g['fraction_of_matmul_rate']:.3f} of "
            f"the matmul rate: irat sweep run --jobs-per-device {rec['small_model_jobs_per_device']}"
        )
    return rec


def preset_estimate(name: str, dev: torch.device, sizes: Sizes) -> dict[str, Any]:
    """The estimated training time of a preset's run here: its model, input, batch and attack measured for
    a few steps, scaled to its epochs and training-set size (validation and evaluation not included)."""
    from .data import get_spec
    from .presets import preset_config

    cfg = preset_config(name)
    spec = get_spec(cfg.data.dataset)
    if spec.name not in TRAIN_SIZES:
        raise IratError(f"--preset {name}: no training-set size known for {spec.name}")
    val = cfg.data.val_size if cfg.data.val_size is not None else spec.default_val_size
    n_train = cfg.data.train_subset or TRAIN_SIZES[spec.name] - val
    batch = min(cfg.batch_size, 64) if sizes is QUICK else cfg.batch_size
    case = BenchCase(
        cfg.method, cfg.model.arch, spec.size, spec.channels, spec.num_classes, batch, cfg.attack.steps, 1, 1
    )
    r = bench_training(replace(case, iters=1 if sizes is QUICK else 3, eps=float(cfg.attack.eps)), dev)
    epoch_s = n_train / r["irat_examples_per_s"]
    return {
        "preset": name,
        "epochs": cfg.epochs,
        "examples_per_s": r["irat_examples_per_s"],
        "epoch_s": round(epoch_s, 1),
        "hours": round(epoch_s * cfg.epochs / 3600, 2),
        "train_examples": n_train,
    }


# -- the whole check -------------------------------------------------------------------------------------------
def run_doctor(
    *,
    device: str | None = None,
    quick: bool = False,
    preset: str | None = None,
    reference: str = "cpu",
    say: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    dev = resolve_device(device)
    ref = torch.device(reference)
    if preset is not None:
        from .presets import preset_config

        preset_config(preset)  # an unknown preset stops here, before any measurement
    t0 = time.perf_counter()
    say("environment and matmul rates")
    env = environment(dev, sizes)
    checks: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="irat-doctor-") as tmp:
        work = Path(tmp)
        say(f"training steps of {len(FAMILIES) + 1} methods on {dev}")
        checks += family_steps(dev, work / "families")
        if dev.type == ref.type and dev.index == ref.index:
            checks.append(
                check(f"{dev} vs {ref}: training step, κ, PGD, AutoAttack components", None, "needs a second device")
            )
        else:
            say(f"{dev} against {ref}")
            checks.append(device_vs_reference(dev, ref))
        say("stop and resume")
        checks.append(kill_and_resume(dev, work / "resume"))
    say("speed: training and evaluation throughput")
    spd = speed(dev, sizes, bool(env.get("bf16")))
    say("recommendations")
    rec = recommend(dev, env, spd, checks, sizes)
    if preset is not None:
        rec["preset_estimate"] = preset_estimate(preset, dev, sizes)
    verdict = "FAIL" if any(c["verdict"] == "FAIL" for c in checks) else "pass"
    return {
        "verdict": verdict,
        "quick": quick,
        "seconds": round(time.perf_counter() - t0, 1),
        "environment": env,
        "correctness": checks,
        "speed": spd,
        "recommendations": rec,
    }


def doctor_lines(rep: dict[str, Any]) -> list[str]:
    """The report as short lines: one per check, then the speed table and the recommendations."""
    from .tables import results_table

    e = rep["environment"]
    lines = [
        f"irat doctor on {e['name']} ({e['device']}, {e['memory_gib']} GiB), torch {e['torch']}"
        + (f", CUDA {e['cuda']}" if e["cuda"] else "")
        + f"; bf16 {'yes' if e['bf16'] else 'no'}, TF32 {'yes' if e['tf32'] else 'no'}; matmul "
        f"{e['matmul_tflops_fp32']} TFLOP/s fp32"
        + (f", {e['matmul_tflops_bf16']} bf16" if e["matmul_tflops_bf16"] else "")
    ]
    for c in rep["correctness"]:
        lines.append(f"{c['verdict']:5s} {c['check']}: {c['detail']}")
    cols = ["variant", "batch_size", "irat_examples_per_s", "speedup_vs_reference", "fraction_of_matmul_rate"]
    cols.append("projected_cifar10_epoch_s_pgd10")
    lines.append(results_table(rep["speed"]["training"], cols))
    lines.append(results_table(rep["speed"]["evaluation"], ["attack", "n", "time_s", "examples_per_s"]))
    r = rep["recommendations"]
    fp = r["fast_path_settings"]
    lines.append(
        f"use: precision={fp['precision']} channels_last={str(fp['channels_last']).lower()} "
        f"compile={str(fp['compile']).lower()}; small-model sweeps: --jobs-per-device "
        f"{r['small_model_jobs_per_device']} ({r['why_jobs']})"
    )
    if "preset_estimate" in r:
        p = r["preset_estimate"]
        lines.append(
            f"{p['preset']}: about {p['epoch_s']} s an epoch, {p['hours']} h for {p['epochs']} epochs here "
            f"(training only)"
        )
    lines.append(f"verdict: {rep['verdict']} ({rep['seconds']} s)")
    return lines


def exit_code(rep: dict[str, Any]) -> int:
    """0 when every check passed or was skipped, 1 when one failed."""
    return 1 if rep["verdict"] == "FAIL" else 0
