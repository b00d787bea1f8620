"""AutoAttack (Croce & Hein, ICML 2020): a fixed cascade of parameter-free attacks.

Each component runs only on the examples every earlier component left classified correctly, and
the result is the per-example worst case. Versions and their settings are the official package's
(`autoattack.py`, `set_version`):

- standard: APGD-CE (1 restart) → APGD-T (9 targets, 1 restart) → FAB-T (9 targets) → Square
  (5000 queries);
- plus: APGD-CE (5 restarts) → APGD-DLR (5 restarts) → FAB (5 restarts) → Square → APGD-T → FAB-T;
- rand (for randomised defences): APGD-CE → APGD-DLR, each with the gradient averaged over 20
  forward passes (expectation over transformation);
- custom: any list of component names.
All APGD components use 100 iterations and ρ = 0.75; FAB 100 iterations; the seed defaults to 0
(the official package uses the clock when none is given).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..errors import IratError
from .apgd import apgd, apgd_targeted
from .checks import attack_mode, keyword_defaults
from .fab import fab
from .square import square

VERSIONS: dict[str, list[str]] = {
    "standard": ["apgd-ce", "apgd-t", "fab-t", "square"],
    "plus": ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"],
    "rand": ["apgd-ce", "apgd-dlr"],
}
COMPONENTS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")


# component → (attack function, its options, the component's own fixed settings)
_OPTIONS: dict[str, tuple[Callable[..., torch.Tensor], tuple[str, ...], dict[str, Any]]] = {
    "apgd-ce": (apgd, ("steps", "restarts", "loss", "rho", "eot_iter"), {"loss": "ce"}),
    "apgd-dlr": (apgd, ("steps", "restarts", "loss", "rho", "eot_iter"), {"loss": "dlr"}),
    "apgd-t": (apgd_targeted, ("steps", "restarts", "n_target_classes", "loss", "rho", "eot_iter"), {}),
    "fab": (fab, ("steps", "restarts", "targeted", "alpha_max", "eta", "beta"), {"targeted": False}),
    "fab-t": (
        fab,
        ("steps", "restarts", "targeted", "n_target_classes", "alpha_max", "eta", "beta"),
        {"targeted": True},
    ),
    "square": (square, ("n_queries", "p_init", "restarts"), {}),
}


_COMPONENT_FNS: dict[str, Any] = {  # each component's function (its settings say targeted, loss, ...)
    "apgd-ce": apgd,
    "apgd-dlr": apgd,
    "apgd-t": apgd_targeted,
    "fab": fab,
    "fab-t": fab,
    "square": square,
}


def component_settings(version: str, overrides: dict[str, dict] | None = None) -> dict[str, dict]:
    """Keyword arguments of each component under an AutoAttack version: the attack functions' own
    defaults (which are the official ones), the version's changes (plus: 5 restarts for APGD-CE,
    APGD-DLR and FAB; rand: EOT over 20 passes), then optional per-component overrides (marked as
    non-official in the record by the caller)."""
    settings = {name: {**keyword_defaults(fn, opts), **fixed} for name, (fn, opts, fixed) in _OPTIONS.items()}
    if version == "plus":
        for name in ("apgd-ce", "apgd-dlr", "fab"):
            settings[name]["restarts"] = 5
    if version == "rand":
        for name in ("apgd-ce", "apgd-dlr", "apgd-t"):
            settings[name]["eot_iter"] = 20
    for k, v in (overrides or {}).items():
        settings[k] = {**settings[k], **v}
    return settings


def run_component(
    name: str,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str,
    settings: dict,
    generator: torch.Generator | None,
) -> torch.Tensor:
    fn = _COMPONENT_FNS.get(name)
    if fn is None:
        raise IratError(f"unknown AutoAttack component {name!r}; known: {', '.join(COMPONENTS)}")
    return fn(model, x, y, eps=eps, norm=norm, generator=generator, check_inputs=False, **settings)


@dataclass
class AutoAttackResult:
    x_adv: torch.Tensor
    robust: torch.Tensor  # after every component
    robust_after: dict[str, torch.Tensor] = field(default_factory=dict)  # cumulative, per component
    time_s: dict[str, float] = field(default_factory=dict)


def resolve_version(version: str, components: list[str] | None) -> list[str]:
    if components:
        bad = [c for c in components if c not in COMPONENTS]
        if bad:
            raise IratError(f"unknown AutoAttack component(s) {', '.join(bad)}; known: {', '.join(COMPONENTS)}")
        return list(components)
    if version not in VERSIONS:
        raise IratError(
            f"AutoAttack version must be one of {', '.join(VERSIONS)} or a custom component list, got {version!r}"
        )
    return VERSIONS[version]


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    version: str = "standard",
    components: list[str] | None = None,
    batch_size: int = 500,
    overrides: dict[str, dict] | None = None,
    generator: torch.Generator | None = None,
    return_result: bool = False,
):
    """Run the cascade; returns x_adv (x where no component succeeded), or an AutoAttackResult."""
    names = resolve_version(version, components)
    settings = component_settings(version, overrides)
    x, y = x.detach(), y.long()
    with torch.no_grad(), attack_mode(model, "eval"):
        robust = (
            torch.cat(
                [model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size] for i in range(0, len(x), batch_size)]
            )
            if len(x)
            else torch.zeros(0, dtype=torch.bool)
        )
    x_adv = x.clone()
    result = AutoAttackResult(x_adv, robust)
    for name in names:
        t0 = time.perf_counter()
        todo = robust.nonzero().squeeze(1)
        for i in range(0, len(todo), batch_size):
            sel = todo[i : i + batch_size]
            adv = run_component(
                name, model, x[sel], y[sel], eps=eps, norm=norm, settings=settings[name], generator=generator
            )
            with torch.no_grad(), attack_mode(model, "eval"):
                fooled = model(adv).argmax(1) != y[sel]
            x_adv[sel[fooled]] = adv[fooled]
            robust[sel[fooled]] = False
        result.robust_after[name] = robust.clone()
        result.time_s[name] = time.perf_counter() - t0
    return result if return_result else x_adv
