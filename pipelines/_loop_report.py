"""What a closed-loop run reports: per-step tables and the KPI summary (DESIGN.md §5 measures)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from control import plant as pl
from control.controllers import MPCController
from control.inputs import ControlForecast
from control.plant import PlantParams
from control.simulate import EpisodeResult

__all__ = ["GAP_CLOSED_NA_WITHIN", "KPI_COLUMNS", "dispatch_columns", "drop_share", "fallback_columns",
           "fallback_lines", "flow_frame", "gaps", "idle_energy_eur", "kpis", "site_frame", "value_of_forecasts"]

KPI_COLUMNS = ("cost_eur", "energy_cost_eur", "drop_penalty_eur", "slo_penalty_eur", "water_penalty_eur",
               "start_penalty_eur", "co2_kg", "water_l", "water_onsite_l", "water_offsite_l",
               "energy_it_kwh", "energy_cooling_kwh", "renewable_share", "curtailed_kwh",
               "ttft_mean_s", "ttft_p95_s", "slo_misses", "drops", "deferred_req", "spilled_req",
               "median_step_ms", "p95_step_ms", "max_step_ms", "fallback_steps")


def _times(t0: pd.Timestamp, n: int) -> pd.DatetimeIndex:
    return pd.date_range(t0, periods=n, freq="1h")


def site_frame(plant: PlantParams, ep: EpisodeResult, realised: ControlForecast, t0: pd.Timestamp) -> pd.DataFrame:
    """One row per (hour, site): power flows (kW), water (L), and the realised signals."""
    n, S = len(ep.records), plant.n_sites
    ts = np.repeat(_times(t0, n), S)
    col = lambda name: np.concatenate([getattr(r, name) for r in ep.records])  # noqa: E731
    served = np.stack([r.served_req.sum(axis=(0, 2)) @ plant.site_matrix.T for r in ep.records]).ravel()
    frame = pd.DataFrame({"ts": ts, "site": np.tile(plant.site_names, n),
                          "served_req": served})
    for name in ("it_kw", "facility_kw", "grid_kw", "renewable_kw", "curtailed_kw", "charge_kw",
                 "discharge_kw", "water_onsite_l", "water_offsite_l", "water_over_budget_l"):
        frame[name] = col(name)
    for name in ("price_eur_per_mwh", "carbon_g_per_kwh", "temp_c", "wetbulb_c"):
        frame[name] = np.asarray(getattr(realised, name))[:n].ravel()
    return frame


def daily_water(sites: pd.DataFrame) -> pd.DataFrame:
    """Per (site, UTC day) of a ``site_frame``: litres used (on site + off site), litres over the
    day's budget and the mean temperature."""
    frame = sites.assign(day=pd.to_datetime(sites["ts"]).dt.strftime("%Y-%m-%d"),
                         used_l=sites["water_onsite_l"] + sites["water_offsite_l"])
    return frame.groupby(["site", "day"], sort=False).agg(
        used_l=("used_l", "sum"), over_budget_l=("water_over_budget_l", "sum"), temp_c=("temp_c", "mean"))


def water_over_budget(sites: pd.DataFrame, plant: PlantParams) -> pd.DataFrame | None:
    """Litres used and over budget per (site, UTC day) where a day went over (None: none did)."""
    daily = daily_water(sites)[["used_l", "over_budget_l"]]
    daily = daily[daily["over_budget_l"] > 0]
    if daily.empty:
        return None
    budget = dict(zip(plant.site_names, plant.water_budget_l_per_day, strict=True))
    daily.insert(1, "budget_l", [budget[site] for site, _ in daily.index])
    return daily.round(0)


