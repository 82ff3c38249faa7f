"""The hindsight references of a closed-loop episode (DESIGN.md §5 *References and measures*).

* ``cost_bound`` — the hindsight LP on the load's own resolution: the whole episode at once with
  realised data, routing per sub-step (ServeGen: 10 min, ``ControlForecast.load_sub_req_per_s``),
  GPUs, grid import and battery power per hour, the power balance per hour (as the plant accounts
  it), continuous GPUs and no queueing. It is ``AllocationMPC``'s LP on a sub-step plant
  (``step_h ÷ M``, deadlines × M) over ``T·M`` steps with ``hold_steps = M``; hourly signals are
  held within the hour. A lower bound on every controller's realised cost, not a reachable point.
* ``cost_ref`` — the best realisable hindsight cost: the cheapest of three whole-episode plans, each
  replayed hour by hour through the plant (``run_episode``: the dispatcher, whole GPUs, queueing):
  the bound's own plan; the plan of the same LP with routing by hourly shares of the work the
  plant offers (rows ``block_shares``; the backlog at every hour's start fixed to the bound's), so
  that the dispatcher need not spill; and a MILP hindsight plan with whole GPUs and those hourly
  shares (HiGHS branch and bound at ``mip_rel_gap``,
  started from the shares plan's GPUs rounded up, within the time limit; whether it stopped early
  and its gap are reported). A replay applies the plan's hourly shares (its served work of the
  hour ÷ the hour's work) and battery power, and whole GPUs: the plant's SLO-aware count
  (``slo_aware_decision_gpus``), never fewer than the plan's nor than the one sizing rule gives for
  the busiest realised sub-step of the hour (``provision_gpus``). The bound's own plan routes per
  sub-step, which hourly shares cannot follow: at fleet scale its replay drops requests.
  When the plant's dispatcher fills spare capacity with backlog (``backlog_fill``), each plan is
  replayed with the fill on and off and the cheaper counts: the fill would serve, at the hour's
  price, batch work a hindsight plan deferred on purpose to a cheaper hour (a controller may run
  either dispatcher: ``control.backlog_fill`` is a setting).

Both references minimise cost alone (energy cost + penalties, the stage-1 objective), whatever the
configured objective: they are references for ``cost``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields, replace

import numpy as np

from control import plant as pl
from control.inputs import ControlForecast
from control.mpc import AllocationMPC, MPCResult, Plan
from control.params import ControlSettings
from control.plant import PlantParams
from control.realised import slo_aware_decision_gpus
from control.shares import plan_shares
from control.simulate import EpisodeResult, run_episode
from control.sizing import provision_gpus
from control.state import Allocation, PlantState

__all__ = ["HINDSIGHT_POLICY", "HindsightFailed", "PlanReplay", "Reference", "SubStepProblem", "block_backlog_req",
           "hindsight_bound", "hindsight_reference", "hourly_plan", "sub_step_problem"]

#: The hindsight LP's policy (``AllocationMPC``; its time limit is set per call): cost alone, every step
#: routed exactly, none of the MPC's planning rules (no GPU floor, one free split per stream, no expiry
#: guard, share cap or SLO-aware GPUs, no group totals). The realised data have no spread above the
#: median, so the load and burst levels (p90, p95) price nothing there.
HINDSIGHT_POLICY = ControlSettings(
    order=("cost",), min_gpus_interactive=0.0, exact_routing_steps=0, tail_block_steps=1,
    group_interactive_shares=False, expiry_guard=False, max_share_vs_capacity=0.0, slo_aware_gpus=False,
    group_provision_correlation=1.0, group_bursts=False, load_quantile=0.9, burst_quantile=0.95)


class HindsightFailed(ValueError):
    """The hindsight LP found no solution (e.g. the time limit). Attributes: ``status``."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, eq=False)
