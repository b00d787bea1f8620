"""Benchmark: AT with tiny-CNN on real MNIST, linf eps 0.1 (BiLAW Table 1 setting, shortened).

Trains epoch by epoch with the `bilaw/mnist-tinycnn-linf/at` preset and, after each epoch, measures
natural and PGD-20 (alpha = eps/4) accuracy on the MNIST test set, and the training time per epoch.

    python benchmarks/mnist_tinycnn_at.py --data-dir ../shared/datasets --epochs 10 --out results/mnist_at.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from irat.evaluate import evaluate
from irat.presets import preset_config
from irat.train import Trainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--test-n", type=int, default=10000)
    ap.add_argument("--run-dir", default="runs/bench-mnist-at")
    ap.add_argument("--out", default="results/mnist_tinycnn_at.json")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    cfg = preset_config("bilaw/mnist-tinycnn-linf/at")
    cfg.data.data_dir = args.data_dir
    cfg.data.download = False
    cfg.device = "cpu"
    cfg.seed = args.seed
    cfg.progress = False
    cfg.val_n = 1000
    trainer = Trainer(cfg, args.run_dir, overwrite=True)
    x, y = trainer.splits.test.head(args.test_n).all()
    rows = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        row = trainer.fit(max_epochs=1)
        train_s = row["train_time_s"]
        rec = evaluate(
            trainer.model,
            x,
            y,
            attacks=["natural", "pgd20"],
            eps=cfg.attack.eps,
            norm="linf",
            alpha=cfg.attack.eps / 4,
            seed=0,
        )
        rows.append(
            {
                "epoch": row["epoch"],
                "train_s": round(train_s, 1),
                "natural": rec["results"]["natural"],
                "pgd20": rec["results"]["pgd20"],
                "wall_s": round(time.perf_counter() - t0, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    out = {
        "benchmark": "mnist_tinycnn_at",
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "config": cfg.to_dict(),
        "test_n": len(y),
        "epochs": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
