"""Attacks: the PGD engine (training and evaluation), CW∞, PGD+, FAT's early-stopped PGD, LM-PGD,
APGD(-T), FAB(-T), Square, SPSA and the AutoAttack cascade."""

from .apgd import apgd, apgd_targeted
from .autoattack import autoattack
from .checks import attack_mode, check_batch
from .fab import fab
from .lm_pgd import lm_pgd
from .losses import attack_loss, cw_loss, dlr_loss, kl_per_example
from .pgd import PGDInfo, cw, fat_pgd, pgd, pgd_plus, project, random_start
from .spsa import spsa
from .square import square

__all__ = [
    "PGDInfo",
    "apgd",
    "apgd_targeted",
    "attack_loss",
    "attack_mode",
    "autoattack",
    "check_batch",
    "cw",
    "cw_loss",
    "dlr_loss",
    "fab",
    "fat_pgd",
    "kl_per_example",
    "lm_pgd",
    "pgd",
    "pgd_plus",
    "project",
    "random_start",
    "spsa",
    "square",
]
