"""Where an attack's random numbers come from: passed in, never read from module state.

An attack that draws per-example noise (PGD's random start, FAT's step noise, squeeze training's
starts) takes `noise=`, a function with `draw_noise`'s signature. The default draws for the batch it
is given; the data-parallel trainer passes `irat.distributed.shard_noise(...)`, which draws for the
whole global batch and returns this rank's slice, so every example gets the noise it would get in one
process.
"""

from __future__ import annotations

from typing import Protocol

import torch


class Noise(Protocol):
    def __call__(
        self,
        shape: tuple[int, ...] | torch.Size,
        *,
        normal: bool,
        device: torch.device,
        dtype: torch.dtype,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor: ...


def draw_noise(
    shape: tuple[int, ...] | torch.Size,
    *,
    normal: bool,
    device: torch.device,
    dtype: torch.dtype,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """N(0,1) (normal) or U[0,1) noise of `shape`."""
    draw = torch.randn if normal else torch.rand
    return draw(tuple(shape), device=device, dtype=dtype, generator=generator)
