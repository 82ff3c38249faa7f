"""ADMM's site blocks on Ray actors: W actors, each owning a contiguous block of sites.

``control.admm`` builds one ``BlockWorker`` per actor (the coordinator block goes with the last
sites). Every ADMM iteration sends each actor its blocks' targets and ρ, and gathers their C x
(``ray.get`` over all actors at once, so the actors solve in parallel). Ray starts in-process on
this machine with its cores (at least W) the first time it is needed (``include_dashboard`` off), or joins the
cluster of ``RAY_ADDRESS``; a Ray already running is used as it is. Each actor runs one thread
(``OMP_NUM_THREADS=1``), so W actors use W cores.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from control.admm_blocks import BlockStructure, BlockWorker

__all__ = ["RayWorkers", "split_blocks"]

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def split_blocks(n_blocks: int, workers: int) -> list[np.ndarray]:
    """Contiguous runs of block indices, one per worker, as equal in count as they can be (at
    most ``n_blocks`` workers get any)."""
    return [part for part in np.array_split(np.arange(n_blocks), min(workers, n_blocks)) if len(part)]


def _ensure_ray(workers: int) -> Any:
    """Ray, started if needed (local: this machine's cores, at least ``workers``).

    Raises:
        ValueError: the running Ray has fewer CPUs than ``workers`` (the actors would wait forever).
    """
    import ray

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS") or None
        runtime_env = {"env_vars": ONE_THREAD | {k: os.environ[k] for k in ("PYTHONPATH",) if os.environ.get(k)}}
        if address is None:
            ray.init(address="local", num_cpus=max(workers, os.cpu_count() or 1), include_dashboard=False,
                     log_to_driver=False, runtime_env=runtime_env, logging_level=logging.WARNING)
        else:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, logging_level=logging.WARNING)
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < workers:
        raise ValueError(f"control.admm_workers: {workers}; the running Ray has {cpus:g} CPUs (valid: at most that)")
    return ray


class RayWorkers:
    """The blocks on ``workers`` Ray actors (the interface of ``control.admm.LocalWorkers``)."""

    def __init__(self, structures: list[BlockStructure], workers: int) -> None:
        ray = self._ray = _ensure_ray(workers)
        self.parts = split_blocks(len(structures), workers)
        actor = ray.remote(num_cpus=1)(BlockWorker)
        self.actors = [actor.remote([structures[i] for i in part]) for part in self.parts]

    def _scatter(self, items: list[Any]) -> list[list[Any]]:
        return [[items[i] for i in part] for part in self.parts]

    def _gather(self, per_actor: list[list[Any]]) -> list[Any]:
        out: list[Any] = [None] * sum(len(p) for p in self.parts)
        for part, values in zip(self.parts, per_actor, strict=True):
            for i, value in zip(part, values, strict=True):
                out[i] = value
        return out

    def load(self, data: list[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
        refs = [a.load.remote(d) for a, d in zip(self.actors, self._scatter(data), strict=True)]
        return self._gather(self._ray.get(refs))

    def iterate(self, costs: list[np.ndarray], rho: float, targets: list[np.ndarray]
                ) -> tuple[list[np.ndarray], list[str], list[float]]:
        """``BlockWorker.iterate`` on every actor at once; the seconds each actor computed."""
        refs = [a.iterate.remote(c, rho, t) for a, c, t in
                zip(self.actors, self._scatter(costs), self._scatter(targets), strict=True)]
        results = self._ray.get(refs)
        return self._gather([r[0] for r in results]), self._gather([r[1] for r in results]), [r[2] for r in results]

    def solutions(self) -> list[np.ndarray]:
        return self._gather(self._ray.get([a.solutions.remote() for a in self.actors]))
