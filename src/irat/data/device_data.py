"""Datasets resident on the training device, batching and augmentation as batched tensor ops.

Small image sets (CIFAR-10 is 150 MB as uint8) fit on any GPU: keeping them there as uint8 and
cropping/flipping whole batches at once removes the host-side data pipeline entirely.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .datasets import Arrays, get_spec, load_arrays


class DeviceData:
    """Images (uint8, NCHW) and labels on one device; `get(idx)` returns float [0,1] inputs."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, scale: float, device: torch.device | str = "cpu"):
        self.x = x.to(device)
        self.y = y.to(device=device, dtype=torch.long)
        self.scale = float(scale)
        self.index = torch.arange(len(self.y), device=self.x.device)  # positions in the source array

    @property
    def device(self) -> torch.device:
        return self.x.device

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: torch.Tensor) -> DeviceData:
        out = DeviceData.__new__(DeviceData)
        idx = idx.to(self.x.device)
        out.x, out.y, out.scale, out.index = self.x[idx], self.y[idx], self.scale, self.index[idx]
        return out

    def head(self, n: int | None) -> DeviceData:
        if n is None or n >= len(self):
            return self
        return self.subset(torch.arange(n, device=self.x.device))

    def get(self, idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[idx].to(torch.get_default_dtype()).mul_(self.scale), self.y[idx]  # float32 unless precision=fp64

    def all(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.get(slice(None))

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        augment: bool = False,
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield (x, y, index) batches; shuffling and augmentation draw from `generator` only."""
        n = len(self)
        order = torch.randperm(n, device=self.device, generator=generator) if shuffle else None
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            sel = order[start : start + batch_size] if order is not None else slice(start, min(start + batch_size, n))
            x, y = self.get(sel)
            if augment:
                x = crop_flip(x, pad=4, generator=generator)
            yield x, y, self.index[sel]


def crop_flip(x: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop after zero-padding by `pad`, then random horizontal flip — one batched gather."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    flip = torch.rand(b, device=x.device, generator=generator) < 0.5
    rows = oy[:, None] + torch.arange(h, device=x.device)[None]  # b×h
    cols = ox[:, None] + torch.arange(w, device=x.device)[None]  # b×w
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # b×h×w×c
    return out.permute(0, 3, 1, 2).contiguous()


@dataclass
class Splits:
    """Train / validation (held out of the training set, seeded) / test, all on one device."""

    train: DeviceData
    val: DeviceData
    test: DeviceData
    num_classes: int
    shape: tuple[int, int, int]
    name: str
    augment: bool


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded permutation: the first `val_size` go to validation, the rest stay for training."""
    if val_size < 0 or val_size >= n:
        raise ConfigError(f"validation size {val_size} must be in [0, {n - 1}] for a training set of {n}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def load_splits(
    dataset: str,
    data_dir: str = "~/.cache/irat",
    *,
    download: bool = True,
    val_size: int | None = None,
    split_seed: int = 0,
    train_subset: int | None = None,
    test_subset: int | None = None,
    augment: str = "auto",
    device: torch.device | str = "cpu",
) -> Splits:
    """Load a dataset, check its labels, split off the validation set and move everything to `device`."""
    arrays: Arrays = load_arrays(dataset, data_dir, download)
    check_labels(arrays)
    default_val = get_spec(dataset).default_val_size if dataset.lower() != "npz" else 1000
    vs = default_val if val_size is None else int(val_size)
    vs = min(vs, len(arrays.y_train) // 5) if val_size is None else vs
    tr_idx, va_idx = split_indices(len(arrays.y_train), vs, split_seed)
    full = DeviceData(torch.from_numpy(arrays.x_train), torch.from_numpy(arrays.y_train), arrays.scale, device)
    train, val = full.subset(tr_idx), full.subset(va_idx)
    train = train.head(train_subset)
    test = DeviceData(torch.from_numpy(arrays.x_test), torch.from_numpy(arrays.y_test), arrays.scale, device).head(
        test_subset
    )
    if augment not in ("auto", "none", "crop-flip"):
        raise ConfigError(f"data.augment must be auto, none or crop-flip, got {augment!r}")
    h = arrays.shape[1]
    aug = (augment == "crop-flip") or (augment == "auto" and arrays.shape[0] == 3 and h in (32, 64))
    return Splits(train, val, test, arrays.num_classes, arrays.shape, arrays.name, aug)


def check_labels(arrays: Arrays) -> None:
    for split, y in (("train", arrays.y_train), ("test", arrays.y_test)):
        if len(y) and (y.min() < 0 or y.max() >= arrays.num_classes):
            raise ConfigError(
                f"{arrays.name}: {split} labels must lie in [0, {arrays.num_classes - 1}], "
                f"found {int(y.min())}..{int(y.max())}"
            )
