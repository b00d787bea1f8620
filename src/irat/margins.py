"""Margins used to weight examples (docs/methods.md §3): probabilistic margins, the multi-class margin vector.

All take logits and labels and return per-example tensors; nothing here needs gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def true_and_other(values: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v_y and max_{j≠y} v_j per example (logits or probabilities)."""
    true = values.gather(1, y[:, None]).squeeze(1)
    other = values.scatter(1, y[:, None], float("-inf")).amax(1)
    return true, other


def probabilistic_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PM = p_y − max_{j≠y} p_j on softmax probabilities (MAIL Eq. 5/6; WMMR's m; MWPB's d), in [−1, 1]."""
    true, other = true_and_other(F.softmax(logits, 1), y)
    return true - other


def logit_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j: MAIL's logit-margin ablation (App. Eq. 15)."""
    true, other = true_and_other(logits, y)
    return true - other


def pm_dif(logits_nat: torch.Tensor, logits_at_step: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PM-dif = p_y(x) − p_y(x + δ^(t)), t the LPS step κ (MAIL Eq. 7), in [−1, 1] (usually [0, 1])."""
    p_nat = F.softmax(logits_nat, 1).gather(1, y[:, None]).squeeze(1)
    p_t = F.softmax(logits_at_step, 1).gather(1, y[:, None]).squeeze(1)
    return p_nat - p_t


def margin_vector(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BiLAW's multi-class margin Δ_i^(j) = p_y(x_i) − p_j(x_i), a B×C matrix in [−1, 1] (zero at j = y)."""
    p = F.softmax(logits, 1)
    return p.gather(1, y[:, None]) - p
