"""Trade-offs and policies on the default scenario (m-large, fleet scale) → bench/results/tradeoffs.md, .json.

1. ε-constraint fronts in closed loop (``pipelines.tradeoff.tradeoff_front``), primary window:
   cost → carbon and cost → water, ε = 0, 0.5, 1, 2, 3, 5, 10 % of the planned cost optimum, with
   the learned forecaster and with perfect forecasts; the Green-LLM check at ε = 3 %.
2. Water budgets: the calibration the YAML's budgets come from — the cost-first July-week run with
   perfect forecasts and no budgets; per site its hottest day (highest daily mean temperature) and
   the litres it used then; a budget binds when that run uses at least the budget on some day. Then
   the July week with the configured budgets, cost-first and water-first (order water → cost →
   carbon → delay): litres over budget, water and cost.
3. Routing policies on the primary window, learned forecaster: free routing, EU-only (every site
   but CH) and national rules (Stockholm → SE, Vienna → AT): cost, CO2, drops.
4. Edge batch modes: per edge device and batch size the figures ``control.batch_modes`` derives
   (model-based, not measured: energy per request at full use, TTFT, memory) for the traces' mean
   conv and code requests; then the primary window's MPC (perfect forecasts) with the batch modes
   against the fixed catalogue batch: device-hours per mode, edge energy per request, cost.

Run: ``.venv/bin/python bench/tradeoffs.py --model PATH_OR_URI [--quick] [--sections edge]``
(about 15 min on 2 cores; ``--sections`` reruns some sections into the existing results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from control.batch_modes import gpu_for, mode_batch, mode_table
from control.from_data import token_stats
from pipelines.closed_loop import daily_water, load_suite, prepare, run_loop
from pipelines.config import Config, load_config
from pipelines.tradeoff import DEFAULT_EPS_PCT, GREEN_LLM_EPS_PCT, green_llm_line, tradeoff_front

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CONFIG = "configs/default.yaml"
#: the configured budgets are this share of each site's use on its hottest July day (section 2)
BUDGET_FRACTION = 1.8


def _fronts(model: str, steps: int | None, eps: tuple[float, ...]) -> dict:
    cfg = load_config(CONFIG)
    suite = load_suite(model, cfg.control)[0]
    s = prepare(cfg, "primary", steps)
    out: dict = {}
    for metric in ("carbon", "water"):
        print(f"front cost → {metric}", flush=True)
        tables, wall_s = [], {}
        for forecaster in ("learned", "perfect"):   # timed one front (len(eps) closed-loop runs) at a time
            start = time.perf_counter()
            tables.append(tradeoff_front(s, metric, "eps", eps, (forecaster,), suite, show_progress=False))
            wall_s[forecaster] = time.perf_counter() - start
        table = pd.concat(tables, ignore_index=True)
        out[metric] = {"table": table.to_dict(orient="records"), "green_llm": green_llm_line(table),
                       "wall_s": wall_s, "points": len(eps), "steps": s.steps}
    return out


def _front_time_line(front: dict) -> str:
    if "wall_s" not in front:
        return ""
    times = ", ".join(f"{f} {v:.0f} s" for f, v in front["wall_s"].items())
    return (f"Front computation ({front['points']} points, each a {front['steps']}-h closed loop on this machine, "
            f"one after the other): {times} (target ≤ 120 s for 7 points). Reuse: each point builds its MPC's LP "
            "once and re-parameterises it every hour (warm-started HiGHS); the data, plant and forecaster are "
            "loaded once for all points.")


def _water_calibration(steps: int | None) -> dict:
    """Section 2's calibration on both load tiers at the default fleet scale: per site and tier the
    hottest July day's use; the budget is ``BUDGET_FRACTION`` × the larger of the two."""
    base = load_config(CONFIG)
    configured = {s.name: s.water_budget_l_per_day for s in base.scenario.sites}
    off = [f"sites.{s.name}.water_budget_l_per_day=1e12" for s in base.scenario.sites]
    rows: dict[str, dict] = {name: {} for name in configured}
    totals = {}
    for tier, extra in (("m-large", []), ("m-mid", ["data.load_tier=m-mid"])):
        out = run_loop(prepare(load_config(CONFIG, extra + off), "july", steps), "mpc", "perfect", show_progress=False)
        totals[tier] = {"cost_eur": out.kpis["cost_eur"], "water_l": out.kpis["water_l"]}
        for site, part in daily_water(out.sites).groupby(level="site"):
            hot = part["temp_c"].idxmax()[1]
            rows[site] |= {f"{tier} hottest day": hot, f"{tier} used then L": float(part.loc[(site, hot), "used_l"]),
                           f"{tier} max daily L": float(part["used_l"].max())}
    for site, row in rows.items():
        hottest = max(row["m-large used then L"], row["m-mid used then L"])
        row |= {"suggested budget L": float(f"{BUDGET_FRACTION * hottest:.2g}"),
                "configured budget L": configured[site]}
        for tier in ("m-large", "m-mid"):
            row[f"binds {tier}"] = bool(row[f"{tier} max daily L"] >= configured[site])
    return {"totals": totals, "sites": rows,
            "binding_sites": {t: sorted(k for k, v in rows.items() if v[f"binds {t}"]) for t in ("m-large", "m-mid")}}


