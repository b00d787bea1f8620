"""Input validation shared by the public attack and evaluation functions, and model-mode helpers."""

from __future__ import annotations

import contextlib
import inspect
import math
import typing
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn as nn

from ..config import BnMode
from ..errors import IratError


def model_meta(model: nn.Module) -> dict:
    m = getattr(model, "irat_meta", None)
    if m is None and hasattr(model, "module"):
        m = getattr(model.module, "irat_meta", None)
    return m or {}


def check_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse inputs outside [0,1], labels out of range and a channel count the model was not built for."""
    if not torch.is_tensor(x) or not torch.is_tensor(y):
        raise IratError("inputs and labels must be torch tensors")
    if x.dim() != 4:
        raise IratError(f"inputs must be a batch of images N×C×H×W, got shape {tuple(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise IratError(f"labels must be a vector of {x.shape[0]} class indices, got shape {tuple(y.shape)}")
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise IratError(f"labels must be integer class indices, got dtype {y.dtype}")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise IratError(
            f"inputs must lie in [0,1] (irat models normalise internally if at all); "
            f"got values in [{float(x.min()):.4g}, {float(x.max()):.4g}]"
        )
    meta = model_meta(model)
    if meta.get("in_channels") is not None and x.shape[1] != meta["in_channels"]:
        raise IratError(f"the model takes {meta['in_channels']}-channel inputs, got {x.shape[1]} channels")
    ncls = meta.get("num_classes")
    if ncls is not None and y.numel() and (int(y.min()) < 0 or int(y.max()) >= ncls):
        raise IratError(
            f"labels must lie in [0, {ncls - 1}] for this {ncls}-class model; got {int(y.min())}..{int(y.max())}"
        )


def check_eps(eps: float | torch.Tensor, name: str = "eps") -> None:
    bad = (eps <= 0).any().item() if torch.is_tensor(eps) else not (eps > 0)
    if bad:
        raise IratError(f"{name} must be > 0, got {eps if not torch.is_tensor(eps) else 'a tensor with values <= 0'}")


def check_radius(eps: float, norm: str, shape: tuple[int, ...] | None = None, name: str = "eps") -> None:
    """A threat-model radius that means something for inputs in [0, 1]: finite, ℓ∞ below 1 (≥ 1 allows any
    image: a scale mistake such as 8 for 8/255), ℓ2 at most the input's diameter √(C·H·W)."""
    if not math.isfinite(eps) or eps <= 0:
        raise IratError(f"{name} must be > 0 and finite, got {eps!r}")
    if norm == "linf" and eps >= 1:
        raise IratError(
            f"{name} = {eps:g} covers the whole [0,1] range for linf, so every input is reachable; "
            f"write the radius as a fraction of the range, e.g. 8/255 for 8 grey levels"
        )
    if norm == "l2" and shape is not None:
        diameter = math.sqrt(math.prod(shape))
        if eps > diameter:
            raise IratError(
                f"{name} = {eps:g} is larger than the diameter of the input space ({diameter:.4g} for "
                f"{'x'.join(map(str, shape))} inputs in [0,1]); check its scale"
            )


BN_MODES: tuple[str, ...] = typing.get_args(BnMode)


@contextlib.contextmanager
def attack_mode(model: nn.Module, bn_mode: str = "eval") -> Iterator[None]:
    """Freeze parameters (no parameter gradients while attacking) and set the BN mode; restore after.

    eval: running statistics; train: batch statistics, running statistics updated; train-frozen:
    batch statistics without touching the running ones (ST-AT's attack).
    """
    if bn_mode not in BN_MODES:
        raise IratError(f"bn_mode must be one of {', '.join(BN_MODES)}, got {bn_mode!r}")
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    model.train(bn_mode != "eval")
    try:
        with frozen_bn_stats(model, bn_mode == "train-frozen"):
            yield
    finally:
        model.train(was_training)
        for p, f in flags:
            p.requires_grad_(f)


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Train-mode forwards inside use batch statistics but leave BN's running statistics unchanged."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if enabled else []
    saved = [(m, m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom, nbt in saved:
            m.momentum = mom
            if nbt is not None:
                m.num_batches_tracked.copy_(nbt)  # type: ignore[union-attr]


def clean_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode logits of the clean batch: one forward gives correctness, class count and targets."""
    with torch.no_grad(), attack_mode(model, "eval"):
        return model(x)


def clean_start(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """What every restart-based attack begins with: detached inputs, integer labels, the result buffer
    (x itself: examples not broken are returned unchanged) and, for a non-empty batch, the clean
    eval-mode logits and which examples they classify correctly (None, None for an empty batch)."""
    x, y = x.detach(), y.long()
    if x.shape[0] == 0:
        return x, y, x.clone(), None, None
    logits = clean_logits(model, x)
    return x, y, x.clone(), logits, logits.argmax(1) == y


def need_classes(logits: torch.Tensor, n: int, what: str) -> int:
    c = logits.shape[1]
    if c < n:
        raise IratError(f"{what} needs at least {n} classes; the model has {c}")
    return c


def attack_still_robust(adv: torch.Tensor, robust: torch.Tensor, run) -> bool:
    """One restart: `run(todo)` attacks the examples still classified correctly (indices `todo`) and
    returns (candidates, broken mask); broken ones are written into `adv` and leave `robust`.
    Returns False when nothing was left to attack."""
    todo = robust.nonzero().squeeze(1)
    if len(todo) == 0:
        return False
    found, broken = run(todo)
    adv[todo[broken]] = found[broken]
    robust[todo[broken]] = False
    return True


def keyword_defaults(fn: Callable[..., Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The defaults of an attack function's keyword options: the one place an attack states them."""
    params = inspect.signature(fn).parameters
    return {n: params[n].default for n in names if n in params and params[n].default is not inspect.Parameter.empty}
