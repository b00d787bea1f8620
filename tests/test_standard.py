"""`standard` (plain training): the loss on hand values, no attack during training, and its documented
effect — high natural accuracy with little robustness, unlike AT."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import quick_config
from irat.cli import main
from irat.evaluate import evaluate
from irat.parts import make_objective
from irat.testing import logits_batch
from irat.train import Trainer


def test_standard_loss_is_natural_ce():
    obj = make_objective("standard")
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    terms = obj.terms(logits_batch(y, z))
    # CE = log(1 + e^{-2}) and log(1 + e^{1})
    assert terms["nat_ce"].tolist() == pytest.approx([0.126928, 1.313262], abs=1e-5)
    assert obj.combine(terms).item() == pytest.approx((0.126928 + 1.313262) / 2, abs=1e-5)


def test_standard_runs_no_attack(tmp_path, monkeypatch):
    import irat.parts.objectives as objectives

    monkeypatch.setattr(objectives, "pgd", lambda *a, **k: (_ for _ in ()).throw(AssertionError("attacked")))
    t = Trainer(quick_config(method="standard", epochs=1, val_n=0), tmp_path / "s")
    x, y = t.splits.train.get(slice(0, 32))
    stats = t.train_step(x, y, torch.arange(32), 1)
    assert stats["loss"].item() / 32 == pytest.approx(F.cross_entropy(t.model(x), y).item(), rel=0.5)


def test_standard_is_accurate_but_not_robust(tmp_path):
    over = dict(epochs=10, data={"train_subset": 1200}, optim={"lr": 0.05, "schedule": "constant"})
    runs = {m: Trainer(quick_config(method=m, **over), tmp_path / m) for m in ("standard", "at")}
    for t in runs.values():
        t.fit()
    x, y = runs["at"].splits.test.all()
    rec = {
        m: evaluate(t.model, x, y, attacks=["natural", "pgd20"], eps=0.1, sanity=False)["results"]
        for m, t in runs.items()
    }
    assert rec["standard"]["natural"] > 85
    assert rec["standard"]["pgd20"] < rec["at"]["pgd20"] - 20  # plain training is not robust


def test_standard_refuses_weighting(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--method",
                "standard",
                "--dataset",
                "digits",
                "--weighting",
                "gair",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "runs no attack" in capsys.readouterr().err and not (tmp_path / "r").exists()
