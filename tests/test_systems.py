"""The comparison systems of issue 7 — MMA, squeeze training (ST-AT), RST / GAIR-RST: their losses and
attacks on hand-computed values, and short real runs that show each one's documented effect."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import quick_config
from irat.attacks.anpgd import an_pgd, bisection_radius
from irat.attacks.checks import attack_mode, frozen_bn_stats
from irat.attacks.losses import soft_logit_margin
from irat.attacks.squeeze import rank_by_true_prob, squeeze_pair, symmetric_kl
from irat.cli import main
from irat.data import DeviceData
from irat.data.unlabeled import mixed_batches, split_batch, withhold
from irat.evaluate import evaluate
from irat.parts import make_objective
from irat.testing import logits_batch
from irat.train import Trainer


class Linear(nn.Module):
    """z = W·flatten(x) + b: margins and minimal distances have closed forms."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(b)

    def forward(self, x):
        return x.flatten(1) @ self.w.t() + self.b


# -- MMA --------------------------------------------------------------------------------------------
def test_soft_logit_margin_hand_values():
    z = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 3.0]])
    y = torch.tensor([0, 1])
    # log(e^1 + e^0) − 2 = −0.686739;  log(e^0 + e^3) − 3 = 0.048587
    assert soft_logit_margin(z, y).tolist() == pytest.approx([-0.686739, 0.048587], abs=1e-5)


def test_mma_terms_hand_values():
    obj = make_objective("mma", clean_coeff=1 / 3)
    nat = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    adv = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([0, 0])
    counted = torch.tensor([True, False])  # second example: radius beyond d_max (hinge)
    t = obj.terms(logits_batch(y, adv, nat, mask=counted))
    # adversarial CE: log 2 for the first, the second not counted; clean CE: log(1+e^-2), log(1+e^1)
    assert t["adv_ce"].tolist() == pytest.approx([2 / 3 * math.log(2), 0.0], abs=1e-6)
    assert t["nat_ce"].tolist() == pytest.approx([0.126928 / 3, 1.313262 / 3], abs=1e-5)
    assert obj.combine(t).item() == pytest.approx((2 / 3 * math.log(2) + (0.126928 + 1.313262) / 3) / 2, abs=1e-5)


def _two_class_linear(k: float = 1.0):
    # z_0 − z_1 = 2k·(x_0 − x_1) + 0.3 on a 2-pixel "image"; at x = (0.5, 0.5) the margin is 0.3
    w = torch.tensor([[k, -k], [-k, k]])
    return Linear(w.reshape(2, 2), torch.tensor([0.15, -0.15]))


def test_bisection_finds_the_linear_boundary():
    model = _two_class_linear()
    x = torch.full((1, 1, 1, 2), 0.5)
    y = torch.tensor([0])
    unit = torch.tensor([[[[-1.0, 1.0]]]])  # along u the margin is 0.3 − 4r: boundary at r* = 0.075
    eps = torch.tensor([0.02])  # still correct at the start: the search must go up
    margin = soft_logit_margin(model(x + 0.02 * unit), y)
    r = bisection_radius(model, x, y, unit, eps, margin, max_eps=0.2, steps=12)
    assert r.item() == pytest.approx(0.075, abs=0.2 / 2**11)


def test_an_pgd_radius_is_the_minimal_linf_distance():
    torch.manual_seed(0)
    w = torch.randn(2, 6)
    model = Linear(w, torch.zeros(2))
    x = 0.45 + 0.1 * torch.rand(16, 1, 1, 6)
    z = model(x)
    y = z.argmax(1)
    # two classes: the soft logit margin is z_o − z_y, and the ℓ∞ distance to the boundary is
    # (z_y − z_o)/‖w_y − w_o‖₁ (PGD's signed steps walk straight along −sign(w_y − w_o))
    d_min = (z.max(1).values - z.min(1).values) / (w[0] - w[1]).abs().sum()
    x_adv, r = an_pgd(model, x, y, torch.full((16,), 0.01), max_eps=0.5, steps=20, search_steps=15)
    ok = d_min < 0.35  # stay clear of the [0,1] box
    assert ok.sum() >= 8
    assert torch.allclose(r[ok], d_min[ok].detach(), atol=1e-3)
    assert ((x_adv - x).flatten(1).abs().amax(1) <= r + 1e-6).all()
    assert (r[~ok] >= 0.35 - 1e-3).all()


