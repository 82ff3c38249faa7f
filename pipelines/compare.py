"""``greenllm compare``: every controller of ``pipelines._controllers.compare_plan`` on identical data
(``pipelines.loop``) and the hindsight references (``control.reference``), one table
(``pipelines._loop_compare``) and plots; in MLflow a parent run with one child per controller, the
table and plots on the parent."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from control.reference import HindsightFailed, Reference, hindsight_reference
from control.state import PlantState
from pipelines import _loop_plots as plots
from pipelines import _tracking as tracking
from pipelines import _tracking_registry as registry
from pipelines._args import SECONDARY, WINDOWS
from pipelines._controllers import compare_plan
from pipelines._loop_compare import (
    BOUND_ROW,
    MEASURES,
    REF_ROW,
    comparison_table,
    log_references,
    print_references,
    print_table,
    reference_metrics,
)
from pipelines.config import Config
from pipelines.loop import (
    EXPERIMENT,
    MODEL_URI,
    RunOutput,
    Setup,
    forecaster_choice,
    load_suite,
    log_run,
    prepare,
    run_loop,
    run_params,
)
from pipelines.refresh import check_refresh, check_refresh_every, tracked_refresher

__all__ = ["compare_runs", "comparison_table", "run_compare"]


def _hindsight(s: Setup, window: str) -> Reference:
    """The hindsight bound and realised reference of the run ``s`` (printed)."""
    control = s.cfg.control
    state = PlantState.initial(s.plant, water_day=int(s.realised.day_index[0]))
    limit = control.hindsight_time_limit_s
    try:
        ref = hindsight_reference(s.plant, s.realised, s.steps, state, time_limit_s=limit,
                                  headroom=control.provision_headroom, milp_time_limit_s=control.milp_time_limit_s)
    except HindsightFailed as exc:
        raise ValueError(f"hindsight optimum of window {window} ({s.steps} h): the solver found no solution "
                         f"({exc.status}); with control.hindsight_time_limit_s = {limit:g} s "
                         "(valid 1e-06 … 7200), a larger limit may let it finish") from None
    print(f"  {BOUND_ROW:42s} cost {ref.cost_bound_eur:10.2f} EUR ({ref.sub_steps} sub-steps per hour)\n"
          f"  {REF_ROW:42s} cost {ref.cost_ref_eur:10.2f} EUR (the {ref.ref_source}; replays: LP plan "
          f"{ref.lp_replay_eur:.2f}, LP with hourly shares {ref.shares_lp_replay_eur:.2f} EUR, {ref.milp_summary}; "
          f"{ref.solve_s:.0f} s)", flush=True)
    return ref


def compare_runs(cfg: Config, window: str, steps: int | None, model_uri: str | None,
                 show_progress: bool = True, refresh_every: int | None = None
                 ) -> tuple[Setup, dict[str, RunOutput], Reference, dict[str, str]]:
    """Every controller on identical data, and the hindsight references (``control.reference``);
    ``refresh_every``: the learned runs share one forecaster re-fitted every N hours (``pipelines.refresh``)."""
    suite, lineage, main = None, {}, "seasonal-naive"
    if model_uri:
        suite, folder = load_suite(model_uri, cfg.control)
        lineage, main = registry.model_lineage(model_uri, folder), "learned"
    s = prepare(cfg, window, steps)
    check_refresh(refresh_every, s.steps, main, s.data, s.t0)
    refresher = tracked_refresher(s, suite, refresh_every, lineage) if refresh_every and suite else None
    if refresh_every:
        lineage = lineage | {"refresh_every_h": str(refresh_every)}
    runs: dict[str, RunOutput] = {}
    for ctrl, kind in compare_plan(main):
        label = f"{ctrl} [{kind}]"
        runs[label] = run_loop(s, ctrl, kind, suite, show_progress, refresher=refresher)
        print(f"  {label:42s} cost {runs[label].kpis['cost_eur']:10.2f} EUR", flush=True)
    return s, runs, _hindsight(s, window), lineage


def _log_child(parent: Any, label: str, w: str, out: RunOutput, s: Setup, table: pd.DataFrame,
               lineage: dict[str, str], out_dir: Path) -> None:
    """One controller's run of window ``w`` as a child of ``parent``, with its table row's measures."""
    with tracking.child_run(f"{label} {w}", parent):
        ctrl, kind = label.split(" [")
        params = run_params(s, ctrl, kind.rstrip("]"), out.forecaster, lineage)
        log_run(out, s, params, out_dir / w / label.replace(" ", "_").replace("[", "").replace("]", ""))
        tracking.log_metrics({k: float(v) for k, v in table.loc[label, list(MEASURES)].items() if np.isfinite(v)})


def _compare_window(parent: Any, cfg: Config, w: str, steps: int | None, model_uri: str | None, main: str,
                    out_dir: Path, single: bool, refresh_every: int | None) -> tuple[pd.DataFrame, dict[str, float]]:
    """Window ``w``: its table (with a ``window`` column), child runs, cumulative plot and reference metrics."""
    print(f"greenllm compare: window {w}" + (f" ({steps} h)" if steps else ""))
    s, runs, ref, lineage = compare_runs(cfg, w, steps, model_uri, refresh_every=refresh_every)
    table = comparison_table(runs, ref, main, s.plant)
    table.insert(0, "window", w)
    for label, out in runs.items():
        _log_child(parent, label, w, out, s, table, lineage, out_dir)
    series = {k: v.per_step for k, v in runs.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    tracking.log_artifact(plots.plot_cumulative(series, out_dir / f"cumulative_{w}.png", f"{w} from {s.t0:%Y-%m-%d}"),
                          "plots")
    values = reference_metrics(ref, runs, s, main)
    log_references(w, values, ref, single)
    return table, values


def run_compare(cfg: Config, window: str = "primary", steps: int | None = None,
                forecaster: str | None = MODEL_URI, out_dir: Path = Path("out/compare"),
                windows: bool = False, refresh_every: int | None = None) -> pd.DataFrame:
    """``greenllm compare``: all controllers on identical data, one table, plots; parent + child runs
    (``refresh_every``: the learned forecaster re-fitted every N hours, primary window only)."""
    model_uri = forecaster_choice(forecaster, cfg)[1] if forecaster and forecaster not in (
        "seasonal-naive", "perfect") else None
    if refresh_every is not None and windows:
        raise ValueError(f"--refresh-every {refresh_every} with --windows: the secondary windows' load is resampled "
                         "from the load model's training days, so a refresh there would train on its own test "
                         "data; refresh runs on the primary window only")
    check_refresh_every(refresh_every, steps or WINDOWS.get(window, ("", 72))[1],
                        "learned" if model_uri else forecaster or "seasonal-naive")
    if model_uri:
        load_suite(model_uri, cfg.control)  # a missing model is an error before the parent run starts
    names = list(SECONDARY) if windows else [window]
    main = "learned" if model_uri else "seasonal-naive"
    tables, values = [], {}
    with tracking.start_run(EXPERIMENT, f"compare-{'secondary' if windows else window}") as parent:
        for w in names:
            table, values[w] = _compare_window(parent, cfg, w, steps, model_uri, main, out_dir, len(names) == 1,
                                               refresh_every)
            tables.append(table)
        full = pd.concat(tables)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "comparison.csv"
            full.to_csv(path)
            tracking.log_artifact(path)
        tracking.log_params({"windows": ",".join(names), "forecaster": model_uri or "seasonal-naive",
                             "steps": str(steps or ""), "refresh_every_h": str(refresh_every or "")})
        print_table(full, windows)
        print_references(values, main)
        print(f"\nMLflow parent run {parent.info.run_id} ('{EXPERIMENT}'), one child per controller; "
              f"plots in {out_dir}/. Browse with `greenllm ui`.")
    return full
