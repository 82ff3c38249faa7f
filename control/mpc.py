"""Model-predictive allocation: the horizon LP built once, re-parameterised and solved every step.

``AllocationMPC(plant, policy)`` builds the LP of ``control._lp`` once (variables only for the
allowed region–pool pairs) and a HiGHS solver through CasADi's conic interface. ``solve(state,
forecast)`` only fills parameters and bounds, warm-starts and solves: lexicographically (each stage
an LP; later stages keep earlier objectives within ``(1 + ε)`` of their optimum) or with one
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
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import casadi as ca
import numpy as np
from numpy.typing import ArrayLike

from control import plant as pl
from control._backends import make_backend
from control._headroom import certain_totals, group_burst_ratio, group_ratio
from control._horizon import HorizonMap
from control._lp import KEPT_ROWS, OBJECTIVES, LinearProgram
from control.inputs import ControlForecast
from control.params import ControlSettings
from control.plant import PlantParams
from control.realised import slo_aware_decision_gpus
from control.shares import capacity_shares, plan_shares, recent_arrivals_req
from control.state import Allocation, PlantState

__all__ = ["AllocationMPC", "MPCResult", "ObjectiveTerms", "Plan"]

ABS_SLACK = 1e-6   # absolute slack on a kept stage objective (solver tolerance)
TERMINAL_TIE_BREAK = 1.01
UNSERVED_SLACK_REQ = 1e-7  # requests a later stage may leave unserved beyond stage 1's


@dataclass(frozen=True)
class ObjectiveTerms:
    """Objective terms of a plan over its horizon (EUR, kg CO2, litres, request·seconds)."""

    energy_cost_eur: float
    penalties_eur: float
    terminal_eur: float
    risk_eur: float
    carbon_kg: float
    water_l: float
    delay_req_s: float

    @property
    def cost_eur(self) -> float:
        """The stage-1 objective: energy cost + penalties + terminal value of the backlog + the
        expected drop cost of headroom the plan leaves short (``AllocationMPC`` *risk*)."""
        return self.energy_cost_eur + self.penalties_eur + self.terminal_eur + self.risk_eur


@dataclass(frozen=True, eq=False)
class Plan:
    """A plan over the horizon; per-step arrays have the step first. Backlog and SoC at step end."""

    served_req_per_s: np.ndarray   # (H, m) on allowed pairs
    share: np.ndarray              # (H, R, P, K)
    gpus: np.ndarray               # (H, P)
    grid_kw: np.ndarray            # (H, S)
    curtailed_kw: np.ndarray       # (H, S)
    charge_kw: np.ndarray          # (H, S)
    discharge_kw: np.ndarray       # (H, S)
    soc_kwh: np.ndarray            # (H, S)
    dropped_req_per_s: np.ndarray  # (H, R·K)
    backlog_req: np.ndarray        # (H, number of deferrable streams)

    @property
    def horizon(self) -> int:
        return self.gpus.shape[0]

    def allocation(self, step: int = 0, source: str = "mpc") -> Allocation:
        """The decision of one step of the plan."""
        return Allocation(self.share[step], self.gpus[step], self.charge_kw[step],
                          self.discharge_kw[step], source)


@dataclass(frozen=True, eq=False)
class MPCResult:
    """What one solve returns.

    Attributes:
        plan: the plan (None when no stage succeeded).
        terms: objective terms of the plan.
        status: ``optimal``, ``partial: …`` (a later stage failed; the earlier stage's plan is
            kept) or ``failed: …`` / ``error: …``.
        success: whether ``plan`` is usable.
        stage_status: HiGHS return status per stage.
        stage_values: the optimum of each solved stage (in stage order; ``cost`` in EUR).
        iterations: simplex + IPM iterations over all stages.
        solve_time_s: wall time of all stages (setting parameters, solving, reading), s.
        solver_time_s: time spent inside the solver over all stages, s.
    """

    plan: Plan | None
    terms: ObjectiveTerms | None
    status: str
    success: bool
    stage_status: tuple[str, ...]
    iterations: int
    solve_time_s: float
    stage_values: tuple[float, ...] = ()
    solver_time_s: float = 0.0


class AllocationMPC:
    """The horizon LP and its HiGHS solver, built once.

    Args:
        plant: the plant's coefficients.
        policy: how it plans: the config's ``control:`` section (``ControlSettings``; its defaults
            are ``configs/default.yaml``'s). The MPC reads, under their names there: ``horizon_steps``
            (H); the objective (``objective``; ``order``, the lexicographic stages, distinct and
            among cost, carbon, delay; ``epsilon``, the relative slack kept on earlier stages; the
            weighted-mode prices ``carbon_price_eur_per_kg``, ``water_price_eur_per_l``,
            ``delay_price_eur_per_s``); ``solver_time_limit_s``, the time limit per stage (a stage
            that hits it ends the solve with status ``…: Time limit reached``); and the planning
            rules below.
        solver: ``highs`` (highspy, warm-started; default) or ``qpsol`` (CasADi's conic
            interface to HiGHS, cold starts); see ``control._backends``.
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
    """

    def __init__(self, plant: PlantParams, policy: ControlSettings, *, solver: str = "highs",
                 horizon_steps: int | None = None, fixed_pue: np.ndarray | None = None,
                 backlog_value_eur_per_req: float | None = None, hold_steps: int = 1) -> None:
        H = policy.horizon_steps if horizon_steps is None else horizon_steps
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
        share_cap = policy.max_share_vs_capacity
        if share_cap < 0 or (0 < share_cap < 1):
            raise ValueError(f"max_share_vs_capacity: {share_cap}; valid: 0 (off) or ≥ 1")
        if not 0.0 <= policy.group_provision_correlation <= 1.0:
            raise ValueError(f"group_provision_correlation: {policy.group_provision_correlation}; valid: 0 … 1")
        for name, level in (("load_quantile", policy.load_quantile), ("burst_quantile", policy.burst_quantile)):
            if not 0.0 < level < 1.0:
                raise ValueError(f"{name}: {level}; valid: 0 < level < 1")
        self.plant, self.policy, self.horizon, self.objective = plant, policy, H, policy.objective
        self.order, self.epsilon = tuple(policy.order), policy.epsilon
        self.prices = (policy.carbon_price_eur_per_kg, policy.water_price_eur_per_l, policy.delay_price_eur_per_s)
        self.backlog_value = backlog_value_eur_per_req
        self.fixed_pue = None if fixed_pue is None else np.broadcast_to(fixed_pue, (plant.n_sites,))
        self.lp = LinearProgram(plant, H, policy.exact_routing_steps or None, policy.group_interactive_shares,
                                policy.tail_block_steps, hold_steps)
        self.horizon_map = HorizonMap(self.lp, plant)
        self.expiry_guard = bool(policy.expiry_guard)
        self.max_share_vs_capacity = float(share_cap)
        self.slo_aware_gpus = bool(policy.slo_aware_gpus)
        self.group_provision_correlation = float(policy.group_provision_correlation)
        self.group_bursts = bool(policy.group_bursts)
        lp = self.lp
        self.solver_name = solver
        self.min_gpus_interactive = float(policy.min_gpus_interactive)
        self.load_quantile, self.burst_quantile = float(policy.load_quantile), float(policy.burst_quantile)
        # EUR per GPU-s/s short for one step if the load exceeded the level for sure (× (1 − level))
        work = np.where(plant.allowed.any(axis=0), plant.gpu_s_per_req, np.inf).min(axis=1)   # (P,)
        work = np.where(np.isfinite(work), work, plant.gpu_s_per_req.min(axis=1))
        self._shortfall_eur = plant.penalties.drop_eur_per_request * plant.step_s / work
        pair_work = plant.gpu_s_per_req[plant.pairs[:, 1], plant.pairs[:, 2]]
        self._pair_shortfall_eur = plant.penalties.drop_eur_per_request * plant.step_s / pair_work
        self.backend = make_backend(solver, lp, policy.solver_time_limit_s)
        self._terms = ca.Function("terms", [lp.x.sym, lp.p.sym], [ca.vertcat(*lp.terms.values())])
        self._lbx, self._ubx = self._static_bounds()

    # ------------------------------------------------------------------ bounds and parameters
    def _static_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lp, plant = self.lp, self.plant
        lbx, ubx = np.zeros(lp.x.size), np.full(lp.x.size, np.inf)
        lp.x.pack(ubx, "n", plant.gpus_max)
        if self.max_share_vs_capacity > 0 and lp.group_keys:   # a pool's split ≤ cap × its capacity-proportional one
            keys = np.array(lp.group_keys)                                       # (group, pool, class)
            first = np.array([np.flatnonzero(plant.region_groups == g)[0] for g in keys[:, 0]])
            fair = capacity_shares(plant, plant.gpus_max)[first, keys[:, 1], keys[:, 2]]
            lp.x.pack(ubx, "share0", np.minimum(self.max_share_vs_capacity * fair, 1.0))
            # (region group, class) of each share: the cap binds only where that total's forecast has spread
            self._share_group_stream = keys[:, 0] * len(plant.class_names) + keys[:, 2]
        if self.min_gpus_interactive > 0:
            interactive = plant.allowed[:, :, ~plant.deferrable].any(axis=(0, 2))   # (P,)
            floor = np.where(interactive, np.minimum(self.min_gpus_interactive, plant.gpus_max), 0.0)
            # with SLO-aware GPUs the applied step's count is the plant's own rule; the floor stands in
            # for it in the planned steps (and keeps the LP as quick to solve as with a floor everywhere)
            first_step = 1 if self.slo_aware_gpus else 0
            lp.x.pack(lbx, "n", np.where(np.arange(lp.d.H)[:, None] >= first_step, floor[None, :], 0.0))
        if plant.ramp_limited:  # st ≥ n_t − n_(t−1): its bound is the ramp-up limit (per LP step)
            assert plant.gpu_ramp_per_step is not None   # filled in by PlantParams.__post_init__
            lp.x.pack(ubx, "st", lp.step_hours[:, None] * plant.gpu_ramp_per_step[None, :])
        lp.x.pack(ubx, "g", plant.grid_limit_kw)
        for key in ("bc", "bd"):
            lp.x.pack(ubx, key, plant.battery_kw[plant.battery_sites])
        lp.x.pack(ubx, "soc", plant.battery_kwh[plant.battery_sites])
        lp.x.pack(ubx, "sh", 1.0)
        return lbx, ubx

    def terminal_value(self, fc: ControlForecast, pue_value: np.ndarray) -> np.ndarray:
        """EUR per request left in the backlog at the horizon end (an estimate of serving it later).

        The mean over the horizon of the cheapest allowed pool's marginal energy cost (dynamic +
        provisioned idle power at rho_max, at the step's price and PUE), × 1.01 so that ties serve
        now.
        """
        plant, d = self.plant, self.lp.d
        per_req_kwh = (plant.it_kw_per_req_per_s
                       + plant.idle_kw_per_gpu[:, None] * plant.gpu_s_per_req / plant.rho_max) / 3600.0
        eur_per_kwh = fc.price_eur_per_mwh * pue_value / 1000.0                      # (H, S)
        pool_cost = eur_per_kwh[:, plant.pool_site][:, :, None] * per_req_kwh[None]  # (H, P, K)
        cost = np.where(plant.allowed[None], pool_cost[:, None], np.inf).min(axis=2)  # (H, R, K)
        cost = np.where(np.isfinite(cost), cost, plant.penalties.drop_eur_per_request)
        flat = cost.reshape(cost.shape[0], -1)[:, d.deferred]
        return np.maximum(flat.mean(axis=0), 0.0) * TERMINAL_TIE_BREAK

    def _parameters(self, state: PlantState, fc: ControlForecast, end_step: int | None,
                    daymask: np.ndarray) -> np.ndarray:
        lp, plant, d = self.lp, self.plant, self.lp.d
        p = np.zeros(lp.p.size)
        pue_value = np.broadcast_to(self.fixed_pue, fc.temp_c.shape) if self.fixed_pue is not None \
            else pl.pue(plant, fc.temp_c)
        lp.p.pack(p, "pue", pue_value)
        lp.p.pack(p, "wue", pl.wue_l_per_kwh(fc.wetbulb_c))
        for key, arr in (("ewif", fc.ewif_l_per_kwh), ("price", fc.price_eur_per_mwh),
                         ("ci", fc.carbon_g_per_kwh)):
            lp.p.pack(p, key, arr)
        med = fc.load_req_per_s.reshape(d.H, -1)
        # the 10-min peak factor is common to the fleet (fully correlated): it is divided out of the
        # levels before the forecast's spread is combined, and multiplies the combined ratio after
        peak = fc.peak_factor().reshape(d.H, -1)
        assert fc.load_burst_req_per_s is not None   # set by ControlForecast.validate, which solve runs
        prov_streams = np.maximum(fc.load_provision_req_per_s.reshape(d.H, -1) / peak, med)
        burst_streams = fc.load_burst_req_per_s.reshape(d.H, -1)[0] / peak[0]
        safe = np.where(med > 1e-12, med, 1.0)
        ratio = np.where(med > 1e-12, prov_streams / safe, 1.0)
        if lp.group_shares and self.group_provision_correlation < 1.0:
            ratio = group_ratio(plant, med, prov_streams, ratio, self.group_provision_correlation)
        ratio = ratio * peak
        prov = ratio * med
        lp.p.pack(p, "ratio", ratio[:d.E])
        med_a, prov_a = self.horizon_map.pooled(med[d.E:]), self.horizon_map.pooled(prov[d.E:])
        ratio_a = np.where(med_a > 1e-12, prov_a / np.where(med_a > 1e-12, med_a, 1.0), 1.0)
        lp.p.pack(p, "ratio_a", ratio_a)
        base0 = ratio[0] / peak[0]
        burst_ratio = np.maximum(np.where(med[0] > 1e-12, burst_streams / safe[0], 1.0), base0)
        if lp.group_shares and self.group_bursts:
            burst_ratio = group_burst_ratio(plant, med[0], prov_streams[0], burst_streams, base0,
                                            self.group_provision_correlation)
        burst_ratio = burst_ratio * peak[0]
        # deferrable overflow returns to the backlog (never dropped): no burst row for batch work
        burst_ratio[d.deferred] = ratio[0, d.deferred]
        lp.p.pack(p, "burst", burst_ratio)
        if lp.group_shares:
            lp.p.pack(p, "pair_load0", med[0][plant.pair_stream])
        hours = self.horizon_map.hours[:, None]
        lp.p.pack(p, "reserve_eur", hours * self._shortfall_eur * (1.0 - self.load_quantile))
        lp.p.pack(p, "burst_eur", self._pair_shortfall_eur * (1.0 - self.burst_quantile))
        # a request left unserved is dropped in the high-load cases too: its share of the excess
        # counts as exposed, so that dropping load never buys headroom
        exposed = (1.0 - self.load_quantile) * (ratio - 1.0)
        exposed[0] += (1.0 - self.burst_quantile) * (lp.p.unpack(p, "burst")[0] - ratio[0])
        per_req = plant.penalties.drop_eur_per_request * plant.step_s
        lp.p.pack(p, "unserved_risk_eur", per_req * exposed[:d.E])
        lp.p.pack(p, "unserved_risk_a", per_req * hours[d.E:] * (1.0 - self.load_quantile) * (ratio_a - 1.0))
        lp.p.pack(p, "daymask", daymask)
        if lp.hold_steps > 1:
            lp.p.pack(p, "pair_load", med[:, plant.pair_stream])
        term = np.zeros((d.H, len(d.deferred)))
        term[-1] = self.terminal_value(fc, pue_value) if self.backlog_value is None else self.backlog_value
        if end_step is not None:
            term[end_step] = plant.penalties.drop_eur_per_request
            ends = np.zeros(d.H)
            ends[end_step] = 1.0
            lp.p.pack(p, "episode_end", ends)
        lp.p.pack(p, "term", term[:d.E])
        lp.p.pack(p, "term_a", self.horizon_map.pooled_deferred(term[d.E:], mean=True))
        return p

    def _fifo_bound_req(self, state: PlantState, fc: ControlForecast) -> np.ndarray:
        """Most backlog allowed at each step end: arrivals of the last ``deadline`` steps."""
        plant, d = self.plant, self.lp.d
        K = len(plant.class_names)
        hist = state.arrivals_history_req.reshape(state.arrivals_history_req.shape[0], -1)[::-1]
        arr = np.concatenate([hist, fc.load_req_per_s.reshape(fc.horizon, -1) * plant.step_s])
        L = hist.shape[0]
        total = np.vstack([np.zeros((1, len(d.deferred))), np.cumsum(arr[:, d.deferred], axis=0)])
        end = L + np.arange(fc.horizon) + 1                                  # rows up to each plant step
        start = np.maximum(end[:, None] - plant.deadline_steps[d.deferred % K][None, :], 0)
        return total[end] - np.take_along_axis(total, start, axis=0)

    def _guarded_backlog_req(self, state: PlantState, fc: ControlForecast) -> np.ndarray:
        """Most backlog the applied step may plan to keep per deferred stream so that its *share*
        (a fraction of backlog + realised arrivals) still serves the requests that expire this
        step if no new request arrives: ``(B + A)·(1 − e/B)`` with ``e = B −`` the arrivals that
        may still wait (``expiry_guard``)."""
        plant, d = self.plant, self.lp.d
        backlog = state.backlog_req.reshape(-1)[d.deferred]
        recent = recent_arrivals_req(plant, state.arrivals_history_req).reshape(-1)[d.deferred]
        work = backlog + fc.load_req_per_s.reshape(fc.horizon, -1)[0, d.deferred] * plant.step_s
        expiring = np.maximum(backlog - recent, 0.0)
        keep = np.where(backlog > 0, 1.0 - expiring / np.where(backlog > 0, backlog, 1.0), 1.0)
        return work * keep

    def _row_bounds(self, state: PlantState, fc: ControlForecast, block_shares: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
        lp, plant, d = self.lp, self.plant, self.lp.d
        lbg, ubg = np.zeros(lp.g.numel()), np.zeros(lp.g.numel())
        load = fc.load_req_per_s.reshape(d.H, -1)

        def put(key: str, lo: ArrayLike, hi: ArrayLike) -> None:
            sl = lp.row_slice(key)
            shape = lp.rows[key]
            lbg[sl] = np.broadcast_to(lo, shape).ravel()
            ubg[sl] = np.broadcast_to(hi, shape).ravel()

        if "demand" in lp.rows:
            put("demand", load[:d.E, d.interactive], load[:d.E, d.interactive])
        if "backlog" in lp.rows:
            rhs = load[:d.E, d.deferred] * plant.step_s
            rhs[0] += state.backlog_req.reshape(-1)[d.deferred]
            put("backlog", rhs, rhs)
        load_a = self.horizon_map.pooled(load[d.E:])
        if "demand_a" in lp.rows:
            put("demand_a", load_a[:, d.interactive_a], load_a[:, d.interactive_a])
        if "backlog_a" in lp.rows:
            rhs = load_a[:, d.deferred_a] * plant.step_s * self.horizon_map.hours[d.E:, None]   # a block's arrivals
            put("backlog_a", rhs, rhs)
        for key in ("capacity", "reserve", "burst"):
            put(key, -np.inf, 0.0)
        ren = -fc.renewable_kw(plant)
        if lp.hold_steps > 1:   # balanced per block: the block's renewable energy
            ren = np.add.reduceat(ren, np.flatnonzero(lp.block_start), axis=0)
        put("balance", ren, ren)
        if "hold" in lp.rows:
            put("hold", 0.0, 0.0)
        if "continue" in lp.rows:
            put("continue", state.gpus_active, state.gpus_active)
        if "block_shares" in lp.rows:   # routing by one share per block, or free rows
            put("block_shares", 0.0 if block_shares else -np.inf, 0.0 if block_shares else np.inf)
        if "battery" in lp.rows:
            soc = np.zeros((d.H, d.B))
            soc[0] = state.soc_kwh[plant.battery_sites]
            put("battery", soc, soc)
        start = np.zeros((d.H, d.P))
        start[0] = -state.gpus_active
        put("starts", start, np.inf)
        if "ramp" in lp.rows:
            assert plant.gpu_ramp_per_step is not None   # filled in by PlantParams.__post_init__
            stop = lp.step_hours[:, None] * plant.gpu_ramp_per_step[None, :]
            stop[0] -= state.gpus_active
            put("ramp", -np.inf, stop)
        used = state.water_used_today_l if int(fc.day_index[0]) == state.water_day else 0.0
        water_lo = -np.repeat(plant.water_budget_l_per_day[None, :], d.n_days, axis=0)
        water_lo[0] += used
        put("water", water_lo.ravel(), np.inf)   # row order: site fastest, then day
        if "group_shares" in lp.rows:   # only where the group's forecast has spread (bursts to spread)
            keys = np.array(lp.group_keys)[lp.group_col]                       # (group, pool, class) per row
            free = self._certain_groups(fc)[keys[:, 0] * len(plant.class_names) + keys[:, 2]]
            put("group_shares", np.where(free, -np.inf, 0.0), np.where(free, np.inf, 0.0))
        put("objectives", -np.inf, np.inf)
        return lbg, ubg

    # ------------------------------------------------------------------ solving
    def _stage_weights(self, stage: str) -> np.ndarray:
        """Weights on the kept rows (``control._lp.KEPT_ROWS``: the objectives, then unserved)."""
        if stage == "weighted":
            carbon, water, delay = self.prices
            return np.array([1.0, carbon, delay, water, 0.0])
        return np.array([1.0 if o == stage else 0.0 for o in KEPT_ROWS])

    def _stages(self) -> tuple[str, ...]:
        """The stages solved in order. When cost (which prices drops) is not first, a first
        stage minimises the requests left unserved and keeps them there: carbon or delay are
        never bought with dropped requests."""
        if self.objective != "lexicographic":
            return ("weighted",)
        return self.order if self.order[0] == "cost" else ("unserved", *self.order)

    def step_data(self, state: PlantState, fc: ControlForecast, end_step: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The step's LP data: parameters ``p``, variable bounds ``lbx, ubx`` and row bounds
        ``lbg, ubg`` (``fc`` already checked and cut to the horizon; per plant step)."""
        return self._step_data(state, fc, self.horizon_map.lp_steps(fc), end_step)

    def _step_data(self, state: PlantState, fc: ControlForecast, steps: ControlForecast, end_step: int | None,
                   block_shares: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        end = None if end_step is None else int(self.horizon_map.step_of_hour[end_step])
        p = self._parameters(state, steps, end, self.horizon_map.daymask(fc))
        lbg, ubg = self._row_bounds(state, steps, block_shares is not None)
        ubx = self._ubx.copy()
        if len(self.lp.d.deferred):
            fifo = self._fifo_bound_req(state, fc)[self.horizon_map.step_end]  # at each LP step's end
            if self.expiry_guard:
                fifo[0] = np.minimum(fifo[0], self._guarded_backlog_req(state, fc))
            fifo[~self.lp.block_end] = np.inf   # with holds: the rule applies at block (hour) ends
            self.lp.x.pack(ubx, "q", fifo[:self.lp.d.E])
            self.lp.x.pack(ubx, "qa", self.horizon_map.pooled_deferred(fifo[self.lp.d.E:]))
        if self.max_share_vs_capacity > 0 and self.lp.group_keys:
            self._uncap_certain_groups(ubx, fc)
        lbx = self._lbx
        if block_shares is not None:
            lbx = lbx.copy()
            self._share_routing(p, lbx, ubx, steps, block_shares)
        return p, lbx, ubx, lbg, ubg

    def _share_routing(self, p: np.ndarray, lbx: np.ndarray, ubx: np.ndarray, fc: ControlForecast,
                       backlog_req: np.ndarray) -> None:
        """Routing by one share per hold block (rows ``block_shares``): a pair serves its block's
        share of the work the plant offers its stream in each step — the arrivals and, for a
        deferrable stream, ``1 / hold_steps`` of the backlog it starts the block with — and the
        backlog at every later block start is fixed to ``backlog_req`` ``(blocks, deferrable
        streams)``, so that the shares apply to the work they were planned for."""
        lp, plant, d = self.lp, self.plant, self.lp.d
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

    def _certain_groups(self, fc: ControlForecast) -> np.ndarray:
        """``(G·K,)`` bool: (region group, class) totals whose applied-step forecast has no spread
        (burst and provisioning levels at the median once the 10-min peak factor, which is no
        forecast error, is divided out): perfect forecasts."""
        peak = fc.peak_factor()[0]
        assert fc.load_burst_req_per_s is not None   # set by ControlForecast.validate, which solve runs
        high = np.maximum(fc.load_burst_req_per_s[0], fc.load_provision_req_per_s[0]) / peak
        return certain_totals(self.plant, fc.load_req_per_s[0], high)

    def _uncap_certain_groups(self, ubx: np.ndarray, fc: ControlForecast) -> None:
        """Lift the share cap of the (region group, class) totals whose applied-step forecast has
        no spread: the cap guards against bursts, and there are none to guard against (perfect
        forecasts keep the LP's freedom)."""
        certain = self._certain_groups(fc)[self._share_group_stream]
        sl = self.lp.x.slice("share0")
        ubx[sl] = np.where(certain, 1.0, ubx[sl])

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
                plant offers (``_share_routing``); None: per step.

        Raises:
            ValueError: the state or forecast is malformed (names the array, site/stream, step).
        """
        lp, plant = self.lp, self.plant
        state.validate(plant)
        fc = forecast.validate(plant, self.horizon).window(0, self.horizon)
        if end_step is not None and not 0 <= end_step < self.horizon:
            raise ValueError(f"end_step: {end_step} outside the horizon 0..{self.horizon - 1}")
        steps = self.horizon_map.lp_steps(fc)
        p, lbx, ubx, lbg, ubg = self._step_data(state, fc, steps, end_step, block_shares)
        stages = self._stages()
        obj_rows = lp.row_slice("objectives")
        best, statuses, values, iters, status = None, [], [], 0, "optimal"
        start = time.perf_counter()
        backend = self.backend
        backend.load(p, lbx, ubx, lbg, ubg)
        for i, stage in enumerate(stages):
            weights = self._stage_weights(stage)
            lp.p.pack(p, "weights", weights)
            x, st, it = backend.solve(weights, i)
            statuses.append(st)
            iters += it
            if x is None:
                status = f"{'partial' if best is not None else 'failed'}: stage {stage}: {st}"
                break
            if i == 0:
                backend.keep_basis()
            best = np.clip(x, lbx, ubx)  # round-off within the solver's tolerance (e.g. −1e-16)
            kept = backend.objective_values(x)        # cost, carbon, delay, water, unserved
            if stage in OBJECTIVES or stage == "weighted":
                values.append(float(kept[OBJECTIVES.index("cost" if stage == "weighted" else stage)]))
            if stage in OBJECTIVES:
                row = obj_rows.start + OBJECTIVES.index(stage)
                backend.set_row_upper(row, self._kept(values[-1], self.epsilon))
            if stage in ("cost", "unserved"):  # later stages may not buy carbon or delay with drops
                unserved = float(kept[-1])
                backend.set_row_upper(obj_rows.stop - 1, unserved * (1 + 1e-9) + UNSERVED_SLACK_REQ)
        elapsed = time.perf_counter() - start
        if best is None:
            return MPCResult(None, None, status, False, tuple(statuses), iters, elapsed,
                             solver_time_s=backend.solver_time_s)
        plan = self._plan(best, state, steps)
        if self.slo_aware_gpus:
            plan = self._with_slo_gpus(plan, state, fc)
        return MPCResult(plan, self._objective_terms(best, p), status, True,
                         tuple(statuses), iters, elapsed, tuple(values), backend.solver_time_s)

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
        lp, plant = self.lp, self.plant
        state.validate(plant)
        fc = forecast.validate(plant, self.horizon).window(0, self.horizon)
        steps = self.horizon_map.lp_steps(fc)
        p, lbx, ubx, lbg, ubg = self._step_data(state, fc, steps, end_step, block_shares)
        weights = self._stage_weights("cost")
        lp.p.pack(p, "weights", weights)
        start = time.perf_counter()
        self.backend.load(p, lbx, ubx, lbg, ubg)
        cols = np.arange(lp.x.slice("n").start, lp.x.slice("n").stop)
        x, status, gap = self.backend.solve_mip(weights, cols, mip_rel_gap,
                                                None if start_gpus is None else np.ravel(start_gpus),
                                                time_limit_s)
        elapsed = time.perf_counter() - start
        if x is None:
            return MPCResult(None, None, f"failed: whole GPUs: {status}", False, (status,), 0, elapsed,
                             solver_time_s=self.backend.solver_time_s), gap
        x = np.clip(x, lbx, ubx)
        value = float(self.backend.objective_values(x)[0])
        return MPCResult(self._plan(x, state, steps), self._objective_terms(x, p), status, True, (status,), 0,
                         elapsed, (value,), self.backend.solver_time_s), gap

    def _with_slo_gpus(self, plan: Plan, state: PlantState, fc: ControlForecast) -> Plan:
        """The plan with the applied step's GPUs from ``slo_aware_decision_gpus`` (the load its shares route
        at the provisioning level, priced at step 0's PUE and price)."""
        plant = self.plant
        pue0 = self.fixed_pue if self.fixed_pue is not None else pl.pue(plant, fc.temp_c[0])
        gpus = plan.gpus.copy()
        gpus[0] = slo_aware_decision_gpus(plant, plan.share[0], fc.load_provision_req_per_s[0], state.backlog_req,
                                          gpus[0], pue0, fc.price_eur_per_mwh[0])
        return replace(plan, gpus=gpus)

    def warm_start(self) -> object:
        """The solver's warm start for the next solve, as plain data (for checkpoints)."""
        return self.backend.export_warm()

    def set_warm_start(self, warm: object) -> None:
        """Restore ``warm_start()``'s result."""
        self.backend.import_warm(warm)

    @staticmethod
    def _kept(value: float, epsilon: float) -> float:
        """Upper bound that keeps a stage within ``(1 + ε)`` of its optimum (plus the solver's tolerance)."""
        return value + epsilon * abs(value) + ABS_SLACK * max(1.0, abs(value))

    def _objective_terms(self, x: np.ndarray, p: np.ndarray) -> ObjectiveTerms:
        values = np.array(self._terms(x, p), dtype=float).ravel()
        return ObjectiveTerms(*(float(v) for v in values))

    def _plan(self, x: np.ndarray, state: PlantState, fc: ControlForecast) -> Plan:
        lp, plant, d = self.lp, self.plant, self.lp.d
        get = {key: lp.x.unpack(x, key) for key in lp.x.spec}
        for key in ("bc", "bd", "soc"):   # battery flows at every site (0 where none)
            full = np.zeros((d.H, d.S))
            full[:, plant.battery_sites] = get[key]
            get[key] = full
        load = fc.load_req_per_s.reshape(d.H, -1)
        served, dropped, backlog = self.horizon_map.to_streams(get, load)
        backlog_start = np.zeros((d.H, d.RK))
        backlog_start[0] = state.backlog_req.reshape(-1)
        backlog_start[1:, d.deferred] = backlog[:-1]
        work = load * plant.step_s + backlog_start / self.horizon_map.hours[:, None]   # per plant step
        work = work.reshape(fc.load_req_per_s.shape)
        share = plan_shares(plant, served, work, get["n"])
        each = self.horizon_map.each_step
        return Plan(each(served), each(share), each(get["n"]), each(get["g"]), each(get["c"]), each(get["bc"]),
                    each(get["bd"]), each(get["soc"]), each(dropped), each(backlog))
