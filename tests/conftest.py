"""Shared fixtures: the real datasets in ../shared/datasets, tiny models, quick configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IRAT_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # two workers on two cores: avoid oversubscription


@pytest.fixture
def shared_datasets() -> Path:
    if not (SHARED / "mnist").is_dir():
        pytest.fail(f"the test datasets are expected in {SHARED} (set IRAT_SHARED_DATASETS)")
    return SHARED


# `irat train` arguments for a seconds-long run on the digits (tests add --epochs and their own --set)
QUICK_ARGS = [
    "--dataset", "digits", "--model", "tinycnn", "--eps", "0.1", "--batch-size", "64", "--device", "cpu",
    "--quiet", "--set", "attack.steps=3", "--set", "val_n=50", "--set", "data.train_subset=256",
]  # fmt: skip


def quick_config(**over):
    """A seconds-long AT config on the digits with the tiny CNN."""
    from irat.config import Config, apply_dict
    from irat.methods import apply_method

    cfg = Config()
    apply_method(cfg, over.pop("method", "at"))
    apply_dict(
        cfg,
        {
            "data": {"dataset": "digits", "val_size": 200, "train_subset": 256},
            "model": {"arch": "tinycnn"},
            "attack": {"eps": 0.1, "steps": 3},
            "optim": {"lr": 0.05},
            "epochs": 2,
            "batch_size": 64,
            "val_n": 100,
            "val_steps": 5,
            "device": "cpu",
            "progress": False,
        },
    )
    apply_dict(cfg, over)
    return cfg


def kill_mid_run(argv: list[str], out: Path, env: dict[str, str]) -> None:
    """Start `argv` (an irat command training into `out`), SIGKILL it once its first recovery checkpoint
    exists, and check the kill landed mid-run (between the first and the last epoch)."""
    import signal
    import subprocess
    import time

    from irat.checkpoints import load_checkpoint

    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rec = out / "recovery.pt"
    deadline = time.time() + 120
    while not rec.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ck = load_checkpoint(rec)
    assert 1 <= ck["epoch"] < ck["config"]["epochs"], "the kill must land mid-run"
