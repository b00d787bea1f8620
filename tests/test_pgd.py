"""The PGD engine: bounds, closed-form optimum on a linear model, κ semantics, FAT alignment."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from irat.attacks import pgd
from irat.errors import IratError


class Linear(nn.Module):
    def __init__(self, w: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.lin.weight.copy_(w)
            self.lin.bias.copy_(b)

    def forward(self, x):
        return self.lin(x.flatten(1))


class Scripted(nn.Module):
    """Two-class model whose correctness at PGD step k is scripted per example.

    Pixels 0..3 carry t = Σ x; CE ascent on class 0 lowers each by α per step (sign of a tiny
    linear term), so the step index is k = round((2 − t)/(4α)). Pixel 4 holds the example id
    (zero gradient, never moves). The prediction is class 0 iff pattern[id, k] is True.
    """

    def __init__(self, pattern: torch.Tensor, alpha: float):
        super().__init__()
        self.register_buffer("pattern", pattern)
        self.alpha = alpha
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        f = x.flatten(1)
        t = f[:, :4].sum(1)
        k = torch.round((2.0 - t) / (4 * self.alpha)).long().clamp(0, self.pattern.shape[1] - 1)
        ident = torch.round(f[:, 4] * 10).long()
        ok = self.pattern[ident, k]
        h = torch.where(ok, 1.0, -1.0).detach()
        z0 = 1e-3 * t + h + self.dummy
        return torch.stack([z0, torch.zeros_like(z0)], 1)


def scripted_inputs(n: int) -> torch.Tensor:
    x = torch.full((n, 1, 1, 5), 0.5)
    x[:, 0, 0, 4] = torch.arange(n) / 10
    return x


def steps_taken(x_adv: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.round((2.0 - x_adv.flatten(1)[:, :4].sum(1)) / (4 * alpha)).long()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_bounds_hold_per_example_eps(norm):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 5))
    x = torch.rand(40, 3, 4, 4)
    y = torch.randint(0, 5, (40,))
    eps = torch.linspace(0.01, 0.5, 40) if norm == "linf" else torch.linspace(0.1, 2.0, 40)
    for start in ("uniform", "normal", "none"):
        xa = pgd(model, x, y, eps=eps, alpha=eps / 3, steps=7, norm=norm, start=start)
        d = (xa - x).flatten(1)
        dist = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
        assert (dist <= eps + 1e-6).all()
        assert xa.min() >= 0 and xa.max() <= 1


def test_linear_model_linf_closed_form():
    torch.manual_seed(1)
    w = torch.randn(2, 12)
    model = Linear(w, torch.zeros(2))
    x = torch.full((6, 1, 3, 4), 0.5)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    eps = 0.1
    xa = pgd(model, x, y, eps=eps, alpha=0.03, steps=10, start="none")
    direction = w[y] - w[1 - y]  # gradient of the margin z_y − z_other
    expected = x.flatten(1) - eps * direction.sign()
    assert torch.allclose(xa.flatten(1), expected, atol=1e-6)
    for loss in ("cw", "ce"):  # uniform start reaches the same vertex
        xa = pgd(model, x, y, eps=eps, alpha=0.03, steps=20, start="uniform", loss=loss)
        assert torch.allclose(xa.flatten(1), expected, atol=1e-6)


def test_linear_model_l2_closed_form():
    torch.manual_seed(2)
    w = torch.randn(2, 12)
    model = Linear(w, torch.zeros(2))
    x = torch.full((4, 1, 3, 4), 0.5)
    y = torch.tensor([0, 1, 1, 0])
    eps = 0.2
    xa = pgd(model, x, y, eps=eps, alpha=0.05, steps=20, norm="l2", start="none")
    d = w[y] - w[1 - y]
    expected = x.flatten(1) - eps * d / d.norm(dim=1, keepdim=True)
    assert torch.allclose(xa.flatten(1), expected, atol=1e-5)


def test_kappa_semantics_on_scripted_model():
    T, F = True, False
    K = 6
    pattern = torch.tensor(
        [
            [T, T, T, T, T, T, T],  # never misclassified: count 6, first-success K=6, first -1
            [T, T, F, F, F, F, F],  # fooled at step 2 for good: count 2, first 2
            [T, F, T, T, F, T, T],  # path dependent: count 4 (0,2,3,5), first 1
            [F, F, T, T, T, T, T],  # naturally misclassified: count 4 (2..5), first 0
        ]
    )
    alpha = 0.01
    model = Scripted(pattern, alpha)
    x = scripted_inputs(4)
    y = torch.zeros(4, dtype=torch.long)
    xa, info = pgd(model, x, y, eps=0.3, alpha=alpha, steps=K, start="none", return_info=True)
    assert steps_taken(xa, alpha).tolist() == [K] * 4
    assert info.kappa_count.tolist() == [6, 2, 4, 4]
    assert info.kappa.tolist() == [6, 2, 4, 4]
    assert info.kappa_first.tolist() == [6, 2, 1, 0]
    assert info.first_success.tolist() == [-1, 2, 1, 0]
    _, info2 = pgd(model, x, y, eps=0.3, alpha=alpha, steps=K, start="none", return_info=True, kappa="first-success")
    assert info2.kappa.tolist() == [6, 2, 1, 0]
    # iterate at a requested per-example step, and at κ (MAIL's PM-dif)
    _, info3 = pgd(
        model,
        x,
        y,
        eps=0.3,
        alpha=alpha,
        steps=K,
        start="none",
        return_info=True,
        record_step=torch.tensor([0, 3, 6, 9]),
    )
    assert steps_taken(info3.x_at_step, alpha).tolist() == [0, 3, 6, 6]
    _, info4 = pgd(model, x, y, eps=0.3, alpha=alpha, steps=K, start="none", return_info=True, record_step="kappa")
    assert steps_taken(info4.x_at_step, alpha).tolist() == [6, 2, 4, 4]


def test_fat_early_stop_keeps_labels_aligned():
    T, F = True, False
    K = 6
    pattern = torch.tensor(
        [
            [T, T, F, F, F, F, F],  # τ=0: stops at step 2
            [T, F, F, F, F, F, F],  # τ=1: spends at 1, stops at 2
            [T, T, T, T, T, T, T],  # never fooled: runs all K steps
            [F, F, F, F, F, F, F],  # natural error, τ=0: stops at 0 (keeps x)
            [T, F, T, F, F, F, F],  # τ=1: spends at 1, correct at 2, stops at 3
        ]
    )
    alpha = 0.01
    model = Scripted(pattern, alpha)
    tau = torch.tensor([0, 1, 0, 0, 1])
    expected = [2, 2, K, 0, 3]
    for perm in (torch.arange(5), torch.tensor([3, 0, 4, 2, 1])):
        x = scripted_inputs(5)[perm]
        y = torch.zeros(5, dtype=torch.long)
        xa, info = pgd(model, x, y, eps=0.3, alpha=alpha, steps=K, start="none", tau=tau[perm], return_info=True)
        assert torch.equal(xa.flatten(1)[:, 4], x.flatten(1)[:, 4])  # ids (and so labels) stay in place
        assert steps_taken(xa, alpha).tolist() == [expected[i] for i in perm.tolist()]
        assert info.stopped_at.tolist() == [min(expected[i], K) for i in perm.tolist()]
        # stopped examples are misclassified at their iterate; the one never fooled is correct
        assert info.correct.tolist() == [i == 2 for i in perm.tolist()]


def test_no_parameter_gradients_and_modes_restored():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    model.train()
    x, y = torch.rand(10, 1, 4, 4), torch.randint(0, 3, (10,))
    running = model[2].running_mean.clone()
    pgd(model, x, y, eps=0.1, alpha=0.03, steps=3)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert model.training
    assert torch.equal(model[2].running_mean, running)  # eval-mode BN while attacking by default
    pgd(model, x, y, eps=0.1, alpha=0.03, steps=3, bn_mode="train")
    assert not torch.equal(model[2].running_mean, running)  # AWP/WMMR-style train-mode BN


def test_restarts_never_weaker_and_seeded():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    x, y = torch.rand(200, 1, 4, 4), torch.randint(0, 4, (200,))
    g = lambda: torch.Generator().manual_seed(5)
    a1 = pgd(model, x, y, eps=0.2, alpha=0.05, steps=3, generator=g())
    a1b = pgd(model, x, y, eps=0.2, alpha=0.05, steps=3, generator=g())
    assert torch.equal(a1, a1b)
    a5 = pgd(model, x, y, eps=0.2, alpha=0.05, steps=3, restarts=5, generator=g())
    wrong1 = (model(a1).argmax(1) != y).sum()
    wrong5 = (model(a5).argmax(1) != y).sum()
    assert wrong5 >= wrong1


def test_kl_loss_moves_prediction_distribution():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 4, (8,))
    xa, info = pgd(model, x, y, eps=0.1, alpha=0.02, steps=5, loss="kl", start="normal", return_info=True)
    assert (info.loss > 0).all()


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"eps": 0.0}, "eps must be > 0"),
        ({"eps": -1.0}, "eps must be > 0"),
        ({"norm": "l1"}, "norm"),
        ({"loss": "hinge"}, "loss"),
        ({"start": "zeros"}, "start"),
        ({"steps": -1}, "steps"),
    ],
)
def test_bad_arguments(kw, msg):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    args = dict(eps=0.1, alpha=0.01, steps=2)
    args.update(kw)
    with pytest.raises(IratError, match=msg):
        pgd(model, torch.rand(2, 1, 4, 4), torch.tensor([0, 1]), **args)


def test_bad_inputs():
    from irat.models import create_model

    model = create_model("tinycnn", in_channels=1, num_classes=10, input_size=8)
    x, y = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    with pytest.raises(IratError, match=r"\[0,1\]"):
        pgd(model, x * 2, y, eps=0.1, alpha=0.01, steps=1)
    with pytest.raises(IratError, match="labels must lie in"):
        pgd(model, x, torch.tensor([0, 10]), eps=0.1, alpha=0.01, steps=1)
    with pytest.raises(IratError, match="1-channel"):
        pgd(model, torch.rand(2, 3, 8, 8), y, eps=0.1, alpha=0.01, steps=1)