def _water_orders(steps: int | None) -> dict:
    """The July week with the configured budgets: cost-first against water-first."""
    res = {}
    for name, order in (("cost-first", None), ("water-first", "[water, cost, carbon, delay]")):
        cfg = load_config(CONFIG, [f"control.order={order}"] if order else [])
        out = run_loop(prepare(cfg, "july", steps), "mpc", "perfect", show_progress=False)
        daily = daily_water(out.sites)
        res[name] = {"cost_eur": out.kpis["cost_eur"], "water_l": out.kpis["water_l"],
                     "co2_kg": out.kpis["co2_kg"], "over_budget_l": float(daily["over_budget_l"].sum()),
                     "drops": out.kpis["drops"],
                     "deferred_req": out.kpis["deferred_req"],
                     "site_days_over": int((daily["over_budget_l"] > 0).sum())}
        print(f"  july {name}: {res[name]}", flush=True)
    return res


def _policies(model: str, steps: int | None) -> dict:
    base = load_config(CONFIG)
    eu = "[" + ", ".join(s.name for s in base.scenario.sites if s.entsoe_country != "CH") + "]"
    policies = {"free": [],
                "EU-only (all but CH)": [f"regions.{r.name}.allowed_sites={eu}" for r in base.scenario.regions],
                "national (Stockholm → SE, Vienna → AT)": ["regions.Stockholm.allowed_sites=[SE]",
                                                          "regions.Vienna.allowed_sites=[AT]"]}
    suite = load_suite(model, base.control)[0]
    res = {}
    for name, sets in policies.items():
        cfg: Config = load_config(CONFIG, sets)
        out = run_loop(prepare(cfg, "primary", steps), "mpc", "learned", suite, show_progress=False)
        res[name] = {k: out.kpis[k] for k in ("cost_eur", "co2_kg", "water_l", "drops", "slo_misses")}
        print(f"  policy {name}: {res[name]}", flush=True)
    free = res["free"]["cost_eur"]
    for v in res.values():
        v["cost_vs_free_pct"] = 100.0 * (v["cost_eur"] / free - 1.0)
    return res


