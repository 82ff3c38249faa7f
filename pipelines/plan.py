"""``greenllm plan``: the allocation the MPC would apply in one hour, and its plan over the horizon."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from control.mpc import AllocationMPC, Plan
from control.plant import PlantParams
from control.site_policy import policy_lines
from control.state import PlantState
from pipelines._loop_forecasts import forecaster_for
from pipelines.config import Config
from pipelines.loop import MODEL_URI, burst_group_correlation, forecaster_choice, load_suite, prepare

__all__ = ["run_plan"]


def _print_plan(plan: Plan, plant: PlantParams) -> None:
    """This hour's shares per stream, and GPUs per pool and grid import per site over the plan."""
    print("\nshares of each (region, class) stream over pools (%), this hour:")
    share = plan.share[0]
    rows = []
    for r, region in enumerate(plant.region_names):
        for k, klass in enumerate(plant.class_names):
            parts = {plant.pool_names[p]: share[r, p, k] * 100 for p in range(plant.n_pools) if share[r, p, k] > 1e-6}
            rows.append({"stream": f"{region}/{klass}",
                         "pools": ", ".join(f"{p} {v:.0f}" for p, v in sorted(parts.items(), key=lambda x: -x[1]))})
    print(pd.DataFrame(rows).to_string(index=False))
    print("\nGPUs per pool (this hour → plan):")
    gp = pd.DataFrame(np.ceil(plan.gpus - 1e-9).T.astype(int), index=plant.pool_names,
                      columns=[f"+{h}h" for h in range(plan.horizon)])
    print(gp.iloc[:, :min(12, plan.horizon)].to_string())
    print("\ngrid import per site, kW (this hour → plan):")
    gr = pd.DataFrame(plan.grid_kw.T, index=plant.site_names, columns=[f"+{h}h" for h in range(plan.horizon)])
    print((gr.iloc[:, :min(12, plan.horizon)].round(0) + 0.0).to_string())


def _print_rules(cfg: Config, plant: PlantParams) -> None:
    """The routing policy and the power caps in force."""
    rules = policy_lines(cfg.scenario)
    print("routing policy: " + ("; ".join(rules) if rules else "free (every site within each class's SLO)"))
    capped = [f"{n} ≤ {c:,.0f} kW" for n, c in zip(plant.site_names, plant.power_cap_kw, strict=True) if np.isfinite(c)]
    if capped:
        print("facility power caps: " + ", ".join(capped))


def run_plan(cfg: Config, at: str, forecaster: str = MODEL_URI) -> dict[str, Any]:
    """``greenllm plan``: the allocation the MPC would apply in the hour starting at ``at``, and its plan."""
    kind, uri = forecaster_choice(forecaster)
    suite = load_suite(uri, cfg.control)[0] if kind == "learned" else None
    s = prepare(cfg, at, 1)
    fc_fn, note = forecaster_for(kind, s.data, s.plant, s.realised, s.t0, s.horizon,
                                 cfg.control.load_quantile, suite, cfg.control.burst_quantile,
                                 burst_group_correlation(cfg.control))
    mpc = AllocationMPC(s.plant, cfg.control)
    state = PlantState.initial(s.plant, water_day=int(s.realised.day_index[0]))
    result = mpc.solve(state, fc_fn(0))
    if not result.success or result.plan is None or result.terms is None:
        raise ValueError(f"greenllm plan: the MPC found no plan at {s.t0:%Y-%m-%d %H:%M} UTC: {result.status} "
                         f"(control.solver_time_limit_s = {cfg.control.solver_time_limit_s:g} s per stage; "
                         "valid 1e-06 … 3600)")
    plan, terms = result.plan, result.terms
    print(f"greenllm plan: hour starting {s.t0:%Y-%m-%d %H:%M} UTC, forecasts: {note}; status {result.status}, "
          f"{result.solve_time_s * 1e3:.0f} ms")
    _print_rules(cfg, s.plant)
    _print_plan(plan, s.plant)
    print(f"\nplan over {plan.horizon} h: energy {terms.energy_cost_eur:.2f} EUR, "
          f"penalties {terms.penalties_eur:.2f} EUR, "
          f"CO2 {terms.carbon_kg:.1f} kg, water {terms.water_l:.0f} L, backlog value {terms.terminal_eur:.2f} EUR")
    return {"share": plan.share[0], "gpus": plan.gpus, "status": result.status, "terms": terms}
