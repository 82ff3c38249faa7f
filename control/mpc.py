"""Model-predictive allocation: the horizon LP built once, re-parameterised and solved every step.

``AllocationMPC(plant, policy)`` builds the LP of ``control._lp`` once (variables only for the
allowed region–pool pairs) and a HiGHS solver through CasADi's conic interface. ``solve(state,
forecast)`` only fills parameters and bounds, warm-starts and solves: lexicographically (each stage
an LP; later stages keep earlier objectives within ``(1 + ε)`` of their optimum — cost less its
headroom risk, which they keep at its optimum) or with one
weighted objective. Prices, carbon, temperature and renewables are read at the median forecast;
GPUs are provisioned for ``load_provision_req_per_s`` (the configured load quantile). A solver
failure never raises: the result's status says what happened and ``success`` is False.

Size (``exact_routing_steps``, ``tail_block_steps``): the first steps are routed per (region, pool,
class); the tail per (region group, pool, class) in blocks of several steps — a smaller LP whose
applied step keeps its exact form. Robustness of the applied step (``group_interactive_shares``,
``expiry_guard``): interactive streams of a region group share one split, so that a burst of one
stream spreads over every pool the group uses; a deferrable stream's share serves what expires
even if nothing arrives; with group shares the reserve and N−1 rows hold group totals
(``control._headroom``), and with ``slo_aware_gpus`` the applied GPUs are SLO-aware. Every
setting comes from the policy (``control.params.ControlSettings``, the config's ``control:``
section). ``bench/mpc.py`` and ``bench/closed_loop.py`` measure them.

The parts: the parameter vector (forecasts, load levels, risk prices, terminal values) is
``control._mpc_parameters``'s; the bounds of variables and rows ``control._mpc_bounds``'s; the
applied step's rules ``control._applied_step``'s; the result and the plan read back from the
solution ``control._mpc_result``'s. This module builds them into one solve.
"""

from __future__ import annotations

import time

import casadi as ca
import numpy as np

from control._applied_step import gpu_floor, share_cap, uncap_certain_groups, with_slo_gpus
from control._backends import make_backend
from control._horizon import HorizonMap
from control._lp import KEPT_ROWS, OBJECTIVES, LinearProgram
from control._mpc_bounds import backlog_bounds, plant_bounds, row_bounds, share_routing
from control._mpc_parameters import (
    load_levels,
    pack_risk_prices,
    pack_signals,
    pack_terminal,
    shortfall_eur,
    terminal_value_eur,
)
from control._mpc_result import MPCResult, ObjectiveTerms, Plan, objective_terms, read_plan
from control.admm import AdmmSettings
from control.inputs import ControlForecast
from control.params import ControlSettings
from control.plant import PlantParams
from control.state import PlantState

__all__ = ["OBJECTIVES", "AllocationMPC", "MPCResult", "ObjectiveTerms", "Plan"]

ABS_SLACK = 1e-6   # absolute slack on a kept stage objective (solver tolerance)
UNSERVED_SLACK_REQ = 1e-7  # requests a later stage may leave unserved beyond stage 1's

StepData = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]   # p, lbx, ubx, lbg, ubg


def _check_policy(policy: ControlSettings, H: int, hold_steps: int) -> None:
    """Raise ValueError for settings the MPC cannot plan with (names the setting and its valid range)."""
    if H < 1:
        raise ValueError(f"horizon_steps: {H}, at least 1 needed")
    if not policy.solver_time_limit_s > 0:
        raise ValueError(f"solver_time_limit_s: {policy.solver_time_limit_s}; valid: > 0 s")
    if policy.exact_routing_steps < 0:
        raise ValueError(f"exact_routing_steps: {policy.exact_routing_steps}; valid: 0 (every step exact) "
                         "or ≥ 1")
    if hold_steps > 1 and 0 < policy.exact_routing_steps < H:
        raise ValueError(f"hold_steps: {hold_steps} needs every step exact; exact_routing_steps: "
                         f"{policy.exact_routing_steps}; valid: 0 or ≥ the horizon ({H})")
    cap = policy.max_share_vs_capacity
    if cap < 0 or (0 < cap < 1):
        raise ValueError(f"max_share_vs_capacity: {cap}; valid: 0 (off) or ≥ 1")
    if not 0.0 <= policy.group_provision_correlation <= 1.0:
        raise ValueError(f"group_provision_correlation: {policy.group_provision_correlation}; valid: 0 … 1")
    for name, level in (("load_quantile", policy.load_quantile), ("burst_quantile", policy.burst_quantile)):
        if not 0.0 < level < 1.0:
            raise ValueError(f"{name}: {level}; valid: 0 < level < 1")