def _edge_run(cfg: Config, steps: int | None) -> dict:
    s = prepare(cfg, "primary", steps)
    out = run_loop(s, "mpc", "perfect", show_progress=False)
    plant, recs = s.plant, out.episode.records
    edge = np.array([gpu_for(cfg.hardware, g).kind == "edge" for g in plant.pool_gpu])
    gpus = np.array([r.gpus_applied for r in recs])                          # (T, P)
    served = np.array([r.served_req.sum(axis=0) for r in recs])              # (T, P, K)
    dyn_kj = np.einsum("tpk,pk->p", served, plant.it_kw_per_req_per_s)     # kW·s per req × req = kJ
    idle_kj = plant.idle_kw_per_gpu * gpus.sum(axis=0) * plant.step_s
    req = served.sum(axis=(0, 2))
    named = [n if "@b" in n else f"{n}@b{gpu_for(cfg.hardware, g).batch}"        # fixed: its batch
             for n, g in zip(plant.pool_names, plant.pool_gpu, strict=True)]
    hours = {name: float(gpus[:, p].sum() * plant.step_h) for p, name in enumerate(named) if edge[p]}
    return {"cost_eur": out.kpis["cost_eur"], "co2_kg": out.kpis["co2_kg"], "device_h": hours,
            "edge_served_req": float(req[edge].sum()),
            "edge_j_per_request": float(1000.0 * (dyn_kj + idle_kj)[edge].sum() / max(req[edge].sum(), 1.0))}


def _edge_batch(steps: int | None) -> dict:
    """Section 4: the derived per-mode figures and the closed loop with modes against the fixed batch."""
    cfg = load_config(CONFIG)
    modes = cfg.scenario.sizing.edge_batch_modes or (1, 2, 4, 8)
    tokens = token_stats(prepare(cfg, "primary", 1).data)
    figures = {trace: mode_table(cfg.hardware, modes, t.prompt_tokens, t.output_tokens) for trace, t in tokens.items()}
    per_device: dict = {}
    for row in figures["conv"]:
        per_device.setdefault(row["device"], {})[str(row["batch"])] = {k: v for k, v in row.items()
                                                                      if k not in ("device", "batch")}
    runs = {"batch modes": _edge_run(load_config(CONFIG, [f"sizing.edge_batch_modes={list(modes)}"]), steps),
            "fixed batch": _edge_run(load_config(CONFIG, ["sizing.edge_batch_modes=[]"]), steps)}
    for name, run in runs.items():
        print(f"  edge {name}: {run}", flush=True)
    return {"modes": list(modes), "tokens": {k: vars(v) for k, v in tokens.items()}, "figures": figures,
            "per_device_conv": per_device, "closed_loop": runs}


def _edge_lines(e: dict) -> list[str]:
    lines = ["## Edge batch modes (model-based figures: derived from the batch-1 measurements, configs/hardware.yaml)",
             "", f"Modes offered: {e['modes']}. Energy per request at full use (idle + dynamic), TTFT = batch × "
             "prompt ÷ prefill rate (static batching, no queueing), memory = weights + reserve + batch × KV slots.", ""]
    for trace, rows in e["figures"].items():
        t = e["tokens"][trace]
        lines += [f"{trace} request ({t['prompt_tokens']:.0f} prompt, {t['output_tokens']:.0f} output tokens):", "",
                  _md(pd.DataFrame(rows), index=False), ""]
    runs = pd.DataFrame({k: {c: v for c, v in r.items() if c != "device_h"} for k, r in e["closed_loop"].items()}).T
    hours = pd.DataFrame({k: r["device_h"] for k, r in e["closed_loop"].items()}).fillna(0.0)
    hours = hours[(hours > 0).any(axis=1)]   # (sub-)pools that ran at all
    lines += ["Primary window (14–16 Dec 2018), MPC with perfect forecasts, the batch modes against the fixed "
              "catalogue batch (4):", "", _md(runs), "",
              "Device-hours per edge (sub-)pool that ran (the others: 0):", "", _md(hours), ""]
    return lines + ["Is batch 4 the balance point here? " + _balance(e), ""]


