"""Dataset registry: where each dataset's official files live, how to find and read them.

`--data-dir` may name the folder holding a dataset's files itself, or a parent with one sub-folder
per dataset (`mnist/`, `cifar10/`, ...). Files are downloaded from the publishers' sites with MD5
verification when missing and downloads are allowed.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..registry import Registry
from . import readers
from .download import check_md5, download_file


@dataclass
class Arrays:
    """A dataset in memory: uint8 NCHW images (times `scale` gives [0,1]) and int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    scale: float = 1 / 255
    class_names: list[str] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)


@dataclass
class RemoteFile:
    name: str
    url: str
    md5: str


@dataclass
class DatasetSpec:
    name: str
    channels: int
    size: int
    num_classes: int
    subdirs: list[str]
    files: list[RemoteFile]
    reader: Callable[[Path], Arrays]
    present: Callable[[Path], bool]
    default_val_size: int = 1000
    augment: bool = False
    aliases: list[str] = field(default_factory=list)
    needs_download: bool = True
    after_download: Callable[[Path], None] | None = None


_MNIST_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
_MNIST_MD5 = [
    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3",
    "ec29112dd5afa0611ce80d1b7f02629c",
]
_FMNIST_MD5 = [
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79",
    "bb300cfdad3c16e7a12a480ee83cd310",
]


def _idx_spec(name: str, base_url: str, md5s: list[str], subdirs: list[str], aliases: list[str]) -> DatasetSpec:
    files = [RemoteFile(f, base_url + f, m) for f, m in zip(_MNIST_FILES, md5s)]

    def present(folder: Path) -> bool:
        return all((folder / f.name).is_file() for f in files)

    def read(folder: Path) -> Arrays:
        for f in files:
            check_md5(folder / f.name, f.md5, name)
        xtr, ytr, xte, yte = (readers.read_idx(folder / f.name) for f in files)
        return Arrays(name, xtr[:, None], ytr.astype(np.int64), xte[:, None], yte.astype(np.int64), 10)

    return DatasetSpec(name, 1, 28, 10, subdirs, files, read, present, aliases=aliases)


