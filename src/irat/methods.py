"""Method names: each is a preset of config choices plus its paper's hyperparameters.

The methods issue extends this table with the reweighting methods (GAIRAT, MAIL, MWPB, BiLAW, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .config import Config, apply_dict
from .errors import ConfigError


@dataclass
class Method:
    name: str
    description: str
    source: str
    overrides: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


METHODS: dict[str, Method] = {}


def register_method(m: Method) -> None:
    METHODS[m.name] = m


register_method(Method("at", "Madry et al. PGD adversarial training: CE on PGD examples (uniform start)",
                       "METHODS §2 (Madry et al. 2018)", {"objective": {"name": "at"}}, ("madry", "pgd-at")))
register_method(Method("trades", "TRADES: CE(f(x),y) + β·KL(p(x)‖p(x')), KL attack from x + 0.001·N(0,I), β = 6",
                       "METHODS §2 (Zhang et al. 2019)", {"objective": {"name": "trades", "beta": 6.0}}))
register_method(Method("mart", "MART: boosted CE on x' + β·KL·(1 − p_y(x)), β = 6",
                       "METHODS §2 (Wang et al. 2020)", {"objective": {"name": "mart", "beta": 6.0}}))
register_method(Method("fat", "FAT: AT on friendly adversarial data from early-stopped PGD-K-τ, τ 0→1 (50)→2 (90)",
                       "METHODS §4 (Zhang et al. 2020)",
                       {"objective": {"name": "fat", "fat_tau": [[0, 0], [50, 1], [90, 2]], "fat_noise": 0.001}}))
register_method(Method("fat-trades", "FAT for TRADES: KL attack early-stopped, τ 0/1/2/3 at epochs 30/50/70",
                       "METHODS §4", {"objective": {"name": "fat-trades", "beta": 6.0,
                                                    "fat_tau": [[0, 0], [30, 1], [50, 2], [70, 3]]}}))
register_method(Method("fat-mart", "FAT for MART: CE attack early-stopped, FAT's τ schedule",
                       "METHODS §4", {"objective": {"name": "fat-mart", "beta": 6.0,
                                                    "fat_tau": [[0, 0], [50, 1], [90, 2]]}}))


def get_method(name: str) -> Method:
    key = name.lower()
    for m in METHODS.values():
        if key == m.name or key in m.aliases:
            return m
    raise ConfigError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))} (see `irat methods`)")


def apply_method(cfg: Config, name: str) -> None:
    m = get_method(name)
    cfg.method = m.name
    apply_dict(cfg, m.overrides)
