"""What the loop hands to its parts: the run (`RunContext`, once) and each batch (`Batch`, filled in stages).

The loop (docs/design.md): radius → attack (the objective's) → logits → objective terms → weights → step. A
part declares what it needs (`Weighting.needs`, `Objective.needs_natural`, ...) and reads it from these
records; it never reaches into the trainer.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..attacks.noise import Noise, draw_noise
from ..attacks.pgd import PGDInfo
from ..config import Config, coerce
from ..errors import ConfigError


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _identity_list(ts: list[torch.Tensor]) -> list[torch.Tensor]:
    return ts


def _whole(n: int) -> tuple[int, int]:
    return 0, n


def _own_noise(n: int, lo: int, hi: int) -> Noise:
    return draw_noise


@dataclass(frozen=True)
class TrainingAttack:
    """The training threat model and attack, read once from `cfg.attack` (α resolved: ε/4 unless set; start and
    loss None where the objective's own defaults apply)."""

    norm: str
    eps: float
    alpha: float
    steps: int
    start: str | None
    loss: str | None
    bn_mode: str
    kappa: str
    restarts: int

    @classmethod
    def of(cls, cfg: Config) -> TrainingAttack:
        a = cfg.attack
        alpha = a.alpha if a.alpha is not None else a.eps / 4
        return cls(a.norm, a.eps, alpha, a.steps, a.start, a.loss, a.bn_mode, a.kappa, a.restarts)

    def pgd_kwargs(self, loss: str, start: str) -> dict[str, Any]:
        """The PGD engine's keyword settings (without ε, α and the random draws: a step's own), with `loss` and
        `start` where the configuration leaves them to the objective."""
        return dict(
            steps=self.steps,
            norm=self.norm,
            loss=self.loss or loss,
            start=self.start or start,
            restarts=self.restarts,
            bn_mode=self.bn_mode,
            kappa=self.kappa,
        )


@dataclass
class RunContext:
    """The run a part belongs to. `global_sum` is Σ over ranks (differentiable; the identity in one
    process): sums that define a weight normalisation or a batch mean go through it."""

    cfg: Config
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    num_classes: int = 10
    global_sum: Callable[[torch.Tensor], torch.Tensor] = _identity
    distributed: bool = False
    sum_tensors: Callable[[list[torch.Tensor]], list[torch.Tensor]] = _identity_list  # Σ over ranks of each tensor
    shard: Callable[[int], tuple[int, int]] = _whole  # this rank's slice [lo, hi) of a global batch of n
    shard_noise: Callable[[int, int, int], Noise] = _own_noise  # the draws of slice [lo, hi) of n examples
    attack: TrainingAttack = field(init=False)  # the training attack's settings, read once from cfg.attack

    def __post_init__(self) -> None:
        self.attack = TrainingAttack.of(self.cfg)


@dataclass
class Batch:
    """One batch on its way through the loop, filled in stages by whoever computes each (this rank's slice of
    the global batch under torchrun): the loop sets the inputs, the objective's `craft` the training examples,
    the loss (`Parts.loss`) the logits and the raw weights. A part reads what it declared it needs."""

    # 1. the inputs and this step's settings (the loop)
    net: nn.Module  # the forward the attacks use (compiled or not)
    model: nn.Module  # the model whose parameters are trained
    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor  # dataset indices of the examples
    epoch: int  # 1-based
    eps: float | torch.Tensor  # the radius part's ε (scalar or per example); the attack's own if it chose them (MMA)
    alpha: float | torch.Tensor
    lr: float  # the learning rate of this step (BiLAW's look-ahead)
    global_n: int  # size of the global batch
    noise: Noise = draw_noise  # per-example random draws (a rank's slice of the global draw)
    want_info: bool = False  # the attack should return its PGDInfo (κ, iterates)
    record_kappa_iterate: bool = False  # ... including the iterate at κ (MAIL's PM-dif, saved values)
    weights_active: bool = True  # whether instance weights apply in this step (False: burn-in, no weighting)
    # 2. the training examples (the objective's attack: `Objective.craft`)
    x_adv: torch.Tensor | None = None
    info: PGDInfo | None = None
    x_adv2: torch.Tensor | None = None  # a second example (trades-mix's CW point, ST-AT's collaborative one)
    mask: torch.Tensor | None = None  # which examples' adversarial term counts (MMA's hinge)
    # 3. the logits of the loss's forward (`Parts.loss`), and that forward (the model, AWP's proxy, a look-ahead)
    forward: Any = None
    logits_adv: torch.Tensor | None = None
    logits_nat: torch.Tensor | None = None  # when the objective needs f(x)
    logits_adv2: torch.Tensor | None = None
    # 4. the raw weights w_i >= 0 (the weighting scheme; None while none apply)
    w_raw: torch.Tensor | None = None

    @property
    def share(self) -> float:
        """This rank's fraction of the global batch (1 in one process)."""
        return len(self.y) / self.global_n


Step = Batch  # the name plug-ins of earlier releases import


class Part:
    """Base of every registered part: a name, typed options, a check before any work, optional state.

    `Options` (a dataclass whose fields all have defaults, optional) is the part's own config: a scheme named
    `my-scheme` is configured by `--set weighting.my-scheme.KEY=VALUE`, checked against these types (a
    `Literal[...]` field: one of its values). Field metadata says what the tools need to know: `config.EPOCHS`,
    `EPOCHS_BEFORE_END` and `EPOCH_TABLE` mark options that count epochs (scaled by `sweep --shorten`),
    `config.RESUMABLE` one that `--resume` may change.
    """

    name: str = ""
    section: str = ""  # its config section: objective, weighting or radius
    Options: type | None = None
    options_key: str = ""  # the name its options are set under, if not its own (variants: fat-trades → fat)
    neutral: bool = False  # changes nothing (no weighting, the threat model's ε): a run is not named after it

    @classmethod
    def options_for(cls, cfg: Config) -> Any:
        """This part's typed options in `cfg` (an `Options` instance; None for a part without options)."""
        return options_of(cls, getattr(cfg, cls.section), cls.section)

    @classmethod
    def check(cls, cfg: Config) -> None:
        """Refuse a configuration this part cannot run, with one message (before any work)."""

    @classmethod
    def idle_reason(cls, cfg: Config) -> str | None:
        """Why this part would do nothing in the whole run (e.g. a burn-in as long as the run), or None."""
        return None

    def prepare(self, n_index: int) -> None:
        """Once the training data is known (n_index = 1 + its largest example index): allocate per-example state."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep for an exact resume."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def epoch_metrics(self) -> dict[str, Any]:
        """Per-epoch statistics for metrics.jsonl (called once per epoch, after its last step)."""
        return {}


def options_of(cls: type[Part], section: Any, section_name: str = "") -> Any:
    """The part's typed options from its config section's `options[name]`, each value checked against
    the `Options` field's type (None for a part without options)."""
    key = cls.options_key or cls.name
    raw = dict(getattr(section, "options", {}).get(key, {}))
    where = f"{section_name or 'section'}.{key}"
    if cls.Options is None:
        if raw:
            raise ConfigError(f"{where} takes no options, got {', '.join(sorted(raw))}")
        return None
    fields = option_fields(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where} has no option {unknown[0]!r}; its options: {', '.join(fields)}")
    hints = typing.get_type_hints(cls.Options)
    return cls.Options(**{k: coerce(f"{where}.{k}", v, hints[k]) for k, v in raw.items()})


def option_fields(cls: type[Part]) -> dict[str, dataclasses.Field]:
    """The typed fields of a part's options, by name."""
    return {f.name: f for f in dataclasses.fields(cls.Options)} if cls.Options is not None else {}
