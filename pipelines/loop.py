"""The closed loop on real data, shared by ``greenllm simulate``, ``compare`` and ``plan`` (DESIGN.md §5).

At step t a forecaster sees only data before t (``pipelines._loop_forecasts``), the controller
(``pipelines._controllers``) decides from the state and the forecast, and ``control.realised.step``
applies the decision to what really happened; every step is checked for request conservation,
power balance and capacity. ``log_run`` tracks a run in MLflow (through ``pipelines._tracking``):
params, the forecaster's lineage, per-step metrics, the KPI summary, the per-step tables as
parquet, the resolved config and plots.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from control.controllers import Controller
from control.from_data import fleet_dataset, plant_for, realised_inputs
from control.inputs import ControlForecast
from control.params import ControlSettings
from control.plant import PlantParams
from control.simulate import EpisodeResult, InvariantError, StepTiming, run_episode
from control.state import PlantState, StepRecord
from forecast.dataset import Dataset
from forecast.schema import ConfigError
from pipelines import _checkpoint as ckpt
from pipelines import _loop_plots as plots
from pipelines import _tracking as tracking
from pipelines import _tracking_registry as registry
from pipelines._args import WINDOWS
from pipelines._controllers import controller_state, make_controller, restore_state
from pipelines._loop_forecasts import LoopForecaster, forecaster_for
from pipelines._loop_report import dispatch_columns, fallback_columns, flow_frame, kpis, site_frame
from pipelines.config import Config

if TYPE_CHECKING:
    from pipelines.refresh import Refresher

__all__ = ["EXPERIMENT", "MODEL_URI", "RunOutput", "Setup", "burst_group_correlation", "champion_uri",
           "forecaster_choice", "load_suite", "log_run", "prepare", "run_loop", "run_params"]

EXPERIMENT = "closed-loop"
MODEL_URI = "champion"   # the scenario and load tier's registered forecaster under the alias champion
STEP_METRICS = ("cost_eur", "co2_kg", "water_l", "grid_kw", "dropped_req", "decide_ms")   # step.* in MLflow


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

    folder = registry.resolve_model(model_uri)
    suite = ForecasterSuite.load(folder)
    try:
        suite.check_covers(control.horizon_steps, control.load_quantile)
    except ValueError as exc:
        raise ConfigError(f"{model_uri}: {exc}") from None
    return suite, str(folder)


def burst_group_correlation(control: ControlSettings) -> float | None:
    """How the loop's burst factor is fitted: on region-group totals combined with the MPC's
    provision correlation when the MPC keeps group bursts, else on streams (None)."""
    if control.group_bursts and control.group_interactive_shares:
        return control.group_provision_correlation
    return None


def champion_uri(cfg: Config) -> str:
    """``models:/greenllm-forecaster-<scenario>-<tier>@champion``: the model in service for ``cfg``."""
    name = registry.model_name(cfg.scenario.name, cfg.scenario.data.resolved_load_tier())
    return f"models:/{name}@{registry.CHAMPION}"


def forecaster_choice(forecaster: str, cfg: Config) -> tuple[str, str]:
    """(kind, model URI) from the CLI value: perfect, seasonal-naive, ``champion`` (the config's
    scenario and load tier's model in service) or a model URI / folder."""
    if forecaster in ("perfect", "seasonal-naive"):
        return forecaster, ""
    return "learned", champion_uri(cfg) if forecaster == MODEL_URI else forecaster


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
    versions: pd.DataFrame | None = None    # with refresh: the forecaster version of each step
    refreshes: pd.DataFrame | None = None   # with refresh: one row per refresh (``pipelines.refresh``)


# ---------------------------------------------------------------------- one run
def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="h", disable=not enabled, leave=False)