class Reference:
    """The references of one episode, EUR.

    Attributes:
        cost_bound_eur: the sub-step hindsight LP's optimum (a lower bound).
        cost_ref_eur: the cheapest replay.
        ref_source: ``lp-replay``, ``lp-shares-replay`` or ``milp-replay`` (`` (fill off)`` when
            the cheaper replay ran the dispatcher without the backlog fill).
        lp_replay_eur: the bound's LP plan replayed through the plant (each replay: the cheaper
            of fill on and off when the plant fills).
        shares_lp_replay_eur: the plan of the same LP with routing by hourly shares (rows
            ``block_shares``; continuous GPUs) replayed (NaN when it found none).
        shares_lp_eur: that LP's own optimum (continuous GPUs, no queueing; NaN when it found
            none): ``cost_bound`` with the routing held for the hour, which a plant applying hourly
            shares cannot beat except through its dispatcher's spill; ``bound_spread`` splits at it
            into routing per hour (``shares_spread``) and whole GPUs with queueing.
        milp_replay_eur: the whole-GPU MILP's plan replayed (NaN when it found none).
        milp_status: HiGHS's status (``Optimal``: within ``mip_rel_gap``; ``Time limit reached``).
        milp_gap: the MILP's relative gap when it stopped (inf without a solution).
        milp_stopped_early: whether the MILP stopped before reaching ``mip_rel_gap``.
        sub_steps: M, sub-steps per hour of the LP.
        solve_s: wall time of building and solving both and of the replays, s.
        episode: the replay that gives ``cost_ref`` (checked by ``run_episode`` step by step).
    """

    cost_bound_eur: float
    cost_ref_eur: float
    ref_source: str
    lp_replay_eur: float
    shares_lp_replay_eur: float
    shares_lp_eur: float
    milp_replay_eur: float
    milp_status: str
    milp_gap: float
    milp_stopped_early: bool
    sub_steps: int
    solve_s: float
    episode: EpisodeResult

    @property
    def milp_summary(self) -> str:
        """The whole-GPU MILP in words: its replay and gap, or that it found no plan in its limit."""
        if math.isnan(self.milp_replay_eur):
            return f"whole-GPU MILP: no plan ({self.milp_status})"
        return (f"whole-GPU MILP {self.milp_replay_eur:.2f} EUR ({self.milp_status}, gap {100 * self.milp_gap:.2f} %"
                + (", stopped early)" if self.milp_stopped_early else ")"))

    @property
    def bound_spread(self) -> float:
        """(cost_ref − cost_bound) ÷ cost_bound (NaN when the bound is 0)."""
        b = self.cost_bound_eur
        return (self.cost_ref_eur - b) / b if b else float("nan")

    @property
    def shares_spread(self) -> float:
        """(shares LP − cost_bound) ÷ cost_bound: the part of ``bound_spread`` that routing by
        hourly shares costs with continuous GPUs and no queueing (NaN without that LP or bound)."""
        b = self.cost_bound_eur
        return (self.shares_lp_eur - b) / b if b else float("nan")


@dataclass(frozen=True, eq=False)
class SubStepProblem:
    """An episode on the sub-step grid: ``plant`` with ``step_h ÷ M`` and deadlines × M, the
    realised inputs per sub-step (``forecast``, T·M steps, hourly signals held), the state."""

    plant: PlantParams
    forecast: ControlForecast
    state: PlantState
    sub_steps: int


def _sub_state(plant: PlantParams, sub_plant: PlantParams, state: PlantState, M: int) -> PlantState:
    """The state on the sub-step grid: each hour of the arrival history split into M equal sub-steps."""
    hist = np.repeat(np.asarray(state.arrivals_history_req) / M, M, axis=0)
    rows = PlantState.history_len(sub_plant)
    pad = np.zeros((max(rows - hist.shape[0], 0), *hist.shape[1:]))
    return replace(state, arrivals_history_req=np.concatenate([hist, pad])[:rows]).validate(sub_plant)


def sub_step_problem(plant: PlantParams, realised: ControlForecast, steps: int, state: PlantState) -> SubStepProblem:
    """The first ``steps`` hours of ``realised`` on its sub-step grid (M = 1 without sub-step load)."""
    fc = realised.window(0, steps)
    M = fc.sub_steps
    sub_plant = replace(plant, step_h=plant.step_h / M, deadline_steps=plant.deadline_steps * M)
    held = {f.name: np.repeat(np.asarray(getattr(fc, f.name)), M, axis=0) for f in fields(fc)
            if f.name not in ("load_sub_req_per_s", "load_burst_req_per_s") and getattr(fc, f.name) is not None}
    if M > 1:
        load = np.asarray(fc.load_sub_req_per_s).reshape(steps * M, *np.shape(fc.load_req_per_s)[1:])
        held.update(load_req_per_s=load, load_provision_req_per_s=load)
    sub = ControlForecast(**held).validate(sub_plant, steps * M)
    return SubStepProblem(sub_plant, sub, _sub_state(plant, sub_plant, state, M), M)


