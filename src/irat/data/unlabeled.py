"""Robust self-training's extra data (RST, Carmon et al. 2019; GAIRAT App. C.10).

An unlabeled set — images from a user's `.npz`, or training examples withheld and stripped of their
labels — is pseudo-labelled once by a teacher (a `standard`-trained run), kept on the device, and
mixed into every training batch at a set fraction.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..checkpoints import checkpoint_info, load_model
from ..config import UnlabeledConfig
from ..errors import ConfigError, DataError
from .device_data import DeviceData, crop_flip


def withhold(train: DeviceData, n: int, seed: int) -> tuple[DeviceData, DeviceData]:
    """Split `n` seeded examples off the training set: (kept labeled set, withheld set with true labels)."""
    if not 1 <= n < len(train):
        raise ConfigError(
            f"unlabeled.withhold must be in [1, {len(train) - 1}] for {len(train)} training examples, got {n}"
        )
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + 2))
    return train.subset(perm[n:].sort().values), train.subset(perm[:n].sort().values)


def read_images(path: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """Images of a user's `.npz` (array `x`, uint8, N×C×H×W or N×H×W×C) checked against the dataset's shape."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"unlabeled.path: {path} does not exist")
    try:
        with np.load(path) as data:
            if "x" not in data:
                raise DataError(f"{path} holds no array `x` (found: {', '.join(data.files) or 'nothing'})")
            x = data["x"]
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})") from None
    if x.dtype != np.uint8:
        raise DataError(f"{path}: `x` must hold uint8 images (0..255), got dtype {x.dtype}")
    if x.ndim == 3 and shape[0] == 1:
        x = x[:, None]
    if x.ndim == 4 and tuple(x.shape[1:]) != shape and tuple(x.shape[1:]) == (shape[1], shape[2], shape[0]):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or tuple(x.shape[1:]) != shape:
        raise DataError(f"{path}: images of shape {tuple(x.shape[1:])} do not match the dataset's {shape} (C×H×W)")
    if len(x) == 0:
        raise DataError(f"{path}: `x` holds no images")
    return np.ascontiguousarray(x)


@torch.no_grad()
def pseudo_label(teacher: torch.nn.Module, data: DeviceData, batch_size: int = 512) -> torch.Tensor:
    """The teacher's predicted class for every example (eval mode, batched)."""
    teacher.eval()
    out = [teacher(x).argmax(1) for x, _, _ in data.batches(batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=data.device)


def check_teacher(teacher: torch.nn.Module, shape: tuple[int, int, int], num_classes: int, where: str) -> None:
    meta = checkpoint_info(teacher)["meta"]
    if meta["in_channels"] != shape[0] or meta["input_size"] != shape[1] or meta["num_classes"] != num_classes:
        raise ConfigError(
            f"unlabeled.teacher {where} was trained on {meta['in_channels']}×{meta['input_size']}² inputs "
            f"with {meta['num_classes']} classes; this run has {shape[0]}×{shape[1]}² and {num_classes}"
        )


def build_unlabeled(
    cfg: UnlabeledConfig, train: DeviceData, shape: tuple[int, int, int], num_classes: int, split_seed: int
) -> tuple[DeviceData, DeviceData | None, dict]:
    """(labeled training set, pseudo-labelled set, facts about it for the run's record).

    `withhold` without a teacher only removes the examples: the labeled-only run that RST is compared
    with, and the teacher's own training run, see exactly the labeled examples RST sees.
    """

    if cfg.withhold and not cfg.teacher:
        train, held = withhold(train, int(cfg.withhold), split_seed)
        return (
            train,
            None,
            {"source": f"withheld {cfg.withhold} training examples", "teacher": None, "n": len(held), "used": False},
        )
    assert cfg.teacher is not None  # checked by irat.validate before any work
    teacher = load_model(cfg.teacher, cfg.teacher_checkpoint, device=train.device)
    check_teacher(teacher, shape, num_classes, cfg.teacher)
    info: dict = {
        "teacher": str(cfg.teacher),
        "teacher_epoch": checkpoint_info(teacher)["epoch"],
        "fraction": cfg.fraction,
    }
    if cfg.withhold:
        train, unl = withhold(train, int(cfg.withhold), split_seed)
        true = unl.y.clone()
        info["source"] = f"withheld {cfg.withhold} training examples"
    else:
        assert cfg.path is not None
        x = read_images(cfg.path, shape)
        offset = int(train.index.max()) + 1 if len(train) else 0
        unl = DeviceData(torch.from_numpy(x), torch.zeros(len(x), dtype=torch.long), train.scale, train.device)
        unl.index = unl.index + offset  # distinct from every labeled example's index
        true = None
        info["source"] = str(cfg.path)
    unl.y = pseudo_label(teacher, unl)
    info["n"] = len(unl)
    info["used"] = True
    if true is not None:
        info["pseudo_label_acc"] = 100.0 * (unl.y == true).float().mean().item()
    return train, unl, info


def split_batch(batch_size: int, fraction: float) -> tuple[int, int]:
    """(labeled, pseudo-labelled) examples per batch; both at least 1."""
    n_u = min(max(round(batch_size * fraction), 1), batch_size - 1)
    return batch_size - n_u, n_u


def mixed_batches(
    labeled: DeviceData,
    unlabeled: DeviceData,
    batch_size: int,
    fraction: float,
    *,
    generator: torch.Generator | None = None,
    augment: bool = False,
    epoch: str = "labeled-pass",
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One epoch of labeled batches, each topped up with pseudo-labelled examples.

    `epoch="labeled-pass"`: every labeled example once; `"rst"`: ⌈N_labeled / batch_size⌉ batches, as
    the released RST sampler counts an epoch (its labeled part a fresh shuffle's first examples). Both
    sets are drawn without replacement, reshuffled each time they run out.
    """
    n_l, n_u = split_batch(batch_size, fraction)
    n_batches = n_mixed_batches(len(labeled), batch_size, fraction, epoch)
    dev = labeled.device

    def order(n: int, need: int) -> torch.Tensor:
        reps = max(1, math.ceil(need / n))
        return torch.cat([torch.randperm(n, device=dev, generator=generator) for _ in range(reps)])

    order_l = order(
        len(labeled), len(labeled) if epoch == "labeled-pass" else n_batches * n_l
    )  # one pass: last batch short
    order_u = order(len(unlabeled), n_batches * n_u)
    for b in range(n_batches):
        sl, su = order_l[b * n_l : (b + 1) * n_l], order_u[b * n_u : (b + 1) * n_u]
        (xl, yl), (xu, yu) = labeled.get(sl), unlabeled.get(su)
        x = torch.cat([xl, xu])
        if augment:
            x = crop_flip(x, pad=4, generator=generator)
        yield x, torch.cat([yl, yu]), torch.cat([labeled.index[sl], unlabeled.index[su]])


def n_mixed_batches(n_labeled: int, batch_size: int, fraction: float, epoch: str = "labeled-pass") -> int:
    if epoch == "rst":
        return math.ceil(n_labeled / batch_size)
    return math.ceil(n_labeled / split_batch(batch_size, fraction)[0])
