"""Evaluation: attack suites, per-example worst case, bound checks, gradient-masking warnings, records."""

from .attacks import AttackSpec, parse_attack
from .core import check_bounds, evaluate, predict, resolve_attacks
from .suites import SUITES

__all__ = ["AttackSpec", "SUITES", "check_bounds", "evaluate", "parse_attack", "predict", "resolve_attacks"]
