"""Run directories under faults and mistakes: nothing lost, nothing silently wrong (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import QUICK_ARGS
from irat.checkpoints import load_checkpoint
from irat.cli import main

QUICK = [*QUICK_ARGS, "--set", "val_steps=3"]


def train(out: Path, *extra: str, epochs: int = 2) -> int:
    return main(["train", *QUICK, "--epochs", str(epochs), "--out", str(out), *extra])


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rel") / "run"
    assert train(out) == 0
    return out


def test_run_files_without_recovery_are_never_overwritten(finished, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("best.pt", "last.pt", "metrics.jsonl", "config.yaml"):
        (run / name).write_bytes((finished / name).read_bytes())
    before = files(run)
    assert train(run) == 2
    err = capsys.readouterr().err
    assert "already holds run files (config.yaml, metrics.jsonl, last.pt, best.pt)" in err and err.count("\n") == 1
    assert files(run) == before
    assert train(run, "--resume") == 2 and "no recovery.pt" in capsys.readouterr().err


def test_overwrite_replaces_every_file_of_the_old_run(tmp_path):
    run = tmp_path / "run"
    assert train(run, epochs=3) == 0
    (run / "eval").mkdir()
    (run / "eval" / "old.json").write_text("{}")
    assert train(run, "--overwrite", "--set", "val_n=0", epochs=1) == 0  # no validation: best.pt is this run's
    assert [r["epoch"] for r in rows(run)] == [1] and not (run / "eval").exists()
    assert load_checkpoint(run / "best.pt")["epoch"] == 1


def test_a_row_lost_between_checkpoint_and_metrics_is_restored(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run) == 0
    full = rows(run)
    (run / "metrics.jsonl").write_text(json.dumps(full[0]) + "\n")  # the kill came after recovery.pt of epoch 2
    assert train(run, "--resume", epochs=3) == 0
    after = rows(run)
    assert [r["epoch"] for r in after] == [1, 2, 3] and after[1] == full[1]
    assert "restored them" in capsys.readouterr().err


def test_a_broken_metrics_line_is_set_aside_and_resume_continues(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run) == 0
    good = rows(run)
    (run / "metrics.jsonl").write_text(json.dumps(good[0]) + "\n" + '{"epoch": 2, "train_lo\n')
    assert train(run, "--resume", epochs=3) == 0
    assert [r["epoch"] for r in rows(run)] == [1, 2, 3] and rows(run)[1] == good[1]
    assert (run / "metrics.jsonl.broken").read_text() == '{"epoch": 2, "train_lo\n'
    assert "set aside in metrics.jsonl.broken" in capsys.readouterr().err


def test_resume_applies_allowed_changes_records_them_and_refuses_the_rest(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run) == 0
    before = files(run)
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--eps", "0.2", "--set", "seed=3"]) == 2
    err = capsys.readouterr().err
    assert "cannot change: seed (0 → 3), attack.eps (0.1 → 0.2)" in err and "optim.*" in err
    assert files(run) == before
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--lr", "0.01", "--quiet"]) == 0
    last = rows(run)[-1]
    assert last["epoch"] == 3 and last["resumed_with"] == {"epochs": [2, 3], "optim.lr": [0.1, 0.01]}
    assert last["lr"] == pytest.approx(0.01 * 0.1)  # the new base rate after the first drop (milestones 2 and 3)
    assert "lr: 0.01" in (run / "config.yaml").read_text()


def test_full_disk_says_so_and_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    import shutil

    import irat.checkpoints as ck

    run = tmp_path / "run"
    assert train(run, epochs=1) == 0
    before = (run / "recovery.pt").read_bytes()
    capsys.readouterr()

    def no_space(obj, f, *a, **k):
        Path(f).write_bytes(b"\0" * 10)  # a partial write, then the failure torch reports
        raise RuntimeError("[enforce fail at inline_container.cc] . PytorchStreamWriter failed writing file data/0")

    monkeypatch.setattr(ck.torch, "save", no_space)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 100, 0))
    assert train(run, "--resume", epochs=2) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "the disk is full" in err and "last.pt was not written" in err
    assert (run / "recovery.pt").read_bytes() == before and not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("where", ["under-a-file", "read-only"])
def test_unwritable_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch, where):
    import irat.train.trainer as tr

    monkeypatch.setattr(tr, "load_splits", lambda *a, **k: pytest.fail("data loaded"))
    if where == "under-a-file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
        msg = "is a file, not a directory"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        real_access = os.access  # root may write anywhere: report the directory as others would see it
        monkeypatch.setattr("irat.rundir.os.access", lambda p, m: False if Path(p) == ro else real_access(p, m))
        out = ro / "run"
        msg = "not writable"
    assert train(out) == 2
    assert msg in capsys.readouterr().err


def test_leftover_tmp_files_are_removed_and_files_get_normal_permissions(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, epochs=1) == 0
    (run / ".recovery.pt.abc123.tmp").write_bytes(b"half")
    assert train(run, "--resume", epochs=2) == 0
    assert not list(run.glob(".*.tmp")) and "left by an interrupted write" in capsys.readouterr().err
    mask = os.umask(0)
    os.umask(mask)
    for name in ("recovery.pt", "best.pt", "metrics.jsonl", "config.yaml"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o666 & ~mask


def test_a_second_process_is_refused_and_a_killed_holder_does_not_block(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "irat", "train", *QUICK, "--set", "attack.steps=20", "--set", "data.train_subset=800"]
    run = tmp_path / "run"
    first = subprocess.Popen(
        [*cmd, "--epochs", "30", "--out", str(run)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (run / "recovery.pt").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    try:
        second = subprocess.run(
            [*cmd, "--epochs", "30", "--out", str(run), "--resume"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2
        assert f"in use by another irat process (pid {first.pid} on" in second.stderr
        third = subprocess.run(
            [*cmd, "--epochs", "30", "--out", str(run), "--overwrite"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert third.returncode == 2 and "in use by another irat process" in third.stderr
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert (run / ".irat.lock").exists()  # left by the killed holder, and no obstacle:
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "irat",
            "train",
            "--out",
            str(run),
            "--resume",
            "--epochs",
            str(load_checkpoint(run / "recovery.pt")["epoch"] + 1),
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr


def flip_byte_in_tensor_data(path: Path) -> None:
    """Flip one byte inside the first stored tensor (what a bad disk or a bad copy does)."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size > 64)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + 17] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_a_checkpoint_is_refused(finished, tmp_path, capsys):
    import shutil

    run = Path(shutil.copytree(finished, tmp_path / "run"))
    flip_byte_in_tensor_data(run / "best.pt")
    assert main(["eval", str(run), "--attacks", "natural", "--n", "20", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "best.pt is corrupt: its entry" in err and "fails its checksum" in err and err.count("\n") == 1
    flip_byte_in_tensor_data(run / "recovery.pt")
    before = files(run)
    assert train(run, "--resume", epochs=3) == 2
    err = capsys.readouterr().err
    assert "recovery.pt is corrupt" in err and "Intact: last.pt (epoch 2)" in err and err.count("\n") == 1
    assert files(run) == before


def test_a_checkpoint_without_epoch_or_meta_is_refused(finished, tmp_path, capsys):
    import torch

    data = torch.load(finished / "best.pt", weights_only=True)
    for broken, msg in (
        (dict(data, meta={}), "meta.arch"),
        ({k: v for k, v in data.items() if k != "epoch"}, "no 'epoch'"),
    ):
        torch.save(broken, tmp_path / "x.pt")
        assert main(["eval", str(tmp_path / "x.pt"), "--attacks", "natural", "--n", "10", "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1


def test_a_kill_between_the_two_eval_files_leaves_a_consistent_record(finished, tmp_path, monkeypatch):
    import shutil

    import numpy as np

    from irat.evaluate import run as er

    run = Path(shutil.copytree(finished, tmp_path / "run"))
    base = ["eval", str(run), "--n", "40", "--device", "cpu", "--no-sanity"]
    assert main([*base, "--attacks", "natural,pgd5"]) == 0
    (js,) = (run / "eval").glob("*.json")
    first = json.loads(js.read_text())

    def killed(path, obj):  # the process dies after the new per-example file, before the record
        raise KeyboardInterrupt

    monkeypatch.setattr(er, "atomic_write_json", killed)
    assert main([*base, "--attacks", "cw10"]) == 130
    monkeypatch.undo()
    rec = json.loads(js.read_text())
    assert rec == first  # the record did not change, and the file it names is the one it was written with
    with np.load(er.per_example_file(js, rec)) as z:
        assert set(z.files) == {"index", "label", "checkpoint_md5", "natural", "pgd5"}
    assert main([*base, "--attacks", "cw10"]) == 0  # the next evaluation merges with the consistent pair
    rec = json.loads(js.read_text())
    assert set(rec["results"]) == {"natural", "pgd5", "cw10"}
    assert rec["worst_case"] <= min(rec["results"].values())
    assert [f.name for f in (run / "eval").glob("*.npz")] == [rec["per_example_file"]]  # older files removed


def test_bf16_and_fp32_evaluations_are_separate_records(finished, tmp_path):
    import shutil

    run = Path(shutil.copytree(finished, tmp_path / "run"))
    base = ["eval", str(run), "--n", "30", "--device", "cpu", "--no-sanity", "--attacks", "natural,pgd5"]
    assert main(base) == 0 and main([*base, "--precision", "bf16"]) == 0
    names = sorted(f.name for f in (run / "eval").glob("*.json"))
    assert names == ["best_test_linf_eps0.1_n30.json", "best_test_linf_eps0.1_n30_bf16.json"]
    assert json.loads((run / "eval" / names[1]).read_text())["precision"] == "bf16"


@pytest.mark.parametrize(
    "eps,norm,msg",
    [
        ("8", "linf", "covers the whole [0,1] range"),
        ("inf", "linf", "must be > 0 and finite"),
        ("1e9", "linf", "covers the whole [0,1] range"),
        ("9", "l2", "larger than the diameter of the input space (8 for 1x8x8 inputs"),
    ],
)
def test_radius_on_the_wrong_scale_is_refused_by_train_and_eval(finished, tmp_path, capsys, eps, norm, msg):
    out = tmp_path / "run"
    assert main(["train", *QUICK, "--eps", eps, "--norm", norm, "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and not out.exists()
    before = files(finished)
    assert main(["eval", str(finished), "--eps", eps, "--norm", norm, "--attacks", "natural", "--n", "10"]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and files(finished) == before


def test_a_yaml_syntax_error_in_set_is_one_message(tmp_path, capsys):
    assert train(tmp_path / "run", "--set", "optim.milestones=[1,2") == 2
    err = capsys.readouterr().err
    assert "optim.milestones must be a list or null, got '[1,2'" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "x,y_train,y_test,msg",
    [
        (np.full((20, 8, 8, 1), np.nan, np.float32), np.arange(20) % 3, np.arange(4) % 3, "NaN, infinite"),
        (np.zeros((20, 8, 8, 1), np.uint8), (np.arange(20) % 3) + 0.5, np.arange(4) % 3, "non-integer values"),
        (np.zeros((20, 8, 8, 1), np.uint8), np.arange(20) % 3, np.array([0, 1, 2, 57]), "test labels [57] never occur"),
    ],
)
def test_bad_npz_datasets_are_refused(tmp_path, capsys, x, y_train, y_test, msg):
    np.savez(tmp_path / "train.npz", x=x, y=y_train)
    np.savez(tmp_path / "test.npz", x=x[:4], y=y_test)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                "npz",
                "--data-dir",
                str(tmp_path),
                "--model",
                "tinycnn",
                "--eps",
                "0.1",
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--set",
                "data.val_size=2",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and not out.exists()


def test_unwritable_json_is_refused_before_the_evaluation(finished, tmp_path, capsys, monkeypatch):
    from irat.evaluate import run as er

    monkeypatch.setattr(er, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    (tmp_path / "file").write_text("x")
    assert main(["eval", str(finished), "--json", str(tmp_path / "file" / "r.json")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command,msg",
    [
        (["eval", "RUN", "--attacks", "natural", "--n", "10"], "no evaluation record was written"),
        (["train", "--out", "NEW", *QUICK], "no epoch was completed, nothing to resume"),
        (["train", "--out", "RUN", "--resume", "--epochs", "3"], "the last completed epoch is in"),
        (["report", "RUN"], "nothing was written"),
    ],
)
def test_ctrl_c_says_what_each_command_left(finished, tmp_path, capsys, monkeypatch, command, msg):
    import shutil

    import irat.cli as cli

    run = Path(shutil.copytree(finished, tmp_path / "run"))
    argv = [str(run) if a == "RUN" else str(tmp_path / "new") if a == "NEW" else a for a in command]

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    from irat.analysis import report as rp
    from irat.evaluate import run as er
    from irat.train import trainer as tr

    monkeypatch.setattr(er, "evaluate_run", interrupt)  # interrupt inside each command's work
    monkeypatch.setattr(rp, "build_report", interrupt)
    monkeypatch.setattr(tr.Trainer, "fit", interrupt)
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert f"irat: interrupted; {msg}" in err and "Traceback" not in err


def test_a_damaged_per_example_file_is_one_message_in_analyze(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--set", "save_per_example=[1]", epochs=1) == 0
    (path,) = (run / "per_example").glob("*.npz")
    path.write_bytes(path.read_bytes()[:100])
    capsys.readouterr()
    assert main(["analyze", str(run), "--out", str(tmp_path / "fig"), "--n", "20", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "epoch_001.npz is damaged" in err and err.count("\n") == 1


def test_python_api_applies_a_method_or_refuses_a_bare_name(tmp_path):
    import irat
    from irat.config import Config
    from irat.errors import ConfigError
    from irat.train import Trainer

    cfg = Config(method="mail-at")  # only a name: it would train plain AT labelled mail-at
    cfg.data.dataset, cfg.model.arch, cfg.device = "digits", "tinycnn", "cpu"
    with pytest.raises(ConfigError, match="weighting.name is default but mail-at uses mail"):
        Trainer(cfg, tmp_path / "bare")
    assert not (tmp_path / "bare").exists()
    t = irat.fit(
        tmp_path / "api",
        method="mail-at",
        dataset="digits",
        model="tinycnn",
        eps=0.1,
        epochs=2,
        batch_size=64,
        device="cpu",
        progress=False,
        weighting={"burn_in": 1},
        **{"data.train_subset": 256, "attack.steps": 3, "val_n": 40},
    )
    assert (
        t.cfg.method == "mail-at"
        and t.cfg.weighting.name == "mail"
        and t.cfg.weighting.options["mail"]["gamma"] == 30.0
    )
    assert [r["epoch"] for r in t.history] == [1, 2] and "weight_mean" in t.history[1]
    t = irat.fit(tmp_path / "api", resume=True, epochs=3)
    assert t.history[-1]["epoch"] == 3 and t.history[-1]["resumed_with"] == {"epochs": [2, 3]}


@pytest.mark.parametrize(
    "extra,msg",
    [
        (["--method", "gairat", "--burn-in", "5"], "weighting gair: the burn-in (5 epochs) covers the whole run of 2"),
        (["--method", "mwpb-at"], "radius mwpb: its first phase (80 epochs) covers the whole run of 2"),
        (["--method", "awp-trades"], "awp: the warm-up (9 epochs) covers the whole run of 2"),
    ],
)
def test_a_part_that_would_stay_off_is_said(tmp_path, capsys, extra, msg):
    assert train(tmp_path / "run", *extra) == 0
    assert f"warning: {msg}" in capsys.readouterr().err


def test_analyze_says_when_the_weights_are_constant(tmp_path):
    from irat.analysis.analyze import analyze_run

    run = tmp_path / "run"
    assert train(run, "--method", "gairat", "--burn-in", "5", "--set", "save_per_example=[1]", epochs=1) == 0
    res = analyze_run(run, tmp_path / "fig", n=20, device="cpu")
    assert "every weight is 1 in epoch 1" in res["skipped"]["weight_extremes"]
    assert not any("weight_extremes" in w for w in res["written"])


def test_an_interrupted_evaluation_continues_to_the_same_record(finished, tmp_path, monkeypatch, capsys):
    import shutil

    from irat.evaluate import run as er

    a = Path(shutil.copytree(finished, tmp_path / "a"))
    b = Path(shutil.copytree(finished, tmp_path / "b"))
    argv = [
        "--attacks",
        "natural,pgd5,square:n_queries=30",
        "--n",
        "40",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--no-sanity",
    ]
    assert main(["eval", str(a), *argv, "--json", str(tmp_path / "a.json")]) == 0
    calls = {"n": 0}
    real_put = er.FileProgress.put

    def put_then_die(self, key, value):
        real_put(self, key, value)
        calls["n"] += 1
        if key.startswith("square"):  # after the first batch of the second attack
            raise KeyboardInterrupt

    monkeypatch.setattr(er.FileProgress, "put", put_then_die)
    assert main(["eval", str(b), *argv]) == 130
    monkeypatch.undo()
    assert list((b / "eval").glob(".*.partial.pt")) and not list((b / "eval").glob("*.json"))
    capsys.readouterr()
    assert main(["eval", str(b), *argv, "--json", str(tmp_path / "b.json")]) == 0
    assert f"continuing an interrupted evaluation ({calls['n']} batches already done)" in capsys.readouterr().err
    assert calls["n"] >= 2
    ra, rb = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert ra["results"] == rb["results"] and ra["worst_case"] == rb["worst_case"]
    assert not list((b / "eval").glob(".*.partial.pt"))  # removed once the record is written


def test_analyze_shows_its_stages_only_when_asked(finished, tmp_path, capsys):
    from irat.analysis.analyze import analyze_run

    analyze_run(finished, tmp_path / "a", n=20, device="cpu", progress=True)
    assert "irat analyze" in capsys.readouterr().err
    assert (
        main(["analyze", str(finished), "--out", str(tmp_path / "b"), "--n", "20", "--device", "cpu", "--quiet"]) == 0
    )
    assert "irat analyze" not in capsys.readouterr().err
