"""Every part's options in one dialect: built-in parts own `Options` as plug-ins do; the old flat keys keep
working through one rename table; field metadata (Literal choices, epochs, resumable) drives the tools."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from irat import config
from irat.cli import main
from irat.config import (
    EPOCHS,
    RENAMED,
    RESUMABLE,
    Config,
    from_dict,
    get_key,
    resumable,
    set_key,
)
from irat.errors import ConfigError, IratError
from irat.methods import METHODS, apply_method
from irat.parts import SECTIONS, check_parts
from irat.plugins import load_plugin
from irat.sweep import shorten
from irat.train.opening import apply_resume_changes

ROOT = Path(__file__).resolve().parents[1]
LEGACY = ROOT / "tests" / "fixtures" / "legacy_v0_1"


def _method(name: str) -> Config:
    cfg = Config()
    apply_method(cfg, name)
    return cfg


def test_every_old_flat_key_names_an_option_of_a_built_in_part():
    for old, new in RENAMED.items():
        section, part, key = new.split(".")
        cls = SECTIONS[section].get(part)
        assert key in {f.name for f in dataclasses.fields(cls.Options)}, (old, new)


@pytest.mark.parametrize("old,new,value", [(o, n, v) for (o, n), v in zip(
    [("weighting.gair_lambda", "weighting.gair.lam"), ("weighting.mail_gamma", "weighting.mail.gamma"),
     ("radius.alpha", "radius.mwpb.alpha"), ("objective.fat_tau", "objective.fat.tau"),
     ("objective.mma_dmax", "objective.mma.dmax"), ("weighting.bilaw_hidden", "weighting.bilaw.hidden")],
    [0.5, 7.0, 0.3, [[0, 0], [5, 2]], 0.05, [16, 16]])])  # fmt: skip
def test_an_old_key_sets_its_new_one(old, new, value):
    a, b = Config(), Config()
    set_key(a, old, value)
    set_key(b, new, value)
    assert a.to_dict() == b.to_dict() and get_key(a, new) == value


def test_old_key_on_the_command_line_says_its_new_name_once(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--method", "gairat", "--dataset", "digits", "--model", "tinycnn", "--epochs", "1"]
    args += ["--set", "data.train_subset=64", "--set", "val_n=32", "--set", "val_steps=1", "--quiet"]
    assert main([*args, "--set", "weighting.gair_lambda=0.5", "--set", "weighting.burn_in=0", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("weighting.gair_lambda is now weighting.gair.lam") == 1
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["weighting"]["gair"]["lam"] == 0.5 and "gair_lambda" not in saved["weighting"]
    assert from_dict(saved).to_dict() == saved  # the resolved config reads back as itself


@pytest.mark.parametrize("run", ["bilaw", "mma"])
def test_an_old_config_file_reads_into_the_parts_options(run):
    old = yaml.safe_load((LEGACY / run / "config.yaml").read_text())
    cfg = from_dict(old)
    flat = config.flatten(old)
    for key, new in RENAMED.items():  # every flat value of the chosen parts lands in their options
        section, part = new.split(".")[:2]
        if key in flat and getattr(cfg, section).name in (part, "bilaw-np" if part == "bilaw" else part):
            assert get_key(cfg, new) == flat[key], key
    check_parts(cfg)  # and the options of the parts not chosen are still valid ones


def test_resolved_config_round_trips_for_every_method():
    for name in METHODS.names():
        cfg = _method(name)
        d = cfg.to_dict()
        assert from_dict(d).to_dict() == d, name
        assert "options" not in d["weighting"]  # the options sit under the part's name


def test_literal_options_accept_only_their_values():
    cfg = _method("gairat")
    with pytest.raises(ConfigError, match=r"weighting\.gair\.fn must be one of tanh, sigmoid, linear, tanh-rst"):
        set_key(cfg, "weighting.gair.fn", "cosh")
    with pytest.raises(ConfigError, match="weighting.normalization must be one of mean-one"):
        set_key(cfg, "weighting.normalization", "max-one")
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, fp64"):
        set_key(cfg, "precision", "fp16")
    set_key(cfg, "weighting.gair.fn", "sigmoid")
    assert get_key(cfg, "weighting.gair.fn") == "sigmoid"


def test_a_variants_options_live_under_its_family():
    cfg = _method("fat-trades")
    set_key(cfg, "objective.fat.tau", [[0, 1]])
    check_parts(cfg)
    set_key(cfg, "objective.fat-trades.noise", 0.1)
    with pytest.raises(ConfigError, match=r"reads its options as objective\.fat\.KEY"):
        check_parts(cfg)


def test_shorten_scales_every_epoch_option_plug_ins_included():
    load_plugin(str(ROOT / "docs" / "examples" / "ramp_radius.py"))
    cfg = _method("gairat")
    cfg.epochs, cfg.weighting.burn_in = 100, 30
    set_key(cfg, "weighting.gair.lam_table", [[0, 1.0], [60, 0.0]])
    cfg.radius.name = "eps-ramp"
    set_key(cfg, "radius.eps-ramp.ramp_epochs", 40)
    set_key(cfg, "radius.eps-ramp.start", 0.5)
    shorten(cfg, 10)
    assert cfg.weighting.burn_in == 3 and get_key(cfg, "weighting.gair.lam_table") == [[0, 1.0], [6, 0.0]]
    assert get_key(cfg, "radius.eps-ramp.ramp_epochs") == 4  # the plug-in's field says it counts epochs
    assert get_key(cfg, "radius.eps-ramp.start") == 0.5  # ... and this one does not
    mwpb = _method("mwpb-at")
    mwpb.epochs = 110
    shorten(mwpb, 11)
    assert get_key(mwpb, "radius.mwpb.phase1_epochs") == 8


def test_resume_may_change_what_the_fields_say(monkeypatch):
    @dataclass
    class Opts:
        window: int = field(default=3, metadata=RESUMABLE)
        width: int = field(default=2, metadata=EPOCHS)

    real = config._part_lookup[0]
    monkeypatch.setattr(
        config, "_part_lookup", [lambda s, n: ("probe", Opts) if (s, n) == ("weighting", "probe") else real(s, n)]
    )
    cfg = Config()
    cfg.weighting.name = "probe"
    assert resumable(cfg, "weighting.probe.window") and not resumable(cfg, "weighting.probe.width")
    assert resumable(cfg, "optim.lr") and resumable(cfg, "epochs") and not resumable(cfg, "weighting.burn_in")
    assert config.epoch_settings(cfg)["weighting.probe.width"] == "count"
    gair = _method("gairat")
    assert apply_resume_changes(gair, [("optim.lr", 0.05)]) == {"optim.lr": [0.1, 0.05]}
    with pytest.raises(IratError, match=r"cannot change: weighting\.gair\.lam .*A resume may change: .*optim\.\*"):
        apply_resume_changes(gair, [("weighting.gair_lambda", 0.0)])  # through the old key too


def test_a_sweep_recognises_a_run_written_with_the_old_keys():
    """A sweep compares a run directory's config.yaml with its cell as this release reads both: a run written
    with the flat keys is the same run; a changed option is named by its new key."""
    from irat.sweep import _differences

    old = yaml.safe_load((LEGACY / "mma" / "config.yaml").read_text())
    assert "mma_min_eps" in old["objective"]
    same = from_dict(old)
    assert _differences(old, same.to_dict()) == []
    set_key(same, "objective.mma.min_eps", 0.01)
    assert _differences(old, same.to_dict()) == ["objective.mma.min_eps"]
