"""Evaluation that never flatters: Square's ℓ2 budget, the worst case, the official backend's record, and
the masking checks (shattered gradients caught, no alarm from a couple of examples)."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
import torch.nn as nn

import irat
from irat.attacks.square import l2_window_budget, square
from irat.errors import IratError
from irat.evaluate.attacks import parse_attack
from irat.evaluate.masking import SIGNIFICANCE, attack_warnings, sign_test_p


def test_square_l2_budget_is_per_example_and_channel():
    """Official AutoAttack: √(max(ε² − ‖d‖², 0)/C + ‖d·mask‖²) with the window norm taken per channel."""
    d = torch.zeros(1, 3, 4, 4)
    d[0, 0, 0, 0], d[0, 0, 0, 1] = 0.18, 0.24  # all of ‖d‖ = 0.3 sits in channel 0's window
    mask = torch.zeros_like(d)
    mask[:, :, :2, :2] = 1.0
    b = l2_window_budget(d, mask, 1.0).flatten().tolist()
    assert b == pytest.approx([math.sqrt(0.91 / 3 + 0.09), math.sqrt(0.91 / 3), math.sqrt(0.91 / 3)], rel=1e-6)


def test_square_l2_on_a_colour_model_stays_in_the_ball_and_breaks_examples():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    x = torch.rand(40, 3, 8, 8)
    y = model(x).argmax(1)
    xa = square(model, x, y, eps=1.0, norm="l2", n_queries=300, generator=torch.Generator().manual_seed(0))
    assert ((xa - x).flatten(1).norm(dim=1) <= 1.0 + 1e-5).all() and (xa >= 0).all() and (xa <= 1).all()
    assert (model(xa).argmax(1) != y).float().mean() > 0.3


def test_worst_case_counts_only_examples_every_attack_ran_on():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(100, 1, 4, 4), torch.randint(0, 3, (100,))
    rec = irat.evaluate(model, x, y, attacks=["natural", "pgd10:n=30"], eps=0.3, sanity=False)
    flags = rec["per_example"]
    want = 100.0 * float(
        (flags["natural"][:30] & flags["pgd10:n=30" if "pgd10:n=30" in flags else "pgd10"][:30]).float().mean()
    )
    assert rec["worst_case_n"] == 30 and rec["worst_case"] == pytest.approx(want, abs=1e-3)
    assert rec["worst_case"] <= rec["results"]["pgd10"]


def test_official_backend_records_what_the_official_ran(monkeypatch):
    ran = {}

    class FakeAutoAttack:  # stands in for fra31/auto-attack: records how it was built, attacks nothing
        def __init__(self, model, *, norm, eps, version, attacks_to_run, seed, verbose, device):
            ran.update(version=version, attacks=list(attacks_to_run))

        def run_standard_evaluation(self, x, y, bs):
            return x.clone()

    monkeypatch.setitem(sys.modules, "autoattack", types.SimpleNamespace(AutoAttack=FakeAutoAttack, __version__="x"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(20, 1, 4, 4), torch.randint(0, 3, (20,))
    rec = irat.evaluate(model, x, y, attacks=["aa:components=apgd-ce+fab"], eps=0.1, backend="autoattack", sanity=False)
    comps = rec["attacks"]["aa"]["components"]
    assert ran == {"version": "custom", "attacks": ["apgd-ce", "fab"]}
    assert comps["apgd-ce"]["restarts"] == 5 and comps["fab"]["restarts"] == 5  # the official custom defaults
    with pytest.raises(IratError, match="official package with its own budgets"):
        irat.evaluate(model, x, y, attacks=["aa:steps=5"], eps=0.1, backend="autoattack")


def test_sign_test_on_hand_values():
    assert sign_test_p(2, 0) == 0.25 and sign_test_p(7, 0) == pytest.approx(1 / 128)
    assert sign_test_p(3, 1) == pytest.approx(5 / 16) and sign_test_p(0, 9) == 1.0


def _flags(n: int, broken: list[int]) -> torch.Tensor:
    t = torch.ones(n, dtype=torch.bool)
    t[broken] = False
    return t


def test_black_box_alarm_needs_a_significant_count():
    n = 200
    nat = torch.ones(n, dtype=torch.bool)
    specs = [parse_attack("pgd20"), parse_attack("square")]
    cover = {s.name: torch.ones(n, dtype=torch.bool) for s in specs}
    honest = {"pgd20": _flags(n, list(range(10, 40))), "square": _flags(n, [0, 1] + list(range(10, 20)))}
    assert attack_warnings(specs, honest, cover, nat, {}) == []  # 2 only-Square against 20 only-PGD: no alarm
    masked = {"pgd20": _flags(n, [0]), "square": _flags(n, list(range(0, 12)))}
    (w,) = attack_warnings(specs, masked, cover, nat, {})
    assert w["check"] == "black-box-beats-white-box" and "sign test" in w["message"]
    assert sign_test_p(11, 0) < SIGNIFICANCE


class Shattered(nn.Module):
    """A linear classifier plus a tiny, fast-oscillating term: the logits barely change, the input
    gradient points anywhere — useless but not zero."""

    def __init__(self, base: nn.Module, features: int, classes: int):
        super().__init__()
        self.base = base
        self.register_buffer("r", torch.randn(features, classes, generator=torch.Generator().manual_seed(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + 1e-3 * torch.sin(1e5 * x.flatten(1) @ self.r)


def test_shattered_gradients_are_flagged_and_the_honest_model_is_not():
    torch.manual_seed(0)
    w = torch.randn(2, 16)
    base = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        base[1].weight.copy_(w)
        base[1].bias.zero_()
    x = torch.rand(300, 1, 4, 4)
    y = base(x).argmax(1)
    honest = irat.evaluate(base, x, y, attacks=["natural", "pgd10"], eps=0.05)
    assert not any(v["check"] == "larger-eps-near-clean" for v in honest["warnings"])
    masked = irat.evaluate(Shattered(base, 16, 2), x, y, attacks=["natural", "pgd10"], eps=0.05)
    checks = {v["check"] for v in masked["warnings"]}
    assert "larger-eps-near-clean" in checks and "zero-gradients" not in checks
    assert masked["sanity"]["accuracy"]["pgd50@2eps"] > honest["sanity"]["accuracy"]["pgd50@2eps"] + 25


def test_pgd_defaults_and_a_json_ready_record():
    import json

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5))
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 5, (8,))
    g = torch.Generator().manual_seed(0)
    default = irat.attacks.pgd(model, x, y, eps=0.1, generator=g)
    g = torch.Generator().manual_seed(0)
    explicit = irat.attacks.pgd(model, x, y, eps=0.1, alpha=0.025, steps=10, generator=g)
    assert torch.equal(default, explicit)  # α = ε/4 and 10 steps when not given
    rec = irat.evaluate(model, x, y, attacks=["natural", "pgd5", "aa:steps=2:n_queries=20"], eps=0.1)
    assert json.loads(json.dumps({k: v for k, v in rec.items() if k != "per_example"}))["results"] == rec["results"]


def test_progress_shows_each_attack_and_autoattack_components_only_when_asked(capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5))
    x = torch.rand(32, 1, 4, 4)
    y = model(x).argmax(1)
    attacks = ["natural", "pgd5", "aa:steps=2:n_queries=20"]
    irat.evaluate(model, x, y, attacks=attacks, eps=0.1, sanity=False, progress=True, batch_size=16)
    err = capsys.readouterr().err
    assert "pgd5" in err and "ex/s" in err and "aa: robust accuracy after apgd-ce" in err
    irat.evaluate(model, x, y, attacks=attacks, eps=0.1, sanity=False)
    assert capsys.readouterr().err == ""
