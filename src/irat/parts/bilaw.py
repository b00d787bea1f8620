"""BiLAW (docs/methods.md §3.5): instance weights learned by a one-step look-ahead on a validation set.

Each iteration: (1) θ̃ = θ − η·∇_θ Σ_i ω_i(μ)·ℓ_i(θ), kept differentiable in μ (torch.func);
(2) μ ← μ − η_μ·∇_μ L_val(θ̃), L_val the unweighted robust CE of a PGD-attacked validation batch;
(3) ω recomputed with the new μ weights the real step on θ. The weight net sees the multi-class
margin vector Δ_i (natural input; `weighting.bilaw.input` picks Table 8's alternatives). The non-parametric variant takes ω_i ∝ max(0, ⟨∇ℓ_i, ∇L_val⟩),
obtained as −∂L_val(θ̃(ε))/∂ε_i at ε = 0 (the same look-ahead with a per-example ε).

Under torchrun each rank holds a slice of the training batch and of the validation batch: the weights
are normalised by the global Σω, the look-ahead gradient is the sum of the ranks' shares (a
differentiable all-reduce, so ∂L_val/∂μ flows back to every rank's examples), and the μ gradient is
summed over ranks before Adam's step — θ̃, L_val and μ are the same on every rank and equal to one
process's on the whole batch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from ..attacks.pgd import pgd
from ..config import Config
from ..data import DeviceData
from ..errors import ConfigError
from ..margins import margin_vector, probabilistic_margin
from .base import Batch, RunContext, _identity_list
from .weighting import Weighting, natural_logits, register_weighting


@dataclass
class BiLAWOptions:
    """BiLAW's weight net and the validation set that drives it (`--set weighting.bilaw.KEY=VALUE`; the
    non-parametric variant reads meta_size and lr from here too)."""

    hidden: int | list = 128  # weight net: Linear(C,h) → ReLU → Linear(h,1) → sigmoid; a list: more layers
    input: Literal["multiclass-margin", "margin", "adv-loss", "loss-diff"] = "multiclass-margin"  # Table 8
    lr: float = 1.0e-3  # Adam step size of the weight net (not given in the paper: our choice)
    meta_size: int = 1000  # validation examples that drive the weight net


class WeightNet(nn.Module):
    """ω_μ: Linear(d, h₁) → ReLU → … → Linear(h_k, 1) → sigmoid; `hidden` is one width or a list
    (BiLAW Table 6: 128 — the default —, 64, 64–64, 256)."""

    def __init__(self, in_features: int, hidden: int | list[int] = 128):
        super().__init__()
        widths = [hidden] if isinstance(hidden, int) else list(hidden)
        layers: list[nn.Module] = []
        for a, b in zip([in_features] + widths[:-1], widths):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], 1))

    def forward(self, delta: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(delta)).squeeze(1)


@torch.no_grad()
def weight_net_input(
    kind: str, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """What the weight net sees (BiLAW Table 8): the multi-class margin Δ (Def. 3, the method's choice,
    B×C), the margin (Def. 2, B×1), the adversarial loss ℓ̂ (B×1) or ℓ̂ − ℓ (B×1); natural logits in eval mode."""
    nat = natural_logits(model, x)
    if kind == "multiclass-margin":
        return margin_vector(nat, y)
    if kind == "margin":
        return probabilistic_margin(nat, y)[:, None]
    adv = F.cross_entropy(natural_logits(model, x_adv), y, reduction="none")[:, None]
    return adv if kind == "adv-loss" else adv - F.cross_entropy(nat, y, reduction="none")[:, None]


def lookahead_val_loss(
    model: nn.Module,
    loss: Callable[[Any, torch.Tensor], torch.Tensor],
    scale: torch.Tensor,
    lr: float,
    xv_adv: torch.Tensor,
    yv: torch.Tensor,
    *,
    share: float = 1.0,
    val_total: int | None = None,
    sum_tensors: Callable[[list[torch.Tensor]], list[torch.Tensor]] = _identity_list,
) -> torch.Tensor:
    """L_val(θ̃) with θ̃ = θ − η·∇_θ loss(θ; ω = scale), differentiable in `scale` (and so in μ). `loss(forward,
    scale)` is the run's training loss of the batch under `forward` (`Parts.loss`: the same terms, second examples
    included, as the real step).

    share: this rank's fraction of the training batch (1 in one process); val_total: the size of the whole
    validation batch (default len(yv)); sum_tensors: Σ over ranks. The value returned is this rank's share of
    L_val; the shares sum to it."""
    params: dict[str, torch.Tensor] = {n: p for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}  # the look-ahead leaves BN statistics alone

    def forward_with(p: dict[str, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda inp: functional_call(model, (p, buffers), (inp,))

    total = share * loss(forward_with(params), scale)
    grads = sum_tensors(list(torch.autograd.grad(total, list(params.values()), create_graph=True)))
    lookahead = {n: p - lr * g for (n, p), g in zip(params.items(), grads)}
    return F.cross_entropy(forward_with(lookahead)(xv_adv), yv, reduction="sum") / (val_total or len(yv))


@register_weighting("bilaw")
class BiLAW(Weighting):
    """BiLAW: a weight net ω_μ on the multi-class margin, trained by a one-step look-ahead (Alg. 1). It
    takes `weighting.bilaw.meta_size` examples out of the training set as the validation set that drives μ."""

    Options = BiLAWOptions
    learned = True
    parametric = True

    def __init__(self, cfg: Config, ctx: RunContext | None = None):
        super().__init__(cfg, ctx)
        o, device = self.options, self.ctx.device
        self.net_input = o.input
        self.net = WeightNet(self.ctx.num_classes if self.net_input == "multiclass-margin" else 1, o.hidden).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=o.lr)
        self.meta: DeviceData | None = None
        self.batch_size = cfg.batch_size
        self.gen = torch.Generator(device=device).manual_seed(cfg.seed + 7919)
        self._iter: Any = iter(())
        self.last_val_loss = torch.zeros((), device=device)
        self._val_losses: list[torch.Tensor] = []

    @classmethod
    def check(cls, cfg: Config) -> None:
        hidden = cls.options_for(cfg).hidden
        widths = [hidden] if not isinstance(hidden, list) else hidden
        if not widths or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in widths):
            raise ConfigError(
                f"weighting.bilaw.hidden must be a width >= 1 or a list of them (e.g. [64, 64]), got {hidden!r}"
            )

    @classmethod
    def needs(cls, cfg: Config) -> frozenset[str]:
        return frozenset({"pgd-examples"})

    def split_data(self, train: DeviceData) -> DeviceData:
        """BiLAW's second validation set (drives the weight net), split off the training set, seeded."""
        n, size = len(train), self.options.meta_size
        if size < 1:
            raise ConfigError(f"weighting.bilaw.meta_size must be >= 1, got {size}")
        if size >= n // 2:  # e.g. the default 1000 on the digits' 438: scaled to a fifth, said and recorded
            fitted = max(1, n // 5)
            print(
                f"irat: weighting.bilaw.meta_size {size} does not fit {n} training examples; using {fitted} "
                f"(a fifth; set weighting.bilaw.meta_size to choose)",
                file=sys.stderr,
            )
            size = self.options.meta_size = fitted
            self.w.options.setdefault(self.options_key or self.name, {})["meta_size"] = fitted  # recorded in config
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.data.split_seed + 1))
        self.meta = train.subset(perm[:size].sort().values)
        return train.subset(perm[size:].sort().values)

    def meta_attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: Any) -> torch.Tensor:
        """PGD examples of a validation batch for the look-ahead (CE, the training threat model)."""
        a = self.ctx.attack
        return pgd(
            model,
            x,
            y,
            eps=a.eps,
            alpha=a.alpha,
            steps=a.steps,
            norm=a.norm,
            loss="ce",
            start="uniform",
            bn_mode=a.bn_mode,
            noise=noise,
            check_inputs=False,
        )

    def before_loss(self, batch: Batch, loss: Callable[[Any, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        w = self.weights(batch, loss)
        self._val_losses.append(self.last_val_loss.reshape(1))
        return w

    def epoch_metrics(self) -> dict[str, Any]:
        if not self._val_losses:
            return {}
        loss = torch.cat(self._val_losses).mean().item()
        self._val_losses = []
        return {"bilaw_val_loss": loss}

    def new_epoch(self) -> None:
        """A fresh permutation of the validation set each epoch (so that resume is exact)."""
        self._iter = iter(())

    def _meta_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.meta is not None
        try:
            x, y, _ = next(self._iter)
        except StopIteration:
            self._iter = self.meta.batches(self.batch_size, shuffle=True, generator=self.gen, drop_last=False)
            x, y, _ = next(self._iter)
        return x, y

    def weights(self, batch: Batch, loss: Callable[[Any, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Update μ by the look-ahead (parametric) and return raw weights for the real step (this rank holds
        len(batch.y) of the global batch)."""
        ctx, model, x, y, b = self.ctx, batch.model, batch.x, batch.y, batch.global_n
        assert batch.x_adv is not None
        xv, yv = self._meta_batch()
        nv = len(yv)
        lo, hi = ctx.shard(nv)  # this rank's slice of the validation batch
        xv, yv = xv[lo:hi], yv[lo:hi]
        xv_adv = self.meta_attack(model, xv, yv, ctx.shard_noise(nv, lo, hi))
        delta = weight_net_input(self.net_input, model, x, batch.x_adv, y) if self.parametric else None
        if self.parametric:
            w = self.net(delta)
            scale = w * b / ctx.global_sum(w.sum()).clamp_min(1e-12)
        else:
            eps = torch.zeros(len(y), device=x.device, requires_grad=True)
            scale = eps * b
        val_loss = lookahead_val_loss(
            model, loss, scale, batch.lr, xv_adv, yv, share=len(y) / b, val_total=nv, sum_tensors=ctx.sum_tensors
        )
        self.last_val_loss = ctx.global_sum(val_loss.detach())
        if self.parametric:
            g_mu = ctx.sum_tensors(list(torch.autograd.grad(val_loss, list(self.net.parameters()))))
            self.opt.zero_grad(set_to_none=True)
            for p, g in zip(self.net.parameters(), g_mu):
                p.grad = g
            self.opt.step()
            with torch.no_grad():
                return self.net(delta)
        (g_eps,) = torch.autograd.grad(val_loss, eps)
        w = torch.clamp(-g_eps.detach(), min=0.0)
        return w if float(ctx.global_sum(w.sum())) > 0 else torch.ones_like(w)

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"].cpu())
        self._iter = iter(())


@register_weighting("bilaw-np")
class BiLAWNonParametric(BiLAW):
    """BiLAW's non-parametric variant: ω_i ∝ max(0, ⟨∇ℓ_i, ∇L_val⟩) (§4, variant 1)."""

    options_key = "bilaw"
    parametric = False