def test_mma_trains_and_enlarges_margins(tmp_path):
    """MMA's documented effect: the per-example radii (input-space margins) found by AN-PGD grow during
    training, and the model ends robust without giving up natural accuracy."""
    over = dict(epochs=8, data={"train_subset": 1200}, optim={"lr": 0.05, "schedule": "constant"})
    runs = {m: Trainer(quick_config(method=m, **over), tmp_path / m) for m in ("standard", "mma")}
    for t in runs.values():
        t.fit()
    rows = [json.loads(l) for l in (tmp_path / "mma" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["eps_mean"] > rows[0]["eps_mean"] + 0.02
    assert rows[-1]["eps_max"] == pytest.approx(1.05 * 1.5 * 0.1, abs=1e-6)  # capped at 1.05·d_max
    x, y = runs["mma"].splits.test.all()
    rec = {
        m: evaluate(t.model, x, y, attacks=["natural", "pgd20"], eps=0.1, sanity=False)["results"]
        for m, t in runs.items()
    }
    assert rec["mma"]["natural"] > 90
    assert rec["mma"]["pgd20"] > rec["standard"]["pgd20"] + 15


def test_mma_radii_survive_resume(tmp_path):
    cfg = quick_config(method="mma", epochs=4, data={"train_subset": 1200}, optim={"lr": 0.05, "schedule": "constant"})
    t = Trainer(cfg, tmp_path / "m")
    t.fit(max_epochs=3)  # by epoch 3 most digits are classified correctly and get a radius
    saved = t.parts.objective.radii.clone()
    assert saved.abs().sum() > 0
    t2 = Trainer(cfg, tmp_path / "m", resume=True)
    assert torch.equal(t2.parts.objective.radii, saved)


# -- ST-AT ------------------------------------------------------------------------------------------
def test_symmetric_kl_and_ranking_hand_values():
    up = torch.log(torch.tensor([[0.2, 0.8]]))
    low = torch.log(torch.tensor([[0.9, 0.1]]))
    kl_lu = 0.9 * math.log(0.9 / 0.2) + 0.1 * math.log(0.1 / 0.8)
    kl_ul = 0.2 * math.log(0.2 / 0.9) + 0.8 * math.log(0.8 / 0.1)
    assert symmetric_kl(up, low).item() == pytest.approx(0.5 * (kl_lu + kl_ul), abs=1e-6)
    y = torch.tensor([0, 0])
    nat = torch.log(torch.tensor([[0.7, 0.3], [0.5, 0.5]]))
    col = torch.log(torch.tensor([[0.9, 0.1], [0.5, 0.5]]))
    adv = torch.log(torch.tensor([[0.2, 0.8], [0.6, 0.4]]))
    u, l = rank_by_true_prob([nat, col, adv], y)
    assert u.tolist() == [2, 0] and l.tolist() == [1, 2]  # ties go to the first (natural)


def test_st_terms_pick_the_extremes():
    obj = make_objective("st", beta=6.0)
    y = torch.tensor([0])
    nat = torch.log(torch.tensor([[0.7, 0.3]]))
    col = torch.log(torch.tensor([[0.9, 0.1]]))
    adv = torch.log(torch.tensor([[0.2, 0.8]]))
    t = obj.terms(logits_batch(y, adv, nat, col))
    assert t["nat_ce"].item() == pytest.approx(-math.log(0.7), abs=1e-6)
    assert t["squeeze"].item() == pytest.approx(6 * symmetric_kl(adv, col).item(), abs=1e-6)


def test_squeeze_pair_moves_apart_within_the_ball():
    torch.manual_seed(0)
    model = Linear(torch.randn(3, 6), torch.zeros(3))
    x = 0.3 + 0.4 * torch.rand(32, 1, 1, 6)
    y = model(x).argmax(1)
    x_adv, x_col = squeeze_pair(model, x, y, eps=0.05, alpha=0.0125, steps=10)
    for p in (x_adv, x_col):
        assert ((p - x).flatten(1).abs().amax(1) <= 0.05 + 1e-6).all()
    py = lambda z: F.softmax(model(z), 1).gather(1, y[:, None]).squeeze(1)
    assert (py(x_adv) < py(x)).float().mean() > 0.9
    assert (py(x_col) > py(x)).float().mean() > 0.9
    assert not any(p.grad is not None for p in model.parameters())


def test_train_frozen_bn_keeps_running_statistics():
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    before = net[1].running_mean.clone(), net[1].num_batches_tracked.clone()
    with attack_mode(net, "train-frozen"):
        net(torch.randn(8, 1, 3, 3) + 5)
        assert net.training  # batch statistics are used
    with frozen_bn_stats(net):
        net.train()
        net(torch.randn(8, 1, 3, 3) + 5)
    assert torch.equal(net[1].running_mean, before[0]) and torch.equal(net[1].num_batches_tracked, before[1])
    net(torch.randn(8, 1, 3, 3) + 5)
    assert not torch.equal(net[1].running_mean, before[0])


def test_st_at_finds_collaborative_examples_and_is_robust(tmp_path):
    """ST-AT's documented effect: its collaborative examples have lower loss than the natural input, its
    adversarial ones higher, and the trained model is robust unlike plain training."""
    over = dict(epochs=8, data={"train_subset": 1200}, optim={"lr": 0.05, "schedule": "constant"})
    runs = {m: Trainer(quick_config(method=m, **over), tmp_path / m) for m in ("standard", "st-at")}
    for t in runs.values():
        t.fit()
    st = runs["st-at"]
    x, y = st.splits.test.all()
    rec = {
        m: evaluate(t.model, x, y, attacks=["natural", "pgd20"], eps=0.1, sanity=False)["results"]
        for m, t in runs.items()
    }
    assert rec["st-at"]["pgd20"] > rec["standard"]["pgd20"] + 20 and rec["st-at"]["natural"] > 85
    x_adv, x_col = squeeze_pair(st.model, x, y, eps=0.1, alpha=0.025, steps=10)
    with torch.no_grad():
        st.model.eval()
        ce = [F.cross_entropy(st.model(p), y).item() for p in (x_col, x, x_adv)]
    assert ce[0] < ce[1] < ce[2]


# -- RST / GAIR-RST ---------------------------------------------------------------------------------
def test_mixed_batches_fraction_and_coverage():
    lab = DeviceData(torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.arange(10) % 3, 1 / 255)
    unl = DeviceData(torch.full((7, 1, 2, 2), 255, dtype=torch.uint8), torch.full((7,), 2), 1 / 255)
    unl.index = unl.index + 100
    assert split_batch(8, 0.5) == (4, 4) and split_batch(4, 0.9) == (1, 3) and split_batch(4, 0.01) == (3, 1)
    batches = list(mixed_batches(lab, unl, 4, 0.5, generator=torch.Generator().manual_seed(0)))
    assert len(batches) == 5  # one pass over the 10 labeled at 2 per batch
    idx = torch.cat([b[2] for b in batches])
    assert sorted(i for i in idx.tolist() if i < 100) == list(range(10))
    u = [i for i in idx.tolist() if i >= 100]
    assert len(u) == 10 and set(u) == set(range(100, 107))  # drawn without replacement, then reshuffled
    for x, y, i in batches:
        assert torch.equal(x[i >= 100], torch.ones_like(x[i >= 100])) and (y[i >= 100] == 2).all()


def test_withhold_is_seeded_and_disjoint():
    data = DeviceData(torch.zeros(50, 1, 2, 2, dtype=torch.uint8), torch.zeros(50, dtype=torch.long), 1 / 255)
    a, b = withhold(data, 20, 0)
    a2, _ = withhold(data, 20, 0)
    assert len(a) == 30 and len(b) == 20 and torch.equal(a.index, a2.index)
    assert not set(a.index.tolist()) & set(b.index.tolist())


def test_rst_beats_labeled_only_training(tmp_path):
    """RST's documented effect (Carmon et al.; GAIRAT Table 3): pseudo-labelled extra data improves
    robustness over training on the labeled part alone. 800 digits are withheld as the unlabeled set."""
    base = dict(epochs=10, data={"train_subset": None}, optim={"lr": 0.05, "schedule": "constant"})
    held = {"withhold": 800}
    Trainer(quick_config(method="standard", unlabeled=held, **base), tmp_path / "teacher").fit()
    teach = dict(held, teacher=str(tmp_path / "teacher"))
    runs = {
        "trades": Trainer(quick_config(method="trades", unlabeled=held, **base), tmp_path / "trades"),
        "rst": Trainer(quick_config(method="rst", unlabeled=teach, **base), tmp_path / "rst"),
        "gair-rst": Trainer(quick_config(method="gair-rst", unlabeled=teach, **base), tmp_path / "gair-rst"),
    }
    assert len(runs["rst"].splits.train) == len(runs["trades"].splits.train)  # same labeled examples
    assert torch.equal(runs["rst"].splits.train.index, runs["trades"].splits.train.index)
    for t in runs.values():
        t.fit()
    info = json.loads((tmp_path / "rst" / "unlabeled.json").read_text())
    assert info["n"] == 800 and info["pseudo_label_acc"] > 70
    x, y = runs["rst"].splits.test.all()
    rec = {
        m: evaluate(t.model, x, y, attacks=["natural", "pgd20"], eps=0.1, sanity=False)["results"]
        for m, t in runs.items()
    }
    assert rec["rst"]["pgd20"] > rec["trades"]["pgd20"] + 10
    assert rec["gair-rst"]["pgd20"] > rec["trades"]["pgd20"] + 10


def test_rst_reads_an_npz_of_images(tmp_path):
    Trainer(quick_config(method="standard", epochs=1), tmp_path / "teacher").fit()
    imgs = (np.random.default_rng(0).random((40, 8, 8, 1)) * 255).astype(np.uint8)  # N×H×W×C accepted
    np.savez(tmp_path / "u.npz", x=imgs)
    t = Trainer(
        quick_config(
            method="rst", epochs=1, unlabeled={"path": str(tmp_path / "u.npz"), "teacher": str(tmp_path / "teacher")}
        ),
        tmp_path / "r",
    )
    row = t.fit()
    assert len(t.unlabeled) == 40 and t.unlabeled.index.min() > t.splits.train.index.max()
    assert math.isfinite(row["train_loss"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "rst"], "pseudo-labelled extra data"),
        (
            ["--method", "rst", "--set", "unlabeled.withhold=10", "--set", "unlabeled.teacher=/no/such/run"],
            "does not exist",
        ),
        (["--method", "at", "--set", "unlabeled.path=x.npz"], "needs a teacher"),
        (["--method", "mma", "--weighting", "gair"], "objective mma"),
        (["--method", "st-at", "--radius", "mwpb"], "objective st"),
        (["--method", "mma", "--set", "objective.mma.min_eps=1.0"], "objective.mma.min_eps (1"),
    ],
)
def test_bad_system_settings_stop_before_work(tmp_path, capsys, args, message):
    out = tmp_path / "r"
    assert main(["train", "--dataset", "digits", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((5, 3, 8, 8), dtype=np.uint8), "do not match"),  # channels
        (np.zeros((5, 1, 8, 8), dtype=np.float32), "uint8"),
        (np.zeros((0, 1, 8, 8), dtype=np.uint8), "no images"),
    ],
)
def test_bad_unlabeled_file_is_one_clear_error(tmp_path, capsys, x, message):
    Trainer(quick_config(method="standard", epochs=1), tmp_path / "teacher").fit()
    np.savez(tmp_path / "u.npz", x=x)
    out = tmp_path / "r"
    assert (
        main(
            [
                "train",
                "--method",
                "rst",
                "--dataset",
                "digits",
                "--model",
                "tinycnn",
                "--out",
                str(out),
                "--set",
                f"unlabeled.path={tmp_path / 'u.npz'}",
                "--set",
                f"unlabeled.teacher={tmp_path / 'teacher'}",
            ]
        )
        == 2
    )
    assert message in capsys.readouterr().err and not out.exists()


