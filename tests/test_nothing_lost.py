"""Nothing lost, nothing corrupted: resume without dead ends, hand edits never dropped, a folder re-checked
under its lock, integrity of the evaluation store, and bad input refused before any work."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import QUICK_ARGS
from irat.cli import main


def train(out: Path, *extra: str, epochs: int = 2) -> int:
    return main(["train", *QUICK_ARGS, "--epochs", str(epochs), "--out", str(out), *extra])


def test_a_run_killed_in_its_first_epoch_starts_again_with_the_same_command(tmp_path, capsys):
    out = tmp_path / "r"
    assert train(out, epochs=1) == 0
    for f in ("recovery.pt", "last.pt", "best.pt"):
        (out / f).unlink()
    (out / "metrics.jsonl").write_text("")  # what a kill in epoch 1 leaves: config.yaml and no epoch
    capsys.readouterr()
    assert train(out, epochs=1) == 0  # the same command: no dead end
    assert "stopped before its first epoch was saved; starting it again" in capsys.readouterr().err
    for f in ("recovery.pt", "last.pt", "best.pt"):
        (out / f).unlink()
    (out / "metrics.jsonl").write_text("")
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0  # or --resume: from scratch, as recorded
    assert [json.loads(r)["epoch"] for r in (out / "metrics.jsonl").read_text().splitlines()] == [1]


def test_hand_edits_to_config_yaml_are_applied_like_flags_or_refused(tmp_path, capsys):
    out = tmp_path / "r"
    assert train(out, epochs=1) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["epochs"] = 2  # a resume may change the length
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["epoch"] == 2 and last["resumed_with"]["epochs"] == [1, 2]
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["epochs"], cfg["attack"]["eps"] = 3, 0.2  # the threat model may not change: refused, not dropped
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 2
    assert "cannot change: attack.eps (0.1 → 0.2)" in capsys.readouterr().err


def test_a_run_finished_by_another_process_meanwhile_is_not_overwritten(tmp_path):
    from conftest import quick_config
    from irat.errors import IratError
    from irat.train import Trainer

    out = tmp_path / "r"
    first = Trainer(quick_config(epochs=1), out)  # looked at an empty folder
    Trainer(quick_config(epochs=1, seed=5), out).fit()  # another process finished a run there since
    before = (out / "best.pt").read_bytes()
    with pytest.raises(IratError, match="another process wrote into"):
        first.fit()
    assert (out / "best.pt").read_bytes() == before


def test_a_damaged_evaluation_store_is_recomputed_not_used(tmp_path, monkeypatch, capsys):
    from irat.evaluate import run as er

    out = tmp_path / "r"
    assert train(out, epochs=1) == 0
    argv = ["eval", str(out), "--attacks", "natural,pgd5", "--n", "60", "--batch-size", "4", "--device", "cpu"]
    argv += ["--no-sanity"]
    assert main([*argv, "--json", str(tmp_path / "clean.json")]) == 0
    shutil.rmtree(out / "eval")
    real_put = er.FileProgress.put

    def put_then_die(self, key, value):
        real_put(self, key, value)
        raise KeyboardInterrupt

    monkeypatch.setattr(er.FileProgress, "put", put_then_die)
    assert main(argv) == 130
    monkeypatch.undo()
    store = next((out / "eval").glob(".*.partial.pt"))
    blob = bytearray(store.read_bytes())
    with zipfile.ZipFile(store) as z:  # flip one byte inside the stored batch's data
        info = next(i for i in z.infolist() if "/data/" in i.filename)
    h = info.header_offset  # the local header gives the data's offset (its extra field pads for alignment)
    start = h + 30 + int.from_bytes(blob[h + 26 : h + 28], "little") + int.from_bytes(blob[h + 28 : h + 30], "little")
    blob[start] ^= 0xFF
    store.write_bytes(bytes(blob))
    capsys.readouterr()
    assert main([*argv, "--json", str(tmp_path / "again.json")]) == 0
    assert "is damaged" in capsys.readouterr().err
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("clean.json", "again.json"))
    assert a["results"] == b["results"]


def test_an_npz_whose_labels_skip_classes_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 200)
    y[17] = 57  # one stray label
    np.savez(tmp_path / "train.npz", x=rng.integers(0, 255, (200, 1, 8, 8), dtype=np.uint8), y=y)
    np.savez(tmp_path / "test.npz", x=rng.integers(0, 255, (50, 1, 8, 8), dtype=np.uint8), y=y[:50] % 10)
    assert main(["train", "--dataset", "npz", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "classes [10, 11, 12, 13, 14]" in err and "57 (1×)" in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "setting, message",
    [
        ("data.train_subset=-5", "data.train_subset must be a whole number >= 1"),
        ("optim.milestones=[a,b]", "optim.milestones must be a list of epoch numbers"),
        ("optim.milestone_lrs=[fast]", "optim.milestone_lrs must be a list of learning rates"),
        ("save_per_example=[1,x]", "save_per_example must be a list of epoch numbers"),
    ],
)
def test_bad_settings_are_refused_before_any_file_is_written(tmp_path, capsys, setting, message):
    assert train(tmp_path / "r", "--set", setting) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_a_dangling_link_as_out_and_a_model_name_taken_twice(tmp_path, capsys):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere" / "x")
    assert train(tmp_path / "link") == 2
    assert "is a symbolic link to" in capsys.readouterr().err
    import torch.nn as nn

    from irat.errors import ConfigError
    from irat.models import create_model, register

    with pytest.raises(ConfigError, match="a model named 'tinycnn' is already registered"):
        register("tinycnn")(lambda c, k, s: nn.Linear(1, 1))
    assert create_model("tinycnn", in_channels=1, num_classes=10, input_size=8) is not None


def test_analyze_stops_on_a_damaged_per_example_file_before_any_figure(tmp_path, capsys):
    out = tmp_path / "r"
    assert train(out, "--set", "save_per_example=[1]", epochs=1) == 0
    f = next((out / "per_example").glob("epoch_*.npz"))
    f.write_bytes(f.read_bytes()[:-40])
    assert main(["analyze", str(out), "--out", str(tmp_path / "fig"), "--n", "20", "--device", "cpu"]) == 2
    assert "is damaged" in capsys.readouterr().err
    assert not list((tmp_path / "fig").glob("*.png")) if (tmp_path / "fig").exists() else True


@pytest.mark.parametrize(
    "command",
    [
        ["train", *QUICK_ARGS, "--epochs", "1000"],
        ["methods"],
        ["eval", "RUN", "--attacks", "natural,pgd50", "--n", "200"],
    ],
)
def test_ctrl_c_during_start_up_gives_one_line(tmp_path, command):
    """SIGINT while PyTorch is still being loaded: the command's one-line message, no traceback."""
    import signal
    import subprocess
    import sys
    import time

    if "RUN" in command:
        assert train(tmp_path / "run", epochs=1) == 0
        command = [str(tmp_path / "run") if c == "RUN" else c for c in command]
    argv = [sys.executable, "-m", "irat", *command]
    if command[0] == "train":
        argv += ["--out", str(tmp_path / "r")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.time() + 30
    while time.time() < deadline and proc.poll() is None:  # the moment PyTorch's libraries are being mapped
        try:
            if "libtorch" in maps.read_text():
                break
        except OSError:
            pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err and err.strip().startswith("irat: interrupted"), err


def _default_sigint() -> None:
    """In the child: Ctrl-C's default disposition (a shell running the tests in the background ignores it,
    and a child would inherit that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_compile_failure_during_training_falls_back_to_eager(tmp_path, capsys):
    """torch.compile can fail lazily (a backward graph, another memory format): the run goes on in eager
    mode and says so, instead of stopping (seen with inductor's C++ build under ATEN_CPU_CAPABILITY=default)."""
    from conftest import quick_config
    from irat.train import Trainer

    class FakeInductorError(RuntimeError):
        pass

    FakeInductorError.__module__ = "torch._inductor.exc"
    trainer = Trainer(quick_config(epochs=1, compile=True), tmp_path / "r")
    real = trainer.train_step
    calls = {"n": 0}

    def first_fails(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise FakeInductorError("C++ compile error")
        return real(*a, **k)

    trainer.train_step = first_fails  # type: ignore[method-assign]
    row = trainer.fit()
    assert row["epoch"] == 1 and trainer.compile_failed and trainer.net is trainer.model
    assert "training in eager mode from here" in capsys.readouterr().err
    trainer2 = Trainer(quick_config(epochs=1), tmp_path / "s")
    trainer2.train_step = lambda *a, **k: (_ for _ in ()).throw(ValueError("a real bug"))  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="a real bug"):  # anything else is not swallowed
        trainer2.fit()


def test_outputs_in_a_read_only_folder_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """export, report and analyze with --out in a folder that cannot be written: one message, nothing written
    (simulated with os.access: the suite runs as root, for whom permission bits do not stop writes)."""
    import os

    from irat import rundir

    out = tmp_path / "r"
    assert train(out, epochs=1) == 0
    locked = tmp_path / "locked"
    locked.mkdir()
    capsys.readouterr()
    real = os.access
    monkeypatch.setattr(rundir.os, "access", lambda p, mode: False if str(p).startswith(str(locked)) else real(p, mode))
    for argv in (
        ["export", str(out), "--out", str(locked / "m.pt")],
        ["report", str(out), "--out", str(locked / "t.md")],
        ["analyze", str(out), "--out", str(locked / "figs"), "--n", "10", "--device", "cpu"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "not writable" in err and err.count("\n") == 1, err
    assert not any(locked.iterdir())


def test_an_evaluation_records_the_fingerprint_of_the_weights_it_loaded(tmp_path, monkeypatch):
    """A run still training replaces best.pt while `irat eval` reads it: the record names the checkpoint whose
    weights were evaluated (hashed from the very bytes loaded), not the newer file."""
    import hashlib

    from irat import checkpoints

    out = tmp_path / "r"
    assert train(out, epochs=2) == 0
    original = (out / "best.pt").read_bytes()
    newer = (out / "last.pt").read_bytes()
    assert original != newer
    real = checkpoints.read_checkpoint

    def read_then_replace(path, *a, **k):
        got = real(path, *a, **k)
        if Path(path).name == "best.pt":
            Path(path).write_bytes(newer)  # the trainer's next checkpoint lands right after the read
        return got

    monkeypatch.setattr(checkpoints, "read_checkpoint", read_then_replace)
    j = tmp_path / "rec.json"
    assert main(["eval", str(out), "--attacks", "natural", "--n", "20", "--device", "cpu", "--json", str(j)]) == 0
    assert json.loads(j.read_text())["checkpoint_md5"] == hashlib.md5(original).hexdigest()
