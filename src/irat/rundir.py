"""A run directory's safety: what counts as a run, one process at a time, writable before work.

- `run_files`: anything a run writes (checkpoints, metrics, config, evaluations, per-example files);
  a directory holding any of them is a run and is never trained into without --resume or --overwrite.
- `RunLock`: an exclusive lock (flock on RUN/.irat.lock) held for the whole of training; a second
  process is refused with the holder's pid, host and command. The kernel drops the lock when its
  holder dies, so a lock file left by a killed process never blocks a resume.
- `check_writable`: `--out` (or a record's path) must be creatable and writable, checked before any
  data is loaded.
- `clean_tmp`: temporary files of writes interrupted by a kill are removed at the next start.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import IratError
from .utils import atomic_write_text

RUN_FILES = ("config.yaml", "metrics.jsonl", "recovery.pt", "last.pt", "best.pt", "unlabeled.json")
RUN_DIRS = ("eval", "per_example", "tensorboard")
LOCK = ".irat.lock"


def run_files(out: Path) -> list[str]:
    """The run files and folders `out` holds (empty for a new or empty directory)."""
    if not out.is_dir():
        return []
    return [n for n in RUN_FILES if (out / n).exists()] + [n + "/" for n in RUN_DIRS if (out / n).is_dir()]


def remove_run_files(out: Path) -> None:
    """Delete a run's files and folders (for --overwrite), leaving anything else in the directory alone."""
    import shutil

    for n in (*RUN_FILES, "metrics.jsonl.broken"):
        (out / n).unlink(missing_ok=True)
    for n in RUN_DIRS:
        if (out / n).is_dir():
            shutil.rmtree(out / n)


