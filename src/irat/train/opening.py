"""Opening a run directory: what it holds decides whether a run starts, resumes or is refused — before any work.

A folder with run files is never trained into without --resume or --overwrite; a run killed before its first
checkpoint (nothing of value) starts again; --resume continues from recovery.pt with the flags and hand edits to
config.yaml a resume may change (else refused, naming them); the folder's state is snapshotted so that the
trainer can re-check it under its lock.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..checkpoints import BEST, LAST, RECOVERY, load_checkpoint, run_state
from ..config import Config, flatten, from_dict, load_yaml, resumable, resume_scope, set_key
from ..distributed import is_main_process
from ..errors import CheckpointError, ConfigError, IratError
from ..rundir import RunLock, check_writable, run_files


def apply_resume_changes(cfg: Config, changes: list[tuple[str, Any]]) -> dict[str, list[Any]]:
    """Apply the settings asked for on --resume; refuse, listing them, any that would make it another run.
    Returns {key: [before, after]} for the settings that changed."""
    before = flatten(cfg.to_dict())
    for key, value in changes:
        set_key(cfg, key, value)
    after = flatten(cfg.to_dict())
    diff = {
        k: [before.get(k), after.get(k)]
        for k in [*before, *(k for k in after if k not in before)]
        if before.get(k) != after.get(k)
    }
    bad = [k for k in diff if not resumable(cfg, k)]
    if bad:
        may = dict.fromkeys(s for k in flatten(cfg.to_dict()) if (s := resume_scope(cfg, k)))
        raise IratError(
            "--resume continues the same run; these settings cannot change: "
            + ", ".join(f"{k} ({diff[k][0]!r} → {diff[k][1]!r})" for k in bad)
            + f". A resume may change: {', '.join(may)}"
        )
    return diff


@dataclass
class Opening:
    """What opening decided: the run's config, its recovery state (resume), whether it resumes, whether the old
    files go (under the lock), the settings a resume changed, and the folder's snapshot."""

    cfg: Config
    state: dict[str, Any] | None
    resume: bool
    overwrite: bool
    changes: dict[str, list[Any]]
    snapshot: list[tuple[str, int]]


def open_run_dir(
    out: Path,
    cfg: Config | None,
    *,
    resume: bool,
    overwrite: bool,
    changes: list[tuple[str, Any]] | None,
    epochs: int | None,
    device: str | None,
) -> Opening:
    """Decide, before any work, what training into `out` means (see the module docstring)."""
    if out.exists() and not out.is_dir():
        raise IratError(f"--out {out} exists and is not a directory")
    check_writable(out, "--out")
    RunLock(out).probe()  # another process training into it: refused before any work
    files = run_files(out)
    if files and not_started(out):  # killed before its first checkpoint: nothing of value to lose
        say(f"{out} holds a run stopped before its first epoch was saved; starting it again")
        if resume and cfg is None:  # resumed from scratch, as recorded, with the flags given
            cfg = from_dict(load_yaml(out / "config.yaml"))
            for key, value in [*(changes or []), ("epochs", epochs), ("device", device)]:
                if value is not None:
                    set_key(cfg, key, value)
        resume, overwrite = False, True
    snap = snapshot(out)  # re-checked under the lock (another process may write)
    state = None
    if files and not (overwrite and not resume):
        try:
            state = run_state(out)
        except CheckpointError as exc:  # a damaged recovery.pt: say what is left, change nothing
            raise CheckpointError(f"{exc}. {_intact_alternatives(out)}") from None
    applied: dict[str, list[Any]] = {}
    if resume:
        if state is None:
            raise IratError(
                f"--resume: {out} holds no run to resume (no {RECOVERY}"
                + (f"; it holds {', '.join(files)}" if files else "")
                + "); start one without --resume"
            )
        cfg = from_dict(state["data"]["config"])
        # hand edits to config.yaml count like flags (within what a resume may change; else refused)
        edits = config_edits(out / "config.yaml", state["data"]["config"])
        asked = edits + list(changes or []) + [("epochs", epochs), ("device", device)]
        applied = apply_resume_changes(cfg, [(k, v) for k, v in asked if v is not None])
    elif files and not overwrite:
        what = (
            f"run files ({', '.join(files)})"
            if state is None
            else "a finished run"
            if state["finished"]
            else f"an unfinished run (epoch {state['epoch']}/{state['epochs']})"
        )
        raise IratError(
            f"{out} already holds {what}; pass --resume to continue it, --overwrite to "
            f"replace it, or choose another --out"
        )
    assert cfg is not None
    return Opening(cfg, state, resume, bool(overwrite and files and not resume), applied, snap)


def not_started(out: Path) -> bool:
    """A run directory with a config but no checkpoint and no finished epoch: killed during its first epoch."""
    if not (out / "config.yaml").is_file() or any((out / n).exists() for n in (RECOVERY, LAST, BEST)):
        return False
    metrics = out / "metrics.jsonl"
    return not metrics.exists() or not metrics.read_text(encoding="utf-8", errors="replace").strip()


def config_edits(path: Path, recorded: dict[str, Any]) -> list[tuple[str, Any]]:
    """The settings in which a run's config.yaml differs from its checkpoint's config (hand edits), as
    (dotted key, value); none when the file is missing or unreadable."""
    try:
        on_disk = flatten(load_yaml(path))
    except (ConfigError, OSError):
        return []
    rec = flatten(recorded)
    return [(k, v) for k, v in on_disk.items() if k in rec and v != rec[k]]


def snapshot(out: Path) -> list[tuple[str, int]]:
    """The run files in `out` with their modification times (what another process would change)."""
    return [(n, (out / n).stat().st_mtime_ns) for n in run_files(out) if (out / n).is_file()]


def _intact_alternatives(out: Path) -> str:
    """What a run with a damaged recovery checkpoint still has."""
    intact = []
    for name in (LAST, BEST):
        try:
            intact.append(f"{name} (epoch {load_checkpoint(out / name)['epoch']})")
        except CheckpointError:
            pass
    if not intact:
        return "No intact checkpoint is left: train again with --overwrite"
    return (
        f"Intact: {', '.join(intact)}, which irat eval can use; they hold no optimizer or RNG state, so an exact "
        f"resume is impossible: train again with --overwrite to continue from scratch"
    )


def say(message: str) -> None:
    """One line to stderr from rank 0, written beside a progress bar (the train package's one way to talk)."""
    if is_main_process():
        tqdm.write(f"irat: {message}", file=sys.stderr)
