"""Benchmark: the reweighting methods (and the comparison systems) on real MNIST, tiny-CNN, linf eps 0.1
(BiLAW Table 1 setting, shortened).

Every method gets the same short schedule: E epochs of the BiLAW Table 1 setup (SGD lr 0.1,
batch 128, PGD-10 with alpha = eps/4), learning-rate drops (÷10) after epochs E/2 and E-1, and
instance weights (and MWPB radii) switched on after a burn-in of E/2 epochs — at the first LR drop,
as MAIL and GAIRAT do (switching them on at lr 0.1 makes MAIL-TRADES and GAIRAT diverge on MNIST,
where a few vulnerable examples get normalised weights near 60), seed 0. Natural, PGD-20 and CW-30 accuracy
(alpha = eps/4) of the last checkpoint on the first N MNIST test examples, and the training time.

    python benchmarks/mnist_reweighting.py --data-dir ../shared/datasets --epochs 4 --test-n 2000 \
        --out benchmarks/results/mnist_reweighting.json
    python benchmarks/mnist_reweighting.py --data-dir ../shared/datasets --epochs 4 --test-n 2000 \
        --methods standard,at,trades,mma,st-at --out benchmarks/results/mnist_systems.json

MMA starts AN-PGD at radius ε/3 (its released MNIST setting: 0.1 at ε = 0.3) and caps it at
1.05·d_max, d_max = 1.5ε; "eps range" then shows its per-example radii (mean in brackets).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from irat.config import Config, apply_dict, set_chosen_option
from irat.evaluate import evaluate
from irat.presets import preset_config
from irat.tables import results_table
from irat.train import Trainer

# method → the BiLAW Table 1 row whose preset it uses (None: the AT row's setup with this method)
ROWS = {
    "standard": "plain",
    "mma": None,
    "st-at": None,
    "at": "at",
    "trades": None,
    "gairat": "gairat",
    "mail-at": "mail",
    "mail-trades": None,
    "wmmr": "wmmr",
    "mwpb-at": None,
    "bilaw": "bilaw",
    "bilaw-trades": None,
}


def config_for(method: str, epochs: int, data_dir: str, seed: int) -> Config:
    row = ROWS[method]
    cfg = preset_config(f"bilaw/mnist-tinycnn-linf/{row or 'at'}", method if row is None else None)
    if method.startswith("bilaw"):
        cfg.data.val_size = 1000
    if method == "mma":
        cfg.objective.mma_min_eps = cfg.attack.eps / 3
    burn = epochs // 2
    apply_dict(
        cfg,
        {
            "epochs": epochs,
            "seed": seed,
            "device": "cpu",
            "progress": False,
            "val_n": 1000,
            "data": {"data_dir": data_dir, "download": False},
            "optim": {"milestones": sorted({burn, epochs - 1})},
            "weighting": {"burn_in": burn},
        },
    )
    set_chosen_option(cfg, "radius", "phase1_epochs", burn)  # MWPB's first phase as long as the burn-in
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--test-n", type=int, default=2000)
    ap.add_argument("--methods", default="at,trades,gairat,mail-at,mail-trades,wmmr,mwpb-at,bilaw,bilaw-trades")
    ap.add_argument("--run-root", default="runs/bench-mnist-reweighting")
    ap.add_argument("--out", default="benchmarks/results/mnist_reweighting.json")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    for method in args.methods.split(","):
        cfg = config_for(method, args.epochs, args.data_dir, args.seed)
        trainer = Trainer(cfg, Path(args.run_root) / method, overwrite=True)
        t0 = time.perf_counter()
        last = trainer.fit()
        train_s = time.perf_counter() - t0
        x, y = trainer.splits.test.head(args.test_n).all()
        rec = evaluate(
            trainer.model, x, y, attacks=["natural", "pgd20", "cw"], eps=cfg.attack.eps, alpha=cfg.attack.eps / 4
        )
        row = {
            "method": method,
            **rec["results"],
            "train s": round(train_s, 1),
            "s/epoch": round(train_s / args.epochs, 1),
            "weight range": (f"{last['weight_min']:.3g}-{last['weight_max']:.3g}" if "weight_min" in last else "-"),
            "eps range": (
                f"{last['eps_min']:.3f}-{last['eps_max']:.3f} ({last['eps_mean']:.3f})" if "eps_min" in last else "-"
            ),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    cols = ["method", "natural", "pgd20", "cw", "train s", "s/epoch", "weight range", "eps range"]
    print(results_table(rows, cols))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "benchmark": "mnist_reweighting",
                "epochs": args.epochs,
                "test_n": args.test_n,
                "seed": args.seed,
                "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
                "rows": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
