"""What one solve of ``control.mpc.AllocationMPC`` returns: the plan, its objective terms and the
solve's status; and the plan read back from the LP's solution (per plant step, shares of the work).

``control.mpc`` re-exports ``Plan``, ``MPCResult`` and ``ObjectiveTerms``; import them from there.
"""

from __future__ import annotations

from dataclasses import dataclass

import casadi as ca
import numpy as np

from control._horizon import HorizonMap
from control._lp import LinearProgram
from control.inputs import ControlForecast
from control.plant import PlantParams
from control.shares import plan_shares
from control.state import Allocation, PlantState

__all__ = ["MPCResult", "ObjectiveTerms", "Plan", "objective_terms", "read_plan"]


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


def objective_terms(terms: ca.Function, x: np.ndarray, p: np.ndarray) -> ObjectiveTerms:
    """The objective terms of the solution ``x`` (``terms``: the LP's terms as a function of x and p)."""
    values = np.array(terms(x, p), dtype=float).ravel()
    return ObjectiveTerms(*(float(v) for v in values))


def read_plan(lp: LinearProgram, plant: PlantParams, horizon_map: HorizonMap, x: np.ndarray,
              state: PlantState, fc: ControlForecast) -> Plan:
    """The plan of the LP's solution ``x`` per plant step (``fc``: the forecast per LP step): the
    battery at every site (0 where none), flows per stream, and each pair's share of the work its
    stream offers (arrivals and, for deferrable streams, the backlog at the step's start)."""
    d = lp.d
    get = {key: lp.x.unpack(x, key) for key in lp.x.spec}
    for key in ("bc", "bd", "soc"):   # battery flows at every site (0 where none)
        full = np.zeros((d.H, d.S))
        full[:, plant.battery_sites] = get[key]
        get[key] = full
    load = fc.load_req_per_s.reshape(d.H, -1)
    served, dropped, backlog = horizon_map.to_streams(get, load)
    backlog_start = np.zeros((d.H, d.RK))
    backlog_start[0] = state.backlog_req.reshape(-1)
    backlog_start[1:, d.deferred] = backlog[:-1]
    work = load * plant.step_s + backlog_start / horizon_map.hours[:, None]   # per plant step
    work = work.reshape(fc.load_req_per_s.shape)
    share = plan_shares(plant, served, work, get["n"])
    each = horizon_map.each_step
    return Plan(each(served), each(share), each(get["n"]), each(get["g"]), each(get["c"]), each(get["bc"]),
                each(get["bd"]), each(get["soc"]), each(dropped), each(backlog))
