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
