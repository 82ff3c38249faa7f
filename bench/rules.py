"""Fewer rules: backward elimination of the MPC's applied-step rules under the fleet-scale plant.

The rules (``configs/default.yaml`` ``control:``), each with the setting that switches it off: group
interactive shares, group bursts (one stream's burst instead of a group's), the share cap, the
expiry guard, SLO-aware GPUs, the provisioning correlation (0 = independent errors; off = 1, the
plain sum of the streams' p90s), the GPU floor of interactive pools, the burst headroom itself
(burst level = the provisioning quantile), the backlog fill and keeping a certain plan's deferral.
Score of a rule set: the mean cost of the MPC with the learned forecaster over the secondary windows
(nov-19, nov-26, dec-17: resampled load, in-sample for the load model) × the load tiers (``m-large``
and ``m-mid`` at fleet scale, ``small`` = today's unscaled fleet), never the primary window. Each
round removes the rule whose removal scores lowest, if keeping it saves < 1 % of the score and its
removal adds no drops; it stops when every remaining rule earns its place.

Each tier needs its own learned forecaster (a bundle folder or ``models:/`` URI in the default
store): ``--model m-large=URI --model m-mid=FOLDER --model small=FOLDER``; a tier without one is
left out and the table says so.

Run: ``.venv/bin/python bench/rules.py [--steps 72] --model ...`` → bench/results/rules.md, .json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from control.from_data import fleet_dataset, plant_for
from pipelines.closed_loop import load_suite, prepare, run_loop
from pipelines.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WINDOWS = ("nov-19", "nov-26", "dec-17")
TIERS = {"m-large": ("configs/default.yaml", []), "m-mid": ("configs/default.yaml", ["data.load_tier=m-mid"]),
         "small": ("configs/small.yaml", [])}
#: each applied-step rule: the control setting that switches it, its value with the rule off and on
#: (the check mode switches a rule the other way from the configured default)
RULES: dict[str, tuple[str, object, object]] = {
    "group interactive shares": ("group_interactive_shares", False, True),
    "group bursts": ("group_bursts", False, True),
    "share cap": ("max_share_vs_capacity", 0.0, 1.5),
    "expiry guard": ("expiry_guard", False, True),
    "SLO-aware GPUs": ("slo_aware_gpus", False, True),
    "provision correlation 0": ("group_provision_correlation", 1.0, 0.0),
    "GPU floor": ("min_gpus_interactive", 0.0, 4.0),
    "burst headroom": ("burst_quantile", 0.9, 0.999),
    "backlog fill": ("backlog_fill", False, True),
    "keep planned deferral": ("keep_planned_deferral", False, True),   # acts on forecasts without spread only
}


def _setting(rule: str, on: bool) -> dict[str, object]:
    """The control change that switches ``rule`` on or off."""
    key, off_value, on_value = RULES[rule]
    return {key: on_value if on else off_value}


def _control(cfg: Config, removed: tuple[str, ...]) -> Config:
    changes: dict[str, object] = {}
    for rule in removed:
        changes |= _setting(rule, on=False)
    return dataclasses.replace(cfg, control=dataclasses.replace(cfg.control, **changes))


def _score(tiers: dict, removed: tuple[str, ...], steps: int, cache: dict,
           forecaster: str = "learned", changes: dict | None = None) -> dict[str, float]:
    """Mean cost and drops of the MPC over the windows × tiers, with ``removed`` rules off (or the
    control settings ``changes``), for one forecaster (``learned``: each tier's own)."""
    key = (forecaster, tuple(sorted(removed)), tuple(sorted((changes or {}).items())))
    if key in cache:
        return cache[key]
    costs, drops, run_drops = [], 0.0, []
    for name, (cfg, data, plant, suite) in tiers.items():
        c = _control(cfg, removed)
        if changes:
            c = dataclasses.replace(c, control=dataclasses.replace(c.control, **changes))
        if c.control.backlog_fill != plant.backlog_fill:
            plant = plant_for(c, data)            # a dispatcher setting lives in the plant
        for w in WINDOWS:
            out = run_loop(prepare(c, w, steps, data=data, plant=plant), "mpc", forecaster,
                           suite if forecaster == "learned" else None, show_progress=False)
            costs.append(out.kpis["cost_eur"])
            drops += out.kpis["drops"]
            run_drops.append(out.kpis["drops"])
            print(f"    {name} {w} [{forecaster}]: {out.kpis['cost_eur']:.2f} EUR, drops {out.kpis['drops']:.0f}",
                  flush=True)
    cache[key] = {"mean_cost_eur": float(np.mean(costs)), "spread_eur": float(np.std(costs)),
                  "drops": drops, "costs": costs,
                  "run_drops": run_drops}
    return cache[key]


def _rule_is_on(cfg: Config, rule: str) -> bool:
    key, off_value, _ = RULES[rule]
    return bool(getattr(cfg.control, key) != off_value)


def _check(args: argparse.Namespace, tiers: dict, skipped: list) -> int:
    """One stepwise round from the configured defaults: switch each rule (``--only``) the other way —
    off where the defaults keep it, back on (``RULES``' on value) where they removed it — and score every
    variant with each forecaster (``--forecasters``). A switch is adopted when it lowers the learned
    score by ≥ 1 % and adds no drops to any run (tier × window) under any forecaster, or when it
    removes drops from a run and adds none to any; bench/results/rules_check.md and .json."""
    started, cache = time.perf_counter(), {}
    cfg0 = next(iter(tiers.values()))[0]
    rules = ([] if args.only == "none" else [r.strip() for r in args.only.split(",")]) if args.only else list(RULES)
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise SystemExit(f"--only: unknown rule(s) {unknown}; valid: {', '.join(RULES)}")
    forecasters = [f.strip() for f in args.forecasters.split(",")]
    variants = {"defaults": {}}
    for rule in rules:
        on = _rule_is_on(cfg0, rule)
        variants[("without " if on else "with ") + rule] = _setting(rule, on=not on)
    table: dict[str, dict[str, dict]] = {}
    for name, changes in variants.items():
        print(name, changes or "")
        table[name] = {f: _score(tiers, (), args.steps, cache, f, changes) for f in forecasters}
    base = table["defaults"]
    verdicts = {}
    for name in list(variants)[1:]:
        v = table[name]
        # per run (tier × window): a switch that saves drops in one run and adds them in another adds drops
        more = [f for f in forecasters
                if any(a >= b + 1.0 for a, b in zip(v[f]["run_drops"], base[f]["run_drops"], strict=True))]
        fewer = [f for f in forecasters
                 if any(a <= b - 1.0 for a, b in zip(v[f]["run_drops"], base[f]["run_drops"], strict=True))]
        gain = 1.0 - v[forecasters[0]]["mean_cost_eur"] / base[forecasters[0]]["mean_cost_eur"]
        adopt = not more and (gain >= 0.01 or bool(fewer))
        verdicts[name] = {"adopt": adopt, "saving_vs_defaults": gain, "drops_added_under": more,
                          "drops_removed_under": fewer}
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    result = {"machine": machine, "windows": WINDOWS, "overrides": args.set, "tiers": list(tiers),
              "tiers_without_model": skipped,
              "steps": args.steps, "forecasters": forecasters, "variants": variants,
              "scores": {n: {f: {k: x for k, x in t.items()} for f, t in v.items()} for n, v in table.items()},
              "verdicts": verdicts, "wall_s": time.perf_counter() - started}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = "rules_check" + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{out}.json").write_text(json.dumps(result, indent=1, default=str))
    head = " | ".join(f"{f} mean EUR | {f} drops" for f in forecasters)
    lines = ["# Rules: a stepwise check from the defaults", "",
             f"Written by `bench/rules.py --check` on {time.strftime('%Y-%m-%d')}; machine {machine}; wall time "
             f"{result['wall_s']:.0f} s. MPC on windows {', '.join(WINDOWS)} ({args.steps or 168} h each; resampled "
             f"load, in-sample for the learned load model — the seasonal-naive forecaster is out of sample there, "
             f"a stand-in for a forecaster that misses), tiers {', '.join(tiers)}"
             + (f" (no forecaster given for: {', '.join(skipped)})" if skipped else "") + ". Each variant switches "
             "one rule of `configs/default.yaml`" + (f" (with {', '.join(args.set)})" if args.set else "")
             + " the other way. Adopted when it saves ≥ 1 % on the "
             f"{forecasters[0]} score and adds no drops to any run (tier × window) under any forecaster, or "
             "removes drops from a run and adds none to any.", "", f"| variant | {head} | saving vs defaults | adopt |",
             "|---|" + "---|" * (2 * len(forecasters) + 2)]
    for name, v in table.items():
        cells = " | ".join(f"{v[f]['mean_cost_eur']:.2f} | {v[f]['drops']:.0f}" for f in forecasters)
        verdict = verdicts.get(name)
        tail = "—  | —" if verdict is None else (f"{100 * verdict['saving_vs_defaults']:.2f} % | "
                                                 f"{'yes' if verdict['adopt'] else 'no'}")
        lines.append(f"| {name} | {cells} | {tail} |")
    (RESULTS / f"{out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main() -> int:
    os.chdir(ROOT)   # the configs' relative data folders are relative to the project root
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help="hours per window (default: the whole week)")
    ap.add_argument("--model", action="append", default=[], metavar="TIER=URI",
                    help="a tier's learned forecaster (repeatable)")
    ap.add_argument("--rounds", type=int, default=len(RULES), help="stop after this many rounds (time)")
    ap.add_argument("--check", action="store_true",
                    help="one stepwise round from the configured defaults (bench/results/rules_check.md)")
    ap.add_argument("--only", default="",
                    help="--check: the rules to switch (comma-separated; default all; none: score the defaults only)")
    ap.add_argument("--tag", default="", help="--check: write rules_check_TAG.md/.json")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="--check: a config override for every tier (repeatable), e.g. control.burst_quantile=0.99")
    ap.add_argument("--forecasters", default="learned,seasonal-naive",
                    help="--check: forecasters to score with, the first decides the saving")
    ap.add_argument("--render", action="store_true",
                    help="only rebuild rules.md/.json from rules.json's rounds (the decision rule re-applied)")
    args = ap.parse_args()
    if args.render:
        return _render(args)
    models = dict(m.split("=", 1) for m in args.model)
    tiers, skipped = {}, []
    for name, (path, overrides) in TIERS.items():
        if name not in models:
            skipped.append(name)
            continue
        cfg = load_config(ROOT / path, [*overrides, *args.set])
        data = fleet_dataset(cfg)
        suite, _ = load_suite(models[name], cfg.control)
        tiers[name] = (cfg, data, plant_for(cfg, data), suite)
    if args.check:
        return _check(args, tiers, skipped)
    started, cache = time.perf_counter(), {}
    removed: tuple[str, ...] = ()
    rounds = []
    print("all rules on")
    current = _score(tiers, removed, args.steps, cache)
    converged = False
    while len(removed) < len(RULES) and len(rounds) < args.rounds:
        trials = {}
        for rule in RULES:
            if rule in removed:
                continue
            print(f"  without {rule}")
            trials[rule] = _score(tiers, (*removed, rule), args.steps, cache)
        best = min(trials, key=lambda r: trials[r]["mean_cost_eur"])
        keep_saves = (trials[best]["mean_cost_eur"] - current["mean_cost_eur"]) / current["mean_cost_eur"]
        drops_added = trials[best]["drops"] - current["drops"]
        rounds.append({"removed_so_far": list(removed), "score_eur": current["mean_cost_eur"],
                       "trials": {r: {k: v for k, v in t.items() if k != "costs"} for r, t in trials.items()},
                       "candidate": best, "saving_of_keeping_it": keep_saves, "drops_added": drops_added})
        if keep_saves >= 0.01 or drops_added >= 1.0:   # a whole request (drops are fractional counts)
            converged = True
            break
        removed, current = (*removed, best), trials[best]
        _write(args, tiers, skipped, removed, rounds, current, started, finished=False)
    _write(args, tiers, skipped, removed, rounds, current, started, finished=converged or len(removed) == len(RULES))
    return 0


