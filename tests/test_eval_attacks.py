"""Evaluation attacks (APGD, FAB, Square, SPSA, PGD+, AutoAttack) on small trained and hand-built models:
strength orderings, closed-form optima on linear models, bounds, seeds, and the masking warnings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from irat.attacks import apgd, apgd_targeted, autoattack, fab, pgd, pgd_plus, spsa, square
from irat.attacks.apgd import apgd_checkpoints, dlr_targeted_loss
from irat.attacks.fab import project_to_hyperplane_box, solve_threshold
from irat.attacks.losses import dlr_loss
from irat.attacks.square import p_schedule
from irat.errors import IratError
from irat.evaluate import evaluate, parse_attack, resolve_attacks
from test_pgd import Linear, Scripted, scripted_inputs

EPS = 0.1


@pytest.fixture(scope="module")
def digits_model():
    """An MLP adversarially trained (PGD-5, ε = 0.05) on the digits for a few seconds; 200 test examples."""
    from irat.data import load_splits

    torch.manual_seed(0)
    s = load_splits("digits", augment="none", device="cpu")
    xtr, ytr = s.train.all()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(20):
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            idx = perm[i : i + 128]
            xa = pgd(model, xtr[idx], ytr[idx], eps=0.05, alpha=0.0125, steps=5)
            loss = F.cross_entropy(model(xa), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    x, y = s.test.all()
    return model, x[:200], y[:200]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def accuracy(model, x_adv, y) -> float:
    with torch.no_grad():
        return float((model(x_adv).argmax(1) == y).float().mean())


def in_ball(x_adv, x, eps, norm) -> bool:
    d = (x_adv - x).flatten(1)
    dist = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    return bool((dist <= eps + 1e-6).all() and x_adv.min() >= 0 and x_adv.max() <= 1)


# ---------------------------------------------------------------- formulas on hand values


def test_apgd_checkpoints_match_the_paper():
    # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)  (Croce & Hein 2020, Sec. 3.2)
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_dlr_losses_on_hand_values():
    z = torch.tensor([[5.0, 3.0, 1.0, 0.0, -1.0]])
    y = torch.tensor([0])
    # untargeted: −(z_y − max_{j≠y} z_j)/(z_π1 − z_π3) = −(5 − 3)/(5 − 1)
    assert dlr_loss(z, y).item() == pytest.approx(-0.5)
    # targeted at class 2: −(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2) = −(5 − 1)/(5 − 0.5)
    assert dlr_targeted_loss(z, y, torch.tensor([2])).item() == pytest.approx(-4 / 4.5)


def test_square_p_schedule():
    # AutoAttack runs Square with resc_schedule=False: p halves after iterations 10, 50, 200, ...
    assert [p_schedule(i, 0.8, 5000) for i in (0, 10, 11, 50, 51, 201, 501, 1001, 2001, 4001)] == pytest.approx(
        [0.8, 0.8, 0.4, 0.4, 0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625]
    )
    assert p_schedule(5, 0.8, 1000, rescale=True) == pytest.approx(0.4)  # 5/1000·10000 = 50 → p/2


def test_solve_threshold_hand_value():
    # 1·min(t,1) + 2·min(t,3) = 5 → t = 2 (the first term saturates at 1)
    t = solve_threshold(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 3.0]]), torch.tensor([5.0]))
    assert t.item() == pytest.approx(2.0)
    # out of reach (max 1 + 6 = 7 < 9): every coordinate goes to its bound
    t = solve_threshold(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 3.0]]), torch.tensor([9.0]))
    assert t.item() == pytest.approx(3.0)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_projection_is_the_minimal_norm_point(norm):
    """Against scipy: min ‖d‖ s.t. w·(p + d) = b and p + d in [0,1] (a linear / quadratic programme)."""
    from scipy.optimize import linprog, minimize

    g = torch.Generator().manual_seed(1)
    p = torch.rand(6, 7, generator=g, dtype=torch.float64)
    w = torch.randn(6, 7, generator=g, dtype=torch.float64)
    b = (w * torch.rand(6, 7, generator=g, dtype=torch.float64)).sum(1)  # reachable inside the box
    d = project_to_hyperplane_box(p, w, b, norm)
    assert torch.allclose((w * (p + d)).sum(1), b, atol=1e-9)
    assert bool(((p + d) >= -1e-12).all() and ((p + d) <= 1 + 1e-12).all())
    for i in range(6):
        pi, wi, bi = p[i].numpy(), w[i].numpy(), float(b[i])
        if norm == "linf":
            n = len(pi)  # variables d_1..d_n, t: minimise t, −t ≤ d ≤ t, box, equality
            c = np.r_[np.zeros(n), 1.0]
            a_ub = np.block([[np.eye(n), -np.ones((n, 1))], [-np.eye(n), -np.ones((n, 1))]])
            res = linprog(
                c,
                A_ub=a_ub,
                b_ub=np.zeros(2 * n),
                A_eq=np.r_[wi, 0.0][None],
                b_eq=[bi - wi @ pi],
                bounds=[(-pv, 1 - pv) for pv in pi] + [(0, None)],
            )
            assert d[i].abs().max().item() == pytest.approx(res.fun, abs=1e-7)
        else:
            res = minimize(
                lambda v: v @ v,
                np.zeros(len(pi)),
                jac=lambda v: 2 * v,
                method="SLSQP",
                constraints=[{"type": "eq", "fun": lambda v: wi @ v - (bi - wi @ pi)}],
                bounds=[(-pv, 1 - pv) for pv in pi],
                options={"ftol": 1e-14, "maxiter": 500},
            )
            assert d[i].norm().item() == pytest.approx(np.sqrt(res.fun), abs=1e-5)


# ---------------------------------------------------------------- linear models: exact answers


def linear_problem(n_cls: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_cls, 16, generator=g)
    b = torch.zeros(n_cls)
    model = Linear(w, b)
    x = torch.rand(300, 1, 4, 4, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, w, b, x, y


def min_margin_linf(w, b, x, y, eps):
    """min over the ε-ball ∩ box of z_y − z_j, per example and class j (closed form: each pixel to its edge)."""
    f = x.flatten(1)
    v = w[y][:, None, :] - w[None, :, :]  # B×C×D: gradient of z_y − z_j
    lo, hi = (f - eps).clamp(0, 1), (f + eps).clamp(0, 1)
    worst = torch.where(v > 0, lo[:, None], hi[:, None])  # push each pixel to lower z_y − z_j
    m = (v * worst).sum(-1) + (b[y][:, None] - b[None, :])
    m[torch.arange(len(y)), y] = float("inf")
    return m.min(1).values


@pytest.mark.parametrize("attack", ["apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "pgdplus", "square", "spsa"])
def test_linear_model_attacks_break_exactly_the_breakable(attack):
    """On a linear model an example can be misclassified inside the ε-ball iff the closed-form minimal
    margin is < 0; each attack must break those (away from the boundary) and can never break the others."""
    model, w, b, x, y = linear_problem(10)
    eps = 0.05
    m = min_margin_linf(w, b, x, y, eps)
    runs = {
        "apgd-ce": lambda: apgd(model, x, y, eps=eps, steps=50, generator=gen()),
        "apgd-dlr": lambda: apgd(model, x, y, eps=eps, steps=50, loss="dlr", generator=gen()),
        "apgd-t": lambda: apgd_targeted(model, x, y, eps=eps, steps=50, generator=gen()),
        "fab": lambda: fab(model, x, y, eps=eps, steps=20, generator=gen()),
        "fab-t": lambda: fab(model, x, y, eps=eps, steps=20, targeted=True, generator=gen()),
        "pgdplus": lambda: pgd_plus(model, x, y, eps=eps, alpha=eps / 8, steps=40, restarts=2, generator=gen()),
        "square": lambda: square(model, x, y, eps=eps, n_queries=1000, generator=gen()),
        "spsa": lambda: spsa(model, x, y, eps=eps, steps=60, samples=32, lr=0.01, generator=gen()),
    }
    xa = runs[attack]()
    assert in_ball(xa, x, eps, "linf")
    with torch.no_grad():
        broken = model(xa).argmax(1) != y
    assert not bool(broken[m > 0].any())  # never beyond the optimum
    clear = m < -0.05 * w.abs().sum(1).mean()  # comfortably breakable
    assert clear.sum() > 20
    assert bool(broken[clear].all()), f"{attack} missed {int((~broken[clear]).sum())} breakable examples"


def test_fab_finds_the_minimal_perturbation_on_a_linear_two_class_model():
    """Two classes, no box constraint active: the smallest ℓ∞ change is |margin| / ‖w_0 − w_1‖₁."""
    model, w, b, _, _ = linear_problem(2, seed=3)
    x = 0.4 + 0.2 * torch.rand(50, 1, 4, 4, generator=gen(2))
    with torch.no_grad():
        y = model(x).argmax(1)
        z = model(x)
    v = (w[0] - w[1]).abs().sum()
    need = (z[:, 0] - z[:, 1]).abs() / v
    eps = 0.09
    xa = fab(model, x, y, eps=eps, steps=30, generator=gen())
    dist = (xa - x).flatten(1).abs().amax(1)
    with torch.no_grad():
        broken = model(xa).argmax(1) != y
    assert bool((broken == (need < eps)).all())
    assert torch.allclose(dist[broken], need[broken], rtol=0.06)  # within FAB's η = 1.05 overshoot


# ---------------------------------------------------------------- small trained model


def test_apgd_at_least_as_strong_as_pgd_same_budget(digits_model):
    model, x, y = digits_model
    for steps in (10, 20):
        acc_pgd = accuracy(model, pgd(model, x, y, eps=EPS, alpha=EPS / 4, steps=steps, generator=gen()), y)
        acc_apgd = accuracy(model, apgd(model, x, y, eps=EPS, steps=steps, generator=gen()), y)
        assert acc_apgd <= acc_pgd


def test_autoattack_worst_case_below_each_component_and_bounded(digits_model):
    model, x, y = digits_model
    res = autoattack(
        model,
        x,
        y,
        eps=EPS,
        generator=gen(),
        return_result=True,
        overrides={
            "apgd-ce": {"steps": 20},
            "apgd-t": {"steps": 20},
            "fab-t": {"steps": 20},
            "square": {"n_queries": 300},
        },
    )
    assert in_ball(res.x_adv, x, EPS, "linf")
    final = accuracy(model, res.x_adv, y)
    assert final == pytest.approx(float(res.robust.float().mean()))
    alone = {
        "apgd-ce": apgd(model, x, y, eps=EPS, steps=20, generator=gen()),
        "apgd-t": apgd_targeted(model, x, y, eps=EPS, steps=20, generator=gen()),
        "fab-t": fab(model, x, y, eps=EPS, steps=20, targeted=True, generator=gen()),
        "square": square(model, x, y, eps=EPS, n_queries=300, generator=gen()),
    }
    for name, xa in alone.items():
        assert final <= accuracy(model, xa, y), name
    # cumulative flags only ever fall
    flags = list(res.robust_after.values())
    assert all(bool((b <= a).all()) for a, b in zip(flags, flags[1:]))


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.8)])
def test_every_attack_stays_in_bounds(digits_model, norm, eps):
    model, x, y = digits_model
    x, y = x[:60], y[:60]
    for xa in (
        apgd(model, x, y, eps=eps, norm=norm, steps=10, generator=gen()),
        apgd_targeted(model, x, y, eps=eps, norm=norm, steps=5, n_target_classes=2, generator=gen()),
        fab(model, x, y, eps=eps, norm=norm, steps=10, generator=gen()),
        fab(model, x, y, eps=eps, norm=norm, steps=10, targeted=True, n_target_classes=2, generator=gen()),
        square(model, x, y, eps=eps, norm=norm, n_queries=100, generator=gen()),
        spsa(model, x, y, eps=eps, norm=norm, steps=5, samples=8, generator=gen()),
        pgd_plus(model, x, y, eps=eps, norm=norm, steps=10, restarts=2, generator=gen()),
    ):
        assert in_ball(xa, x, eps, norm)


def test_attacks_reproducible_with_a_seed(digits_model):
    model, x, y = digits_model
    x, y = x[:50], y[:50]
    for f in (
        lambda g: apgd(model, x, y, eps=EPS, steps=10, generator=g),
        lambda g: fab(model, x, y, eps=EPS, steps=5, restarts=2, generator=g),
        lambda g: square(model, x, y, eps=EPS, n_queries=50, generator=g),
        lambda g: spsa(model, x, y, eps=EPS, steps=3, samples=8, generator=g),
    ):
        assert torch.equal(f(gen(5)), f(gen(5)))
    r1 = evaluate(model, x, y, attacks=["pgd5", "square:n_queries=50"], eps=EPS, seed=3, sanity=False)
    r2 = evaluate(model, x, y, attacks=["pgd5", "square:n_queries=50"], eps=EPS, seed=3, sanity=False)
    assert r1["results"] == r2["results"]
    assert all(torch.equal(r1["per_example"][k], r2["per_example"][k]) for k in r1["per_example"])


def test_pgd_plus_counts_a_success_at_any_step():
    """Example 0 is misclassified only at step 2 of 5: PGD's last iterate is correct, PGD+ is not."""
    alpha = 0.01
    pattern = torch.ones(3, 6, dtype=torch.bool)
    pattern[0, 2] = False
    model = Scripted(pattern, alpha)
    x = scripted_inputs(3)
    y = torch.zeros(3, dtype=torch.long)
    last = pgd(model, x, y, eps=0.2, alpha=alpha, steps=5, start="none")
    plus = pgd_plus(model, x, y, eps=0.2, alpha=alpha, steps=5, restarts=1, start="none")
    with torch.no_grad():
        assert model(last).argmax(1).tolist() == [0, 0, 0]
        assert model(plus).argmax(1).tolist() == [1, 0, 0]


