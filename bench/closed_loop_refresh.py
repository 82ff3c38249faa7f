"""Refresh study of ``bench/closed_loop.py`` (section 5; ``--sections refresh`` runs it alone and
merges it into bench/results/closed_loop.json and .md).

Per load tier, primary window (the only one with recorded load after the training days: on the
secondary windows the load is resampled from the training days, and ``pipelines.refresh`` refuses
them): the MPC with the tier's learned forecaster, without refresh and with a refresh every N hours
(``pipelines.refresh.Refresher``: warm start on data before each refresh time, burst and peak
factors refitted; not registered here). Cost, drops and SLO misses per run, the refresh time, the
burst factor and the validation losses of each refresh. The default N is the candidate that does
not raise the cost on any tier (a rule must hold on every tier, not one).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from pipelines.closed_loop import load_suite, prepare, run_loop
from pipelines.config import load_config
from pipelines.refresh import REFRESH_EPOCHS, Refresher

__all__ = ["EVERY_H", "refresh_markdown", "refresh_study"]

EVERY_H = (48, 24, 12)   # refresh intervals run, hours (72-h window: 1, 2 and 5 refreshes; the docstring of
                  # pipelines/refresh.py and closed_loop.md say why 24 h)
KPIS = ("cost_eur", "energy_cost_eur", "drop_penalty_eur", "slo_penalty_eur", "drops", "slo_misses")


def _row(out: object, wall_s: float) -> dict[str, float]:
    k = out.kpis   # type: ignore[attr-defined]
    return {**{name: float(k[name]) for name in KPIS}, "wall_s": wall_s}


def _tier(path: str, overrides: list[str], model: str, steps: int | None, root: object) -> dict:
    """One tier: the MPC with the learned forecaster, refresh off and every N in ``EVERY_H``."""
    cfg = load_config(root / path, overrides)   # type: ignore[operator]
    suite, _ = load_suite(model, cfg.control)
    s = prepare(cfg, "primary", steps)
    began = time.perf_counter()
    runs = {"off": _row(run_loop(s, "mpc", "learned", suite, show_progress=False), time.perf_counter() - began)}
    for every in EVERY_H:
        if every > s.steps:
            continue
        began = time.perf_counter()
        refresher = Refresher(s, suite, every, "the tier's model", say=lambda text: print(text, flush=True))
        out = run_loop(s, "mpc", "learned", suite, show_progress=False, refresher=refresher)
        row = _row(out, time.perf_counter() - began)
        recs = refresher.records
        row |= {"refreshes": float(len(recs)), "refresh_s": float(sum(r.refit_s for r in recs)),
                "refresh_s_each": [r.refit_s for r in recs], "burst_factor": [r.burst_factor for r in recs],
                "burst_factor_start": float(np.max(refresher.parts[0].burst_factor))
                if refresher.parts[0].burst_factor is not None else float("nan"),
                "load_val_loss": [[r.losses.get("load_req_per_s", {}).get(k, float("nan"))
                                   for k in ("refresh_start_val_loss", "refresh_best_val_loss")] for r in recs]}
        runs[f"every {every} h"] = row
        print(f"   every {every} h: cost {row['cost_eur']:.2f} EUR (off {runs['off']['cost_eur']:.2f}), drops "
              f"{row['drops']:.0f}, SLO misses {row['slo_misses']:.0f}; refreshes {row['refresh_s']:.0f} s", flush=True)
    return {"forecaster": model, "steps": s.steps, "runs": runs}


def refresh_study(tiers: dict[str, tuple[str, list[str]]], models: dict[str, str], steps: int | None,
                  root: object, save: Callable[[dict], None] | None = None) -> dict:
    """Every tier with a learned forecaster; the intervals that hold on all of them. ``save``
    receives the study so far after each tier (a long run keeps what it has done)."""
    out: dict[str, dict] = {}
    began = time.perf_counter()
    for tier, (path, overrides) in tiers.items():
        if tier not in models:
            print(f"5. {tier}: no learned forecaster given (--model {tier}=URI): no refresh study")
            continue
        print(f"5. {tier}: refresh study, primary window", flush=True)
        out[tier] = _tier(path, overrides, models[tier], steps, root)
        if save is not None:
            save(_summary(out, began))
    return _summary(out, began)


def _summary(out: dict[str, dict], began: float) -> dict:
    """The study's result: per tier runs, the intervals that never raise the cost, wall time."""
    def holds(label: str) -> bool:
        return bool(out) and all(label in t["runs"] and t["runs"][label]["cost_eur"] <= t["runs"]["off"]["cost_eur"]
                                 for t in out.values())

    choice = [f"every {n} h" for n in EVERY_H if holds(f"every {n} h")]
    return {"tiers": out, "every_h": list(EVERY_H), "epochs": REFRESH_EPOCHS,
            "holds_on_every_tier": choice, "wall_seconds": time.perf_counter() - began}


