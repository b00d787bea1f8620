"""Presets for every row of the papers' result tables, generated from one table here.

`python -m irat.paper_presets` writes `presets/<paper>/<setting>/<row>.yaml`; a test checks that
the committed files match. Each preset names its source (paper, table, row), dataset, model,
threat model, schedule, burn-in, the number of seeds the paper averaged over and its evaluation
suite. Milestones are the epoch numbers the papers write (a drop after that many epochs).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PRESET_DIR = Path(__file__).parent / "presets"


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _cifar(eps="8/255", alpha="2/255"):
    return {"norm": "linf", "eps": eps, "alpha": alpha, "steps": 10}


# ---- MAIL: ResNet-18 lr 0.01 wd 3.5e-3; WRN-32-10 lr 0.1 wd 7e-4; ÷10 at 75, 90; 120 epochs ----
MAIL_RN18 = {
    "model": {"arch": "resnet18"},
    "attack": _cifar(),
    "epochs": 120,
    "batch_size": 128,
    "seeds": 5,
    "eval_suite": "mail",
    "optim": {"lr": 0.01, "momentum": 0.9, "weight_decay": 3.5e-3, "milestones": [75, 90]},
}
MAIL_WRN = _merge(MAIL_RN18, {"model": {"arch": "wrn-32-10"}, "optim": {"lr": 0.1, "weight_decay": 7e-4}})
# MAIL §4.1: weights start "when the learning rate dropped at the first time" (milestone 75: epoch 76, the
# released train.py's 0-based `epoch >= 75`), for every reweighting row; "the initial 74 epochs" counts 0..74.
_FIRST_DROP = {"weighting": {"burn_in": 75}}
MAIL_ROWS = {  # row: (method, extra overrides)
    "at": ("at", {}),
    "trades": ("trades", {}),
    "mart": ("mart", {}),
    "fat": ("fat", {}),
    "gairat": ("gairat", _FIRST_DROP),
    "mail-at": ("mail-at", {}),
    "mail-trades": ("mail-trades", {}),
}
MAIL_T1 = {
    "at-lps": ("gairat", _FIRST_DROP),
    "at-pm-nat": ("mail-at", {"weighting": {"mail": {"margin": "pm-nat"}}}),
    "at-pm-adv": ("mail-at", {}),
    "mart-lps": ("gair-mart", _FIRST_DROP),
    "mart-pm-nat": ("mail-mart", {"weighting": {"mail": {"margin": "pm-nat"}}}),
    "mart-pm-adv": ("mail-mart", {}),
    "trades-lps": ("gair-trades", _FIRST_DROP),
    "trades-pm-nat": ("mail-trades", {"weighting": {"mail": {"margin": "pm-nat"}}}),
    "trades-pm-adv": ("mail-trades", {}),
}

# The papers' own numbers for their rows: mean and standard deviation over the paper's trials, by the
# name of the attack in irat's suite that reproduces each column (MAIL's: natural, PGD-100, APGD-CE, CW-30, AA).
_MAIL_COLS = ("natural", "pgd100", "apgd-ce", "cw30", "aa")
PAPER_NUMBERS: dict[str, dict[str, Any]] = {
    "mail/cifar10-resnet18": {
        "table": "MAIL Table 2 (CIFAR-10, ResNet-18; 5 trials)",
        "columns": "NAT, PGD-100, APGD-CE, CW-30, AA (the mail suite)",
        "rows": {
            "at": [(84.86, 0.17), (48.91, 0.14), (47.70, 0.06), (51.61, 0.15), (44.90, 0.53)],
            "trades": [(84.00, 0.23), (52.66, 0.16), (52.37, 0.21), (52.30, 0.06), (48.10, 0.26)],
            "mart": [(82.28, 0.60), (53.50, 0.46), (52.73, 0.57), (51.59, 0.16), (48.40, 0.14)],
            "fat": [(87.97, 0.15), (46.78, 0.12), (46.68, 0.16), (49.92, 0.26), (43.90, 0.82)],
            "gairat": [(83.22, 0.06), (54.81, 0.15), (50.95, 0.49), (39.86, 0.08), (33.35, 0.57)],
            "mail-at": [(83.15, 0.46), (55.25, 0.23), (53.20, 0.38), (47.81, 0.11), (44.10, 0.21)],
            "mail-trades": [(81.84, 0.18), (53.68, 0.14), (52.92, 0.62), (52.89, 0.31), (50.03, 0.51)],
        },
    },
    "mail/cifar10-wrn32": {
        "table": "MAIL Table 3 (CIFAR-10, WRN-32-10; 5 trials)",
        "columns": "NAT, PGD-100, APGD-CE, CW-30, AA (the mail suite)",
        "rows": {
            "at": [(87.80, 0.13), (49.43, 0.29), (49.12, 0.26), (53.38, 0.05), (48.46, 0.46)],
            "trades": [(86.36, 0.52), (54.88, 0.39), (55.02, 0.27), (56.18, 0.16), (53.40, 0.37)],
            "mart": [(84.76, 0.34), (55.61, 0.51), (55.40, 0.37), (54.72, 0.20), (51.40, 0.05)],
            "fat": [(89.70, 0.17), (48.79, 0.18), (48.72, 0.36), (52.39, 0.89), (47.48, 0.30)],
            "gairat": [(86.30, 0.61), (58.74, 0.46), (55.64, 0.36), (45.57, 0.18), (40.30, 0.16)],
            "mail-at": [(84.83, 0.39), (58.86, 0.25), (55.82, 0.31), (51.26, 0.20), (47.10, 0.22)],
            "mail-trades": [(84.00, 0.15), (57.40, 0.96), (56.96, 0.19), (56.20, 0.30), (53.90, 0.22)],
        },
    },
}


# GAIRAT reports the median and std of 5 trials, at the best and at the last checkpoint: natural, PGD-20, PGD+.
_GAIRAT_COLS = ("natural", "pgd20", "pgdplus")
PAPER_NUMBERS["gairat/cifar10-wrn32"] = {
    "table": "GAIRAT Table 1 (CIFAR-10, WRN-32-10; median ± std of 5 trials)",
    "columns": "Natural, PGD-20, PGD+ (the gairat suite), best and last checkpoints",
    "cols": _GAIRAT_COLS,
    "stat": "median",
    "rows": {
        "at": {
            "best": [(86.92, 0.24), (51.96, 0.21), (51.28, 0.23)],
            "last": [(86.62, 0.22), (46.73, 0.08), (46.08, 0.07)],
        },
        "fat": {
            "best": [(89.16, 0.15), (51.24, 0.14), (46.14, 0.19)],
            "last": [(88.18, 0.19), (46.79, 0.34), (45.80, 0.16)],
        },
        "gairat": {
            "best": [(85.75, 0.23), (57.81, 0.54), (55.61, 0.61)],
            "last": [(85.49, 0.25), (53.76, 0.49), (50.32, 0.48)],
        },
        "gair-fat": {
            "best": [(88.59, 0.12), (56.21, 0.52), (53.50, 0.60)],
            "last": [(88.44, 0.10), (50.64, 0.56), (47.51, 0.51)],
        },
    },
}
PAPER_NUMBERS["gairat/cifar10-wrn34"] = {
    "table": "GAIRAT Table 2 (CIFAR-10, WRN-34-10; median ± std of 5 trials)",
    "columns": "Natural, PGD-20, PGD+ (the gairat suite), best and last checkpoints",
    "cols": _GAIRAT_COLS,
    "stat": "median",
    "rows": {
        "trades": {
            "best": [(84.88, 0.35), (56.43, 0.24), (54.33, 0.38)],
            "last": [(85.66, 0.33), (53.31, 0.25), (50.11, 0.25)],
        },
        "gair-trades": {
            "best": [(86.99, 0.31), (63.32, 0.50), (56.77, 0.87)],
            "last": [(86.86, 0.26), (60.65, 1.00), (52.70, 0.93)],
        },
    },
}


# MWPB gives no standard deviations ("insignificant (< 0.3)" over three runs): std None.
PAPER_NUMBERS["mwpb/cifar10-rn18"] = {
    "table": "MWPB Table 1 (CIFAR-10, ResNet-18; 3 runs)",
    "columns": "the mwpb suite: natural, pgd20, cw20, aa",
    "cols": ("natural", "pgd20", "cw20", "aa"),
    "trials": 3,
    "rows": {
        "at": [(84.1, None), (52.72, None), (51.8, None), (47.95, None)],
        "mwpb-at": [(83.78, None), (56.25, None), (53.02, None), (49.96, None)],
        "mart": [(80.32, None), (55.15, None), (49.35, None), (47.63, None)],
        "mwpb-mart": [(82.23, None), (57.1, None), (52.57, None), (49.53, None)],
        "trades": [(82.65, None), (52.82, None), (51.82, None), (48.96, None)],
        "mwpb-trades": [(82.89, None), (55.53, None), (53.04, None), (50.73, None)],
    },
}
PAPER_NUMBERS["mwpb/cifar10-wrn34"] = {
    "table": "MWPB Table 2 (CIFAR-10, WRN-34-10; 3 runs)",
    "columns": "the mwpb suite: natural, pgd20, cw20, aa, square, spsa",
    "cols": ("natural", "pgd20", "cw20", "aa", "square", "spsa"),
    "trials": 3,
    "rows": {
        "at": [(86.21, None), (56.12, None), (54.95, None), (51.92, None), (60.12, None), (61.05, None)],
        "mwpb-at": [(86.82, None), (59.18, None), (57.36, None), (54.16, None), (61.15, None), (63.07, None)],
        "mart": [(84.17, None), (58.1, None), (54.51, None), (51.11, None), (58.74, None), (58.91, None)],
        "mwpb-mart": [(85.7, None), (60.65, None), (56.78, None), (53.8, None), (60.83, None), (62.02, None)],
        "trades": [(84.7, None), (56.3, None), (54.51, None), (53.06, None), (59.16, None), (61.15, None)],
        "mwpb-trades": [(86.09, None), (59.1, None), (57.04, None), (54.38, None), (60.77, None), (62.19, None)],
    },
}
PAPER_NUMBERS["mwpb/svhn-rn18"] = {
    "table": "MWPB Table 3 (SVHN, ResNet-18; 3 runs)",
    "columns": "the mwpb suite: natural, pgd20, cw20, aa",
    "cols": ("natural", "pgd20", "cw20", "aa"),
    "trials": 3,
    "rows": {
        "at": [(92.67, None), (55.67, None), (52.92, None), (45.94, None)],
        "mwpb-at": [(91.45, None), (61.81, None), (55.89, None), (49.73, None)],
        "mart": [(91.59, None), (58.78, None), (52.79, None), (43.6, None)],
        "mwpb-mart": [(91.51, None), (61.87, None), (55.11, None), (48.45, None)],
        "trades": [(90.65, None), (57.27, None), (53.59, None), (46.45, None)],
        "mwpb-trades": [(90.3, None), (60.25, None), (55.03, None), (50.11, None)],
    },
}
PAPER_NUMBERS["mwpb/tiny-imagenet-rn18"] = {
    "table": "MWPB Table 4 (Tiny ImageNet, ResNet-18; 3 runs)",
    "columns": "the mwpb suite: natural, pgd20, cw20, aa",
    "cols": ("natural", "pgd20", "cw20", "aa"),
    "trials": 3,
    "rows": {
        "at": [(48.83, None), (23.96, None), (21.85, None), (17.91, None)],
        "mwpb-at": [(51.21, None), (25.07, None), (23.11, None), (19.75, None)],
        "mart": [(46.01, None), (26.03, None), (21.78, None), (19.18, None)],
        "mwpb-mart": [(47.39, None), (27.15, None), (22.89, None), (20.51, None)],
        "trades": [(49.11, None), (22.82, None), (17.79, None), (16.82, None)],
        "mwpb-trades": [(52.12, None), (24.6, None), (19.85, None), (18.15, None)],
    },
}


# MAIL Tables 1 and 4: NAT, PGD-100, AA (mean ± std of 5 trials).
_MAIL_NPA = ("natural", "pgd100", "aa")
PAPER_NUMBERS["mail/cifar10-resnet18-pm"] = {
    "table": "MAIL Table 1 (CIFAR-10, ResNet-18; LPS vs PM; 5 trials)",
    "columns": "NAT, PGD-100, AA (the mail suite)",
    "cols": _MAIL_NPA,
    "rows": {
        "at-lps": [(82.26, 0.6), (54.14, 0.15), (36.32, 0.57)],
        "at-pm-nat": [(82.5, 0.2), (55.0, 0.32), (44.25, 0.45)],
        "at-pm-adv": [(83.15, 0.46), (55.25, 0.23), (44.1, 0.21)],
        "mart-lps": [(84.45, 0.17), (53.16, 0.26), (46.0, 0.26)],
        "mart-pm-nat": [(83.75, 0.09), (53.63, 0.21), (46.7, 0.1)],
        "mart-pm-adv": [(84.12, 0.46), (53.65, 0.23), (47.2, 0.21)],
        "trades-lps": [(78.52, 0.2), (51.67, 0.54), (44.4, 0.2)],
        "trades-pm-nat": [(82.71, 0.52), (52.37, 0.65), (49.52, 0.11)],
        "trades-pm-adv": [(80.49, 0.18), (53.67, 0.14), (49.54, 0.51)],
    },
}
PAPER_NUMBERS["mail/svhn-resnet18"] = {
    "table": "MAIL Table 4 (SVHN, ResNet-18; 5 trials)",
    "columns": "NAT, PGD-100, AA (the mail suite)",
    "cols": _MAIL_NPA,
    "rows": {
        "at": [(93.55, 0.65), (54.76, 0.3), (46.58, 0.46)],
        "trades": [(93.65, 0.29), (55.12, 0.68), (45.74, 0.31)],
        "mart": [(92.57, 0.14), (55.45, 0.26), (43.52, 0.43)],
        "fat": [(93.68, 0.31), (53.81, 0.77), (41.68, 0.49)],
        "gairat": [(90.47, 0.77), (64.67, 0.26), (37.0, 0.3)],
        "mail-at": [(93.68, 0.25), (65.54, 0.16), (41.12, 0.3)],
        "mail-trades": [(89.68, 0.19), (58.4, 0.21), (49.1, 0.22)],
    },
}
PAPER_NUMBERS["mail/cifar100-resnet18"] = {
    "table": "MAIL Table 4 (CIFAR-100, ResNet-18; 5 trials)",
    "columns": "NAT, PGD-100, AA (the mail suite)",
    "cols": _MAIL_NPA,
    "rows": {
        "at": [(60.13, 0.39), (28.69, 0.24), (24.76, 0.25)],
        "trades": [(60.73, 0.33), (29.83, 0.25), (24.9, 0.33)],
        "mart": [(54.08, 0.6), (29.94, 0.21), (25.3, 0.5)],
        "fat": [(66.74, 0.28), (23.25, 0.55), (20.88, 0.13)],
        "gairat": [(58.43, 0.28), (25.74, 0.51), (17.54, 0.33)],
        "mail-at": [(60.74, 0.15), (27.62, 0.27), (22.44, 0.53)],
        "mail-trades": [(60.13, 0.25), (30.28, 0.19), (24.8, 0.25)],
    },
}


PAPER_NUMBERS["mwpb/cifar10-wrn34-baselines"] = {
    "table": "MWPB Table 5 (CIFAR-10, WRN-34-10; 3 runs)",
    "columns": "the mwpb suite: natural, pgd20, cw20, aa, spsa",
    "cols": ("natural", "pgd20", "cw20", "aa", "spsa"),
    "trials": 3,
    "rows": {
        "mma": [(86.29, None), (57.12, None), (57.59, None), (44.52, None), (59.87, None)],
        "wat": [(85.13, None), (56.63, None), (53.97, None), (50.01, None), (60.75, None)],
        "mail": [(86.81, None), (60.49, None), (51.45, None), (47.11, None), (59.25, None)],
        "mwpb-at": [(86.85, None), (59.18, None), (57.36, None), (54.16, None), (63.07, None)],
        "gairat": [(85.41, None), (60.76, None), (45.02, None), (42.29, None), (52.32, None)],
        "awp": [(85.36, None), (58.04, None), (55.92, None), (53.92, None), (62.57, None)],
        "mwpb-awp": [(87.61, None), (61.56, None), (58.54, None), (56.02, None), (64.11, None)],
        "st-at": [(84.91, None), (57.52, None), (55.11, None), (53.54, None), (61.34, None)],
    },
}


# Ablation tables with numbers (BiLAW Tables 6-8: Clean, PGD-20; MWPB Table 8: Natural, PGD-20, AA).
PAPER_NUMBERS["bilaw/cifar10-wrn32-capacity"] = {
    "table": "BiLAW Table 6 (CIFAR-10, weight-net capacity)",
    "columns": "Clean, PGD-20",
    "cols": ("natural", "pgd20"),
    "trials": 1,
    "rows": {
        "h128": [(86.1, None), (58.9, None)],
        "h64": [(83.6, None), (57.4, None)],
        "h64-64": [(85.8, None), (58.6, None)],
        "h256": [(85.7, None), (57.7, None)],
    },
}
PAPER_NUMBERS["bilaw/cifar10-wrn32-trades-beta"] = {
    "table": "BiLAW Table 7 (CIFAR-10, BiLAW-TRADES 1/lambda)",
    "columns": "Clean, PGD-20",
    "cols": ("natural", "pgd20"),
    "trials": 1,
    "rows": {
        "beta-6": [(86.1, None), (58.9, None)],
        "beta-1": [(87.4, None), (52.5, None)],
        "beta-5": [(86.9, None), (57.6, None)],
        "beta-10": [(83.8, None), (57.9, None)],
    },
}
PAPER_NUMBERS["bilaw/cifar10-wrn32-input"] = {
    "table": "BiLAW Table 8 (CIFAR-10, weight-net input)",
    "columns": "Clean, PGD-20",
    "cols": ("natural", "pgd20"),
    "trials": 1,
    "rows": {
        "multiclass-margin": [(86.1, None), (58.9, None)],
        "margin": [(84.1, None), (54.6, None)],
        "adv-loss": [(86.9, None), (57.9, None)],
        "loss-diff": [(85.4, None), (53.8, None)],
    },
}
PAPER_NUMBERS["mwpb/cifar10-wrn34-alpha"] = {
    "table": "MWPB Table 8 (CIFAR-10, WRN-34-10, MWPB-AT alpha; 3 runs)",
    "columns": "Natural, PGD-20, AA",
    "cols": ("natural", "pgd20", "aa"),
    "trials": 3,
    "rows": {
        "alpha-0.1": [(88.93, None), (56.25, None), (51.67, None)],
        "alpha-0.2": [(88.56, None), (56.85, None), (51.88, None)],
        "alpha-0.3": [(88.18, None), (57.8, None), (52.58, None)],
        "alpha-0.4": [(87.72, None), (58.11, None), (52.85, None)],
        "alpha-0.5": [(87.4, None), (58.78, None), (53.64, None)],
        "alpha-0.58": [(86.82, None), (59.18, None), (54.16, None)],
        "alpha-0.7": [(85.55, None), (59.12, None), (54.14, None)],
        "alpha-0.85": [(85.11, None), (59.39, None), (54.02, None)],
        "alpha-1.2": [(83.75, None), (59.69, None), (53.5, None)],
    },
}


# BiLAW: one run per cell, no spread; columns Clean, PGD-20, AA on the first 1000 test examples (the bilaw suite).
_BILAW_COLS = ("natural", "pgd20", "aa")
PAPER_NUMBERS["bilaw/mnist-tinycnn-linf"] = {
    "table": "BiLAW Table 1 (MNIST, tinycnn-linf)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "plain": [(99.1, None), (21.7, None), (9.1, None)],
        "at": [(99.0, None), (95.9, None), (93.7, None)],
        "gairat": [(99.1, None), (96.7, None), (91.1, None)],
        "wmmr": [(98.8, None), (94.3, None), (90.2, None)],
        "mail": [(98.6, None), (95.1, None), (91.4, None)],
        "bilaw": [(99.2, None), (96.7, None), (91.7, None)],
    },
}
PAPER_NUMBERS["bilaw/mnist-tinycnn-l2"] = {
    "table": "BiLAW Table 1 (MNIST, tinycnn-l2)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "plain": [(99.2, None), (96.9, None), (36.4, None)],
        "at": [(99.1, None), (98.2, None), (96.1, None)],
        "gairat": [(99.2, None), (98.8, None), (90.3, None)],
        "wmmr": [(99.0, None), (98.5, None), (91.7, None)],
        "mail": [(98.7, None), (98.6, None), (95.4, None)],
        "bilaw": [(99.2, None), (98.9, None), (95.4, None)],
    },
}
PAPER_NUMBERS["bilaw/mnist-fc1-linf"] = {
    "table": "BiLAW Table 1 (MNIST, fc1-linf)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "plain": [(98.4, None), (1.7, None), (0.0, None)],
        "at": [(98.4, None), (92.9, None), (90.4, None)],
        "gairat": [(99.0, None), (93.2, None), (89.7, None)],
        "wmmr": [(98.9, None), (92.8, None), (89.4, None)],
        "mail": [(98.4, None), (93.1, None), (91.3, None)],
        "bilaw": [(99.1, None), (93.1, None), (91.6, None)],
    },
}
PAPER_NUMBERS["bilaw/mnist-fc1-l2"] = {
    "table": "BiLAW Table 1 (MNIST, fc1-l2)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "plain": [(98.3, None), (90.3, None), (16.1, None)],
        "at": [(8.8, None), (97.4, None), (95.3, None)],
        "gairat": [(98.8, None), (97.6, None), (89.2, None)],
        "wmmr": [(98.2, None), (97.2, None), (89.8, None)],
        "mail": [(98.1, None), (97.4, None), (94.2, None)],
        "bilaw": [(98.6, None), (97.6, None), (94.4, None)],
    },
}
PAPER_NUMBERS["bilaw/fmnist-tinycnn-linf"] = {
    "table": "BiLAW Table 1 (F-MNIST, tinycnn-linf)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "plain": [(89.6, None), (1.5, None), (0.0, None)],
        "at": [(86.4, None), (70.1, None), (68.3, None)],
        "gairat": [(86.4, None), (77.6, None), (64.3, None)],
        "wmmr": [(86.2, None), (77.3, None), (64.1, None)],
        "mail": [(86.4, None), (76.9, None), (68.6, None)],
        "bilaw": [(86.6, None), (77.4, None), (68.8, None)],
    },
}
PAPER_NUMBERS["bilaw/fmnist-tinycnn-l2"] = {
    "table": "BiLAW Table 1 (F-MNIST, tinycnn-l2)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "plain": [(89.7, None), (42.9, None), (0.0, None)],
        "at": [(91.9, None), (79.6, None), (77.9, None)],
        "gairat": [(92.3, None), (81.1, None), (70.3, None)],
        "wmmr": [(92.1, None), (80.6, None), (71.4, None)],
        "mail": [(92.2, None), (80.5, None), (76.2, None)],
        "bilaw": [(92.4, None), (81.3, None), (76.6, None)],
    },
}
PAPER_NUMBERS["bilaw/fmnist-fc1-linf"] = {
    "table": "BiLAW Table 1 (F-MNIST, fc1-linf)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "plain": [(98.5, None), (0.0, None), (0.0, None)],
        "at": [(87.0, None), (68.7, None), (66.3, None)],
        "gairat": [(87.1, None), (70.2, None), (61.4, None)],
        "wmmr": [(86.9, None), (68.4, None), (61.3, None)],
        "mail": [(90.1, None), (69.3, None), (66.4, None)],
        "bilaw": [(87.3, None), (70.6, None), (66.7, None)],
    },
}
PAPER_NUMBERS["bilaw/fmnist-fc1-l2"] = {
    "table": "BiLAW Table 1 (F-MNIST, fc1-l2)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "plain": [(89.3, None), (57.2, None), (0.0, None)],
        "at": [(89.8, None), (80.1, None), (76.0, None)],
        "gairat": [(91.1, None), (81.0, None), (70.4, None)],
        "wmmr": [(91.1, None), (78.4, None), (70.9, None)],
        "mail": [(90.6, None), (79.3, None), (75.9, None)],
        "bilaw": [(91.4, None), (80.9, None), (76.1, None)],
    },
}
PAPER_NUMBERS["bilaw/cifar10-smallcnn-linf2"] = {
    "table": "BiLAW Table 2 (CIFAR-10, smallcnn-linf2)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "gairat": [(79.0, None), (54.7, None), (48.1, None)],
        "wmmr": [(78.7, None), (58.9, None), (51.2, None)],
        "mail": [(76.8, None), (64.3, None), (59.2, None)],
        "at": [(78.7, None), (58.7, None), (56.6, None)],
        "trades": [(79.2, None), (58.9, None), (56.8, None)],
        "non-parametric": [(79.7, None), (60.0, None), (47.3, None)],
        "bilaw": [(79.7, None), (63.6, None), (56.7, None)],
        "bilaw-trades": [(79.1, None), (64.8, None), (61.5, None)],
    },
}
PAPER_NUMBERS["bilaw/cifar10-smallcnn-linf8"] = {
    "table": "BiLAW Table 2 (CIFAR-10, smallcnn-linf8)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "gairat": [(79.0, None), (55.6, None), (40.7, None)],
        "wmmr": [(81.7, None), (49.1, None), (39.1, None)],
        "mail": [(81.9, None), (53.3, None), (40.6, None)],
        "at": [(79.6, None), (45.6, None), (42.9, None)],
        "trades": [(78.9, None), (54.8, None), (51.7, None)],
        "non-parametric": [(81.3, None), (52.2, None), (40.6, None)],
        "bilaw": [(80.4, None), (55.4, None), (45.3, None)],
        "bilaw-trades": [(80.2, None), (56.2, None), (52.6, None)],
    },
}
PAPER_NUMBERS["bilaw/cifar10-wrn32-linf2"] = {
    "table": "BiLAW Table 2 (CIFAR-10, wrn32-linf2)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "gairat": [(86.4, None), (73.6, None), (63.1, None)],
        "wmmr": [(85.9, None), (70.9, None), (67.4, None)],
        "mail": [(84.3, None), (74.1, None), (73.7, None)],
        "at": [(85.9, None), (71.3, None), (69.5, None)],
        "trades": [(84.6, None), (73.9, None), (73.1, None)],
        "non-parametric": [(86.4, None), (73.7, None), (62.3, None)],
        "bilaw": [(87.1, None), (74.2, None), (71.3, None)],
        "bilaw-trades": [(86.2, None), (74.8, None), (74.2, None)],
    },
}
PAPER_NUMBERS["bilaw/cifar10-wrn32-linf8"] = {
    "table": "BiLAW Table 2 (CIFAR-10, wrn32-linf8)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "gairat": [(84.7, None), (56.8, None), (43.4, None)],
        "wmmr": [(80.6, None), (49.5, None), (40.6, None)],
        "mail": [(83.2, None), (53.7, None), (52.0, None)],
        "at": [(85.9, None), (52.0, None), (48.0, None)],
        "trades": [(83.1, None), (53.9, None), (52.1, None)],
        "non-parametric": [(86.6, None), (52.8, None), (42.9, None)],
        "bilaw": [(87.4, None), (58.6, None), (51.4, None)],
        "bilaw-trades": [(86.1, None), (58.9, None), (53.6, None)],
    },
}
PAPER_NUMBERS["bilaw/cifar100-wrn32-linf8"] = {
    "table": "BiLAW Table 3 (CIFAR-100, WRN-32-10, linf 0.031)",
    "columns": "Clean, PGD-20, AA on 1000 test examples (the bilaw suite)",
    "cols": _BILAW_COLS,
    "trials": 1,
    "rows": {
        "bilaw-trades": [(62.8, None), (31.4, None), (27.2, None)],
        "at": [(57.9, None), (28.9, None), (24.7, None)],
        "trades": [(62.4, None), (25.3, None), (22.2, None)],
    },
}


def paper_entry(name: str) -> dict[str, Any] | None:
    """The paper's numbers for a preset row, as stored in its YAML (`paper:`): per checkpoint (`any` where
    the paper does not say), per suite column, mean (or median) and std; None if the paper has none."""
    setting, _, row = name.rpartition("/")
    table = PAPER_NUMBERS.get(setting)
    if table is None or row not in table["rows"]:
        return None
    cols = table.get("cols", _MAIL_COLS)
    data = table["rows"][row]
    by_ckpt = data if isinstance(data, dict) else {"any": data}
    results = {ck: {c: {"mean": m, "std": sd} for c, (m, sd) in zip(cols, vals)} for ck, vals in by_ckpt.items()}
    return {
        "table": table["table"],
        "columns": table["columns"],
        "trials": table.get("trials", 5),
        "stat": table.get("stat", "mean"),
        "results": results,
    }


# ---- GAIRAT ----
GAIRAT_WRN32 = {
    "model": {"arch": "wrn-32-10"},
    "data": {"dataset": "cifar10"},
    "attack": _cifar("0.031", "0.007"),
    "epochs": 120,
    "batch_size": 128,
    "seeds": 5,
    "eval_suite": "gairat",
    "optim": {
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 2e-4,
        "milestones": [60, 90, 110],
        "milestone_lrs": [0.01, 0.001, 0.0005],
    },
}
_FAT_GAIR_TAU = {"objective": {"fat": {"tau": [[0, 0], [40, 3], [70, 6]]}}}
GAIRAT_T1 = {
    "at": ("at", {}),
    "fat": ("fat", _FAT_GAIR_TAU),
    "gairat": ("gairat", {"weighting": {"burn_in": 60, "gair": {"lam": 0.0}}}),
    "gair-fat": ("gair-fat", {"weighting": {"burn_in": 60, "gair": {"lam": 0.0}}}),
}
GAIRAT_WRN34 = _merge(
    GAIRAT_WRN32,
    {"model": {"arch": "wrn-34-10"}, "epochs": 100, "optim": {"milestones": [75, 90], "milestone_lrs": [0.01, 0.001]}},
)
GAIRAT_T2 = {
    "trades": ("trades", {}),
    "gair-trades": ("gair-trades", {"weighting": {"burn_in": 75, "gair": {"lam": -1.0}}}),
}


# ---- MWPB: 110 epochs, ÷10 at 80, 90; radii from epoch 81 ----
def _mwpb(arch: str, dataset: str, lr: float, wd: float) -> dict:
    return {
        "model": {"arch": arch},
        "data": {"dataset": dataset},
        "attack": _cifar(),
        "epochs": 110,
        "batch_size": 128,
        "seeds": 3,
        "eval_suite": "mwpb",
        "optim": {"lr": lr, "momentum": 0.9, "weight_decay": wd, "milestones": [80, 90]},
    }  # MWPB's radii from epoch 81: radius.mwpb.phase1_epochs' default (80)


def _mwpb_rows(a_at: float, a_trades: float, a_mart: float, mart_beta: float) -> dict:
    return {
        "at": ("at", {}),
        "mwpb-at": ("mwpb-at", {"radius": {"mwpb": {"alpha": a_at}}}),
        "mart": ("mart", {"objective": {"beta": mart_beta}}),
        "mwpb-mart": ("mwpb-mart", {"radius": {"mwpb": {"alpha": a_mart}}, "objective": {"beta": mart_beta}}),
        "trades": ("trades", {}),
        "mwpb-trades": ("mwpb-trades", {"radius": {"mwpb": {"alpha": a_trades}}}),
    }


MWPB_T5 = {
    "mma": ("mma", {}),
    "mail": ("mail-at", {"weighting": {"burn_in": 79}}),
    "mwpb-at": ("mwpb-at", {}),
    "gairat": ("gairat", {"weighting": {"burn_in": 79}}),
    "awp": ("awp-at", {}),
    "mwpb-awp": ("mwpb-awp", {}),
    "st-at": ("st-at", {}),
    "wat": ("wmmr", {}),  # WAT (Zeng et al. 2021) is irat's wmmr
}  # MMA: d_max = 1.5ε = 12/255 (MMA-12); the MWPB setup's lr, batch, weight decay
MWPB_T8_ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.58, 0.7, 0.85, 1.2)


# ---- BiLAW: 100 epochs, lr 0.1 ÷10 at 30, 60, batch 128, PGD-10 α = ε/4 ----
def _bilaw(dataset: str, arch: str, norm: str, eps: float) -> dict:
    return {
        "model": {"arch": arch},
        "data": {"dataset": dataset, "val_size": 2000},
        "attack": {"norm": norm, "eps": eps, "alpha": eps / 4, "steps": 10},
        "epochs": 100,
        "batch_size": 128,
        "seeds": 1,
        "eval_suite": "bilaw",
        "optim": {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "milestones": [30, 60]},
    }


_BILAW_VAL = {"data": {"val_size": 1000}}  # BiLAW's own rows: 1000 validation + 1000 meta examples
_B_GAIR = ("gairat", {"weighting": {"burn_in": 30}})
_B_MAIL = ("mail-at", {"weighting": {"mail": {"gamma": 5.0, "bias": 0.05}, "burn_in": 30}})
_B_WMMR = ("wmmr", {"weighting": {"wmmr": {"alpha": 0.1}}})
BILAW_T1 = {
    "plain": ("standard", {}),
    "at": ("at", {}),
    "gairat": _B_GAIR,
    "wmmr": _B_WMMR,
    "mail": _B_MAIL,
    "bilaw": ("bilaw", _BILAW_VAL),
}
BILAW_T2 = {
    "gairat": _B_GAIR,
    "wmmr": _B_WMMR,
    "mail": _B_MAIL,
    "at": ("at", {}),
    "trades": ("trades", {}),
    "non-parametric": ("bilaw-np", _BILAW_VAL),
    "bilaw": ("bilaw", _BILAW_VAL),
    "bilaw-trades": ("bilaw-trades", _BILAW_VAL),
}
BILAW_T3 = {
    "bilaw-trades": ("bilaw-trades", _BILAW_VAL),
    "at": ("at", {}),
    "trades": ("trades", {"objective": {"beta": 1.0}}),
}

BILAW_T6_HIDDEN = {"h128": 128, "h64": 64, "h64-64": [64, 64], "h256": 256}
BILAW_T7_BETAS = (6.0, 1.0, 5.0, 10.0)
BILAW_T8_INPUTS = ("multiclass-margin", "margin", "adv-loss", "loss-diff")

# ---- GAIRAT ablations (App. A, C.1, C.3): ResNet-18, 100 epochs, lr 0.1 ÷10 at 30 and 60, wd 5e-4 ----
GAIRAT_RN18 = {
    "model": {"arch": "resnet18"},
    "data": {"dataset": "cifar10"},
    "attack": _cifar("0.031", "0.007"),
    "epochs": 100,
    "batch_size": 128,
    "seeds": 1,
    "eval_suite": "gairat",
    "optim": {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "milestones": [30, 60]},
}
# Figs. 12-15 show their λ and burn-in values only in legends, which the text does not give: these sets are ours
GAIRAT_LAMBDAS = (-2.0, -1.0, 0.0, 1.0, 2.0)
GAIRAT_BURN_INS = (10, 30, 50, 70, 90)
# Fig. 11 (Rice et al.'s setup): PreAct ResNet-18, 200 epochs, burn-in 100, λ = −1; the four schedules are ours
GAIRAT_PREACT = _merge(
    GAIRAT_RN18,
    {"model": {"arch": "preact-resnet18"}, "attack": _cifar(), "epochs": 200, "optim": {"milestones": [100, 150]}},
)
GAIRAT_SCHEDULES = ("piecewise", "cosine", "cyclic", "constant")
# Fig. 2 (App. A): AT with α = ε/4; left: network sizes at ε = 8/255 (plus standard training), right: ResNet-18 at ε
GAIRAT_FIG2_ARCHS = ("small-cnn", "vgg13", "resnet18", "wrn-34-10")
GAIRAT_FIG2_EPS = (1, 2, 4, 8, 12, 16)


def ablation_rows() -> list[tuple[str, str, dict, str, dict]]:
    """(name, source, base, method, overrides) for every ablation preset."""
    rows: list[tuple[str, str, dict, str, dict]] = []
    add = rows.append
    add(("gairat/ablation-weight-fn/at", "GAIRAT Fig. 12, AT (ω ≡ 1)", GAIRAT_RN18, "at", {}))
    for fn in ("tanh", "sigmoid", "linear"):
        add(
            (
                f"gairat/ablation-weight-fn/{fn}",
                f"GAIRAT Fig. 12, {fn} weights (Eq. {dict(tanh=6, linear=7, sigmoid=8)[fn]})",
                GAIRAT_RN18,
                "gairat",
                {"weighting": {"gair": {"fn": fn}}},
            )
        )
    for ds, base, fig in (
        ("cifar10", GAIRAT_RN18, "13"),
        ("svhn", _merge(GAIRAT_RN18, {"data": {"dataset": "svhn"}, "optim": {"lr": 0.01}}), "14"),
    ):
        add((f"gairat/ablation-lambda-{ds}/at", f"GAIRAT Fig. {fig}, AT (λ = +∞)", base, "at", {}))
        for lam in GAIRAT_LAMBDAS:
            add(
                (
                    f"gairat/ablation-lambda-{ds}/lambda{lam:+g}",
                    f"GAIRAT Fig. {fig}, tanh weights λ = {lam:g}",
                    base,
                    "gairat",
                    {"weighting": {"gair": {"lam": lam}}},
                )
            )
    add(("gairat/ablation-burn-in/at", "GAIRAT Fig. 15, AT (burn-in = all 100 epochs)", GAIRAT_RN18, "at", {}))
    for b in GAIRAT_BURN_INS:
        add(
            (
                f"gairat/ablation-burn-in/burn-in-{b}",
                f"GAIRAT Fig. 15, burn-in {b} epochs",
                GAIRAT_RN18,
                "gairat",
                {"weighting": {"burn_in": b}},
            )
        )
    for sched in GAIRAT_SCHEDULES:
        for m in ("at", "gairat"):
            add(
                (
                    f"gairat/ablation-lr-schedule/{m}-{sched}",
                    f"GAIRAT Fig. 11, {m} with a {sched} schedule",
                    GAIRAT_PREACT,
                    m,
                    {"optim": {"schedule": sched}, "weighting": {"burn_in": 100}}
                    if m == "gairat"
                    else {"optim": {"schedule": sched}},
                )
            )
    fig2 = _merge(GAIRAT_RN18, {"attack": _cifar("8/255", "2/255"), "optim": {"milestone_lrs": [0.01, 0.001]}})
    add(
        (
            "gairat/ablation-capacity/standard-resnet18",
            "GAIRAT Fig. 2 left, standard training (ST) of ResNet-18",
            fig2,
            "standard",
            {},
        )
    )
    for arch in GAIRAT_FIG2_ARCHS:
        add(
            (
                f"gairat/ablation-capacity/at-{arch}",
                f"GAIRAT Fig. 2 left, AT of {arch}",
                fig2,
                "at",
                {"model": {"arch": arch}},
            )
        )
    for e in GAIRAT_FIG2_EPS:
        add(
            (
                f"gairat/ablation-train-eps/at-eps{e}",
                f"GAIRAT Fig. 2 right, AT of ResNet-18 at ε = {e}/255",
                fig2,
                "at",
                {"attack": {"eps": f"{e}/255", "alpha": f"{e}/1020"}},
            )
        )
    for obj in ("at", "trades", "mart"):
        add(
            (
                f"mail/cifar10-resnet18-lm/{obj}-logit-adv",
                f"MAIL App. Eq. 15, MAIL-{obj.upper()} on the logit margin",
                _merge(MAIL_RN18, {"data": {"dataset": "cifar10"}}),
                f"mail-{obj}",
                {"weighting": {"mail": {"margin": "logit-adv"}}},
            )
        )
    wrn = _mwpb("wrn-34-10", "cifar10", 0.1, 5e-4)
    for a in MWPB_T8_ALPHAS:
        add(
            (
                f"mwpb/cifar10-wrn34-alpha/alpha-{a:g}",
                f"MWPB Table 8, MWPB-AT α = {a:g}",
                wrn,
                "mwpb-at",
                {"radius": {"mwpb": {"alpha": a}}},
            )
        )
    bl = _bilaw("cifar10", "wrn-32-10", "linf", 0.031)
    for tag, h in BILAW_T6_HIDDEN.items():
        add(
            (
                f"bilaw/cifar10-wrn32-capacity/{tag}",
                f"BiLAW Table 6, weight net {h}",
                bl,
                "bilaw",
                _merge(_BILAW_VAL, {"weighting": {"bilaw": {"hidden": h}}}),
            )
        )
    for beta in BILAW_T7_BETAS:
        add(
            (
                f"bilaw/cifar10-wrn32-trades-beta/beta-{beta:g}",
                f"BiLAW Table 7, BiLAW-TRADES 1/λ = {beta:g}",
                bl,
                "bilaw-trades",
                _merge(_BILAW_VAL, {"objective": {"beta": beta}}),
            )
        )
    for inp in BILAW_T8_INPUTS:
        add(
            (
                f"bilaw/cifar10-wrn32-input/{inp}",
                f"BiLAW Table 8, weight-net input {inp}",
                bl,
                "bilaw",
                _merge(_BILAW_VAL, {"weighting": {"bilaw": {"input": inp}}}),
            )
        )
    return rows


Add = Callable[..., None]  # add(name, source, base, method, extra, dataset=None): one preset into the table


def _adder(out: dict[str, dict]) -> Add:
    def add(name: str, source: str, base: dict, method: str, extra: Any, dataset: str | None = None) -> None:
        p = _merge(base, extra)
        if dataset:
            p = _merge(p, {"data": {"dataset": dataset}})
        a = p["attack"]
        desc = (
            f"{method} on {p['data']['dataset']} with {p['model']['arch']}, {a['norm']} eps {a['eps']}, "
            f"{p['epochs']} epochs, lr {p['optim']['lr']} "
            + (
                f"({p['optim']['schedule']})"
                if p["optim"].get("schedule", "piecewise") != "piecewise"
                else f"(milestones {p['optim']['milestones']})"
            )
        )
        burn = p.get("weighting", {}).get("burn_in")
        if burn:
            desc += f", burn-in {burn}"
        out[name] = {"source": source, "description": desc, "method": method, **p}
        if (paper := paper_entry(name)) is not None:
            out[name]["paper"] = paper

    return add


def _mail_rows(add: Add) -> None:
    """MAIL Tables 1-4 and the released script's settings."""
    for row, (m, ex) in MAIL_T1.items():
        add(f"mail/cifar10-resnet18-pm/{row}", f"MAIL Table 1, row {row.upper()}", MAIL_RN18, m, ex, "cifar10")
    for row, (m, ex) in MAIL_ROWS.items():
        add(f"mail/cifar10-resnet18/{row}", f"MAIL Table 2, row {row}", MAIL_RN18, m, ex, "cifar10")
        add(f"mail/cifar10-wrn32/{row}", f"MAIL Table 3, row {row}", MAIL_WRN, m, ex, "cifar10")
        add(f"mail/svhn-resnet18/{row}", f"MAIL Table 4 (SVHN), row {row}", MAIL_RN18, m, ex, "svhn")
        add(f"mail/cifar100-resnet18/{row}", f"MAIL Table 4 (CIFAR-100), row {row}", MAIL_RN18, m, ex, "cifar100")
    released = _merge(MAIL_RN18, {"data": {"dataset": "cifar10"}, "optim": {"milestones": [75, 90, 100]}})
    for row, gamma, bias in (("mail-at", 10.0, -0.5), ("mail-trades", 2.0, 0.0)):
        add(
            f"mail/cifar10-resnet18-released/{row}",
            f"MAIL released code (train.py, mail_loss.py, README {row}): normalisation constant 3, weights from "
            f"epoch 77, PGD from x + 0.001·N(0,I), eps 0.031, alpha 0.007",
            released,
            row,
            {
                "weighting": {
                    "mail": {"gamma": gamma, "bias": bias},
                    "normalization": "constant",
                    "constant": 3.0,
                    "burn_in": 76,
                },
                "attack": {"eps": "0.031", "alpha": "0.007", "start": "normal"},
            },
        )


