"""Bounds of ``control.mpc.AllocationMPC``'s LP: the variables' (the plant's limits, fixed once;
the FIFO deadline rule, per solve) and the rows' (the state and forecast: demand, backlog, holds;
each constraint family's own in ``control.constraints``), and routing by one share per hold block
(the hindsight references' rows ``block_shares``). The applied step's own rules are in
``control._applied_step``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from control._applied_step import group_share_bounds, guarded_backlog_req
from control._horizon import HorizonMap
from control._lp import LinearProgram
from control.constraints import FAMILIES
from control.inputs import ControlForecast
from control.plant import PlantParams
from control.state import PlantState

__all__ = ["backlog_bounds", "fifo_bound_req", "plant_bounds", "row_bounds", "share_routing"]


def plant_bounds(plant: PlantParams, lp: LinearProgram) -> tuple[np.ndarray, np.ndarray]:
    """Variable bounds ``lbx, ubx`` from the plant's limits: installed GPUs, ramps, grid, battery
    power and energy, shortfalls; every variable ≥ 0."""
    lbx, ubx = np.zeros(lp.x.size), np.full(lp.x.size, np.inf)
    lp.x.pack(ubx, "n", plant.gpus_max)
    if plant.ramp_limited:  # st ≥ n_t − n_(t−1): its bound is the ramp-up limit (per LP step)
        assert plant.gpu_ramp_per_step is not None   # filled in by PlantParams.__post_init__
        lp.x.pack(ubx, "st", lp.step_hours[:, None] * plant.gpu_ramp_per_step[None, :])
    lp.x.pack(ubx, "g", plant.grid_limit_kw)
    for key in ("bc", "bd"):
        lp.x.pack(ubx, key, plant.battery_kw[plant.battery_sites])
    lp.x.pack(ubx, "soc", plant.battery_kwh[plant.battery_sites])
    lp.x.pack(ubx, "sh", 1.0)
    return lbx, ubx


def fifo_bound_req(plant: PlantParams, lp: LinearProgram, state: PlantState, fc: ControlForecast) -> np.ndarray:
    """Most backlog allowed at each step end: arrivals of the last ``deadline`` steps."""
    d = lp.d
    K = len(plant.class_names)
    hist = state.arrivals_history_req.reshape(state.arrivals_history_req.shape[0], -1)[::-1]
    arr = np.concatenate([hist, fc.load_req_per_s.reshape(fc.horizon, -1) * plant.step_s])
    L = hist.shape[0]
    total = np.vstack([np.zeros((1, len(d.deferred))), np.cumsum(arr[:, d.deferred], axis=0)])
    end = L + np.arange(fc.horizon) + 1                                  # rows up to each plant step
    start = np.maximum(end[:, None] - plant.deadline_steps[d.deferred % K][None, :], 0)
    return total[end] - np.take_along_axis(total, start, axis=0)


def backlog_bounds(plant: PlantParams, lp: LinearProgram, horizon_map: HorizonMap, ubx: np.ndarray,
                   state: PlantState, fc: ControlForecast, expiry_guard: bool) -> None:
    """Bound the backlog variables in ``ubx`` by the FIFO deadline rule at each LP step's end (with
    holds: at block ends), in the applied step by the expiry guard too (``fc``: per plant step)."""
    fifo = fifo_bound_req(plant, lp, state, fc)[horizon_map.step_end]  # at each LP step's end
    if expiry_guard:
        fifo[0] = np.minimum(fifo[0], guarded_backlog_req(plant, lp, state, fc))
    fifo[~lp.block_end] = np.inf   # with holds: the rule applies at block (hour) ends
    lp.x.pack(ubx, "q", fifo[:lp.d.E])
    lp.x.pack(ubx, "qa", horizon_map.pooled_deferred(fifo[lp.d.E:]))


class _Rows:
    """Row bounds ``lo, hi`` of the LP, filled block by block (``put``)."""

    def __init__(self, lp: LinearProgram) -> None:
        self.lp = lp
        self.lo, self.hi = np.zeros(lp.g.numel()), np.zeros(lp.g.numel())

    def put(self, key: str, lo: ArrayLike, hi: ArrayLike) -> None:
        sl = self.lp.row_slice(key)
        shape = self.lp.rows[key]
        self.lo[sl] = np.broadcast_to(lo, shape).ravel()
        self.hi[sl] = np.broadcast_to(hi, shape).ravel()


def row_bounds(plant: PlantParams, lp: LinearProgram, horizon_map: HorizonMap, state: PlantState,
               fc: ControlForecast, block_shares: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Row bounds ``lbg, ubg`` for the state and the forecast per LP step (``block_shares``: route
    by one share per hold block, else those rows are free)."""
    rows = _Rows(lp)
    _load_rows(rows, plant, lp, horizon_map, state, fc)
    for key in ("capacity", "reserve", "burst"):
        rows.put(key, -np.inf, 0.0)
    if "sub_capacity" in lp.rows:   # binding when the forecast knows the applied hour's sub-steps
        if fc.load_sub_req_per_s is not None and fc.sub_steps != lp.sub_steps:
            raise ValueError(f"forecast: {fc.sub_steps} sub-steps per step; the MPC was built for {lp.sub_steps}")
        rows.put("sub_capacity", -np.inf, 0.0 if fc.load_sub_req_per_s is not None else np.inf)
    if "hold" in lp.rows:
        rows.put("hold", 0.0, 0.0)
    if "block_shares" in lp.rows:   # routing by one share per block, or free rows
        rows.put("block_shares", 0.0 if block_shares else -np.inf, 0.0 if block_shares else np.inf)
    if "continue" in lp.rows:   # the first block's GPUs are those running
        rows.put("continue", state.gpus_active, state.gpus_active)
    if "group_shares" in lp.rows:   # only where the group's forecast has spread (bursts to spread)
        rows.put("group_shares", *group_share_bounds(plant, lp, fc))
    for family in FAMILIES:   # control.constraints
        if family.name in lp.rows:
            rows.put(family.name, *family.bounds(plant, lp, state, fc))
    rows.put("objectives", -np.inf, np.inf)
    return rows.lo, rows.hi