def hourly_plan(plant: PlantParams, sub_plan: Plan, realised: ControlForecast, state: PlantState, M: int) -> Plan:
    """A sub-step plan as the hourly decisions a plant applies: per hour the mean served work and
    power flows, the held GPUs and battery power, backlog and state of charge at the hour's end,
    and shares = the hour's served work ÷ its work (arrivals + backlog at the hour's start)."""
    T = sub_plan.horizon // M
    mean = lambda a: np.asarray(a).reshape(T, M, *np.shape(a)[1:]).mean(axis=1)  # noqa: E731
    first, last = (lambda a: np.asarray(a)[::M]), (lambda a: np.asarray(a)[M - 1::M])  # noqa: E731
    R, K = len(plant.region_names), len(plant.class_names)
    defer = np.flatnonzero(np.tile(plant.deferrable, R))
    backlog = np.zeros((T, R * K))
    backlog[0] = np.asarray(state.backlog_req).reshape(-1)
    backlog[1:, defer] = last(sub_plan.backlog_req)[:-1]
    work = np.asarray(realised.load_req_per_s)[:T] * plant.step_s + backlog.reshape(T, R, K)
    served, gpus = mean(sub_plan.served_req_per_s), first(sub_plan.gpus)
    return Plan(served, plan_shares(plant, served, work, gpus), gpus, mean(sub_plan.grid_kw),
                mean(sub_plan.curtailed_kw), first(sub_plan.charge_kw), first(sub_plan.discharge_kw),
                last(sub_plan.soc_kwh), mean(sub_plan.dropped_req_per_s), last(sub_plan.backlog_req))


def block_backlog_req(plant: PlantParams, sub_plan: Plan, state: PlantState, M: int) -> np.ndarray:
    """The backlog of each deferrable stream at every hour's start, requests ``(T, deferrable
    streams)``, of a sub-step plan (the state's at the first)."""
    defer = np.flatnonzero(np.tile(plant.deferrable, len(plant.region_names)))
    first = np.asarray(state.backlog_req, dtype=float).reshape(-1)[defer]
    return np.maximum(np.vstack([first[None], np.asarray(sub_plan.backlog_req)[M - 1::M][:-1]]), 0.0)


class PlanReplay:
    """Applies a fixed hourly plan: its shares and battery power, and whole GPUs — the plant's
    SLO-aware count for those shares of the realised hour's load (``slo_aware_decision_gpus``),
    never fewer than the plan's nor than the sizing rule gives for the busiest realised sub-step
    (``provision_gpus`` of the shares at each sub-step's load, with ``headroom``)."""

    def __init__(self, plant: PlantParams, plan: Plan, realised: ControlForecast, name: str,
                 headroom: float = 0.0) -> None:
        self.plant, self.plan, self.realised, self.name, self.headroom = plant, plan, realised, name, headroom

    def act(self, t: int, state: PlantState, forecast: ControlForecast) -> Allocation:
        plant, x = self.plant, self.realised.window(t, 1)
        decision = self.plan.allocation(t, self.name)
        sub = x.load_req_per_s if x.load_sub_req_per_s is None else x.load_sub_req_per_s[0]
        peak = np.max([provision_gpus(plant, decision.share, load, self.headroom, state.backlog_req)
                       for load in sub], axis=0)
        gpus = slo_aware_decision_gpus(plant, decision.share, x.load_req_per_s[0], state.backlog_req,
                                       np.maximum(decision.gpus, peak), pl.pue(plant, x.temp_c[0]),
                                       x.price_eur_per_mwh[0])
        return replace(decision, gpus=gpus)


def _replay(plant: PlantParams, plan: Plan, realised: ControlForecast, steps: int, state: PlantState,
            name: str, headroom: float) -> EpisodeResult:
    return run_episode(plant, PlanReplay(plant, plan, realised, name, headroom), realised, steps, state)


def hindsight_bound(plant: PlantParams, realised: ControlForecast, steps: int, state: PlantState, *,
                    time_limit_s: float = 60.0) -> tuple[SubStepProblem, AllocationMPC, MPCResult]:
    """The sub-step hindsight LP (module docstring): its problem, its MPC (built once; the MILP
    reuses it) and its solution; ``stage_values[0]`` of the result is ``cost_bound``.

    Raises:
        HindsightFailed: the LP found no solution (names its status).
    """
    problem = sub_step_problem(plant, realised, steps, state)
    M = problem.sub_steps
    mpc = AllocationMPC(problem.plant, replace(HINDSIGHT_POLICY, solver_time_limit_s=time_limit_s),
                        horizon_steps=steps * M, hold_steps=M)
    mpc.backend.cold_solver = "ipm"
    result = mpc.solve(problem.state, problem.forecast, end_step=M * steps - 1)
    if not result.success or result.plan is None:
        raise HindsightFailed(f"hindsight bound (LP) of {steps} h × {M} sub-steps: the solver found no solution "
                              f"({result.status})", result.status)
    return problem, mpc, result


