"""The closed loop on real data: ``greenllm simulate``, ``compare`` and ``plan`` (DESIGN.md §5).

At step t a forecaster sees only data before t (``pipelines._loop_forecasts``), the controller
decides from the state and the forecast, and ``control.realised.step`` applies the decision to what
really happened; every step is checked for request conservation, power balance and capacity.
Every run is tracked in MLflow (experiment ``closed-loop``): params, the forecaster's lineage,
per-step metrics, the KPI summary, the per-step tables as parquet, the resolved config and plots.
``compare`` makes a parent run with one child per controller, and logs the table and plots there.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from control.controllers import (
    CapacityProportional,
    Controller,
    GreedyController,
    MPCController,
    annual_mean_pue,
    myopic,
    temperature_unaware,
)
from control.from_data import fleet_dataset, plant_for, realised_inputs
from control.inputs import ControlForecast
from control.mpc import AllocationMPC
from control.params import ControlSettings
from control.plant import PlantParams
from control.reference import HindsightFailed, Reference, hindsight_reference
from control.simulate import EpisodeResult, InvariantError, StepTiming, run_episode
from control.state import PlantState, StepRecord
from forecast.dataset import Dataset
from forecast.scenario import ConfigError
from pipelines import _checkpoint as ckpt
from pipelines import _loop_plots as plots
from pipelines._args import SECONDARY, WINDOWS
from pipelines._config import Config
from pipelines._loop_compare import (
    BOUND_ROW,
    HEURISTICS,
    MEASURES,
    REF_ROW,
    comparison_table,
    log_references,
    print_references,
    print_table,
    reference_metrics,
)
from pipelines._loop_forecasts import forecaster_for
from pipelines._loop_report import dispatch_columns, fallback_columns, fallback_lines, flow_frame, kpis, site_frame

__all__ = ["EXPERIMENT", "HEURISTICS", "WINDOWS", "Setup", "load_suite", "prepare", "run_compare", "run_plan",
           "run_simulate"]

EXPERIMENT = "closed-loop"
MODEL_URI = "models:/greenllm-forecaster/latest"
CONTROLLERS = ("mpc", "mpc-temperature-unaware", "myopic", *HEURISTICS)


@dataclass
class Setup:
    """Everything a closed-loop run on one window needs."""

    cfg: Config
    data: Dataset
    plant: PlantParams
    t0: pd.Timestamp
    steps: int
    horizon: int
    realised: ControlForecast
    window: str


def prepare(cfg: Config, window: str = "primary", steps: int | None = None, data: Dataset | None = None,
            plant: PlantParams | None = None) -> Setup:
    """The plant (sized on the recorded load unless given), and the realised inputs of a window
    (a name of ``WINDOWS`` or an ISO start time)."""
    if window in WINDOWS:
        start, length = WINDOWS[window]
    else:
        start, length = window, 72
    t0 = pd.Timestamp(start)
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
    steps = steps or length
    if steps < 1:
        raise ValueError(f"--steps: {steps}, at least 1")
    data = data or fleet_dataset(cfg)
    plant = plant or plant_for(cfg, data)
    H = cfg.control.horizon_steps
    realised = realised_inputs(data, plant, t0, steps + H)
    return Setup(cfg, data, plant, t0, steps, H, realised, window)


def load_suite(model_uri: str, control: ControlSettings) -> tuple[Any, str]:
    """A registered or saved forecaster suite and its local folder, checked against the control
    settings it will feed (horizon, provisioning quantile): a ``ConfigError`` names the value."""
    from forecast.models import ForecasterSuite
    from pipelines._tracking import resolve_model

    folder = resolve_model(model_uri)
    suite = ForecasterSuite.load(folder)
    try:
        suite.check_covers(control.horizon_steps, control.load_quantile)
    except ValueError as exc:
        raise ConfigError(f"{model_uri}: {exc}") from None
    return suite, str(folder)


def make_controller(name: str, s: Setup) -> Controller:
    """A controller by name (see ``CONTROLLERS``)."""
    plant, cfg = s.plant, s.cfg
    head = cfg.control.provision_headroom   # the one sizing rule's headroom, for every controller
    fb, reuse = CapacityProportional(plant, provision_headroom=head), cfg.control.max_plan_reuse_steps
    if name == "mpc":
        return MPCController(AllocationMPC(plant, cfg.control), fb, episode_steps=s.steps,
                             max_plan_reuse_steps=reuse, provision_headroom=head)
    if name == "mpc-temperature-unaware":
        mean_pue = annual_mean_pue(plant, s.data.wide("temp_c")[list(plant.site_names)].to_numpy())
        return temperature_unaware(plant, cfg.control, mean_pue, fb, episode_steps=s.steps,
                                   max_plan_reuse_steps=reuse, provision_headroom=head)
    if name == "myopic":
        return myopic(plant, cfg.control, fb, episode_steps=s.steps, provision_headroom=head)
    greedy = {"nearest-site": "nearest", "cheapest-price": "price", "lowest-carbon": "carbon"}
    if name in greedy:
        return GreedyController(plant, greedy[name], provision_headroom=head)  # type: ignore[arg-type]
    if name == "capacity-proportional":
        return fb
    raise ValueError(f"controller: {name!r}; valid: {', '.join(CONTROLLERS)}")


def burst_group_correlation(control: ControlSettings) -> float | None:
    """How the loop's burst factor is fitted: on region-group totals combined with the MPC's
    provision correlation when the MPC keeps group bursts, else on streams (None)."""
    if control.group_bursts and control.group_interactive_shares:
        return control.group_provision_correlation
    return None


@dataclass
class RunOutput:
    """One controller's closed-loop run."""

    name: str
    kpis: dict[str, float]
    sites: pd.DataFrame
    flows: pd.DataFrame
    per_step: pd.DataFrame   # ts × (cost_eur, co2_kg, …) for per-step metrics and cumulative plots
    forecaster: str
    episode: EpisodeResult


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="h", disable=not enabled, leave=False)


