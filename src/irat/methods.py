"""Method names: each is a preset of config choices plus its paper's hyperparameters.

A method picks one objective, weighting and radius (irat.parts) plus its paper's hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import Config, apply_dict
from .errors import ConfigError
from .parts import is_neutral
from .registry import Registry


@dataclass
class Method:
    name: str
    description: str
    source: str
    overrides: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    extra_data: bool = False  # trains on pseudo-labelled extra data (RST): unlabeled.path or .withhold, and .teacher


METHODS: Registry[Method] = Registry("method", "method")  # the one registry idiom, as parts, models, datasets


def register_method(m: Method, *, replace: bool = False) -> None:
    """A method: a preset over parts with the paper's hyperparameters; its name and aliases must be free."""
    METHODS.register(m.name, replace=replace, aliases=tuple(m.aliases), doc=m.description)(m)


register_method(
    Method(
        "standard",
        "plain (non-adversarial) training: CE on natural inputs, no attack; "
        "BiLAW Table 1's 'plain' rows and RST's teacher",
        "docs/methods.md §7 comparison systems; BiLAW Table 1",
        {"objective": {"name": "standard"}},
        ("plain", "natural"),
    )
)
register_method(
    Method(
        "at",
        "Madry et al. PGD adversarial training: CE on PGD examples (uniform start)",
        "docs/methods.md §2 (Madry et al. 2018)",
        {"objective": {"name": "at"}},
        ("madry", "pgd-at"),
    )
)
register_method(
    Method(
        "trades",
        "TRADES: CE(f(x),y) + β·KL(p(x)‖p(x')), KL attack from x + 0.001·N(0,I), β = 6",
        "docs/methods.md §2 (Zhang et al. 2019)",
        {"objective": {"name": "trades", "beta": 6.0}},
    )
)
register_method(
    Method(
        "mart",
        "MART: boosted CE on x' + β·KL·(1 − p_y(x)), β = 6",
        "docs/methods.md §2 (Wang et al. 2020)",
        {"objective": {"name": "mart", "beta": 6.0}},
    )
)
register_method(
    Method(
        "fat",
        "FAT: AT on friendly adversarial data from early-stopped PGD-K-τ, τ 0→1 (50)→2 (90), step noise ω = 0.001",
        "docs/methods.md §4 (Zhang et al. 2020); released FAT.py (ω = 0.001 is its default)",
        {"objective": {"name": "fat", "fat": {"tau": [[0, 0], [50, 1], [90, 2]], "noise": 0.001}}},
    )
)
register_method(
    Method(
        "fat-trades",
        "FAT for TRADES: KL attack early-stopped, τ 0/1/2/3 at epochs 30/50/70, no step noise (ω = 0)",
        "docs/methods.md §4; released FAT-for-TRADES script (ω = 0)",
        {
            "objective": {
                "name": "fat-trades",
                "beta": 6.0,
                "fat": {"tau": [[0, 0], [30, 1], [50, 2], [70, 3]], "noise": 0.0},
            }
        },
    )
)
register_method(
    Method(
        "fat-mart",
        "FAT for MART: CE attack early-stopped, τ 0/1/2/3/4 at epochs 20/40/60/80, no step noise (ω = 0); "
        "the released script's schedule (the paper states none; FAT's own, 0/1/2 at 50/90: "
        "--set objective.fat.tau=[[0,0],[50,1],[90,2]])",
        "docs/methods.md §4; released FAT-for-MART script (τ schedule, ω = 0)",
        {
            "objective": {
                "name": "fat-mart",
                "beta": 6.0,
                "fat": {"tau": [[0, 0], [20, 1], [40, 2], [60, 3], [80, 4]], "noise": 0.0},
            }
        },
    )
)


def _m(
    name: str, description: str, source: str, aliases: tuple[str, ...] = (), extra_data: bool = False, **sections
) -> None:
    register_method(Method(name, description, source, sections, aliases, extra_data))


