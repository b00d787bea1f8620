"""Readers for the official file formats (docs/methods.md §9); each returns uint8 NCHW arrays and int64 labels.

No torchvision: the formats are simple enough to read directly, and torchvision has no build
for the CPU PyTorch wheels on many machines.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..utils import require


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST / Fashion-MNIST), gzipped or not, into a uint8 array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} could not be read as an IDX file ({exc}); delete it to download it again") from exc
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(data) - offset != expected:
        raise DataError(f"{path} is truncated: header says {dims}, file holds {len(data) - offset} bytes of data")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims).copy()


def _unpickle(raw: bytes, where: str) -> dict:
    try:
        return pickle.loads(raw, encoding="bytes")  # the official CIFAR batches are pickled numpy data
    except Exception as exc:
        raise DataError(f"{where} is not a readable CIFAR pickle batch ({exc})") from exc


def _cifar_arrays(batches: list[dict], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in batches]).reshape(-1, 3, 32, 32)
    y = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
    return x, y


def read_cifar(
    source: Path, train_names: list[str], test_names: list[str], label_key: bytes, inner: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read CIFAR python batches from the official tarball or from the extracted folder."""

    def load(names: list[str]) -> list[dict]:
        if source.is_file():
            out = []
            try:
                with tarfile.open(source, "r:gz") as tar:
                    for n in names:
                        member = tar.extractfile(f"{inner}/{n}")
                        if member is None:
                            raise DataError(f"{source} has no member {inner}/{n}")
                        out.append(_unpickle(member.read(), f"{source}:{inner}/{n}"))
            except (tarfile.TarError, OSError, KeyError) as exc:
                raise DataError(
                    f"{source} is not a readable CIFAR tarball ({exc}); delete it to download it again"
                ) from exc
            return out
        return [_unpickle((source / n).read_bytes(), str(source / n)) for n in names]

    xtr, ytr = _cifar_arrays(load(train_names), label_key)
    xte, yte = _cifar_arrays(load(test_names), label_key)
    return xtr, ytr, xte, yte


def read_npz_split(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Read `prefix*.npz` files holding `x` (N,H,W,C or N,C,H,W uint8) and `y` (N), concatenated in name order."""
    files = sorted(folder.glob(f"{prefix}*.npz"), key=lambda p: (len(p.name), p.name))
    if not files:
        raise DataError(f"no {prefix}*.npz files in {folder}")
    xs, ys = [], []
    for f in files:
        try:
            with np.load(f) as z:
                xs.append(np.asarray(z["x"]))
                ys.append(_labels(np.asarray(z["y"]).reshape(-1), f))
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{f} is not an .npz file with arrays 'x' and 'y' ({exc})") from exc
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4:
        raise DataError(f"{folder}/{prefix}*.npz: x must be N×H×W×C or N×C×H×W, got shape {x.shape}")
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise DataError(f"{folder}/{prefix}*.npz: x holds NaN, infinite or non-numeric pixels")
        if x.min() < 0 or x.max() > 1:
            raise DataError(f"{folder}/{prefix}*.npz: x must be uint8 or floats in [0,1]")
        x = np.round(x * 255).astype(np.uint8)
    if len(x) != len(y):
        raise DataError(f"{folder}/{prefix}*.npz: {len(x)} images but {len(y)} labels")
    return np.ascontiguousarray(x), y


def _labels(y: np.ndarray, f: Path) -> np.ndarray:
    """Class labels as whole numbers >= 0 (a float label such as 2.5 is refused, not truncated)."""
    if y.dtype.kind == "b" or not np.issubdtype(y.dtype, np.number):
        raise DataError(f"{f}: labels y must be whole numbers, got dtype {y.dtype}")
    if y.dtype.kind == "f" and (not np.isfinite(y).all() or (y != np.round(y)).any()):
        raise DataError(
            f"{f}: labels y must be whole numbers; found non-integer values such as {y[y != np.round(y)][:3]}"
        )
    return y.astype(np.int64)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN cropped-digits .mat file; label 10 stands for digit 0."""
    loadmat = require("scipy.io", "svhn", "reading SVHN's .mat files").loadmat

    try:
        mat = loadmat(str(path))
    except Exception as exc:
        raise DataError(f"{path} is not a readable SVHN .mat file ({exc})") from exc
    x = np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1)).astype(np.uint8)
    y = mat["y"].astype(np.int64).reshape(-1)
    y[y == 10] = 0
    return x, y


def _read_jpeg(path: Path) -> np.ndarray:
    Image = require("PIL.Image", "tiny-imagenet", "reading Tiny ImageNet's JPEG files")

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_tiny_imagenet(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Read Tiny ImageNet's folder layout (train/<wnid>/images, val/images + val_annotations.txt).

    The val split is the test set (docs/methods.md §9). Decoding 110k JPEGs takes a minute, so the arrays
    are cached in `root/irat_arrays.npz` next to the images on first read.
    """
    cache = root / "irat_arrays.npz"
    wnids = [w.strip() for w in (root / "wnids.txt").read_text().split() if w.strip()]
    if cache.is_file():
        with np.load(cache) as z:
            return z["x_train"], z["y_train"], z["x_test"], z["y_test"], wnids
    index = {w: i for i, w in enumerate(wnids)}
    xtr, ytr = [], []
    for w in wnids:
        for f in sorted((root / "train" / w / "images").glob("*.JPEG")):
            xtr.append(_read_jpeg(f))
            ytr.append(index[w])
    xte, yte = [], []
    for line in (root / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        xte.append(_read_jpeg(root / "val" / "images" / parts[0]))
        yte.append(index[parts[1]])
    if not xtr or not xte:
        raise DataError(f"{root} holds no Tiny ImageNet images (expected train/<wnid>/images/*.JPEG and val/images)")
    out = (
        np.stack(xtr).transpose(0, 3, 1, 2),
        np.asarray(ytr, dtype=np.int64),
        np.stack(xte).transpose(0, 3, 1, 2),
        np.asarray(yte, dtype=np.int64),
    )
    buf = io.BytesIO()
    np.savez(buf, x_train=out[0], y_train=out[1], x_test=out[2], y_test=out[3])
    try:
        cache.write_bytes(buf.getvalue())
    except OSError:
        pass  # a read-only data folder is fine; we just decode again next time
    return (*out, wnids)


def read_digits(test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits (values 0..16), split into train/test by a fixed seeded shuffle."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.uint8)[:, None]  # 0..16, scaled by 1/16 later
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]
