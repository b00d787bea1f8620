"""Model registry: `@register("name")` factories taking (in_channels, num_classes, input_size)."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from ..errors import ConfigError

Factory = Callable[[int, int, int], nn.Module]
_MODELS: dict[str, Factory] = {}
_ALIASES: dict[str, str] = {}
_DOCS: dict[str, str] = {}


def register(name: str, *aliases: str, doc: str = "", replace: bool = False) -> Callable[[Factory], Factory]:
    """Decorator: register a model factory under `name` (and aliases); an existing name — a built-in or
    another plug-in's — is refused unless replace=True, so a plug-in never silently swaps a model."""

    def deco(fn: Factory) -> Factory:
        for n in (name, *aliases):
            taken = canonical_or_none(n)
            if taken is not None and _MODELS[taken] is not fn and not replace:
                raise ConfigError(
                    f"a model named {n!r} is already registered ({taken}); choose another name or pass replace=True"
                )
        _MODELS[name] = fn
        _DOCS[name] = doc or (fn.__doc__ or "").strip().splitlines()[0]
        for a in aliases:
            _ALIASES[a] = name
        return fn

    return deco


def canonical(name: str) -> str:
    key = name.lower().replace("_", "-")
    key = _ALIASES.get(key, key).replace("_", "-")
    for n in _MODELS:
        if n.replace("_", "-") == key:
            return n
    raise ConfigError(f"unknown model {name!r}; known: {', '.join(available())}")


def canonical_or_none(name: str) -> str | None:
    """The registered name `name` resolves to, or None if no model has it."""
    try:
        return canonical(name)
    except ConfigError:
        return None


def available() -> list[str]:
    return sorted(_MODELS) + sorted(f"{a} (= {n})" for a, n in _ALIASES.items())


def describe() -> dict[str, str]:
    return dict(sorted(_DOCS.items()))


def create_model(name: str, *, in_channels: int = 3, num_classes: int = 10, input_size: int = 32) -> nn.Module:
    """Build a registered model for inputs in [0,1] of the given channels and size; outputs logits."""
    if in_channels < 1 or num_classes < 2 or input_size < 1:
        raise ConfigError(f"bad model shape: {in_channels} channels, {num_classes} classes, size {input_size}")
    model = _MODELS[canonical(name)](in_channels, num_classes, input_size)
    model.irat_meta = {  # type: ignore[assignment]  # a plain dict beside the module's tensors
        "arch": canonical(name),
        "in_channels": in_channels,
        "num_classes": num_classes,
        "input_size": input_size,
    }
    return model
