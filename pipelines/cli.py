"""The ``greenllm`` command: ``greenllm SUBCOMMAND ... [--set key=value ...]``."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from forecast.schema import ConfigError, DataError
from pipelines._args import (
    count_at_least,
    name_list,
    number_list,
    out_folder,
    utc_hour_arg,
    week_in_year,
    window_arg,
    window_list,
)
from pipelines._controllers import CONTROLLERS
from pipelines.config import Config, load_config

__all__ = ["main"]


def _add_debug(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true",
                   help="show the Python traceback of an internal error (a defect to report)")


def _add_common(p: argparse.ArgumentParser) -> None:
    _add_debug(p)
    p.add_argument("config", type=Path, help="scenario YAML, e.g. configs/default.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set data.max_gap_h=3 "
                        "or --set sites.DE.water_budget_l_per_day=5e4")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="greenllm",
        description="Forecast-driven, carbon-, water- and temperature-aware allocation of LLM "
                    "inference across data centres.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    data = sub.add_parser("data", help="inspect the scenario's data (sources, spans, gaps, plots)")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    summary = data_sub.add_parser("summary", help="print a table per site and region and write week plots")
    _add_common(summary)
    summary.add_argument("--plots", type=Path, default=Path("out/summary"),
                         help="folder for the PNG plots (default: out/summary)")
    summary.add_argument("--week", default="2018-12-10",
                         help="first day (UTC) of the plotted week (default: 2018-12-10, recorded load)")
    train = sub.add_parser("train", help="train the forecasters, score them against the baselines, "
                                          "log to MLflow, register greenllm-forecaster-<scenario>-<tier> "
                                          "and move its alias champion when the new version is better")
    _add_common(train)
    train.add_argument("--no-progress", action="store_true", help="hide Lightning's progress bar")
    fc = sub.add_parser("forecast", help="print and plot the next H steps from the registered forecaster")
    _add_common(fc)
    fc.add_argument("--at", required=True, type=utc_hour_arg("--at"),
                    help="issue time, UTC with a zone, e.g. 2018-12-14T00:00Z")
    fc.add_argument("--model", default="champion",
                    help="model URI or bundle folder (default: champion, i.e. "
                         "models:/greenllm-forecaster-<scenario>-<tier>@champion)")
    fc.add_argument("--plots", type=Path, default=Path("out/forecast"),
                    help="folder for the PNG plots (default: out/forecast)")
    _add_loop_commands(sub)
    _add_tradeoff(sub)
    _add_sweep(sub)
    return parser


def _add_ray(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--address", default=None, metavar="ADDR",
                   help=f"run the {what} on the Ray cluster at ADDR (e.g. ray://head:10001; default: "
                        "RAY_ADDRESS if set, else a local Ray started here)")
    p.add_argument("--workers", type=count_at_least(1), default=None, metavar="N",
                   help="CPUs of the local Ray, one thread each (default: all cores)")


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    """``sweep``: grid × windows × controllers as Ray tasks."""
    sw = sub.add_parser("sweep", help="every (grid setting × window × controller) closed-loop run as a Ray task; "
                                      "done cells are skipped on a rerun")
    _add_common(sw)
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                    help="a config key and its values (repeatable; the cells are the product), e.g. "
                         "--grid control.epsilon=0.001,0.03 (commas inside [...] stay in a value)")
    sw.add_argument("--windows", type=window_list, default=("primary",),
                    help="comma-separated windows: primary | july | nov-19 | nov-26 | dec-17 | ISO start hours "
                         "(default: primary)")
    sw.add_argument("--controllers", type=name_list(CONTROLLERS), default=("mpc",),
                    help=f"comma-separated, of {', '.join(CONTROLLERS)} (default: mpc)")
    sw.add_argument("--forecaster", default="perfect",
                    help="perfect | seasonal-naive | a model URI or folder (default: perfect)")
    sw.add_argument("--steps", type=count_at_least(1), default=None, help="hours per cell, ≥ 1 (default: the window's)")
    sw.add_argument("--out", type=Path, default=Path("out/sweep"),
                    help="results: cells/KEY.json per done cell, cells.csv, summary.csv (default: out/sweep)")
    _add_ray(sw, "cells")


def _add_tradeoff(sub: argparse._SubParsersAction) -> None:
    """``tradeoff``: the cost → carbon or water front in closed loop."""
    model = "champion"
    tr = sub.add_parser("tradeoff", help="the ε-constraint front of cost against carbon or water, in closed loop")
    _add_common(tr)
    tr.add_argument("--metric", choices=("carbon", "water"), default="carbon",
                    help="what is minimised after cost (default: carbon)")
    tr.add_argument("--mode", choices=("eps", "weighted"), default="eps",
                    help="eps: cost first, then the metric within (1 + ε) of the cost optimum; "
                         "weighted: one objective with the metric priced (default: eps)")
    tr.add_argument("--eps", type=number_list(0.0, 100.0), default=None,
                    help="ε points, %% of the cost optimum (default: 0,0.5,1,2,3,5,10; 0 = cost first)")
    tr.add_argument("--prices", type=number_list(0.0, 1e3), default=None,
                    help="weighted mode: EUR per kg CO2 or per litre (default: 0,0.05,0.1,0.2,0.5,1 for "
                         "carbon; 0,0.001,0.005,0.01,0.05,0.1 for water)")
    tr.add_argument("--forecaster", default=model,
                    help=f"the learned forecaster (or seasonal-naive); perfect forecasts always run too "
                         f"(default: {model})")
    tr.add_argument("--window", default="primary", type=window_arg, help="as for simulate (default: primary)")
    tr.add_argument("--steps", type=count_at_least(1), default=None, help="hours, ≥ 1 (default: the window's)")
    tr.add_argument("--out", type=Path, default=Path("out/tradeoff"), help="folder for the plot")
    tr.add_argument("--ray", action="store_true",
                    help="run the points as Ray tasks (as greenllm sweep; implied by --address or --workers)")
    _add_ray(tr, "points")


def _add_loop_commands(sub: argparse._SubParsersAction) -> None:
    """``simulate``, ``compare``, ``plan`` and ``ui`` (the closed loop and its tracking)."""
    model = "champion"
    sim = sub.add_parser("simulate", help="run the closed loop (forecaster → controller → plant) on real data")
    _add_common(sim)
    sim.add_argument("--controller", default="mpc", help=f"{' | '.join(CONTROLLERS)} (default: mpc)")
    sim.add_argument("--forecaster", default=model,
                     help=f"model URI or folder, or seasonal-naive, or perfect (default: {model}: "
                          "models:/greenllm-forecaster-<scenario>-<tier>@champion)")
    sim.add_argument("--window", default="primary", type=window_arg,
                     help="primary (14–16 Dec 2018) | july | nov-19 | nov-26 | dec-17 | an ISO start time")
    sim.add_argument("--steps", type=count_at_least(1), default=None,
                     help="hours to simulate, ≥ 1 (default: the window's)")
    sim.add_argument("--out", type=Path, default=Path("out/simulate"),
                     help="folder for the plots and the checkpoint (default: out/simulate)")
    sim.add_argument("--checkpoint-every", type=count_at_least(0), default=0, metavar="N",
                     help="write OUT/checkpoint.npz every N steps (default: 0, never)")
    sim.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    sim.add_argument("--state-out", type=Path, default=None, metavar="FILE",
                     help="write the plant's state after the last step as JSON (plan --state reads it; "
                          "with --steps N: the state N hours in)")
    sim.add_argument("--force", action="store_true",
                     help="with --resume: resume a checkpoint written by another code version")
    _add_refresh(sim)
    cmp_ = sub.add_parser("compare", help="every controller and the hindsight optimum on identical data")
    _add_common(cmp_)
    cmp_.add_argument("--forecaster", default=model,
                      help=f"the learned forecaster for the main runs (default: {model}); "
                           "seasonal-naive when none is registered")
    cmp_.add_argument("--window", default="primary", type=window_arg, help="as for simulate (default: primary)")
    cmp_.add_argument("--windows", action="store_true", help="the secondary windows: mean and spread")
    cmp_.add_argument("--steps", type=count_at_least(1), default=None,
                      help="hours per window, ≥ 1 (default: the window's)")
    cmp_.add_argument("--out", type=Path, default=Path("out/compare"), help="folder for the plots")
    _add_refresh(cmp_)
    _add_plan(sub, model)
    ui = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1 over mlruns/ (Ctrl-C stops it)")
    _add_debug(ui)
    ui.add_argument("--port", type=count_at_least(1), default=5000, help="port, 1–65535 (default: 5000)")


def _add_refresh(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refresh-every", type=count_at_least(1), default=None, metavar="N",
                   help="re-fit the learned forecaster every N hours of the loop (warm start on data before "
                        "that hour; each refresh a new registered version, champion not moved; recorded-load "
                        "windows only, i.e. primary; 1 ≤ N ≤ the episode's hours; default: off)")


def _add_plan(sub: argparse._SubParsersAction, model: str) -> None:
    """``plan``: one hour's allocation, from an empty plant or a live state."""
    plan = sub.add_parser("plan", help="the allocation the MPC would apply in the hour starting at T")
    _add_common(plan)
    plan.add_argument("--at", required=True, type=utc_hour_arg("--at"),
                      help="start of the hour, UTC, e.g. 2018-12-14T08:00Z")
    plan.add_argument("--forecaster", default=model, help=f"as for simulate (default: {model})")
    plan.add_argument("--state", type=Path, default=None, metavar="FILE",
                      help="the live state as JSON (GPUs on, backlog by age, battery, water used today; "
                           "see pipelines/live_state.py; default: an empty plant)")
    plan.add_argument("--out", type=Path, default=None, help="folder for plan.json and plan.csv")


