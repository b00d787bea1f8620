"""Dataset readers against the real files, MD5 and download paths, splits and augmentation."""

from __future__ import annotations

import gzip
import http.server
import pickle
import shutil
import tarfile
import threading
from functools import partial

import numpy as np
import pytest
import torch

from irat.data import crop_flip, load_arrays, load_splits, readers, split_indices
from irat.data import datasets as ds
from irat.errors import ConfigError, DataError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_mnist_reader_real_files(shared_datasets):
    a = load_arrays("mnist", shared_datasets, download=False)  # parent folder with mnist/ inside
    assert a.x_train.shape == (60000, 1, 28, 28) and a.x_train.dtype == np.uint8
    assert a.x_test.shape == (10000, 1, 28, 28) and a.y_test.dtype == np.int64
    assert np.bincount(a.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert a.y_train[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    b = load_arrays("mnist", shared_datasets / "mnist", download=False)  # the folder itself
    assert np.array_equal(a.y_test, b.y_test)


def test_fashion_mnist_reader(shared_datasets):
    a = load_arrays("fmnist", shared_datasets, download=False)
    assert a.x_train.shape == (60000, 1, 28, 28)
    assert np.bincount(a.y_train).tolist() == [6000] * 10


def test_md5_mismatch_names_the_file(shared_datasets, tmp_path):
    d = tmp_path / "mnist"
    shutil.copytree(shared_datasets / "mnist", d)
    target = d / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*MD5"):
        load_arrays("mnist", tmp_path, download=False)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DataError) as e:
        load_arrays("mnist", tmp_path, download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path) in msg and "f68b3c2dcbeaaa9fbdd348bbdeb94873" in msg


def test_offline_download_fails_with_clear_message(tmp_path, monkeypatch):
    spec = ds.SPECS["fashion-mnist"]
    bad = [ds.RemoteFile(f.name, "http://127.0.0.1:9/" + f.name, f.md5) for f in spec.files]
    monkeypatch.setattr(spec, "files", bad)
    with pytest.raises(DataError, match="could not download train-images-idx3-ubyte.gz"):
        load_arrays("fashion-mnist", tmp_path, download=True)
    assert not list((tmp_path / "fashion-mnist").glob("*.part"))  # no half-written file is left


@pytest.fixture
def local_server(shared_datasets):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(shared_datasets / "mnist"))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


def test_download_verifies_md5_and_loads(tmp_path, monkeypatch, local_server):
    spec = ds.SPECS["mnist"]
    monkeypatch.setattr(spec, "files", [ds.RemoteFile(f.name, local_server + f.name, f.md5) for f in spec.files])
    a = load_arrays("mnist", tmp_path, download=True)
    assert (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").is_file()
    assert a.x_train.shape[0] == 60000


def test_download_with_wrong_md5_is_refused(tmp_path, monkeypatch, local_server):
    spec = ds.SPECS["mnist"]
    files = [ds.RemoteFile(f.name, local_server + f.name, f.md5) for f in spec.files]
    files[0] = ds.RemoteFile(files[0].name, files[0].url, "0" * 32)
    monkeypatch.setattr(spec, "files", files)
    with pytest.raises(DataError, match="wrong MD5"):
        load_arrays("mnist", tmp_path, download=True)
    assert not (tmp_path / "mnist" / files[0].name).exists()


def test_digits_embedded():
    a = load_arrays("digits")
    assert a.x_train.shape[1:] == (1, 8, 8) and len(a.y_train) + len(a.y_test) == 1797
    assert a.x_train.max() == 16 and a.scale == 1 / 16


def test_cifar_pickle_reader_tar_and_folder(tmp_path):
    rng = np.random.default_rng(0)
    inner = tmp_path / "cifar-10-batches-py"
    inner.mkdir()
    batches = {}
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        b = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, 4).tolist()}
        batches[name] = b
        (inner / name).write_bytes(pickle.dumps(b))
    tar_path = tmp_path / "cifar.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(inner, arcname="cifar-10-batches-py")
    names = [f"data_batch_{i}" for i in range(1, 6)]
    for src in (tar_path, inner):
        xtr, ytr, xte, yte = readers.read_cifar(src, names, ["test_batch"], b"labels", "cifar-10-batches-py")
        assert xtr.shape == (20, 3, 32, 32) and xte.shape == (4, 3, 32, 32)
        assert np.array_equal(xtr[0].reshape(-1), batches["data_batch_1"][b"data"][0])
        assert ytr[:4].tolist() == batches["data_batch_1"][b"labels"]