def _gairat_rows(add: Add) -> None:
    """The released GAIR-RST run (two optimisations) and GAIRAT Tables 1-2."""
    # Released GAIR-RST (run_training.sh, losses.py, robust_self_training.py): lam(epoch) gives the weights once
    # epoch >= 0.5 * 200 with epochs counted from 1, so from epoch 100 (burn-in 99); RST's optimisation, as
    # GAIRAT App. C.10 says GAIR-RST uses: cosine lr 0.1, batch 256, weight decay 5e-4, Nesterov momentum, and
    # an epoch of ceil(50000 / 256) batches of the half-labelled, half-pseudo-labelled stream.
    rst_weights = {"weighting": {"gair": {"lam": 3.0, "fn": "tanh-rst"}, "burn_in": 99}}
    wrn28 = _merge(GAIRAT_WRN32, {"model": {"arch": "wrn-28-10"}, "epochs": 200})
    add(
        "gairat/cifar10-rst-released/gair-rst",
        "released GAIR-RST run (run_training.sh, losses.py) on RST's optimisation: lambda 3, plain TRADES for "
        "epochs 1-99, weight tanh(lambda + K/2 - kappa) from epoch 100, eps 0.031; cosine lr 0.1, batch 256, "
        "weight decay 5e-4, Nesterov, ceil(50000/256) mixed batches an epoch",
        _merge(
            wrn28,
            {
                "batch_size": 256,
                "optim": {
                    "schedule": "cosine",
                    "milestones": None,
                    "milestone_lrs": None,
                    "weight_decay": 5e-4,
                    "nesterov": True,
                },
                "unlabeled": {"epoch": "rst"},
            },
        ),
        "gair-rst",
        rst_weights,
    )
    add(
        "gairat/cifar10-rst-released/gair-rst-gairat-optim",
        "the released GAIR-RST loss and weights (lambda 3, tanh(lambda + K/2 - kappa) from epoch 100) on GAIRAT's "
        "WRN optimisation instead of RST's: lr 0.1 divided by 10 after epochs 100 and 150, batch 128, weight "
        "decay 2e-4, every labeled example once an epoch",
        _merge(wrn28, {"optim": {"milestones": [100, 150], "milestone_lrs": None}}),
        "gair-rst",
        rst_weights,
    )
    for row, (m, ex) in GAIRAT_T1.items():
        add(f"gairat/cifar10-wrn32/{row}", f"GAIRAT Table 1, row {row}", GAIRAT_WRN32, m, ex)
    for row, (m, ex) in GAIRAT_T2.items():
        add(f"gairat/cifar10-wrn34/{row}", f"GAIRAT Table 2, row {row}", GAIRAT_WRN34, m, ex)


