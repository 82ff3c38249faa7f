"""How the allocation LP's steps map to plant steps and streams (``AllocationMPC``'s bookkeeping).

The LP's first ``E`` steps are plant steps routed per (region, pool, class); its tail is pooled per
(region group, pool, class) and blocked into steps of several plant steps (``control._lp``).
``HorizonMap`` turns an hourly forecast into LP-step inputs (block means, day shares), sums
per-stream arrays into pooled streams, and turns a solution back into per-stream values of every
LP step (``AllocationMPC`` then repeats each block over its plant steps).
"""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np

from control._lp import LinearProgram
from control.inputs import ControlForecast
from control.plant import PlantParams

__all__ = ["HorizonMap"]


class HorizonMap:
    """LP steps ↔ plant steps, and streams ↔ pooled streams, of one ``LinearProgram``."""

    def __init__(self, lp: LinearProgram, plant: PlantParams) -> None:
        self.lp, self.plant = lp, plant
        hours = lp.step_hours
        self.hours = hours.astype(float)                                      # plant steps per LP step
        self.step_start = np.concatenate([[0], np.cumsum(hours)[:-1]]).astype(int)  # first plant step of each
        self.step_end = self.step_start + hours - 1                            # last plant step of each
        self.step_of_hour = np.repeat(np.arange(len(hours)), hours)           # LP step of each plant step

    def each_step(self, per_lp_step: np.ndarray) -> np.ndarray:
        """LP-step values repeated over their plant steps (a block's decision holds for each)."""
        return np.repeat(per_lp_step, self.lp.step_hours, axis=0)

    def lp_steps(self, fc: ControlForecast) -> ControlForecast:
        """The forecast per LP step: each tail block's mean (rates, prices, intensities)."""
        if len(self.hours) == fc.horizon:
            return fc
        mean = lambda a: np.add.reduceat(np.asarray(a, dtype=float), self.step_start, axis=0) \
            / self.hours.reshape(-1, *([1] * (np.ndim(a) - 1)))  # noqa: E731
        values = {f.name: mean(getattr(fc, f.name)) for f in fields(fc)
                  if f.name != "day_index" and getattr(fc, f.name) is not None}
        return replace(fc, **values, day_index=np.asarray(fc.day_index)[self.step_start])

    def daymask(self, fc: ControlForecast) -> np.ndarray:
        """``(LP steps, days)``: the share of each LP step's plant steps on each UTC day of the
        horizon (day 0 = the first step's)."""
        n_days = self.lp.d.n_days
        day = np.minimum(np.asarray(fc.day_index) - int(fc.day_index[0]), n_days - 1)
        hourly = np.eye(n_days)[day]
        return np.add.reduceat(hourly, self.step_start, axis=0) / self.hours[:, None]

    def pooled(self, per_stream: np.ndarray) -> np.ndarray:
        """``(steps, R·K)`` → ``(steps, pooled streams)``: summed over each region group."""
        return per_stream @ self.lp.stream_to_pooled.T

    def pooled_deferred(self, per_stream: np.ndarray, mean: bool = False) -> np.ndarray:
        """``(steps, deferred streams)`` → ``(steps, pooled deferred streams)``: summed (or
        averaged) over each region group."""
        d = self.lp.d
        member = self.lp.stream_to_pooled[np.ix_(d.deferred_a, d.deferred)].copy()
        if mean:
            member /= np.maximum(member.sum(axis=1, keepdims=True), 1.0)
        return per_stream @ member.T

    def to_streams(self, get: dict[str, np.ndarray], load: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Served pairs ``(H, m)``, unserved ``(H, R·K)`` and backlog ``(H, deferred streams)`` of
        every LP step from the solution's blocks ``get`` and the load per LP step ``(H, R·K)``: a
        pooled step's values per (region group, class) split over the group's regions in
        proportion to their load; a region then uses its group's pools in the group's proportions
        (the same allowed pairs). A plan for reading and for fallbacks; only step 0 is applied,
        and it is always exact."""
        plant, d = self.plant, self.lp.d
        if not d.T:
            return get["x"], get["u"], get["q"]
        assert self.lp.pooled is not None   # a tail (d.T > 0) is planned on the pooled plant
        to_pooled = self.lp.stream_to_pooled                                # (RKa, RK)
        groups = plant.region_groups
        R, K = len(plant.region_names), d.K
        pooled = self.lp.pooled.dense_pairs(get["xa"])[:, groups]          # (T, R, P, K) of the group
        load_t = load[d.E:]
        group_load = load_t @ to_pooled.T @ to_pooled                        # (T, RK): the group's load
        region_share = np.where(group_load > 1e-12, load_t / np.maximum(group_load, 1e-12),
                                to_pooled.T @ (1.0 / to_pooled.sum(axis=1)))  # (T, RK)
        region_share = region_share.reshape(d.T, R, K)
        dense = pooled * region_share[:, :, None, :]
        tail = dense[:, plant.pairs[:, 0], plant.pairs[:, 1], plant.pairs[:, 2]]
        dropped = (get["ua"] @ to_pooled) * region_share.reshape(d.T, -1)
        defer_map = to_pooled[np.ix_(d.deferred_a, d.deferred)]
        backlog = (get["qa"] @ defer_map) * region_share.reshape(d.T, -1)[:, d.deferred]
        return (np.concatenate([get["x"], tail]), np.concatenate([get["u"], dropped]),
                np.concatenate([get["q"], backlog]))
