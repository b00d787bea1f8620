"""Attacks: the PGD engine (training and evaluation), CW∞, FAT's early-stopped PGD."""
from .checks import attack_mode, check_batch
from .lm_pgd import lm_pgd
from .losses import attack_loss, cw_loss, dlr_loss, kl_per_example
from .pgd import PGDInfo, cw, fat_pgd, pgd, project, random_start

__all__ = ["PGDInfo", "attack_loss", "attack_mode", "check_batch", "cw", "cw_loss", "dlr_loss", "fat_pgd",
           "kl_per_example", "lm_pgd", "pgd", "project", "random_start"]