def _mwpb_rows_all(add: Add) -> None:
    """MWPB Tables 1-5."""
    mwpb_sets = [
        ("cifar10-rn18", "Table 1", _mwpb("resnet18", "cifar10", 0.1, 5e-4), _mwpb_rows(0.58, 0.42, 0.55, 5.0)),
        ("cifar10-wrn34", "Table 2", _mwpb("wrn-34-10", "cifar10", 0.1, 5e-4), _mwpb_rows(0.58, 0.42, 0.55, 6.0)),
        ("svhn-rn18", "Table 3", _mwpb("resnet18", "svhn", 0.01, 3.5e-3), _mwpb_rows(0.5, 0.15, 0.6, 5.0)),
        (
            "tiny-imagenet-rn18",
            "Table 4",
            _mwpb("resnet18", "tiny-imagenet", 0.01, 3.5e-3),
            _mwpb_rows(0.55, 0.4, 0.7, 5.0),
        ),
    ]
    for setting, table, base, rows in mwpb_sets:
        for row, (m, ex) in rows.items():
            add(f"mwpb/{setting}/{row}", f"MWPB {table}, row {row}", base, m, ex)
    for row, (m, ex) in MWPB_T5.items():
        add(
            f"mwpb/cifar10-wrn34-baselines/{row}",
            f"MWPB Table 5, row {row}",
            _mwpb("wrn-34-10", "cifar10", 0.1, 5e-4),
            m,
            ex,
        )


