"""The training loop's pluggable decisions (docs/design.md), each a registry of named parts:

    radius    (RADII)        fixed ε, MWPB's per-example ε_i                       — radius.py
    objective (OBJECTIVES)   its training attack, per-example terms, weight rule — objectives.py
    weighting (WEIGHTINGS)   GAIR, MAIL, WMMR, BiLAW (+ non-parametric), none      — weighting.py, bilaw.py

A method name (`irat methods`) is a preset that picks one of each. A new part is one class,
registered with `register_objective` / `register_weighting` / `register_radius` (docs/extending.md). A
built-in one is one file in this folder: every module here is imported (and so registers its parts) when
the package is; its options, checks and state live in the class.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..attacks.checks import frozen_bn_stats
from ..config import Config, use_part_lookup
from ..errors import ConfigError
from ..registry import Registry
from .base import Batch, Part, RunContext, Step, option_fields, options_of
from .objectives import OBJECTIVES, Objective, make_objective, register_objective
from .radius import RADII, Radius, register_radius
from .weighting import WEIGHTINGS, Weighting, register_weighting

SECTIONS: dict[str, Registry[Any]] = {"objective": OBJECTIVES, "weighting": WEIGHTINGS, "radius": RADII}
for _module in pkgutil.iter_modules(__path__):  # every part file registers its parts (bilaw.py, a new one, ...)
    importlib.import_module(f"{__name__}.{_module.name}")


@dataclass
class Parts:
    """One run's parts, built from its config."""

    radius: Radius
    objective: Objective
    weighting: Weighting
    targets: list[str]  # the terms the weights multiply

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k).state_dict() for k in SECTIONS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in SECTIONS:
            if state.get(k):
                getattr(self, k).load_state_dict(state[k])

    def loss(self, batch: Batch, forward: Any, *, scale: torch.Tensor | None = None) -> tuple[torch.Tensor, Batch]:
        """The training loss of a crafted batch under `forward` — the model, AWP's proxy, BiLAW's look-ahead θ̃ —
        and the batch with that forward's logits and raw weights filled in (the caller's batch is left as it is):
        the objective's terms, each weighted by the normalised weights where its role is the one the scheme
        weights (`targets`); `scale` gives those weights directly (a look-ahead's ω)."""
        objective, weighting = self.objective, self.weighting
        assert batch.x_adv is not None, "the objective's craft() fills batch.x_adv"
        b = dataclasses.replace(batch, forward=forward)
        b.logits_adv = forward(batch.x_adv)
        b.logits_nat = forward(batch.x) if objective.needs_natural else None
        if batch.x_adv2 is not None:
            frozen = isinstance(forward, nn.Module) and objective.freeze_bn_on_second
            with frozen_bn_stats(forward, frozen) if frozen else contextlib.nullcontext():
                b.logits_adv2 = forward(batch.x_adv2)
        terms = objective.terms(b)
        weights = None
        if scale is not None:
            weights = {t: scale for t in self.targets}
        elif batch.weights_active:
            if b.w_raw is None:
                b.w_raw = weighting.raw(b)
            omega = weighting.normalize(b.w_raw)
            weights = {t: omega for t in self.targets}
        return objective.combine(terms, weights), b

    def epoch_metrics(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for k in SECTIONS:
            row.update(getattr(self, k).epoch_metrics())
        return row


def check_parts(cfg: Config) -> None:
    """Every part's own check, then the rules between parts (each stated by the parts' declarations)."""
    obj, w, r = OBJECTIVES.get(cfg.objective.name), WEIGHTINGS.get(cfg.weighting.name), RADII.get(cfg.radius.name)
    for section, registry in SECTIONS.items():  # every part's options, typed (also those of parts not chosen)
        for name in getattr(cfg, section).options:
            if name not in registry:
                raise ConfigError(
                    f"{section}.{name}: no {registry.kind} named {name!r} is known (known: "
                    f"{', '.join(registry.names())}); load its plug-in with --plugin"
                )
            cls = registry.get(name)
            if cls.options_key and cls.options_key != name:
                raise ConfigError(
                    f"{section}.{name}: {name} reads its options as {section}.{cls.options_key}.KEY (shared by "
                    f"its family); set {section}.{cls.options_key}.* instead"
                )
            options_of(cls, getattr(cfg, section), section)
    for cls in (obj, w, r):
        _check_record_signature(cls)
        cls.check(cfg)
    if not obj.runs_attack and (not w.neutral or not r.neutral or cfg.awp.enabled):
        raise ConfigError(f"objective {obj.name} runs no attack: it takes no weighting, per-example radius or AWP")
    if obj.own_attack:
        what = f"objective {obj.name} brings its own attack"
        if not r.neutral:
            raise ConfigError(f"{what}: it takes no per-example radius scheme (radius.name must be fixed)")
        if w.needs(cfg):
            raise ConfigError(
                f"{what}: weighting {w.name} needs the PGD attack's per-step records or its "
                f"adversarial examples; use a scheme that does not (e.g. mail with pm-adv, wmmr)"
            )


_RECORD_METHODS = ("terms", "raw", "craft")  # the methods that take the one batch record


def _check_record_signature(cls: type[Part]) -> None:
    """A part written for earlier releases' signatures (`terms(logits_nat, logits_adv, y, ...)`, `raw(model, *, info, x,
    ...)`, `craft(step) -> Crafted`) is named with the one change it needs, before any work."""
    for method in _RECORD_METHODS:
        fn = getattr(cls, method, None)
        if fn is None or not callable(fn):
            continue
        params = list(inspect.signature(fn).parameters.values())[1:]  # after self
        empty, variadic = inspect.Parameter.empty, (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        required = [p for p in params if p.default is empty and p.kind not in variadic]
        if len(required) > 1 or any(p.kind is inspect.Parameter.KEYWORD_ONLY for p in required):
            raise ConfigError(
                f"{cls.section} {cls.name}: {method}() takes ({', '.join(p.name for p in params)}); irat passes one "
                f"batch record instead — write {method}(self, batch) and read batch.logits_adv, batch.y, batch.info, "
                f"... (docs/extending.md)"
            )


def _lookup(section: str, name: str) -> tuple[str, type] | None:
    """(options key, Options class) of a registered part with options, for configs (`config.use_part_lookup`)."""
    registry = SECTIONS.get(section)
    if registry is None or name not in registry or registry.get(name).Options is None:
        return None
    cls = registry.get(name)
    return cls.options_key or cls.name, cls.Options


use_part_lookup(_lookup)


def is_neutral(section: str, name: str) -> bool:
    """Whether the part named changes nothing (no weighting, the fixed radius): left out of a run's name."""
    registry = SECTIONS[section]
    return name in registry and registry.get(name).neutral


def idle_parts(cfg: Config) -> list[str]:
    """What would stay switched off for the whole run (a burn-in or first phase as long as the run; AWP's
    warm-up too): said before training, never silently."""
    out = [
        r for section, registry in SECTIONS.items() if (r := registry.get(getattr(cfg, section).name).idle_reason(cfg))
    ]
    if cfg.awp.enabled and cfg.awp.warmup >= cfg.epochs:
        out.append(
            f"awp: the warm-up ({cfg.awp.warmup} epochs) covers the whole run of {cfg.epochs}: no weight "
            f"perturbation is applied"
        )
    return out


def build_parts(cfg: Config, ctx: RunContext) -> Parts:
    """The run's radius, objective and weighting, and the terms the weights multiply."""
    objective = OBJECTIVES.get(cfg.objective.name)(cfg, ctx)
    weighting = WEIGHTINGS.get(cfg.weighting.name)(cfg, ctx)
    radius = RADII.get(cfg.radius.name)(cfg, ctx)
    targets = list(cfg.weighting.apply_to) if cfg.weighting.apply_to else objective.weight_targets(weighting)
    return Parts(radius, objective, weighting, targets)


def part_table() -> list[dict[str, str]]:
    """Every registered part: section, name, the first line of its docstring, its options."""
    rows = []
    for section, registry in SECTIONS.items():
        for name in registry:
            cls = registry.get(name)
            doc = (cls.__doc__ or "").strip().splitlines()
            defaults = dataclasses.asdict(cls.Options()) if cls.Options is not None else {}
            opts = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
            if opts and cls.options_key and cls.options_key != name:
                opts = f"{section}.{cls.options_key}.*: {opts}"
            rows.append({"section": section, "name": name, "what": doc[0] if doc else "", "options": opts or "–"})
    return rows


def weight_targets(objective: str, scheme: str) -> list[str]:
    """Where an instance weight applies for an objective and a scheme, by name (each paper's rule)."""
    return make_objective(objective).weight_targets(WEIGHTINGS.get(scheme))


__all__ = [
    "Batch",
    "OBJECTIVES",
    "Objective",
    "Part",
    "Parts",
    "RADII",
    "Radius",
    "RunContext",
    "SECTIONS",
    "Step",
    "WEIGHTINGS",
    "Weighting",
    "build_parts",
    "idle_parts",
    "is_neutral",
    "check_parts",
    "make_objective",
    "option_fields",
    "part_table",
    "options_of",
    "register_objective",
    "register_radius",
    "register_weighting",
    "weight_targets",
]
