"""Closed loop: a controller acts, the plant steps with realised data; and the hindsight optimum."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from control.controllers import Controller
from control.inputs import ControlForecast
from control.mpc import AllocationMPC, MPCResult
from control.params import ControlSettings
from control.plant import PlantParams
from control.realised import step
from control.state import PlantState, StepRecord

__all__ = ["EpisodeResult", "InvariantError", "StepTiming", "check_invariants", "hindsight_optimum",
           "perfect_forecaster", "run_episode"]

Forecaster = Callable[[int], ControlForecast]
INVARIANT_RTOL = 1e-9   # invariants hold to this fraction of the size of their terms (scale-safe)


class InvariantError(AssertionError):
    """A realised step broke conservation, the power balance or a capacity limit: a defect of the
    plant model, not of the user's input (hence not a ``ValueError``: the CLI reports it as an
    internal error, with this message).

    Attributes:
        step: the episode step.
    """

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class StepTiming:
    """Wall time of one closed-loop step, s: the forecast, the decision, the plant step."""

    forecast_s: float
    decide_s: float
    plant_s: float


def _check_close(t: int, what: str, where: tuple[str, ...], lhs: np.ndarray, rhs: np.ndarray,
                 size: np.ndarray, rtol: float) -> None:
    """Raise unless ``|lhs − rhs| ≤ rtol · max(1, size)`` everywhere (NaN fails); ``where`` names
    the entries of the flattened arrays."""
    lhs, rhs, size = (np.asarray(a, dtype=float).ravel() for a in (lhs, rhs, size))
    tol = rtol * np.maximum(size, 1.0)
    diff = np.abs(lhs - rhs)
    bad = ~(diff <= tol)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvariantError(
            f"step {t}: {what} broken at {where[i]}: {lhs[i]:.15g} != {rhs[i]:.15g} (difference {diff[i]:.3g}, "
            f"tolerance {tol[i]:.3g} = {rtol:g} × the size of its terms {max(size[i], 1.0):.6g}; "
            f"{int(bad.sum())} such entries)", t)


def check_invariants(plant: PlantParams, record: StepRecord, t: int, rtol: float = INVARIANT_RTOL,
                     backlog_before_req: np.ndarray | None = None) -> None:
    """Requests in = served + dropped + backlog change per stream over the hour; power balances per
    site; pools within ρ_max·GPUs over the hour and in every sub-step (peak utilisation); the
    dispatcher's flows consistent (nothing served or spilled on a disallowed pair, spill part of
    what was served, deferrable overflow only for deferrable streams) — each to ``rtol`` times the
    size of its terms (the sum of their magnitudes, at least 1), so that round-off never trips it
    at any fleet scale.

    Args:
        plant: coefficients.
        record: the realised step.
        t: the step (named in the message).
        rtol: relative tolerance.
        backlog_before_req: the backlog at the step's start ``(R, K)``; its size counts in the
            conservation's terms (the backlog change is the difference of two such numbers).

    Raises:
        InvariantError: naming the step, the invariant, the stream / site / pool, both sides, the
            difference and the tolerance.
    """
    streams = tuple(f"stream {r}/{k}" for r in plant.region_names for k in plant.class_names)
    served = record.served_req.sum(axis=1)
    before = 0.0 if backlog_before_req is None else np.abs(backlog_before_req)
    size = (np.abs(record.arrivals_req) + np.abs(record.served_req).sum(axis=1) + np.abs(record.dropped_req)
            + np.abs(record.backlog_change_req) + before)
    _check_close(t, "request conservation (served + dropped + backlog change = arrivals)", streams,
                 served + record.dropped_req + record.backlog_change_req, record.arrivals_req, size, rtol)
    flows = (record.grid_kw, record.renewable_kw, record.curtailed_kw, record.discharge_kw, record.charge_kw,
             record.facility_kw)
    _check_close(t, "power balance (grid + renewables − curtailed + discharge − charge = facility), kW",
                 tuple(f"site {s}" for s in plant.site_names),
                 record.grid_kw + record.renewable_kw - record.curtailed_kw + record.discharge_kw - record.charge_kw,
                 record.facility_kw, sum(np.abs(f) for f in flows), rtol)
    _check_dispatch(plant, record, t, rtol, streams)
    _check_capacity(plant, record, t, rtol)


def _check_capacity(plant: PlantParams, record: StepRecord, t: int, rtol: float) -> None:
    """Served work within ρ_max·GPUs over the hour and, by the peak utilisation, in every sub-step."""
    work = np.einsum("rpk,pk->p", record.served_req, plant.gpu_s_per_req) / plant.step_s
    cap = plant.rho_max * record.gpus_applied
    over = ~(work <= cap + rtol * np.maximum(np.maximum(work, cap), 1.0))
    if over.any():
        p = int(np.flatnonzero(over)[0])
        raise InvariantError(f"step {t}: capacity broken at pool {plant.pool_names[p]}: serves {work[p]:.15g} "
                             f"GPU-s/s, above rho_max × GPUs = {cap[p]:.15g} (rtol {rtol:g})", t)
    mean = np.divide(work, record.gpus_applied, out=np.zeros_like(work), where=record.gpus_applied > 0)
    peak = np.asarray(record.peak_utilisation, dtype=float)
    bad = ~((peak <= plant.rho_max + rtol) & (peak >= mean - rtol))
    if bad.any():
        p = int(np.flatnonzero(bad)[0])
        raise InvariantError(f"step {t}: sub-step capacity broken at pool {plant.pool_names[p]}: peak utilisation "
                             f"{peak[p]:.15g} outside [hour's mean {mean[p]:.15g}, rho_max {plant.rho_max:g}] "
                             f"(tolerance {rtol:g})", t)


def _check_dispatch(plant: PlantParams, record: StepRecord, t: int, rtol: float, streams: tuple[str, ...]) -> None:
    """Nothing served or spilled on a disallowed pair; 0 ≤ spilled ≤ served; deferrable overflow ≥ 0
    and only for deferrable streams."""
    served, spilled = np.asarray(record.served_req), np.asarray(record.spilled_req)
    tol = rtol * np.maximum(np.abs(served), 1.0)
    bad = (~plant.allowed & ((served != 0) | (spilled != 0))) | ~((spilled >= -tol) & (spilled <= served + tol))
    if bad.any():
        r, p, k = (int(i) for i in np.argwhere(bad)[0])
        raise InvariantError(f"step {t}: dispatch broken at region {plant.region_names[r]}, pool "
                             f"{plant.pool_names[p]}, class {plant.class_names[k]}: served {served[r, p, k]:.15g}, "
                             f"spilled {spilled[r, p, k]:.15g} (allowed pair: {bool(plant.allowed[r, p, k])}; "
                             f"tolerance {rtol:g})", t)
    overflow = np.asarray(record.deferred_overflow_req, dtype=float)
    bad = ~(overflow >= 0) | (~plant.deferrable[None, :] & (overflow != 0))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise InvariantError(f"step {t}: deferrable overflow {overflow.ravel()[i]:.15g} at {streams[i]} "
                             f"(must be ≥ 0, and 0 for an interactive class)", t)


@dataclass(frozen=True, eq=False)
class EpisodeResult:
    """A realised episode.

    Attributes:
        records: one record per step.
        sources: who made each step's decision (controller or fallback).
        final_state: the state after the last step.
        leftover_backlog_req: backlog at the episode end, counted as dropped (end rule).
        drop_eur_per_request: the drop penalty applied to it.
    """

    records: tuple[StepRecord, ...]
    sources: tuple[str, ...]
    final_state: PlantState
    leftover_backlog_req: float
    drop_eur_per_request: float
    timings: tuple[StepTiming, ...] = ()

    @property
    def cost_eur(self) -> float:
        """Energy cost + penalties as realised, with leftover backlog charged as dropped."""
        return float(sum(r.cost_eur for r in self.records)
                     + self.leftover_backlog_req * self.drop_eur_per_request)

    @property
    def dropped_req(self) -> float:
        return float(sum(r.dropped_req.sum() for r in self.records) + self.leftover_backlog_req)


def perfect_forecaster(realised: ControlForecast, horizon: int) -> Forecaster:
    """Forecasts that read the truth: steps ``t … t + horizon − 1`` (fewer near the data's end)."""
    def forecast(t: int) -> ControlForecast:
        return realised.window(t, min(horizon, realised.horizon - t))
    return forecast


Observer = Callable[[int, StepRecord, str, StepTiming, PlantState], None]


def _timed_step(plant: PlantParams, controller: Controller, realised: ControlForecast, forecaster: Forecaster,
               t: int, state: PlantState) -> tuple[PlantState, StepRecord, str, StepTiming]:
    """Step t: forecast, decide, step the plant and check the invariants; returns the state after
    it, the record, the decision's source and the timing."""
    t0 = time.perf_counter()
    forecast = forecaster(t)
    t1 = time.perf_counter()
    decision = controller.act(t, state, forecast)
    t2 = time.perf_counter()
    before = state.backlog_req
    after, record = step(plant, state, decision, realised.window(t, 1))
    check_invariants(plant, record, t, backlog_before_req=before)
    return after, record, decision.source, StepTiming(t1 - t0, t2 - t1, time.perf_counter() - t2)


def run_episode(plant: PlantParams, controller: Controller, realised: ControlForecast, steps: int,
                state: PlantState, forecaster: Forecaster | None = None,
                observers: tuple[Observer, ...] = (), start: int = 0,
                prior: EpisodeResult | None = None) -> EpisodeResult:
    """Run steps ``start … steps − 1``; the episode's end rule charges leftover backlog as dropped.

    Every step is checked (``check_invariants``); observers see each step's record, the decision's
    source, the timing and the state after it (they do the I/O: progress, tracking, checkpoints).

    Args:
        plant: coefficients.
        controller: decides every step.
        realised: what really happens, at least ``steps`` steps (more for look-ahead).
        steps: episode length.
        state: the state at step ``start``.
        forecaster: ``t -> forecast``; default: perfect forecasts over the whole remaining data.
        observers: called after every step.
        start: the first step to run (resuming: with ``prior`` holding steps before it).
        prior: the episode so far, when resuming.
    """
    realised.validate(plant, steps)
    forecaster = forecaster or perfect_forecaster(realised, realised.horizon)
    records = list(prior.records) if prior else []
    sources = list(prior.sources) if prior else []
    timings = list(prior.timings) if prior else []
    if len(records) != start:
        raise ValueError(f"run_episode: start={start} but {len(records)} prior steps were given")
    for t in range(start, steps):
        state, record, source, timing = _timed_step(plant, controller, realised, forecaster, t, state)
        records.append(record)
        sources.append(source)
        timings.append(timing)
        for observe in observers:
            observe(t, record, source, timing, state)
    leftover = float(np.where(plant.deferrable[None, :], state.backlog_req, 0.0).sum())
    return EpisodeResult(tuple(records), tuple(sources), state, leftover,
                         plant.penalties.drop_eur_per_request, tuple(timings))


def hindsight_optimum(plant: PlantParams, realised: ControlForecast, steps: int, state: PlantState,
                      policy: ControlSettings, *, solver: str = "highs") -> MPCResult:
    """The whole episode at once with realised data under the plant's rules: the lower bound.

    Continuous GPUs, the same penalties, and the same end rule (backlog left at the end counts as
    dropped); the objective and planning rules of ``policy`` (its ``horizon_steps`` is not read:
    the horizon is the episode; a lower bound plans without the MPC's rules, e.g. no GPU floor, as
    ``control.reference.HINDSIGHT_POLICY``). ``stage_values[0]`` of the result is the optimal
    realised cost ``cost*`` when the first stage is ``cost``. A solver failure (e.g.
    ``solver_time_limit_s`` reached) is a result with ``success`` False, never a number: callers
    must check it.
    """
    exact = realised.window(0, steps)
    mpc = AllocationMPC(plant, policy, solver=solver, horizon_steps=steps)
    return mpc.solve(state, exact, end_step=steps - 1)
