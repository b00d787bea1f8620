"""Released-code forms and paper-only methods pinned on values written down independently of irat."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from irat.config import Config, OptimConfig, get_key, set_key
from irat.methods import METHODS, apply_method
from irat.paper_presets import table_presets
from irat.parts import RADII, RunContext, make_objective
from irat.parts.base import Step
from irat.parts.weighting import gair_weight
from irat.schedules import learning_rate
from irat.testing import logits_batch


def _cfg(method: str) -> Config:
    cfg = Config()
    apply_method(cfg, method)
    return cfg


def test_gair_rst_cw_attack_starts_like_the_kl_attack():
    """Released GAIR-RST: the CW example starts at x + 0.001·N(0,I) (pgd_generate, category "trades")."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(64, 1, 4, 4) * 0.5 + 0.25, torch.randint(0, 3, (64,))
    cfg = _cfg("gair-trades-rst")
    cfg.attack.steps, cfg.attack.eps = 0, 0.3  # no step: the CW example is its start
    obj = make_objective("trades-mix", cfg=cfg)
    crafted = Step(
        net=net, model=net, x=x, y=y, idx=torch.arange(64), epoch=1, eps=0.3, alpha=0.075, lr=0.1, global_n=64
    )
    obj.craft(crafted)
    assert get_key(cfg, "objective.trades-mix.cw_start") == "normal"
    delta = (crafted.x_adv2 - x).abs()
    assert 0 < delta.max() < 0.006 and delta.std() == pytest.approx(0.001 * math.sqrt(1 - 2 / math.pi), rel=0.1)
    set_key(cfg, "objective.trades-mix.cw_start", "uniform")  # the previous form, still available
    obj = make_objective("trades-mix", cfg=cfg)
    crafted = Step(
        net=net, model=net, x=x, y=y, idx=torch.arange(64), epoch=1, eps=0.3, alpha=0.075, lr=0.1, global_n=64
    )
    obj.craft(crafted)
    assert (crafted.x_adv2 - x).abs().max() > 0.25


def test_released_gair_rst_weight_equals_eq6_only_for_ten_steps():
    k = torch.tensor([5.0, 3.0, 12.0])
    assert gair_weight(k[:1], 20, 3.0, "tanh-rst").item() == pytest.approx(0.9999998874648379, abs=1e-7)
    assert gair_weight(k[1:2], 10, -1.0, "tanh-rst").item() == pytest.approx(0.8807970779778824, abs=1e-6)
    assert gair_weight(k[1:2], 10, -1.0, "tanh").item() == pytest.approx(0.8807970779778824, abs=1e-6)
    assert gair_weight(k[2:], 20, -1.0, "tanh-rst").item() == pytest.approx(0.002472623156634768, abs=1e-7)
    assert gair_weight(k[2:], 20, -1.0, "tanh").item() == pytest.approx(0.01798620996209155, abs=1e-6)


def _preset_cfg(name: str) -> Config:
    from irat.presets import preset_config

    return preset_config(name)


def _first_weighted_epoch(cfg: Config) -> int:
    """The first (1-based) epoch in which the run's weighting part says its weights apply."""
    from irat.parts import WEIGHTINGS

    part = WEIGHTINGS.get(cfg.weighting.name)(cfg)
    return next(e for e in range(1, 1000) if part.active(e))


def test_released_gair_rst_preset_weights_from_epoch_100_on_rst_optimisation():
    """run_training.sh: lam(epoch) gives Λ once epoch >= 0.5 * epochs, epochs counted from 1 → epoch 100;
    GAIRAT App. C.10: GAIR-RST uses RST's training settings (cosine lr, batch 256, wd 5e-4, Nesterov)."""
    cfg = _preset_cfg("gairat/cifar10-rst-released/gair-rst")
    released_first = next(e for e in range(1, 201) if e >= 0.5 * 200)
    assert _first_weighted_epoch(cfg) == released_first == 100
    assert get_key(cfg, "weighting.gair.lam") == 3.0 and get_key(cfg, "weighting.gair.fn") == "tanh-rst"
    assert cfg.epochs == 200
    o = cfg.optim
    assert (o.schedule, o.lr, o.weight_decay, o.nesterov, cfg.batch_size) == ("cosine", 0.1, 5e-4, True, 256)
    assert cfg.unlabeled.epoch == "rst" and cfg.unlabeled.fraction == 0.5
    old = _preset_cfg("gairat/cifar10-rst-released/gair-rst-gairat-optim")  # the previous form, named for what it is
    assert _first_weighted_epoch(old) == 100 and old.optim.milestones == [100, 150] and old.batch_size == 128