def _run_loop_command(args: argparse.Namespace, cfg: Config) -> None:
    if args.command == "simulate":
        from pipelines.simulate import run_simulate

        run_simulate(cfg, args.controller, args.forecaster, args.window, args.steps, args.out,
                     args.checkpoint_every, args.resume, args.force, args.state_out, args.refresh_every)
    elif args.command == "compare":
        from pipelines.compare import run_compare

        run_compare(cfg, args.window, args.steps, args.forecaster, args.out, args.windows, args.refresh_every)
    elif args.command == "plan":
        from pipelines.plan import run_plan

        run_plan(cfg, args.at, args.forecaster, args.state, args.out)
    elif args.command == "tradeoff":
        from pipelines._sweep_ray import RayOptions
        from pipelines.tradeoff import run_tradeoff

        on_ray = args.ray or args.address is not None or args.workers is not None
        run_tradeoff(cfg, args.metric, args.eps if args.mode == "eps" else args.prices, args.forecaster,
                     args.window, args.steps, args.out, args.mode,
                     RayOptions(args.address, args.workers) if on_ray else None)


def _check_outputs(args: argparse.Namespace) -> None:
    """Output folders are checked (and made) before the work, not after a long run."""
    for flag in ("out", "plots"):
        path = getattr(args, flag, None)
        if path is not None:
            out_folder(path, f"--{flag}")


