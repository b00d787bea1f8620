"""bf16 autocast against fp32 on real data: the same short run in both precisions, evaluated in fp32.

Issue 6's accuracy target for the fast path ("a short real-data run in bf16 ends within 1 point,
natural and PGD-20, of the same run in fp32") does not need a GPU to be checked: autocast runs on
CPU too (slowly — the speed half of the target is a GPU measurement).

    python benchmarks/bf16_accuracy.py --data-dir ../shared/datasets --out benchmarks/results/bf16_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from irat.config import apply_dict
from irat.evaluate import evaluate
from irat.presets import preset_config
from irat.train import Trainer


def run(preset_name: str, precision: str, args: argparse.Namespace, out: Path) -> dict:
    cfg = preset_config(preset_name)
    apply_dict(
        cfg,
        {
            "data": {"data_dir": args.data_dir, "download": False, "train_subset": args.train_subset},
            "epochs": args.epochs,
            "device": "cpu",
            "progress": False,
            "val_n": 500,
            "seed": args.seed,
            "precision": precision,
        },
    )
    trainer = Trainer(cfg, out / precision)
    t0 = time.perf_counter()
    trainer.fit()
    train_s = time.perf_counter() - t0
    x, y = trainer.splits.test.head(args.test_n).all()
    rec = evaluate(
        trainer.model,
        x,
        y,
        attacks=["natural", "pgd20"],
        eps=cfg.attack.eps,
        norm=cfg.attack.norm,
        alpha=cfg.attack.eps / 4,
        seed=0,
        sanity=False,
    )
    return {"precision": precision, "train_s": round(train_s, 1), **rec["results"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--preset", default="bilaw/mnist-tinycnn-linf/at")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-subset", type=int, default=20000)
    ap.add_argument("--test-n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/bf16_accuracy.json")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="irat-bf16-"))
    rows = [run(args.preset, p, args, tmp) for p in ("fp32", "bf16")]
    res = {
        "setup": vars(args),
        "rows": rows,
        "gap_natural": round(rows[1]["natural"] - rows[0]["natural"], 2),
        "gap_pgd20": round(rows[1]["pgd20"] - rows[0]["pgd20"], 2),
    }
    print(json.dumps(res, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
