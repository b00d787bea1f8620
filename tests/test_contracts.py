"""Contract tests that walk every registry (as timm's tests walk every model): each registered model gives finite
logits of the right shape, each dataset states its shape and checksums, each method is accepted by its parts;
each objective, weighting scheme and radius trains in the real loop with well-shaped, finite terms and weights
and a state that survives a round trip; each evaluation attack stays in its ball, never beats the optimal
attack on a linear model, and is deterministic under a seed. The same checks are `irat.testing` for plug-in
authors."""

from __future__ import annotations

import pytest

from irat.evaluate.attacks import ATTACKS
from irat.parts import OBJECTIVES, RADII, WEIGHTINGS
from irat.testing import check_attack, check_part

# attack names that exercise each registered kind (natural has no attack to check)
ATTACK_CASES = {
    "pgd": "pgd10",
    "lmpgd": "lmpgd10",
    "apgd": "apgd-ce:steps=20",
    "apgd-t": "apgd-t:steps=20:n_target_classes=3",
    "fab": "fab:steps=20",
    "square": "square:n_queries=200",
    "spsa": "spsa:steps=10",
    "aa": "aa:steps=10:n_queries=100",
}


def test_every_attack_kind_has_a_case():
    built_in = {
        k for k in ATTACKS.names() if ATTACKS.get(k).fn is None or ATTACKS.get(k).fn.__module__.startswith("irat.")
    }
    assert set(ATTACK_CASES) == {
        k for k in built_in if not ATTACKS.get(k).clean
    }  # (plug-ins loaded by other tests aside)


@pytest.mark.parametrize("section, name", [("objective", n) for n in OBJECTIVES.names()])
def test_objective_contract(section, name):
    assert check_part(section, name)["steps"] > 0


@pytest.mark.parametrize("name", list(WEIGHTINGS.names()))
def test_weighting_contract(name):
    assert check_part("weighting", name)["steps"] > 0


@pytest.mark.parametrize("name", list(RADII.names()))
def test_radius_contract(name):
    assert check_part("radius", name)["steps"] > 0


@pytest.mark.parametrize("kind", sorted(ATTACK_CASES))
def test_attack_contract(kind):
    res = check_attack(ATTACK_CASES[kind])
    assert res["robust"] >= res["optimal"] - 1e-9


def test_the_contract_catches_a_broken_part():
    """A weighting scheme that returns negative weights fails its contract (the check is not blind)."""
    import torch

    from irat.parts import Weighting, register_weighting

    @register_weighting("contract-broken", replace=True)
    class Broken(Weighting):
        def raw(self, batch):
            return -torch.ones(len(batch.y))

    with pytest.raises(AssertionError, match="weights must be finite and >= 0"):
        check_part("weighting", "contract-broken")


def _built_in(registry) -> list[str]:
    """A registry's names, less what plug-ins loaded by other tests in this process added."""
    return [n for n in registry.names() if getattr(registry.get(n), "__module__", "irat.").startswith("irat.")]


@pytest.mark.parametrize("name", _built_in(__import__("irat.models.registry", fromlist=["MODELS"]).MODELS))
def test_model_contract(name):
    """Every registered model maps a batch of its inputs to finite logits [B, classes] and carries the metadata a
    checkpoint records."""
    import torch

    from irat.models import create_model

    size = 64 if "imagenet" in name else 32
    for channels, classes in ((3, 10), (1, 7)):
        model = create_model(name, in_channels=channels, num_classes=classes, input_size=size).eval()
        with torch.no_grad():
            out = model(torch.rand(2, channels, size, size))
        assert out.shape == (2, classes) and torch.isfinite(out).all(), name
        assert getattr(model, "irat_meta")["num_classes"] == classes  # noqa: B009


def test_dataset_contract():
    """Every registered dataset states its shape and classes, and every file it downloads has a checksum (the MD5
    guards the bytes: Fashion-MNIST's own host serves plain http)."""
    from irat.data.datasets import SPECS

    for name in SPECS.names():
        spec = SPECS[name]
        assert spec.channels in (1, 3) and spec.size >= 8 and spec.num_classes >= 2, name
        if spec.needs_download:
            assert spec.files and all(
                len(f.md5) == 32 and f.url.startswith(("https://", "http://")) for f in spec.files
            ), name


def test_method_contract():
    """Every registered method resolves into a configuration its parts accept, named after its own parts."""
    from irat.config import Config
    from irat.methods import METHODS, apply_method, check_method_name
    from irat.parts import check_parts

    for name in METHODS.names():
        cfg = Config()
        apply_method(cfg, name)
        check_parts(cfg)
        if not METHODS[name].extra_data:  # (RST's needs its data and teacher set first)
            check_method_name(cfg)
        assert cfg.method == name
