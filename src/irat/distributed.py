"""Data parallelism under `torchrun` (DistributedDataParallel): process group, shards, collectives.

One engine, N processes. Every rank holds the whole (small, device-resident) dataset and draws the
same global batch from the same seeded generator; rank r trains on its contiguous slice of it
(`shard_range`, the split `torch.tensor_split` makes), so `--batch-size` stays the global batch and
the data order does not depend on the number of ranks. Random draws that are per example (PGD's
random start, FAT's step noise) are drawn for the whole global batch on every rank and sliced
(`shard_noise`, passed to the attacks as their `noise`), so a rank's examples get exactly the noise they would get in one process and the
RNG streams stay identical across ranks (which is also why rank 0's RNG state resumes every rank).

Single process (no torchrun, or WORLD_SIZE=1): every helper is the identity and nothing is imported
from torch.distributed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .errors import ConfigError


@dataclass(frozen=True)
class Context:
    """This process's place in the job: rank, world size, local rank (its GPU on the node)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the only rank that writes checkpoints, logs, records and prints."""
        return self.rank == 0


_CTX = Context()


def context() -> Context:
    return _CTX


def is_main_process() -> bool:
    """Rank 0 — also before the process group is joined (torchrun's RANK)."""
    return _CTX.main if _CTX.enabled else int(os.environ.get("RANK", "0")) == 0


def requested() -> bool:
    """Whether this process was started by torchrun (or another launcher) with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(init_method: str | None = None, *, rank: int | None = None, world: int | None = None) -> Context:
    """Join the process group named by torchrun's environment (or `init_method`, rank, world for tests):
    NCCL for CUDA tensors and gloo for CPU ones, so a run may use either device. A no-op with one rank."""
    global _CTX
    world = int(os.environ.get("WORLD_SIZE", "1")) if world is None else world
    if world <= 1:
        return _CTX
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(
            "cpu:gloo,cuda:nccl" if cuda else "gloo", init_method=init_method, rank=rank, world_size=world
        )
    _CTX = Context(rank=rank, world=world, local_rank=local)
    return _CTX


def shutdown() -> None:
    """Leave the process group (end of a torchrun job or of a test) and restore single-process helpers."""
    global _CTX
    if _CTX.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    _CTX = Context()


def device_for(device: torch.device) -> torch.device:
    """A rank's device: `cuda` means this rank's GPU (cuda:LOCAL_RANK) under torchrun."""
    if _CTX.enabled and device.type == "cuda":
        return torch.device("cuda", _CTX.local_rank)
    return device


def shard_range(n: int, rank: int | None = None, world: int | None = None) -> tuple[int, int]:
    """Rank `rank`'s slice [lo, hi) of n items: contiguous, the first n mod W ranks one item longer."""
    rank = _CTX.rank if rank is None else rank
    world = _CTX.world if world is None else world
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def shard_noise(n: int, lo: int, hi: int) -> Callable[..., torch.Tensor]:
    """An attack's `noise` (see `irat.attacks.noise.draw_noise`) for the slice [lo, hi) of a global batch
    of n: a batch-leading draw of the slice's size is drawn for all n and sliced, so these examples get
    exactly the values one process would give them; any other shape is drawn as asked."""

    def noise(
        shape: tuple[int, ...] | torch.Size,
        *,
        normal: bool,
        device: torch.device,
        dtype: torch.dtype,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        draw = torch.randn if normal else torch.rand
        if len(shape) and shape[0] == hi - lo and n != hi - lo:
            return draw((n, *shape[1:]), device=device, dtype=dtype, generator=generator)[lo:hi]
        return draw(tuple(shape), device=device, dtype=dtype, generator=generator)

    return noise


# -- collectives (identity with one rank) ---------------------------------------------------------
class _SumOverRanks(torch.autograd.Function):
    """y = Σ_r x_r on every rank; the loss is Σ_r L_r, so ∂/∂x_r = Σ_r' ∂L_r'/∂y — again a sum over ranks."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        return all_reduce_(t.clone())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return all_reduce_(grad.clone())


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Σ over ranks, differentiable (its backward sums the gradients over ranks)."""
    if not _CTX.enabled:
        return t
    return _SumOverRanks.apply(t)


def all_reduce_(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place Σ (or max) over ranks of a tensor that needs no gradient."""
    if _CTX.enabled:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return t


def all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Σ over ranks of the parameters' gradients, flattened into one collective."""
    if not _CTX.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        with torch.no_grad():
            for g, total in zip(grads, sum_tensors(grads)):
                g.copy_(total)


def sum_tensors(ts: list[torch.Tensor]) -> list[torch.Tensor]:
    """Differentiable Σ over ranks of a list of tensors, as one collective on their concatenation."""
    if not _CTX.enabled:
        return ts
    flat = all_reduce_sum(torch.cat([t.reshape(-1) for t in ts]))
    return [part.view_as(t) for t, part in zip(ts, flat.split([t.numel() for t in ts]))]


def gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's tensor (first dimensions may differ) in rank order, on every rank."""
    if not _CTX.enabled:
        return t
    import torch.distributed as dist

    if t.dtype == torch.bool:  # gathered as bytes (not every backend gathers bool)
        return gather_cat(t.to(torch.uint8)).bool()
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(_CTX.world)]
    dist.all_gather(sizes, n)
    sizes_i = [int(s) for s in sizes]
    width = max(sizes_i)
    padded = torch.zeros((width, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(_CTX.world)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes_i)])


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's (small, picklable) Python object, in rank order; [obj] in one process."""
    if not _CTX.enabled:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * _CTX.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's Python object on every rank."""
    if not _CTX.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _CTX.enabled:
        import torch.distributed as dist

        dist.barrier()


def check_batch_size(batch_size: int) -> None:
    """Every rank needs at least one example of each full global batch."""
    if _CTX.enabled and batch_size < _CTX.world:
        raise ConfigError(
            f"batch_size {batch_size} is the global batch and must be at least the number of ranks ({_CTX.world})"
        )
