"""The papers' analysis figures (matplotlib, Agg). Each function draws one self-explanatory figure
(title, axis labels, legend) of a fixed size and writes it as PNG and PDF; it returns the PNG path."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

FIGSIZE = (8.0, 5.0)  # inches
DPI = 100  # → 800 × 500 pixels


def _save(fig, out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{name}.png"
    fig.savefig(png, dpi=DPI)
    fig.savefig(out / f"{name}.pdf")
    plt.close(fig)
    return png


def lps_vs_pm(out: Path, kappa: np.ndarray, pm_adv: np.ndarray, steps: int) -> Path:
    """MAIL Fig. 4: PM-adv per least-perturbation-steps (κ) value — how well κ ranks vulnerability."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    levels = [k for k in range(steps + 1) if (kappa == k).any()]
    ax.boxplot([pm_adv[kappa == k] for k in levels], positions=levels, widths=0.6)
    ax.axhline(0.0, color="grey", lw=0.8, ls="--", label="PM = 0 (decision boundary)")
    ax.set(
        title="PM-adv by least perturbation steps (κ)",
        xlabel="κ (PGD steps the example stays correct)",
        ylabel="probabilistic margin PM-adv",
    )
    ax.legend(loc="lower right")
    return _save(fig, out, "lps_vs_pm")


def kappa_histogram(out: Path, kappa: np.ndarray, critical: np.ndarray, steps: int) -> Path:
    """MAIL Fig. 1(b): examples per κ, with the share misclassified under attack ("critical")."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    k = np.arange(steps + 1)
    crit = np.array([(critical & (kappa == i)).sum() for i in k])
    safe = np.array([(~critical & (kappa == i)).sum() for i in k])
    ax.bar(k, safe, color="tab:blue", label="correct under attack")
    ax.bar(k, crit, bottom=safe, color="tab:red", label="misclassified under attack (critical)")
    ax.set(
        title="κ histogram with the critical share of each bar",
        xlabel="κ (least perturbation steps)",
        ylabel="training examples",
    )
    ax.legend()
    return _save(fig, out, "kappa_histogram")


def path_dependence(out: Path, pgd_losses: np.ndarray, lm_losses: np.ndarray) -> Path:
    """MAIL Fig. 1(a): CE loss along PGD and LM-PGD on the same examples (rows: examples, cols: iterates)."""
    n = len(pgd_losses)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=FIGSIZE, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        ax.plot(pgd_losses[i], label="PGD")
        ax.plot(lm_losses[i], label="LM-PGD")
        ax.set(title=f"example {i}", xlabel="iteration", ylabel="CE loss")
        ax.legend(fontsize=7)
    fig.suptitle("Path dependence: the loss (and κ) depends on the attack's path")
    fig.tight_layout()
    return _save(fig, out, "path_dependence")


def weights_per_class(out: Path, weight: np.ndarray, label: np.ndarray, epoch: int) -> Path:
    """BiLAW Fig. 6: the distribution of instance weights within each class."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    classes = np.unique(label)
    ax.boxplot([weight[label == c] for c in classes], positions=list(range(len(classes))), widths=0.6)
    ax.set_xticks(range(len(classes)), [str(c) for c in classes])
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="ω = 1 (unweighted)")
    ax.set(title=f"Instance weights per class (epoch {epoch})", xlabel="class", ylabel="weight ω")
    ax.legend()
    return _save(fig, out, "weights_per_class")


def weights_scatter(out: Path, w_a: np.ndarray, w_b: np.ndarray, name_a: str, name_b: str) -> Path:
    """BiLAW Fig. 6: weight of each training example under two methods."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.scatter(w_a, w_b, s=6, alpha=0.5, label=f"{len(w_a)} training examples")
    corr = float(np.corrcoef(w_a, w_b)[0, 1]) if len(w_a) > 1 and w_a.std() > 0 and w_b.std() > 0 else float("nan")
    ax.set(
        title=f"Weights of the same examples (Pearson r = {corr:.2f})",
        xlabel=f"weight under {name_a}",
        ylabel=f"weight under {name_b}",
    )
    ax.legend()
    return _save(fig, out, "weights_scatter")


def radius_histogram(out: Path, eps: np.ndarray, eps0: float, epoch: int) -> Path:
    """MWPB Figs. 2-4: the per-example perturbation radii ε_i."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.hist(eps, bins=40, color="tab:green", label="ε_i")
    ax.axvline(eps0, color="black", ls="--", label=f"base ε = {eps0:.4g}")
    constant = float(np.ptp(eps)) == 0.0 if len(eps) else True
    title = f"Per-example radii (epoch {epoch})" + (
        f"\nevery radius is {float(eps[0]):.4g}: no per-example radii" if constant and len(eps) else ""
    )
    ax.set(title=title, xlabel="radius ε_i", ylabel="training examples")
    ax.legend()
    return _save(fig, out, "radius_histogram")


