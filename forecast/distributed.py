"""Data-parallel training over processes (Lightning DDP): each process's share of every batch.

The global batch ``b`` is what a single process trains on (``WindowBatches[b]``, in the same
seeded order). With ``world`` processes it is cut into ``world`` contiguous parts and process
``rank`` trains on part ``rank``; DDP averages the processes' gradients. Each part's loss is
weighted by ``world × n_part / n_batch``, so that the average is the gradient of the global batch's
mean loss also when a batch does not split evenly (the last one) or leaves a process nothing.

``launched_as_worker`` tells, from the launcher's environment variables and before Lightning
starts, whether this process is a DDP worker other than global rank 0 (which alone tracks).
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import Dataset

__all__ = ["BatchShare", "launched_as_worker", "share_bounds"]


def share_bounds(n_windows: int, rank: int, world: int) -> tuple[int, int]:
    """``[start, stop)`` of process ``rank``'s part of a batch of ``n_windows`` (sizes differ by ≤ 1)."""
    base, extra = divmod(n_windows, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class BatchShare(Dataset):
    """Process ``rank``'s part of every global batch of ``batches``, with its loss weight.

    Items are ``(x, series id, calendar, target, weight)``; ``weight`` is ``world × n_part /
    n_batch`` (exactly 1.0 with one process, whose items are the whole batches).

    Args:
        batches: the global batches (a ``forecast.training.WindowBatches``).
        rank: this process's global rank, ``0 … world − 1``.
        world: processes in all.
    """

    def __init__(self, batches: Dataset, rank: int, world: int) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"BatchShare: rank {rank} is not in 0 … {world - 1}")
        self.batches, self.rank, self.world = batches, rank, world

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __getitem__(self, b: int) -> tuple[torch.Tensor, ...]:
        if self.world == 1:
            return (*self.batches[b], torch.tensor(1.0))
        size = self.batches.batch_size  # type: ignore[attr-defined]
        first = b * size
        n = min(size, len(self.batches.origins) - first)  # type: ignore[attr-defined]
        start, stop = share_bounds(n, self.rank, self.world)
        part = self.batches.windows(first + start, first + stop)  # type: ignore[attr-defined]
        return (*part, torch.tensor(self.world * (stop - start) / n, dtype=torch.float32))


def launched_as_worker() -> bool:
    """True in a DDP process other than global rank 0, as its launcher's variables say.

    ``RANK`` (torchrun, ``SLURM_PROCID`` under Slurm) when set; else ``NODE_RANK`` (or torchrun's
    ``GROUP_RANK``) and ``LOCAL_RANK``, which Lightning sets for the processes it starts.
    """
    env = os.environ
    for key in ("RANK", "SLURM_PROCID"):
        if env.get(key, "").isdigit():
            return int(env[key]) != 0
    node = env.get("NODE_RANK") or env.get("GROUP_RANK") or "0"
    local = env.get("LOCAL_RANK") or "0"
    return (node.isdigit() and int(node) != 0) or (local.isdigit() and int(local) != 0)