def _balance(e: dict) -> str:
    """Per device: the modes that fit, the MPC's device-hours per mode, batch 4 against the largest."""
    used = e["closed_loop"]["batch modes"]["device_h"]
    parts = []
    for device, modes in e["per_device_conv"].items():
        fits = [int(b) for b, m in modes.items() if m["fits"]]
        hours = {b: sum(h for pool, h in used.items() if pool.split("/")[1] == f"{device}@b{b}") for b in fits}
        top, m4 = fits[-1], modes["4"]
        mt = modes[str(top)]
        parts.append(f"{device}: fits batch {fits}; MPC device-hours by batch {hours}; batch 4 → {top}: "
                     f"{m4['j_per_request']:.0f} → {mt['j_per_request']:.0f} J per conv request, TTFT "
                     f"{m4['ttft_s']:.1f} → {mt['ttft_s']:.1f} s")
    chosen = {b for b, h in _hours_by_batch(used).items() if h > 0}
    verdict = ("yes" if chosen == {4} else f"no: the MPC ran batch {sorted(chosen)}" if chosen
               else "no edge device ran")
    return f"{verdict}. " + "; ".join(parts) + "."


def _hours_by_batch(used: dict) -> dict:
    out: dict = {}
    for pool, h in used.items():
        b = mode_batch(pool)   # every edge (sub-)pool name here carries its batch (_edge_run)
        out[b] = out.get(b, 0.0) + h
    return out


