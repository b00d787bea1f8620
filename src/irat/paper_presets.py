"""Presets for every row of the papers' result tables, generated from one table here.

`python -m irat.paper_presets` writes `presets/<paper>/<setting>/<row>.yaml`; a test checks that
the committed files match. Each preset names its source (paper, table, row), dataset, model,
threat model, schedule, burn-in, the number of seeds the paper averaged over and its evaluation
suite. Milestones are the epoch numbers the papers write (a drop after that many epochs).
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

PRESET_DIR = Path(__file__).parent / "presets"


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _cifar(eps="8/255", alpha="2/255"):
    return {"norm": "linf", "eps": eps, "alpha": alpha, "steps": 10}


# ---- MAIL (seed 000): ResNet-18 lr 0.01 wd 3.5e-3; WRN-32-10 lr 0.1 wd 7e-4; ÷10 at 75, 90; 120 epochs ----
MAIL_RN18 = {"model": {"arch": "resnet18"}, "attack": _cifar(), "epochs": 120, "batch_size": 128, "seeds": 5,
             "eval_suite": "mail", "optim": {"lr": 0.01, "momentum": 0.9, "weight_decay": 3.5e-3, "milestones": [75, 90]}}
MAIL_WRN = _merge(MAIL_RN18, {"model": {"arch": "wrn-32-10"}, "optim": {"lr": 0.1, "weight_decay": 7e-4}})
_BURN74 = {"weighting": {"burn_in": 74}}
MAIL_ROWS = {  # row: (method, extra overrides)
    "at": ("at", {}), "trades": ("trades", {}), "mart": ("mart", {}), "fat": ("fat", {}),
    "gairat": ("gairat", _BURN74), "mail-at": ("mail-at", {}), "mail-trades": ("mail-trades", {}),
}
MAIL_T1 = {
    "at-lps": ("gairat", _BURN74), "at-pm-nat": ("mail-at", {"weighting": {"mail_margin": "pm-nat"}}),
    "at-pm-adv": ("mail-at", {}),
    "mart-lps": ("gair-mart", _BURN74), "mart-pm-nat": ("mail-mart", {"weighting": {"mail_margin": "pm-nat"}}),
    "mart-pm-adv": ("mail-mart", {}),
    "trades-lps": ("gair-trades", _BURN74), "trades-pm-nat": ("mail-trades", {"weighting": {"mail_margin": "pm-nat"}}),
    "trades-pm-adv": ("mail-trades", {}),
}

# ---- GAIRAT (seed 003) ----
GAIRAT_WRN32 = {"model": {"arch": "wrn-32-10"}, "data": {"dataset": "cifar10"}, "attack": _cifar("0.031", "0.007"),
                "epochs": 120, "batch_size": 128, "seeds": 5, "eval_suite": "gairat",
                "optim": {"lr": 0.1, "momentum": 0.9, "weight_decay": 2e-4, "milestones": [60, 90, 110],
                          "milestone_lrs": [0.01, 0.001, 0.0005]}}
_FAT_GAIR_TAU = {"objective": {"fat_tau": [[0, 0], [40, 3], [70, 6]]}}
GAIRAT_T1 = {"at": ("at", {}), "fat": ("fat", _FAT_GAIR_TAU),
             "gairat": ("gairat", {"weighting": {"burn_in": 60, "gair_lambda": 0.0}}),
             "gair-fat": ("gair-fat", {"weighting": {"burn_in": 60, "gair_lambda": 0.0}})}
GAIRAT_WRN34 = _merge(GAIRAT_WRN32, {"model": {"arch": "wrn-34-10"}, "epochs": 100,
                                     "optim": {"milestones": [75, 90], "milestone_lrs": [0.01, 0.001]}})
GAIRAT_T2 = {"trades": ("trades", {}), "gair-trades": ("gair-trades", {"weighting": {"burn_in": 75, "gair_lambda": -1.0}})}

# ---- MWPB (seed 002): 110 epochs, ÷10 at 80, 90; radii from epoch 81 ----
def _mwpb(arch: str, dataset: str, lr: float, wd: float) -> dict:
    return {"model": {"arch": arch}, "data": {"dataset": dataset}, "attack": _cifar(), "epochs": 110,
            "batch_size": 128, "seeds": 3, "eval_suite": "mwpb",
            "optim": {"lr": lr, "momentum": 0.9, "weight_decay": wd, "milestones": [80, 90]},
            "radius": {"phase1_epochs": 80}}


def _mwpb_rows(a_at: float, a_trades: float, a_mart: float, mart_beta: float) -> dict:
    return {"at": ("at", {}), "mwpb-at": ("mwpb-at", {"radius": {"alpha": a_at}}),
            "mart": ("mart", {"objective": {"beta": mart_beta}}),
            "mwpb-mart": ("mwpb-mart", {"radius": {"alpha": a_mart}, "objective": {"beta": mart_beta}}),
            "trades": ("trades", {}), "mwpb-trades": ("mwpb-trades", {"radius": {"alpha": a_trades}})}


MWPB_T5 = {"mail": ("mail-at", {"weighting": {"burn_in": 79}}), "mwpb-at": ("mwpb-at", {}),
           "gairat": ("gairat", {"weighting": {"burn_in": 79}}), "awp": ("awp-at", {}), "mwpb-awp": ("mwpb-awp", {})}

# ---- BiLAW (seed 004): 100 epochs, lr 0.1 ÷10 at 30, 60, batch 128, PGD-10 α = ε/4 ----
def _bilaw(dataset: str, arch: str, norm: str, eps: float) -> dict:
    return {"model": {"arch": arch}, "data": {"dataset": dataset, "val_size": 2000},
            "attack": {"norm": norm, "eps": eps, "alpha": eps / 4, "steps": 10}, "epochs": 100, "batch_size": 128,
            "seeds": 1, "eval_suite": "bilaw",
            "optim": {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "milestones": [30, 60]}}


_BILAW_VAL = {"data": {"val_size": 1000}}  # BiLAW's own rows: 1000 validation + 1000 meta examples
_B_GAIR = ("gairat", {"weighting": {"burn_in": 30}})
_B_MAIL = ("mail-at", {"weighting": {"mail_gamma": 5.0, "mail_bias": 0.05, "burn_in": 30}})
_B_WMMR = ("wmmr", {"weighting": {"wmmr_alpha": 0.1}})
BILAW_T1 = {"at": ("at", {}), "gairat": _B_GAIR, "wmmr": _B_WMMR, "mail": _B_MAIL, "bilaw": ("bilaw", _BILAW_VAL)}
BILAW_T2 = {"gairat": _B_GAIR, "wmmr": _B_WMMR, "mail": _B_MAIL, "at": ("at", {}), "trades": ("trades", {}),
            "non-parametric": ("bilaw-np", _BILAW_VAL), "bilaw": ("bilaw", _BILAW_VAL),
            "bilaw-trades": ("bilaw-trades", _BILAW_VAL)}
BILAW_T3 = {"bilaw-trades": ("bilaw-trades", _BILAW_VAL), "at": ("at", {}),
            "trades": ("trades", {"objective": {"beta": 1.0}})}


def table_presets() -> dict[str, dict]:
    """Every table row as name → preset mapping (with `source`, `description`, `method`)."""
    out: dict[str, dict] = {}

    def add(name: str, source: str, base: dict, method: str, extra: dict, dataset: str | None = None) -> None:
        p = _merge(base, extra)
        if dataset:
            p = _merge(p, {"data": {"dataset": dataset}})
        a = p["attack"]
        desc = (f"{method} on {p['data']['dataset']} with {p['model']['arch']}, {a['norm']} eps {a['eps']}, "
                f"{p['epochs']} epochs, lr {p['optim']['lr']} (milestones {p['optim']['milestones']})")
        burn = p.get("weighting", {}).get("burn_in")
        if burn:
            desc += f", burn-in {burn}"
        out[name] = {"source": source, "description": desc, "method": method, **p}

    for row, (m, ex) in MAIL_T1.items():
        add(f"mail/cifar10-resnet18-pm/{row}", f"MAIL Table 1, row {row.upper()}", MAIL_RN18, m, ex, "cifar10")
    for row, (m, ex) in MAIL_ROWS.items():
        add(f"mail/cifar10-resnet18/{row}", f"MAIL Table 2, row {row}", MAIL_RN18, m, ex, "cifar10")
        add(f"mail/cifar10-wrn32/{row}", f"MAIL Table 3, row {row}", MAIL_WRN, m, ex, "cifar10")
        add(f"mail/svhn-resnet18/{row}", f"MAIL Table 4 (SVHN), row {row}", MAIL_RN18, m, ex, "svhn")
        add(f"mail/cifar100-resnet18/{row}", f"MAIL Table 4 (CIFAR-100), row {row}", MAIL_RN18, m, ex, "cifar100")
    released = _merge(MAIL_RN18, {"data": {"dataset": "cifar10"}, "optim": {"milestones": [75, 90, 100]}})
    for row, gamma, bias in (("mail-at", 10.0, -0.5), ("mail-trades", 2.0, 0.0)):
        add(f"mail/cifar10-resnet18-released/{row}", f"MAIL released code README, {row} (normalisation constant 3)",
            released, row, {"weighting": {"mail_gamma": gamma, "mail_bias": bias, "normalization": "constant",
                                          "constant": 3.0}})
    for row, (m, ex) in GAIRAT_T1.items():
        add(f"gairat/cifar10-wrn32/{row}", f"GAIRAT Table 1, row {row}", GAIRAT_WRN32, m, ex)
    for row, (m, ex) in GAIRAT_T2.items():
        add(f"gairat/cifar10-wrn34/{row}", f"GAIRAT Table 2, row {row}", GAIRAT_WRN34, m, ex)
    mwpb_sets = [("cifar10-rn18", "Table 1", _mwpb("resnet18", "cifar10", 0.1, 5e-4), _mwpb_rows(0.58, 0.42, 0.55, 5.0)),
                 ("cifar10-wrn34", "Table 2", _mwpb("wrn-34-10", "cifar10", 0.1, 5e-4), _mwpb_rows(0.58, 0.42, 0.55, 6.0)),
                 ("svhn-rn18", "Table 3", _mwpb("resnet18", "svhn", 0.01, 3.5e-3), _mwpb_rows(0.5, 0.15, 0.6, 5.0)),
                 ("tiny-imagenet-rn18", "Table 4", _mwpb("resnet18", "tiny-imagenet", 0.01, 3.5e-3),
                  _mwpb_rows(0.55, 0.4, 0.7, 5.0))]
    for setting, table, base, rows in mwpb_sets:
        for row, (m, ex) in rows.items():
            add(f"mwpb/{setting}/{row}", f"MWPB {table}, row {row}", base, m, ex)
    for row, (m, ex) in MWPB_T5.items():
        add(f"mwpb/cifar10-wrn34-baselines/{row}", f"MWPB Table 5, row {row}",
            _mwpb("wrn-34-10", "cifar10", 0.1, 5e-4), m, ex)
    for ds, dname in (("mnist", "mnist"), ("fmnist", "fashion-mnist")):
        for arch in ("tinycnn", "fc1"):
            for norm, eps in (("linf", 0.1), ("l2", 0.3)):
                for row, (m, ex) in BILAW_T1.items():
                    add(f"bilaw/{ds}-{arch}-{norm}/{row}", f"BiLAW Table 1 ({ds}, {arch}, {norm} eps {eps}), row {row}",
                        _bilaw(dname, arch, norm, eps), m, ex)
    for arch, short in (("small-cnn-bilaw", "smallcnn"), ("wrn-32-10", "wrn32")):
        for tag, eps in (("linf2", 0.0078), ("linf8", 0.031)):
            for row, (m, ex) in BILAW_T2.items():
                add(f"bilaw/cifar10-{short}-{tag}/{row}", f"BiLAW Table 2 ({short}, linf eps {eps}), row {row}",
                    _bilaw("cifar10", arch, "linf", eps), m, ex)
    for row, (m, ex) in BILAW_T3.items():
        add(f"bilaw/cifar100-wrn32-linf8/{row}", f"BiLAW Table 3, row {row}", _bilaw("cifar100", "wrn-32-10", "linf", 0.031),
            m, ex)
    return out


def render(preset: dict) -> str:
    return "# generated by `python -m irat.paper_presets`; edit the table there\n" + yaml.safe_dump(preset, sort_keys=False)


def write_all() -> int:
    presets = table_presets()
    for name, p in presets.items():
        path = PRESET_DIR / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(p), encoding="utf-8")
    return len(presets)


if __name__ == "__main__":
    print(f"wrote {write_all()} presets into {PRESET_DIR}")
