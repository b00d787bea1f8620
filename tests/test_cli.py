"""CLI: train/eval/methods/demo, the JSON record, and every bad-input path (one message, files intact)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from irat.cli import main

TRAIN = [
    "train",
    "--dataset",
    "digits",
    "--model",
    "tinycnn",
    "--eps",
    "0.1",
    "--epochs",
    "1",
    "--batch-size",
    "64",
    "--device",
    "cpu",
    "--quiet",
    "--set",
    "attack.steps=2",
    "--set",
    "val_n=50",
    "--set",
    "data.train_subset=200",
]


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "at"
    assert main(TRAIN + ["--out", str(out)]) == 0
    return out


def test_eval_json_record(finished_run, tmp_path, capsys):
    js = tmp_path / "r.json"
    assert main(["eval", str(finished_run), "--attacks", "natural,pgd5,cw10", "--n", "100", "--json", str(js)]) == 0
    rec = json.loads(js.read_text())
    assert rec["n"] == 100 and rec["eps"] == 0.1 and rec["norm"] == "linf"  # the run's own threat model
    assert set(rec["results"]) == {"natural", "pgd5", "cw10"}
    assert 0 <= rec["results"]["pgd5"] <= rec["results"]["natural"] <= 100
    assert rec["worst_case"] <= min(rec["results"].values())
    per = np.load(next((finished_run / "eval").glob("best_test_*n100.*.npz")))
    assert per["pgd5"].shape == (100,) and per["pgd5"].mean() * 100 == pytest.approx(rec["results"]["pgd5"])
    assert "natural" in capsys.readouterr().out


def test_eval_overrides_threat_model(finished_run, tmp_path):
    js = tmp_path / "r.json"
    assert (
        main(
            [
                "eval",
                str(finished_run),
                "--attacks",
                "pgd3",
                "--n",
                "20",
                "--eps",
                "8/255",
                "--norm",
                "l2",
                "--json",
                str(js),
                "--checkpoint",
                "last",
            ]
        )
        == 0
    )
    rec = json.loads(js.read_text())
    assert rec["eps"] == pytest.approx(8 / 255) and rec["norm"] == "l2" and rec["checkpoint"] == "last"


def test_methods_lists_everything(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for word in ("trades", "mart", "fat", "bilaw/mnist-tinycnn-linf/at", "wrn-34-10", "tinycnn"):
        assert word in out


def test_preset_and_set_precedence(tmp_path):
    from irat.cli import build_config, make_parser

    args = make_parser().parse_args(
        [
            "train",
            "--out",
            str(tmp_path),
            "--preset",
            "bilaw/mnist-tinycnn-linf/at",
            "--eps",
            "0.3",
            "--set",
            "optim.lr=1/100",
            "--set",
            "optim.milestones=[3,4]",
        ]
    )
    cfg = build_config(args)
    assert cfg.method == "at" and cfg.model.arch == "tinycnn" and cfg.data.dataset == "mnist"
    assert cfg.attack.eps == 0.3 and cfg.optim.lr == pytest.approx(0.01) and cfg.optim.milestones == [3, 4]


@pytest.mark.parametrize(
    "extra,msg",
    [
        (["--method", "nope"], "unknown method"),
        (["--dataset", "imagenet22k"], "unknown dataset"),
        (["--model", "resnet9000"], "unknown model"),
        (["--eps", "0"], "attack.eps"),
        (["--eps=-0.1"], "attack.eps"),
        (["--eps", "eight"], "cannot read"),
        (["--set", "optim.nope=1"], "unknown config key"),
        (["--set", "attack.norm=l1"], "attack.norm"),
        (["--preset", "no/such/preset"], "unknown preset"),
        (["--weighting", "magic"], "weighting.name"),
        (["--radius", "huge"], "radius.name"),
        (["--burn-in=-1"], "weighting.burn_in"),
        (["--method", "mail-at", "--set", "weighting.mail.margin=pm-xyz"], "weighting.mail.margin must be one of"),
        (["--method", "gairat", "--set", "weighting.normalization=max"], "weighting.normalization"),
        (["--objective", "trades-mix", "--weighting", "mail"], "a mixture only for w in [0, 1]"),
        (["--set", "seed=abc"], "seed must be a whole number, got 'abc'"),
        (["--set", "optim.milestones=5"], "optim.milestones must be a list or null, got 5"),
        (["--set", "data.val_size=abc"], "data.val_size must be a whole number or null, got 'abc'"),
        (["--set", "awp.enabled=maybe"], "awp.enabled must be true or false"),
        (["--set", "weighting.nosuch.alpha=1"], "no weighting scheme named 'nosuch'"),
        (["--set", "weighting.gair.alpha=1"], "weighting.gair has no option 'alpha'"),
        (["--set", "weighting.none.alpha=1"], "weighting.none takes no options"),
    ],
)
def test_bad_train_input(tmp_path, capsys, extra, msg):
    out = tmp_path / "run"
    assert main(TRAIN + ["--out", str(out)] + extra) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err and err.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())  # nothing was started


def test_finished_run_is_protected(finished_run, capsys):
    before = digest(finished_run)
    assert main(TRAIN + ["--out", str(finished_run)]) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert digest(finished_run) == before
    assert main(["train", "--out", str(finished_run), "--resume"]) == 0  # nothing to do, says so
    assert digest(finished_run) == before


def test_resume_without_run(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no run to resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content,msg",
    [
        (b"not a checkpoint at all", "corrupt"),
        (None, "foreign format"),
    ],
)
def test_corrupt_or_foreign_checkpoint(finished_run, tmp_path, capsys, content, msg):
    run = tmp_path / "copy"
    run.mkdir()
    for p in finished_run.glob("*.pt"):
        (run / p.name).write_bytes(p.read_bytes())
    if content is None:
        torch.save({"state_dict": {"w": torch.zeros(2)}}, run / "best.pt")
    else:
        (run / "best.pt").write_bytes(content)
    before = digest(run)
    assert main(["eval", str(run)]) == 2
    assert msg in capsys.readouterr().err
    assert digest(run) == before
    (run / "recovery.pt").write_bytes(b"garbage")
    before = digest(run)
    assert main(["train", "--out", str(run), "--resume"]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert digest(run) == before


def test_missing_checkpoint_and_bad_eval_args(finished_run, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", str(finished_run), "--attacks", "natural,fgsm-ish"]) == 2
    assert "unknown attack" in capsys.readouterr().err
    assert main(["eval", str(finished_run), "--eps", "0"]) == 2
    assert "eps must be > 0" in capsys.readouterr().err


def test_npz_labels_out_of_range(tmp_path, capsys):
    np.savez(tmp_path / "train.npz", x=np.zeros((20, 8, 8, 1), np.uint8), y=np.arange(20) % 3 - 1)
    np.savez(tmp_path / "test.npz", x=np.zeros((4, 8, 8, 1), np.uint8), y=np.arange(4) % 3)
    assert (
        main(
            [
                "train",
                "--dataset",
                "npz",
                "--data-dir",
                str(tmp_path),
                "--out",
                str(tmp_path / "r"),
                "--model",
                "fc1",
                "--eps",
                "0.1",
                "--set",
                "data.val_size=4",
            ]
        )
        == 2
    )
    assert "labels must lie in" in capsys.readouterr().err


def test_python_api_wrong_channels_and_range():
    import irat
    from irat.errors import IratError

    model = irat.create_model("tinycnn", in_channels=1, num_classes=10, input_size=8)
    with pytest.raises(IratError, match="1-channel"):
        irat.evaluate(model, torch.rand(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), attacks=["pgd2"], eps=0.1)
    with pytest.raises(IratError, match=r"\[0,1\]"):
        irat.evaluate(model, torch.rand(4, 1, 8, 8) + 1, torch.zeros(4, dtype=torch.long), attacks=["pgd2"], eps=0.1)
    with pytest.raises(IratError, match="labels must lie in"):
        irat.evaluate(model, torch.rand(4, 1, 8, 8), torch.full((4,), 12), attacks=["pgd2"], eps=0.1)


def test_demo_prints_table(tmp_path, capsys):
    assert main(["demo", "--epochs", "2", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| method" in out and "pgd20" in out and "cw" in out
    assert out.lstrip().startswith("| method")  # stdout is the table: `irat demo > table.md`
    assert all(line.startswith(("|", "WARNING")) for line in out.strip().splitlines())


def test_help_and_argument_errors_answer_without_importing_pytorch():
    """`irat --help` and a usage error must not pay for PyTorch's import (benchmarks/cli_startup.py times it)."""
    import subprocess
    import sys

    probe = (
        "import sys, runpy\n"
        "sys.argv = ['irat'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('irat', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
    )
    for args in (["--help"], ["train", "--bogus"], ["nonsense"]):
        res = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
        assert res.stderr.strip().endswith("NO-TORCH"), (args, res.stderr[-300:])


def test_train_help_lists_what_the_registries_hold(capsys):
    """The help's name lists are read from the registries (no hand-kept list to go stale)."""
    from irat.data.datasets import SPECS
    from irat.parts import SECTIONS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for registry in [*SECTIONS.values(), SPECS]:
        for name in registry.names():
            assert name.replace("-", "- ") in text or name in text, name
