"""Checkpoints and trained models (the ground layer every other layer may read).

A checkpoint holds a format tag and version, the resolved config, the model's metadata and weights;
it is loaded with `weights_only=True` (nothing in the file is executed). Writes are atomic (temporary
file + rename), so a kill never leaves a corrupt checkpoint. `load_model` rebuilds the trained network
from a run directory or a checkpoint file; `run_state` says what a run directory holds.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .errors import CheckpointError, ConfigError, IratError
from .models import canonical_or_none, create_model
from .plugins import load_entry_points, require_recorded
from .utils import atomic_write

FORMAT = "irat-checkpoint"
RECOVERY, LAST, BEST = "recovery.pt", "last.pt", "best.pt"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    data = {"format": FORMAT, "version": VERSION, **payload}
    atomic_write(path, lambda tmp: torch.save(data, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint: every entry's CRC (one flipped byte is refused), then the content with
    weights_only=True (nothing in the file is executed), then its layout."""
    return read_checkpoint(path, map_location)[0]


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], str]:
    """`load_checkpoint` and the MD5 of the very bytes it loaded (read once: a file replaced meanwhile, e.g.
    by a run still training, cannot give weights of one checkpoint and the fingerprint of another)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read ({exc})") from exc
    md5 = hashlib.md5(blob).hexdigest()
    _check_integrity(path, blob)
    try:
        data = torch.load(io.BytesIO(blob), map_location=map_location, weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
        AttributeError,
        TypeError,
    ) as exc:
        raise CheckpointError(
            f"{path} is corrupt or not a PyTorch checkpoint ({str(exc).splitlines()[0][:200]})"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an irat checkpoint (foreign format); irat loads only files it wrote — to evaluate "
            f"weights from elsewhere: irat eval FILE --model ARCH --dataset NAME --eps EPS"
        )
    if int(data.get("version", -1)) > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer irat (format version {data.get('version')}, "
            f"this irat reads up to {VERSION}); upgrade irat"
        )
    for key in ("config", "model", "meta", "epoch"):
        if key not in data:
            raise CheckpointError(f"{path} is an incomplete irat checkpoint (no {key!r})")
    meta, bad = data["meta"], []
    if not isinstance(meta, dict) or not isinstance(data["config"], dict) or not isinstance(data["model"], dict):
        bad.append("config, model and meta must be mappings")
    else:
        bad += [f"meta.{k}" for k in META_KEYS if k not in meta]
    if not isinstance(data["epoch"], int):
        bad.append("epoch must be a whole number")
    if bad:
        raise CheckpointError(f"{path} is a damaged irat checkpoint ({', '.join(bad)})")
    return data, md5


META_KEYS = ("arch", "in_channels", "num_classes", "input_size")


def _check_integrity(path: Path, blob: bytes | None = None) -> None:
    """The zip container's CRC-32 of every entry (torch.load itself does not verify them)."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob) if blob is not None else path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{path} is corrupt or not a PyTorch checkpoint ({exc})") from exc
    except Exception as exc:
        raise CheckpointError(f"{path} is corrupt ({type(exc).__name__}: {exc})") from exc
    if bad is not None:
        raise CheckpointError(
            f"{path} is corrupt: its entry {bad} fails its checksum (the file was damaged after "
            f"irat wrote it); use another checkpoint of the run or train again"
        )


def read_checkpoint_file(path: Path) -> tuple[Any, str]:
    """Any file irat wrote with torch.save (an evaluation's partial store, say): CRC-checked, loaded with
    weights_only=True from the very bytes hashed; (content, MD5). Damage raises CheckpointError."""
    blob = Path(path).read_bytes()
    _check_integrity(Path(path), blob)
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True), hashlib.md5(blob).hexdigest()


def run_state(out: Path) -> dict[str, Any] | None:
    """What a run directory holds: None if no checkpoint, else its epoch and whether it finished."""
    rec = out / RECOVERY
    if not rec.exists():
        return None
    data = load_checkpoint(rec)
    epochs = int(data["config"].get("epochs", 0))
    return {"epoch": int(data["epoch"]), "epochs": epochs, "finished": int(data["epoch"]) >= epochs, "data": data}