def test_rst_epoch_is_ceil_50000_over_256_mixed_batches():
    from irat.data.device_data import DeviceData
    from irat.data.unlabeled import mixed_batches, n_mixed_batches

    assert n_mixed_batches(50000, 256, 0.5, "rst") == 196  # RST's sampler: 10.0 M examples over 200 epochs
    assert n_mixed_batches(50000, 256, 0.5) == 391  # one pass over the labeled set, 128 labeled a batch
    lab = DeviceData(torch.zeros(100, 1, 2, 2, dtype=torch.uint8), torch.zeros(100), 1 / 255)
    unl = DeviceData(torch.zeros(30, 1, 2, 2, dtype=torch.uint8), torch.ones(30), 1 / 255)
    unl.index = unl.index + 100
    batches = list(mixed_batches(lab, unl, 16, 0.5, generator=torch.Generator().manual_seed(0), epoch="rst"))
    assert len(batches) == 7 and all(len(y) == 16 and int(y.sum()) == 8 for _, y, _ in batches)
    labeled_seen = torch.cat([i[i < 100] for _, _, i in batches])
    assert len(labeled_seen) == len(set(labeled_seen.tolist())) == 56  # without replacement within the epoch
    one_pass = list(mixed_batches(lab, unl, 16, 0.5, generator=torch.Generator().manual_seed(0)))
    assert sorted(torch.cat([i[i < 100] for _, _, i in one_pass]).tolist()) == list(range(100))


def test_gair_mart_weights_from_epoch_75():
    """GAIRAT App. C.7: GAIR-MART uses the weights 'from Epoch 75 onward'."""
    assert _first_weighted_epoch(_cfg("gair-mart")) == 75


def test_mail_weights_start_with_the_first_learning_rate_drop():
    """MAIL §4.1: the weights start 'when the learning rate dropped at the first time'."""
    from irat.presets import preset_names

    names = [n for n in preset_names() if n.startswith("mail/") and "released" not in n]
    checked = 0
    for name in names:
        cfg = _preset_cfg(name)
        if cfg.weighting.name == "none":
            continue
        lrs = [learning_rate(cfg.optim, cfg.epochs, e - 1) for e in range(1, cfg.epochs + 1)]
        first_drop = next(e for e in range(2, cfg.epochs + 1) if lrs[e - 1] < lrs[e - 2])
        assert _first_weighted_epoch(cfg) == first_drop == 76, name
        checked += 1
    assert checked >= 20
    for m in ("mail-at", "mail-trades", "mail-mart"):
        assert _cfg(m).weighting.burn_in == 75


def test_default_milestones_never_drop_twice_at_once():
    for epochs in range(1, 121):
        opt = OptimConfig()
        lrs = [learning_rate(opt, epochs, e) for e in range(epochs)]
        assert all(b >= a * opt.gamma * 0.999 for a, b in zip(lrs, lrs[1:])), epochs
    assert [round(learning_rate(OptimConfig(), 3, e), 6) for e in range(3)] == [0.1, 0.1, 0.01]