def flow_frame(plant: PlantParams, ep: EpisodeResult, t0: pd.Timestamp) -> pd.DataFrame:
    """One row per (hour, region, pool, class) that served anything: requests (``spilled_req``: of
    them, what the pool received by the dispatcher's spill), TTFT, SLO misses."""
    rows = []
    times = _times(t0, len(ep.records))
    for t, rec in enumerate(ep.records):
        r, p, k = np.nonzero(rec.served_req > 0)
        rows.append(pd.DataFrame({
            "ts": times[t], "region": np.asarray(plant.region_names)[r], "pool": np.asarray(plant.pool_names)[p],
            "class": np.asarray(plant.class_names)[k], "served_req": rec.served_req[r, p, k],
            "spilled_req": rec.spilled_req[r, p, k], "ttft_s": rec.ttft_s[r, p, k],
            "slo_miss_req": rec.slo_miss_req[r, p, k]}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def dispatch_columns(plant: PlantParams, ep: EpisodeResult) -> dict[str, list[float] | list[str]]:
    """The per-step table's dispatcher columns, one entry per step: ``spilled_req`` (requests served
    by spill), ``spilled_to`` (``pool:requests`` received by spill, largest first, pools that received
    at least one request; empty when none),
    ``deferred_overflow_req`` (deferrable work returned to the backlog for want of room, summed
    over the sub-steps) and ``peak_utilisation`` (the busiest pool's highest sub-step)."""
    names = plant.pool_names
    to: list[str] = []
    for rec in ep.records:
        per_pool = rec.spilled_req.sum(axis=(0, 2))
        to.append(" ".join(f"{names[p]}:{per_pool[p]:.0f}" for p in np.argsort(-per_pool) if per_pool[p] >= 0.5))
    return {"spilled_req": [float(r.spilled_req.sum()) for r in ep.records], "spilled_to": to,
            "deferred_overflow_req": [float(r.deferred_overflow_req.sum()) for r in ep.records],
            "peak_utilisation": [float(np.max(r.peak_utilisation, initial=0.0)) for r in ep.records]}


def fallback_columns(controller: object, steps: int) -> dict[str, list[str]]:
    """The per-step table's ``fallback`` (what decided instead of the MPC's own plan: ``previous-plan+N``,
    ``heuristic:<name>``, ``earlier-stage-plan``; empty when the plan decided, and for controllers
    without fallbacks) and ``fallback_reason`` (the solver's status) columns, one entry per step."""
    used, reason = [""] * steps, [""] * steps
    for event in controller.events if isinstance(controller, MPCController) else ():
        if 0 <= event.step < steps:
            used[event.step], reason[event.step] = event.fallback, event.reason
    return {"fallback": used, "fallback_reason": reason}


def fallback_lines(per_step: pd.DataFrame, most: int = 20) -> list[str]:
    """One line per step with a fallback (step, time, reason, fallback used), the first ``most`` of them."""
    rows = [(i, ts, row) for i, (ts, row) in enumerate(per_step.iterrows()) if row.get("fallback", "")]
    lines = [f"  fallback at step {i} ({ts:%Y-%m-%d %H:%M} UTC): {row['fallback_reason']} -> {row['fallback']}"
             for i, ts, row in rows[:most]]
    if len(rows) > most:
        lines.append(f"  … and {len(rows) - most} more (the run's tables/per_step.parquet lists every one)")
    return lines


def kpis(plant: PlantParams, ep: EpisodeResult, controller: object) -> dict[str, float]:
    """The run's summary: cost and its parts (EUR), CO2 (kg), water (L), energy (kWh), latency (s)…"""
    recs, dt = ep.records, plant.step_h
    total = lambda name: float(sum(np.sum(getattr(r, name)) for r in recs))  # noqa: E731
    fac_kwh, it_kwh = total("facility_kw") * dt, total("it_kw") * dt
    ren_used = float(sum(np.sum(r.renewable_kw - r.curtailed_kw) for r in recs)) * dt
    served = np.concatenate([r.served_req.ravel() for r in recs])
    ttft = np.concatenate([np.nan_to_num(r.ttft_s.ravel(), nan=0.0) for r in recs])
    order = np.argsort(ttft)
    cum = np.cumsum(served[order])
    p95 = float(ttft[order][np.searchsorted(cum, 0.95 * cum[-1])]) if cum.size and cum[-1] > 0 else float("nan")
    step_ms = np.array([t.decide_s for t in ep.timings]) * 1e3 if ep.timings else np.zeros(1)
    fallbacks = sum(1 for used in fallback_columns(controller, len(recs))["fallback"] if used)
    leftover_pen = ep.leftover_backlog_req * ep.drop_eur_per_request
    return {
        "cost_eur": ep.cost_eur,
        "energy_cost_eur": total("energy_cost_eur"),
        "drop_penalty_eur": total("drop_penalty_eur") + leftover_pen,
        "slo_penalty_eur": total("slo_penalty_eur"),
        "water_penalty_eur": total("water_penalty_eur"),
        "start_penalty_eur": total("start_penalty_eur"),
        "co2_kg": total("carbon_kg"),
        "water_l": total("water_onsite_l") + total("water_offsite_l"),
        "water_onsite_l": total("water_onsite_l"),
        "water_offsite_l": total("water_offsite_l"),
        "energy_it_kwh": it_kwh,
        "energy_cooling_kwh": fac_kwh - it_kwh,
        "renewable_share": ren_used / fac_kwh if fac_kwh > 0 else 0.0,
        "curtailed_kwh": total("curtailed_kw") * dt,
        "ttft_mean_s": float(np.sum(served * ttft) / served.sum()) if served.sum() > 0 else float("nan"),
        "ttft_p95_s": p95,
        "slo_misses": total("slo_miss_req"),
        "drops": ep.dropped_req,
        "deferred_req": float(sum(np.maximum(r.backlog_change_req, 0.0).sum() for r in recs)),
        "spilled_req": total("spilled_req"),
        "median_step_ms": float(np.median(step_ms)),
        "p95_step_ms": float(np.percentile(step_ms, 95)),
        "max_step_ms": float(np.max(step_ms)),
        "fallback_steps": float(fallbacks),
    }


GAP_CLOSED_NA_WITHIN = 0.02   # gap_closed is n/a when the best heuristic is within 2 % of cost_ref


def gaps(costs: dict[str, float], cost_ref: float, cost_bound: float,
         heuristics: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """DESIGN.md §5's measures of every run in ``costs`` (EUR):

    ``gap_to_hindsight`` = (cost − cost_ref) ÷ cost_ref (may be negative: cost_ref is realisable,
    not a bound); ``gap_to_bound`` = (cost − cost_bound) ÷ cost_bound; ``gap_closed`` = (best
    heuristic − cost) ÷ (best heuristic − cost_ref), the best of the runs named in ``heuristics``
    — NaN ("n/a") when that heuristic is within ``GAP_CLOSED_NA_WITHIN`` (2 %) of cost_ref or below
    it (there is no gap to close), or when none ran.
    """
    rel = lambda cost, ref: (cost - ref) / ref if ref else float("nan")  # noqa: E731
    best_h = min((costs[h] for h in heuristics if h in costs), default=float("nan"))
    span = best_h - cost_ref
    closable = bool(span > GAP_CLOSED_NA_WITHIN * abs(cost_ref))   # False for NaN too
    return {name: {"gap_to_hindsight": rel(cost, cost_ref), "gap_to_bound": rel(cost, cost_bound),
                   "gap_closed": (best_h - cost) / span if closable else float("nan")}
            for name, cost in costs.items()}


def drop_share(ep: EpisodeResult) -> float:
    """Dropped requests ÷ requests that arrived in the episode (the end rule's leftover included)."""
    arrived = float(sum(r.arrivals_req.sum() for r in ep.records))
    return ep.dropped_req / arrived if arrived > 0 else 0.0


def idle_energy_eur(plant: PlantParams, ep: EpisodeResult, realised: ControlForecast) -> float:
    """What the active GPUs' idle power costs over the episode, EUR: per hour and pool
    ``idle_kw_per_gpu × gpus_applied`` × the site's realised PUE × realised price × the step. A gross
    attribution (as if drawn from the grid; renewables are not netted against it), the part of the
    energy cost that provisioning decides."""
    total = 0.0
    for t, rec in enumerate(ep.records):
        site = plant.pool_site
        eur_per_kwh = (np.asarray(pl.pue(plant, realised.temp_c[t]))[site]
                       * realised.price_eur_per_mwh[t][site] / 1000.0)
        total += float(np.sum(plant.idle_kw_per_gpu * rec.gpus_applied * eur_per_kwh)) * plant.step_h
    return total


def _drop_eur(ep: EpisodeResult) -> float:
    return float(sum(r.drop_penalty_eur for r in ep.records)) + ep.leftover_backlog_req * ep.drop_eur_per_request


def value_of_forecasts(plant: PlantParams, realised: ControlForecast, learned: EpisodeResult,
                       perfect: EpisodeResult) -> dict[str, float]:
    """``value_of_forecasts`` = cost(MPC, learned) − cost(MPC, perfect), EUR, split into idle energy
    (``idle_energy_eur``), drops (drop penalty, leftover backlog included), SLO penalties and the
    rest (dynamic energy, renewables, water, GPU starts): keys ``value_of_forecasts_eur``,
    ``…_idle_energy_eur``, ``…_drops_eur``, ``…_slo_eur``, ``…_other_eur``."""
    total = learned.cost_eur - perfect.cost_eur
    idle = idle_energy_eur(plant, learned, realised) - idle_energy_eur(plant, perfect, realised)
    drops = _drop_eur(learned) - _drop_eur(perfect)
    slo = float(sum(r.slo_penalty_eur for r in learned.records) - sum(r.slo_penalty_eur for r in perfect.records))
    return {"value_of_forecasts_eur": total, "value_of_forecasts_idle_energy_eur": idle,
            "value_of_forecasts_drops_eur": drops, "value_of_forecasts_slo_eur": slo,
            "value_of_forecasts_other_eur": total - idle - drops - slo}
