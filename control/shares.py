"""Turning planned rates into the shares a decision applies (DESIGN.md §2 decisions, §5 table)."""

from __future__ import annotations

import numpy as np

from control.plant import PlantParams

__all__ = ["capacity_shares", "plan_shares", "recent_arrivals_req"]

MIN_WORK_REQ = 1e-9  # below this a stream's planned work counts as zero (capacity fallback)


def capacity_shares(plant: PlantParams, gpus: np.ndarray) -> np.ndarray:
    """Shares ``(R, P, K)`` proportional to each allowed pool's request capacity at rho_max.

    Streams with no allowed pool with capacity get zero shares (their load is dropped/deferred).
    """
    cap = plant.rho_max * np.asarray(gpus, dtype=float)[:, None] / plant.gpu_s_per_req  # (P, K)
    weight = np.where(plant.allowed, cap[None], 0.0)
    total = weight.sum(axis=1, keepdims=True)
    return np.divide(weight, total, out=np.zeros_like(weight), where=total > 0)


def plan_shares(plant: PlantParams, served_req_per_s: np.ndarray, work_req: np.ndarray,
                gpus: np.ndarray) -> np.ndarray:
    """Shares ``(H, R, P, K)`` of each stream's work that a plan serves on each pool.

    Args:
        plant: coefficients.
        served_req_per_s: planned service on allowed pairs, ``(H, m)``, req/s.
        work_req: planned work of each stream, ``(H, R, K)``, requests (arrivals; plus the
            backlog at step start for deferrable classes).
        gpus: planned GPUs, ``(H, P)`` (for the capacity-proportional fallback).
    """
    served = plant.dense_pairs(np.asarray(served_req_per_s)) * plant.step_s
    has_work = work_req > MIN_WORK_REQ
    share = np.divide(served, work_req[:, :, None, :], out=np.zeros_like(served),
                      where=has_work[:, :, None, :])
    share = np.clip(share, 0.0, None)
    idle = ~has_work
    if idle.any():   # streams without planned work: capacity-proportional over allowed pools
        steps = np.flatnonzero(idle.any(axis=(1, 2)))
        fallback = np.stack([capacity_shares(plant, gpus[t]) for t in steps])
        share[steps] = np.where(idle[steps][:, :, None, :], fallback, share[steps])
    total = share.sum(axis=2, keepdims=True)
    return share / np.maximum(total, 1.0)


def recent_arrivals_req(plant: PlantParams, arrivals_history_req: np.ndarray) -> np.ndarray:
    """Arrivals per stream ``(R, K)`` of the last ``deadline − 1`` steps: with this step's own
    arrivals, the most that may still wait at the step's end (the FIFO deadline rule)."""
    steps = np.arange(arrivals_history_req.shape[0])[:, None, None]
    return np.where(steps < plant.deadline_steps[None, None, :] - 1, arrivals_history_req, 0.0).sum(axis=0)

