"""Run configuration: nested dataclasses, YAML in and out, `--set key=value` overrides.

A run is determined by its resolved config and seed; the trainer writes the resolved config
beside every run (`config.yaml`) and inside every checkpoint. Every value that enters — from `--set`,
a preset, a YAML file or a checkpoint — is checked against its field's type here (`set_key`,
`check_types`), with one message naming the key, the value and what is expected; ranges and choices
are checked by `irat.validate` before any work.

The sections `objective`, `weighting` and `radius` also hold the options of parts that are not built
in (plug-ins): `--set weighting.my-scheme.KEY=VALUE` lands in `weighting.options["my-scheme"]["KEY"]`
and is checked against the part's own `Options` dataclass when the parts are checked.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .utils import parse_number


@dataclass
class DataConfig:
    dataset: str = "digits"
    data_dir: str = "~/.cache/irat"
    download: bool = True
    val_size: int | None = None  # None: the dataset's default (1000; 300 for digits)
    split_seed: int = 0  # the validation split is seeded apart from the run seed
    train_subset: int | None = None  # keep only the first N training examples (quick runs)
    test_subset: int | None = None  # keep only the first N test examples
    augment: str = "auto"  # auto: crop+flip for 32x32 and 64x64 sets; none; crop-flip


@dataclass
class ModelConfig:
    arch: str = "resnet18"


@dataclass
class AttackConfig:
    """The training threat model and the attack that crafts training examples (docs/methods.md §1)."""

    norm: str = "linf"
    eps: float = 8 / 255
    alpha: float | None = None  # None: eps/4
    steps: int = 10
    start: str | None = None  # None: the objective's default (uniform or normal)
    loss: str | None = None  # None: the objective's default (ce or kl)
    bn_mode: str = "eval"  # BN mode while attacking: eval (most papers) or train (AWP, WMMR)
    kappa: str = "count"  # count (released GA_PGD) or first-success (GAIRAT paper)
    restarts: int = 1


@dataclass
class ObjectiveConfig:
    name: str = "at"  # a registered objective (`irat methods` lists them: parts.OBJECTIVES)
    beta: float = 6.0  # TRADES / MART regularisation weight
    fat_tau: list = field(default_factory=lambda: [[0, 0]])  # [[from_epoch, tau], ...] (FAT)
    fat_noise: float = 0.001  # FAT's per-step Gaussian noise (released FAT.py; FAT-TRADES/-MART, GAIR-FAT: 0)
    mix_cw_start: str = "normal"  # trades-mix's CW attack start: normal = x + 0.001·N(0,I) (released GAIR-RST)
    mma_dmax: float | None = None  # MMA's hinge d_max; None: 1.5·attack.eps (MMA-12 at ε = 8/255)
    mma_min_eps: float = 0.005  # smallest starting radius of AN-PGD (released CIFAR-10 ℓ∞; MNIST: 0.1)
    mma_clean_coeff: float = 1 / 3  # share of the clean CE in MMA's loss (released default)
    mma_search_steps: int = 10  # bisection steps of AN-PGD
    mma_step_scale: float = 2.5  # AN-PGD step = scale·ε_i/K
    options: dict = field(default_factory=dict)  # plug-in parts' options: {part name: {key: value}}


@dataclass
class WeightingConfig:
    """Instance weights (docs/methods.md §3). Weights apply after `burn_in` epochs; ω ≡ 1 before."""

    name: str = "none"  # a registered weighting scheme (parts.WEIGHTINGS)
    burn_in: int = 0  # epochs with ω ≡ 1
    normalization: str = "mean-one"  # mean-one, sum-one (same loss), constant, none
    constant: float = 3.0  # for normalization=constant (MAIL's released code: 3)
    apply_to: list | None = None  # terms to weight; None: the objective's rule for this scheme
    gair_fn: str = "tanh"  # tanh (Eq. 6), sigmoid (Eq. 8), linear (Eq. 7)
    gair_lambda: float = -1.0  # λ; .inf recovers AT
    gair_lambda_schedule: str = "fixed"  # fixed, linear, piecewise
    gair_lambda_end: float | None = None
    gair_lambda_table: list | None = None
    mail_margin: str = "pm-adv"  # pm-adv, pm-nat, pm-dif, logit-adv, logit-nat
    mail_gamma: float = 10.0  # slope γ
    mail_bias: float = 0.0  # bias β
    wmmr_alpha: float = 0.5
    wmmr_detach: bool = True  # the released WMMR code does not detach (False)
    bilaw_hidden: int | list = 128  # weight net: Linear(C,h) → ReLU → Linear(h,1) → sigmoid; a list: more layers
    bilaw_input: str = "multiclass-margin"  # weight-net input: multiclass-margin, margin, adv-loss, loss-diff
    bilaw_lr: float = 1.0e-3  # Adam step size of the weight net (not given in the paper: our choice)
    bilaw_meta_size: int = 1000  # validation examples that drive the weight net
    options: dict = field(default_factory=dict)  # plug-in parts' options: {part name: {key: value}}


@dataclass
class UnlabeledConfig:
    """Robust self-training (RST, Carmon et al. 2019): pseudo-labelled extra data mixed into each batch."""

    path: str | None = None  # .npz with array `x` (uint8, N×C×H×W or N×H×W×C) of unlabeled images
    withhold: int = 0  # or: take this many training examples out and use them without labels
    teacher: str | None = None  # run directory or checkpoint of the pseudo-labelling model (`standard`)
    teacher_checkpoint: str = "best"  # best or last, for a run directory
    fraction: float = 0.5  # share of each batch drawn from the pseudo-labelled set (RST: 0.5)
    epoch: str = "labeled-pass"  # labeled-pass: every labeled example once, each batch topped up; rst: as the
    # released RST sampler, ⌈N_labeled / batch_size⌉ mixed batches (about half of the labeled set an epoch)


@dataclass
class RadiusConfig:
    """Per-example perturbation radii (docs/methods.md §3.4, MWPB): ε_i = exp(α·d_i)·ε, α_i = ε_i/4."""

    name: str = "fixed"  # a registered radius scheme (parts.RADII)
    alpha: float = 0.58  # MWPB's α
    phase1_epochs: int = 80  # epochs ≤ this use ε·phase1_scale and α·phase1_scale for everyone
    phase1_scale: float = 0.5
    options: dict = field(default_factory=dict)  # plug-in parts' options: {part name: {key: value}}


@dataclass
class AWPConfig:
    """Adversarial weight perturbation (docs/methods.md §5) around any objective and weighting."""

    enabled: bool = False
    gamma: float = 0.01  # 0.01 (AT-AWP); 0.005 (TRADES-AWP)
    warmup: int = 0  # epochs without AWP (TRADES-AWP: 9, i.e. AWP from epoch 10)
    proxy_lr: float = 0.01  # SGD step of the proxy model


@dataclass
class OptimConfig:
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "piecewise"  # piecewise, cosine, cyclic, constant
    milestones: list | None = None  # epochs of the ÷gamma drops; None: 50% and 75% of epochs
    gamma: float = 0.1
    milestone_lrs: list | None = None  # explicit LR after each milestone (GAIRAT: 0.01, 0.001, 0.0005)
    step_per: str = "epoch"  # epoch or iteration: when the schedule is evaluated
    warmup_epochs: int = 0  # linear warm-up from 0 (per iteration)


PART_SECTIONS = ("objective", "weighting", "radius")


@dataclass
class Config:
    plugins: list = field(default_factory=list)  # plug-in files or modules the run needs (loaded before use)
    method: str = "at"
    preset: str | None = None  # the shipped preset the run was built from (irat report --paper)
    shortened_from: int | None = None  # the preset's epochs when a sweep shortened the schedule (scaled tables)
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 512
    val_n: int | None = None  # per-epoch validation on the first N validation examples
    val_steps: int = 20  # PGD-K of the per-epoch validation (best checkpoint)
    val_every: int = 1
    best_on: str = "val"  # val (default) or test (the papers' protocol, labelled)
    progress: bool = True
    seeds: int = 1  # trials the paper averages over (for multi-seed runs and reports)
    eval_suite: str | None = None  # the paper's evaluation protocol (irat eval --suite)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    radius: RadiusConfig = field(default_factory=RadiusConfig)
    unlabeled: UnlabeledConfig = field(default_factory=UnlabeledConfig)
    awp: AWPConfig = field(default_factory=AWPConfig)
    save_per_example: list = field(default_factory=list)  # epochs whose per-example values are saved
    flatness_n: int = 0  # per-epoch loss flatness ‖∇ₓℓ‖ on the first N training examples (GAIRAT Fig. 4)
    tensorboard: bool = False  # also log scalars and histograms to RUN/tensorboard (needs `tensorboard`)
    precision: str = "fp32"  # fp32; bf16 (autocast for training and its attack steps; eval stays fp32); fp64 (float64 training: numerical checks)
    channels_last: bool = False  # NHWC memory format for model and batches (faster convolutions on GPUs)
    compile: bool = False  # torch.compile the training forward (falls back to eager if it fails)
    sync_bn: bool = False  # torchrun on GPUs: SyncBatchNorm (BN statistics of the global batch, not the shard)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _hint_text(hint: Any) -> str:
    names = {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }
    args = typing.get_args(hint) or (hint,)
    return " or ".join(names.get(a, getattr(a, "__name__", str(a))) for a in args)


def coerce(key: str, val: Any, hint: Any) -> Any:
    """`val` as a value of type `hint` (bool, int, float, str, list, dict, their `| None` unions), or a
    ConfigError naming the key, the value and what is expected. Floats accept fractions ('8/255')."""
    args = typing.get_args(hint) or (hint,)
    if val is None or (isinstance(val, str) and val.strip().lower() in ("none", "null") and str not in args):
        if type(None) in args:
            return None
        raise ConfigError(f"{key} must be {_hint_text(hint)}, got {val!r}")
    for t in args:
        if t is bool and isinstance(val, bool):
            return val
        if t is int and isinstance(val, int) and not isinstance(val, bool):
            return val
        if t is float and isinstance(val, (int, float)) and not isinstance(val, bool):
            return float(val)
        if t is list and isinstance(val, (list, tuple)):
            return list(val)
        if t is dict and isinstance(val, dict):
            return val
    if float in args and isinstance(val, str):
        try:
            return parse_number(val)
        except ConfigError:
            if str not in args:
                raise ConfigError(f"{key}: cannot read {val!r} as a number (examples: 8/255, 0.031, 0.3)") from None
    if str in args and isinstance(val, (str, int, float)) and not isinstance(val, bool):
        return str(val)
    raise ConfigError(f"{key} must be {_hint_text(hint)}, got {val!r}")


def all_keys(obj: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key a config accepts (for messages and `--set`)."""
    obj = Config() if obj is None else obj
    keys = []
    for f in dataclasses.fields(obj):
        val = getattr(obj, f.name)
        if dataclasses.is_dataclass(val):
            keys += all_keys(val, prefix + f.name + ".")
        else:
            keys.append(prefix + f.name)
    return keys