def check_writable(path: Path, what: str) -> None:
    """`path` (a directory to create or fill) can be written: its nearest existing ancestor is a writable
    directory, and no part of it is a file."""
    p = path.expanduser().absolute()
    for part in (p, *p.parents):  # a link to nowhere would fail only when the first file is written
        if part.is_symlink() and not part.exists():
            raise IratError(f"{what} {path}: {part} is a symbolic link to {os.readlink(part)}, which does not exist")
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise IratError(f"{what} {path}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise IratError(f"{what} {path}: {probe} is not writable (permission denied)")


def check_file_writable(path: Path, what: str) -> None:
    """A file irat will write (e.g. --json) can be created or replaced."""
    p = path.expanduser().absolute()
    if p.is_dir():
        raise IratError(f"{what} {path} is a directory; give a file name")
    check_writable(p.parent, what)
    if p.exists() and not os.access(p, os.W_OK):
        raise IratError(f"{what} {path} is not writable (permission denied)")


def run_file_owner(path: Path) -> Path | None:
    """The run directory whose own file `path` is (a checkpoint, config, metrics, lock, or anything in its
    eval / per_example / tensorboard folders), or None."""
    p = path.expanduser().absolute()
    parent = p.parent
    if p.name in (*RUN_FILES, LOCK, "metrics.jsonl.broken") and (parent / "config.yaml").exists():
        return parent
    for up in (parent, *parent.parents):
        if up.name in RUN_DIRS and (up.parent / "config.yaml").exists():
            return up.parent
        if up == up.parent:
            break
    return None


def check_output(path: str | Path, what: str, *, overwrite: bool = False) -> Path:
    """A file a command will write (export, its card, eval --json, report --out): never a run's own file,
    not an existing file unless `overwrite`, and writable — checked before any work. Returns the path."""
    p = Path(path)
    owner = run_file_owner(p)
    if owner is not None:
        raise IratError(f"{what} {path} is a file of the run {owner}; write it outside the run's own files")
    if p.exists() and not p.is_dir() and not overwrite:
        raise IratError(f"{what} {path} exists; pass --overwrite to replace it, or choose another name")
    check_file_writable(p, what)
    return p


def clean_tmp(out: Path) -> list[str]:
    """Remove the temporary files of atomic writes a kill interrupted (`.NAME.*.tmp`); returns their names."""
    removed = []
    for d in (out, *(out / n for n in RUN_DIRS)):
        if d.is_dir():
            for f in d.glob(".*.tmp"):
                try:
                    f.unlink()
                    removed.append(str(f.relative_to(out)))
                except OSError:
                    pass
    return removed


def sync_metrics(out: Path, epoch: int, history: list[dict[str, Any]], say: Callable[[str], None]) -> None:
    """Make metrics.jsonl agree with the checkpoint: rows past the restored epoch (written after the last
    checkpoint, before a kill) go; rows of restored epochs that a kill kept from the file come back from
    recovery.pt; unreadable lines are set aside in metrics.jsonl.broken, with a message."""
    path = out / "metrics.jsonl"
    rows: dict[int, dict[str, Any]] = {}
    broken: list[str] = []
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                rows[int(r["epoch"])] = r
            except (ValueError, KeyError, TypeError):
                broken.append(line)
    if broken:
        with open(out / "metrics.jsonl.broken", "a", encoding="utf-8") as fh:
            fh.write("".join(b + "\n" for b in broken))
        say(f"{len(broken)} unreadable line(s) of {path} set aside in metrics.jsonl.broken; the others are kept")
    rows = {e: r for e, r in rows.items() if e <= epoch}
    restored = [r["epoch"] for r in history if r.get("epoch") not in rows]
    for r in history:
        rows.setdefault(int(r["epoch"]), r)
    if restored:
        say(f"metrics.jsonl lacked the rows of epochs {restored} (a kill after the checkpoint); restored them")
    missing = [e for e in range(1, epoch + 1) if e not in rows]
    if missing:
        say(f"metrics.jsonl has no rows for epochs {missing} and the checkpoint does not hold them")
    if rows or path.exists():
        atomic_write_text(path, "".join(json.dumps(rows[e]) + "\n" for e in sorted(rows)))


class RunLock:
    """Exclusive use of a run directory by one process (see the module docstring)."""

    def __init__(self, out: Path):
        self.path = out / LOCK
        self.fh: IO[str] | None = None

    def acquire(self, record: bool = True) -> RunLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no advisory locks; irat still works, unguarded
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = _holder(fh.read())
            fh.close()
            raise IratError(
                f"{self.path.parent} is in use by another irat process ({holder}); wait for it to finish or "
                f"stop it, or choose another --out"
            ) from None
        self.fh = fh
        if not record:
            return self
        fh.seek(0)
        fh.truncate()
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv)[:300],
        }
        fh.write(json.dumps(info) + "\n")
        fh.flush()
        return self

    def release(self) -> None:
        if self.fh is not None:
            import fcntl

            fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None

    def probe(self) -> None:
        """Refuse now if another process holds the lock (taken and released at once)."""
        if self.path.exists():
            self.acquire(record=False).release()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _holder(text: str) -> str:
    try:
        info = json.loads(text.strip().splitlines()[-1])
        return f"pid {info['pid']} on {info['host']} since {info['started']}: {info['command']}"
    except (ValueError, IndexError, KeyError, TypeError):
        return "holder unknown"


def run_progress(run: Path) -> dict[str, Any] | None:
    """How far a run directory's training has come: {"epoch", "epochs", "training"} (training: a live irat
    process holds it), or None for a file or a folder without a run. Read from metrics.jsonl and config.yaml
    only (no checkpoint is loaded)."""
    from .config import load_yaml

    if not run.is_dir() or not (run / "config.yaml").is_file():
        return None
    try:
        epochs = int(load_yaml(run / "config.yaml").get("epochs", 0))
        lines = (
            [ln for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
            if (run / "metrics.jsonl").exists()
            else []
        )
        epoch = int(json.loads(lines[-1]).get("epoch", 0)) if lines else 0
    except (OSError, ValueError, TypeError, AttributeError, IratError):
        return None
    try:
        RunLock(run).probe()
        training = False
    except IratError:
        training = True
    return {"epoch": epoch, "epochs": epochs, "training": training}
