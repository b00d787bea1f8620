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
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError
from .utils import parse_number

# Field metadata the tools read instead of lists of key names (a part's `Options` fields use them too):
EPOCHS = {"epochs": "count"}  # an epoch number: `sweep --shorten` scales it
EPOCHS_BEFORE_END = {"epochs": "before-end"}  # epochs before something starts: scaled, kept below the run's end
EPOCH_TABLE = {"epochs": "table"}  # [[epoch, value], ...]: the epochs scaled
RESUMABLE = {"resume": True}  # `--resume` may change it (a section: all of its keys)

# The choices of the threat model and the schedule, as types: `coerce` accepts only these values, and the attack
# and schedule modules read their lists from here (one list each).
Norm = Literal["linf", "l2"]
Start = Literal["uniform", "normal", "none"]
AttackLoss = Literal["ce", "kl", "cw", "dlr", "slm"]
BnMode = Literal["eval", "train", "train-frozen"]
Kappa = Literal["count", "first-success"]
Schedule = Literal["piecewise", "cosine", "cyclic", "constant"]


@dataclass(slots=True)
class DataConfig:
    dataset: str = "digits"
    data_dir: str = field(default="~/.cache/irat", metadata=RESUMABLE)
    download: bool = field(default=True, metadata=RESUMABLE)
    val_size: int | None = None  # None: the dataset's default (1000; 300 for digits)
    split_seed: int = 0  # the validation split is seeded apart from the run seed
    train_subset: int | None = None  # keep only the first N training examples (quick runs)
    test_subset: int | None = None  # keep only the first N test examples
    augment: str = "auto"  # auto: crop+flip for 32x32 and 64x64 sets; none; crop-flip


@dataclass(slots=True)
class ModelConfig:
    arch: str = "resnet18"


@dataclass(slots=True)
class AttackConfig:
    """The training threat model and the attack that crafts training examples (docs/methods.md §1)."""

    norm: Norm = "linf"
    eps: float = 8 / 255
    alpha: float | None = None  # None: eps/4
    steps: int = 10
    start: Start | None = None  # None: the objective's default (uniform or normal)
    loss: AttackLoss | None = None  # None: the objective's default (ce or kl)
    bn_mode: BnMode = "eval"  # BN mode while attacking: eval (most papers) or train (AWP, WMMR)
    kappa: Kappa = "count"  # count (released GA_PGD) or first-success (GAIRAT paper)
    restarts: int = 1


@dataclass(slots=True)
class ObjectiveConfig:
    name: str = "at"  # a registered objective (`irat methods` lists them: parts.OBJECTIVES)
    beta: float = 6.0  # TRADES / MART regularisation weight
    options: dict = field(default_factory=dict)  # each part's own options: {part: {key: value}} (objective.fat.tau)


@dataclass(slots=True)
class WeightingConfig:
    """Instance weights (docs/methods.md §3). Weights apply after `burn_in` epochs; ω ≡ 1 before."""

    name: str = "none"  # a registered weighting scheme (parts.WEIGHTINGS)
    burn_in: int = field(default=0, metadata=EPOCHS_BEFORE_END)  # epochs with ω ≡ 1
    normalization: Literal["mean-one", "sum-one", "constant", "none"] = "mean-one"  # mean-one = sum-one (same loss)
    constant: float = 3.0  # for normalization=constant (MAIL's released code: 3)
    apply_to: list | None = None  # terms to weight; None: the objective's rule for this scheme
    options: dict = field(default_factory=dict)  # each part's own options: {part: {key: value}} (weighting.gair.lam)


@dataclass(slots=True)
class UnlabeledConfig:
    """Robust self-training (RST, Carmon et al. 2019): pseudo-labelled extra data mixed into each batch."""

    path: str | None = None  # .npz with array `x` (uint8, N×C×H×W or N×H×W×C) of unlabeled images
    withhold: int = 0  # or: take this many training examples out and use them without labels
    teacher: str | None = None  # run directory or checkpoint of the pseudo-labelling model (`standard`)
    teacher_checkpoint: Literal["best", "last"] = "best"  # best or last, for a run directory
    fraction: float = 0.5  # share of each batch drawn from the pseudo-labelled set (RST: 0.5)
    # labeled-pass: every labeled example once, each batch topped up; rst: as the released RST sampler,
    # ⌈N_labeled / batch_size⌉ mixed batches (about half of the labeled set an epoch)
    epoch: Literal["labeled-pass", "rst"] = "labeled-pass"