_C10_TAR = RemoteFile(
    "cifar-10-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "c58f30108f718f92721af3b95e74349a",
)
_C10_BATCHES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
_C100_TAR = RemoteFile(
    "cifar-100-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "eb9058c3a382ffc7106e4002c42a8d85",
)
_C100_BATCHES = {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"}


def _cifar_spec(
    name: str,
    tar: RemoteFile,
    inner: str,
    batches: dict[str, str],
    label_key: bytes,
    num_classes: int,
    subdirs: list[str],
    aliases: list[str],
) -> DatasetSpec:
    train_names = [b for b in batches if b not in ("test_batch", "test")]
    test_names = [b for b in batches if b in ("test_batch", "test")]

    def forms(folder: Path) -> str | None:
        if (folder / tar.name).is_file():
            return "tar"
        if all((folder / inner / b).is_file() for b in batches):
            return "inner"
        if all((folder / b).is_file() for b in batches):
            return "flat"
        if list(folder.glob("train*.npz")) and (folder / "test.npz").is_file():
            return "npz"
        return None

    def read(folder: Path) -> Arrays:
        form = forms(folder)
        if form == "npz":
            xtr, ytr = readers.read_npz_split(folder, "train")
            xte, yte = readers.read_npz_split(folder, "test")
        elif form == "tar":
            check_md5(folder / tar.name, tar.md5, name)
            xtr, ytr, xte, yte = readers.read_cifar(folder / tar.name, train_names, test_names, label_key, inner)
        else:
            src = folder / inner if form == "inner" else folder
            for b, m in batches.items():
                check_md5(src / b, m, name)
            xtr, ytr, xte, yte = readers.read_cifar(src, train_names, test_names, label_key, inner)
        return Arrays(name, xtr, ytr, xte, yte, num_classes)

    return DatasetSpec(
        name, 3, 32, num_classes, subdirs, [tar], read, lambda f: forms(f) is not None, augment=True, aliases=aliases
    )


_SVHN_FILES = [
    RemoteFile(
        "train_32x32.mat", "http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"
    ),
    RemoteFile(
        "test_32x32.mat", "http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"
    ),
]


def _svhn_read(folder: Path) -> Arrays:
    for f in _SVHN_FILES:
        check_md5(folder / f.name, f.md5, "svhn")
    xtr, ytr = readers.read_svhn_mat(folder / _SVHN_FILES[0].name)
    xte, yte = readers.read_svhn_mat(folder / _SVHN_FILES[1].name)
    return Arrays("svhn", xtr, ytr, xte, yte, 10)


_TINY_ZIP = RemoteFile(
    "tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de"
)


def _tiny_root(folder: Path) -> Path | None:
    for cand in (folder, folder / "tiny-imagenet-200"):
        if (cand / "wnids.txt").is_file() and (cand / "train").is_dir() and (cand / "val").is_dir():
            return cand
    return None


def _tiny_read(folder: Path) -> Arrays:
    root = _tiny_root(folder)
    assert root is not None
    xtr, ytr, xte, yte, wnids = readers.read_tiny_imagenet(root)
    return Arrays("tiny-imagenet", xtr, ytr, xte, yte, len(wnids), class_names=wnids)


def _tiny_extract(folder: Path) -> None:
    with zipfile.ZipFile(folder / _TINY_ZIP.name) as zf:
        zf.extractall(folder)


def _digits_read(_: Path) -> Arrays:
    xtr, ytr, xte, yte = readers.read_digits()
    return Arrays("digits", xtr, ytr, xte, yte, 10, scale=1 / 16)


SPECS: Registry[DatasetSpec] = Registry("dataset", "data.dataset")  # the one registry idiom


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Make a dataset known by name (a plug-in's too: `--dataset NAME` then finds it). A name or alias that
    is taken — a built-in's or another plug-in's — is refused unless replace=True."""
    if spec.name == "npz":
        raise ConfigError("the dataset name 'npz' is reserved for folders of train*.npz / test.npz")
    return SPECS.register(spec.name, replace=replace, aliases=tuple(spec.aliases), doc=spec.name)(spec)


register_dataset(
    _idx_spec(
        "mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/", _MNIST_MD5, ["mnist", "MNIST/raw", "MNIST"], []
    )
)
register_dataset(
    _idx_spec(
        "fashion-mnist",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        _FMNIST_MD5,
        ["fashion-mnist", "FashionMNIST/raw", "FashionMNIST", "fmnist"],
        ["fmnist", "f-mnist"],
    )
)
register_dataset(
    _cifar_spec(
        "cifar10",
        _C10_TAR,
        "cifar-10-batches-py",
        _C10_BATCHES,
        b"labels",
        10,
        ["cifar10", "cifar-10", "CIFAR10"],
        ["cifar-10"],
    )
)
register_dataset(
    _cifar_spec(
        "cifar100",
        _C100_TAR,
        "cifar-100-python",
        _C100_BATCHES,
        b"fine_labels",
        100,
        ["cifar100", "cifar-100", "CIFAR100"],
        ["cifar-100"],
    )
)
register_dataset(
    DatasetSpec(
        "svhn",
        3,
        32,
        10,
        ["svhn", "SVHN"],
        _SVHN_FILES,
        _svhn_read,
        lambda f: all((f / x.name).is_file() for x in _SVHN_FILES),
        augment=True,
    )
)
register_dataset(
    DatasetSpec(
        "tiny-imagenet",
        3,
        64,
        200,
        ["tiny-imagenet", "tiny-imagenet-200"],
        [_TINY_ZIP],
        _tiny_read,
        lambda f: _tiny_root(f) is not None,
        augment=True,
        aliases=["tinyimagenet", "tiny-imagenet-200"],
        after_download=_tiny_extract,
    )
)
register_dataset(
    DatasetSpec("digits", 1, 8, 10, [], [], _digits_read, lambda f: True, default_val_size=300, needs_download=False)
)


def get_spec(name: str) -> DatasetSpec:
    key = name.lower()
    found = SPECS.resolve(key)
    if found is not None:
        return SPECS[found]
    if key.startswith("npz:"):
        raise ConfigError("use --dataset npz with --data-dir pointing at the folder of train*.npz/test*.npz")
    raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(list(SPECS) + ['npz'])}")


def candidate_folders(spec: DatasetSpec, data_dir: Path) -> list[Path]:
    return [data_dir] + [data_dir / s for s in spec.subdirs]


def load_arrays(name: str, data_dir: str | Path = "~/.cache/irat", download: bool = True) -> Arrays:
    """Find (or download) a dataset's official files and read them into memory."""
    data_dir = Path(data_dir).expanduser()
    if name.lower() == "npz":
        xtr, ytr = readers.read_npz_split(data_dir, "train")
        xte, yte = readers.read_npz_split(data_dir, "test")
        unseen = sorted(set(np.unique(yte).tolist()) - set(np.unique(ytr).tolist()))
        if (
            unseen and min(ytr.min(initial=0), yte.min(initial=0)) >= 0
        ):  # (negative labels: refused later)  # a stray label would silently widen the model's output layer
            raise DataError(
                f"{data_dir}: test labels {unseen[:5]} never occur in the training labels; the classes are "
                f"those of train*.npz (0..{int(ytr.max())}); fix the labels"
            )
        present = np.unique(ytr)
        if len(present) and present.min() >= 0:  # classes 0..K-1 with none missing: a stray label would widen
            missing = sorted(set(range(int(present.max()) + 1)) - set(present.tolist()))  # the output layer
            if missing:
                counts = {int(c): int((ytr == c).sum()) for c in present}
                rare = sorted(counts, key=lambda c: counts[c])[:3]
                raise DataError(
                    f"{data_dir}: the training labels are not 0..K-1 — classes {missing[:5]}"
                    f"{' …' if len(missing) > 5 else ''} have no example, so a {int(present.max()) + 1}-class model "
                    f"would be built; the rarest labels: {', '.join(f'{c} ({counts[c]}×)' for c in rare)}; fix them"
                )
        return Arrays("npz", xtr, ytr, xte, yte, int(ytr.max()) + 1)
    spec = get_spec(name)
    if not spec.needs_download:
        return spec.reader(data_dir)
    folders = candidate_folders(spec, data_dir)
    for folder in folders:
        if folder.is_dir() and spec.present(folder):
            return spec.reader(folder)
    looked = ", ".join(str(f) for f in folders)
    wanted = ", ".join(f"{f.name} (MD5 {f.md5}, from {f.url})" for f in spec.files)
    if not download:
        raise DataError(
            f"{spec.name}: its files were not found (looked in {looked}) and downloading is off. "
            f"Put {wanted} in one of those folders, or allow downloading."
        )
    target = data_dir / spec.subdirs[0]
    for f in spec.files:
        if not (target / f.name).is_file():
            download_file(f.url, target / f.name, f.md5, spec.name)
    if spec.after_download is not None:
        spec.after_download(target)
    if not spec.present(target):
        raise DataError(f"{spec.name}: downloaded into {target} but the expected files are still missing")
    return spec.reader(target)