# GAIRAT family: κ from GA-PGD, tanh weights with λ = −1, mean-one normalisation.
_GAIR = {"name": "gair", "gair": {"fn": "tanh", "lam": -1.0}, "normalization": "mean-one"}
_m(
    "gairat",
    "GAIRAT: AT with ω from the geometry value κ (tanh, λ = −1), 30-epoch burn-in (ResNet-18 figures)",
    "GAIRAT Alg. 2, Eq. 6",
    ("gair-at",),
    objective={"name": "at"},
    weighting=dict(_GAIR, burn_in=30),
)
_m(
    "gair-fat",
    "GAIR-FAT: FAT (τ 0/3/6 at epochs 40/70, no step noise) with GAIR weights, κ counted in the early-stopped "
    "PGD; burn-in 70",
    "GAIRAT App. B.1, C.6; released GAIR_FAT.py (ω = 0)",
    objective={"name": "fat", "fat": {"tau": [[0, 0], [40, 3], [70, 6]], "noise": 0.0}},
    weighting=dict(_GAIR, burn_in=70),
)
_m(
    "gair-trades",
    "GAIR-TRADES: GAIR weights on the natural CE, β·mean KL; β = 6, λ = −1, burn-in 75",
    "GAIRAT Alg. 4-5, App. C.9",
    objective={"name": "trades", "beta": 6.0},
    weighting=dict(_GAIR, burn_in=75),
)
_m(
    "gair-trades-rst",
    "GAIR-TRADES as in the released GAIR-RST code: CE + β·mean[w·KL(x,x_kl) + (1−w)·KL(x,x_cw)], "
    "w not normalised, x_cw from a CW attack started at x + 0.001·N(0,I); Eq. 6's weight (λ = −1)",
    "docs/methods.md §3.1 (released GAIR-RST)",
    objective={"name": "trades-mix", "beta": 6.0},
    weighting=dict(_GAIR, burn_in=0, normalization="none"),
)
_m(
    "gair-mart",
    "GAIR-MART: GAIR weights on the CE part of MART's BCE only; weights from epoch 75 (burn-in 74)",
    "GAIRAT App. C.7 ('from Epoch 75 onward'), Eq. 10",
    objective={"name": "mart", "beta": 6.0},
    weighting=dict(_GAIR, burn_in=74),
)

# MAIL: sigmoid(−γ(PM − β)) on PM-adv, mean-one (paper Alg. 1). MAIL §4.1: the weights start "when the learning
# rate dropped at the first time", i.e. with milestone 75 in epoch 76, the epoch the released train.py (0-based
# `epoch >= 75`) first trains at lr/10; its "initial 74 epochs" is that loop's last burn-in index, 0..74.
# So burn-in 75: the weights and the first drop coincide.
_m(
    "mail-at",
    "MAIL-AT: ω = sigmoid(−γ(PM-adv − β)), γ = 30, β = −0.07, burn-in 75 epochs (to the first LR drop)",
    "MAIL §3.2, §4.1",
    objective={"name": "at"},
    weighting={
        "name": "mail",
        "mail": {"margin": "pm-adv", "gamma": 30.0, "bias": -0.07},
        "burn_in": 75,
        "normalization": "mean-one",
    },
)
_m(
    "mail-trades",
    "MAIL-TRADES: CE + β·mean ω·KL, β = 5; γ = 5, bias 0.05, burn-in 75",
    "MAIL Eq. 10, §4.1",
    objective={"name": "trades", "beta": 5.0},
    weighting={
        "name": "mail",
        "mail": {"margin": "pm-adv", "gamma": 5.0, "bias": 0.05},
        "burn_in": 75,
        "normalization": "mean-one",
    },
)
_m(
    "mail-mart",
    "MAIL-MART: ω on all of MART's BCE, β = 6; γ = 5, bias 0.05, burn-in 75",
    "MAIL App. C, Alg. 4",
    objective={"name": "mart", "beta": 6.0},
    weighting={
        "name": "mail",
        "mail": {"margin": "pm-adv", "gamma": 5.0, "bias": 0.05},
        "burn_in": 75,
        "normalization": "mean-one",
    },
)

# WMMR (baseline in BiLAW and MWPB): exp(−α·m) on x', released code: not detached, not normalised.
_m(
    "wmmr",
    "WMMR (the WAT row of MWPB Table 5): AT with ω = exp(−α·m), m the probabilistic margin on x', α = 0.5 "
    "(released form: no detach, no normalisation)",
    "docs/methods.md §3.3 (Zeng et al. 2021, 'Are adversarial examples created equal?')",
    objective={"name": "at"},
    weighting={"name": "wmmr", "wmmr": {"alpha": 0.5, "detach": False}, "normalization": "none"},
)
_m(
    "wmmr-trades",
    "WMMR-TRADES: exp(−α·m) weights on the TRADES KL term",
    "docs/methods.md §3.3",
    objective={"name": "trades", "beta": 6.0},
    weighting={"name": "wmmr", "wmmr": {"alpha": 0.5, "detach": False}, "normalization": "none"},
)