class AllocationMPC:
    """The horizon LP and its HiGHS solver, built once.

    Args:
        plant: the plant's coefficients.
        policy: how it plans: the config's ``control:`` section (``ControlSettings``; its defaults
            are ``configs/default.yaml``'s). The MPC reads, under their names there: ``horizon_steps``
            (H); the objective (``objective``; ``order``, the lexicographic stages, distinct and
            among cost, carbon, delay; ``epsilon``, the relative slack kept on earlier stages (for
            cost: on the cost less its headroom risk, which later stages keep at its optimum); the
            weighted-mode prices ``carbon_price_eur_per_kg``, ``water_price_eur_per_l``,
            ``delay_price_eur_per_s``); ``solver_time_limit_s``, the time limit per stage (a stage
            that hits it ends the solve with status ``…: Time limit reached``); and the planning
            rules below.
        solver: ``highs`` (highspy, warm-started), ``qpsol`` (CasADi's conic interface to HiGHS,
            cold starts; see ``control._backends``) or ``admm`` (``control.admm``); None: the
            policy's ``solver`` (default ``highs``).
        horizon_steps: H instead of ``policy.horizon_steps`` (a shrinking horizon, the one-step
            myopic optimiser, the hindsight LP over a whole episode).
        fixed_pue: a constant PUE per site ``(S,)`` instead of PUE(temperature) (the
            temperature-unaware baseline).
        backlog_value_eur_per_req: value of a request left in the backlog at the horizon's end;
            None: ``terminal_value`` (an estimate of serving it later).
        hold_steps: steps are sub-steps and the hourly rules hold over blocks of this many (GPUs,
            grid, curtailment and battery held, power balanced per block, the FIFO deadline rule
            at block ends only, as the plant applies it per hour); the hindsight references'
            sub-step LP (``control.reference``; ``control._lp.LinearProgram``; every step exact,
            ``exact_routing_steps`` 0 or ≥ H). 1: none.

    Planning rules (fields of ``policy``):
        min_gpus_interactive: GPUs kept on at every pool that may serve an interactive class (a
            controller policy against M/M/1-like queueing on one or two GPUs, which the linear
            latency model cannot see; the hindsight optimum does not use it). With
            ``slo_aware_gpus`` it holds in the planned steps only: the applied step gets the
            SLO-aware count.
        load_quantile: the quantile level of ``load_provision_req_per_s``.
        burst_quantile: the quantile level of ``load_burst_req_per_s``.
        exact_routing_steps: steps routed per (region, pool, class) from the start (0: the whole
            horizon); later steps plan per (pool, class) with the regions pooled (see
            ``control._lp.LinearProgram``): a smaller LP whose applied step is unchanged in form.
        tail_block_steps: plant steps per LP step in the pooled tail (move blocking: a block's
            decisions hold for all its steps and its inputs are their means); 1 = none.
        group_interactive_shares: one split per (region group, pool, class) for the interactive
            streams of the applied step (see ``control._lp.LinearProgram``).
        max_share_vs_capacity: with group shares, a pool's split of a group's interactive class is
            at most this multiple of its capacity-proportional split (installed GPUs at rho_max),
            so that no pool takes a burst far beyond its size (0 = no cap). It binds only where the
            (group, class) total's forecast has spread in the applied step (burst level above the
            median): without spread there is no burst to guard against.
        expiry_guard: the applied step's share of a deferrable stream serves the requests that
            expire in it even if no new request arrives (a share is a fraction of the realised
            work, so fewer arrivals than forecast would otherwise leave expiring work unserved).
        slo_aware_gpus: the applied step runs, per pool, the whole GPUs that minimise idle cost +
            the plant's Erlang-C SLO-miss penalty for the load its shares route at the provisioning
            level, never fewer than the plan's (``control.realised.slo_aware_decision_gpus``).
        group_provision_correlation: with group shares, how a region group's interactive streams'
            excesses over their medians add up in the load its pools are provisioned for (1: the
            sum of each stream's quantile; 0: independent errors); see ``control._headroom``.
        group_bursts: with group shares, the N−1 rows hold one (region group, class) total at its
            burst level (the streams' burst excesses combined like the provisioning ones) instead
            of one stream; see ``control._headroom``.

    Risk (planning only, never realised): GPUs cover the median load in every step (hard), the
    provisioning level in every step and, in the applied step, any *one* stream at its burst level
    with the others at the provisioning level (an N−1 rule, as grid operators plan for one outage;
    one row per allowed pair; interactive streams only, as deferrable overflow waits in the
    backlog; with ``group_bursts`` one region group's class total instead of one stream). The
    last two are soft (a shortfall per pool and step, and per pair for bursts):
    GPU-seconds per second left short are priced at the drops they expose,
    ``drop penalty × Δt × (1 − level) ÷ (GPU-s per request)`` (the newsvendor rate: the load
    exceeds a level-τ quantile with probability 1 − τ), so that GPUs are always bought while the
    pools have them. A request left unserved is charged the same exposure (its share of a high
    load is dropped too), so real load is never dropped to keep headroom.

    With ``sub_steps`` M > 1 (the plant's sub-steps per hour) and a forecast that knows the applied
    hour's sub-steps (perfect foresight), the applied step is also planned on them: each pool's
    work in each sub-step, routed by the hour's shares, within its GPUs (hard rows
    ``sub_capacity``), so that shares keep each pool's own busiest sub-step within what it runs
    (the fleet's peak factor alone cannot see which pools peak together). Other forecasts leave
    those rows free.
    """


    def __init__(self, plant: PlantParams, policy: ControlSettings, *, solver: str | None = None,
                 horizon_steps: int | None = None, fixed_pue: np.ndarray | None = None,
                 backlog_value_eur_per_req: float | None = None, hold_steps: int = 1, sub_steps: int = 1) -> None:
        H = policy.horizon_steps if horizon_steps is None else horizon_steps
        _check_policy(policy, H, hold_steps)
        self.plant, self.policy, self.horizon, self.objective = plant, policy, H, policy.objective
        self.order, self.epsilon = tuple(policy.order), policy.epsilon
        self.prices = (policy.carbon_price_eur_per_kg, policy.water_price_eur_per_l, policy.delay_price_eur_per_s)
        self.backlog_value = backlog_value_eur_per_req
        self.fixed_pue = None if fixed_pue is None else np.broadcast_to(fixed_pue, (plant.n_sites,))
        self.lp = lp = LinearProgram(plant, H, policy.exact_routing_steps or None, policy.group_interactive_shares,
                                     policy.tail_block_steps, hold_steps, sub_steps)
        self.horizon_map = HorizonMap(lp, plant)
        self.expiry_guard = bool(policy.expiry_guard)
        self.max_share_vs_capacity = float(policy.max_share_vs_capacity)
        self.slo_aware_gpus = bool(policy.slo_aware_gpus)
        self.group_provision_correlation = float(policy.group_provision_correlation)
        self.group_bursts = bool(policy.group_bursts)
        self.solver_name = solver = solver or policy.solver
        self.min_gpus_interactive = float(policy.min_gpus_interactive)
        self.load_quantile, self.burst_quantile = float(policy.load_quantile), float(policy.burst_quantile)
        self._shortfall_eur = shortfall_eur(plant)   # EUR per GPU-s/s short, per pool and per pair
        self.backend = make_backend(solver, lp, policy.solver_time_limit_s, AdmmSettings(
            policy.admm_rho, policy.admm_max_iterations, policy.admm_tolerance, policy.admm_workers))
        self._terms = ca.Function("terms", [lp.x.sym, lp.p.sym], [ca.vertcat(*lp.terms.values())])
        # (region group, class) of each capped share (the cap binds only where that total's forecast has spread)
        self._share_group_stream: np.ndarray | None = None
        self._lbx, self._ubx = self._static_bounds()

    # ------------------------------------------------------------------ bounds and parameters
    def _static_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Variable bounds fixed when built: the plant's limits, the share cap and the GPU floor."""
        lp, plant = self.lp, self.plant
        lbx, ubx = plant_bounds(plant, lp)
        if self.max_share_vs_capacity > 0 and lp.group_keys:   # a pool's split ≤ cap × its capacity-proportional one
            upper, self._share_group_stream = share_cap(plant, lp, self.max_share_vs_capacity)
            lp.x.pack(ubx, "share0", upper)
        if self.min_gpus_interactive > 0:
            lp.x.pack(lbx, "n", gpu_floor(plant, lp, self.min_gpus_interactive, self.slo_aware_gpus))
        return lbx, ubx

    def terminal_value(self, fc: ControlForecast, pue_value: np.ndarray) -> np.ndarray:
        """EUR per request left in the backlog at the horizon end, per deferrable stream (an estimate
        of serving it later: ``control._mpc_parameters.terminal_value_eur``)."""
        return terminal_value_eur(self.plant, self.lp, fc, pue_value)

    def _parameters(self, fc: ControlForecast, end_step: int | None, daymask: np.ndarray,
                    backlog_req: np.ndarray | None = None) -> np.ndarray:
        """The LP's parameter vector for the forecast per LP step (``control._mpc_parameters``)."""
        lp, plant, d = self.lp, self.plant, self.lp.d
        p = np.zeros(lp.p.size)
        pue_value = pack_signals(p, lp, plant, fc, self.fixed_pue)
        levels = load_levels(plant, lp, self.horizon_map, fc, self.group_provision_correlation, self.group_bursts,
                             backlog_req)
        lp.p.pack(p, "ratio", levels.ratio[:d.E])
        lp.p.pack(p, "ratio_a", levels.ratio_a)
        lp.p.pack(p, "burst", levels.burst)
        if lp.sub_steps > 1:   # the rows are free unless the sub-steps are known (control._mpc_bounds)
            lp.p.pack(p, "sub_ratio", levels.sub if levels.sub is not None else np.ones((lp.sub_steps, d.RK)))
        if lp.group_shares:
            lp.p.pack(p, "pair_load0", levels.median[0][plant.pair_stream])
        pack_risk_prices(p, lp, plant, self.horizon_map.hours[:, None], levels, self._shortfall_eur,
                         self.load_quantile, self.burst_quantile)
        lp.p.pack(p, "daymask", daymask)
        if lp.hold_steps > 1:
            lp.p.pack(p, "pair_load", levels.median[:, plant.pair_stream])
        terminal = self.terminal_value(fc, pue_value) if self.backlog_value is None else self.backlog_value
        pack_terminal(p, lp, plant, self.horizon_map, end_step, terminal)
        return p

    def step_data(self, state: PlantState, fc: ControlForecast, end_step: int | None = None) -> StepData:
        """The step's LP data: parameters ``p``, variable bounds ``lbx, ubx`` and row bounds
        ``lbg, ubg`` (``fc`` already checked and cut to the horizon; per plant step)."""
        return self._step_data(state, fc, self.horizon_map.lp_steps(fc), end_step)

    def _step_data(self, state: PlantState, fc: ControlForecast, steps: ControlForecast, end_step: int | None,
                   block_shares: np.ndarray | None = None) -> StepData:
        end = None if end_step is None else int(self.horizon_map.step_of_hour[end_step])
        p = self._parameters(steps, end, self.horizon_map.daymask(fc), state.backlog_req)
        lbg, ubg = row_bounds(self.plant, self.lp, self.horizon_map, state, steps, block_shares is not None)
        ubx = self._ubx.copy()
        if len(self.lp.d.deferred):
            backlog_bounds(self.plant, self.lp, self.horizon_map, ubx, state, fc, self.expiry_guard)
        if self._share_group_stream is not None:
            uncap_certain_groups(self.plant, self.lp, ubx, fc, self._share_group_stream)
        lbx = self._lbx
        if block_shares is not None:
            lbx = lbx.copy()
            share_routing(self.plant, self.lp, p, lbx, ubx, steps, block_shares)
        return p, lbx, ubx, lbg, ubg

    # ------------------------------------------------------------------ solving
    def _stage_weights(self, stage: str) -> np.ndarray:
        """Weights on the kept rows (``control._lp.KEPT_ROWS``: the objectives, unserved, headroom);
        the unserved stage minimises unserved requests and the headroom risk together."""
        if stage == "weighted":
            carbon, water, delay = self.prices
            return np.array([1.0, carbon, delay, water, 0.0, 0.0])
        return np.array([1.0 if o == stage or (stage, o) == ("unserved", "headroom") else 0.0 for o in KEPT_ROWS])

    def _stages(self) -> tuple[str, ...]:
        """The stages solved in order. When cost (which prices drops) is not first, a first
        stage minimises the requests left unserved and the headroom risk and keeps both: carbon,
        water or delay are never bought with dropped requests or the headroom against them."""
        if self.objective != "lexicographic":
            return ("weighted",)
        return self.order if self.order[0] == "cost" else ("unserved", *self.order)

    def _window(self, state: PlantState, forecast: ControlForecast) -> ControlForecast:
        """``forecast`` checked and cut to the horizon (``state`` checked too)."""
        state.validate(self.plant)
        return forecast.validate(self.plant, self.horizon).window(0, self.horizon)

    def solve(self, state: PlantState, forecast: ControlForecast, *,
              end_step: int | None = None, block_shares: np.ndarray | None = None) -> MPCResult:
        """Plan the next ``horizon`` steps.

        Args:
            state: the plant state now.
            forecast: at least ``horizon`` steps; only the first ``horizon`` are read.
            end_step: the step of the horizon that ends the episode (None: beyond the horizon);
                backlog left at its end counts as dropped (the episode's end rule). Backlog left
                at the horizon's end is valued at ``terminal_value``.
            block_shares: with ``hold_steps``, the backlog at each block's start ``(blocks,
                deferrable streams)``, requests: routing by one share per block of the work the
                plant offers (``control._mpc_bounds.share_routing``); None: per step.

        Raises:
            ValueError: the state or forecast is malformed (names the array, site/stream, step).
        """
        fc = self._window(state, forecast)
        if end_step is not None and not 0 <= end_step < self.horizon:
            raise ValueError(f"end_step: {end_step} outside the horizon 0..{self.horizon - 1}")
        steps = self.horizon_map.lp_steps(fc)
        p, lbx, ubx, lbg, ubg = self._step_data(state, fc, steps, end_step, block_shares)
        start = time.perf_counter()
        self.backend.load(p, lbx, ubx, lbg, ubg)
        best, status, statuses, values, iters = self._solve_stages(p, lbx, ubx)
        elapsed = time.perf_counter() - start
        if best is None:
            return MPCResult(None, None, status, False, tuple(statuses), iters, elapsed,
                             solver_time_s=self.backend.solver_time_s)
        plan = self._plan(best, state, steps)
        if self.slo_aware_gpus:
            plan = with_slo_gpus(self.plant, plan, state, fc, self.fixed_pue)
        return MPCResult(plan, self._objective_terms(best, p), status, True,
                         tuple(statuses), iters, elapsed, tuple(values), self.backend.solver_time_s)

    def _solve_stages(self, p: np.ndarray, lbx: np.ndarray, ubx: np.ndarray
                      ) -> tuple[np.ndarray | None, str, list[str], list[float], int]:
        """Solve the stages in order on the loaded LP; each keeps its optimum for the later ones.

        Returns the last solved stage's solution (clipped to the bounds; None when none solved),
        the status, HiGHS's status per stage, the stage optima and the iterations.
        """
        best, statuses, iters, status = None, [], 0, "optimal"
        values: list[float] = []
        for i, stage in enumerate(self._stages()):
            weights = self._stage_weights(stage)
            self.lp.p.pack(p, "weights", weights)
            x, st, it = self.backend.solve(weights, i)
            statuses.append(st)
            iters += it
            if x is None:
                status = f"{'partial' if best is not None else 'failed'}: stage {stage}: {st}"
                break
            if i == 0:
                self.backend.keep_basis()
            best = np.clip(x, lbx, ubx)  # round-off within the solver's tolerance (e.g. −1e-16)
            self._keep_stage(stage, self.backend.objective_values(x), values)
        return best, status, statuses, values, iters

    def _keep_stage(self, stage: str, kept: np.ndarray, values: list[float]) -> None:
        """Append a solved stage's optimum to ``values`` and bound its row for the later stages
        (``kept``: the kept rows at its solution: cost, carbon, delay, water, unserved)."""
        obj_rows = self.lp.row_slice("objectives")
        if stage in OBJECTIVES or stage == "weighted":
            values.append(float(kept[OBJECTIVES.index("cost" if stage == "weighted" else stage)]))
        if stage in OBJECTIVES:
            row = obj_rows.start + OBJECTIVES.index(stage)
            self.backend.set_row_upper(row, self._kept(values[-1], self.epsilon, self._risk_eur(stage, kept)))
        # later stages may not buy carbon, water or delay with drops nor with the headroom against them
        for row in ("unserved", "headroom") if stage in ("unserved", "cost") else ():
            i = KEPT_ROWS.index(row)
            self.backend.set_row_upper(obj_rows.start + i, float(kept[i]) * (1 + 1e-9) + UNSERVED_SLACK_REQ)

    def solve_whole_gpus(self, state: PlantState, forecast: ControlForecast, *, end_step: int | None = None,
                         mip_rel_gap: float = 1e-3, start_gpus: np.ndarray | None = None,
                         block_shares: np.ndarray | None = None,
                         time_limit_s: float | None = None) -> tuple[MPCResult, float]:
        """The cost stage alone as a MILP: every step's GPUs whole (HiGHS branch and bound; the
        hindsight reference of ``control.reference``). Same arguments as ``solve``.

        Args:
            mip_rel_gap: HiGHS stops at this relative gap between the incumbent and its bound.
            start_gpus: whole GPUs ``(H, P)`` to start from (HiGHS completes the rest), or None.
            block_shares: as for ``solve``.
            time_limit_s: the MILP's time limit, s (None: the MPC's per-stage limit).

        Returns:
            The result (``status`` HiGHS's: ``Optimal`` at the gap, ``Time limit reached`` when
            it stopped early; ``success`` when a whole-GPU plan was found) and the gap left.
        """
        if self.solver_name != "highs":
            raise ValueError(f"solve_whole_gpus: solver {self.solver_name!r}; only 'highs' solves a MILP")
        fc = self._window(state, forecast)
        steps = self.horizon_map.lp_steps(fc)
        p, lbx, ubx, lbg, ubg = self._step_data(state, fc, steps, end_step, block_shares)
        weights = self._stage_weights("cost")
        self.lp.p.pack(p, "weights", weights)
        start = time.perf_counter()
        self.backend.load(p, lbx, ubx, lbg, ubg)
        cols = np.arange(self.lp.x.slice("n").start, self.lp.x.slice("n").stop)
        x, status, gap = self.backend.solve_mip(weights, cols, mip_rel_gap,
                                                None if start_gpus is None else np.ravel(start_gpus), time_limit_s)
        elapsed = time.perf_counter() - start
        if x is None:
            return MPCResult(None, None, f"failed: whole GPUs: {status}", False, (status,), 0, elapsed,
                             solver_time_s=self.backend.solver_time_s), gap
        x = np.clip(x, lbx, ubx)
        value = float(self.backend.objective_values(x)[0])
        return MPCResult(self._plan(x, state, steps), self._objective_terms(x, p), status, True, (status,), 0,
                         elapsed, (value,), self.backend.solver_time_s), gap

    def warm_start(self) -> object:
        """The solver's warm start for the next solve, as plain data (for checkpoints)."""
        return self.backend.export_warm()

    def set_warm_start(self, warm: object) -> None:
        """Restore ``warm_start()``'s result."""
        self.backend.import_warm(warm)

    def _risk_eur(self, stage: str, kept: np.ndarray) -> float:
        """The headroom risk inside a kept cost optimum, EUR (0 for the other stages)."""
        if stage != "cost":
            return 0.0
        return float(kept[KEPT_ROWS.index("headroom")]) * self.lp.risk_eur_per_req

    @staticmethod
    def _kept(value: float, epsilon: float, risk_eur: float = 0.0) -> float:
        """Upper bound that keeps a stage within ``(1 + ε)`` of its optimum (plus the solver's
        tolerance); for cost, ε applies to the optimum less its headroom risk (``risk_eur``, kept
        on its own row), the EUR an operator pays."""
        return value + epsilon * abs(value - risk_eur) + ABS_SLACK * max(1.0, abs(value))

    def _objective_terms(self, x: np.ndarray, p: np.ndarray) -> ObjectiveTerms:
        return objective_terms(self._terms, x, p)

    def _plan(self, x: np.ndarray, state: PlantState, steps: ControlForecast) -> Plan:
        return read_plan(self.lp, self.plant, self.horizon_map, x, state, steps)