def _run(args: argparse.Namespace) -> int:
    if args.command == "ui":
        from pipelines.ui import run_ui

        return run_ui(args.port)
    cfg = load_config(args.config, args.overrides)
    if args.command in ("train", "simulate", "compare", "tradeoff", "plan", "sweep"):
        from pipelines._tracking import tracking_uri

        tracking_uri()  # a store MLflow cannot use is an error now, not after the run
    if args.command == "data":
        week_in_year(args.week, cfg.scenario.data.year)
    _check_outputs(args)
    if args.command == "data" and args.data_command == "summary":
        from pipelines.data import run_summary

        run_summary(cfg, args.plots, args.week)
    elif args.command == "train":
        from pipelines.train import run_train

        run_train(cfg, progress=not args.no_progress)
    elif args.command == "forecast":
        from pipelines.train import run_forecast

        run_forecast(cfg, args.at, args.model, args.plots)
    elif args.command in ("simulate", "compare", "plan", "tradeoff"):
        _run_loop_command(args, cfg)
    elif args.command == "sweep":
        from pipelines.sweep import run_sweep

        outcome = run_sweep(cfg, args.grid, args.windows, args.controllers, args.forecaster, args.steps, args.out,
                            args.address, args.workers)
        return 1 if outcome.failed else 0
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; a user's error is one line and exit 2, an unforeseen one exit 1."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ConfigError, DataError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError, ValueError) as exc:
        print(f"greenllm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("greenllm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the boundary: one line, never a traceback
        if args.debug:
            traceback.print_exc()
        print(f"greenllm: internal error: {type(exc).__name__}: {exc} — rerun with --debug for the "
              "traceback, and report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
