"""irat bench (tiny CPU run) and the fast-path training flags (bf16 autocast, channels_last, compile)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import quick_config
from irat.bench import reference_step, step_flops, synthetic_splits
from irat.cli import main
from irat.models import create_model
from irat.train import Trainer


def test_bench_cli_writes_figures(tmp_path, capsys):
    js = tmp_path / "b.json"
    assert (
        main(
            [
                "bench",
                "--model",
                "tinycnn",
                "--channels",
                "1",
                "--input-size",
                "8",
                "--batch-size",
                "16",
                "--iters",
                "2",
                "--repeats",
                "1",
                "--steps",
                "2",
                "--eval-n",
                "8",
                "--eval-attacks",
                "pgd5",
                "--json",
                str(js),
            ]
        )
        == 0
    )
    res = json.loads(js.read_text())
    assert [r["method"] for r in res["training"]] == ["at", "trades"]
    for r in res["training"]:
        assert r["irat_examples_per_s"] > 0 and r["reference_examples_per_s"] > 0
        assert r["speedup"] == pytest.approx(r["irat_examples_per_s"] / r["reference_examples_per_s"], rel=0.01)
        assert 0 < r["fraction_of_floor"] < 1
    assert res["evaluation"][0]["attack"] == "pgd5"
    assert "speedup" in capsys.readouterr().out


def test_bench_bad_input(capsys):
    assert main(["bench", "--model", "nope", "--eval-n", "0", "--iters", "1"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["bench", "--iters", "0"]) == 2
    assert "--iters" in capsys.readouterr().err


def test_reference_step_trains_and_flops_count():
    dev = torch.device("cpu")
    s = synthetic_splits(32, 1, 8, 10, dev)
    model = create_model("tinycnn", in_channels=1, num_classes=10, input_size=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = s.train.all()
    before = [p.detach().clone() for p in model.parameters()]
    loss = reference_step(model, opt, x.cpu(), y.cpu(), dev, eps=0.1, alpha=0.025, steps=2, trades=False, beta=6)
    assert loss > 0 and any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    f0 = step_flops(model, x, y, 0, False)
    assert step_flops(model, x, y, 10, False) > 5 * f0 and step_flops(model, x, y, 0, True) > f0


@pytest.mark.parametrize("flags", [{"precision": "bf16"}, {"channels_last": True}, {"compile": True}])
def test_fast_path_flags_train(tmp_path, flags):
    t = Trainer(quick_config(epochs=1, **flags), tmp_path / "r")
    row = t.fit()
    assert row["epoch"] == 1 and 0 <= row["val_nat"] <= 100
    if flags.get("channels_last"):
        conv = next(m for m in t.model.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_bf16_close_to_fp32_on_digits(tmp_path):
    rows = {
        p: Trainer(quick_config(epochs=3, precision=p, val_n=200, data={"train_subset": 1000}), tmp_path / p).fit()
        for p in ("fp32", "bf16")
    }
    assert abs(rows["bf16"]["val_nat"] - rows["fp32"]["val_nat"]) <= 10


def test_bad_precision_is_refused(tmp_path, capsys):
    assert main(["train", "--dataset", "digits", "--out", str(tmp_path / "r"), "--set", "precision=fp8"]) == 2
    assert "precision" in capsys.readouterr().err and not (tmp_path / "r").exists()
