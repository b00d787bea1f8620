"""Model registry (docs/methods.md §8). Every model takes [0,1] inputs of any channel count and size."""

from . import resnet, small, wrn  # noqa: F401  (registration side effects)
from .registry import available, canonical, canonical_or_none, create_model, describe, register

__all__ = ["available", "canonical", "canonical_or_none", "create_model", "describe", "register"]
