"""``greenllm compare``'s table and the references it reports (DESIGN.md §5 *References and measures*).

One row per controller (KPIs, ``drop_share``, ``gap_to_hindsight`` to cost_ref, ``gap_to_bound``,
``gap_closed``) and two reference rows, ``hindsight bound (LP)`` (cost_bound) and ``hindsight
reference (realised)`` (cost_ref, with its replay's KPIs); per window the parent run's metrics
``cost_ref``, ``cost_bound``, ``bound_spread`` and ``value_of_forecasts_*``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from control.plant import PlantParams
from control.reference import Reference
from pipelines import _tracking as tracking
from pipelines._controllers import HEURISTICS
from pipelines._loop_report import drop_share, gaps, kpis, value_of_forecasts

__all__ = ["BOUND_ROW", "HEURISTICS", "MEASURES", "REF_ROW", "comparison_table", "log_references",
           "print_references", "print_table", "reference_metrics"]

MEASURES = ("gap_to_hindsight", "gap_to_bound", "gap_closed", "drop_share")

BOUND_ROW = "hindsight bound (LP)"
REF_ROW = "hindsight reference (realised)"


def comparison_table(runs: dict[str, Any], ref: Reference, main: str,
                     plant: PlantParams | None = None) -> pd.DataFrame:
    """One row per controller — KPIs, ``drop_share``, ``gap_to_hindsight`` (to cost_ref),
    ``gap_to_bound`` and ``gap_closed`` (against the best heuristic; NaN = n/a,
    ``pipelines._loop_report.gaps``) — and the two references: the bound and the realised
    reference (its replay's KPIs when ``plant`` is given). ``main``: the main forecaster's name."""
    costs = {k: v.kpis["cost_eur"] for k, v in runs.items()}
    heur = tuple(k for k in runs if k.split(" [")[0] in HEURISTICS)
    g = gaps({**costs, BOUND_ROW: ref.cost_bound_eur, REF_ROW: ref.cost_ref_eur}, ref.cost_ref_eur,
             ref.cost_bound_eur, heur)
    rows = [{"controller": k, **v.kpis, "drop_share": drop_share(v.episode), **g[k]} for k, v in runs.items()]
    rows.append({"controller": BOUND_ROW, "cost_eur": ref.cost_bound_eur, **g[BOUND_ROW]})
    realised = kpis(plant, ref.episode, None) if plant is not None else {}
    realised.update(cost_eur=ref.cost_ref_eur, median_step_ms=float("nan"), p95_step_ms=float("nan"),
                    max_step_ms=float("nan"))
    rows.append({"controller": REF_ROW, **realised, "drop_share": drop_share(ref.episode), **g[REF_ROW]})
    return pd.DataFrame(rows).set_index("controller")


def reference_metrics(ref: Reference, runs: dict[str, Any], s: Any, main: str) -> dict[str, float]:
    """The parent run's metrics of a window: ``cost_ref``, ``cost_bound``, ``bound_spread`` and its
    ``shares_spread`` part, the MILP's gap and ``value_of_forecasts_*`` (the main forecaster's MPC −
    the perfect one's)."""
    out = {"cost_ref": ref.cost_ref_eur, "cost_bound": ref.cost_bound_eur, "bound_spread": ref.bound_spread,
           "shares_spread": ref.shares_spread, "milp_gap": ref.milp_gap,
           "milp_stopped_early": float(ref.milp_stopped_early)}
    learned, perfect = runs.get(f"mpc [{main}]"), runs.get("mpc [perfect]")
    if learned is not None and perfect is not None:
        out |= value_of_forecasts(s.plant, s.realised, learned.episode, perfect.episode)
    return out


def log_references(w: str, metrics: dict[str, float], ref: Reference, single: bool) -> None:
    """A window's reference metrics on the parent run (``w.``-prefixed; unprefixed too for a single window)."""
    finite = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
    tracking.log_metrics({f"{w}.{k}": v for k, v in finite.items()})
    if single:
        tracking.log_metrics(finite)
    tracking.log_params({f"{w}.reference_source": ref.ref_source, f"{w}.milp_status": ref.milp_status,
                         f"{w}.sub_steps": str(ref.sub_steps)})


def print_table(full: pd.DataFrame, windows: bool) -> None:
    """The comparison (NaN prints as n/a: gap_closed where the best heuristic is within 2 % of
    cost_ref, columns a reference row has no value for)."""
    cols = ["cost_eur", "energy_cost_eur", "co2_kg", "water_l", "drops", "drop_share", "slo_misses",
            *MEASURES[:3], "median_step_ms", "fallback_steps"]
    pd.set_option("display.width", 220)
    if windows:
        agg = full.reset_index().groupby("controller", sort=False)[cols].agg(["mean", "std"])
        print(agg.round(4).to_string(na_rep="n/a"))
    else:
        print()
        print(full[cols].round(4).to_string(na_rep="n/a"))


def print_references(values: dict[str, dict[str, float]], main: str) -> None:
    for w, v in values.items():
        line = (f"\n{w}: cost_bound {v['cost_bound']:.2f} EUR, cost_ref {v['cost_ref']:.2f} EUR, "
                f"bound_spread {100 * v['bound_spread']:.2f} % (routing by hourly shares "
                f"{100 * v['shares_spread']:.2f} %, whole GPUs and queueing the rest)")
        if "value_of_forecasts_eur" in v:
            line += (f"; value_of_forecasts (mpc [{main}] − mpc [perfect]) {v['value_of_forecasts_eur']:.2f} EUR = "
                     f"idle energy {v['value_of_forecasts_idle_energy_eur']:.2f} + drops "
                     f"{v['value_of_forecasts_drops_eur']:.2f} + SLO {v['value_of_forecasts_slo_eur']:.2f} + other "
                     f"{v['value_of_forecasts_other_eur']:.2f}")
        print(line)