def _depends(s: Setup, controller_name: str, forecaster: str, lineage: dict[str, str] | None) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: config, data files, forecaster, run, code
    (``pipelines._checkpoint.depends_on``)."""
    return ckpt.depends_on(s.cfg.raw, s.cfg.scenario, controller_name, forecaster, s.t0.isoformat(), s.steps,
                           lineage)


def run_loop(s: Setup, controller_name: str, forecaster: str, suite: Any = None,
             show_progress: bool = True, checkpoint: Path | None = None, checkpoint_every: int = 0,
             resume: bool = False, observers: tuple[Any, ...] = (), lineage: dict[str, str] | None = None,
             force: bool = False) -> RunOutput:
    """One closed-loop episode of a controller with a forecaster (``perfect``, ``seasonal-naive``, ``learned``).

    With ``checkpoint`` and ``checkpoint_every = N``, the state, the steps so far and the
    controller's own state (its plan and the solver's warm start) are written every N steps to
    ``checkpoint`` (``pipelines._checkpoint``: one ``.npz``, no pickle, with what the run depends
    on); ``resume`` continues from that file to the result an uninterrupted run gives, and refuses
    a checkpoint of another run (a different code version only without ``force``). ``lineage``:
    the learned forecaster's ``forecaster_model_*`` entries (``_lineage``).
    """
    ctrl = make_controller(controller_name, s)
    fc_fn, note = forecaster_for(forecaster, s.data, s.plant, s.realised, s.t0, s.horizon,
                                 s.cfg.control.load_quantile, suite, s.cfg.control.burst_quantile,
                                 burst_group_correlation(s.cfg.control))
    state = PlantState.initial(s.plant, water_day=int(s.realised.day_index[0]))
    wanted = checkpoint is not None and (resume or checkpoint_every > 0)
    depends = _depends(s, controller_name, forecaster, lineage) if wanted else {}
    start, prior = 0, None
    if resume:
        if checkpoint is None:
            raise FileNotFoundError("--resume: no checkpoint file given")
        back = ckpt.load_checkpoint(checkpoint, depends, force)
        start, state = back.t, back.state
        prior = EpisodeResult(back.records, back.sources, state, 0.0, 0.0, back.timings)
        if back.controller is not None and hasattr(ctrl, "restore"):
            ctrl.restore(*back.controller)
        print(f"  resuming {controller_name} at step {start} of {s.steps} from {checkpoint}")
    done_records: list[StepRecord] = list(prior.records) if prior else []
    done_sources: list[str] = list(prior.sources) if prior else []
    done_timings: list[StepTiming] = list(prior.timings) if prior else []
    bar = _progress(s.steps, f"{controller_name} ({forecaster})", show_progress)
    bar.update(start)

    def tick(t: int, rec: Any, source: str, timing: Any, after: PlantState) -> None:
        bar.update(1)
        done_records.append(rec)
        done_sources.append(source)
        done_timings.append(timing)
        if checkpoint is not None and checkpoint_every > 0 and (t + 1) % checkpoint_every == 0:
            ckpt.save_checkpoint(checkpoint, depends, t + 1, after, done_records, done_sources,
                                 done_timings, ctrl.snapshot() if hasattr(ctrl, "snapshot") else None)

    try:
        ep = run_episode(s.plant, ctrl, s.realised, s.steps, state, fc_fn, observers=(tick, *observers),
                         start=start, prior=prior)
    except InvariantError as exc:   # the same defect, with the run and the hour named
        when = s.t0 + pd.Timedelta(hours=exc.step)
        raise InvariantError(f"{controller_name} ({forecaster}), {when:%Y-%m-%d %H:%M} UTC: {exc}", exc.step) from exc
    finally:
        bar.close()
    times = pd.date_range(s.t0, periods=s.steps, freq="1h")
    per_step = pd.DataFrame({
        "cost_eur": [r.cost_eur for r in ep.records], "energy_cost_eur": [r.energy_cost_eur for r in ep.records],
        "co2_kg": [r.carbon_kg for r in ep.records], "water_l": [r.water_l for r in ep.records],
        "grid_kw": [float(r.grid_kw.sum()) for r in ep.records],
        "dropped_req": [float(r.dropped_req.sum()) for r in ep.records],
        "forecast_ms": [t.forecast_s * 1e3 for t in ep.timings], "decide_ms": [t.decide_s * 1e3 for t in ep.timings],
        "plant_ms": [t.plant_s * 1e3 for t in ep.timings], **dispatch_columns(s.plant, ep),
        **fallback_columns(ctrl, s.steps)}, index=times)
    per_step.loc[per_step.index[-1], "cost_eur"] += ep.leftover_backlog_req * ep.drop_eur_per_request
    return RunOutput(controller_name, kpis(s.plant, ep, ctrl), site_frame(s.plant, ep, s.realised, s.t0),
                     flow_frame(s.plant, ep, s.t0), per_step, note, ep)


# ---------------------------------------------------------------------- tracking
def _log_run(out: RunOutput, s: Setup, params: dict[str, str], plot_dir: Path) -> None:
    import mlflow
    from mlflow.entities import Metric

    from pipelines._tracking import flatten, log_params

    log_params(flatten(s.cfg.raw, "config.") | params)
    mlflow.log_metrics({k: float(v) for k, v in out.kpis.items() if np.isfinite(v)})
    now = int(time.time() * 1000)
    metrics = [Metric(f"step.{col}", float(v), now, i) for col in ("cost_eur", "co2_kg", "water_l", "grid_kw",
                                                                    "dropped_req", "decide_ms")
               for i, v in enumerate(out.per_step[col].to_numpy())]
    metrics += [Metric("step.fallback", float(bool(used)), now, i) for i, used in enumerate(out.per_step["fallback"])]
    client = mlflow.MlflowClient()
    active = mlflow.active_run()
    if active is None:
        raise RuntimeError("_log_run: called outside an MLflow run")
    run_id = active.info.run_id
    for i in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[i:i + 900])
    with tempfile.TemporaryDirectory() as tmp:
        for name, frame in (("sites", out.sites), ("flows", out.flows), ("per_step", out.per_step)):
            frame.to_parquet(Path(tmp) / f"{name}.parquet")
        mlflow.log_artifacts(tmp, "tables")
    mlflow.log_text(yaml.safe_dump(s.cfg.raw, sort_keys=False), "config.yaml")
    title = f"{out.name} — {s.window} from {s.t0:%Y-%m-%d %H:%M} UTC"
    plot_dir.mkdir(parents=True, exist_ok=True)
    for fn, stem in ((plots.plot_allocation, "allocation"), (plots.plot_power, "grid_vs_renewables"),
                     (plots.plot_signals, "signals_and_load")):
        mlflow.log_artifact(str(fn(out.sites, plot_dir / f"{stem}.png", title)), "plots")


def _run_params(s: Setup, controller: str, forecaster: str, note: str, lineage: dict[str, str]) -> dict[str, str]:
    return {"controller": controller, "forecaster": forecaster, "forecaster_detail": note,
            "window": s.window, "window_start": s.t0.isoformat(), "steps": str(s.steps),
            "horizon": str(s.horizon), **lineage}


def _lineage(model_uri: str, folder: str) -> dict[str, str]:
    """The forecaster model's URI, registry version and MLflow run id (lineage)."""
    out = {"forecaster_model_uri": model_uri, "forecaster_model_path": folder}
    if model_uri.startswith("runs:/"):
        out["forecaster_model_run_id"] = model_uri[len("runs:/"):].split("/")[0]
    if model_uri.startswith("models:/"):
        import mlflow

        name, _, ver = model_uri[len("models:/"):].partition("/")
        client = mlflow.MlflowClient()
        try:
            versions = client.search_model_versions(f"name='{name}'")
            if ver == "latest" and versions:
                out["forecaster_model_version"] = str(max(int(v.version) for v in versions))
            elif ver:
                out["forecaster_model_version"] = ver
            if out.get("forecaster_model_version", "").isdigit():
                mv = client.get_model_version(name, out["forecaster_model_version"])
                out["forecaster_model_run_id"] = str(mv.run_id)
        except Exception:  # noqa: BLE001 — lineage is informative; the run still goes on
            pass
    return out


