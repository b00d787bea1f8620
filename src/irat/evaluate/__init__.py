"""Evaluation: attack suites, per-example worst case, bound checks, records."""
from .attacks import AttackSpec, parse_attack
from .core import check_bounds, evaluate, predict

__all__ = ["AttackSpec", "check_bounds", "evaluate", "parse_attack", "predict"]