def _depends(s: Setup, controller_name: str, forecaster: str, lineage: dict[str, str] | None) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: config, data files, forecaster, run, code
    (``pipelines._checkpoint.depends_on``)."""
    return ckpt.depends_on(s.cfg.raw, s.cfg.scenario, controller_name, forecaster, s.t0.isoformat(), s.steps,
                           lineage)


def _resume(ctrl: Controller, controller_name: str, steps: int, checkpoint: Path | None, depends: dict[str, Any],
            force: bool) -> tuple[int, PlantState, EpisodeResult]:
    """The first step to run, the state there and the steps before it, from ``checkpoint``; the
    controller continues from its saved state (``restore_state``)."""
    if checkpoint is None:
        raise FileNotFoundError("--resume: no checkpoint file given")
    back = ckpt.load_checkpoint(checkpoint, depends, force)
    prior = EpisodeResult(back.records, back.sources, back.state, 0.0, 0.0, back.timings)
    restore_state(ctrl, back.controller)
    print(f"  resuming {controller_name} at step {back.t} of {steps} from {checkpoint}")
    return back.t, back.state, prior


class _Recorder:
    """``run_episode``'s observer: advances the progress bar, keeps the steps so far, and writes the
    checkpoint every ``every`` steps with the controller's state (``controller_state``)."""

    def __init__(self, bar: Any, ctrl: Controller, path: Path | None, every: int, depends: dict[str, Any],
                 prior: EpisodeResult | None) -> None:
        self.bar, self.ctrl, self.path, self.every, self.depends = bar, ctrl, path, every, depends
        self.records: list[StepRecord] = list(prior.records) if prior else []
        self.sources: list[str] = list(prior.sources) if prior else []
        self.timings: list[StepTiming] = list(prior.timings) if prior else []

    def __call__(self, t: int, rec: StepRecord, source: str, timing: StepTiming, after: PlantState) -> None:
        self.bar.update(1)
        self.records.append(rec)
        self.sources.append(source)
        self.timings.append(timing)
        if self.path is not None and self.every > 0 and (t + 1) % self.every == 0:
            ckpt.save_checkpoint(self.path, self.depends, t + 1, after, self.records, self.sources, self.timings,
                                 controller_state(self.ctrl))


def _per_step(s: Setup, ep: EpisodeResult, ctrl: Controller) -> pd.DataFrame:
    """ts × (cost_eur, co2_kg, …, fallback): the last step's cost includes the backlog left at the
    episode end, priced as drops."""
    recs, times = ep.records, ep.timings
    per_step = pd.DataFrame({
        "cost_eur": [r.cost_eur for r in recs], "energy_cost_eur": [r.energy_cost_eur for r in recs],
        "co2_kg": [r.carbon_kg for r in recs], "water_l": [r.water_l for r in recs],
        "grid_kw": [float(r.grid_kw.sum()) for r in recs],
        "dropped_req": [float(r.dropped_req.sum()) for r in recs],
        "forecast_ms": [t.forecast_s * 1e3 for t in times], "decide_ms": [t.decide_s * 1e3 for t in times],
        "plant_ms": [t.plant_s * 1e3 for t in times], **dispatch_columns(s.plant, ep),
        **fallback_columns(ctrl, s.steps)}, index=pd.date_range(s.t0, periods=s.steps, freq="1h"))
    per_step.loc[per_step.index[-1], "cost_eur"] += ep.leftover_backlog_req * ep.drop_eur_per_request
    return per_step


def _loop_forecaster(s: Setup, forecaster: str, suite: Any, refresher: Refresher | None) -> tuple[Any, str]:
    """The loop's ``t -> ControlForecast`` and its note: the refresher's, or ``forecaster_for``'s."""
    if refresher is not None:
        return refresher.forecaster(), refresher.note()
    return forecaster_for(forecaster, s.data, s.plant, s.realised, s.t0, s.horizon, s.cfg.control.load_quantile,
                          suite, s.cfg.control.burst_quantile, burst_group_correlation(s.cfg.control))


