"""Trainer: checkpoints, metrics, best/last, bit-identical resume (in process and after a real kill)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import kill_mid_run, quick_config
from irat.config import OptimConfig
from irat.schedules import learning_rate, stepwise_value
from irat.train import Trainer, load_checkpoint, load_model


def _weights(path):
    return load_checkpoint(path)["model"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_directory_contents(tmp_path):
    cfg = quick_config(epochs=2)
    Trainer(cfg, tmp_path / "r").fit()
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"config.yaml", "metrics.jsonl", "last.pt", "best.pt", "recovery.pt"} <= files
    rows = [json.loads(l) for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all({"train_loss", "train_adv_acc", "val_nat", "val_pgd", "lr", "best_epoch"} <= set(r) for r in rows)
    ck = load_checkpoint(tmp_path / "r" / "recovery.pt")
    assert ck["format"] == "irat-checkpoint" and ck["version"] == 1 and ck["config"]["epochs"] == 2
    model = load_model(tmp_path / "r", "last")
    assert not model.training and model(torch.rand(3, 1, 8, 8)).shape == (3, 10)


def test_resume_in_process_is_bit_identical(tmp_path):
    cfg = quick_config(epochs=3, method="trades")
    Trainer(cfg, tmp_path / "a").fit()
    Trainer(quick_config(epochs=3, method="trades"), tmp_path / "b").fit(max_epochs=1)
    resumed = Trainer(None, tmp_path / "b", resume=True)
    assert resumed.epoch == 1
    resumed.fit()
    assert _same(_weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt"))
    ra = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    strip = lambda r: {k: v for k, v in r.items() if "time" not in k and "per_s" not in k}
    assert [strip(r) for r in ra] == [strip(r) for r in rb]


def test_resume_after_kill_is_bit_identical(tmp_path):
    """A real SIGKILL during epoch 2; --resume must end with exactly the uninterrupted weights."""
    args = [
        "train",
        "--dataset",
        "digits",
        "--model",
        "tinycnn",
        "--eps",
        "0.1",
        "--epochs",
        "4",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--quiet",
        "--set",
        "attack.steps=25",
        "--set",
        "val_n=50",
        "--set",
        "data.train_subset=600",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "irat"]
    subprocess.run(cmd + args + ["--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    kill_mid_run(cmd + args + ["--out", str(tmp_path / "killed")], tmp_path / "killed", env)
    out = subprocess.run(
        cmd + ["train", "--out", str(tmp_path / "killed"), "--resume", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert _same(_weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "killed" / "last.pt"))
    epochs = [json.loads(l)["epoch"] for l in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]


def test_best_checkpoint_tracks_validation_robustness(tmp_path):
    Trainer(quick_config(epochs=3), tmp_path / "r").fit()
    rows = [json.loads(l) for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    best = max(rows, key=lambda r: (r["val_pgd"], -r["epoch"]))
    assert load_checkpoint(tmp_path / "r" / "best.pt")["epoch"] == best["epoch"]


def test_fat_and_mart_train(tmp_path):
    for m in ("fat", "mart", "fat-trades"):
        row = Trainer(quick_config(method=m, epochs=1), tmp_path / m).fit()
        assert row["epoch"] == 1 and row["train_loss"] == row["train_loss"]  # finite, no NaN


def test_schedules():
    o = OptimConfig(lr=0.1, milestones=[75, 90], gamma=0.1)
    assert learning_rate(o, 120, 74.9) == pytest.approx(0.1)
    assert learning_rate(o, 120, 75) == pytest.approx(0.01)
    assert learning_rate(o, 120, 90) == pytest.approx(0.001)
    o = OptimConfig(lr=0.1, schedule="cosine")
    assert learning_rate(o, 100, 50) == pytest.approx(0.05)
    o = OptimConfig(lr=0.2, schedule="cyclic")
    assert learning_rate(o, 10, 4) == pytest.approx(0.2) and learning_rate(o, 10, 7) == pytest.approx(0.1)
    assert stepwise_value([[0, 0], [50, 1], [90, 2]], 49) == 0
    assert stepwise_value([[0, 0], [50, 1], [90, 2]], 50) == 1
    assert stepwise_value([[0, 0], [50, 1], [90, 2]], 119) == 2


@pytest.mark.parametrize("method", ["bilaw", "mwpb-awp", "gair-fat"])
def test_resume_is_bit_identical_for_stateful_methods(tmp_path, method):
    over = dict(
        method=method,
        epochs=3,
        weighting={"burn_in": 1, "bilaw": {"meta_size": 64}},
        radius={"mwpb": {"phase1_epochs": 1}},
        data={"train_subset": 192},
    )
    Trainer(quick_config(**over), tmp_path / "a").fit()
    Trainer(quick_config(**over), tmp_path / "b").fit(max_epochs=2)
    Trainer(None, tmp_path / "b", resume=True).fit()
    assert _same(_weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt"))
    if method == "bilaw":
        a = load_checkpoint(tmp_path / "a" / "recovery.pt")["extra"]["parts"]["weighting"]["net"]
        b = load_checkpoint(tmp_path / "b" / "recovery.pt")["extra"]["parts"]["weighting"]["net"]
        assert _same(a, b)