def training_curves(out: Path, metrics: list[dict], burn_in: int | None, lr_drops: list[int]) -> Path:
    """GAIRAT Fig. 4: natural and robust error per epoch, train and validation (robust overfitting)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ep = [m["epoch"] for m in metrics]
    for key, label in (
        ("train_adv_acc", "train robust (training attack)"),
        ("train_nat_acc", "train natural"),
        ("val_nat", "validation natural"),
        ("val_pgd", "validation robust (PGD)"),
    ):
        pts = [(m["epoch"], 100 - m[key]) for m in metrics if key in m]
        if pts:
            ax.plot(*zip(*pts), marker=".", label=f"{label} error")
    for i, e in enumerate(lr_drops):
        ax.axvline(e + 0.5, color="grey", ls=":", label="learning-rate drop" if i == 0 else None)
    if burn_in and min(ep) <= burn_in < max(ep):
        ax.axvline(burn_in + 0.5, color="tab:purple", ls="--", label=f"end of burn-in (epoch {burn_in})")
    ax.set(title="Training curves", xlabel="epoch", ylabel="error (%)", xlim=(min(ep) - 0.5, max(ep) + 0.5))
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return _save(fig, out, "training_curves")


def flatness(out: Path, metrics: list[dict]) -> Path:
    """GAIRAT Fig. 4: ‖∇ₓℓ‖ at friendly and most-adversarial points per epoch (lower = flatter)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for key, label in (
        ("flat_friendly", "friendly adversarial data (FAT, τ = 0)"),
        ("flat_adv", "most adversarial data (PGD-K)"),
    ):
        pts = [(m["epoch"], m[key]) for m in metrics if key in m]
        ax.plot(*zip(*pts), marker=".", label=label)
    ax.set(title="Loss flatness during training", xlabel="epoch", ylabel="mean ‖∇ₓ CE‖₂")
    ax.legend()
    return _save(fig, out, "flatness")


def pca_outputs(out: Path, coords: np.ndarray, kappa: np.ndarray, weight: np.ndarray | None) -> Path:
    """GAIRAT Figs. 7-8, BiLAW Fig. 4: the model's outputs in 2-D (PCA), coloured by κ and by weight."""
    panels = [("κ (least perturbation steps)", kappa)] + ([("instance weight ω", weight)] if weight is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=FIGSIZE, squeeze=False)
    for ax, (name, values) in zip(axes.flat, panels):
        sc = ax.scatter(coords[:, 0], coords[:, 1], c=values, s=6, cmap="viridis")
        fig.colorbar(sc, ax=ax, label=name)
        ax.set(title=f"coloured by {name.split(' (')[0]}", xlabel="PC 1", ylabel="PC 2")
    fig.suptitle("Model outputs (logits), 2-D PCA")
    fig.tight_layout()
    return _save(fig, out, "pca_outputs")


def weight_extremes(out: Path, low: np.ndarray, high: np.ndarray, w_low: np.ndarray, w_high: np.ndarray) -> Path:
    """BiLAW Figs. 3, 7-9: the training images with the lowest and the highest weights."""
    k = len(low)
    fig, axes = plt.subplots(2, k, figsize=FIGSIZE, squeeze=False)
    for row, (imgs, ws, name) in enumerate(((low, w_low, "lowest"), (high, w_high, "highest"))):
        for j in range(k):
            ax = axes[row, j]
            img = imgs[j].transpose(1, 2, 0)
            ax.imshow(
                img.squeeze(-1) if img.shape[-1] == 1 else img,
                cmap="gray" if img.shape[-1] == 1 else None,
                vmin=0,
                vmax=1,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"{ws[j]:.2g}", fontsize=7)
        axes[row, 0].set_ylabel(f"{name}\nweights", fontsize=9)
    fig.suptitle("Training images with the lowest (top) and highest (bottom) weights; ω under each")
    return _save(fig, out, "weight_extremes")
