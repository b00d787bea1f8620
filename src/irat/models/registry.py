"""Model registry: `@register("name")` factories taking (in_channels, num_classes, input_size)."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from ..errors import ConfigError
from ..registry import Registry

Factory = Callable[[int, int, int], nn.Module]
MODELS: Registry[Factory] = Registry("model", "model.arch")  # the one registry idiom, as parts and attacks


def register(name: str, *aliases: str, doc: str = "", replace: bool = False) -> Callable[[Factory], Factory]:
    """Decorator: register a model factory under `name` (and aliases); an existing name — a built-in or
    another plug-in's — is refused unless replace=True, so a plug-in never silently swaps a model."""
    return MODELS.register(name, replace=replace, aliases=aliases, doc=doc)


def canonical(name: str) -> str:
    found = MODELS.resolve(name)
    if found is None:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(available())}")
    return found


def canonical_or_none(name: str) -> str | None:
    """The registered name `name` resolves to, or None if no model has it."""
    return MODELS.resolve(name)


def available() -> list[str]:
    return sorted(MODELS.names()) + sorted(f"{a} (= {n})" for a, n in MODELS.aliases().items())


def describe() -> dict[str, str]:
    return MODELS.describe()


def create_model(name: str, *, in_channels: int = 3, num_classes: int = 10, input_size: int = 32) -> nn.Module:
    """Build a registered model for inputs in [0,1] of the given channels and size; outputs logits."""
    if in_channels < 1 or num_classes < 2 or input_size < 1:
        raise ConfigError(f"bad model shape: {in_channels} channels, {num_classes} classes, size {input_size}")
    model = MODELS.get(canonical(name))(in_channels, num_classes, input_size)
    model.irat_meta = {  # type: ignore[assignment]  # a plain dict beside the module's tensors
        "arch": canonical(name),
        "in_channels": in_channels,
        "num_classes": num_classes,
        "input_size": input_size,
    }
    return model