# ---------------------------------------------------------------------- commands
def _print_kpis(name: str, k: dict[str, float]) -> None:
    print(f"\n{name}")
    print(f"  cost {k['cost_eur']:.2f} EUR = energy {k['energy_cost_eur']:.2f} + drops {k['drop_penalty_eur']:.2f}"
          f" + SLO {k['slo_penalty_eur']:.2f} + water {k['water_penalty_eur']:.2f}"
          f" + starts {k['start_penalty_eur']:.3f}")
    print(f"  CO2 {k['co2_kg']:.1f} kg   water {k['water_l']:.0f} L (on-site {k['water_onsite_l']:.0f}, "
          f"off-site {k['water_offsite_l']:.0f})   energy IT {k['energy_it_kwh']:.0f} kWh, cooling "
          f"{k['energy_cooling_kwh']:.0f} kWh")
    print(f"  renewable share {k['renewable_share'] * 100:.1f} %, curtailed {k['curtailed_kwh']:.0f} kWh   "
          f"TTFT mean {k['ttft_mean_s']:.3f} s, p95 {k['ttft_p95_s']:.3f} s   SLO misses {k['slo_misses']:.0f}"
          f"   dropped {k['drops']:.0f}   deferred {k['deferred_req']:.0f}")
    print(f"  decision time per step: median {k['median_step_ms']:.0f} ms, p95 {k['p95_step_ms']:.0f} ms, "
          f"max {k['max_step_ms']:.0f} ms   fallback steps {k['fallback_steps']:.0f}")


