"""`irat eval` with suites, AutoAttack, the official backend (a stand-in module), warnings and bad input."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from irat.cli import main
from test_cli import TRAIN, digest


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "at"
    assert (
        main(
            TRAIN
            + [
                "--out",
                str(out),
                "--epochs",
                "12",
                "--set",
                "data.train_subset=1000",
                "--set",
                "optim.lr=0.05",
                "--set",
                "optim.schedule=constant",
            ]
        )
        == 0
    )
    return out


def test_eval_autoattack_and_masking_record(run_dir, tmp_path, capsys):
    js = tmp_path / "r.json"
    assert (
        main(
            [
                "eval",
                str(run_dir),
                "--attacks",
                "natural,pgd10,apgd-ce:steps=10,aa:steps=10:n_queries=50",
                "--n",
                "60",
                "--json",
                str(js),
            ]
        )
        == 0
    )
    rec = json.loads(js.read_text())
    assert list(rec["results"]) == ["natural", "pgd10", "apgd-ce", "aa"]
    assert rec["results"]["natural"] > 60 and rec["results"]["aa"] <= rec["results"]["apgd-ce"]
    assert rec["worst_case"] <= min(rec["results"].values())
    assert rec["attacks"]["aa"]["backend"] == "irat" and "after_component" in rec["attacks"]["aa"]
    assert isinstance(rec["warnings"], list) and set(rec["sanity"]["accuracy"]) == {
        "pgd10@eps",
        "pgd50@eps",
        "pgd50@2eps",
        "pgd50@large_eps",
    }
    per = np.load(next((run_dir / "eval").glob("best_test_*n60.*.npz")))
    assert per["aa"].shape == (60,) and per["aa"].mean() * 100 == pytest.approx(rec["results"]["aa"])
    out = capsys.readouterr().out
    assert "time per attack" in out and "aa" in out


def test_eval_suite(run_dir, tmp_path):
    js = tmp_path / "r.json"
    assert main(["eval", str(run_dir), "--suite", "gairat", "--n", "30", "--json", str(js), "--no-sanity"]) == 0
    rec = json.loads(js.read_text())
    assert rec["suite"] == "gairat" and list(rec["results"]) == ["natural", "pgd20", "pgdplus"]
    assert rec["attacks"]["pgdplus"]["alpha"] == 0.01 and rec["attacks"]["pgd20"]["alpha"] == pytest.approx(0.025)
    assert rec["sanity"] == {}


def test_bad_eval_input_stops_before_work(run_dir, capsys):
    before = digest(run_dir)
    for args, msg in (
        (["--suite", "iclr"], "unknown suite"),
        (["--attacks", "square:queries=3"], "no option"),
        (["--attacks", "aa", "--backend", "autoattack"], "official AutoAttack package"),
        (["--attacks", "pgd10:alpha=0"], "not a valid value"),
    ):
        assert main(["eval", str(run_dir)] + args) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1
    assert digest(run_dir) == before


def _fake_autoattack(monkeypatch, shift: float, calls: list):
    """A stand-in for the official package with its interface; returns x + shift (clamped)."""
    mod = types.ModuleType("autoattack")

    class AutoAttack:
        def __init__(
            self,
            model,
            norm="Linf",
            eps=0.3,
            seed=None,
            verbose=True,
            attacks_to_run=(),
            version="standard",
            device="cuda",
            **kw,
        ):
            calls.append({"norm": norm, "eps": eps, "version": version, "seed": seed, "attacks": list(attacks_to_run)})

        def run_standard_evaluation(self, x, y, bs=250):
            return (x + shift).clamp(0, 1)

    mod.AutoAttack = AutoAttack
    mod.__version__ = "0.1-test"
    monkeypatch.setitem(sys.modules, "autoattack", mod)


def test_official_backend_is_called_and_its_output_checked(run_dir, tmp_path, monkeypatch, capsys):
    calls: list = []
    _fake_autoattack(monkeypatch, 0.05, calls)
    js = tmp_path / "r.json"
    assert (
        main(
            [
                "eval",
                str(run_dir),
                "--attacks",
                "natural,aa-plus",
                "--backend",
                "autoattack",
                "--n",
                "20",
                "--json",
                str(js),
                "--no-sanity",
            ]
        )
        == 0
    )
    rec = json.loads(js.read_text())
    assert rec["results"]["natural"] > 60
    assert calls and calls[0]["norm"] == "Linf" and calls[0]["eps"] == 0.1 and calls[0]["version"] == "plus"
    assert (
        rec["attacks"]["aa-plus"]["backend"] == "autoattack"
        and rec["attacks"]["aa-plus"]["official_version"] == "0.1-test"
    )
    # an official result outside the ε-ball is refused like any other
    _fake_autoattack(monkeypatch, 0.5, calls)
    before = digest(run_dir)
    assert main(["eval", str(run_dir), "--attacks", "aa", "--backend", "autoattack", "--n", "20"]) == 2
    assert "left the linf ball" in capsys.readouterr().err
    assert digest(run_dir) == before


def test_python_api_returns_warnings():
    import irat

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(10, 1, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    rec = irat.evaluate(model, x, y, attacks=["natural", "apgd-ce:steps=5"], eps=0.05)
    assert "warnings" in rec and rec["results"]["natural"] == 100.0


def test_docs_attack_table_is_the_registry():
    """docs/evaluation.md's table of options and defaults is generated from the attack registry."""
    from pathlib import Path

    from irat.evaluate.attacks import attack_table
    from irat.tables import results_table

    doc = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text()
    start = doc.index("<!-- attack-table:")
    body = doc[doc.index("\n", start) + 1 : doc.index("<!-- /attack-table -->")].strip()
    assert body == results_table(attack_table(), ["names", "what", "options (defaults)"], fmt="github")


def test_autoattack_components_take_the_attack_functions_defaults():
    from irat.attacks import apgd, fab, square
    from irat.attacks.autoattack import component_settings
    from irat.attacks.checks import keyword_defaults

    std = component_settings("standard")
    assert std["apgd-ce"] == {**keyword_defaults(apgd, ("steps", "restarts", "rho", "eot_iter")), "loss": "ce"}
    assert std["square"] == keyword_defaults(square, ("n_queries", "p_init", "restarts"))
    assert std["fab-t"]["steps"] == keyword_defaults(fab, ("steps",))["steps"] and std["fab-t"]["targeted"]
    assert (
        component_settings("plus")["apgd-ce"]["restarts"] == 5
        and component_settings("rand")["apgd-t"]["eot_iter"] == 20
    )