def test_cifar10_npz_arrays_and_labels(shared_datasets):
    x, y = readers.read_npz_split(shared_datasets / "cifar10", "test")
    assert x.shape == (10000, 3, 32, 32) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10


def test_npz_dataset_with_bad_labels(tmp_path):
    np.savez(tmp_path / "train.npz", x=np.zeros((10, 8, 8, 1), np.uint8), y=np.arange(10) - 1)
    np.savez(tmp_path / "test.npz", x=np.zeros((4, 8, 8, 1), np.uint8), y=np.arange(4))
    with pytest.raises(ConfigError, match="labels must lie in"):
        load_splits("npz", tmp_path, val_size=2)


def test_svhn_mat_reader(tmp_path):
    from scipy.io import savemat

    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    savemat(tmp_path / "train_32x32.mat", {"X": x, "y": np.array([[1], [10], [3], [10], [9]])})
    xr, yr = readers.read_svhn_mat(tmp_path / "train_32x32.mat")
    assert xr.shape == (5, 3, 32, 32) and yr.tolist() == [1, 0, 3, 0, 9]
    assert np.array_equal(xr[2], x[:, :, :, 2].transpose(2, 0, 1))


def test_tiny_imagenet_folder_reader(tmp_path):
    from PIL import Image

    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n01", "n02"]
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids))
    lines = []
    for i, w in enumerate(wnids):
        d = root / "train" / w / "images"
        d.mkdir(parents=True)
        for j in range(2):
            Image.new("RGB", (64, 64), (i * 100, j * 50, 0)).save(d / f"{w}_{j}.JPEG")
        Image.new("RGB", (64, 64), (i * 100, 0, 0)).save(root / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines))
    a = load_arrays("tiny-imagenet", tmp_path, download=False)
    assert a.x_train.shape == (4, 3, 64, 64) and a.y_train.tolist() == [0, 0, 1, 1] and a.y_test.tolist() == [0, 1]
    assert abs(int(a.x_train[2, 0].mean()) - 100) <= 2  # JPEG decodes close to the drawn colour


def test_idx_reader_rejects_truncated(tmp_path):
    p = tmp_path / "bad-idx1-ubyte.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(bytes([0, 0, 8, 1, 0, 0, 0, 10, 1, 2]))
    with pytest.raises(DataError, match="truncated"):
        readers.read_idx(p)


def test_split_is_seeded_and_disjoint():
    tr, va = split_indices(100, 20, seed=3)
    tr2, va2 = split_indices(100, 20, seed=3)
    assert torch.equal(va, va2) and len(va) == 20 and len(tr) == 80
    assert not set(tr.tolist()) & set(va.tolist())
    assert not torch.equal(va, split_indices(100, 20, seed=4)[1])


def test_splits_hold_out_validation_from_training():
    s = load_splits("digits", val_size=300, split_seed=0)
    assert len(s.val) == 300 and len(s.train) + 300 == 1797 - len(s.test)
    assert not set(s.train.index.tolist()) & set(s.val.index.tolist())
    x, y = s.train.all()
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.max() == 1.0


def test_crop_flip_batched():
    x = torch.rand(64, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    out = crop_flip(x, pad=2, generator=g)
    assert out.shape == x.shape
    # every output is a (possibly flipped) shifted window of the zero-padded input
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(8):
        ok = any(
            torch.equal(out[i], padded[i, :, a : a + 8, b : b + 8])
            or torch.equal(out[i], padded[i, :, a : a + 8, b : b + 8].flip(2))
            for a in range(5)
            for b in range(5)
        )
        assert ok
    assert not torch.equal(out, x)  # with 64 examples some are moved or flipped
    assert torch.equal(crop_flip(x, 2, torch.Generator().manual_seed(0)), out)  # seeded
