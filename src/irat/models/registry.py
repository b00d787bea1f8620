"""Model registry: `@register("name")` factories taking (in_channels, num_classes, input_size)."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from ..errors import ConfigError

Factory = Callable[[int, int, int], nn.Module]
_MODELS: dict[str, Factory] = {}
_ALIASES: dict[str, str] = {}
_DOCS: dict[str, str] = {}


def register(name: str, *aliases: str, doc: str = "") -> Callable[[Factory], Factory]:
    def deco(fn: Factory) -> Factory:
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
