"""Objectives (docs/methods.md §2) against hand-computed values on fixed logits.

nat = [2, 0, −1], adv = [0.5, 1, −1], y = 0:
p(x) = [0.843795, 0.114195, 0.042010], p(x') = [0.348207, 0.574097, 0.077696]
CE(x') = −log 0.348207 = 1.054957;  CE(x) = −log 0.843795 = 0.169846
KL(p(x)‖p(x')) = Σ p log(p/p') = 0.536608
MART margin part = −log(1.0001 − 0.574097 + 1e−12) = 0.853309
TRADES (β=6) = 0.169846 + 6·0.536608 = 3.389493
MART (β=6) = 1.054957 + 0.853309 + 6·0.536608·(1.0000001 − 0.843795) = 2.411192
"""

from __future__ import annotations

import pytest
import torch

from irat.errors import ConfigError
from irat.parts import make_objective
from irat.parts.objectives import mart_bce
from irat.testing import logits_batch

NAT = torch.tensor([[2.0, 0.0, -1.0]])
ADV = torch.tensor([[0.5, 1.0, -1.0]])
Y = torch.tensor([0])


def test_at():
    obj = make_objective("at")
    t = obj.terms(logits_batch(Y, ADV))
    assert t["adv_ce"].item() == pytest.approx(1.054957, abs=1e-6)
    assert obj.combine(t).item() == pytest.approx(1.054957, abs=1e-6)
    assert (obj.attack_loss, obj.attack_start, obj.needs_natural) == ("ce", "uniform", False)


def test_trades():
    obj = make_objective("trades", beta=6.0)
    t = obj.terms(logits_batch(Y, ADV, NAT))
    assert t["nat_ce"].item() == pytest.approx(0.169846, abs=1e-6)
    assert t["kl"].item() == pytest.approx(6 * 0.536608, abs=1e-5)
    assert obj.combine(t).item() == pytest.approx(3.389493, abs=1e-5)
    assert (obj.attack_loss, obj.attack_start) == ("kl", "normal")
    from irat.parts import WEIGHTINGS

    assert obj.weight_targets(WEIGHTINGS.get("mail")) == ["kl"]  # the term a weight falls on by default
    assert obj.weight_targets(WEIGHTINGS.get("gair")) == ["nat_ce"]  # GAIRAT's rule (Alg. 5)


def test_mart():
    obj = make_objective("mart", beta=6.0)
    t = obj.terms(logits_batch(Y, ADV, NAT))
    assert t["bce_margin"].item() == pytest.approx(0.853309, abs=1e-6)
    assert obj.combine(t).item() == pytest.approx(2.411192, abs=1e-5)
    assert obj.attack_loss == "ce"


def test_mart_guarded_logs_never_nan():
    logits = torch.tensor([[-100.0, 100.0, 0.0], [100.0, -100.0, -100.0]], requires_grad=True)
    ce, margin = mart_bce(logits, torch.tensor([0, 0]))
    total = (ce + margin).sum()
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(logits.grad).all()


def test_weights_apply_to_named_term_only():
    obj = make_objective("trades", beta=6.0)
    nat = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    adv = torch.tensor([[0.5, 1.0, -1.0], [0.0, 2.0, 0.0]])
    y = torch.tensor([0, 1])
    t = obj.terms(logits_batch(y, adv, nat))
    w = torch.tensor([2.0, 0.0])
    got = obj.combine(t, {"kl": w})
    assert got.item() == pytest.approx((t["nat_ce"].mean() + (t["kl"] * w).mean()).item(), abs=1e-6)


def test_fat_variants_and_unknown():
    from irat.parts.base import Step

    step = Step(net=None, model=None, x=NAT, y=Y, idx=Y, epoch=1, eps=0.1, alpha=0.025, lr=0.1, global_n=len(Y))
    assert make_objective("fat").attack_kwargs(step)["tau"] == 0 and make_objective("fat-trades").attack_loss == "kl"
    assert "tau" not in make_objective("at").attack_kwargs(step)  # early stopping is FAT's alone
    assert set(make_objective("fat-mart").terms(logits_batch(Y, ADV, NAT))) == {"adv_ce", "bce_margin", "kl"}
    with pytest.raises(ConfigError, match="unknown objective"):
        make_objective("madry")