def load_model(run: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu") -> nn.Module:
    """Load a trained model from a run directory (best or last checkpoint) or a checkpoint file.

    The model takes inputs in [0,1] and returns logits; it is returned in eval mode.
    """
    path = Path(run)
    if path.is_dir():
        if checkpoint not in ("best", "last"):
            raise ConfigError(f"checkpoint must be best or last, got {checkpoint!r}")
        path = path / (BEST if checkpoint == "best" else LAST)
    data, md5 = read_checkpoint(path)
    meta = data["meta"]
    load_entry_points()
    recorded = data["config"].get("plugins") or []
    if recorded and canonical_or_none(meta["arch"]) is None:  # a model registered by a plug-in: only if named
        require_recorded(recorded, f"{path} ({meta['arch']})")
    model = create_model(
        meta["arch"], in_channels=meta["in_channels"], num_classes=meta["num_classes"], input_size=meta["input_size"]
    )
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise IratError(f"{path}: weights do not fit a {meta['arch']} model ({str(exc).splitlines()[0]})") from exc
    info = {"path": str(path), "epoch": data["epoch"], "config": data["config"], "meta": meta, "md5": md5}
    setattr(model, "irat_checkpoint", info)  # noqa: B010  # a plain dict beside the module's tensors
    return model.to(device).eval()


def load_external(
    path: str | Path,
    *,
    arch: str,
    num_classes: int,
    in_channels: int,
    input_size: int,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """A model irat did not train: a plain state dict, or a checkpoint holding one under `state_dict` or
    `model` (`module.` prefixes of DataParallel removed), for a registry architecture. Loaded with
    weights_only=True; returned in eval mode, inputs in [0, 1]."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p} does not exist")
    try:
        blob = p.read_bytes()  # read once: the fingerprint is of the very bytes loaded
        data = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{p} is not a PyTorch weights file ({str(exc).splitlines()[0][:200]})") from exc
    if isinstance(data, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not data or not all(torch.is_tensor(v) for v in data.values()):
        raise CheckpointError(f"{p} holds no state dict (a mapping of parameter names to tensors)")
    state = {k.removeprefix("module."): v for k, v in data.items()}
    model = create_model(arch, in_channels=in_channels, num_classes=num_classes, input_size=input_size)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise IratError(
            f"{p}: weights do not fit a {arch} model for {in_channels}×{input_size}×{input_size} inputs "
            f"and {num_classes} classes ({str(exc).splitlines()[0][:200]})"
        ) from None
    meta = {"arch": arch, "in_channels": in_channels, "num_classes": num_classes, "input_size": input_size}
    info = {"path": str(p), "epoch": None, "config": {}, "meta": meta, "md5": hashlib.md5(blob).hexdigest()}
    setattr(model, "irat_checkpoint", info)  # noqa: B010
    return model.to(device).eval()


def checkpoint_info(model: nn.Module) -> dict[str, Any]:
    """What `load_model` recorded about a loaded model: path, epoch, config and metadata."""
    info = getattr(model, "irat_checkpoint", None) or getattr(getattr(model, "module", None), "irat_checkpoint", None)
    if not isinstance(info, dict):
        raise IratError("this model was not loaded by irat.load_model (it has no checkpoint record)")
    return info


def recovery_state(data: dict[str, Any]) -> dict[str, Any]:
    """A recovery checkpoint in this release's form. Earlier releases kept the parts' state as {"bilaw": ...,
    "mma_eps": ...} (now under the parts' sections) and the best epoch at the top (now the checkpointing
    callback's state): the one place old recovery files are read into the new shape."""
    extra = data.get("extra") or {}
    if "parts" not in extra:
        legacy_mma = {"mma_eps": extra["mma_eps"]} if "mma_eps" in extra else {}
        extra = {"parts": {"weighting": extra.get("bilaw", {}), "objective": legacy_mma}}
    callbacks = data.get("callbacks") or ({"checkpointing": {"best": data["best"]}} if "best" in data else {})
    history = data.get("history") or ([data["metrics"]] if data.get("metrics") else [])
    return {**data, "extra": extra, "callbacks": callbacks, "history": history}
