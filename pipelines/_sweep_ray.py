"""A sweep's cells as Ray tasks (DESIGN.md §6: an existing distributed engine, no scheduler of our own).

``ray_session`` starts a local Ray in this process (``num_cpus = workers``, no dashboard) or joins a
cluster (``--address`` or ``RAY_ADDRESS``); a Ray already started (e.g. by a test fixture) is used
as it is and left running. ``run_cells`` submits one task per cell — one CPU each, and one thread
per worker (OMP / MKL / OpenBLAS through the job's environment, torch in the task) — and hands
each result to ``on_result`` as it arrives (``ray.wait``), so the driver writes files, logs MLflow
runs and draws progress while the rest run. A task that dies (a crashed worker) becomes a failed
``CellResult`` naming the cell; the others go on.

On a cluster every node needs this package, the data and the configs at the driver's paths (a
shared file system or an image), as for a local run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipelines._sweep_cells import Cell, CellResult, SweepSpec, cell_key, log_cell, run_cell

__all__ = ["ONE_THREAD", "RayOptions", "check_options", "cluster_address", "job_env", "ray_session", "run_cells"]

#: each worker one thread: the BLAS / OpenMP pools read these when a worker process starts
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1"}
_PASSED_ON = ("GREENLLM_CACHE", "GREENLLM_LOAD_DIR", "MLFLOW_TRACKING_URI", "PYTHONPATH")


@dataclass(frozen=True)
class RayOptions:
    """Where cells run: a cluster's ``address`` (None: ``RAY_ADDRESS`` or a local Ray) and the local Ray's CPUs."""

    address: str | None = None
    workers: int | None = None


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: ``--address``, else ``RAY_ADDRESS``, else None (a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def check_options(address: str | None, workers: int | None) -> str | None:
    """The cluster to join (``cluster_address``), once ``workers`` is checked against it.

    Raises:
        ValueError: ``workers`` < 1, or given together with a cluster address.
    """
    where = cluster_address(address)
    if workers is not None and workers < 1:
        raise ValueError(f"--workers {workers}: out of range (accepted: a whole number ≥ 1)")
    if where is not None and workers is not None:
        raise ValueError(f"--workers {workers}: only for a local Ray; the cluster at {where} has its own CPUs "
                         "(drop --workers; or, for a local Ray, drop --address and unset RAY_ADDRESS)")
    return where


def job_env() -> dict[str, str]:
    """The workers' environment: one thread each, and the data, tracking and import paths of the driver."""
    return ONE_THREAD | {k: os.environ[k] for k in _PASSED_ON if os.environ.get(k)}


@contextmanager
def ray_session(address: str | None = None, workers: int | None = None) -> Iterator[str]:
    """Ray for the sweep; yields where it runs (``local, N CPUs`` or the cluster's address).

    Args:
        address: a cluster (``ray://HOST:10001`` or ``HOST:6379``); None: ``RAY_ADDRESS`` or a local Ray.
        workers: CPUs of the local Ray, ≥ 1 (None: this machine's cores); not with a cluster.

    Raises:
        ValueError: ``workers`` < 1, or given together with a cluster address (``check_options``).
    """
    import ray

    where = check_options(address, workers)
    if ray.is_initialized():
        yield f"the running Ray ({ray.cluster_resources().get('CPU', 0):g} CPUs)"
        return
    runtime_env = {"env_vars": job_env()}
    if where is None:
        cpus = workers or os.cpu_count() or 1
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env=runtime_env, logging_level=logging.WARNING)
        label = f"a local Ray, {cpus} CPUs"
    else:
        ray.init(address=where, runtime_env=runtime_env, log_to_driver=False, logging_level=logging.WARNING)
        label = f"the Ray cluster at {where} ({ray.cluster_resources().get('CPU', 0):g} CPUs)"
    try:
        yield label
    finally:
        ray.shutdown()


def _task(spec: SweepSpec, cell: Cell) -> CellResult:
    """One cell in a Ray worker: one torch thread; the worker logs the cell itself to a server store."""
    import dataclasses

    import torch

    torch.set_num_threads(1)
    result = run_cell(spec, cell)
    if spec.tracking is not None:
        try:
            log_cell(spec.tracking, result, spec.steps)
            result = dataclasses.replace(result, logged=True)
        except Exception:  # noqa: BLE001 - the driver logs it instead
            pass
    return result


def run_cells(spec: SweepSpec, cells: list[Cell], on_result: Callable[[CellResult], None]) -> None:
    """Run ``cells`` as Ray tasks in the session of ``ray_session``; ``on_result`` gets each as it ends."""
    import ray

    remote: Any = ray.remote(num_cpus=1, max_retries=0)(_task)
    spec_ref = ray.put(spec)
    pending = {remote.remote(spec_ref, cell): cell for cell in cells}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            cell = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a worker that died: this cell failed, the rest go on
                result = CellResult(cell, cell_key(spec, cell), error=f"{type(exc).__name__}: {str(exc)[:500]}")
            on_result(result)