@dataclass(slots=True)
class RadiusConfig:
    """Perturbation radii (docs/methods.md §3.4): fixed ε, or a scheme's per-example ε_i (MWPB)."""

    name: str = "fixed"  # a registered radius scheme (parts.RADII)
    options: dict = field(default_factory=dict)  # each part's own options: {part: {key: value}} (radius.mwpb.alpha)


@dataclass(slots=True)
class AWPConfig:
    """Adversarial weight perturbation (docs/methods.md §5) around any objective and weighting."""

    enabled: bool = False
    gamma: float = 0.01  # 0.01 (AT-AWP); 0.005 (TRADES-AWP)
    # epochs without AWP (TRADES-AWP: 9, i.e. AWP from epoch 10)
    warmup: int = field(default=0, metadata=EPOCHS_BEFORE_END)
    proxy_lr: float = 0.01  # SGD step of the proxy model


@dataclass(slots=True)
class OptimConfig:
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: Schedule = "piecewise"  # piecewise, cosine, cyclic, constant
    milestones: list | None = None  # epochs of the ÷gamma drops; None: 50% and 75% of epochs
    gamma: float = 0.1
    milestone_lrs: list | None = None  # explicit LR after each milestone (GAIRAT: 0.01, 0.001, 0.0005)
    step_per: Literal["epoch", "iteration"] = "epoch"  # epoch or iteration: when the schedule is evaluated
    warmup_epochs: int = field(default=0, metadata=EPOCHS)  # linear warm-up from 0 (per iteration)


PART_SECTIONS = ("objective", "weighting", "radius")

# The flat keys of earlier releases, each now a part's own option. Old config.yaml files, checkpoints, presets and
# `--set` keep working through this one table (the command line says the new name once).
RENAMED = {
    **{f"objective.fat_{k}": f"objective.fat.{k}" for k in ("tau", "noise")},
    "objective.mix_cw_start": "objective.trades-mix.cw_start",
    **{
        f"objective.mma_{k}": f"objective.mma.{k}"
        for k in ("dmax", "min_eps", "clean_coeff", "search_steps", "step_scale")
    },
    "weighting.gair_fn": "weighting.gair.fn",
    **{f"weighting.gair_lambda{k}": f"weighting.gair.lam{k}" for k in ("", "_schedule", "_end", "_table")},
    **{f"weighting.mail_{k}": f"weighting.mail.{k}" for k in ("margin", "gamma", "bias")},
    **{f"weighting.wmmr_{k}": f"weighting.wmmr.{k}" for k in ("alpha", "detach")},
    **{f"weighting.bilaw_{k}": f"weighting.bilaw.{k}" for k in ("hidden", "input", "lr", "meta_size")},
    **{f"radius.{k}": f"radius.mwpb.{k}" for k in ("alpha", "phase1_epochs", "phase1_scale")},
}


PartLookup = Callable[[str, str], tuple[str, type] | None]
_part_lookup: list[PartLookup] = []


def use_part_lookup(lookup: PartLookup) -> None:
    """Installed by `irat.parts` (which sits above this module): (section, part name) → (the name its options are
    kept under, its `Options` class), or None for a part not registered or without options. Lets a config show a chosen part's
    defaults and read its options' field metadata without importing the parts."""
    _part_lookup[:] = [lookup]


def part_options(section: str, name: str) -> tuple[str, type] | None:
    """(options key, `Options` class) of a registered part; None when it has no options, is unknown, or the parts
    are not loaded."""
    return _part_lookup[0](section, name) if _part_lookup else None


