"""Turn a weighting scheme's config into per-term instance weights for one batch (METHODS §3).

The weight is computed without gradient (except WMMR with `wmmr_detach: false`), only after the
burn-in, normalised over the global batch, and applied to the terms the objective's rule names.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..attacks.checks import attack_mode
from ..attacks.pgd import PGDInfo
from ..config import Config
from ..errors import ConfigError
from ..margins import logit_margin, pm_dif, probabilistic_margin
from ..objectives import Objective, weight_targets
from ..weighting import gair_lambda, gair_weight, mail_weight, normalize, wmmr_weight

SCHEMES = ("none", "gair", "mail", "wmmr", "bilaw", "bilaw-np")
MAIL_MARGINS = ("pm-adv", "pm-nat", "pm-dif", "logit-adv", "logit-nat")


class Reweighter:
    def __init__(self, cfg: Config, objective: Objective):
        w = cfg.weighting
        if w.name not in SCHEMES:
            raise ConfigError(f"weighting.name must be one of {', '.join(SCHEMES)}, got {w.name!r}")
        if w.mail_margin not in MAIL_MARGINS:
            raise ConfigError(f"weighting.mail_margin must be one of {', '.join(MAIL_MARGINS)}, got {w.mail_margin!r}")
        self.cfg = cfg
        self.w = w
        self.targets = list(w.apply_to) if w.apply_to else weight_targets(objective.name, w.name)
        self.objective = objective

    @property
    def needs_kappa(self) -> bool:
        return self.w.name == "gair" or (self.w.name == "mail" and self.w.mail_margin == "pm-dif")

    @property
    def record_step(self) -> str | None:
        return "kappa" if self.w.name == "mail" and self.w.mail_margin == "pm-dif" else None

    def active(self, epoch: int) -> bool:
        return self.w.name != "none" and epoch > self.w.burn_in

    def lam(self, epoch: int) -> float:
        w = self.w
        return gair_lambda(w.gair_lambda_schedule, epoch, self.cfg.epochs, w.burn_in, w.gair_lambda,
                           w.gair_lambda_end, w.gair_lambda_table)

    def raw(self, model: nn.Module, *, info: PGDInfo | None, x: torch.Tensor, y: torch.Tensor,
            logits_adv: torch.Tensor, logits_nat: torch.Tensor | None, epoch: int) -> torch.Tensor:
        """Un-normalised weights w_i for the heuristic schemes (GAIR, MAIL, WMMR)."""
        w = self.w
        if w.name == "gair":
            assert info is not None
            return gair_weight(info.kappa, info.steps, self.lam(epoch), w.gair_fn)
        if w.name == "mail":
            return mail_weight(self.margin(model, info, x, y, logits_adv, logits_nat), w.mail_gamma, w.mail_bias)
        if w.name == "wmmr":
            m = probabilistic_margin(logits_adv if not w.wmmr_detach else logits_adv.detach(), y)
            return wmmr_weight(m, w.wmmr_alpha)
        raise ConfigError(f"weighting {w.name!r} is learned, not computed from margins")

    @torch.no_grad()
    def margin(self, model, info, x, y, logits_adv, logits_nat) -> torch.Tensor:
        """MAIL's margin. PM-adv reuses the training forward's adversarial logits (as the released code)."""
        kind = self.w.mail_margin
        if kind in ("pm-adv", "logit-adv"):
            fn = probabilistic_margin if kind == "pm-adv" else logit_margin
            return fn(logits_adv.detach(), y)
        nat = logits_nat.detach() if logits_nat is not None else natural_logits(model, x)
        if kind == "pm-nat":
            return probabilistic_margin(nat, y)
        if kind == "logit-nat":
            return logit_margin(nat, y)
        assert info is not None and info.x_at_step is not None
        with attack_mode(model, "eval"):
            at_step = model(info.x_at_step)
        return pm_dif(nat, at_step, y)

    def term_weights(self, w_raw: torch.Tensor) -> dict[str, torch.Tensor]:
        omega = normalize(w_raw, self.w.normalization, self.w.constant)
        return {t: omega for t in self.targets}


@torch.no_grad()
def natural_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with attack_mode(model, "eval"):
        return model(x)


def summarize(values: torch.Tensor, prefix: str) -> dict[str, Any]:
    """min/mean/max and the 10/25/50/75/90 % quantiles of a per-example quantity, for metrics.jsonl."""
    v = values.float()
    if v.numel() == 0:
        return {}
    q = torch.quantile(v, torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9], device=v.device, dtype=v.dtype)).tolist()
    return {f"{prefix}_min": v.min().item(), f"{prefix}_mean": v.mean().item(), f"{prefix}_max": v.max().item(),
            f"{prefix}_q": {"10": q[0], "25": q[1], "50": q[2], "75": q[3], "90": q[4]}}
