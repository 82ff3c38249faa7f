"""Applied-step headroom when a region group's interactive streams share one split (group shares).

With group shares every pool takes a fixed part of its group's class total, so the total's spread
is what a pool must hold, not each stream's. These functions turn per-stream forecast levels
(median, provisioning quantile, burst level) into per-stream ratios that the LP's reserve and N−1
rows read, so that the rows hold group totals:

* ``group_ratio``: provision for the group total's median plus the streams' excesses over their
  medians combined with a correlation ``rho`` (1: their sum, the streams' own quantiles; 0: the root
  of their sum of squares, independent errors);
* ``group_burst_ratio``: the N−1 rows hold one (group, class) total at its burst level (excesses
  combined alike), the others at the provisioning level;
* ``certain_totals``: the (group, class) totals whose applied-step forecast has no spread (the
  share cap has no burst to guard against there).

Arrays are per step and stream, ``(H, R·K)`` with streams region-major (as ``PlantParams``).
"""

from __future__ import annotations

import numpy as np

from control.plant import PlantParams

__all__ = ["certain_totals", "combined_excess", "group_burst_ratio", "group_matrix", "group_ratio"]


def group_matrix(plant: PlantParams) -> np.ndarray:
    """``(G·K, R·K)``: 1 where a stream belongs to a (region group, class) total."""
    K = len(plant.class_names)
    stream = np.arange(plant.n_streams)
    key = plant.region_groups[stream // K] * K + stream % K
    return (key[None, :] == np.arange(key.max() + 1)[:, None]).astype(float)


def _interactive(plant: PlantParams) -> np.ndarray:
    return np.tile(~plant.deferrable, len(plant.region_names))          # (R·K,)


def combined_excess(plant: PlantParams, excess: np.ndarray, rho: float) -> np.ndarray:
    """Per-stream excesses ``(H, R·K)`` (negative ones count as 0) combined into each (group,
    class) total's ``(H, G·K)``: ``rho`` × their sum + (1 − ``rho``) × the root of their sum of
    squares; interactive classes only (0 for deferrable ones)."""
    to_group = group_matrix(plant)
    part = np.maximum(excess, 0.0) * _interactive(plant)
    return rho * (part @ to_group.T) + (1.0 - rho) * np.sqrt((part ** 2) @ to_group.T)


def _excess(plant: PlantParams, med: np.ndarray, level: np.ndarray, rho: float) -> np.ndarray:
    """Each (group, class) interactive total's excess over its median at ``level`` ``(H, G·K)``."""
    return combined_excess(plant, level - med, rho)


def group_ratio(plant: PlantParams, med: np.ndarray, prov: np.ndarray, ratio: np.ndarray,
                rho: float) -> np.ndarray:
    """Provisioning ratios ``(H, R·K)``: interactive streams at their group total's
    ``(median + combined excess) / median``; deferrable streams keep ``ratio``."""
    to_group = group_matrix(plant)
    total = med @ to_group.T
    safe = np.where(total > 1e-12, total, 1.0)
    group = np.where(total > 1e-12, 1.0 + _excess(plant, med, prov, rho) / safe, 1.0) @ to_group
    return np.where(_interactive(plant)[None, :] & (med > 1e-12), group, ratio)


def group_burst_ratio(plant: PlantParams, med0: np.ndarray, prov0: np.ndarray, burst0: np.ndarray,
                      ratio0: np.ndarray, rho: float) -> np.ndarray:
    """Applied-step burst ratios ``(R·K,)``: a pair's N−1 row adds ``(B − P)·x / med`` for its
    stream, which with group shares is the pool's share of its group total's excess from the
    provisioning level P to the burst level B (both combined with ``rho``)."""
    up = _excess(plant, med0[None], burst0[None], rho)
    prov = _excess(plant, med0[None], prov0[None], rho)
    extra = (np.maximum(up - prov, 0.0) @ group_matrix(plant))[0]
    safe = np.where(med0 > 1e-12, med0, 1.0)
    return np.where(_interactive(plant) & (med0 > 1e-12), ratio0 + extra / safe, ratio0)


def certain_totals(plant: PlantParams, med0: np.ndarray, high0: np.ndarray) -> np.ndarray:
    """``(G·K,)`` bool: (group, class) totals whose applied-step forecast has no spread (the high
    level, burst or provisioning, equals the median)."""
    to_group = group_matrix(plant)
    med, high = to_group @ med0.ravel(), to_group @ np.maximum(high0, med0).ravel()
    return high - med <= 1e-9 * np.maximum(med, 1.0)
