"""Any model in, any model out: weights irat did not train, normalised models, export and load back."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

import irat
from conftest import QUICK_ARGS
from irat.cli import main
from irat.models import create_model

QUICK = [*QUICK_ARGS, "--epochs", "1"]
EVAL = ["--attacks", "natural,pgd5", "--n", "40", "--device", "cpu", "--no-sanity"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("outside") / "run"
    assert main(["train", *QUICK, "--out", str(out)]) == 0
    return out


def test_a_foreign_state_dict_is_evaluated_like_the_run(run, tmp_path):
    state = torch.load(run / "best.pt", weights_only=True)["model"]
    foreign = tmp_path / "weights.pth"  # as DataParallel code saves it
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 7}, foreign)
    assert main(["eval", str(run), *EVAL, "--json", str(tmp_path / "a.json")]) == 0
    assert (
        main(
            [
                "eval",
                str(foreign),
                "--model",
                "tinycnn",
                "--dataset",
                "digits",
                "--eps",
                "0.1",
                *EVAL,
                "--json",
                str(tmp_path / "b.json"),
            ]
        )
        == 0
    )
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["results"] == b["results"] and b["checkpoint"] == "external"
    assert list((tmp_path / "weights.pth.irat" / "eval").glob("*.json"))


def test_foreign_files_get_one_clear_message(run, tmp_path, capsys):
    torch.save({"not": "weights"}, tmp_path / "x.pt")
    assert main(["eval", str(tmp_path / "x.pt"), *EVAL]) == 2
    assert "--model ARCH --dataset NAME" in capsys.readouterr().err
    assert (
        main(["eval", str(tmp_path / "x.pt"), "--model", "tinycnn", "--dataset", "digits", "--eps", "0.1", *EVAL]) == 2
    )
    assert "holds no state dict" in capsys.readouterr().err
    torch.save(create_model("fc1", in_channels=1, num_classes=10, input_size=8).state_dict(), tmp_path / "fc.pt")
    assert (
        main(["eval", str(tmp_path / "fc.pt"), "--model", "tinycnn", "--dataset", "digits", "--eps", "0.1", *EVAL]) == 2
    )
    assert "weights do not fit a tinycnn model" in capsys.readouterr().err


def test_a_normalised_model_is_attacked_in_pixel_space(run):
    base = irat.load_model(run)
    mean, std = [0.3], [0.2]

    class ExpectsNormalised(nn.Module):  # weights trained on (x − mean)/std: the same function of x
        def __init__(self):
            super().__init__()
            self.base = base

        def forward(self, z):
            return self.base(z * std[0] + mean[0])

    x, y = torch.rand(30, 1, 8, 8), torch.randint(0, 10, (30,))
    y = base(x).argmax(1)
    plain = irat.evaluate(base, x, y, attacks=["natural", "pgd5"], eps=0.1, sanity=False)
    wrapped = irat.evaluate(
        ExpectsNormalised(), x, y, attacks=["natural", "pgd5"], eps=0.1, sanity=False, normalize=(mean, std)
    )
    assert wrapped["results"] == plain["results"]


@pytest.mark.parametrize("fmt", ["state-dict", "torchscript", "safetensors"])
def test_export_loads_back_in_plain_pytorch(run, tmp_path, fmt):
    assert main(["eval", str(run), *EVAL]) == 0
    out = tmp_path / f"model.{fmt}"
    assert main(["export", str(run), "--out", str(out), "--format", fmt]) == 0
    card = json.loads((tmp_path / f"model.{fmt}.json").read_text())
    assert card["architecture"] == "tinycnn" and card["dataset"] == "digits" and card["threat_model"] == "Linf"
    assert card["evaluations"] and card["evaluations"][0]["checkpoint_md5"] == card["checkpoint_md5"]
    assert card["clean_acc"] == card["evaluations"][0]["results"]["natural"]
    model = irat.load_model(run)
    x = torch.rand(4, 1, 8, 8)
    if fmt == "torchscript":
        loaded = torch.jit.load(str(out))
    else:
        if fmt == "safetensors":
            from safetensors.torch import load_file

            state = load_file(str(out))
        else:
            state = torch.load(out, weights_only=True)
        loaded = create_model("tinycnn", in_channels=1, num_classes=10, input_size=8)
        loaded.load_state_dict(state)
        loaded.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_your_own_network_and_your_own_tensors(tmp_path):
    plugin = tmp_path / "mynet.py"
    plugin.write_text(
        "import torch.nn as nn\n"
        "from irat.models import register\n\n\n"
        "@register('two-layer', doc='a user network: flatten, 32 hidden units, logits')\n"
        "def two_layer(in_channels, num_classes, input_size):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size ** 2, 32), nn.ReLU(),\n"
        "                         nn.Linear(32, num_classes))\n"
    )
    g = torch.Generator().manual_seed(0)
    centers = torch.rand(3, 1, 6, 6, generator=g)
    y = torch.arange(300) % 3
    x = (centers[y] + 0.05 * torch.randn(300, 1, 6, 6, generator=g)).clamp(0, 1)
    t = irat.fit(
        tmp_path / "run",
        plugins=(str(plugin),),
        data=(x[:240], y[:240], x[240:], y[240:]),
        model="two-layer",
        eps=0.05,
        epochs=3,
        batch_size=32,
        device="cpu",
        progress=False,
        lr=0.05,
        **{"attack.steps": 3, "data.val_size": 40},
    )
    assert t.cfg.data.dataset == "npz" and t.history[-1]["val_nat"] > 60
    import subprocess
    import sys

    argv = [sys.executable, "-m", "irat", "eval", str(tmp_path / "run"), "--attacks", "natural,pgd5", "--device"]
    argv += ["cpu", "--no-sanity", "--json", str(tmp_path / "r.json")]
    ev = subprocess.run(argv, capture_output=True, text=True)  # a fresh process: no code imported unless named
    assert ev.returncode == 2 and f"add --plugin {plugin}" in ev.stderr
    ev = subprocess.run([*argv, "--plugin", str(plugin)], capture_output=True, text=True)  # named: it runs
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "r.json").read_text())["results"]["natural"] > 60


def test_methods_filters(capsys):
    assert main(["methods", "--paper", "mail", "--table", "2"]) == 0
    out = capsys.readouterr().out
    assert "mail/cifar10-resnet18/mail-trades" in out and "bilaw/" not in out and "Methods (" not in out
    assert "mail/cifar10-wrn32/" not in out  # MAIL Table 3
    assert main(["methods", "gair*"]) == 0
    out = capsys.readouterr().out
    assert "gair-fat" in out and "mail-at " not in out and "Models (" not in out


def test_a_missing_optional_package_names_its_extra(monkeypatch, tmp_path):
    import sys

    from irat.analysis.analyze import analyze_run
    from irat.data import readers
    from irat.errors import IratError

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(IratError, match=r"pip install 'irat\[plots\]'"):
        analyze_run(tmp_path, tmp_path / "fig")
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(IratError, match=r"pip install 'irat\[svhn\]'"):
        readers.read_svhn_mat(tmp_path / "train_32x32.mat")
