"""Small helpers shared across modules: number parsing, seeding, devices, atomic writes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError, IratError


def parse_number(text: str | float | int) -> float:
    """Parse '8/255', '0.031' or 3 into a float; fractions are what the papers write."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    s = str(text).strip()
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            return float(Fraction(num.strip())) / float(Fraction(den.strip()))
        return float(s)
    except (ValueError, ZeroDivisionError) as exc:
        raise ConfigError(f"cannot read {text!r} as a number (examples: 8/255, 0.031, 0.3)") from exc


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """PyTorch's default float type set to `dtype` for the block, restored after it (even on errors)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def resolve_device(name: str | None) -> torch.device:
    """'auto' (or None) picks CUDA when available, else CPU; 'cuda' without a GPU is an error."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device cpu")
    return dev


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give: the user's normal permissions, not mkstemp's 0600


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Write through `write(tmp_path)` then rename over `path`: a kill never leaves a half file, and a
    failed write (a full disk) leaves the previous file as it was and says so in one message."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        kept = f"; the previous {path.name} is intact" if path.exists() else ""
        if _disk_full(exc, path.parent):
            raise IratError(f"the disk is full: {path} was not written{kept}; free some space and retry") from None
        if isinstance(exc, OSError):
            raise IratError(f"could not write {path} ({exc.strerror or exc}){kept}") from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _disk_full(exc: BaseException, folder: Path) -> bool:
    """A write failed for lack of space (torch.save reports it as a RuntimeError, not as ENOSPC)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


def atomic_write_text(path: str | Path, text: str) -> None:
    def _w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(path, _w)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def stepwise_value(table: list, completed_epochs: int, name: str = "schedule") -> float:
    """Value of a [[after_epochs, value], ...] table after `completed_epochs` (e.g. FAT's τ)."""
    try:
        rows = sorted((float(a), b) for a, b in table)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a list of [after_epochs, value] pairs, got {table!r}") from exc
    val = rows[0][1]
    for a, b in rows:
        if completed_epochs >= a:
            val = b
    return val


def require(module: str, extra: str, what: str) -> Any:
    """Import an optional dependency, or stop with one message naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise IratError(
            f"{what} needs the {module.split('.')[0]} package: pip install 'irat[{extra}]' (or pip install 'irat[all]')"
        ) from None


def file_md5(path: str | Path) -> str:
    """The MD5 of a file, read in 1 MiB blocks (checkpoint fingerprints in records and cards)."""
    import hashlib

    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
