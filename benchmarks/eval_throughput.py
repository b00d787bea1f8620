"""Benchmark: evaluation throughput (examples/s per attack) and accuracy for an AT-trained model.

Trains `--epochs` of PGD-10 AT (tiny-CNN on real MNIST, linf ε = 0.1 — the BiLAW Table 1 setting;
or ResNet-18 on 32×32 inputs with `--model resnet18 --dataset cifar10`), then evaluates the first
`--n` test examples with every attack irat has, each in its own `evaluate` call so that the time
and examples/s are the attack's own (examples/s counts the examples the attack actually ran on:
those still classified correctly). SPSA runs on the first `--spsa-n` examples (51,200 forward passes
per example at its defaults).

    python benchmarks/eval_throughput.py --data-dir ../shared/datasets --n 1000 --spsa-n 100 \
        --out benchmarks/results/eval_throughput_mnist.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from irat.config import apply_dict
from irat.evaluate import evaluate
from irat.presets import preset_config
from irat.train import Trainer
from irat.utils import parse_number

ATTACKS = ["natural", "pgd20", "cw30", "pgdplus", "apgd-ce", "apgd-t", "fab-t", "square", "aa"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--model", default="tinycnn")
    ap.add_argument("--eps", default=0.1, type=parse_number, help="e.g. 0.1 or 8/255")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--spsa-n", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--run-dir", default="runs/bench-eval")
    ap.add_argument("--out", default="benchmarks/results/eval_throughput.json")
    args = ap.parse_args()

    cfg = preset_config("bilaw/mnist-tinycnn-linf/at")  # the AT recipe of benchmarks/mnist_tinycnn_at.py
    apply_dict(
        cfg,
        {
            "data": {"dataset": args.dataset, "data_dir": args.data_dir, "download": False},
            "model": {"arch": args.model},
            "attack": {"eps": args.eps},
            "epochs": args.epochs,
            "val_n": 500,
            "device": args.device,
            "progress": False,
        },
    )
    trainer = Trainer(cfg, args.run_dir, overwrite=True)
    trainer.fit()
    model = trainer.model.eval()
    x, y = trainer.splits.test.head(args.n).all()
    rows = []
    for name in ATTACKS + ["spsa"]:
        n = args.spsa_n if name == "spsa" else args.n
        rec = evaluate(
            model, x[:n], y[:n], attacks=[name], eps=args.eps, batch_size=args.batch_size, seed=0, sanity=False
        )
        a = rec["attacks"][name]
        rows.append(
            {
                "attack": name,
                "n": a["n"],
                "attacked": a["n_attacked"],
                "accuracy": rec["results"][name],
                "time_s": a["time_s"],
                "examples_per_s": a["examples_per_s"],
                **(
                    {"after_component": a["after_component"], "component_time_s": a["component_time_s"]}
                    if name == "aa"
                    else {}
                ),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    dev = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    )
    out = {
        "benchmark": "eval_throughput",
        "machine": f"{dev}, torch {torch.__version__}",
        "dataset": args.dataset,
        "model": args.model,
        "eps": args.eps,
        "train_epochs": args.epochs,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
