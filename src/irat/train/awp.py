"""Adversarial weight perturbation (docs/methods.md §5) as a wrapper around any objective and weighting.

Per step, after x' is crafted: copy the model into a proxy, take one SGD step on −loss there (the
loss of the global batch: under torchrun each rank's share, gradients summed over ranks), and
for every weight tensor with dim > 1 form v_l = (w'_l − w_l)·‖w_l‖/(‖w'_l − w_l‖ + 1e−20); then
w ← w + γ·v, compute the training loss and its gradient, step the optimizer, and w ← w − γ·v.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn as nn

from ..distributed import all_reduce_grads


class AWP:
    def __init__(self, model: nn.Module, gamma: float, proxy_lr: float):
        self.model = model
        self.gamma = float(gamma)
        self.proxy = copy.deepcopy(model)
        self.proxy_opt = torch.optim.SGD(self.proxy.parameters(), lr=proxy_lr)

    def perturbation(self, loss_fn: Callable[[nn.Module], torch.Tensor]) -> dict[str, torch.Tensor]:
        """v per weight tensor (dim > 1), scaled to the norm of that tensor."""
        self.proxy.load_state_dict(self.model.state_dict())
        self.proxy.train()
        loss = -loss_fn(self.proxy)
        self.proxy_opt.zero_grad(set_to_none=True)
        loss.backward()
        all_reduce_grads(list(self.proxy.parameters()))  # torchrun: every rank takes the same proxy step
        self.proxy_opt.step()
        diff = {}
        proxy_params = dict(self.proxy.named_parameters())
        for name, w in self.model.named_parameters():
            if w.dim() <= 1:
                continue
            d = proxy_params[name].detach() - w.detach()
            diff[name] = d * w.detach().norm() / (d.norm() + 1e-20)
        return diff

    @torch.no_grad()
    def apply(self, diff: dict[str, torch.Tensor], sign: float) -> None:
        """w ← w + sign·γ·v (sign +1 to perturb, −1 to restore)."""
        for name, w in self.model.named_parameters():
            if name in diff:
                w.add_(diff[name], alpha=sign * self.gamma)