def test_trades_mix_crafts_no_cw_example_while_no_weights_apply():
    """Released GAIR-RST: plain TRADES in the first half, no CW example crafted or forwarded."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    obj = make_objective("trades-mix", cfg=_cfg("gair-trades-rst"))
    step = dict(net=net, model=net, x=x, y=y, idx=torch.arange(8), epoch=1, eps=0.1, alpha=0.025, lr=0.1, global_n=8)
    burn_in, weighted = Step(**step, weights_active=False), Step(**step)
    obj.craft(burn_in)
    obj.craft(weighted)
    assert burn_in.x_adv2 is None and weighted.x_adv2 is not None
    nat, adv = torch.randn(8, 3), torch.randn(8, 3)
    trades = make_objective("trades", 6.0)
    t_mix, t_trades = obj.terms(logits_batch(y, adv, nat)), trades.terms(logits_batch(y, adv, nat))
    assert torch.equal(obj.combine(t_mix), trades.combine(t_trades))


def test_gair_rst_burn_in_trains_exactly_like_trades(tmp_path):
    """During the burn-in, trades-mix is TRADES to the bit: same attack, draws, BN statistics and steps."""
    from conftest import quick_config
    from irat.train import Trainer

    states = {}
    for method in ("gair-trades-rst", "trades"):
        cfg = quick_config(method=method, epochs=1, weighting={"burn_in": 1} if method != "trades" else {})
        Trainer(cfg, tmp_path / method).fit()
        states[method] = torch.load(tmp_path / method / "last.pt", weights_only=True)["model"]
    a, b = states.values()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_awp_presets_follow_the_released_scripts():
    at, trades, mart = _cfg("awp-at"), _cfg("awp-trades"), _cfg("awp-mart")
    assert at.attack.bn_mode == "train" and at.awp.warmup == 0  # AT_AWP: train-mode attack, AWP from the start
    for cfg in (trades, mart):  # TRADES-AWP: eval-mode attack, AWP from epoch 10 (`epoch >= awp_warmup`)
        assert cfg.attack.bn_mode == "eval" and cfg.awp.gamma == 0.005
        first_awp_epoch = next(e for e in range(1, 20) if e > cfg.awp.warmup)  # the trainer's rule
        assert first_awp_epoch == 10


def test_fat_step_noise_and_schedules_follow_the_released_scripts():
    assert get_key(_cfg("fat"), "objective.fat.noise") == 0.001  # FAT.py
    for m in ("fat-trades", "fat-mart", "gair-fat"):
        assert get_key(_cfg(m), "objective.fat.noise") == 0.0
    assert get_key(_cfg("fat-mart"), "objective.fat.tau") == [[0, 0], [20, 1], [40, 2], [60, 3], [80, 4]]
    assert get_key(_cfg("fat-trades"), "objective.fat.tau") == [[0, 0], [30, 1], [50, 2], [70, 3]]


def test_mail_released_presets_follow_the_released_script():
    for row in ("mail-at", "mail-trades"):
        p = table_presets()[f"mail/cifar10-resnet18-released/{row}"]
        assert p["attack"]["eps"] == "0.031" and p["attack"]["alpha"] == "0.007" and p["attack"]["start"] == "normal"
        assert p["weighting"]["burn_in"] == 76 and p["weighting"]["constant"] == 3.0  # weights from epoch 77


def test_wat_row_is_wmmr():
    p = table_presets()["mwpb/cifar10-wrn34-baselines/wat"]
    assert p["method"] == "wmmr" and "WAT" in METHODS["wmmr"].description


@pytest.mark.parametrize("epochs", [1, 2, 3])
def test_no_learning_rate_drop_before_the_first_epoch(epochs):
    opt = OptimConfig(lr=0.1)
    assert learning_rate(opt, epochs, 0.0) == pytest.approx(0.1)
    assert learning_rate(opt, 120, 59.0) == pytest.approx(0.1) and learning_rate(opt, 120, 60.0) == pytest.approx(0.01)


def test_mwpb_radii_on_hand_values():
    """ε_i = exp(α·d_i)·ε, α_i = ε_i/4, d_i = p_y − max_{j≠y} p_j of the natural input (α = 0.58, ε = 8/255)."""
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.4, 0.4, 0.2]])
    net = nn.Sequential(nn.Flatten(), nn.Identity())  # logits = log p: the softmax gives p back
    x, y = probs.log().reshape(3, 1, 1, 3), torch.zeros(3, dtype=torch.long)
    cfg = Config()
    cfg.radius.name = "mwpb"
    set_key(cfg, "radius.mwpb.alpha", 0.58)
    set_key(cfg, "radius.mwpb.phase1_epochs", 80)
    r = RADII.get("mwpb")(cfg)
    eps, step = r(net, x, y, 81, 8 / 255, 2 / 255)
    assert eps.tolist() == pytest.approx([0.0419271368792305, 0.023474935453445183, 0.03137254901960784], rel=1e-5)
    assert step.tolist() == pytest.approx([0.010481784219807624, 0.005868733863361296, 0.00784313725490196], rel=1e-5)
    assert r(net, x, y, 80, 8 / 255, 2 / 255) == (4 / 255, 1 / 255)  # first phase: half for everyone


def test_bilaw_step_against_an_independent_float64_implementation(monkeypatch):
    """θ̃ = θ − η∇_θ Σ_i ω_i ℓ_i / B with ω = B·w/Σw, w = ω_μ(Δ); L_val = CE(f_θ̃(x_v), y_v); μ ← Adam(∇_μ L_val);
    the new weights are ω_μ'(Δ) — written here with plain tensors, compared with irat's BiLAW."""
    from irat.parts import WEIGHTINGS

    torch.manual_seed(0)
    c, b, lr, lr_mu = 3, 6, 0.5, 0.01
    net = nn.Linear(4, c).double()
    x, y = torch.rand(b, 4, dtype=torch.float64), torch.randint(0, c, (b,))
    x_adv = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    xv, yv = torch.rand(5, 4, dtype=torch.float64), torch.randint(0, c, (5,))
    cfg = Config()
    apply_method(cfg, "bilaw")
    set_key(cfg, "weighting.bilaw.hidden", 8)
    set_key(cfg, "weighting.bilaw.lr", lr_mu)
    bilaw = WEIGHTINGS.get("bilaw")(cfg, RunContext(cfg, num_classes=c))
    bilaw.net.double()
    bilaw.opt = torch.optim.Adam(bilaw.net.parameters(), lr=lr_mu)
    mu = [p.detach().clone() for p in bilaw.net.parameters()]  # W1, b1, W2, b2
    monkeypatch.setattr(bilaw, "_meta_batch", lambda: (xv, yv))
    monkeypatch.setattr(bilaw, "meta_attack", lambda model, xs, ys, noise: xs)
    at = make_objective("at")
    batch = Step(net=net, model=net, x=x, y=y, idx=torch.arange(b), epoch=1, eps=0.1, alpha=0.1, lr=lr, global_n=b)
    batch.x_adv = x_adv

    def training_loss(fwd, scale):  # the run's loss under a forward, as Parts.loss gives it for AT
        return at.combine(at.terms(logits_batch(y, fwd(x_adv))), {"adv_ce": scale})

    got = bilaw.weights(batch, training_loss)

    # independent: the weight net, the look-ahead and Adam's first step by hand
    def omega(params, delta):
        w1, b1, w2, b2 = params
        return torch.sigmoid(torch.relu(delta @ w1.T + b1) @ w2.T + b2).squeeze(1)

    with torch.no_grad():
        p = F.softmax(net(x), 1)
    delta = p.gather(1, y[:, None]) - p
    mu_r = [m.clone().requires_grad_(True) for m in mu]
    w = omega(mu_r, delta)
    theta = [net.weight, net.bias]
    ell = F.cross_entropy(x_adv @ theta[0].T + theta[1], y, reduction="none")
    loss = (w * b / w.sum() * ell).mean()
    g = torch.autograd.grad(loss, theta, create_graph=True)
    tw, tb = theta[0] - lr * g[0], theta[1] - lr * g[1]
    val = F.cross_entropy(xv @ tw.T + tb, yv)
    g_mu = torch.autograd.grad(val, mu_r)
    # Adam, first step: m = (1−β1)g, v = (1−β2)g², m̂ = g, v̂ = g² → μ − lr·g/(|g| + ε)
    new_mu = [m - lr_mu * gm / (gm.abs() + 1e-8) for m, gm in zip(mu, g_mu)]
    want = omega(new_mu, delta).detach()

    assert bilaw.last_val_loss.item() == pytest.approx(val.item(), rel=1e-10)
    for p_irat, p_ref in zip(bilaw.net.parameters(), new_mu):
        assert torch.allclose(p_irat.detach(), p_ref, atol=1e-12)
    assert torch.allclose(got, want, atol=1e-12)
    assert not torch.allclose(want, omega(mu, delta).detach())  # the step moved the weights