def _load_rows(rows: _Rows, plant: PlantParams, lp: LinearProgram, horizon_map: HorizonMap, state: PlantState,
               fc: ControlForecast) -> None:
    """Demand (interactive) and backlog (deferrable) balances: per stream in the exact steps, per
    pooled stream and block in the tail."""
    d = lp.d
    load = fc.load_req_per_s.reshape(d.H, -1)
    if "demand" in lp.rows:
        rows.put("demand", load[:d.E, d.interactive], load[:d.E, d.interactive])
    if "backlog" in lp.rows:
        rhs = load[:d.E, d.deferred] * plant.step_s
        rhs[0] += state.backlog_req.reshape(-1)[d.deferred]
        rows.put("backlog", rhs, rhs)
    load_a = horizon_map.pooled(load[d.E:])
    if "demand_a" in lp.rows:
        rows.put("demand_a", load_a[:, d.interactive_a], load_a[:, d.interactive_a])
    if "backlog_a" in lp.rows:
        rhs = load_a[:, d.deferred_a] * plant.step_s * horizon_map.hours[d.E:, None]   # a block's arrivals
        rows.put("backlog_a", rhs, rhs)


def share_routing(plant: PlantParams, lp: LinearProgram, p: np.ndarray, lbx: np.ndarray, ubx: np.ndarray,
                  fc: ControlForecast, backlog_req: np.ndarray) -> None:
    """Routing by one share per hold block (rows ``block_shares``): a pair serves its block's
    share of the work the plant offers its stream in each step — the arrivals and, for a
    deferrable stream, ``1 / hold_steps`` of the backlog it starts the block with — and the
    backlog at every later block start is fixed to ``backlog_req`` ``(blocks, deferrable
    streams)``, so that the shares apply to the work they were planned for."""
    d = lp.d
    starts = np.flatnonzero(lp.block_start)
    backlog = np.asarray(backlog_req, dtype=float)
    if lp.hold_steps == 1 or backlog.shape != (len(starts), len(d.deferred)):
        raise ValueError(f"block_shares: backlog {backlog.shape}; expected ({len(starts)}, {len(d.deferred)}) "
                         f"with hold_steps > 1 (hold_steps {lp.hold_steps})")
    rate = fc.load_req_per_s.reshape(d.H, -1).copy()
    rate[:, d.deferred] += backlog[np.cumsum(lp.block_start) - 1] / (lp.hold_steps * plant.step_s)
    lp.p.pack(p, "pair_load", rate[:, plant.pair_stream])
    q0, nd = lp.x.offset["q"], len(d.deferred)
    for b, t in enumerate(starts[1:], start=1):   # block b starts with step t − 1's end backlog
        lbx[q0 + (t - 1) * nd:q0 + t * nd] = ubx[q0 + (t - 1) * nd:q0 + t * nd] = backlog[b]
