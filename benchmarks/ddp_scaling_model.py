"""How data-parallel PGD-10 AT should scale with GPU count: compute per step vs gradient all-reduce.

Counts (measured here with torch.utils.flop_counter, irat.bench.step_flops) the FLOPs of one PGD-10 AT
step per example and the parameter count of each model; the hardware rates are inputs (defaults:
H100 SXM dense bf16 peak 989 TFLOP/s at an assumed 40 % utilisation; NVLink 4 all-reduce bus
bandwidth 450 GB/s; 400 Gb/s InfiniBand ≈ 50 GB/s between nodes — vendor figures, not measured here).
A ring all-reduce moves 2·(N−1)/N of the gradient bytes per GPU per step.

    python benchmarks/ddp_scaling_model.py --out benchmarks/results/ddp_scaling_model.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from irat.bench import step_flops
from irat.models import create_model


def model_costs(arch: str, size: int = 32, classes: int = 10) -> dict:
    torch.manual_seed(0)
    net = create_model(arch, in_channels=3, num_classes=classes, input_size=size)
    x = torch.rand(2, 3, size, size)
    y = torch.zeros(2, dtype=torch.long)
    per_example = step_flops(net, x, y, steps=10, trades=False) / 2  # FLOPs are linear in the batch
    params = sum(p.numel() for p in net.parameters())
    return {
        "arch": arch,
        "params": params,
        "grad_mb_fp32": params * 4 / 1e6,
        "at_step_gflop_per_example": per_example / 1e9,
    }


def scaling(costs: dict, global_batch: int, gpus: int, flops: float, bus_gbs: float) -> dict:
    compute_s = costs["at_step_gflop_per_example"] * 1e9 * global_batch / gpus / flops
    comm_s = 0.0 if gpus == 1 else 2 * (gpus - 1) / gpus * costs["grad_mb_fp32"] * 1e6 / (bus_gbs * 1e9)
    # DDP overlaps the all-reduce with the backward of the last step only: bound between overlap and none
    return {
        "gpus": gpus,
        "compute_ms": 1e3 * compute_s,
        "allreduce_ms": 1e3 * comm_s,
        "speedup_no_overlap": (costs["at_step_gflop_per_example"] * 1e9 * global_batch / flops) / (compute_s + comm_s),
        "speedup_full_overlap": (costs["at_step_gflop_per_example"] * 1e9 * global_batch / flops)
        / max(compute_s, comm_s),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default="resnet18,wrn-34-10")
    ap.add_argument("--global-batch", type=int, default=128)
    ap.add_argument("--tflops", type=float, default=989 * 0.4, help="achieved bf16 TFLOP/s per GPU (assumed)")
    ap.add_argument("--nvlink-gbs", type=float, default=450.0)
    ap.add_argument("--ib-gbs", type=float, default=50.0)
    ap.add_argument("--out", default="benchmarks/results/ddp_scaling_model.json")
    args = ap.parse_args()
    out = {"assumptions": vars(args), "models": []}
    for arch in args.archs.split(","):
        c = model_costs(arch)
        c["nvlink"] = [scaling(c, args.global_batch, g, args.tflops * 1e12, args.nvlink_gbs) for g in (1, 2, 4, 8)]
        c["infiniband_2_nodes"] = scaling(c, args.global_batch, 16, args.tflops * 1e12, args.ib_gbs)
        out["models"].append(c)
        print(
            f"{arch}: {c['params'] / 1e6:.1f} M params ({c['grad_mb_fp32']:.0f} MB fp32 gradients), "
            f"{c['at_step_gflop_per_example']:.1f} GFLOP per example per PGD-10 AT step"
        )
        for s in c["nvlink"] + [c["infiniband_2_nodes"]]:
            print(
                f"  {s['gpus']:2d} GPUs: compute {s['compute_ms']:7.2f} ms, all-reduce {s['allreduce_ms']:6.2f} ms, "
                f"speed-up {s['speedup_no_overlap']:.2f}× (no overlap) – {s['speedup_full_overlap']:.2f}× (full overlap)"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
