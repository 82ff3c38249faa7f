"""What flows between controllers and the plant: the plant state, a decision, a step's record.

Index order: sites ``S``, pools ``P``, regions ``R``, classes ``K``; backlog and arrival history
are per (region, class) stream. Requests in a step are counts (``*_req``), rates are ``*_req_per_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from control.plant import PlantParams

__all__ = ["Allocation", "PlantState", "StepRecord", "check_array"]


def check_array(name: str, value: np.ndarray, shape: tuple[int, ...], *, nonneg: bool = True,
                labels: tuple[tuple[str, ...] | None, ...] = ()) -> np.ndarray:
    """Return ``value`` as a read-only float array, or raise naming the array, index and problem.

    Args:
        name: the array's name in messages.
        value: the array.
        shape: the expected shape.
        nonneg: whether negative entries are an error.
        labels: per axis, names of the entries (e.g. site names) used in messages; None = index.
    """
    arr = np.array(value, dtype=float)
    if arr.shape != shape:
        raise ValueError(f"{name}: shape {arr.shape}, expected {shape}")
    bad = ~np.isfinite(arr)
    what = "NaN or infinite"
    if not bad.any() and nonneg:
        bad, what = arr < 0, "negative"
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])

        def entry(a: int, i: int) -> str:
            axis = labels[a] if a < len(labels) else None
            return axis[i] if axis is not None else f"index {i}"

        where = ", ".join(entry(a, i) for a, i in enumerate(idx))
        raise ValueError(f"{name}: {what} value {arr[idx]!r} at {where} ({int(bad.sum())} such entries)")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class PlantState:
    """The plant's state at the start of a step.

    Args:
        gpus_active: GPUs on per pool in the previous step, ``(P,)``.
        soc_kwh: battery state of charge per site, kWh, ``(S,)``.
        backlog_req: deferred requests waiting per (region, class), ``(R, K)``.
        arrivals_history_req: arrivals of the previous steps per stream, most recent first,
            ``(L, R, K)`` with ``L = max(deadline_steps) − 1`` (at least 0 rows); the FIFO deadline
            rule keeps the backlog ≤ the arrivals of the last ``deadline`` steps.
        water_used_today_l: litres used so far on UTC day ``water_day`` per site, ``(S,)``.
        water_day: UTC day number (days since 1970-01-01) the water counter refers to.
    """

    gpus_active: np.ndarray
    soc_kwh: np.ndarray
    backlog_req: np.ndarray
    arrivals_history_req: np.ndarray
    water_used_today_l: np.ndarray
    water_day: int

    @staticmethod
    def history_len(plant: PlantParams) -> int:
        return max(int(plant.deadline_steps.max(initial=0)) - 1, 0)

    @classmethod
    def initial(cls, plant: PlantParams, water_day: int, soc_fraction: float = 0.5) -> PlantState:
        """An empty plant: no GPUs on, empty backlog, batteries at ``soc_fraction`` of capacity."""
        R, K = len(plant.region_names), len(plant.class_names)
        return cls(np.zeros(plant.n_pools), soc_fraction * plant.battery_kwh, np.zeros((R, K)),
                   np.zeros((cls.history_len(plant), R, K)), np.zeros(plant.n_sites), water_day)

    def validate(self, plant: PlantParams) -> PlantState:
        """Check shapes, finiteness and signs against ``plant``; return self."""
        R, K = len(plant.region_names), len(plant.class_names)
        check_array("state.gpus_active", self.gpus_active, (plant.n_pools,), labels=(plant.pool_names,))
        check_array("state.soc_kwh", self.soc_kwh, (plant.n_sites,), labels=(plant.site_names,))
        check_array("state.backlog_req", self.backlog_req, (R, K),
                    labels=(plant.region_names, plant.class_names))
        check_array("state.arrivals_history_req", self.arrivals_history_req,
                    (self.history_len(plant), R, K), labels=(None, plant.region_names, plant.class_names))
        check_array("state.water_used_today_l", self.water_used_today_l, (plant.n_sites,),
                    labels=(plant.site_names,))
        over = self.soc_kwh > plant.battery_kwh + 1e-6
        if over.any():
            s = int(np.argmax(over))
            raise ValueError(f"state.soc_kwh: {self.soc_kwh[s]:g} kWh at site {plant.site_names[s]} "
                             f"exceeds the battery's {plant.battery_kwh[s]:g} kWh")
        return self


@dataclass(frozen=True, eq=False)
class Allocation:
    """A controller's decision for one step (the first step of its plan).

    Args:
        share: fraction of each (region, class) stream's work served on each pool, ``(R, P, K)``;
            zero on disallowed pairs; the rest of a stream (``1 − Σ_p share``) is deferred to the
            backlog (deferrable classes) or dropped (interactive). A deferrable stream's work is its
            arrivals plus its backlog.
        gpus: active GPUs per pool (continuous; the plant rounds up), ``(P,)``.
        charge_kw, discharge_kw: battery power per site, kW, ``(S,)``.
        source: who decided (controller name, or the fallback used).
        backlog_fill: False: the dispatcher leaves this hour's free room empty rather than fill it
            with the backlog (``plant.backlog_fill`` off for the hour); True: the plant's setting.
    """

    share: np.ndarray
    gpus: np.ndarray
    charge_kw: np.ndarray
    discharge_kw: np.ndarray
    source: str = ""
    backlog_fill: bool = True

    def validate(self, plant: PlantParams) -> Allocation:
        """Check shapes, signs, zero shares on disallowed pairs and Σ share ≤ 1; return self."""
        R, K = len(plant.region_names), len(plant.class_names)
        check_array("allocation.share", self.share, (R, plant.n_pools, K),
                    labels=(plant.region_names, plant.pool_names, plant.class_names))
        check_array("allocation.gpus", self.gpus, (plant.n_pools,), labels=(plant.pool_names,))
        for name in ("charge_kw", "discharge_kw"):
            check_array(f"allocation.{name}", getattr(self, name), (plant.n_sites,),
                        labels=(plant.site_names,))
        bad = (self.share > 0) & ~plant.allowed
        if bad.any():
            r, p, k = np.argwhere(bad)[0]
            raise ValueError(f"allocation.share: load on disallowed pair region {plant.region_names[r]}, "
                             f"pool {plant.pool_names[p]}, class {plant.class_names[k]}")
        total = self.share.sum(axis=1)
        if (total > 1 + 1e-6).any():
            r, k = np.argwhere(total > 1 + 1e-6)[0]
            raise ValueError(f"allocation.share: shares of stream {plant.region_names[r]}/"
                             f"{plant.class_names[k]} sum to {total[r, k]:.6g} > 1")
        return self


@dataclass(frozen=True, eq=False)
class StepRecord:
    """What happened in one realised step (every quantity recomputed from realised data).

    Requests are counts over the step; powers kW (mean over the step); money EUR. The plant steps
    in sub-steps (``control.realised``): ``ttft_s`` is their request-weighted mean, ``slo_miss_req``
    and the request counts their sums; a request returned to the backlog in two sub-steps counts
    twice in ``deferred_overflow_req``.
    """

    arrivals_req: np.ndarray         # (R, K)
    served_req: np.ndarray           # (R, P, K)
    dropped_req: np.ndarray          # (R, K)
    backlog_change_req: np.ndarray   # (R, K)
    gpus_applied: np.ndarray         # (P,)
    gpu_starts: np.ndarray           # (P,)
    it_kw: np.ndarray                # (S,)
    facility_kw: np.ndarray          # (S,)
    renewable_kw: np.ndarray         # (S,)
    grid_kw: np.ndarray              # (S,)
    curtailed_kw: np.ndarray         # (S,)
    charge_kw: np.ndarray            # (S,)
    discharge_kw: np.ndarray         # (S,)
    water_onsite_l: np.ndarray       # (S,)
    water_offsite_l: np.ndarray      # (S,)
    water_over_budget_l: np.ndarray  # (S,) increase of the day's excess in this step
    ttft_s: np.ndarray               # (R, P, K), NaN where nothing is served
    slo_miss_req: np.ndarray         # (R, P, K)
    grid_over_limit_kw: np.ndarray   # (S,) import above the contract limit (a violation, counted)
    energy_cost_eur: float
    drop_penalty_eur: float
    slo_penalty_eur: float
    water_penalty_eur: float
    start_penalty_eur: float
    carbon_kg: float
    delay_req_s: float
    spilled_req: np.ndarray            # (R, P, K) of served_req, what each pool received by spill
    deferred_overflow_req: np.ndarray  # (R, K) deferrable work the dispatcher returned to the
                                       #   backlog for want of room, summed over the sub-steps
    peak_utilisation: np.ndarray       # (P,) busy share of the active GPUs, highest sub-step

    @property
    def penalties_eur(self) -> float:
        return self.drop_penalty_eur + self.slo_penalty_eur + self.water_penalty_eur + self.start_penalty_eur

    @property
    def cost_eur(self) -> float:
        """Energy cost + penalties of the step (the stage-1 objective, as realised)."""
        return self.energy_cost_eur + self.penalties_eur

    @property
    def water_l(self) -> float:
        return float(self.water_onsite_l.sum() + self.water_offsite_l.sum())

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