# ---------------------------------------------------------------- gradient masking


class Quantised(nn.Module):
    """Input quantisation in front of a model: the input gradient is zero almost everywhere."""

    def __init__(self, model: nn.Module, levels: int = 2):
        super().__init__()
        self.model, self.levels = model, levels

    def forward(self, x):
        return self.model(torch.round(x * self.levels) / self.levels)


def test_black_box_attacks_beat_quantisation_and_the_warning_fires(digits_model):
    model, x, y = digits_model
    masked = Quantised(model)
    rec = evaluate(
        masked,
        x[:100],
        y[:100],
        attacks=["pgd20", "apgd-ce", "square:n_queries=500", "spsa:steps=30:samples=32:lr=0.05"],
        eps=0.2,
    )
    r = rec["results"]
    assert r["square"] < r["pgd20"] - 10 and r["spsa"] < r["pgd20"] - 10
    checks = {w["check"] for w in rec["warnings"]}
    assert "black-box-beats-white-box" in checks and "zero-gradients" in checks
    # the same protocol on the plain model raises no masking warning
    rec = evaluate(model, x[:100], y[:100], attacks=["pgd20", "apgd-ce", "square:n_queries=500"], eps=0.1)
    assert rec["warnings"] == [], rec["warnings"]


class Constant(nn.Module):
    """Ignores its input: nothing can change its decision, at any ε."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([1.0, 0.0, 0.0]))

    def forward(self, x):
        return self.bias.expand(x.shape[0], 3) + 0 * x.flatten(1).sum(1, keepdim=True)


def test_large_eps_probe_flags_an_unbreakable_model():
    x = torch.rand(20, 1, 4, 4)
    y = torch.zeros(20, dtype=torch.long)
    rec = evaluate(Constant(), x, y, attacks=["pgd10"], eps=0.1)
    checks = {w["check"] for w in rec["warnings"]}
    assert "large-eps-not-broken" in checks and "zero-gradients" in checks
    assert rec["sanity"]["accuracy"]["pgd50@large_eps"] == 100.0


def test_pgd_far_above_autoattack_is_flagged():
    """A weak PGD (1 tiny step) against a strong APGD on an undefended linear model."""
    model, _, _, x, y = linear_problem(10)
    rec = evaluate(model, x, y, attacks=["pgd1:alpha=0.001", "apgd-ce:steps=20"], eps=0.05, sanity=False)
    assert rec["results"]["pgd1"] > rec["results"]["apgd-ce"] + 5
    assert any(w["check"] == "pgd-above-strong-attack" for w in rec["warnings"])


def test_randomised_and_probability_outputs_are_flagged():
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 3)

        def forward(self, x):
            return F.softmax(self.lin(x.flatten(1) + 0.1 * torch.randn_like(x.flatten(1))), 1)

    x = torch.rand(30, 1, 4, 4)
    y = torch.zeros(30, dtype=torch.long)
    rec = evaluate(Noisy(), x, y, attacks=["pgd2"], eps=0.1)
    checks = {w["check"] for w in rec["warnings"]}
    assert {"randomised-model", "probability-outputs"} <= checks


# ---------------------------------------------------------------- the record, suites, options


def test_record_per_attack_time_config_and_worst_case(digits_model):
    model, x, y = digits_model
    rec = evaluate(
        model,
        x[:80],
        y[:80],
        attacks=["natural", "pgd10", "apgd-t:steps=10", "aa:steps=10:n_queries=100:n=40"],
        eps=EPS,
    )
    for name in ("pgd10", "apgd-t", "aa"):
        a = rec["attacks"][name]
        assert a["time_s"] >= 0 and a["n_attacked"] > 0 and a["examples_per_s"] > 0
    assert rec["attacks"]["apgd-t"]["n_target_classes"] == 9 and rec["attacks"]["apgd-t"]["steps"] == 10
    aa = rec["attacks"]["aa"]
    assert aa["n"] == 40 and list(aa["after_component"]) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert aa["components"]["square"]["n_queries"] == 100 and aa["components"]["fab-t"]["eta"] == 1.05
    assert aa["after_component"]["square"] == rec["results"]["aa"]
    worst = (
        rec["per_example"]["natural"]
        & rec["per_example"]["pgd10"]
        & rec["per_example"]["apgd-t"]
        & rec["per_example"]["aa"]
    )
    # over the 40 examples every attack ran on (aa:n=40): unattacked examples never count as robust
    assert rec["worst_case_n"] == 40 and rec["worst_case"] == pytest.approx(100 * worst[:40].float().mean().item())
    assert rec["worst_case"] <= min(100 * f[:40].float().mean().item() for f in rec["per_example"].values())


def test_official_defaults_in_specs():
    aa = parse_attack("aa").config()["components"]
    assert aa["apgd-ce"] == {"steps": 100, "restarts": 1, "loss": "ce", "rho": 0.75, "eot_iter": 1}
    assert aa["apgd-t"]["n_target_classes"] == 9 and aa["fab-t"]["alpha_max"] == 0.1
    assert aa["square"] == {"n_queries": 5000, "p_init": 0.8, "restarts": 1}
    plus = parse_attack("aa-plus").config()["components"]
    assert list(plus) == ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"]
    assert plus["apgd-ce"]["restarts"] == 5 and plus["fab"]["restarts"] == 5
    rand = parse_attack("aa-rand").config()["components"]
    assert list(rand) == ["apgd-ce", "apgd-dlr"] and rand["apgd-ce"]["eot_iter"] == 20
    sp = parse_attack("spsa").options
    assert (sp["steps"], sp["delta"], sp["lr"], sp["samples"]) == (100, 0.001, 0.01, 256)
    pp = parse_attack("pgdplus").options
    assert (pp["steps"], pp["restarts"], pp["alpha"], pp["first_success"]) == (40, 5, 0.01, True)


def test_suites_follow_the_papers():
    eps = 8 / 255
    mail = {s.name: s for s in resolve_attacks(suite="mail")}
    assert list(mail) == ["natural", "pgd100", "apgd-ce", "cw30", "aa"]
    assert mail["pgd100"].alpha_for(eps, eps / 4) == pytest.approx(0.003)
    mwpb = {s.name: s for s in resolve_attacks(suite="mwpb")}
    assert list(mwpb) == ["natural", "pgd20", "cw20", "aa", "square", "spsa"]
    assert mwpb["pgd20"].alpha_for(eps, eps / 4) == pytest.approx(1 / 255)
    assert [s.name for s in resolve_attacks(suite="gairat")] == ["natural", "pgd20", "pgdplus"]
    bilaw = {s.name: s for s in resolve_attacks(suite="bilaw")}
    assert bilaw["aa"].options["n"] == 1000
    assert [s.name for s in resolve_attacks(suite="fast")] == ["natural", "apgd-ce", "apgd-t"]


@pytest.mark.parametrize(
    "text,msg",
    [
        ("pgd20:alpha=-1", "not a valid value"),
        ("square:queries=5", "no option"),
        ("aa-strong", "unknown attack"),
        ("pgd20:alpha", "key=value"),
        ("aa:components=apgd-ce+pgd", "unknown AutoAttack component"),
    ],
)
def test_bad_attack_specs(text, msg):
    with pytest.raises(IratError, match=msg):
        parse_attack(text)


def test_bad_evaluate_arguments(digits_model):
    model, x, y = digits_model
    with pytest.raises(IratError, match="unknown suite"):
        evaluate(model, x, y, suite="nips", eps=EPS)
    with pytest.raises(IratError, match="backend"):
        evaluate(model, x, y, attacks=["aa"], eps=EPS, backend="foolbox")
    with pytest.raises(IratError, match="precision"):
        evaluate(model, x, y, attacks=["aa"], eps=EPS, precision="fp8")
    with pytest.raises(IratError, match="needs at least 4 classes"):
        apgd_targeted(Constant(), torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long), eps=EPS)


def test_bf16_is_opt_in_and_says_so(digits_model):
    model, x, y = digits_model
    rec = evaluate(model, x[:50], y[:50], attacks=["natural", "pgd5"], eps=EPS, precision="bf16", sanity=False)
    assert rec["precision"] == "bf16" and any(w["check"] == "bf16" for w in rec["warnings"])
    fp32 = evaluate(model, x[:50], y[:50], attacks=["natural", "pgd5"], eps=EPS, sanity=False)
    assert fp32["precision"] == "fp32" and fp32["warnings"] == []
    assert abs(rec["results"]["natural"] - fp32["results"]["natural"]) <= 4


def test_attacks_declare_what_the_evaluator_used_to_test_by_kind():
    """AutoAttack and `natural` are ordinary registered attacks: the evaluator, the masking checks and the card
    export read their declarations (clean, cascade, budget options, step family), never their names."""
    from irat.evaluate.attacks import is_standard_autoattack

    assert parse_attack("natural").attack.clean and not parse_attack("pgd20").attack.clean
    assert parse_attack("aa").attack.cascade and parse_attack("pgd20").attack.step_family
    assert not parse_attack("apgd-ce").attack.step_family  # a reference, not a plain-step baseline
    for name, standard in [
        ("aa", True),
        ("aa-standard", True),
        ("aa:n=100", True),  # fewer examples, the official budgets
        ("aa:steps=10", False),  # a quick check, not AutoAttack as published
        ("aa:components=apgd-ce", False),
        ("aa-plus", False),
        ("apgd-t", False),
    ]:
        assert is_standard_autoattack(parse_attack(name).config()) is standard, name