def _parse_value(raw: Any) -> Any:
    """A `--set` string read as YAML (numbers, lists, true/false, null); other values as they are."""
    if isinstance(raw, str):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError:
            return raw
    return raw


def _unknown(key: str) -> ConfigError:
    return ConfigError(
        f"unknown config key {key!r}; known keys: {', '.join(all_keys())} (a plug-in part's "
        f"options: SECTION.PART.KEY, e.g. weighting.my-scheme.alpha)"
    )


def set_key(cfg: Config, key: str, raw: Any) -> None:
    """Set a dotted key ('optim.lr') from a string or value, checked against the field's type."""
    parts = key.split(".")
    if parts[0] in PART_SECTIONS and len(parts) >= 3:  # a part's own options: SECTION[.options].PART.KEY
        section = getattr(cfg, parts[0])
        rest = parts[2:] if parts[1] == "options" else parts[1:]
        if parts[1] == "options" or parts[1] not in {f.name for f in dataclasses.fields(section)}:
            if len(rest) != 2:
                raise _unknown(key)
            section.options.setdefault(rest[0], {})[rest[1]] = _parse_value(raw)
            return
    target: Any = cfg
    for p in parts[:-1]:
        if not dataclasses.is_dataclass(target) or not hasattr(target, p):
            raise _unknown(key)
        target = getattr(target, p)
    leaf = parts[-1]
    if not dataclasses.is_dataclass(target) or leaf not in {f.name for f in dataclasses.fields(target)}:
        raise _unknown(key)
    if dataclasses.is_dataclass(getattr(target, leaf)):
        raise ConfigError(
            f"{key!r} is a section; set one of its keys, e.g. {key}.{dataclasses.fields(getattr(target, leaf))[0].name}"
        )
    hint = typing.get_type_hints(type(target))[leaf]
    setattr(target, leaf, coerce(key, _parse_value(raw), hint))


def check_types(obj: Any, prefix: str = "") -> None:
    """Check (and normalise, e.g. 3 → 3.0 for a float) every field of a config built in Python."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        val = getattr(obj, f.name)
        if dataclasses.is_dataclass(val):
            check_types(val, prefix + f.name + ".")
        else:
            setattr(obj, f.name, coerce(prefix + f.name, val, hints[f.name]))


def apply_dict(cfg: Config, d: dict, prefix: str = "") -> None:
    """Apply a (possibly nested) mapping of overrides, e.g. from a YAML preset."""
    for k, v in d.items():
        key = prefix + str(k)
        if isinstance(v, dict):
            apply_dict(cfg, v, key + ".")
        else:
            set_key(cfg, key, v)


def from_dict(d: dict) -> Config:
    cfg = Config()
    apply_dict(cfg, d)
    return cfg


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys")
    return data


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping (a config as `to_dict` gives it, a YAML section) as {dotted key: value}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