@dataclass(slots=True)
class Config:
    plugins: list = field(default_factory=list)  # plug-in files or modules the run needs (loaded before use)
    method: str = "at"
    preset: str | None = None  # the shipped preset the run was built from (irat report --paper)
    shortened_from: int | None = None  # the preset's epochs when a sweep shortened the schedule (scaled tables)
    epochs: int = field(default=10, metadata=RESUMABLE)
    batch_size: int = 128
    seed: int = 0
    device: str = field(default="auto", metadata=RESUMABLE)
    eval_batch_size: int = field(default=512, metadata=RESUMABLE)
    # per-epoch validation on the first N validation examples
    val_n: int | None = field(default=None, metadata=RESUMABLE)
    val_steps: int = field(default=20, metadata=RESUMABLE)  # PGD-K of the per-epoch validation (best checkpoint)
    val_every: int = field(default=1, metadata=RESUMABLE)
    best_on: Literal["val", "test"] = "val"  # val (default) or test (the papers' protocol, labelled)
    progress: bool = field(default=True, metadata=RESUMABLE)
    seeds: int = 1  # trials the paper averages over (for multi-seed runs and reports)
    eval_suite: str | None = None  # the paper's evaluation protocol (irat eval --suite)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig, metadata=RESUMABLE)  # a resume may change the schedule
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    radius: RadiusConfig = field(default_factory=RadiusConfig)
    unlabeled: UnlabeledConfig = field(default_factory=UnlabeledConfig)
    awp: AWPConfig = field(default_factory=AWPConfig)
    # epochs whose per-example values are saved
    save_per_example: list = field(default_factory=list, metadata=RESUMABLE)
    # per-epoch loss flatness ‖∇ₓℓ‖ on the first N training examples (GAIRAT Fig. 4)
    flatness_n: int = field(default=0, metadata=RESUMABLE)
    # also log scalars and histograms to RUN/tensorboard (needs `tensorboard`)
    tensorboard: bool = field(default=False, metadata=RESUMABLE)
    # fp32; bf16 (autocast for training and its attack steps; eval stays fp32); fp64 (float64: numerical checks)
    precision: Literal["fp32", "bf16", "fp64"] = "fp32"
    channels_last: bool = False  # NHWC memory format for model and batches (faster convolutions on GPUs)
    compile: bool = False  # torch.compile the training forward (falls back to eager if it fails)
    sync_bn: bool = False  # torchrun on GPUs: SyncBatchNorm (BN statistics of the global batch, not the shard)

    def to_dict(self) -> dict:
        """The resolved config: every field, and in each part section the chosen part's options with their
        defaults filled in, under the part's name (`weighting: {name: gair, gair: {lam: -1.0, ...}}`)."""
        d = dataclasses.asdict(self)
        for section in PART_SECTIONS:
            sec = d[section]
            raw = sec.pop("options")
            options = {name: _without_defaults(section, name, opts) for name, opts in raw.items()}
            found = part_options(section, sec["name"])
            if found:
                key, cls = found
                options[key] = {**dataclasses.asdict(cls()), **raw.get(key, {})}
            options = {name: opts for name, opts in options.items() if opts}
            clash = sorted(set(options) & set(sec))
            if clash:  # a plug-in named like a field of the section: keep the unambiguous form
                sec["options"] = options
            else:
                sec.update(options)
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _without_defaults(section: str, name: str, opts: dict[str, Any]) -> dict[str, Any]:
    """A part's options without those equal to its defaults (a part not chosen: e.g. an old config's flat keys)."""
    found = part_options(section, name)
    if not found:
        return dict(opts)
    defaults = dataclasses.asdict(found[1]())
    return {k: v for k, v in opts.items() if k not in defaults or defaults[k] != v}


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


