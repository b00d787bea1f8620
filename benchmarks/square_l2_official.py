"""Square ℓ2 on colour images: irat against the official AutoAttack's SquareAttack, with irat's earlier
all-channel window budget as a third column.

    PYTHONPATH=/path/to/auto-attack python benchmarks/square_l2_official.py --data-dir ../shared/datasets

The official package (fra31/auto-attack) is not on PyPI: put a checkout on PYTHONPATH. The model is a
small CNN trained for one pass over 8,000 CIFAR-10 test images (the
other 2,000 are attacked); every method attacks the same correctly classified
test examples at ℓ2 ε = 0.5 with the same query budget, over several seeds.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from irat.attacks import square

sq = importlib.import_module("irat.attacks.square")  # the module (irat.attacks.square is the function)


def old_budget(d: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """irat before the fix: the windows' norm over all channels together."""
    c = d.shape[1]
    norm_img = d.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    norm_wins = (d * mask).flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    return ((eps**2 - norm_img**2).clamp_min(0.0) / c + norm_wins**2).sqrt()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--eps", type=float, default=0.5)
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    from autoattack.square import SquareAttack

    torch.manual_seed(0)
    with np.load(Path(args.data_dir) / "cifar10" / "test.npz") as z:
        perm = np.random.default_rng(0).permutation(len(z["y"]))  # the file is sorted by class
        x = torch.tensor(z["x"][perm]).float().div(255)
        y = torch.tensor(z["y"][perm]).long()
    if x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2).contiguous()
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for i in range(0, 8000, 100):
        opt.zero_grad()
        F.cross_entropy(model(x[i : i + 100]), y[i : i + 100]).backward()
        opt.step()
    model.eval()
    xe, ye = x[8000:], y[8000:]
    with torch.no_grad():
        ok = model(xe).argmax(1) == ye
    xe, ye = xe[ok][: args.n], ye[ok][: args.n]
    res: dict[str, list[float]] = {"irat (per channel)": [], "irat before (all channels)": [], "official": []}
    for seed in range(args.seeds):
        for key in res:
            if key == "official":
                torch.manual_seed(seed)
                att = SquareAttack(
                    model,
                    norm="L2",
                    n_queries=args.queries,
                    eps=args.eps,
                    p_init=0.8,
                    n_restarts=1,
                    seed=seed,
                    verbose=False,
                    resc_schedule=False,
                )
                xa = att.perturb(xe, ye)
            else:
                budget = sq.l2_window_budget
                if "before" in key:
                    sq.l2_window_budget = old_budget
                try:
                    xa = square(
                        model,
                        xe,
                        ye,
                        eps=args.eps,
                        norm="l2",
                        n_queries=args.queries,
                        generator=torch.Generator().manual_seed(seed),
                    )
                finally:
                    sq.l2_window_budget = budget
            with torch.no_grad():
                res[key].append(100.0 * float((model(xa).argmax(1) == ye).float().mean()))
    print(
        f"Square l2 eps={args.eps}, {args.queries} queries, {len(ye)} correctly classified CIFAR-10 test images, "
        f"{args.seeds} seeds: robust accuracy %"
    )
    for key, v in res.items():
        print(f"  {key:28s} {statistics.fmean(v):6.2f}  (seeds: {', '.join(f'{a:.1f}' for a in v)})")


if __name__ == "__main__":
    main()