# MWPB: per-example radii, two phases, normal start.
_MWPB_ATTACK = {"start": "normal"}
_m(
    "mwpb-at",
    "MWPB-AT: radius ε_i = exp(α·d_i)·ε from epoch 81 (ε/2 before), α = 0.58 (CIFAR-10)",
    "MWPB §4, App.",
    objective={"name": "at"},
    attack=_MWPB_ATTACK,
    radius={"name": "mwpb", "mwpb": {"alpha": 0.58}},
)
_m(
    "mwpb-trades",
    "MWPB-TRADES: per-example radii with TRADES, α = 0.42 (CIFAR-10)",
    "MWPB §4",
    objective={"name": "trades", "beta": 6.0},
    attack=_MWPB_ATTACK,
    radius={"name": "mwpb", "mwpb": {"alpha": 0.42}},
)
_m(
    "mwpb-mart",
    "MWPB-MART: per-example radii with MART, α = 0.55 (CIFAR-10)",
    "MWPB §4",
    objective={"name": "mart", "beta": 6.0},
    attack=_MWPB_ATTACK,
    radius={"name": "mwpb", "mwpb": {"alpha": 0.55}},
)
_m(
    "mwpb-awp",
    "MWPB-AWP: MWPB-AT inside AWP (γ = 0.01)",
    "MWPB Table 5",
    objective={"name": "at"},
    attack=_MWPB_ATTACK,
    radius={"name": "mwpb", "mwpb": {"alpha": 0.58}},
    awp={"enabled": True, "gamma": 0.01},
)

# AWP (Wu et al. 2020) as a wrapper. The released AT-AWP attacks with BN in train mode, TRADES-AWP in eval mode;
# TRADES-AWP perturbs from (1-based) epoch 10 (`epoch >= awp_warmup`): irat's warm-up counts the epochs without.
_m(
    "awp-at",
    "AT-AWP: adversarial weight perturbation γ = 0.01 around AT, attack with BN in train mode",
    "docs/methods.md §5; released AT_AWP/train_cifar10.py",
    objective={"name": "at"},
    attack={"bn_mode": "train"},
    awp={"enabled": True, "gamma": 0.01},
)
_m(
    "awp-trades",
    "TRADES-AWP: γ = 0.005 from epoch 10 (9 warm-up epochs), KL attack with BN in eval mode",
    "docs/methods.md §5; released trades_AWP/train_trades_cifar.py",
    objective={"name": "trades", "beta": 6.0},
    awp={"enabled": True, "gamma": 0.005, "warmup": 9},
)
_m(
    "awp-mart",
    "MART-AWP: as TRADES-AWP (γ = 0.005 from epoch 10, attack with BN in eval mode): no MART-AWP script was "
    "released; MART's own code attacks in eval mode",
    "docs/methods.md §5; settings of the released TRADES-AWP",
    objective={"name": "mart", "beta": 6.0},
    awp={"enabled": True, "gamma": 0.005, "warmup": 9},
)

# BiLAW: learned weights, sum-one normalisation, 1000 + 1000 validation examples.
_BILAW = {"name": "bilaw", "normalization": "sum-one", "bilaw": {"hidden": 128, "meta_size": 1000}}
_m(
    "bilaw",
    "BiLAW: weight net on the multi-class margin, trained by a one-step look-ahead; weights the AT CE",
    "BiLAW Alg. 1",
    objective={"name": "at"},
    weighting=_BILAW,
    data={"val_size": 1000},
)
_m(
    "bilaw-trades",
    "BiLAW-TRADES: CE_mean + 6·Σ ω_i·KL_i",
    "BiLAW Eq. 8",
    objective={"name": "trades", "beta": 6.0},
    weighting=_BILAW,
    data={"val_size": 1000},
)
_m(
    "bilaw-np",
    "BiLAW non-parametric: ω_i ∝ max(0, ⟨∇ℓ_i, ∇L_val⟩)",
    "BiLAW §4 (variant 1)",
    objective={"name": "at"},
    weighting=dict(_BILAW, name="bilaw-np"),
    data={"val_size": 1000},
)


