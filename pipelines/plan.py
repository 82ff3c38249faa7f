"""``greenllm plan``: the allocation the MPC would apply in one hour, and its plan over the horizon."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from control.mpc import AllocationMPC, Plan
from control.plant import PlantParams
from control.site_policy import policy_lines
from control.state import PlantState
from pipelines import _tracking as tracking
from pipelines._loop_forecasts import forecaster_for
from pipelines.config import Config
from pipelines.live_state import read_state
from pipelines.loop import EXPERIMENT, MODEL_URI, burst_group_correlation, forecaster_choice, load_suite, prepare

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


def plan_tables(plan: Plan, plant: PlantParams, t0: pd.Timestamp) -> tuple[dict[str, Any], pd.DataFrame]:
    """The plan as a JSON document (this hour's shares; GPUs, grid import and battery power per
    hour) and as one long CSV table (``hour_utc, what, name, value, unit``)."""
    hours = [(t0 + pd.Timedelta(hours=h)).strftime("%Y-%m-%dT%H:%MZ") for h in range(plan.horizon)]
    now = plan.share[0]
    pools = plant.pool_names
    share = {f"{region}/{klass}": {pool: float(now[r, p, k]) for p, pool in enumerate(pools) if now[r, p, k] > 0}
             for r, region in enumerate(plant.region_names) for k, klass in enumerate(plant.class_names)}
    series = {"gpus": (plan.gpus, pools, "GPUs"), "grid_kw": (plan.grid_kw, plant.site_names, "kW"),
              "battery_charge_kw": (plan.charge_kw, plant.site_names, "kW"),
              "battery_discharge_kw": (plan.discharge_kw, plant.site_names, "kW")}
    doc = {"at": hours[0], "hours": hours, "share_this_hour": share,
           **{what: {n: [float(v) for v in arr[:, i]] for i, n in enumerate(names)}
              for what, (arr, names, _) in series.items()}}
    rows = [{"hour_utc": hours[h], "what": what, "name": n, "value": float(arr[h, i]), "unit": unit}
            for what, (arr, names, unit) in series.items() for h in range(plan.horizon) for i, n in enumerate(names)]
    rows += [{"hour_utc": hours[0], "what": "share", "name": f"{stream} → {pool}", "value": v, "unit": "fraction"}
             for stream, pools in share.items() for pool, v in pools.items()]
    return doc, pd.DataFrame(rows)


def _track_plan(s: Any, plan: Plan, terms: Any, state_file: Path | None, out_dir: Path | None,
                forecaster: str) -> None:
    """The plan as an MLflow run (params, the plan's terms, plan.json and plan.csv), and in ``out_dir``."""
    doc, table = plan_tables(plan, s.plant, s.t0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = out_dir if out_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plan.json").write_text(json.dumps(doc, indent=1) + "\n")
        table.to_csv(folder / "plan.csv", index=False)
        with tracking.start_run(EXPERIMENT, f"plan-{s.t0:%Y%m%dT%H%M}") as run:
            tracking.log_params({"at": doc["at"], "forecaster": forecaster, "state_file": str(state_file or ""),
                                 "horizon": str(plan.horizon)})
            tracking.log_metrics({f"plan.{k}": float(v) for k, v in vars(terms).items()})
            tracking.log_artifact(folder / "plan.json")
            tracking.log_artifact(folder / "plan.csv")
            if state_file is not None:
                tracking.log_artifact(state_file, "state")
    where = f"; plan.json and plan.csv in {out_dir}/" if out_dir is not None else ""
    print(f"MLflow run {run.info.run_id} ('{EXPERIMENT}'){where}")


def _print_rules(cfg: Config, plant: PlantParams) -> None:
    """The routing policy and the power caps in force."""
    rules = policy_lines(cfg.scenario)
    print("routing policy: " + ("; ".join(rules) if rules else "free (every site within each class's SLO)"))
    capped = [f"{n} ≤ {c:,.0f} kW" for n, c in zip(plant.site_names, plant.power_cap_kw, strict=True) if np.isfinite(c)]
    if capped:
        print("facility power caps: " + ", ".join(capped))


def run_plan(cfg: Config, at: str, forecaster: str = MODEL_URI, state_file: Path | None = None,
             out_dir: Path | None = None) -> dict[str, Any]:
    """``greenllm plan``: the allocation the MPC would apply in the hour starting at ``at``, and its
    plan; from the live state in ``state_file`` (``pipelines.live_state``) or an empty plant; with
    ``out_dir`` the plan as JSON and CSV too; tracked as an MLflow run."""
    kind, uri = forecaster_choice(forecaster, cfg)
    suite = load_suite(uri, cfg.control)[0] if kind == "learned" else None
    s = prepare(cfg, at, 1)
    fc_fn, note = forecaster_for(kind, s.data, s.plant, s.realised, s.t0, s.horizon,
                                 cfg.control.load_quantile, suite, cfg.control.burst_quantile,
                                 burst_group_correlation(cfg.control))
    mpc = AllocationMPC(s.plant, cfg.control)
    state = read_state(state_file, s.plant, s.t0) if state_file is not None else \
        PlantState.initial(s.plant, water_day=int(s.realised.day_index[0]))
    result = mpc.solve(state, fc_fn(0))
    if not result.success or result.plan is None or result.terms is None:
        raise ValueError(f"greenllm plan: the MPC found no plan at {s.t0:%Y-%m-%d %H:%M} UTC: {result.status} "
                         f"(control.solver_time_limit_s = {cfg.control.solver_time_limit_s:g} s per stage; "
                         "valid 1e-06 … 3600)")
    plan, terms = result.plan, result.terms
    print(f"greenllm plan: hour starting {s.t0:%Y-%m-%d %H:%M} UTC, forecasts: {note}; status {result.status}, "
          f"{result.solve_time_s * 1e3:.0f} ms; state: {state_file or 'empty plant (no --state)'}")
    _print_rules(cfg, s.plant)
    _print_plan(plan, s.plant)
    print(f"\nplan over {plan.horizon} h: energy {terms.energy_cost_eur:.2f} EUR, "
          f"penalties {terms.penalties_eur:.2f} EUR, "
          f"CO2 {terms.carbon_kg:.1f} kg, water {terms.water_l:.0f} L, backlog value {terms.terminal_eur:.2f} EUR")
    _track_plan(s, plan, terms, state_file, out_dir, forecaster)
    return {"share": plan.share[0], "gpus": plan.gpus, "status": result.status, "terms": terms, "plan": plan,
            "state": state}
