"""`irat sweep`: from a paper's table (or your own grid) to finished, evaluated runs — on this machine or
a Slurm cluster — idempotently.

A sweep file (YAML):

    presets: [mail/cifar10-resnet18/*]     # shipped preset names or globs over them; or `methods: [at, trades]`
    seeds: 3                               # a count (seeds 0..N-1) or a list; default: each preset's `seeds`
    grid: {optim.lr: [0.1, 0.05]}          # optional: every combination becomes its own cell
    set: {data.data_dir: ~/data, epochs: 10}   # common overrides (a shortened schedule, the device, ...)
    eval: {attacks: natural,pgd20}         # what to evaluate after training; default: the preset's suite

expands to one cell per preset × grid point × seed, each with its own run directory
(`OUT/<preset>[__key=value...]/seed<k>`) and resolved configuration (`OUT/plan/<cell>.yaml`); the plan
is written to `OUT/sweep.json`. Running the same sweep again skips finished cells, resumes unfinished
ones, retries failed ones only with `--retry-failed`, and never touches a run directory that holds a
different configuration (it says which keys differ).
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .checkpoints import RECOVERY, load_checkpoint
from .config import Config, epoch_settings, flatten, from_dict, get_key, load_yaml, set_key
from .errors import CheckpointError, ConfigError, IratError
from .methods import apply_method, check_method_name, trains_on_extra_data
from .presets import load_preset, preset_config, preset_names
from .rundir import RunLock
from .utils import atomic_write_json, atomic_write_text

MEMORY_ENV = "IRAT_CUDA_MEMORY_FRACTION"  # a run's share of its GPU's memory when several share it
FAILED = ".irat-failed"  # a cell's run directory holds this (the last error line) after a failed attempt
SPEC_KEYS = ("presets", "methods", "seeds", "grid", "set", "eval", "shorten")


@dataclass
class Cell:
    """One run of a sweep."""

    name: str  # OUT-relative run directory
    preset: str | None
    method: str | None
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)
    eval_args: list[str] = field(default_factory=list)
    shorten: int | None = None  # train for this many epochs, the schedule scaled with it

    def config(self) -> Config:
        cfg = preset_config(self.preset, self.method)
        for k, v in self.overrides.items():
            set_key(cfg, k, v)
        cfg.seed = self.seed
        cfg.progress = False
        if self.shorten:
            shorten(cfg, self.shorten)
        check_method_name(cfg)  # a grid that changes a method's parts names the run after them, as training will
        return cfg


def shorten(cfg: Config, epochs: int) -> None:
    """Scale a schedule to `epochs`: the learning-rate milestones and every setting whose field counts epochs
    (`config.epoch_settings`: burn-in, warm-ups, MWPB's first phase, the τ / λ tables, a plug-in's own) by
    epochs/E (a quick check of a table's direction); `shortened_from` records E."""
    from .schedules import milestones

    full = cfg.shortened_from or cfg.epochs
    if epochs < 1:
        raise ConfigError(f"shorten must be a number of epochs >= 1, got {epochs}")
    if epochs >= cfg.epochs:
        return
    f = epochs / cfg.epochs

    def at(e: float) -> int:
        return min(epochs, max(1, round(float(e) * f))) if e else 0

    def scaled(kind: str, value: Any) -> Any:
        if kind == "table":
            return [[at(a) if a else 0, v] for a, v in value] if value else value
        return (min(at(value), epochs - 1) if kind == "before-end" else at(value)) if value else 0

    cfg.optim.milestones = [at(m) for m in milestones(cfg.optim, cfg.epochs)]
    for key, kind in epoch_settings(cfg).items():
        set_key(cfg, key, scaled(kind, get_key(cfg, key)))
    cfg.epochs, cfg.shortened_from = epochs, full


def load_spec(path: str | Path) -> dict[str, Any]:
    spec = load_yaml(path)
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown sweep key(s) {', '.join(unknown)}; known: {', '.join(SPEC_KEYS)}")
    if not spec.get("presets") and not spec.get("methods"):
        raise ConfigError(f"{path}: a sweep needs `presets` (names or globs) or `methods`")
    return spec


def expand(spec: dict[str, Any]) -> list[Cell]:
    """Every cell of a sweep, checked (each configuration is resolved and validated) before anything runs."""
    from .validate import validate_config

    names = preset_names()
    sources: list[tuple[str | None, str | None]] = []
    for pattern in spec.get("presets") or []:
        hits = [n for n in names if fnmatch.fnmatchcase(n, str(pattern))]
        if not hits:
            raise ConfigError(f"sweep: no preset matches {pattern!r} (see `irat methods`)")
        sources += [(h, None) for h in hits]
    for m in spec.get("methods") or []:
        cfg = Config()
        apply_method(cfg, str(m))  # unknown method: one message here
        sources.append((None, str(m)))
    grid = spec.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError("sweep: `grid` maps config keys to non-empty lists of values, e.g. {optim.lr: [0.1, 0.05]}")
    if spec.get("shorten") is not None and (not isinstance(spec["shorten"], int) or spec["shorten"] < 1):
        raise ConfigError(f"sweep: `shorten` is a number of epochs >= 1, got {spec['shorten']!r}")
    common = flatten(spec.get("set") or {})
    ev = spec.get("eval") or {}
    cells = []
    for preset, method in sources:
        seeds = spec.get("seeds")
        if seeds is None:
            seeds = int((load_preset(preset) if preset else {}).get("seeds", 1))
        seed_list = list(range(int(seeds))) if isinstance(seeds, int) else [int(s) for s in seeds]
        for point in itertools.product(*grid.values()) if grid else [()]:
            over = {**common, **dict(zip(grid, point))}
            base = (preset or str(method)).replace("/", "_")
            tag = "".join(f"__{k}={v}" for k, v in zip(grid, point)).replace("/", "-")
            for seed in seed_list:
                cell = Cell(f"{base}{tag}/seed{seed}", preset, method, seed, over, shorten=spec.get("shorten"))
                cfg = cell.config()
                if not trains_on_extra_data(cfg):  # RST's data and teacher are checked when it starts
                    validate_config(cfg)
                cell.eval_args = _eval_args(ev, cfg)
                cells.append(cell)
    return cells


def _eval_args(ev: dict[str, Any], cfg: Config) -> list[str]:
    args: list[str] = []
    if ev.get("attacks"):
        args += ["--attacks", str(ev["attacks"])]
    elif ev.get("suite") or cfg.eval_suite:
        args += ["--suite", str(ev.get("suite") or cfg.eval_suite)]
    if ev.get("n"):
        args += ["--n", str(int(ev["n"]))]
    return args


def plan(cells: list[Cell], out: Path) -> None:
    """Write the expanded sweep: OUT/sweep.json and one resolved configuration per cell in OUT/plan/."""
    from .rundir import check_writable, run_files

    if run_files(out):
        raise IratError(
            f"--out {out} is a run directory ({', '.join(run_files(out))}), not a sweep's folder; choose another --out"
        )
    check_writable(out, "--out")
    RunLock(out).probe()  # another sweep running on this folder: refused before its plan is touched
    for c in cells:
        atomic_write_text(
            out / "plan" / f"{c.name.replace('/', '__')}.yaml", yaml.safe_dump(c.config().to_dict(), sort_keys=False)
        )
    atomic_write_json(out / "sweep.json", {"cells": [asdict(c) for c in cells]})


def state(cell: Cell, out: Path) -> dict[str, Any]:
    """pending | running (pid …) | unfinished | done | failed | conflict, derived from the run directory
    (a finished run is done whatever an earlier attempt left), with epoch k/n, the latest validation
    accuracy and the last error line."""
    run = out / cell.name
    info: dict[str, Any] = {"cell": cell.name, "state": "pending"}
    try:
        RunLock(run).probe()
    except IratError as exc:  # a live irat process holds it: running, never failed
        holder = str(exc).split("(", 1)[-1].split(")", 1)[0]
        return dict(info, state="running", error=holder)
    failed = (run / FAILED).read_text().strip().splitlines()[-1:] if (run / FAILED).exists() else []
    if failed:
        info.update(state="failed", error=failed[0])
    if not (run / RECOVERY).exists():
        if (run / "config.yaml").exists():  # started but no epoch finished: ours (a failed start) or another run?
            diff = _differences(yaml.safe_load((run / "config.yaml").read_text()) or {}, cell.config().to_dict())
            if diff:
                return dict(info, state="conflict", error=f"holds a different configuration ({', '.join(diff[:5])})")
        return info
    try:
        ck = load_checkpoint(run / RECOVERY)
    except CheckpointError as exc:
        return dict(info, state="failed", error=str(exc))
    diff = _differences(ck["config"], cell.config().to_dict())
    if diff:
        return dict(info, state="conflict", error=f"holds a different configuration ({', '.join(diff[:5])})")
    epoch, epochs = int(ck["epoch"]), cell.config().epochs  # the plan's length (a sweep may lengthen its runs)
    info.update(epoch=epoch, epochs=epochs)
    rows = (
        [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        if (run / "metrics.jsonl").exists()
        else []
    )
    val = [r.get("val_pgd", r.get("test_pgd")) for r in rows if r.get("val_pgd", r.get("test_pgd")) is not None]
    if val:
        info["val_pgd"] = val[-1]
    if epoch >= epochs and list((run / "eval").glob("*.json")):
        info.pop("error", None)
        info["state"] = "done"  # the run directory says so, whatever an earlier attempt left
    elif info["state"] != "failed":
        info["state"] = "unfinished"
    return info


def _differences(have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    ignore = {"progress", "device", "epochs", "data.data_dir", "data.download"}
    a, b = flatten(from_dict(have).to_dict()), flatten(want)  # the run's config as this version reads it
    return [k for k in sorted(set(a) | set(b)) if k not in ignore and a.get(k) != b.get(k)]


_STOP = threading.Event()  # set on Ctrl-C: no new cell starts, running ones are stopped
_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()


def _die_with_parent() -> None:  # pragma: no cover (runs in the child before exec)
    """Linux: the child gets SIGTERM when the sweep's process dies, whatever killed it (even SIGKILL)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # the sweep's Ctrl-C reaches the cell even if started ignored
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_logged(argv: list[str], log: Path, env: dict[str, str] | None) -> int:
    """Run a child `irat` command with its output appended to `log`; stopped with the sweep."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(argv)}\n")
        fh.flush()
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        )
        with _CHILDREN_LOCK:
            _CHILDREN.add(proc)
        try:
            return proc.wait()
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(proc)


def _now() -> str:
    import datetime

    return datetime.datetime.now().isoformat(timespec="milliseconds")


def _say(line: str) -> None:
    print(f"irat sweep: {line}", file=sys.stderr, flush=True)


def run_cell(cell: Cell, out: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Train (or resume) one cell and evaluate it, each in a child `python -m irat` whose whole output goes to
    RUN/sweep.log; a failure leaves the last error line in RUN/.irat-failed. An interrupted sweep leaves the
    cell unfinished (resumed by the next run), never failed."""
    run = out / cell.name
    st = state(cell, out)
    if st["state"] in ("done", "conflict", "running") or _STOP.is_set():
        return st
    (run / FAILED).unlink(missing_ok=True)
    py = [sys.executable, "-m", "irat"]
    if (run / RECOVERY).exists():
        train = [*py, "train", "--out", str(run), "--resume", "--epochs", str(cell.config().epochs), "--quiet"]
    else:  # a new cell, or one whose earlier start failed before its first epoch (same configuration: checked)
        plan_file = out / "plan" / f"{cell.name.replace('/', '__')}.yaml"
        train = [*py, "train", "--preset", str(plan_file), "--out", str(run), "--quiet", "--overwrite"]
    log = run / "sweep.log"
    _say(f"start {cell.name} (log: {log})")
    run.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh:  # where and with what the cell ran, for the record
        e = env or {}
        fh.write(
            f"# {_now()} start: threads {e.get('OMP_NUM_THREADS', '-')}, "
            f"CUDA_VISIBLE_DEVICES {e.get('CUDA_VISIBLE_DEVICES', '-')}, memory share {e.get(MEMORY_ENV, '-')}\n"
        )
    for argv in (train, [*py, "eval", str(run), *cell.eval_args]):
        code = _run_logged(argv, log, env)
        if _STOP.is_set() or code in (130, 143, -signal.SIGINT, -signal.SIGTERM):  # interrupted: not a failure
            _say(f"stopped {cell.name}: it resumes on the next run")
            return state(cell, out)
        if code != 0:
            lines = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
            atomic_write_text(run / FAILED, (lines[-1] if lines else f"exit code {code}") + "\n")
            st = state(cell, out)
            _say(f"failed {cell.name}: {st.get('error', '')} (whole log: {log})")
            return st
    st = state(cell, out)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"# {_now()} end: {st['state']}\n")
    _say(f"{st['state']} {cell.name}" + (f" (val PGD {st['val_pgd']:.2f})" if "val_pgd" in st else ""))
    return st


def _stop_children(sig: int) -> None:
    with _CHILDREN_LOCK:
        for proc in list(_CHILDREN):
            if proc.poll() is None:
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass


def run_local(
    cells: list[Cell],
    out: Path,
    *,
    jobs: int = 1,
    retry_failed: bool = False,
    devices: list[str] | None = None,
    jobs_per_device: int | None = None,
) -> list[dict[str, Any]]:
    """Run the sweep's cells on this machine, `jobs` at a time: on CPU each job gets cores // jobs threads
    (oversubscribed threads slow small models by an order of magnitude), with GPUs one device each. One
    sweep at a time per folder (a second is refused); Ctrl-C stops the running cells (they resume on the
    next run) and starts no other; a second Ctrl-C kills them."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if jobs_per_device is not None:  # K runs on each device (each GPU named, or the CPU) at once
        if jobs_per_device < 1:
            raise ConfigError(f"--jobs-per-device must be >= 1, got {jobs_per_device}")
        jobs = jobs_per_device * (len(devices) if devices else 1)
    share = jobs_per_device or max(1, jobs // max(len(devices or []), 1))  # runs sharing one device
    lock = RunLock(out).acquire()
    _STOP.clear()
    try:
        todo = _todo(cells, out, retry_failed)
        threads = max(1, (os.cpu_count() or 1) // jobs)
        _say(f"{len(todo)} of {len(cells)} cells to run, {jobs} at a time")

        def env_for(i: int) -> dict[str, str]:
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            if devices:
                env["CUDA_VISIBLE_DEVICES"] = devices[i % len(devices)]
                if share > 1:  # each of the runs on one GPU may take its share of the memory (the trainer applies it)
                    env[MEMORY_ENV] = f"{0.9 / share:.4f}"
            return env

        pool = ThreadPoolExecutor(max_workers=jobs)
        futures = [pool.submit(run_cell, c, out, env_for(i)) for i, c in enumerate(todo)]
        try:
            pending = set(futures)
            while pending:  # short waits: the main thread must run to see Ctrl-C (a signal may land on a worker)
                done, pending = wait(pending, timeout=0.2)
                for f in done:
                    f.result()
        except KeyboardInterrupt:
            _STOP.set()
            _say("interrupted: stopping the running cells (Ctrl-C again to kill them)")
            _stop_children(signal.SIGINT)
            try:
                pool.shutdown(wait=True, cancel_futures=True)
            except KeyboardInterrupt:
                _stop_children(signal.SIGKILL)
                pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return [state(c, out) for c in cells]
    finally:
        lock.release()


def _todo(cells: list[Cell], out: Path, retry_failed: bool) -> list[Cell]:
    todo = []
    for c in cells:
        st = state(c, out)["state"]
        if st in ("pending", "unfinished") or (st == "failed" and retry_failed):
            todo.append(c)
    return todo


class SlurmCell:
    """A submitit job for one cell: resumes where it stopped when Slurm requeues it (preemption, time limit)."""

    def __init__(self, cell: Cell, out: Path):
        self.cell, self.out = cell, out

    def __call__(self) -> dict[str, Any]:
        return run_cell(self.cell, self.out)

    def checkpoint(self) -> Any:  # submitit calls this before a requeue: the same cell, which resumes
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmCell(self.cell, self.out))


def run_slurm(
    cells: list[Cell],
    out: Path,
    *,
    partition: str | None,
    time_min: int,
    gpus: int,
    account: str | None,
    parallel: int,
    retry_failed: bool = False,
    cluster: str | None = None,
) -> list[Any]:
    """Submit the cells as one Slurm job array through submitit (`cluster="local"` runs the same array on
    this machine, for tests)."""
    try:
        import submitit
    except ImportError:
        raise IratError(
            "--executor slurm needs submitit: pip install 'irat[slurm]' (or pip install submitit)"
        ) from None
    executor = submitit.AutoExecutor(folder=str(out / "slurm" / "%j"), cluster=cluster)
    params = slurm_parameters(partition=partition, time_min=time_min, gpus=gpus, account=account, parallel=parallel)
    executor.update_parameters(
        **{k: v for k, v in params.items() if cluster in (None, "slurm") or not k.startswith("slurm")}
    )
    todo = _todo(cells, out, retry_failed)
    with executor.batch():
        jobs = [executor.submit(SlurmCell(c, out)) for c in todo]
    return jobs


def slurm_parameters(
    *, partition: str | None, time_min: int, gpus: int, account: str | None, parallel: int
) -> dict[str, Any]:
    """What each job of the array asks Slurm for (submitit's AutoExecutor parameters)."""
    if time_min < 1 or gpus < 0 or parallel < 1:
        raise ConfigError("--time-min and --parallel must be >= 1 and --gpus >= 0")
    params: dict[str, Any] = {
        "timeout_min": time_min,
        "gpus_per_node": gpus,
        "slurm_array_parallelism": parallel,
        "tasks_per_node": 1,
        "nodes": 1,
    }
    if partition:
        params["slurm_partition"] = partition
    if account:
        params["slurm_account"] = account
    return params


def status(cells: list[Cell], out: Path) -> list[dict[str, Any]]:
    return [state(c, out) for c in cells]


def status_lines(states: list[dict[str, Any]]) -> list[str]:
    lines = []
    for s in states:
        extra = ""
        if "epoch" in s:
            extra += f" epoch {s['epoch']}/{s['epochs']}"
        if "val_pgd" in s:
            extra += f" val PGD {s['val_pgd']:.2f}"
        if s.get("error"):
            extra += f" — {s['error']}"
        lines.append(f"{s['state']:10s} {s['cell']}{extra}")
    counts: dict[str, int] = {}
    for s in states:
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    lines.append("total: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + f" of {len(states)}")
    return lines


def load_plan(out: Path) -> list[Cell]:
    path = out / "sweep.json"
    if not path.is_file():
        raise IratError(f"{out} holds no sweep (no sweep.json); start one with irat sweep run SWEEP.yaml --out {out}")
    try:
        return [Cell(**c) for c in json.loads(path.read_text())["cells"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise IratError(
            f"{path} is damaged ({type(exc).__name__}: {str(exc)[:100]}); run the sweep again with the same "
            f"file and --out to write it anew (finished cells are kept)"
        ) from None
