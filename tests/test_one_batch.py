"""One batch record and one loss: the trainer, AWP's proxy and BiLAW's look-ahead compute the training loss in
one place (`Parts.loss`) from one record that the loop fills in stages (`Batch`)."""

from __future__ import annotations

from irat.cli import main
from irat.config import Config
from irat.methods import apply_method


def _method(name: str) -> Config:
    cfg = Config()
    apply_method(cfg, name)
    return cfg


def test_the_loss_fills_a_copy_of_the_batch():
    """Parts.loss returns the batch with this forward's logits and raw weights; the caller's stays as it was (so
    AWP's proxy pass leaves nothing in the record the real step reads)."""
    import torch

    from irat.parts import Batch, build_parts
    from irat.parts.base import RunContext

    cfg = _method("mail-at")
    cfg.weighting.burn_in = 0
    parts = build_parts(cfg, RunContext(cfg, num_classes=3))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.rand(6, 1, 2, 2), torch.arange(6) % 3
    batch = Batch(net=net, model=net, x=x, y=y, idx=torch.arange(6), epoch=1, eps=0.1, alpha=0.025, lr=0.1, global_n=6)
    parts.objective.craft(batch)
    loss, filled = parts.loss(batch, net)
    assert batch.logits_adv is None and batch.w_raw is None  # untouched
    assert filled.logits_adv.shape == (6, 3) and filled.w_raw.shape == (6,) and filled.forward is net
    assert torch.isfinite(loss)


def test_learned_weights_see_the_second_example_through_the_one_loss(tmp_path):
    """BiLAW's look-ahead differentiates the same loss as the real step (Parts.loss), second examples included:
    with trades-mix (weights kept in [0, 1]) it trains, and its look-ahead loss changes with x_cw."""
    import torch

    from irat.parts import Batch, build_parts
    from irat.parts.base import RunContext
    from irat.testing import synthetic

    args = ["train", "--objective", "trades-mix", "--weighting", "bilaw", "--set", "weighting.normalization=none"]
    args += ["--burn-in", "0", "--dataset", "digits", "--model", "tinycnn", "--epochs", "1", "--quiet"]
    args += ["--set", "data.train_subset=96", "--set", "val_n=32", "--set", "val_steps=1", "--set", "batch_size=32"]
    args += ["--set", "weighting.bilaw.meta_size=16", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    cfg = _method("gair-trades-rst")
    cfg.weighting.name = "bilaw"
    parts = build_parts(cfg, RunContext(cfg, num_classes=4))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    x, y = synthetic().train.x[:8].float() / 255, torch.arange(8) % 4
    batch = Batch(net=net, model=net, x=x, y=y, idx=torch.arange(8), epoch=1, eps=0.1, alpha=0.025, lr=0.1, global_n=8)
    parts.objective.craft(batch)
    scale = torch.full((8,), 0.5)
    with_cw = parts.loss(batch, net, scale=scale)[0]
    batch.x_adv2 = batch.x_adv  # the CW point moved onto the KL point: the mixture's second term changes
    assert parts.loss(batch, net, scale=scale)[0] != with_cw
