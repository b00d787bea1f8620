"""The public extension API: a weighting scheme and an attack, each in one file, used from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import QUICK_ARGS, kill_mid_run
from irat.checkpoints import load_checkpoint
from irat.cli import main
from irat.errors import ConfigError
from irat.testing import logits_batch

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
PLUGIN = EXAMPLES / "focal_weighting.py"  # a weighting scheme, as docs/extending.md shows it
ATTACK = EXAMPLES / "fgsm_attack.py"  # an evaluation attack
TRAIN = [
    "train",
    "--plugin",
    str(PLUGIN),
    "--weighting",
    "focal-margin",
    "--set",
    "weighting.focal-margin.gamma=3",
    "--burn-in",
    "1",
    "--dataset",
    "digits",
    "--model",
    "tinycnn",
    "--eps",
    "0.1",
    "--epochs",
    "4",
    "--batch-size",
    "64",
    "--device",
    "cpu",
    "--quiet",
    "--set",
    "attack.steps=20",
    "--set",
    "val_n=50",
    "--set",
    "data.train_subset=600",
]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_plugin_scheme_trains_resumes_after_kill_and_evaluates(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "irat"]
    subprocess.run(cmd + TRAIN + ["--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    kill_mid_run(cmd + TRAIN + ["--out", str(tmp_path / "killed")], tmp_path / "killed", env)
    # the run recorded its plug-in and options, but irat imports no code the user did not name
    resume = cmd + ["train", "--out", str(tmp_path / "killed"), "--resume", "--quiet"]
    out = subprocess.run(resume, env=env, capture_output=True, text=True)
    assert out.returncode == 2 and f"add --plugin {PLUGIN}" in out.stderr and "IRAT_TRUST_PLUGINS=1" in out.stderr
    out = subprocess.run([*resume, "--plugin", str(PLUGIN)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    full, killed = _weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "killed" / "last.pt")
    assert all(torch.equal(full[k], killed[k]) for k in full)

    cfg = yaml.safe_load((tmp_path / "killed" / "config.yaml").read_text())
    assert cfg["plugins"] == [str(PLUGIN)] and cfg["method"] == "at+focal-margin"
    assert cfg["weighting"]["focal-margin"] == {"gamma": 3}  # its options, beside the shared ones
    rows = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert "weight_mean" not in rows[0]  # burn-in: ω ≡ 1, no weights reported
    assert rows[1]["weight_min"] < rows[1]["weight_max"]  # the scheme's weights vary after it
    assert "pm_adv_mean" in rows[0]  # the scheme asked for the margin statistics

    ev = subprocess.run(
        cmd
        + [
            "eval",
            str(tmp_path / "killed"),
            "--plugin",
            str(ATTACK),
            "--plugin",
            str(PLUGIN),
            "--attacks",
            "natural,fgsm:loss=cw,pgd10",
            "--n",
            "60",
            "--device",
            "cpu",
            "--json",
            str(tmp_path / "rec.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ev.returncode == 0, ev.stderr
    res = json.loads((tmp_path / "rec.json").read_text())["results"]
    assert res["fgsm"] <= res["natural"] and res["pgd10"] <= res["natural"] and res["fgsm"] < 100
    trusted = dict(env, IRAT_TRUST_PLUGINS="1")  # the documented trust setting: recorded plug-ins are loaded
    rep = subprocess.run(cmd + ["report", str(tmp_path / "killed")], env=trusted, capture_output=True, text=True)
    assert rep.returncode == 0 and "at+focal-margin" in rep.stdout and "fgsm" in rep.stdout


def test_plugin_scheme_from_python_matches_a_hand_computed_weight(tmp_path):
    import irat

    irat.load_plugin(str(PLUGIN))
    from irat.config import Config
    from irat.parts import WEIGHTINGS

    cfg = Config()
    cfg.weighting.name = "focal-margin"
    cfg.weighting.options = {"focal-margin": {"gamma": 2}}
    w = WEIGHTINGS.get("focal-margin")(cfg)
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    got = w.raw(logits_batch(torch.tensor([0, 1]), logits))
    p0 = 1 / (1 + torch.exp(torch.tensor(-2.0)))  # softmax of [2, 0] at class 0
    assert torch.allclose(got, torch.stack([(1 - p0) ** 2, torch.tensor(0.25)]))


@pytest.mark.parametrize(
    "extra,msg",
    [
        (["--set", "weighting.focal-margin.gamma=abc"], "weighting.focal-margin.gamma: cannot read 'abc' as a number"),
        (["--set", "weighting.focal-margin.beta=1"], "weighting.focal-margin has no option 'beta'; its options: gamma"),
    ],
)
def test_bad_plugin_options_are_refused_before_work(tmp_path, capsys, extra, msg):
    out = tmp_path / "run"
    assert main(TRAIN + ["--out", str(out)] + extra) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert not out.exists()


def test_missing_or_broken_plugin_gives_one_message(tmp_path, capsys):
    assert main(["train", "--plugin", str(tmp_path / "nope.py"), "--out", str(tmp_path / "r")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    assert main(["train", "--plugin", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "failed while loading: RuntimeError: boom" in capsys.readouterr().err
    assert main(["train", "--plugin", "no_such_module_xyz", "--out", str(tmp_path / "r")]) == 2
    assert "cannot be imported" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="already registered"):
        import irat

        irat.register_weighting("gair")(type("Other", (irat.Weighting,), {}))


def test_a_shared_run_never_runs_its_recorded_plugin_unasked(tmp_path):
    """A run directory (or preset) from someone else whose recorded plug-in would write a file if imported:
    eval, load_model, resume and train --preset refuse with one message and import nothing."""
    from irat.checkpoints import load_checkpoint, save_checkpoint

    out = tmp_path / "run"
    assert main(["train", *QUICK_ARGS, "--epochs", "1", "--out", str(out)]) == 0
    evil = tmp_path / "evil.py"
    marker = tmp_path / "executed"
    evil.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    for name in ("best.pt", "last.pt", "recovery.pt"):  # the recipient's run records a plug-in and a plug-in model
        data = load_checkpoint(out / name)
        data["config"]["plugins"] = [str(evil)]
        data["meta"]["arch"] = "evil-net"
        save_checkpoint(out / name, {k: v for k, v in data.items() if k not in ("format", "version")})
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["plugins"] = [str(evil)]
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump({"method": "at", "plugins": [str(evil)]}))
    calls = [
        ["eval", str(out), "--attacks", "natural", "--device", "cpu"],
        ["train", "--out", str(out), "--resume", "--epochs", "2"],
        ["train", "--preset", str(preset), *QUICK_ARGS, "--epochs", "1", "--out", str(tmp_path / "p")],
    ]
    for argv in calls:
        res = subprocess.run([sys.executable, "-m", "irat", *argv], capture_output=True, text=True)
        assert res.returncode == 2 and "irat imports no code you did not name" in res.stderr, (argv, res.stderr)
        assert not marker.exists(), argv
    import irat

    with pytest.raises(irat.errors.IratError, match="imports no code you did not name"):
        irat.load_model(out)
    assert not marker.exists()


def test_a_dataset_is_a_one_file_plugin_and_cannot_take_a_builtin_name(tmp_path, capsys):
    plugin = tmp_path / "toy_data.py"
    plugin.write_text(
        "import numpy as np\n"
        "from irat.data import Arrays, DatasetSpec, register_dataset\n\n\n"
        "def read(_folder):\n"
        "    rng = np.random.default_rng(0)\n"
        "    y = np.arange(400) % 3\n"
        "    x = (rng.integers(0, 60, (400, 1, 6, 6)) + 60 * y[:, None, None, None]).astype(np.uint8)  # brightness\n"
        "    return Arrays('toy', x[:300], y[:300], x[300:], y[300:], 3)\n\n\n"
        "register_dataset(DatasetSpec('toy', 1, 6, 3, [], [], read, lambda f: True, default_val_size=50, needs_download=False))\n"
    )
    out = tmp_path / "r"
    argv = ["train", "--plugin", str(plugin), "--dataset", "toy", "--model", "tinycnn", "--epochs", "1"]
    assert main([*argv, "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["data"]["dataset"] == "toy" and cfg["plugins"] == [str(plugin)]
    ev = [sys.executable, "-m", "irat", "eval", str(out), "--attacks", "natural", "--device", "cpu", "--no-sanity"]
    res = subprocess.run(ev, capture_output=True, text=True)  # a fresh process: the dataset's code is not imported
    assert res.returncode == 2 and f"add --plugin {plugin}" in res.stderr
    assert subprocess.run([*ev, "--plugin", str(plugin)], capture_output=True, text=True).returncode == 0
    bad = tmp_path / "bad_data.py"
    bad.write_text(
        "from irat.data import DatasetSpec, register_dataset\n"
        "register_dataset(DatasetSpec('mnist', 1, 28, 10, [], [], None, lambda f: True))\n"
    )
    capsys.readouterr()
    assert main(["train", "--plugin", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "a dataset named 'mnist' is already registered" in capsys.readouterr().err


def test_a_part_written_for_the_old_signatures_is_named_with_its_one_change(tmp_path, capsys):
    """An earlier release's `raw(model, *, info, x, y, logits_adv, logits_nat, epoch)` gets one message before any work."""
    old = tmp_path / "old_scheme.py"
    old.write_text(
        "import irat\n\n"
        "@irat.register_weighting('old-style-scheme')\n"
        "class Old(irat.Weighting):\n"
        "    def raw(self, model, *, info, x, y, logits_adv, logits_nat, epoch):\n"
        "        return logits_adv.new_ones(len(y))\n"
    )
    out = tmp_path / "run"
    args = ["train", "--plugin", str(old), "--weighting", "old-style-scheme", "--dataset", "digits"]
    assert main([*args, "--model", "tinycnn", "--epochs", "1", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "write raw(self, batch)" in err and err.count("\n") == 1 and not out.exists()