def _md(frame: pd.DataFrame, index: bool = True) -> str:
    """A DataFrame as a Markdown table (numbers to 2 decimals)."""
    frame = frame.reset_index() if index else frame
    cell = lambda v: f"{v:,.2f}" if isinstance(v, float | np.floating) else str(v)  # noqa: E731
    rows = ["| " + " | ".join(str(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    rows += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(rows)


def _water_lines(water: dict) -> list[str]:
    w = water["calibration"]
    bind = "; ".join(f"{t}: {', '.join(v) or 'none'} ({len(v)})" for t, v in w["binding_sites"].items())
    lines = ["## Water budgets (July week 16–22 Jul 2018, cost-first, perfect forecasts)", "",
             "Calibration runs without budgets: " + ", ".join(f"{t} cost {v['cost_eur']:.2f} EUR, water "
                                                             f"{v['water_l']:.0f} L" for t, v in w["totals"].items())
             + f". Budget = {BUDGET_FRACTION:g} × the larger of the two tiers' use on the site's hottest day "
             "(highest daily mean temperature; 2 significant digits); a budget binds when a run uses at least "
             f"the budget on some day. Binding sites with the configured budgets: {bind}.", "",
             _md(pd.DataFrame(w["sites"]).T), ""]
    o = water["orders"]
    lines += ["With the configured budgets:", "", _md(pd.DataFrame(o).T), ""]
    cf, wf = o["cost-first"], o["water-first"]
    return lines + [f"Water-first cuts water by {100 * (1 - wf['water_l'] / cf['water_l']):.1f} % at "
                    f"{100 * (wf['cost_eur'] / cf['cost_eur'] - 1):+.1f} % cost against cost-first.", ""]


def _render(r: dict) -> str:
    lines = ["# Trade-offs and policies (default scenario, m-large, fleet scale)", "",
             f"Machine: {r['machine']}. Written by `bench/tradeoffs.py`; wall time {r['wall_s']:.0f} s "
             f"(per run of sections: {', '.join(f'{k} {v:.0f} s' for k, v in r['section_wall_s'].items())}). "
             f"Learned forecaster: {r['model']}. Realised closed-loop KPIs (the MPC plans on forecasts; ε bounds "
             "the *planned* cost of each hour — energy, penalties and backlog value; the headroom risk stays at "
             "the cost stage's optimum — the table reports what was realised).", ""]
    for metric, front in r.get("fronts", {}).items():
        t = pd.DataFrame(front["table"])
        lines += [f"## ε-constraint front cost → {metric}, primary window (14–16 Dec 2018, 72 h)", "",
                  _md(t, index=False), "", front["green_llm"], "", _front_time_line(front), ""]
    if "water" in r:
        lines += _water_lines(r["water"])
    if "policies" in r:
        lines += ["## Routing policies (primary window, learned forecaster)", "",
                  _md(pd.DataFrame(r["policies"]).T), ""]
    if "edge_batch" in r:
        lines += _edge_lines(r["edge_batch"])
    return "\n".join(lines)


SECTIONS = ("fronts", "water", "policies", "edge")


def _summary_keys(r: dict) -> dict:
    """The issue's JSON keys, read off the sections: ``front`` → forecaster → metric → points;
    ``headline`` → forecaster → cuts at ε = 3 %; ``water.binding_sites_july``; ``residency``."""
    out: dict = {}
    if "fronts" in r:
        front: dict = {}
        for metric, f in r["fronts"].items():
            for row in f["table"]:
                point = {"eps": row["point"], **{k: row[k] for k in ("cost_eur", "co2_kg", "water_l", "drops")}}
                front.setdefault(row["forecaster"], {}).setdefault(metric, []).append(point)
        out["front"] = front
        cut = {m: {row["forecaster"]: row[f"{'co2' if m == 'carbon' else 'water'}_cut_pct"]
                   for row in f["table"] if row["point"] == GREEN_LLM_EPS_PCT} for m, f in r["fronts"].items()}
        out["headline"] = {fc: {"co2_cut_at_3pct": cut.get("carbon", {}).get(fc),
                                "water_cut_at_3pct": cut.get("water", {}).get(fc)} for fc in front}
    if "water" in r:
        out["water"] = r["water"] | {"binding_sites_july": r["water"]["calibration"]["binding_sites"]}
    if "policies" in r:
        out["residency"] = {name: {"cost_eur": v["cost_eur"]} for name, v in r["policies"].items()}
    return out


def _run_sections(args: argparse.Namespace, steps: int | None, result: dict) -> None:
    eps = (0.0, 3.0, 10.0) if args.quick else DEFAULT_EPS_PCT
    if "fronts" in args.sections:
        result["fronts"] = _fronts(args.model, steps, eps)
    if "water" in args.sections:
        print("water calibration", flush=True)
        result["water"] = {"calibration": _water_calibration(steps), "orders": _water_orders(steps)}
    if "policies" in args.sections:
        print("policies", flush=True)
        result["policies"] = _policies(args.model, steps)
    if "edge" in args.sections:
        print("edge batch modes", flush=True)
        result["edge_batch"] = _edge_batch(steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the m-large forecaster (models:/… URI or bundle folder)")
    ap.add_argument("--quick", action="store_true", help="12-h windows and three ε points (smoke run)")
    ap.add_argument("--sections", type=lambda v: tuple(v.split(",")), default=SECTIONS,
                    help=f"comma-separated among {','.join(SECTIONS)} (default: all); the others are kept "
                         "from the existing results file")
    args = ap.parse_args()
    if not set(args.sections) <= set(SECTIONS):
        ap.error(f"--sections: {','.join(args.sections)}; valid: {','.join(SECTIONS)}")
    name = "tradeoffs_quick" if args.quick else "tradeoffs"
    path = RESULTS / f"{name}.json"
    result = json.loads(path.read_text()) if set(args.sections) != set(SECTIONS) and path.exists() else {}
    t0 = time.perf_counter()
    result |= {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "model": args.model}
    _run_sections(args, 12 if args.quick else None, result)
    result.setdefault("section_wall_s", {})[",".join(args.sections)] = time.perf_counter() - t0
    result["wall_s"] = sum(result["section_wall_s"].values())
    result |= _summary_keys(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=_json_default))
    (RESULTS / f"{name}.md").write_text(_render(result))
    print(f"→ {RESULTS / name}.md")


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


if __name__ == "__main__":
    main()