def _forecaster_choice(forecaster: str) -> tuple[str, str]:
    """(kind, model URI) from the CLI value: perfect, seasonal-naive, or a model URI / folder."""
    if forecaster in ("perfect", "seasonal-naive"):
        return forecaster, ""
    return "learned", forecaster


def run_simulate(cfg: Config, controller: str = "mpc", forecaster: str = MODEL_URI, window: str = "primary",
                 steps: int | None = None, out_dir: Path = Path("out/simulate"), checkpoint_every: int = 0,
                 resume: bool = False, force: bool = False) -> dict[str, float]:
    """``greenllm simulate``: one closed-loop run, printed and tracked (checkpointed every N steps
    to ``out_dir/checkpoint.npz`` when asked; ``resume`` continues from it, ``force`` accepts a
    checkpoint written by another code version)."""
    from pipelines._tracking import start_run

    if force and not resume:
        raise ValueError("--force: only with --resume (it accepts a checkpoint of another code version)")

    kind, uri = _forecaster_choice(forecaster)
    suite, lineage = None, {}
    if kind == "learned":
        suite, folder = load_suite(uri, cfg.control)
        lineage = _lineage(uri, folder)
    s = prepare(cfg, window, steps)
    print(f"greenllm simulate: {controller} with {forecaster} forecasts, {s.steps} h from {s.t0:%Y-%m-%d %H:%M} UTC "
          f"({s.plant.n_sites} sites, {s.plant.n_pools} pools, H = {s.horizon})")
    with start_run(EXPERIMENT, f"{controller}-{kind}-{s.window}") as run:
        out = run_loop(s, controller, kind, suite, checkpoint=out_dir / "checkpoint.npz",
                       checkpoint_every=checkpoint_every, resume=resume, lineage=lineage, force=force)
        _log_run(out, s, _run_params(s, controller, kind, out.forecaster, lineage) | {"resumed": str(resume)},
                 out_dir)
        _print_kpis(f"{controller} ({out.forecaster})", out.kpis)
        for line in fallback_lines(out.per_step):
            print(line)
        print(f"\nMLflow run {run.info.run_id} in experiment '{EXPERIMENT}'; plots in {out_dir}/; "
              "browse with `greenllm ui`")
    return out.kpis