def refresh_markdown(study: dict) -> list[str]:
    """The section's lines for bench/results/closed_loop.md."""
    lines = ["", "## 5. Refresh in the loop (primary window)", "",
             f"MPC with each tier's learned forecaster; `--refresh-every N`: every N hours a warm start of the load "
             f"model (≤ {study['epochs']} epochs) on the data before that hour, the burst and 10-min peak "
             "factors refitted on the same data; not registered here. Primary window only: elsewhere the load "
             f"is resampled from the training days (refresh refused). Section wall time "
             f"{study['wall_seconds']:.0f} s on 2 cores"
             + (" (another job ran alongside: the times are upper bounds)" if study.get("shared") else "") + ".", "",
             "| tier | refresh | cost EUR | energy EUR | drops EUR | SLO EUR | drops | SLO misses | refreshes | "
             "refresh s (each) | burst factor | load val pinball before → after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for tier, t in study["tiers"].items():
        for label, r in t["runs"].items():
            each = ", ".join(f"{x:.0f}" for x in r.get("refresh_s_each", []))
            factors = [r["burst_factor_start"], *r["burst_factor"]] if "burst_factor" in r else []
            burst = " → ".join(f"{x:.2f}" for x in factors)
            losses = "; ".join(f"{a:.4f} → {b:.4f}" for a, b in r.get("load_val_loss", []))
            lines.append(f"| {tier} | {label} | {r['cost_eur']:.2f} | {r['energy_cost_eur']:.2f} | "
                         f"{r['drop_penalty_eur']:.2f} | {r['slo_penalty_eur']:.2f} | {r['drops']:.0f} | "
                         f"{r['slo_misses']:.0f} | {r.get('refreshes', 0):.0f} | "
                         f"{r.get('refresh_s', 0):.0f} ({each}) | "
                         f"{burst} | {losses} |")
    held = study["holds_on_every_tier"]
    lines += ["", "Intervals run on every tier that do not raise the cost on any: "
              + (", ".join(held) if held else "none") + ". " + study.get("candidates_note", ""), "",
              interval_choice(study)]
    return lines


def interval_choice(study: dict) -> str:
    """The interval to use, from this run's numbers: among those that lower (or keep) the cost on
    every tier, the one with the lowest mean relative change; none when no interval does."""
    held, tiers = study["holds_on_every_tier"], study["tiers"]
    if not held:
        return "**No interval lowers the cost on every tier**: the flag stays off."

    def change(label: str, t: dict) -> float:
        return t["runs"][label]["cost_eur"] / t["runs"]["off"]["cost_eur"] - 1

    best = min(held, key=lambda label: sum(change(label, t) for t in tiers.values()) / len(tiers))
    per_tier = ", ".join(f"{tier} {t['runs']['off']['cost_eur']:,.2f} → {t['runs'][best]['cost_eur']:,.2f} EUR "
                         f"({100 * change(best, t):+.1f} %)" for tier, t in tiers.items())
    return (f"**{best}** is the interval to use (the flag stays off by default): of those that do not raise the "
            f"cost on any tier, it lowers it most on average — {per_tier}. Caveat: one 72-h window, the only one "
            "with recorded load after the training days, so the choice is made across the three tiers instead "
            "of on the secondary windows (DESIGN §5).")
