"""`--backend autoattack`: run the official AutoAttack package (fra31/auto-attack) on the same examples,
so a user can cross-check irat's own implementation. Its adversarial inputs go through irat's bound
checks and accuracy computation like every other attack's."""

from __future__ import annotations

import importlib

import torch
import torch.nn as nn

from ..attacks.checks import attack_mode
from ..errors import IratError

INSTALL_HINT = "pip install git+https://github.com/fra31/auto-attack"


def require_official():
    """The official package's module, or one clear error before any work starts."""
    try:
        return importlib.import_module("autoattack")
    except ImportError:
        raise IratError(
            f"--backend autoattack needs the official AutoAttack package, which is not installed "
            f"({INSTALL_HINT}); use --backend irat for irat's own implementation"
        ) from None


def run_official(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str,
    version: str,
    components: list[str] | None,
    seed: int,
    batch_size: int,
) -> torch.Tensor:
    """The official AutoAttack's adversarial inputs (`custom` when a component list is given)."""
    pkg = require_official()
    adversary = pkg.AutoAttack(
        model,
        norm={"linf": "Linf", "l2": "L2"}[norm],
        eps=eps,
        version="custom" if components else version,
        attacks_to_run=components or [],
        seed=seed,
        verbose=False,
        device=str(x.device),
    )
    with attack_mode(model, "eval"):
        x_adv = adversary.run_standard_evaluation(x, y, bs=batch_size)
    return x_adv.detach().to(x.device, x.dtype)


def official_version() -> str | None:
    try:
        pkg = require_official()
    except IratError:
        return None
    return getattr(pkg, "__version__", "unknown")


def official_settings(version: str, components: list[str] | None) -> dict[str, dict]:
    """The settings the official package runs for a version, or for a custom component list (its
    `custom` version keeps the constructor's defaults: 5 restarts for APGD-CE/DLR and FAB, as `plus`)."""
    from ..attacks.autoattack import component_settings, resolve_version

    names = resolve_version(version, components)
    table = component_settings("plus" if components else version)
    return {c: table[c] for c in names}
