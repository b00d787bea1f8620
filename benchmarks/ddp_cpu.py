"""Data-parallel training on CPU: one process with T threads against `torchrun --nproc_per_node N` with
T/N threads each, same preset, global batch and epochs; reports examples/s (train_examples_per_s of the
last epoch, i.e. the training loop without validation) and how far apart the two runs' weights end,
next to the same gap between one process with T and with T/N threads (the float noise floor: over
hundreds of steps, PGD's sign steps amplify summation-order differences; tests/test_distributed.py
checks equality over a few steps, where it holds to 1e-5).

On a machine without GPUs this measures the engine's overhead (process group, gradient all-reduce,
per-epoch gathers), not a speed-up worth having: the cores are shared either way.

    python benchmarks/ddp_cpu.py --data-dir ../shared/datasets --out benchmarks/results/ddp_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from irat.train import load_model


def train(cmd: list[str], threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--preset", default="bilaw/mnist-tinycnn-linf/at", help="BiLAW Table 1: AT, tiny-CNN, MNIST, ε 0.1")
    ap.add_argument("--train-subset", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="threads in all (the single process uses them all)")
    ap.add_argument("--out", default="benchmarks/results/ddp_cpu.json")
    args = ap.parse_args()
    common = [
        "train",
        "--preset",
        args.preset,
        "--data-dir",
        args.data_dir,
        "--epochs",
        str(args.epochs),
        "--device",
        "cpu",
        "--quiet",
        "--set",
        f"data.train_subset={args.train_subset}",
        "--set",
        "val_n=500",
        "--no-download",
    ]
    tmp = Path(tempfile.mkdtemp())
    one = [sys.executable, "-m", "irat"] + common + ["--out", str(tmp / "one")]
    ddp = (
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(args.ranks),
            "-m",
            "irat",
        ]
        + common
        + ["--out", str(tmp / "ddp")]
    )
    control = [sys.executable, "-m", "irat"] + common + ["--out", str(tmp / "control")]
    wall = {
        "one": train(one, args.threads),
        "ddp": train(ddp, max(1, args.threads // args.ranks)),
        "control": train(control, max(1, args.threads // args.ranks)),
    }
    rows = {k: [json.loads(ln) for ln in (tmp / k / "metrics.jsonl").read_text().splitlines()] for k in wall}

    def weight_diff(p: str, q: str) -> float:
        a, b = load_model(tmp / p, "last"), load_model(tmp / q, "last")
        return max((v - w).abs().max().item() for v, w in zip(a.state_dict().values(), b.state_dict().values()))

    diff = weight_diff("one", "ddp")
    res = {
        "setup": vars(args),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "one_process": {
            "threads": args.threads,
            "examples_per_s": rows["one"][-1]["train_examples_per_s"],
            "wall_s": wall["one"],
            "val": {k: rows["one"][-1].get(k) for k in ("val_nat", "val_pgd")},
        },
        "torchrun": {
            "ranks": args.ranks,
            "threads_per_rank": max(1, args.threads // args.ranks),
            "examples_per_s": rows["ddp"][-1]["train_examples_per_s"],
            "wall_s": wall["ddp"],
            "val": {k: rows["ddp"][-1].get(k) for k in ("val_nat", "val_pgd")},
        },
        "max_weight_difference": diff,
        # the float noise floor: the same single process with fewer threads (another summation order);
        # PGD's sign steps and SGD amplify such differences over hundreds of steps
        "control_max_weight_difference_one_process_fewer_threads": weight_diff("one", "control"),
    }
    res["ratio"] = res["torchrun"]["examples_per_s"] / res["one_process"]["examples_per_s"]
    print(json.dumps(res, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
