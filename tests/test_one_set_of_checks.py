"""One set of checks for the command line and Python, exports that say what they are, and outputs that never
replace what they should not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import irat
from conftest import QUICK_ARGS
from irat.cli import main
from irat.errors import IratError


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("checks") / "run"
    assert main(["train", *QUICK_ARGS, "--epochs", "1", "--out", str(out)]) == 0
    return out


def _net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def test_python_evaluate_refuses_what_the_cli_refuses(run, capsys):
    x, y = torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)
    with pytest.raises(IratError, match="eps = 8 covers the whole"):
        irat.evaluate(_net(), x, y, eps=8)
    assert main(["eval", str(run), "--eps", "8", "--device", "cpu"]) == 2
    assert "--eps = 8 covers the whole" in capsys.readouterr().err
    for bad in ((0.5, 0.25), ([float("nan")], [1.0]), ([0.0], [float("inf")]), ([0.1], [0.0])):
        with pytest.raises(IratError, match="normalize"):
            irat.evaluate(_net(), x, y, attacks="natural", eps=0.1, normalize=bad)
    for text in ("nan:nan", "0:inf", "0.1:0"):
        assert main(["eval", str(run), "--normalize", text, "--device", "cpu"]) == 2
        assert "normalize" in capsys.readouterr().err


def test_resume_accepts_the_runs_own_method_and_names_what_differs(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", *QUICK_ARGS, "--method", "trades", "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    # the same command again with --resume appended: accepted
    assert main(["train", *QUICK_ARGS, "--method", "trades", "--epochs", "2", "--out", str(out), "--resume"]) == 0
    assert main(["train", *QUICK_ARGS, "--method", "mart", "--epochs", "3", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "these differ: --method mart (the run's: trades)" in err


def test_export_infers_the_format_from_the_name_and_refuses_a_mismatch(run, tmp_path, capsys):
    from safetensors.torch import load_file

    out = tmp_path / "model.safetensors"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert set(load_file(str(out))) == set(torch.load(run / "best.pt", weights_only=True)["model"])
    assert json.loads(Path(str(out) + ".json").read_text())["format"] == "safetensors"
    assert main(["export", str(run), "--out", str(tmp_path / "m.safetensors"), "--format", "state-dict"]) == 2
    assert "names a safetensors file but --format is state-dict" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


def test_outputs_never_replace_run_files_or_existing_files(run, tmp_path, capsys):
    r = Path(shutil.copytree(run, tmp_path / "r"))
    before = {p.name: p.read_bytes() for p in r.iterdir() if p.is_file()}
    for argv in (
        ["export", str(r), "--out", str(r / "best.pt")],
        ["export", str(r), "--out", str(r / "recovery.pt"), "--overwrite"],  # a run file even with --overwrite
        ["eval", str(r), "--attacks", "natural", "--device", "cpu", "--json", str(r / "best.pt")],
        ["report", str(r), "--out", str(r / "metrics.jsonl")],
    ):
        assert main(argv) == 2, argv
        assert "is a file of the run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in r.iterdir() if p.is_file()} == before
    assert main(["eval", str(r), "--attacks", "natural", "--device", "cpu", "--n", "20"]) == 0
    rec = next((r / "eval").glob("*.json"))
    saved = rec.read_bytes()
    assert main(["export", str(r), "--out", str(rec.with_suffix(""))]) == 2  # its card would be the record
    assert rec.read_bytes() == saved
    other = tmp_path / "table.md"
    other.write_text("mine")
    assert main(["report", str(r), "--out", str(other)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err and other.read_text() == "mine"
    assert main(["report", str(r), "--out", str(other), "--overwrite"]) == 0 and other.read_text() != "mine"
    assert main(["analyze", str(r), "--out", str(r / "eval" / "figs")]) == 2


def test_the_card_takes_each_figure_from_its_own_threat_model(run, tmp_path):
    """A digits model evaluated at its training eps (0.1) on 20 examples and at 0.05 on 40: the card's
    figures come from the eps-0.1 record, whatever the other holds."""
    r = Path(shutil.copytree(run, tmp_path / "r"))
    common = ["--device", "cpu", "--no-sanity", "--attacks", "natural,aa:steps=3:n_queries=20"]
    assert main(["eval", str(r), *common, "--n", "20"]) == 0
    assert main(["eval", str(r), *common, "--n", "40", "--eps", "0.05"]) == 0
    recs = {json.loads(p.read_text())["eps"]: json.loads(p.read_text()) for p in (r / "eval").glob("*.json")}
    assert main(["export", str(r), "--out", str(tmp_path / "m.pt")]) == 0
    card = json.loads((tmp_path / "m.pt.json").read_text())
    own = recs[0.1]
    assert card["eps"] == 0.1 and card["autoattack_acc"] == own["results"]["aa"]
    assert card["figures_from"]["autoattack_acc"]["n"] == 20 and card["clean_acc"] == own["results"]["natural"]
    assert main(["export", str(r), "--out", str(tmp_path / "m2.pt"), "--checkpoint", "last"]) == 0
    card = json.loads((tmp_path / "m2.pt.json").read_text())
    assert (
        card["autoattack_acc"] is None and "no evaluation of this checkpoint" in card["figures_from"]["autoattack_acc"]
    )