def _bilaw_rows(add: Add) -> None:
    """BiLAW Tables 1-3."""
    for ds, dname in (("mnist", "mnist"), ("fmnist", "fashion-mnist")):
        for arch in ("tinycnn", "fc1"):
            for norm, eps in (("linf", 0.1), ("l2", 0.3)):
                for row, (m, ex) in BILAW_T1.items():
                    add(
                        f"bilaw/{ds}-{arch}-{norm}/{row}",
                        f"BiLAW Table 1 ({ds}, {arch}, {norm} eps {eps}), row {row}",
                        _bilaw(dname, arch, norm, eps),
                        m,
                        ex,
                    )
    for arch, short in (("small-cnn-bilaw", "smallcnn"), ("wrn-32-10", "wrn32")):
        for tag, eps in (("linf2", 0.0078), ("linf8", 0.031)):
            for row, (m, ex) in BILAW_T2.items():
                add(
                    f"bilaw/cifar10-{short}-{tag}/{row}",
                    f"BiLAW Table 2 ({short}, linf eps {eps}), row {row}",
                    _bilaw("cifar10", arch, "linf", eps),
                    m,
                    ex,
                )
    for row, (m, ex) in BILAW_T3.items():
        add(
            f"bilaw/cifar100-wrn32-linf8/{row}",
            f"BiLAW Table 3, row {row}",
            _bilaw("cifar100", "wrn-32-10", "linf", 0.031),
            m,
            ex,
        )


def table_presets() -> dict[str, dict]:
    """Every table row as name → preset mapping (with `source`, `description`, `method`)."""
    out: dict[str, dict] = {}
    add = _adder(out)
    for rows in (_mail_rows, _gairat_rows, _mwpb_rows_all, _bilaw_rows):
        rows(add)
    for name, source, base, m, ex in ablation_rows():
        add(name, source, base, m, ex)
    return out


def render(preset: dict) -> str:
    return "# generated by `python -m irat.paper_presets`; edit the table there\n" + yaml.safe_dump(
        preset, sort_keys=False
    )


def write_all() -> int:
    presets = table_presets()
    for name, p in presets.items():
        path = PRESET_DIR / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(p), encoding="utf-8")
    return len(presets)


if __name__ == "__main__":
    print(f"wrote {write_all()} presets into {PRESET_DIR}")
