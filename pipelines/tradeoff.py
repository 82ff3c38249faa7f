"""``greenllm tradeoff``: the cost–carbon or cost–water front of the MPC in closed loop.

ε-constraint mode (the default): every point is the lexicographic MPC with ``control.order = [cost,
METRIC]`` and ``control.epsilon = ε``: each hour the cost stage is solved first, then the metric is
minimised with the planned cost kept within (1 + ε) of its optimum (ε of what an operator pays:
energy, penalties, backlog value; the headroom risk, the expected drop cost of provisioning short,
stays at the cost stage's optimum). ε = 0 is the cost-first baseline (the metric only breaks ties).
The table reports what was *realised*: cost, CO2, water, drops (work left at the episode's end
counts), SLO misses, requests deferred, and the cost increase and metric cut against the ε = 0 run
of the same forecaster — for the learned forecaster and for perfect forecasts. Weighted mode: the
MPC's single weighted objective with the metric priced (``control.carbon_price_eur_per_kg`` or
``control.water_price_eur_per_l``) at each ``--prices`` value.

A line checks Green-LLM's claim (CO2 and water cut while cost stays within 3 % of the minimum)
at ε = 3 %. In MLflow: one parent run per front (table, plot) with one child per point.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pipelines import _tracking as tracking  # noqa: E402
from pipelines._sweep_cells import Cell, CellResult  # noqa: E402
from pipelines._sweep_ray import RayOptions, ray_session, run_cells  # noqa: E402
from pipelines.config import Config, apply_overrides, config_from_raw  # noqa: E402
from pipelines.loop import EXPERIMENT, MODEL_URI, Setup, forecaster_choice, load_suite, prepare, run_loop  # noqa: E402
from pipelines.sweep import sweep_spec  # noqa: E402

__all__ = ["DEFAULT_EPS_PCT", "DEFAULT_PRICES", "GREEN_LLM_EPS_PCT", "run_tradeoff", "tradeoff_front"]

DEFAULT_EPS_PCT = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
#: weighted mode: EUR per kg CO2 (carbon) or per litre (water)
DEFAULT_PRICES = {"carbon": (0.0, 0.05, 0.1, 0.2, 0.5, 1.0), "water": (0.0, 0.001, 0.005, 0.01, 0.05, 0.1)}
GREEN_LLM_EPS_PCT = 3.0
_METRIC_KPI = {"carbon": "co2_kg", "water": "water_l"}
_PRICE_KEY = {"carbon": "carbon_price_eur_per_kg", "water": "water_price_eur_per_l"}


def _point_overrides(metric: Literal["carbon", "water"], mode: str, value: float) -> tuple[str, ...]:
    """The ``--set`` overrides of one point: ε in % (``eps``) or the metric's price (``weighted``)."""
    if mode == "eps":
        return ("control.objective=lexicographic", f"control.order=[cost, {metric}]",
                f"control.epsilon={value / 100.0!r}")
    return ("control.objective=weighted", f"control.{_PRICE_KEY[metric]}={float(value)!r}")


def _point_row(kpis: dict[str, float], forecaster: str, value: float) -> dict[str, float | str]:
    k = kpis
    return {"forecaster": forecaster, "point": value, "cost_eur": k["cost_eur"],
            "energy_cost_eur": k["energy_cost_eur"], "co2_kg": k["co2_kg"], "water_l": k["water_l"],
            "drops": k["drops"], "slo_misses": k["slo_misses"], "deferred_req": k["deferred_req"]}


def _points_kpis(s: Setup, points: list[tuple[str, tuple[str, ...]]], suite: Any, show_progress: bool,
                 ray: RayOptions | None, model_folder: str) -> Iterator[dict[str, float]]:
    """The KPIs of each (forecaster, overrides) point in order: run here one after the other, or all
    as Ray tasks (``pipelines._sweep_ray``; ``model_folder``: the learned bundle's folder)."""
    if ray is None:
        for forecaster, overrides in points:
            cfg = config_from_raw(apply_overrides(s.cfg.raw, overrides), s.cfg.path)
            yield run_loop(dataclasses.replace(s, cfg=cfg), "mpc", forecaster,
                           suite if forecaster == "learned" else None, show_progress).kpis
        return
    cells = [Cell(o, s.window, "mpc", model_folder if f == "learned" else f) for f, o in points]
    results: dict[Cell, CellResult] = {}
    with ray_session(ray.address, ray.workers) as where:
        print(f"  {len(cells)} points as Ray tasks on {where}", flush=True)
        run_cells(sweep_spec(s.cfg, s.steps), cells, lambda r: results.__setitem__(r.cell, r))
    failed = [r for r in results.values() if not r.ok]
    if failed:
        raise RuntimeError("; ".join(f"tradeoff point {r.cell.label()}: {r.error}" for r in failed))
    yield from (results[c].kpis for c in cells)