def _plan_replays(plant: PlantParams, realised: ControlForecast, steps: int, state: PlantState, M: int,
                  headroom: float, results: dict[str, MPCResult]) -> dict[str, tuple[EpisodeResult, str]]:
    """Each solved plan of ``results`` replayed hourly (M sub-steps per hour) on the plant and, with
    backlog fill, on the plant without it: the cheaper run per plan, with its label's suffix."""
    plants = (plant, replace(plant, backlog_fill=False)) if plant.backlog_fill else (plant,)
    replays: dict[str, tuple[EpisodeResult, str]] = {}
    for name, result in results.items():
        same = next((other for other, r in results.items() if r is result and other in replays), None)
        if same is not None:         # M = 1: the shares plan is the bound's own; replayed once
            replays[name] = replays[same]
        elif result.success and result.plan is not None:
            hourly = hourly_plan(plant, result.plan, realised, state, M)
            runs = [(_replay(p, hourly, realised, steps, state, f"hindsight-{name}", headroom),
                     "" if p.backlog_fill == plant.backlog_fill else " (fill off)") for p in plants]
            replays[name] = min(runs, key=lambda run: run[0].cost_eur)
    return replays


def hindsight_reference(plant: PlantParams, realised: ControlForecast, steps: int, state: PlantState, *,
                        time_limit_s: float = 60.0, mip_rel_gap: float = 1e-3, headroom: float = 0.0,
                        milp_time_limit_s: float | None = None) -> Reference:
    """``cost_bound`` and ``cost_ref`` of an episode (module docstring).

    Args:
        plant: coefficients (the plant the controllers run on).
        realised: what really happened, at least ``steps`` hours; with ``load_sub_req_per_s`` the
            LP routes per sub-step (else M = 1: the hourly LP).
        steps: episode length, hours.
        state: the state at the episode's start.
        time_limit_s: HiGHS time limit of each LP (and of the MILP unless ``milp_time_limit_s``), s.
        mip_rel_gap: the MILP's target relative gap.
        headroom: the sizing rule's headroom in the replays (``control.provision_headroom``).
        milp_time_limit_s: the whole-GPU MILP's time limit, s (``control.milp_time_limit_s``); it
            keeps its best plan when it stops early (the reference says so).

    Raises:
        HindsightFailed: the bound's LP found no solution (names its status).
    """
    began = time.perf_counter()
    problem, mpc, lp = hindsight_bound(plant, realised, steps, state, time_limit_s=time_limit_s)
    assert lp.plan is not None   # hindsight_bound raises HindsightFailed when the LP has no plan
    M, end = problem.sub_steps, problem.sub_steps * steps - 1
    # hourly shares of the work the plant offers, with the bound's backlog at every hour's start
    # (M = 1: the bound's own routing is hourly already)
    backlog = block_backlog_req(plant, lp.plan, state, M) if M > 1 else None
    shares = mpc.solve(problem.state, problem.forecast, end_step=end, block_shares=backlog) if M > 1 else lp
    base = shares.plan if shares.success and shares.plan is not None else lp.plan
    milp, gap = mpc.solve_whole_gpus(problem.state, problem.forecast, end_step=end, mip_rel_gap=mip_rel_gap,
                                     start_gpus=np.minimum(np.ceil(base.gpus - 1e-9), problem.plant.gpus_max),
                                     block_shares=backlog, time_limit_s=milp_time_limit_s)
    replays = _plan_replays(plant, realised, steps, state, M, headroom, {"lp": lp, "lp-shares": shares, "milp": milp})
    eur = {name: replays[name][0].cost_eur if name in replays else math.nan for name in ("lp", "lp-shares", "milp")}
    best = min(replays, key=lambda name: replays[name][0].cost_eur)
    status = milp.stage_status[0] if milp.stage_status else milp.status
    episode, fill = replays[best]
    shares_eur = float(shares.stage_values[0]) if shares.success and shares.stage_values else math.nan
    return Reference(float(lp.stage_values[0]), eur[best], f"{best}-replay{fill}", eur["lp"], eur["lp-shares"],
                     shares_eur, eur["milp"], status, gap, status != "Optimal", M, time.perf_counter() - began,
                     episode)
