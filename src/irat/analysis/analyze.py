"""`irat analyze RUN --out DIR`: the papers' analysis figures from a run directory.

Per-example geometry (κ, PM-adv, criticality, outputs) is recomputed from the checkpoint on the
first `n` training examples with the run's own training attack; weights and radii come from the
per-example files the run saved (`save_per_example=[epochs]`, the latest such epoch is used);
training curves and flatness from `metrics.jsonl` (flatness needs `flatness_n > 0` at training time).
Figures whose inputs the run lacks are skipped with the reason and the setting that enables them.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..attacks.checks import attack_mode
from ..attacks.lm_pgd import lm_pgd
from ..attacks.pgd import pgd
from ..checkpoints import checkpoint_info, load_model
from ..data import load_splits
from ..errors import IratError
from ..margins import probabilistic_margin
from ..utils import require, resolve_device


def read_metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def latest_dump(run: Path) -> tuple[int, dict[str, np.ndarray]] | None:
    files = sorted((run / "per_example").glob("epoch_*.npz"))
    if not files:
        return None
    try:
        with np.load(files[-1]) as z:
            return int(files[-1].stem.split("_")[1]), {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise IratError(
            f"{files[-1]} is damaged ({type(exc).__name__}: {str(exc)[:120]}); delete it or train the "
            f"epoch again with --set save_per_example=[EPOCH]"
        ) from None


def lr_drops(metrics: list[dict]) -> list[int]:
    return [a["epoch"] for a, b in zip(metrics, metrics[1:]) if b.get("lr", 0) < a.get("lr", 0) - 1e-12]


def _loss_curve_pgd(model, x, y, eps, alpha, steps) -> np.ndarray:
    """CE loss at each PGD iterate (no random start, so the runs with 0..K steps share one path)."""
    out = []
    for k in range(steps + 1):
        xa = pgd(model, x, y, eps=eps, alpha=alpha, steps=k, start="none", check_inputs=False)
        with torch.no_grad(), attack_mode(model, "eval"):
            out.append(torch.nn.functional.cross_entropy(model(xa), y, reduction="none"))
    return torch.stack(out, 1).cpu().numpy()


def analyze_run(
    run: str | Path,
    out: str | Path,
    *,
    checkpoint: str = "last",
    n: int = 1000,
    compare: str | Path | None = None,
    device: str | None = None,
    path_examples: int = 4,
    path_steps: int = 50,
    progress: bool = False,
) -> dict:
    """Write every figure the run's data allows into `out`; returns {"written": [...], "skipped": {...}}."""
    require("matplotlib", "plots", "irat analyze (the papers' figures)")
    from . import figures

    run, out = Path(run), Path(out)
    if not (run / "config.yaml").is_file():
        raise IratError(f"{run} is not an irat run directory (no config.yaml)")
    latest_dump(run)  # a damaged per-example file stops here, before any figure is written
    if compare is not None and latest_dump(Path(compare)) is None:
        raise IratError(
            f"--compare {compare}: that run saved no per-example values (train it with --set save_per_example=[EPOCH])"
        )
    if n < 1:
        raise IratError(f"--n must be >= 1, got {n}")
    dev = resolve_device(device)
    model = load_model(run, checkpoint, device=dev)
    cfg = checkpoint_info(model)["config"]
    a, d = cfg["attack"], cfg["data"]
    eps = float(a["eps"])
    alpha = float(a["alpha"]) if a.get("alpha") else eps / 4
    steps = int(a["steps"])
    splits = load_splits(
        d["dataset"],
        d["data_dir"],
        download=d.get("download", True),
        val_size=d.get("val_size"),
        split_seed=d.get("split_seed", 0),
        augment="none",
        device=dev,
    )
    data = splits.train.head(n)
    x, y = data.all()
    written, skipped = [], {}
    bar = tqdm(total=5, desc="irat analyze", unit="stage", disable=not progress, file=sys.stderr)
    bar.set_postfix_str(f"κ and margins of {len(y)} examples")

    gen = torch.Generator(device=dev).manual_seed(0)
    x_adv, info = pgd(model, x, y, eps=eps, alpha=alpha, steps=steps, norm=a["norm"], return_info=True, generator=gen)
    with torch.no_grad(), attack_mode(model, "eval"):
        logits_adv, logits_nat = model(x_adv), model(x)
    kappa = info.kappa_count.cpu().numpy()
    critical = (~info.correct).cpu().numpy()
    pm_adv = probabilistic_margin(logits_adv, y).cpu().numpy()
    written.append(figures.lps_vs_pm(out, kappa, pm_adv, steps))
    written.append(figures.kappa_histogram(out, kappa, critical, steps))
    bar.update(1)
    bar.set_postfix_str("PGD and LM-PGD loss paths")

    if a["norm"] == "linf":
        xs, ys = x[:path_examples], y[:path_examples]
        pgd_l = _loss_curve_pgd(model, xs, ys, eps, alpha, path_steps)
        _, lm_l = lm_pgd(model, xs, ys, eps=eps, steps=path_steps, return_losses=True)
        lm_l = lm_l.T.cpu().numpy()  # examples × iterates
        written.append(figures.path_dependence(out, pgd_l, lm_l))
    else:
        skipped["path_dependence"] = "LM-PGD is defined for linf only"

    bar.update(1)
    bar.set_postfix_str("training curves")
    metrics = read_metrics(run)
    if metrics:
        w = cfg.get("weighting", {})
        burn = w.get("burn_in") if w.get("name", "none") != "none" else None
        written.append(figures.training_curves(out, metrics, burn, lr_drops(metrics)))
        if any("flat_adv" in m for m in metrics):
            written.append(figures.flatness(out, metrics))
        else:
            skipped["flatness"] = "train with --set flatness_n=N to record loss flatness per epoch"
    else:
        skipped["training_curves"] = skipped["flatness"] = "the run has no metrics.jsonl"

    bar.update(1)
    bar.set_postfix_str("per-example weights and radii")
    dump = latest_dump(run)
    weight_here = None
    if dump is None:
        for name in ("weights_per_class", "radius_histogram", "weight_extremes", "weights_scatter"):
            skipped[name] = "the run saved no per-example values: train with --set save_per_example=[EPOCH]"
    else:
        epoch, z = dump
        constant = float(np.ptp(z["weight"])) == 0.0  # e.g. the saved epoch fell inside the burn-in
        written.append(figures.weights_per_class(out, z["weight"], z["label"], epoch))
        written.append(figures.radius_histogram(out, z["eps"], eps, epoch))  # says so when every radius is equal
        order = np.argsort(z["weight"], kind="stable")
        k = min(8, len(order) // 2)
        pos = {int(i): j for j, i in enumerate(splits.train.index.cpu().numpy())}
        low_idx, high_idx = order[:k], order[::-1][:k]
        imgs = lambda ids: splits.train.subset(torch.tensor([pos[int(z["index"][i])] for i in ids])).all()[0]
        if constant:  # "lowest / highest weight" of equal weights would be an arbitrary choice
            skipped["weight_extremes"] = (
                f"every weight is {float(z['weight'][0]):g} in epoch {epoch} (inside the burn-in, or no weighting): "
                f"save a later epoch with --set save_per_example=[EPOCH]"
            )
        else:
            written.append(
                figures.weight_extremes(
                    out,
                    imgs(low_idx).cpu().numpy(),
                    imgs(high_idx).cpu().numpy(),
                    z["weight"][low_idx],
                    z["weight"][high_idx],
                )
            )
        lookup = dict(zip(z["index"].tolist(), z["weight"].tolist()))
        here = data.index.cpu().numpy()
        if all(int(i) in lookup for i in here):
            weight_here = np.array([lookup[int(i)] for i in here])
        if compare is not None:
            dump = latest_dump(Path(compare))
            if dump is None:
                raise IratError(
                    f"--compare {compare}: the run has no per-example files (train it with "
                    f"--set save_per_example=[EPOCH])"
                )
            _, zc = dump
            other = dict(zip(zc["index"].tolist(), zc["weight"].tolist()))
            common = [i for i in z["index"].tolist() if i in other]
            if not common:
                raise IratError(f"--compare {compare}: no training example in common with {run}")
            written.append(
                figures.weights_scatter(
                    out,
                    np.array([lookup[i] for i in common]),
                    np.array([other[i] for i in common]),
                    run.name,
                    Path(compare).name,
                )
            )
        else:
            skipped["weights_scatter"] = "give --compare RUN2 (another run with saved per-example values)"

    bar.update(1)
    bar.set_postfix_str("PCA of the outputs")
    z_nat = logits_nat.float()
    centred = z_nat - z_nat.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    coords = (centred @ v[:2].T).cpu().numpy()
    written.append(figures.pca_outputs(out, coords, kappa, weight_here))
    bar.update(1)
    bar.close()
    return {"written": [str(p) for p in written], "skipped": skipped}