def tradeoff_front(s: Setup, metric: Literal["carbon", "water"], mode: str, values: tuple[float, ...],
                   forecasters: tuple[str, ...], suite: Any = None, parent: Any = None,
                   show_progress: bool = True, ray: RayOptions | None = None,
                   model_folder: str = "") -> pd.DataFrame:
    """One closed-loop run per (forecaster, point) on the data of ``s``; the table with the cost
    increase and the metric's cut (%) against the first point of the same forecaster. ``ray``: run
    the points as Ray tasks (a learned forecaster then needs ``model_folder``)."""
    rows = []
    grid = [(f, v) for f in forecasters for v in values]
    points = [(f, _point_overrides(metric, mode, v)) for f, v in grid]
    for (forecaster, value), k in zip(grid, _points_kpis(s, points, suite, show_progress, ray, model_folder),
                                      strict=True):
        rows.append(_point_row(k, forecaster, value))
        print(f"  {forecaster:15s} {_label(mode, metric, value):>22s}: cost {k['cost_eur']:10.2f} EUR, "
              f"CO2 {k['co2_kg']:10.1f} kg, water {k['water_l']:10.0f} L, drops {k['drops']:.0f}", flush=True)
        if parent is not None:
            with tracking.child_run(f"{forecaster} {_label(mode, metric, value)}", parent):
                tracking.log_params({"forecaster": forecaster, "mode": mode, "metric": metric,
                                     "point": f"{value:g}", "window": s.window})
                tracking.log_metrics({k: float(v) for k, v in rows[-1].items() if isinstance(v, float)})
    table = pd.DataFrame(rows)
    base = table.groupby("forecaster")[["cost_eur", "co2_kg", "water_l"]].transform("first")
    table["cost_increase_pct"] = 100.0 * (table["cost_eur"] / base["cost_eur"] - 1.0)
    table["co2_cut_pct"] = 100.0 * (1.0 - table["co2_kg"] / base["co2_kg"])
    table["water_cut_pct"] = 100.0 * (1.0 - table["water_l"] / base["water_l"])
    return table


def _label(mode: str, metric: str, value: float) -> str:
    return f"ε = {value:g} %" if mode == "eps" else f"{_PRICE_KEY[metric]} = {value:g}"


def plot_front(table: pd.DataFrame, metric: str, mode: str, path: Path, title: str) -> Path:
    """Realised metric against realised cost, one line per forecaster, points labelled."""
    kpi = _METRIC_KPI[metric]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for forecaster, part in table.groupby("forecaster", sort=False):
        ax.plot(part["cost_eur"], part[kpi], marker="o", label=forecaster)
        for _, row in part.iterrows():
            ax.annotate(f"{row['point']:g}", (row["cost_eur"], row[kpi]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    unit = "kg CO2" if metric == "carbon" else "L"
    ax.set(xlabel="realised cost, EUR", ylabel=f"realised {metric}, {unit}",
           title=f"{title}\n(labels: {'ε, % of cost' if mode == 'eps' else _PRICE_KEY[metric]})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def green_llm_line(table: pd.DataFrame) -> str:
    """Green-LLM's check: CO2 and water cut at ε = 3 % against cost-first, per forecaster."""
    parts = []
    for forecaster, part in table.groupby("forecaster", sort=False):
        at = part[part["point"] == GREEN_LLM_EPS_PCT]
        if at.empty:
            continue
        row = at.iloc[0]
        parts.append(f"{forecaster}: CO2 {-row['co2_cut_pct']:+.1f} %, water {-row['water_cut_pct']:+.1f} % "
                     f"for {row['cost_increase_pct']:+.2f} % cost")
    if not parts:
        return f"Green-LLM check: no ε = {GREEN_LLM_EPS_PCT:g} % point in --eps"
    return f"Green-LLM check (ε = {GREEN_LLM_EPS_PCT:g} % against cost-first): " + "; ".join(parts)


def run_tradeoff(cfg: Config, metric: Literal["carbon", "water"] = "carbon", values: tuple[float, ...] | None = None,
                 forecaster: str = MODEL_URI, window: str = "primary", steps: int | None = None,
                 out_dir: Path = Path("out/tradeoff"), mode: str = "eps",
                 ray: RayOptions | None = None) -> pd.DataFrame:
    """``greenllm tradeoff``: the front for the forecaster given (learned, or seasonal-naive) and
    for perfect forecasts; table, plot, MLflow parent with a child per point (``ray``: the points
    as Ray tasks, as ``greenllm sweep`` runs its cells)."""
    values = values if values is not None else (DEFAULT_EPS_PCT if mode == "eps" else DEFAULT_PRICES[metric])
    kind, uri = forecaster_choice(forecaster, cfg)
    suite, folder = load_suite(uri, cfg.control) if kind == "learned" else (None, "")
    forecasters = tuple(dict.fromkeys((kind, "perfect")))
    s = prepare(cfg, window, steps)
    print(f"greenllm tradeoff: cost → {metric}, {mode} mode, {len(values)} points × {', '.join(forecasters)}; "
          f"window {s.window} ({s.steps} h from {s.t0:%Y-%m-%d %H:%M} UTC)")
    with tracking.start_run(EXPERIMENT, f"tradeoff-{metric}-{mode}") as parent:
        table = tradeoff_front(s, metric, mode, values, forecasters, suite, parent, ray=ray,
                               model_folder=str(Path(folder).resolve()) if folder else "")
        out_dir.mkdir(parents=True, exist_ok=True)
        png = plot_front(table, metric, mode, out_dir / f"front_{metric}_{mode}.png",
                         f"cost → {metric} front, {s.window} window")
        tracking.log_artifact(png, "plots")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"tradeoff_{metric}_{mode}.csv"
            table.to_csv(path, index=False)
            tracking.log_artifact(path)
        tracking.log_params({"metric": metric, "mode": mode, "points": ",".join(f"{v:g}" for v in values),
                             "forecaster": uri or kind, "window": s.window})
        print("\n" + table.round(2).to_string(index=False))
        if mode == "eps":
            print("\n" + green_llm_line(table))
        print(f"\nMLflow parent run {parent.info.run_id} ('{EXPERIMENT}'), one child per point; plot {png}")
    return table
