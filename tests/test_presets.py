"""Every shipped preset resolves to a valid config; the paper-table presets match their generator."""

from __future__ import annotations

import pytest

from irat.config import Config, apply_dict
from irat.methods import apply_method
from irat.paper_presets import PRESET_DIR, render, table_presets
from irat.presets import load_preset, preset_info, preset_names
from irat.validate import validate_config

NAMES = preset_names()


def test_generated_presets_are_committed_unchanged():
    for name, p in table_presets().items():
        path = PRESET_DIR / f"{name}.yaml"
        assert path.is_file(), f"{name}: run `python -m irat.paper_presets`"
        assert path.read_text(encoding="utf-8") == render(p), f"{name} differs from its generator"


def test_every_table_is_covered():
    names = set(table_presets())
    assert len([n for n in names if n.startswith("mail/cifar10-resnet18-pm/")]) == 9  # MAIL Table 1
    for setting in ("cifar10-resnet18", "cifar10-wrn32", "svhn-resnet18", "cifar100-resnet18"):  # MAIL Tables 2-4
        assert {
            f"mail/{setting}/{r}" for r in ("at", "trades", "mart", "fat", "gairat", "mail-at", "mail-trades")
        } <= names
    assert {"gairat/cifar10-wrn32/gair-fat", "gairat/cifar10-wrn34/gair-trades"} <= names  # GAIRAT Tables 1-2
    assert {
        "mwpb/cifar10-rn18/mwpb-trades",
        "mwpb/tiny-imagenet-rn18/mwpb-mart",
        "mwpb/cifar10-wrn34-baselines/mwpb-awp",
    } <= names  # MWPB Tables 1-5
    assert {
        "bilaw/mnist-tinycnn-linf/bilaw",
        "bilaw/fmnist-fc1-l2/mail",
        "bilaw/cifar10-wrn32-linf8/bilaw-trades",
        "bilaw/cifar100-wrn32-linf8/trades",
    } <= names  # BiLAW Tables 1-3
    # issue 7: the comparison systems' rows and every ablation
    assert {
        "mwpb/cifar10-wrn34-baselines/mma",
        "mwpb/cifar10-wrn34-baselines/st-at",
        "bilaw/mnist-tinycnn-linf/plain",
    } <= names
    count = lambda prefix: len([n for n in names if n.startswith(prefix)])
    assert count("gairat/ablation-weight-fn/") == 4 and count("gairat/ablation-lambda-cifar10/") == 6
    assert count("gairat/ablation-lambda-svhn/") == 6 and count("gairat/ablation-burn-in/") == 6
    assert count("gairat/ablation-lr-schedule/") == 8 and count("gairat/ablation-capacity/") == 5
    assert count("gairat/ablation-train-eps/") == 6 and count("mail/cifar10-resnet18-lm/") == 3
    assert count("mwpb/cifar10-wrn34-alpha/") == 9  # MWPB Table 8
    assert count("bilaw/cifar10-wrn32-capacity/") == 4 and count("bilaw/cifar10-wrn32-trades-beta/") == 4
    assert count("bilaw/cifar10-wrn32-input/") == 4  # BiLAW Tables 6-8


@pytest.mark.parametrize("name", NAMES)
def test_preset_resolves(name, tmp_path):
    data = load_preset(name)
    cfg = Config()
    apply_method(cfg, data.pop("method", "at"))
    apply_dict(cfg, data)
    if cfg.method in ("rst", "gair-rst"):  # the user brings the unlabeled data and the teacher
        cfg.unlabeled.withhold, cfg.unlabeled.teacher = 100, str(tmp_path)
    validate_config(cfg)
    info = preset_info(name)
    assert info["source"] and info["method"]


def test_table_values_follow_the_papers():
    p = table_presets()
    assert p["mail/cifar10-resnet18/mail-trades"]["optim"]["weight_decay"] == 3.5e-3
    assert p["gairat/cifar10-wrn32/gair-fat"]["weighting"] == {"burn_in": 60, "gair": {"lam": 0.0}}
    assert p["gairat/cifar10-wrn32/at"]["optim"]["milestone_lrs"] == [0.01, 0.001, 0.0005]
    assert p["mwpb/svhn-rn18/mwpb-trades"]["radius"]["mwpb"]["alpha"] == 0.15
    assert p["bilaw/cifar100-wrn32-linf8/trades"]["objective"]["beta"] == 1.0
    assert p["bilaw/mnist-tinycnn-l2/at"]["attack"] == {"norm": "l2", "eps": 0.3, "alpha": 0.075, "steps": 10}
    assert p["bilaw/cifar10-wrn32-capacity/h64-64"]["weighting"]["bilaw"]["hidden"] == [64, 64]
    assert p["bilaw/cifar10-wrn32-input/loss-diff"]["weighting"]["bilaw"]["input"] == "loss-diff"
    assert p["mwpb/cifar10-wrn34-alpha/alpha-0.85"]["radius"]["mwpb"]["alpha"] == 0.85
    assert p["gairat/ablation-weight-fn/sigmoid"]["weighting"]["gair"]["fn"] == "sigmoid"
    assert p["gairat/ablation-lambda-svhn/lambda-2"]["optim"]["lr"] == 0.01
    assert p["gairat/ablation-lr-schedule/gairat-cosine"]["weighting"]["burn_in"] == 100
    assert p["gairat/ablation-train-eps/at-eps16"]["attack"]["eps"] == "16/255"
    assert p["mail/cifar10-resnet18-lm/trades-logit-adv"]["weighting"]["mail"]["margin"] == "logit-adv"


def test_every_main_table_row_carries_the_papers_numbers():
    from irat.presets import paper_numbers

    tables = (
        "mail/cifar10-resnet18/",
        "mail/cifar10-wrn32/",
        "mail/cifar10-resnet18-pm/",
        "mail/svhn-resnet18/",
        "mail/cifar100-resnet18/",
        "gairat/cifar10-wrn32/",
        "gairat/cifar10-wrn34/",
        "mwpb/cifar10-rn18/",
        "mwpb/cifar10-wrn34/",
        "mwpb/svhn-rn18/",
        "mwpb/tiny-imagenet-rn18/",
        "mwpb/cifar10-wrn34-baselines/",
        "mwpb/cifar10-wrn34-alpha/",
        "bilaw/mnist-",
        "bilaw/fmnist-",
        "bilaw/cifar10-smallcnn-",
        "bilaw/cifar10-wrn32-",
        "bilaw/cifar100-",
    )
    rows = [n for n in NAMES if n.startswith(tables)]
    assert len(rows) > 150
    missing = [n for n in rows if not paper_numbers(n)]
    assert missing == []
    assert paper_numbers("bilaw/cifar10-wrn32-linf8/bilaw-trades")["results"]["any"]["aa"]["mean"] == 53.6
    assert paper_numbers("mail/svhn-resnet18/gairat")["results"]["any"]["aa"] == {"mean": 37.0, "std": 0.3}
