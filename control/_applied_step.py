"""The rules of ``control.mpc.AllocationMPC``'s applied step (the hour it decides), which the
planned steps do not follow (``ControlSettings``: ``group_interactive_shares``,
``max_share_vs_capacity``, ``expiry_guard``, ``min_gpus_interactive``, ``slo_aware_gpus``).

- group shares tie only the (region group, class) totals whose forecast has spread;
- the share cap: a pool's split of a group's interactive class ≤ cap × its capacity-proportional
  split, lifted where the total's forecast has no spread;
- the expiry guard: a deferrable stream's share serves what expires even if nothing arrives;
- the GPU floor at interactive pools (in the planned steps only with SLO-aware GPUs);
- SLO-aware GPUs: the applied step's whole GPUs per pool, priced by the plant's own rule.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from control import plant as pl
from control._headroom import certain_totals
from control._lp import LinearProgram
from control._mpc_result import Plan
from control.batch_modes import fixed_mode_gpus
from control.inputs import ControlForecast
from control.plant import PlantParams
from control.realised import slo_aware_decision_gpus
from control.shares import capacity_shares, recent_arrivals_req
from control.state import PlantState

__all__ = ["certain_groups", "gpu_floor", "group_share_bounds", "guarded_backlog_req", "share_cap",
           "uncap_certain_groups", "with_slo_gpus"]


def certain_groups(plant: PlantParams, fc: ControlForecast) -> np.ndarray:
    """``(G·K,)`` bool: (region group, class) totals whose applied-step forecast has no spread
    (burst and provisioning levels at the median once the 10-min peak factor, which is no
    forecast error, is divided out): perfect forecasts."""
    peak = fc.peak_factor()[0]
    assert fc.load_burst_req_per_s is not None   # set by ControlForecast.validate, which solve runs
    high = np.maximum(fc.load_burst_req_per_s[0], fc.load_provision_req_per_s[0]) / peak
    return certain_totals(plant, fc.load_req_per_s[0], high)


def group_share_bounds(plant: PlantParams, lp: LinearProgram, fc: ControlForecast
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the rows ``group_shares`` (a pair's share = its group's): equalities only where
    the group's forecast has spread (a burst to spread), free rows elsewhere."""
    keys = np.array(lp.group_keys)[lp.group_col]                       # (group, pool, class) per row
    free = certain_groups(plant, fc)[keys[:, 0] * len(plant.class_names) + keys[:, 2]]
    return np.where(free, -np.inf, 0.0), np.where(free, np.inf, 0.0)


def share_cap(plant: PlantParams, lp: LinearProgram, cap: float) -> tuple[np.ndarray, np.ndarray]:
    """The upper bounds of the applied step's group shares ``share0`` (a pool's split ≤ ``cap`` ×
    its capacity-proportional one at the installed GPUs) and the (region group, class) total of
    each share (the cap binds only where that total's forecast has spread)."""
    keys = np.array(lp.group_keys)                                       # (group, pool, class)
    first = np.array([np.flatnonzero(plant.region_groups == g)[0] for g in keys[:, 0]])
    fair = capacity_shares(plant, fixed_mode_gpus(plant))[first, keys[:, 1], keys[:, 2]]
    return np.minimum(cap * fair, 1.0), keys[:, 0] * len(plant.class_names) + keys[:, 2]


def uncap_certain_groups(plant: PlantParams, lp: LinearProgram, ubx: np.ndarray, fc: ControlForecast,
                         share_group_stream: np.ndarray) -> None:
    """Lift the share cap of the (region group, class) totals whose applied-step forecast has
    no spread: the cap guards against bursts, and there are none to guard against (perfect
    forecasts keep the LP's freedom)."""
    certain = certain_groups(plant, fc)[share_group_stream]
    sl = lp.x.slice("share0")
    ubx[sl] = np.where(certain, 1.0, ubx[sl])


def gpu_floor(plant: PlantParams, lp: LinearProgram, min_gpus: float, slo_aware: bool) -> np.ndarray:
    """Lower bounds of the GPUs ``(H, P)``: ``min_gpus`` at every pool that may serve an
    interactive class; with SLO-aware GPUs in the planned steps only."""
    interactive = plant.allowed[:, :, ~plant.deferrable].any(axis=(0, 2))   # (P,)
    floor = np.where(interactive & plant.fixed_mode, np.minimum(min_gpus, plant.gpus_max), 0.0)   # one mode a device
    # with SLO-aware GPUs the applied step's count is the plant's own rule; the floor stands in
    # for it in the planned steps (and keeps the LP as quick to solve as with a floor everywhere)
    first_step = 1 if slo_aware else 0
    return np.where(np.arange(lp.d.H)[:, None] >= first_step, floor[None, :], 0.0)


def guarded_backlog_req(plant: PlantParams, lp: LinearProgram, state: PlantState, fc: ControlForecast
                        ) -> np.ndarray:
    """Most backlog the applied step may plan to keep per deferred stream so that its *share*
    (a fraction of backlog + realised arrivals) still serves the requests that expire this
    step if no new request arrives: ``(B + A)·(1 − e/B)`` with ``e = B −`` the arrivals that
    may still wait (``expiry_guard``)."""
    d = lp.d
    backlog = state.backlog_req.reshape(-1)[d.deferred]
    recent = recent_arrivals_req(plant, state.arrivals_history_req).reshape(-1)[d.deferred]
    work = backlog + fc.load_req_per_s.reshape(fc.horizon, -1)[0, d.deferred] * plant.step_s
    expiring = np.maximum(backlog - recent, 0.0)
    keep = np.where(backlog > 0, 1.0 - expiring / np.where(backlog > 0, backlog, 1.0), 1.0)
    return work * keep


def with_slo_gpus(plant: PlantParams, plan: Plan, state: PlantState, fc: ControlForecast,
                  fixed_pue: np.ndarray | None) -> Plan:
    """The plan with the applied step's GPUs from ``slo_aware_decision_gpus`` (the load its shares
    route at the provisioning level, priced at step 0's PUE and price)."""
    pue0 = fixed_pue if fixed_pue is not None else pl.pue(plant, fc.temp_c[0])
    gpus = plan.gpus.copy()
    gpus[0] = slo_aware_decision_gpus(plant, plan.share[0], fc.load_provision_req_per_s[0], state.backlog_req,
                                      gpus[0], pue0, fc.price_eur_per_mwh[0])
    return replace(plan, gpus=gpus)