def compare_runs(cfg: Config, window: str, steps: int | None, model_uri: str | None,
                 show_progress: bool = True) -> tuple[Setup, dict[str, RunOutput], Reference, dict[str, str]]:
    """Every controller on identical data, and the hindsight references (``control.reference``)."""
    suite, lineage, main = None, {}, "seasonal-naive"
    if model_uri:
        suite, folder = load_suite(model_uri, cfg.control)
        lineage, main = _lineage(model_uri, folder), "learned"
    s = prepare(cfg, window, steps)
    runs: dict[str, RunOutput] = {}
    plan = [("mpc", main), ("mpc", "seasonal-naive"), ("mpc", "perfect"),
            ("mpc-temperature-unaware", main), ("myopic", main), *((h, main) for h in HEURISTICS)]
    seen = set()
    for ctrl, kind in plan:
        label = f"{ctrl} [{kind}]"
        if label in seen:
            continue
        seen.add(label)
        runs[label] = run_loop(s, ctrl, kind, suite, show_progress)
        print(f"  {label:42s} cost {runs[label].kpis['cost_eur']:10.2f} EUR", flush=True)
    state = PlantState.initial(s.plant, water_day=int(s.realised.day_index[0]))
    limit = cfg.control.solver_time_limit_s
    try:
        ref = hindsight_reference(s.plant, s.realised, s.steps, state, time_limit_s=limit,
                                  headroom=cfg.control.provision_headroom,
                                  milp_time_limit_s=cfg.control.milp_time_limit_s)
    except HindsightFailed as exc:
        raise ValueError(f"hindsight optimum of window {window} ({s.steps} h): the solver found no solution "
                         f"({exc.status}); with control.solver_time_limit_s = {limit:g} s per stage "
                         "(valid 1e-06 … 3600), a larger limit may let it finish") from None
    print(f"  {BOUND_ROW:42s} cost {ref.cost_bound_eur:10.2f} EUR ({ref.sub_steps} sub-steps per hour)\n"
          f"  {REF_ROW:42s} cost {ref.cost_ref_eur:10.2f} EUR (the {ref.ref_source}; replays: LP plan "
          f"{ref.lp_replay_eur:.2f}, LP with hourly shares {ref.shares_lp_replay_eur:.2f}, whole-GPU MILP "
          f"{ref.milp_replay_eur:.2f} EUR; MILP {ref.milp_status}, "
          f"gap {100 * ref.milp_gap:.2f} %{', stopped early' if ref.milp_stopped_early else ''}; "
          f"{ref.solve_s:.0f} s)", flush=True)
    return s, runs, ref, lineage