# -- BiLAW ablation knobs (Tables 6 and 8) ---------------------------------------------------------
def test_weight_net_inputs_hand_values():
    from irat.parts.bilaw import WeightNet, weight_net_input

    model = Linear(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), torch.zeros(3))
    x = torch.tensor([[[[0.0, 0.0]]]])  # logits 0,0,0: p = 1/3 each
    x_adv = torch.tensor([[[[0.0, 1.0]]]])  # logits 0,1,0
    y = torch.tensor([0])
    assert weight_net_input("multiclass-margin", model, x, x_adv, y).tolist() == [[0.0, 0.0, 0.0]]
    assert weight_net_input("margin", model, x, x_adv, y).tolist() == [[0.0]]
    ce_adv = math.log(2 + math.e)  # −log(1/(2 + e))
    assert weight_net_input("adv-loss", model, x, x_adv, y).item() == pytest.approx(ce_adv, abs=1e-5)
    assert weight_net_input("loss-diff", model, x, x_adv, y).item() == pytest.approx(ce_adv - math.log(3), abs=1e-5)
    net = WeightNet(10, [64, 64])
    assert [m.out_features for m in net.net if isinstance(m, nn.Linear)] == [64, 64, 1]


@pytest.mark.parametrize("inp, hidden", [("margin", 16), ("adv-loss", [8, 8]), ("loss-diff", 8)])
def test_bilaw_ablations_train(tmp_path, inp, hidden):
    cfg = quick_config(
        method="bilaw",
        epochs=1,
        attack={"steps": 2},
        weighting={"burn_in": 0, "bilaw": {"meta_size": 64, "input": inp, "hidden": hidden}},
    )
    t = Trainer(cfg, tmp_path / "b")
    row = t.fit()
    assert math.isfinite(row["train_loss"]) and row["bilaw_val_loss"] > 0
    assert t.parts.weighting.net.net[0].in_features == 1


def test_bad_bilaw_hidden_is_refused(tmp_path, capsys):
    out = tmp_path / "r"
    assert (
        main(
            [
                "train",
                "--method",
                "bilaw",
                "--dataset",
                "digits",
                "--out",
                str(out),
                "--set",
                "weighting.bilaw.hidden=[64, 0]",
            ]
        )
        == 2
    )
    assert "weighting.bilaw.hidden must be" in capsys.readouterr().err and not out.exists()
