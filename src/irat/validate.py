"""Config validation: every bad value stops with one clear message before any work starts.\n\nThe parts check their own options (`Part.check`) and the rules between them (`parts.check_parts`)."""

from __future__ import annotations

from .attacks.checks import check_radius
from .config import Config, check_types
from .data import get_spec
from .errors import ConfigError, IratError
from .models import canonical
from .parts import check_parts


def _positive(value, key: str, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"{key} must be a number {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def validate_config(cfg: Config) -> None:
    check_types(cfg)
    _positive(cfg.flatness_n, "flatness_n", allow_zero=True)
    _validate_unlabeled(cfg)
    if cfg.tensorboard:
        try:
            import torch.utils.tensorboard  # noqa: F401  (imports the `tensorboard` package)
        except ImportError:
            raise IratError(
                "tensorboard=true needs the `tensorboard` package (pip install tensorboard, or "
                "pip install 'irat[tensorboard]'); metrics.jsonl is written either way"
            ) from None
    if cfg.data.dataset.lower() != "npz":
        get_spec(cfg.data.dataset)
    canonical(cfg.model.arch)
    a = cfg.attack
    _positive(a.eps, "attack.eps (ε)")
    check_radius(a.eps, a.norm, name="attack.eps (ε)")
    if a.alpha is not None:
        _positive(a.alpha, "attack.alpha")
    for key, val in (
        ("attack.steps", a.steps),
        ("epochs", cfg.epochs),
        ("batch_size", cfg.batch_size),
        ("attack.restarts", a.restarts),
        ("eval_batch_size", cfg.eval_batch_size),
        ("val_every", cfg.val_every),
    ):
        if not isinstance(val, int) or isinstance(val, bool) or val < (0 if key == "attack.steps" else 1):
            raise ConfigError(f"{key} must be a whole number >= {0 if key == 'attack.steps' else 1}, got {val!r}")
    for key, size in (
        ("data.train_subset", cfg.data.train_subset),
        ("data.test_subset", cfg.data.test_subset),
        ("data.val_size", cfg.data.val_size),
    ):
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise ConfigError(f"{key} must be a whole number >= 1 (or null for all), got {size!r}")
    o = cfg.optim
    _positive(o.lr, "optim.lr")
    for key, values, kind in (
        ("optim.milestones", o.milestones, "epoch numbers"),
        ("optim.milestone_lrs", o.milestone_lrs, "learning rates"),
        ("save_per_example", cfg.save_per_example, "epoch numbers"),
    ):
        if values is not None and not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values
        ):
            raise ConfigError(f"{key} must be a list of {kind} > 0, got {values!r}")
    _positive(o.momentum, "optim.momentum", allow_zero=True)
    _positive(o.weight_decay, "optim.weight_decay", allow_zero=True)
    _positive(o.gamma, "optim.gamma")
    _positive(cfg.objective.beta, "objective.beta", allow_zero=True)
    w = cfg.weighting
    if not isinstance(w.burn_in, int) or isinstance(w.burn_in, bool) or w.burn_in < 0:
        raise ConfigError(f"weighting.burn_in must be a whole number >= 0, got {w.burn_in!r}")
    check_parts(cfg)


def _validate_unlabeled(cfg: Config) -> None:
    """RST's extra data: one source, a teacher that exists, a fraction strictly between 0 and 1."""
    from pathlib import Path

    u = cfg.unlabeled
    if not isinstance(u.withhold, int) or isinstance(u.withhold, bool) or u.withhold < 0:
        raise ConfigError(f"unlabeled.withhold must be a whole number >= 0, got {u.withhold!r}")
    used = bool(u.path) or u.withhold > 0
    if not used:
        return
    if u.path and u.withhold:
        raise ConfigError("set either unlabeled.path or unlabeled.withhold, not both")
    if u.path and not u.teacher:
        raise ConfigError(
            "unlabeled data needs a teacher for its pseudo-labels: set unlabeled.teacher to a run "
            "directory or checkpoint (e.g. one trained with --method standard)"
        )
    if not u.teacher:  # withhold alone: the examples are only removed (RST's labeled-only baseline)
        return
    if not Path(u.teacher).expanduser().exists():
        raise ConfigError(f"unlabeled.teacher: {u.teacher} does not exist")
    if not isinstance(u.fraction, (int, float)) or not 0 < u.fraction < 1:
        raise ConfigError(f"unlabeled.fraction must lie strictly between 0 and 1, got {u.fraction!r}")