def _render(args: argparse.Namespace) -> int:
    """Re-apply the decision rule to the rounds recorded in rules.json and rewrite the results."""
    old = json.loads((RESULTS / "rules.json").read_text())
    args.steps, removed, rounds, converged = old["steps"], (), [], False
    current = old["final"]
    for rd in old["rounds"]:
        if tuple(rd["removed_so_far"]) != removed:
            break
        rounds.append(rd)
        if rd["saving_of_keeping_it"] >= 0.01 or rd["drops_added"] >= 1.0:
            converged = True
            break
        removed, current = (*removed, rd["candidate"]), rd["trials"][rd["candidate"]]
    _write(args, {t: None for t in old["tiers"]}, old["tiers_without_model"], removed, rounds, current,
           time.perf_counter() - old["wall_s"], finished=converged or len(removed) == len(RULES))
    return 0


def _write(args: argparse.Namespace, tiers: dict, skipped: list, removed: tuple, rounds: list,
           current: dict, started: float, finished: bool) -> None:
    """bench/results/rules.md and .json after every round (a long run leaves what it has)."""
    kept = [r for r in RULES if r not in removed]
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    result = {"machine": machine, "windows": WINDOWS, "tiers": list(tiers), "tiers_without_model": skipped,
              "steps": args.steps, "removed": list(removed), "kept": kept, "rounds": rounds,
              "final": {k: v for k, v in current.items()}, "wall_s": time.perf_counter() - started,
              "finished": finished}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rules.json").write_text(json.dumps(result, indent=1))
    lines = ["# Fewer rules: backward elimination", "",
             f"Written by `bench/rules.py` on {time.strftime('%Y-%m-%d')}; machine {machine}; wall time "
             f"{result['wall_s']:.0f} s. MPC with each tier's learned forecaster, windows {', '.join(WINDOWS)} "
             f"({args.steps or 168} h each; resampled load, in-sample for the load model), tiers "
             f"{', '.join(tiers)}" + (f" (no forecaster given for: {', '.join(skipped)})" if skipped else "") + ".",
             "A rule is kept when removing it costs ≥ 1 % of the mean cost or adds drops.", ""]
    for i, rd in enumerate(rounds, 1):
        lines += [f"## Round {i}: score {rd['score_eur']:.2f} EUR with "
                  f"{', '.join(rd['removed_so_far']) or 'nothing'} removed", "",
                  "| without | mean cost EUR | spread EUR | drops |", "|---|---|---|---|"]
        lines += [f"| {r} | {t['mean_cost_eur']:.2f} | {t['spread_eur']:.2f} | {t['drops']:.0f} |"
                  for r, t in sorted(rd["trials"].items(), key=lambda kv: kv[1]["mean_cost_eur"])]
        lines += ["", f"Best removal: {rd['candidate']} (keeping it saves {100 * rd['saving_of_keeping_it']:.2f} %, "
                  f"removing it adds {rd['drops_added']:.0f} drops).", ""]
    lines += [f"**Removed:** {', '.join(removed) or 'none'}. **Kept:** {', '.join(kept) or 'none'}. "
              f"Final score {current['mean_cost_eur']:.2f} EUR (spread {current['spread_eur']:.2f}), "
              f"drops {current['drops']:.0f}."
              + ("" if finished else f" The elimination stopped after {len(rounds)} round(s) (`--rounds`): "
                 "the rules still kept were not all tried again.")]
    (RESULTS / "rules.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]))


if __name__ == "__main__":
    sys.exit(main())