def _choices(hint: Any) -> tuple[Any, ...]:
    """The values a `Literal[...]` (alone or in a `| None` union) allows; () if none."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    return tuple(c for a in typing.get_args(hint) if typing.get_origin(a) is Literal for c in typing.get_args(a))


def coerce(key: str, val: Any, hint: Any) -> Any:
    """`val` as a value of type `hint` (bool, int, float, str, list, dict, `Literal` choices, their `| None`
    unions), or a ConfigError naming the key, the value and what is expected. Floats accept fractions ('8/255')."""
    choices = _choices(hint)
    if choices:
        nullable = type(None) in typing.get_args(hint)
        if val is None and nullable:
            return None
        if val not in choices or isinstance(val, bool):
            raise ConfigError(
                f"{key} must be one of {', '.join(map(str, choices))}{' (or null)' if nullable else ''}, got {val!r}"
            )
        return val
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


def _option_value(section: str, part: str, key: str, val: Any) -> Any:
    """A part's option checked against its `Options` field when the part is registered (else kept as given:
    a plug-in not loaded yet is checked when the parts are)."""
    found = part_options(section, part)
    if not found or found[0] != part:
        return val
    hints = typing.get_type_hints(found[1])
    if key not in hints:
        raise ConfigError(f"{section}.{part} has no option {key!r}; its options: {', '.join(hints)}")
    return coerce(f"{section}.{part}.{key}", val, hints[key])


def set_key(cfg: Config, key: str, raw: Any, *, say_renamed: bool = False) -> None:
    """Set a dotted key ('optim.lr') from a string or value, checked against the field's type. An old flat key
    (`RENAMED`) sets its new one; `say_renamed` prints the new name (the command line's `--set`)."""
    if key in RENAMED:
        if say_renamed:
            print(f"irat: note: {key} is now {RENAMED[key]} (the old key still works)", file=sys.stderr)
        key = RENAMED[key]
    parts = key.split(".")
    if parts[0] in PART_SECTIONS and len(parts) >= 3:  # a part's own options: SECTION[.options].PART.KEY
        section = getattr(cfg, parts[0])
        rest = parts[2:] if parts[1] == "options" else parts[1:]
        if parts[1] == "options" or parts[1] not in {f.name for f in dataclasses.fields(section)}:
            if len(rest) != 2:
                raise _unknown(key)
            section.options.setdefault(rest[0], {})[rest[1]] = _option_value(
                parts[0], rest[0], rest[1], _parse_value(raw)
            )
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


def _field_path(cfg: Config, key: str) -> list[dataclasses.Field]:
    """The fields along a dotted key, a part's option included (its `Options` field); [] if unknown."""
    path, target = [], cfg
    names = key.split(".")
    for i, name in enumerate(names):
        fields = {f.name: f for f in dataclasses.fields(target)} if dataclasses.is_dataclass(target) else {}
        if name in fields:
            path.append(fields[name])
            target = getattr(target, name)
            continue
        if i and names[i - 1] in PART_SECTIONS and len(names) == i + 2:  # SECTION.PART.KEY
            found = part_options(names[i - 1], name)
            if found:
                opts = {f.name: f for f in dataclasses.fields(found[1])}
                if names[-1] in opts:
                    return [*path, opts[names[-1]]]
        return []
    return path


def resume_scope(cfg: Config, key: str) -> str | None:
    """What lets `--resume` change this key (`RESUMABLE` on its field: the key; on a section above it:
    'SECTION.*'), or None when a resume may not change it."""
    path = _field_path(cfg, key)
    for i, f in enumerate(path):
        if f.metadata.get("resume"):
            return key if i == len(path) - 1 else ".".join(key.split(".")[: i + 1]) + ".*"
    return None


def resumable(cfg: Config, key: str) -> bool:
    """Whether `--resume` may change this key."""
    return resume_scope(cfg, key) is not None


def epoch_settings(cfg: Config) -> dict[str, str]:
    """{dotted key: kind} of every setting that counts epochs (field metadata `epochs`): the config's own and
    the options of the parts it chooses, plug-ins included — what `sweep --shorten` scales."""
    out = {}
    for key in all_keys(cfg):
        meta = _field_path(cfg, key)[-1].metadata
        if "epochs" in meta:
            out[key] = meta["epochs"]
    for section in PART_SECTIONS:
        found = part_options(section, getattr(cfg, section).name)
        if found:
            for f in dataclasses.fields(found[1]):
                if "epochs" in f.metadata:
                    out[f"{section}.{found[0]}.{f.name}"] = f.metadata["epochs"]
    return out


def get_key(cfg: Config, key: str) -> Any:
    """The value of a dotted key as the resolved config shows it (a part's option: set or default)."""
    return flatten(cfg.to_dict())[key]


def set_chosen_option(cfg: Config, section: str, key: str, value: Any) -> bool:
    """Set `key` of the part that `section` chooses, if that part has such an option (for small test and
    check configs that fit every method); whether it did."""
    found = part_options(section, getattr(cfg, section).name)
    if not found or key not in {f.name for f in dataclasses.fields(found[1])}:
        return False
    set_key(cfg, f"{section}.{found[0]}.{key}", value)
    return True


def clamp_epoch_settings(cfg: Config, most: int) -> None:
    """Every setting that counts epochs before something starts (burn-in, first phases, warm-ups) at most `most`."""
    for key, kind in epoch_settings(cfg).items():
        if kind == "before-end" and get_key(cfg, key) > most:
            set_key(cfg, key, most)
