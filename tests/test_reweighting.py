"""Instance reweighting (docs/methods.md §3, §5, §6): weight functions and margins on hand-computed values,
normalisation, burn-in, λ = +∞, where each objective applies weights (gradients), MWPB radii, AWP,
BiLAW's meta-gradient against finite differences, LM-PGD, and one epoch of every method."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import quick_config
from irat.attacks import lm_pgd, pgd
from irat.attacks.losses import attack_loss
from irat.config import Config, RadiusConfig
from irat.margins import logit_margin, margin_vector, pm_dif, probabilistic_margin
from irat.methods import METHODS
from irat.parts import RADII, make_objective, weight_targets
from irat.parts.bilaw import WeightNet, lookahead_val_loss
from irat.parts.radius import mwpb_radii
from irat.parts.weighting import gair_lambda, gair_weight, mail_weight, normalize, wmmr_weight
from irat.testing import logits_batch
from irat.train import Trainer, load_checkpoint
from irat.train.awp import AWP

LOGP = torch.log(torch.tensor([[0.6, 0.3, 0.1]]))


# -- weight functions and margins -------------------------------------------------------------------
def test_gair_weights_hand_values():
    k = torch.tensor([0, 5, 10])
    # ½(1 + tanh(λ + 5(1 − 2κ/K))), λ = −1: ½(1+tanh 4), ½(1+tanh −1), ½(1+tanh −6)
    assert gair_weight(k, 10, -1.0, "tanh").tolist() == pytest.approx([0.9996646, 0.1192029, 6.1442e-6], rel=1e-4)
    # σ(λ + 5(1 − 2κ/K)), λ = 0: σ(5), σ(0), σ(−5)
    assert gair_weight(k, 10, 0.0, "sigmoid").tolist() == pytest.approx([0.9933071, 0.5, 0.0066929], rel=1e-5)
    # 1 − κ/(K+1)
    assert gair_weight(torch.tensor([0, 4, 10]), 10, 0.0, "linear").tolist() == pytest.approx([1, 7 / 11, 1 / 11])
    assert gair_weight(k, 10, math.inf, "tanh").tolist() == [1.0, 1.0, 1.0]


def test_margins_hand_values():
    y0, y1 = torch.tensor([0]), torch.tensor([1])
    assert probabilistic_margin(LOGP, y0).item() == pytest.approx(0.3)  # 0.6 − 0.3
    assert probabilistic_margin(LOGP, y1).item() == pytest.approx(-0.3)  # 0.3 − 0.6
    assert logit_margin(LOGP, y0).item() == pytest.approx(math.log(2))  # log 0.6 − log 0.3
    at_step = torch.log(torch.tensor([[0.2, 0.7, 0.1]]))
    assert pm_dif(LOGP, at_step, y0).item() == pytest.approx(0.4)  # 0.6 − 0.2
    assert margin_vector(LOGP, y0)[0].tolist() == pytest.approx([0.0, 0.3, 0.5])


def test_mail_and_wmmr_hand_values():
    assert mail_weight(torch.tensor([0.3, -0.3]), 10.0, 0.0).tolist() == pytest.approx([0.0474259, 0.9525741], rel=1e-5)
    assert mail_weight(torch.tensor([0.05]), 5.0, 0.05).item() == pytest.approx(0.5)
    assert wmmr_weight(torch.tensor([0.3]), 0.5).item() == pytest.approx(math.exp(-0.15))


def test_normalisations():
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert normalize(w, "mean-one").tolist() == pytest.approx([0.4, 0.8, 1.2, 1.6])
    assert normalize(w, "sum-one").tolist() == pytest.approx([0.4, 0.8, 1.2, 1.6])  # Σ ω/B·ℓ ≡ Σ (w/Σw)·ℓ
    assert normalize(w, "constant", 3.0).tolist() == [3.0, 6.0, 9.0, 12.0]
    assert normalize(w, "none").tolist() == w.tolist()


def test_lambda_schedules():
    assert gair_lambda("fixed", 50, 100, 30, -1.0, None, None) == -1.0
    assert gair_lambda("linear", 31, 100, 30, 1.0, -1.0, None) == pytest.approx(1.0)
    assert gair_lambda("linear", 100, 100, 30, 1.0, -1.0, None) == pytest.approx(-1.0)
    assert gair_lambda("linear", 50, 100, 30, math.inf, -1.0, None) == math.inf  # no NaN with λ = ∞
    table = [[0, 1.0], [60, 0.0], [90, -1.0]]
    assert [gair_lambda("piecewise", e, 120, 0, 1.0, None, table) for e in (10, 61, 91, 120)] == [1.0, 0.0, -1.0, -1.0]


# -- where the weight applies (gradient check on a toy model) ---------------------------------------
def _manual(obj: str, scheme: str, model, x, xa, y, om, beta=6.0):
    la, ln = F.log_softmax(model(xa), 1), F.log_softmax(model(x), 1)
    pa, pn = la.exp(), ln.exp()
    ce_adv = -la.gather(1, y[:, None]).squeeze(1)
    ce_nat = -ln.gather(1, y[:, None]).squeeze(1)
    kl = (pn * (ln - la)).sum(1)
    other = pa.scatter(1, y[:, None], -1.0).amax(1)
    margin = -torch.log(1.0001 - other + 1e-12)
    py_nat = pn.gather(1, y[:, None]).squeeze(1)
    if (obj, scheme) == ("trades", "gair"):
        return (om * ce_nat).mean() + beta * kl.mean()
    if (obj, scheme) == ("trades", "mail"):
        return ce_nat.mean() + beta * (om * kl).mean()
    if (obj, scheme) == ("mart", "gair"):
        return (om * ce_adv).mean() + margin.mean() + beta * (kl * (1.0000001 - py_nat)).mean()
    if (obj, scheme) == ("mart", "mail"):
        return (om * (ce_adv + margin)).mean() + beta * (kl * (1.0000001 - py_nat)).mean()
    return (om * ce_adv).mean()


@pytest.mark.parametrize(
    "obj,scheme",
    [("trades", "gair"), ("trades", "mail"), ("mart", "gair"), ("mart", "mail"), ("at", "gair"), ("at", "bilaw")],
)
def test_weight_placement_gradients(obj, scheme):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4)).double()
    x = torch.rand(6, 1, 3, 4, dtype=torch.float64)
    xa = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    y = torch.randint(0, 4, (6,))
    om = torch.rand(6, dtype=torch.float64) * 2
    objective = make_objective(obj, 6.0)
    terms = objective.terms(logits_batch(y, model(xa), model(x) if objective.needs_natural else None))
    got = objective.combine(terms, {t: om for t in weight_targets(obj, scheme)})
    g_got = torch.autograd.grad(got, list(model.parameters()))
    want = _manual(obj, scheme, model, x, xa, y, om)
    g_want = torch.autograd.grad(want, list(model.parameters()))
    assert got.item() == pytest.approx(want.item(), rel=1e-10)
    assert all(torch.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(g_got, g_want))


# -- training-level properties ----------------------------------------------------------------------
def _weights(path):
    return load_checkpoint(path)["model"]


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_lambda_infinity_reproduces_at_exactly(tmp_path):
    Trainer(quick_config(epochs=1), tmp_path / "at").fit()
    Trainer(
        quick_config(method="gairat", epochs=1, weighting={"burn_in": 0, "gair_lambda": math.inf}), tmp_path / "gair"
    ).fit()
    assert _same(_weights(tmp_path / "at" / "last.pt"), _weights(tmp_path / "gair" / "last.pt"))


@pytest.mark.parametrize("method", ["mail-at", "gairat", "wmmr"])
def test_burn_in_gives_unit_weights(tmp_path, method):
    Trainer(quick_config(epochs=1), tmp_path / "at").fit()
    t = Trainer(quick_config(method=method, epochs=1, weighting={"burn_in": 1}), tmp_path / method)
    assert not t.parts.weighting.active(1) and t.parts.weighting.active(2)
    t.fit()
    assert _same(_weights(tmp_path / "at" / "last.pt"), _weights(tmp_path / method / "last.pt"))


def test_awp_with_zero_gamma_is_plain_at(tmp_path):
    Trainer(quick_config(epochs=1), tmp_path / "at").fit()
    Trainer(quick_config(epochs=1, awp={"enabled": True, "gamma": 0.0}), tmp_path / "awp").fit()
    assert _same(_weights(tmp_path / "at" / "last.pt"), _weights(tmp_path / "awp" / "last.pt"))


def test_awp_perturbation_norm_and_removal():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.rand(20, 1, 4, 4), torch.randint(0, 3, (20,))
    awp = AWP(model, gamma=0.01, proxy_lr=0.01)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    diff = awp.perturbation(lambda m: F.cross_entropy(m(x), y))
    awp.apply(diff, +1.0)
    for n, p in model.named_parameters():
        change = (p.detach() - before[n]).norm()
        if p.dim() > 1:
            assert change.item() == pytest.approx(0.01 * before[n].norm().item(), rel=1e-4)
        else:
            assert change.item() == 0.0  # biases are not perturbed
    awp.apply(diff, -1.0)
    assert all(torch.allclose(p, before[n], atol=1e-7) for n, p in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())  # the proxy step never touches the model's grads


def test_mwpb_radii_and_phases():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5))
    x, y = torch.rand(30, 1, 4, 4), torch.randint(0, 5, (30,))
    eps = 8 / 255
    r = mwpb_radii(model, x, y, eps, 0.58)
    d = probabilistic_margin(model(x).detach(), y)
    assert torch.allclose(r, torch.exp(0.58 * d) * eps)
    cfg = Config(radius=RadiusConfig(name="mwpb", options={"mwpb": {"alpha": 0.58, "phase1_epochs": 80}}))
    radius_for = RADII.get("mwpb")(cfg)
    assert radius_for(model, x, y, 80, eps, eps / 4) == (eps / 2, eps / 8)
    e_i, a_i = radius_for(model, x, y, 81, eps, eps / 4)
    assert torch.allclose(a_i, e_i / 4)
    xa = pgd(model, x, y, eps=e_i, alpha=a_i, steps=10, start="normal")
    assert ((xa - x).flatten(1).abs().amax(1) <= e_i + 1e-7).all()  # each inside its own radius


def test_bilaw_meta_gradient_matches_finite_differences():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.rand(8, 1, 3, 4, dtype=torch.float64)
    xa = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    y = torch.randint(0, 3, (8,))
    xv, yv = torch.rand(5, 1, 3, 4, dtype=torch.float64), torch.randint(0, 3, (5,))
    net = WeightNet(3, 5).double()
    delta = margin_vector(model(x).detach(), y)
    for obj_name in ("at", "trades"):
        obj = make_objective(obj_name, 6.0)
        targets = weight_targets(obj_name, "bilaw")

        def loss(fwd, scale, obj=obj, targets=targets):  # the training loss under another forward (Parts.loss)
            nat = fwd(x) if obj.needs_natural else None
            return obj.combine(obj.terms(logits_batch(y, fwd(xa), nat)), {t: scale for t in targets})

        def f():
            w = net(delta)
            return lookahead_val_loss(model, loss, w * len(y) / w.sum(), 0.5, xv, yv)

        grads = torch.autograd.grad(f(), list(net.parameters()))
        h = 1e-6
        for p, g in zip(net.parameters(), grads):
            idx = (0,) * p.dim()
            with torch.no_grad():
                p[idx] += h
            up = f().item()
            with torch.no_grad():
                p[idx] -= 2 * h
            down = f().item()
            with torch.no_grad():
                p[idx] += h
            fd = (up - down) / (2 * h)
            assert g[idx].item() == pytest.approx(fd, rel=1e-4, abs=1e-9)
        assert any(g.abs().sum() > 0 for g in grads)


# -- LM-PGD --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm") / "at"
    t = Trainer(quick_config(epochs=6, attack={"steps": 5}, data={"train_subset": None}), out)
    t.fit()
    x, y = t.splits.test.all()
    return t.model.eval(), x[:200], y[:200]


def test_lm_pgd_stays_in_ball_and_is_as_strong_as_pgd(digits_model):
    model, x, y = digits_model
    eps = 0.2
    xa, losses = lm_pgd(model, x, y, eps=eps, steps=50, return_losses=True)
    assert ((xa - x).abs().flatten(1).amax(1) <= eps + 1e-6).all() and xa.min() >= 0 and xa.max() <= 1
    assert losses.shape == (51, len(y))
    xp = pgd(model, x, y, eps=eps, alpha=eps / 4, steps=50, start="none")
    with torch.no_grad():
        l_lm, l_pgd = attack_loss("ce", model(xa), y), attack_loss("ce", model(xp), y)
    assert l_lm.mean() >= l_pgd.mean()


def test_lm_pgd_in_eval(digits_model):
    import irat

    model, x, y = digits_model
    rec = irat.evaluate(model, x, y, attacks=["natural", "lmpgd20", "pgd20"], eps=0.1)
    assert rec["results"]["lmpgd20"] <= rec["results"]["natural"]


# -- every method trains, and its observability -------------------------------------------------------
TINY = {
    "epochs": 1,
    "attack": {"steps": 2},
    "data": {"train_subset": 192},
    "val_n": 40,
    "weighting": {"burn_in": 0, "bilaw": {"meta_size": 64}},
    "radius": {"mwpb": {"phase1_epochs": 0}},
    "awp": {"warmup": 0},
}


@pytest.mark.parametrize("method", sorted(m for m in METHODS if m not in ("rst", "gair-rst")))  # RST: test_systems.py
def test_every_method_trains_one_epoch(tmp_path, method):
    row = Trainer(quick_config(method=method, **TINY), tmp_path / method).fit()
    assert row["epoch"] == 1 and math.isfinite(row["train_loss"])
    m = METHODS[method].overrides
    if m.get("weighting", {}).get("name") not in (None, "none"):
        assert row["weight_min"] >= 0 and row["weight_max"] >= row["weight_min"]
    if m.get("radius", {}).get("name") == "mwpb":
        a = m["radius"]["mwpb"]["alpha"]
        assert (
            0.1 * math.exp(-a) - 1e-9 <= row["eps_min"] <= row["eps_mean"] <= row["eps_max"] <= 0.1 * math.exp(a) + 1e-9
        )
    if method.startswith("bilaw"):
        assert row["bilaw_val_loss"] > 0


def test_per_example_values_saved(tmp_path):
    cfg = quick_config(method="gairat", epochs=2, weighting={"burn_in": 1}, save_per_example=[1, 2])
    Trainer(cfg, tmp_path / "g").fit()
    rows = [json.loads(l) for l in (tmp_path / "g" / "metrics.jsonl").read_text().splitlines()]
    assert sum(rows[1]["kappa_hist"]) == 256 and len(rows[1]["kappa_hist"]) == 4
    assert "weight_q" in rows[1] and "weight_min" not in rows[0]  # burn-in epoch: no weights
    z = np.load(tmp_path / "g" / "per_example" / "epoch_002.npz")
    assert {"index", "label", "kappa", "pm_adv", "pm_nat", "pm_dif", "weight", "eps"} <= set(z.files)
    assert len(z["index"]) == 256 and len(set(z["index"].tolist())) == 256
    w = gair_weight(torch.from_numpy(z["kappa"]), 3, -1.0, "tanh").numpy()
    assert np.allclose(z["weight"], w, atol=1e-6)  # weights line up with their κ and index
    z1 = np.load(tmp_path / "g" / "per_example" / "epoch_001.npz")
    assert np.all(z1["weight"] == 1.0)


def test_gair_rst_mix_loss():
    """CE + β·mean[w·KL(x,x_kl) + (1−w)·KL(x,x_cw)]; with ω ≡ 1 it is TRADES exactly."""
    torch.manual_seed(0)
    nat, adv, adv2 = torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 4)
    y = torch.randint(0, 4, (5,))
    w = torch.rand(5)
    mix, trades = make_objective("trades-mix", 6.0), make_objective("trades", 6.0)
    t = mix.terms(logits_batch(y, adv, nat, adv2))
    pn = F.softmax(nat, 1)
    kl1 = (pn * (pn.log() - F.log_softmax(adv, 1))).sum(1)
    kl2 = (pn * (pn.log() - F.log_softmax(adv2, 1))).sum(1)
    want = F.cross_entropy(nat, y) + 6 * (w * kl1 + (1 - w) * kl2).mean()
    assert mix.combine(t, {"kl": w}).item() == pytest.approx(want.item(), rel=1e-6)
    assert mix.combine(t).item() == pytest.approx(
        trades.combine(trades.terms(logits_batch(y, adv, nat))).item(), rel=1e-6
    )
    assert weight_targets("trades-mix", "gair") == ["kl"]
