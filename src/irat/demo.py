"""`irat demo`: the main job on the embedded digits (no download) — train, evaluate, print a table."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from .config import Config, apply_dict, clamp_epoch_settings
from .evaluate.run import evaluate_run
from .methods import apply_method
from .tables import results_table
from .train import Trainer

# ε = 0.1 in [0,1] pixel units on the 8×8 digits (whose pixels take 17 levels): a real threat model
# for this data — a PGD-20 attack brings a naturally trained model near zero.
DEMO_SETTINGS = {
    "data": {"dataset": "digits", "val_size": 300},
    "model": {"arch": "tinycnn"},
    "attack": {"eps": 0.1, "steps": 10},
    "optim": {"lr": 0.05, "weight_decay": 5e-4, "milestones": [20, 27]},
    "epochs": 30,
    "batch_size": 64,
    "val_n": 300,
}
# AT, two reweighting schemes (κ-based GAIRAT, margin-based MAIL-AT) and MWPB's per-example radii;
# weights and radii switch on after a 15-epoch burn-in, as the papers start them mid-training.
DEMO_METHODS = ["at", "gairat", "mail-at", "mwpb-at"]
DEMO_METHOD_SETTINGS: dict[str, dict] = {
    "gairat": {"weighting": {"burn_in": 15}},
    "mail-at": {"weighting": {"burn_in": 15}},
    "mwpb-at": {"radius": {"mwpb": {"phase1_epochs": 15}}},
}


def demo_config(method: str, epochs: int | None, device: str | None, quiet: bool) -> Config:
    cfg = Config()
    apply_method(cfg, method)
    apply_dict(cfg, DEMO_SETTINGS)
    apply_dict(cfg, DEMO_METHOD_SETTINGS.get(method, {}))
    if epochs is not None:
        cfg.epochs = epochs
        cfg.optim.milestones = [round(epochs * 2 / 3), round(epochs * 0.9)]
        clamp_epoch_settings(cfg, epochs // 2)
    cfg.device = device or "auto"
    cfg.progress = not quiet
    return cfg


def run_demo(
    out: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    methods: list[str] | None = None,
) -> list[dict]:
    root = Path(out) if out else Path(tempfile.mkdtemp(prefix="irat-demo-"))
    rows, warnings = [], []
    for method in methods or DEMO_METHODS:
        cfg = demo_config(method, epochs, device, quiet)
        t0 = time.perf_counter()
        trainer = Trainer(cfg, root / method, overwrite=overwrite)
        print(
            f"irat demo: training {method} ({cfg.model.arch}, digits, linf eps={cfg.attack.eps}, "
            f"{cfg.epochs} epochs) on {trainer.device}",
            file=sys.stderr,
        )
        trainer.fit()
        train_s = time.perf_counter() - t0
        rec = evaluate_run(root / method, attacks="natural,pgd20,cw,apgd-t", checkpoint="best", device=device)
        rows.append({"method": method, **rec["results"], "best epoch": str(rec["epoch"]), "train s": round(train_s, 1)})
        warnings += [f"{method}: [{w['check']}] {w['message']}" for w in rec["warnings"]]
    print(
        f"\nirat demo — digits test set (n={rec['n']}), linf eps={rec['eps']}, PGD-20 and CW-30 with alpha=eps/4, "
        f"APGD-T (AutoAttack's targeted component, 9 targets × 100 iterations), best checkpoint by validation "
        f"PGD-20; runs in {root}",
        file=sys.stderr,  # stdout is the table alone: `irat demo > table.md`
    )
    print(results_table(rows, ["method", "natural", "pgd20", "cw", "apgd-t", "best epoch", "train s"]))
    for w in warnings:
        print(f"WARNING {w}")
    return rows
