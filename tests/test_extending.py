"""docs/extending.md's four examples: shown as they are, and each works through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import QUICK_ARGS
from irat.cli import main
from irat.config import Config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
QUICK = [*QUICK_ARGS, "--epochs", "2"]


@pytest.mark.parametrize("name", ["focal_weighting.py", "mixed_objective.py", "ramp_radius.py", "fgsm_attack.py"])
def test_docs_show_each_example_as_it_is(name):
    assert (EXAMPLES / name).read_text().rstrip() in (ROOT / "docs" / "extending.md").read_text()


@pytest.mark.parametrize(
    "plugin,flags,column",
    [
        (
            "focal_weighting.py",
            ["--weighting", "focal-margin", "--set", "weighting.focal-margin.gamma=3", "--burn-in", "1"],
            "weight_mean",
        ),
        ("mixed_objective.py", ["--objective", "mixed-at", "--set", "objective.mixed-at.c=0.7"], "train_nat_acc"),
        ("ramp_radius.py", ["--radius", "eps-ramp", "--set", "radius.eps-ramp.ramp_epochs=2"], "train_adv_acc"),
    ],
)
def test_example_part_trains_from_the_command_line(tmp_path, plugin, flags, column):
    out = tmp_path / "run"
    assert main(["train", "--plugin", str(EXAMPLES / plugin), *flags, *QUICK, "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and column in rows[-1]


def test_example_attack_evaluates_and_is_weaker_than_pgd(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *QUICK, "--out", str(run)]) == 0
    rec = tmp_path / "rec.json"
    assert (
        main(
            [
                "eval",
                str(run),
                "--plugin",
                str(EXAMPLES / "fgsm_attack.py"),
                "--attacks",
                "natural,fgsm,pgd20",
                "--n",
                "100",
                "--device",
                "cpu",
                "--json",
                str(rec),
                "--no-sanity",
            ]
        )
        == 0
    )
    res = json.loads(rec.read_text())["results"]
    assert res["pgd20"] <= res["fgsm"] <= res["natural"]  # one step finds no more than twenty


def test_example_radius_ramps_on_hand_values():
    import irat

    irat.load_plugin(str(EXAMPLES / "ramp_radius.py"))
    from irat.parts import RADII

    cfg = Config()
    cfg.radius.name = "eps-ramp"
    cfg.radius.options = {"eps-ramp": {"start": 0.5, "ramp_epochs": 4}}
    r = RADII.get("eps-ramp")(cfg)
    x, y = torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long)
    assert r(None, x, y, 1, 0.2, 0.05) == pytest.approx((0.1, 0.025))
    assert r(None, x, y, 3, 0.2, 0.05) == pytest.approx((0.2 * 0.75, 0.05 * 0.75))
    assert r(None, x, y, 9, 0.2, 0.05) == pytest.approx((0.2, 0.05))


def test_example_weighting_refuses_a_negative_gamma(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--plugin",
                str(EXAMPLES / "focal_weighting.py"),
                "--weighting",
                "focal-margin",
                "--set",
                "weighting.focal-margin.gamma=-1",
                *QUICK,
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "gamma must be >= 0" in capsys.readouterr().err and not out.exists()


def test_the_documented_contract_checks_pass_on_the_documented_examples():
    """docs/extending.md's `irat.testing` example, as a plug-in author runs it."""
    import irat
    from irat.testing import check_attack, check_part

    irat.load_plugin(str(EXAMPLES / "focal_weighting.py"))
    assert check_part("weighting", "focal-margin", options={"gamma": 3})["weighted_steps"] > 0
    irat.load_plugin(str(EXAMPLES / "fgsm_attack.py"))
    res = check_attack("fgsm")
    assert res["optimal"] <= res["robust"] <= 100.0