def run_loop(s: Setup, controller_name: str, forecaster: str, suite: Any = None,
             show_progress: bool = True, checkpoint: Path | None = None, checkpoint_every: int = 0,
             resume: bool = False, observers: tuple[Any, ...] = (), lineage: dict[str, str] | None = None,
             force: bool = False, refresher: Refresher | None = None,
             forecast: LoopForecaster | None = None) -> RunOutput:
    """One closed-loop episode of a controller with a forecaster (``perfect``, ``seasonal-naive``, ``learned``).

    With ``checkpoint`` and ``checkpoint_every = N``, the state, the steps so far and the
    controller's own state (``pipelines._controllers.Resumable``: its plan and the solver's warm
    start) are written every N steps to ``checkpoint`` (``pipelines._checkpoint``: one ``.npz``, no
    pickle, with what the run depends on); ``resume`` continues from that file to the result an
    uninterrupted run gives, and refuses a checkpoint of another run (a different code version only
    without ``force``). ``lineage``: the learned forecaster's ``forecaster_model_*`` entries
    (``pipelines._tracking_registry.model_lineage``). ``refresher``: a learned forecaster re-fitted
    every N hours (``pipelines.refresh``); the output then names the version of each step.
    ``forecast``: a ``t -> ControlForecast`` of the caller's instead of ``forecaster``'s (which then
    only names it), e.g. a bench's oracle.
    """
    ctrl = make_controller(controller_name, s)
    refresher = refresher if forecaster == "learned" else None
    fc_fn, note = (forecast, forecaster) if forecast is not None else _loop_forecaster(s, forecaster, suite,
                                                                                        refresher)
    state = PlantState.initial(s.plant, water_day=int(s.realised.day_index[0]))
    wanted = checkpoint is not None and (resume or checkpoint_every > 0)
    depends = _depends(s, controller_name, forecaster, lineage) if wanted else {}
    start, prior = 0, None
    if resume:
        start, state, prior = _resume(ctrl, controller_name, s.steps, checkpoint, depends, force)
    bar = _progress(s.steps, f"{controller_name} ({forecaster})", show_progress)
    bar.update(start)
    recorder = _Recorder(bar, ctrl, checkpoint, checkpoint_every, depends, prior)
    try:
        ep = run_episode(s.plant, ctrl, s.realised, s.steps, state, fc_fn, observers=(recorder, *observers),
                         start=start, prior=prior)
    except InvariantError as exc:   # the same defect, with the run and the hour named
        when = s.t0 + pd.Timedelta(hours=exc.step)
        raise InvariantError(f"{controller_name} ({forecaster}), {when:%Y-%m-%d %H:%M} UTC: {exc}", exc.step) from exc
    finally:
        bar.close()
    versions, refreshes = (refresher.versions_table(), refresher.refresh_table()) if refresher else (None, None)
    return RunOutput(controller_name, kpis(s.plant, ep, ctrl), site_frame(s.plant, ep, s.realised, s.t0),
                     flow_frame(s.plant, ep, s.t0), _per_step(s, ep, ctrl), note, ep, versions, refreshes)


# ---------------------------------------------------------------------- tracking
def run_params(s: Setup, controller: str, forecaster: str, note: str, lineage: dict[str, str]) -> dict[str, str]:
    """The MLflow params of one run (besides the resolved config)."""
    return {"controller": controller, "forecaster": forecaster, "forecaster_detail": note,
            "window": s.window, "window_start": s.t0.isoformat(), "steps": str(s.steps),
            "horizon": str(s.horizon), **lineage}


def log_run(out: RunOutput, s: Setup, params: dict[str, str], plot_dir: Path) -> None:
    """One run into the active MLflow run: the config (``config.*``) and ``params``, the KPIs, the
    per-step metrics ``step.*``, the tables (parquet), ``config.yaml`` and the plots (also in ``plot_dir``)."""
    tracking.log_params(tracking.flatten(s.cfg.raw, "config.") | params)
    registry.link_model(params)   # tags naming the forecaster's model, version and training run
    tracking.log_metrics({k: float(v) for k, v in out.kpis.items() if np.isfinite(v)})
    series: dict[str, Any] = {f"step.{col}": out.per_step[col].to_numpy() for col in STEP_METRICS}
    series["step.fallback"] = [float(bool(used)) for used in out.per_step["fallback"]]
    tracking.log_step_metrics(series)
    tables = {"sites": out.sites, "flows": out.flows, "per_step": out.per_step}
    if out.versions is not None and out.refreshes is not None:   # which forecaster version decided each step
        tables |= {"forecaster_versions": out.versions, "refreshes": out.refreshes}
        tracking.log_metrics({"refreshes": float(len(out.refreshes)),
                              "refresh_s": float(out.refreshes["refit_s"].sum()) if len(out.refreshes) else 0.0})
    with tempfile.TemporaryDirectory() as tmp:
        for name, frame in tables.items():
            frame.to_parquet(Path(tmp) / f"{name}.parquet")
        tracking.log_artifacts(tmp, "tables")
    tracking.log_text(yaml.safe_dump(s.cfg.raw, sort_keys=False), "config.yaml")
    title = f"{out.name} — {s.window} from {s.t0:%Y-%m-%d %H:%M} UTC"
    plot_dir.mkdir(parents=True, exist_ok=True)
    for fn, stem in ((plots.plot_allocation, "allocation"), (plots.plot_power, "grid_vs_renewables"),
                     (plots.plot_signals, "signals_and_load")):
        tracking.log_artifact(fn(out.sites, plot_dir / f"{stem}.png", title), "plots")