def run_compare(cfg: Config, window: str = "primary", steps: int | None = None,
                forecaster: str | None = MODEL_URI, out_dir: Path = Path("out/compare"),
                windows: bool = False) -> pd.DataFrame:
    """``greenllm compare``: all controllers on identical data, one table, plots; parent + child runs."""
    import mlflow

    from pipelines._tracking import start_run

    model_uri = forecaster if forecaster and forecaster not in ("seasonal-naive", "perfect") else None
    if model_uri:
        load_suite(model_uri, cfg.control)  # a missing model is an error before the parent run starts
    names = list(SECONDARY) if windows else [window]
    main = "learned" if model_uri else "seasonal-naive"
    tables, values = [], {}
    with start_run(EXPERIMENT, f"compare-{'secondary' if windows else window}") as parent:
        for w in names:
            print(f"greenllm compare: window {w}" + (f" ({steps} h)" if steps else ""))
            s, runs, ref, lineage = compare_runs(cfg, w, steps, model_uri)
            table = comparison_table(runs, ref, main, s.plant)
            table.insert(0, "window", w)
            tables.append(table)
            for label, out in runs.items():
                with mlflow.start_run(run_name=f"{label} {w}", nested=True,
                                      experiment_id=parent.info.experiment_id):
                    ctrl, kind = label.split(" [")
                    params = _run_params(s, ctrl, kind.rstrip("]"), out.forecaster, lineage)
                    _log_run(out, s, params, out_dir / w / label.replace(" ", "_").replace("[", "").replace("]", ""))
                    mlflow.log_metrics({k: float(v) for k, v in table.loc[label, list(MEASURES)].items()
                                        if np.isfinite(v)})
            series = {k: v.per_step for k, v in runs.items()}
            out_dir.mkdir(parents=True, exist_ok=True)
            mlflow.log_artifact(str(plots.plot_cumulative(series, out_dir / f"cumulative_{w}.png",
                                                          f"{w} from {s.t0:%Y-%m-%d}")), "plots")
            values[w] = reference_metrics(ref, runs, s, main)
            log_references(w, values[w], ref, len(names) == 1)
        full = pd.concat(tables)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "comparison.csv"
            full.to_csv(path)
            mlflow.log_artifact(str(path))
        mlflow.log_params({"windows": ",".join(names), "forecaster": model_uri or "seasonal-naive",
                           "steps": str(steps or "")})
        print_table(full, windows)
        print_references(values, main)
        print(f"\nMLflow parent run {parent.info.run_id} ('{EXPERIMENT}'), one child per controller; "
              f"plots in {out_dir}/. Browse with `greenllm ui`.")
    return full


def run_plan(cfg: Config, at: str, forecaster: str = MODEL_URI) -> dict[str, Any]:
    """``greenllm plan``: the allocation the MPC would apply in the hour starting at ``at``, and its plan."""
    kind, uri = _forecaster_choice(forecaster)
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
    plan, plant = result.plan, s.plant
    print(f"greenllm plan: hour starting {s.t0:%Y-%m-%d %H:%M} UTC, forecasts: {note}; status {result.status}, "
          f"{result.solve_time_s * 1e3:.0f} ms")
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
    terms = result.terms
    print(f"\nplan over {plan.horizon} h: energy {terms.energy_cost_eur:.2f} EUR, "
          f"penalties {terms.penalties_eur:.2f} EUR, "
          f"CO2 {terms.carbon_kg:.1f} kg, water {terms.water_l:.0f} L, backlog value {terms.terminal_eur:.2f} EUR")
    return {"share": share, "gpus": plan.gpus, "status": result.status, "terms": terms}

