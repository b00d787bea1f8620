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
