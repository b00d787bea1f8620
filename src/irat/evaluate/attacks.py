"""Evaluation attack specs: `natural`, `pgdK` (e.g. pgd20, pgd100), `cw` / `cwK` (METHODS §7)."""
from __future__ import annotations

import re
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn

from ..attacks.lm_pgd import lm_pgd
from ..attacks.pgd import pgd
from ..errors import IratError


@dataclass
class AttackSpec:
    name: str
    kind: str                  # natural | pgd
    steps: int = 0
    loss: str = "ce"
    restarts: int = 1
    start: str = "uniform"
    alpha: float | None = None  # filled from the protocol when None

    def config(self) -> dict:
        return asdict(self)


_CW_DEFAULT_STEPS = 30  # GAIRAT's and MAIL's CW∞ evaluation use 30 PGD steps on the CW loss


def parse_attack(name: str) -> AttackSpec:
    """Parse an attack name: natural, pgdK, cw, cwK."""
    key = name.strip().lower()
    if key in ("natural", "clean", "nat"):
        return AttackSpec("natural", "natural")
    m = re.fullmatch(r"pgd(\d+)", key)
    if m:
        return AttackSpec(key, "pgd", steps=int(m.group(1)))
    m = re.fullmatch(r"lmpgd(\d*)", key)
    if m:
        return AttackSpec(key, "lmpgd", steps=int(m.group(1) or 50), start="none")
    m = re.fullmatch(r"cw(\d*)", key)
    if m:
        return AttackSpec(key, "pgd", steps=int(m.group(1) or _CW_DEFAULT_STEPS), loss="cw")
    raise IratError(f"unknown attack {name!r}; known: natural, pgdK (e.g. pgd20, pgd100), cw, cwK, lmpgdK")


def run_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, *, eps: float, norm: str,
               alpha: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Adversarial inputs for one batch (x itself for `natural`)."""
    if spec.kind == "natural":
        return x
    if spec.kind == "lmpgd":
        return lm_pgd(model, x, y, eps=eps, steps=spec.steps, check_inputs=False)
    return pgd(model, x, y, eps=eps, alpha=spec.alpha or alpha, steps=spec.steps, norm=norm, loss=spec.loss,
               start=spec.start, restarts=spec.restarts, generator=generator, check_inputs=False)