# Comparison systems that bring their own attack.
_m(
    "mma",
    "MMA: CE at each example's shortest successful perturbation (AN-PGD + bisection, capped at d_max = 1.5ε) "
    "for correct examples, CE on misclassified ones, mixed 2:1 with the clean CE",
    "Ding et al. ICLR 2020 and released code (anpgd.py, trainer.py, config.py)",
    objective={"name": "mma"},
)
_m(
    "st-at",
    "Squeeze training: CE(f(x)) + β·symKL between the lowest- and highest-p_y of {x, x_adv, x_col}, "
    "adversarial and collaborative examples found jointly; β = 6",
    "Li et al. ICLR 2023 and released losses.py",
    ("st", "squeeze"),
    objective={"name": "st", "beta": 6.0},
    attack={"bn_mode": "train-frozen"},
)
_m(
    "rst",
    "Robust self-training: TRADES (β = 6) on batches half labeled, half pseudo-labelled by a standard-trained "
    "teacher (set unlabeled.path or unlabeled.withhold, and unlabeled.teacher)",
    "Carmon et al. 2019; GAIRAT Eq. 12",
    objective={"name": "trades", "beta": 6.0},
    unlabeled={"fraction": 0.5},
    extra_data=True,
)
_m(
    "gair-rst",
    "GAIR-RST: RST's mixed batches with GAIR-TRADES-RST's loss CE + β·mean[w·KL(x,x_kl) + (1−w)·KL(x,x_cw)], "
    "Eq. 6's weight with λ = −1 from the start (the released run: preset gairat/cifar10-rst-released/gair-rst)",
    "GAIRAT App. C.10, Eq. 13; docs/methods.md §3.1",
    objective={"name": "trades-mix", "beta": 6.0},
    weighting=dict(_GAIR, burn_in=0, normalization="none"),
    unlabeled={"fraction": 0.5},
    extra_data=True,
)


def get_method(name: str) -> Method:
    found = METHODS.resolve(name)
    if found is None:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))} (see `irat methods`)")
    return METHODS[found]


def apply_method(cfg: Config, name: str) -> None:
    m = get_method(name)
    cfg.method = m.name
    apply_dict(cfg, m.overrides)


def parts_of(cfg: Config) -> tuple[str, ...]:
    """What defines what a run trains: objective, weighting, radius, AWP (empty where the default)."""
    return (
        cfg.objective.name,
        "" if is_neutral("weighting", cfg.weighting.name) else cfg.weighting.name,
        "" if is_neutral("radius", cfg.radius.name) else cfg.radius.name,
        "awp" if cfg.awp.enabled else "",
    )


def trains_on_extra_data(cfg: Config) -> bool:
    """Whether the config's method trains on pseudo-labelled extra data (RST): its teacher may not exist yet."""
    found = METHODS.resolve(cfg.method.lower())
    return found is not None and METHODS[found].extra_data


def check_method_name(cfg: Config) -> None:
    """A config named after a method must train that method's parts. `Config(method="mail-at")` alone sets
    only a name and would train (and be labelled) plain AT: refused. A config that keeps every part of its
    method and adds or changes others (AT with AWP, from Python) is renamed after what it trains
    (`at+awp`), as the command line does. Names that are not methods (`at+mail`) pass."""
    key = cfg.method.lower()
    if not any(key == m.name or key in m.aliases for m in METHODS.values()):
        return
    u = cfg.unlabeled
    if get_method(key).extra_data and not ((u.path or u.withhold > 0) and u.teacher):
        raise ConfigError(
            f"method {cfg.method} trains on pseudo-labelled extra data: set unlabeled.path (an .npz of "
            f"images) or unlabeled.withhold (training examples used without labels), and unlabeled.teacher"
        )
    want = Config()
    apply_method(want, cfg.method)
    have, named = parts_of(cfg), parts_of(want)
    if have == named:
        return
    names = ("objective.name", "weighting.name", "radius.name", "awp.enabled")
    missing = [
        f"{k} is {a or 'default'} but {cfg.method} uses {b}" for k, a, b in zip(names, have, named) if b and not a
    ]
    if missing:
        raise ConfigError(
            f"method {cfg.method!r} names a preset this config does not apply ({'; '.join(missing)}); build it with "
            f"irat.fit(out, method={cfg.method!r}, ...) or irat.presets.preset_config(None, {cfg.method!r})"
        )
    cfg.method = "+".join(p for p in have if p)
