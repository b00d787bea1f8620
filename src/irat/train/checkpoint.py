"""Checkpoints: a format tag and version, the resolved config, loaded with `weights_only=True`.

Writes are atomic (temporary file + rename), so a kill never leaves a corrupt checkpoint.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..utils import atomic_write

FORMAT = "irat-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    data = {"format": FORMAT, "version": VERSION, **payload}
    atomic_write(path, lambda tmp: torch.save(data, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; nothing in the file is executed (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError,
            AttributeError, TypeError) as exc:
        raise CheckpointError(f"{path} is corrupt or not a PyTorch checkpoint ({str(exc).splitlines()[0][:200]})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an irat checkpoint (foreign format); irat loads only files it wrote")
    if int(data.get("version", -1)) > VERSION:
        raise CheckpointError(f"{path} was written by a newer irat (format version {data.get('version')}, "
                              f"this irat reads up to {VERSION}); upgrade irat")
    for key in ("config", "model", "meta"):
        if key not in data:
            raise CheckpointError(f"{path} is an incomplete irat checkpoint (no {key!r})")
    return data
