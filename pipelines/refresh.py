"""Refresh in the loop (``greenllm simulate|compare --refresh-every N``): every N hours of a closed-loop
episode the learned forecaster is re-fitted on the data before that hour, and the loop goes on with it.

At each refresh time ``at = t0 + k·N h`` (k = 1, 2, …; the model in service at ``t0`` is the one
given) the learned models of ``REFRESH_SIGNALS`` are warm-started from the weights in service
(``forecast.refresh.warm_refit``: ``REFRESH_EPOCHS`` epochs at most, Lightning as ``train_net``) on
data strictly before ``at``. By default that is the load model only: the load is what the headroom
factors are fitted on, and the primary window is the load's first days after its training and
validation days, while the grid and weather models (trained on a year, to September; 12–48 s per
signal and epoch at fleet scale on 2 shared cores, the load model 28 s) are refreshed by
``greenllm train``; the other models stay as they are. Of the rows before
``at``, the last ``VALID_H`` hours validate (the choice of weights and the interval calibration),
the rows before them train. Load is read as the load model is trained: recorded values only
(``forecast.splits``), never the resampled hours. With the refit, the loop's headroom factors
refit on the same data: the burst factor (split-conformal on the ``TAIL_DAYS`` days before
``at``, i.e. the refresh's validation days, with the refreshed model) and the fleet's 10-min
peak factor (every recorded hour before ``at``); see ``pipelines._loop_forecasts``.

Each refresh is registered as a new version of the parent's registered model (``register_refresh``)
whose tags and description name its lineage: the parent version, the refresh time and the last
hour of data read. The alias ``champion`` is never moved by a refresh: promotion stays
``greenllm train``'s decision (``pipelines._champion``). The control run records which version
decided each step (``versions_table``, logged as ``tables/forecaster_versions.parquet``) and every
refresh (``refresh_table``, ``tables/refreshes.parquet``).

The interval to use is 24 h (the flag is off by default): on the primary window it lowered the
MPC's cost on every load tier with no drops (m-large −6.7 %, m-mid −0.1 %, small −5.3 %), each
refresh adding one whole day of recorded load (bench/results/closed_loop.md, section 5).

Refresh runs only on windows with recorded load (the primary window, 14–16 Dec 2018): on the
secondary and July windows the load is resampled from the load model's training days, so a
refresh there would train on its own test data; ``check_refresh`` refuses them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from control.forecast_adapter import TAIL_DAYS
from control.inputs import ControlForecast
from forecast.dataset import Dataset
from forecast.models import ForecasterSuite, LearnedForecaster
from forecast.refresh import warm_refit
from forecast.splits import split_signal
from pipelines._loop_forecasts import LOAD, ForecastParts, LoopForecaster, forecast_parts, history_of
from pipelines.config import Config
from pipelines.loop import Setup, burst_group_correlation

__all__ = ["REFRESH_EPOCHS", "REFRESH_SIGNALS", "VALID_H", "RefreshRecord", "Refresher", "check_refresh",
           "check_refresh_every", "refit_suite", "register_refresh", "tracked_refresher", "training_frames"]

REFRESH_EPOCHS = 3             # warm-start epochs per refresh (each ≤ forecast.batches_per_epoch batches)
REFRESH_SIGNALS = (LOAD,)      # the models a refresh re-fits (the module docstring says why)
VALID_H = TAIL_DAYS * 24       # hours before a refresh that validate it (= the burst factor's tail days)


@dataclass(frozen=True)
class RefreshRecord:
    """One refresh: when, from which version to which, what it cost and what it changed."""

    index: int                 # 1, 2, … in the episode
    at: pd.Timestamp           # refresh time (UTC); only data strictly before it was read
    parent: str                # the version it descends from (e.g. "v5", or the parent's URI)
    version: str               # the refreshed version ("v6"; "refresh-1" when not registered)
    model_uri: str
    refit_s: float             # seconds for the refit and the factors (registration excluded)
    burst_factor: float        # the loop's burst factor after the refresh (NaN: no burst level)
    peak_factor: float         # the fleet's 10-min peak factor after the refresh (NaN: none)
    losses: dict[str, dict[str, float]] = field(default_factory=dict)   # signal → refresh_* report

    @property
    def data_end(self) -> pd.Timestamp:
        """The last hour read (the hour before ``at``)."""
        return self.at - pd.Timedelta(hours=1)


# Registers a refreshed suite: (suite, record without version) -> (version label, model URI).
Register = Callable[[ForecasterSuite, RefreshRecord], tuple[str, str]]


def _recorded_span(dataset: Dataset) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(latest first recorded hour, earliest last recorded hour) over the load streams: the hours
    on which every stream's load is recorded."""
    sig = dataset.signals
    sel = sig[(sig["signal"] == LOAD) & (sig["flag"] == "recorded")].groupby("site")["ts"]
    return pd.Timestamp(sel.min().max()), pd.Timestamp(sel.max().min())


def check_refresh_every(every_h: int | None, steps: int, kind: str) -> None:
    """``--refresh-every``'s checks that need no data: 1 ≤ N ≤ the episode's hours, a learned forecaster.

    Raises:
        ValueError: naming the flag, the value and what is accepted.
    """
    if every_h is None:
        return
    if not 1 <= every_h <= steps:
        raise ValueError(f"--refresh-every {every_h}: out of range; valid: a whole number of hours from 1 to the "
                         f"episode's length ({steps} h)")
    if kind != "learned":
        raise ValueError(f"--refresh-every {every_h}: a refresh re-fits a learned forecaster, and this run's is "
                         f"{kind}; give --forecaster champion, a models:/ URI or a bundle folder")


def check_refresh(every_h: int | None, steps: int, kind: str, dataset: Dataset, t0: pd.Timestamp) -> None:
    """``check_refresh_every``, and an episode on recorded load: its start and every refresh time
    inside the hours recorded on every stream.

    Raises:
        ValueError: naming the flag, the value and what is accepted.
    """
    check_refresh_every(every_h, steps, kind)
    if every_h is None:
        return
    first, last = _recorded_span(dataset)
    last_at = t0 + pd.Timedelta(hours=(steps - 1) // every_h * every_h)
    if not (first <= t0 <= last and last_at <= last + pd.Timedelta(hours=1)):
        raise ValueError(f"--refresh-every {every_h}: the episode from {t0:%Y-%m-%d %H:%M} UTC is not on recorded "
                         f"load (recorded on every stream {first:%Y-%m-%d %H:%M} … {last:%Y-%m-%d %H:%M} UTC); "
                         "elsewhere the load is resampled from the load model's training days, so a refresh "
                         "would train on its own test data. Refresh runs on the primary window only "
                         "(--window primary, or a start inside the recorded days)")


def training_frames(dataset: Dataset, cfg: Config, steps: dict[str, pd.Timedelta]) -> dict[str, pd.DataFrame]:
    """Per signal, the wide frame a refit reads (ts × the model's training series, at the model's
    input step ``steps[signal]``): load as the load model is trained (per-client series and streams,
    recorded values only, NaN elsewhere; 10-min rows for a 10-min load model), grid and weather
    signals as they are."""
    out = {}
    for sig, step in steps.items():
        split = split_signal(dataset, cfg.scenario, sig, cfg.forecast)
        frame = split.frame_at(step)
        sub = len(frame) // len(split.full)
        out[sig] = frame.where(np.repeat(split.labels >= 0, sub, axis=0))
    return out


def refit_suite(suite: ForecasterSuite, frames: dict[str, pd.DataFrame], at: pd.Timestamp,
                epochs: int = REFRESH_EPOCHS, progress: bool = False) -> tuple[ForecasterSuite, dict]:
    """``suite`` with each learned model that has a frame warm-started on the rows before ``at``
    (``VALID_H`` hours validate, the earlier rows train); other models are kept. Returns the new
    suite and each refitted signal's ``fit_report``."""
    models, report = dict(suite.models), {}
    valid_from = at - pd.Timedelta(hours=VALID_H)
    for sig, model in suite.models.items():
        if not isinstance(model, LearnedForecaster) or sig not in frames:
            continue
        seen = frames[sig][frames[sig].index < at]
        new = warm_refit(model, seen[seen.index < valid_from], seen, epochs=epochs, progress=progress)
        models[sig], report[sig] = new, dict(new.fit_report)
    return ForecasterSuite(models, suite.vapour_pressure_hpa), report


def _first(factor: np.ndarray | None) -> float:
    return float(np.max(factor)) if factor is not None else float("nan")


class Refresher:
    """The refreshed forecasters of one episode, built lazily in order and shared by every run
    of the episode (``compare``'s learned controllers see the same versions; each refresh is
    fitted and registered once).

    Args:
        s: the episode (``pipelines.loop.Setup``).
        suite: the learned forecasters in service at the episode start.
        every_h: hours between refreshes.
        parent: the starting version's label (e.g. "v5", or its URI).
        register: registers a refreshed suite (None: not registered; versions "refresh-k").
        epochs: warm-start epochs per refresh.
        say: where progress lines go (default ``print``).
        signals: the models re-fitted (those the suite has); the others stay as they are.
    """

    def __init__(self, s: Setup, suite: ForecasterSuite, every_h: int, parent: str,
                 register: Register | None = None, epochs: int = REFRESH_EPOCHS,
                 say: Callable[[str], None] = print, signals: tuple[str, ...] = REFRESH_SIGNALS) -> None:
        self.s, self.every_h, self.register, self.epochs, self.say = s, every_h, register, epochs, say
        self.signals = tuple(sig for sig in signals if sig in suite.models)
        self.history = history_of(s.data)
        self._frames: dict[str, pd.DataFrame] | None = None
        self.suites = [suite]
        self.parts = [self._parts(suite, s.t0, None)]
        self.labels = [parent]
        self.records: list[RefreshRecord] = []

    def _parts(self, suite: ForecasterSuite, at: pd.Timestamp, peak_before: pd.Timestamp | None) -> ForecastParts:
        c = self.s.cfg.control
        return forecast_parts("learned", self.s.data, self.s.plant, at, self.s.horizon, c.load_quantile, suite,
                              c.burst_quantile, burst_group_correlation(c), self.history, peak_before)

    def _refresh(self) -> None:
        """The next refresh: refit the latest suite on data before its time, refit the factors, register."""
        k = len(self.suites)
        at = self.s.t0 + pd.Timedelta(hours=k * self.every_h)
        if self._frames is None:
            models = self.suites[-1].models
            self._frames = training_frames(self.s.data, self.s.cfg, {sig: models[sig].input_step for sig in self.signals
                                                                     if isinstance(models.get(sig), LearnedForecaster)})
        self.say(f"  refresh {k} at {at:%Y-%m-%d %H:%M} UTC: warm start of {self.labels[-1]}'s "
                 f"{', '.join(self.signals)} on data before it (≤ {self.epochs} epochs) …")
        began = time.perf_counter()
        suite, report = refit_suite(self.suites[-1], self._frames, at, self.epochs)
        parts = self._parts(suite, at, at)
        record = RefreshRecord(k, at, self.labels[-1], f"refresh-{k}", "", time.perf_counter() - began,
                               _first(parts.burst_factor), _first(parts.peak_factor), report)
        if self.register is not None:
            version, uri = self.register(suite, record)
            record = RefreshRecord(k, at, record.parent, version, uri, record.refit_s, record.burst_factor,
                                   record.peak_factor, report)
        self.suites.append(suite)
        self.parts.append(parts)
        self.labels.append(record.version)
        self.records.append(record)
        self.say(_summary(record, self.records[-2] if k > 1 else None, self.parts[0]))

    def parts_at(self, t: int) -> ForecastParts:
        """The forecast parts in service at step ``t`` (refreshing up to it when not yet done)."""
        k = t // self.every_h
        while len(self.suites) <= k:
            self._refresh()
        return self.parts[k]

    def forecaster(self) -> LoopForecaster:
        """The closed loop's ``t -> ControlForecast`` with the version in service at each step."""
        s = self.s

        def forecast(t: int) -> ControlForecast:
            return self.parts_at(t).control(s.t0 + pd.Timedelta(hours=t), s.plant, s.cfg.control.load_quantile)

        return forecast

    def note(self) -> str:
        return (f"{self.parts[0].note}; {', '.join(self.signals)} refreshed every {self.every_h} h "
                f"(warm start, ≤ {self.epochs} epochs)")

    def versions_table(self) -> pd.DataFrame:
        """Per step: its hour, the version that forecast it and that version's model URI."""
        k = [min(t // self.every_h, len(self.labels) - 1) for t in range(self.s.steps)]
        uris = [""] + [r.model_uri for r in self.records]
        return pd.DataFrame({"step": range(self.s.steps), "forecaster_version": [self.labels[i] for i in k],
                             "model_uri": [uris[i] for i in k], "refresh": k},
                            index=pd.date_range(self.s.t0, periods=self.s.steps, freq="1h", name="ts"))

    def refresh_table(self) -> pd.DataFrame:
        """One row per refresh: time, data end, parent, version, seconds, factors, losses."""
        rows = []
        for r in self.records:
            row = {"refresh": r.index, "at": r.at, "data_end": r.data_end, "parent": r.parent, "version": r.version,
                   "model_uri": r.model_uri, "refit_s": r.refit_s, "burst_factor": r.burst_factor,
                   "peak_factor": r.peak_factor}
            for sig, rep in r.losses.items():
                row |= {f"{sig}.{k.removeprefix('refresh_')}": float(v) for k, v in rep.items()
                        if k.startswith("refresh_")}
            rows.append(row)
        return pd.DataFrame(rows)


def _summary(r: RefreshRecord, before: RefreshRecord | None, first: ForecastParts) -> str:
    """One progress line per refresh: validation losses, factors, time, the version registered."""
    losses = ", ".join(f"{sig.split('_')[0]} {rep['refresh_start_val_loss']:.4f} → {rep['refresh_best_val_loss']:.4f}"
                       for sig, rep in r.losses.items())
    burst0 = before.burst_factor if before else _first(first.burst_factor)
    peak0 = before.peak_factor if before else _first(first.peak_factor)
    return (f"  refresh {r.index} done in {r.refit_s:.1f} s: validation pinball {losses}; burst factor "
            f"{burst0:.2f} → {r.burst_factor:.2f}, peak factor {peak0:.3f} → {r.peak_factor:.3f}; "
            f"{r.version} (parent {r.parent}, data to {r.data_end:%Y-%m-%d %H:%M} UTC)")


def register_refresh(name: str, scenario: str) -> Register:
    """A ``Register`` that logs a refreshed suite into the active MLflow run as a new version of
    ``name``, tagged and described with its lineage (``refresh.parent_version``, ``refresh.at``,
    ``refresh.data_end``, ``train_end.<signal>``); the alias ``champion`` stays where it is."""
    from pipelines import _tracking_registry as registry

    def register(suite: ForecasterSuite, r: RefreshRecord) -> tuple[str, str]:
        parent = r.parent.removeprefix("v") if r.parent.startswith("v") and r.parent[1:].isdigit() else r.parent
        tags = {"refresh.parent_version": parent, "refresh.at": r.at.isoformat(),
                "refresh.data_end": r.data_end.isoformat(), "refresh.index": str(r.index),
                "refresh.epochs_max": str(REFRESH_EPOCHS), "refresh.signals": ",".join(r.losses),
                "scenario": scenario}
        tags |= {f"train_end.{sig}": (r.at - pd.Timedelta(hours=VALID_H + 1)).isoformat() for sig in r.losses}
        text = (f"Refresh {r.index} of version {parent} at {r.at:%Y-%m-%d %H:%M} UTC: warm start of "
                f"{', '.join(r.losses)} on data up to "
                f"{r.data_end:%Y-%m-%d %H:%M} UTC (the last {VALID_H} h validate). Not the champion: a refresh "
                "never moves the alias.")
        with tempfile.TemporaryDirectory(prefix="greenllm-refresh-") as tmp:
            reg = registry.log_forecaster(suite.save(Path(tmp) / "bundle"), name, tags,
                                          logged_name=f"forecaster-refresh-{r.index}", description=text)
        return f"v{reg.version}", reg.model_uri

    return register


def tracked_refresher(s: Setup, suite: ForecasterSuite, every_h: int, lineage: dict[str, str]) -> Refresher:
    """A ``Refresher`` that registers each refresh as a new version of the parent's registered
    model (``lineage``: ``pipelines._tracking_registry.model_lineage``; a parent given as a folder
    or ``runs:/`` URI: the config's ``greenllm-forecaster-<scenario>-<tier>``), and says so."""
    from pipelines import _tracking_registry as registry

    scenario = s.cfg.scenario
    name = lineage.get("forecaster_model_name") or registry.model_name(scenario.name,
                                                                       scenario.data.resolved_load_tier())
    version = lineage.get("forecaster_model_version")
    parent = f"v{version}" if version else lineage.get("forecaster_model_uri", "the given forecaster")
    count = (s.steps - 1) // every_h
    print(f"refresh every {every_h} h: {count} refresh{'es' if count != 1 else ''} in {s.steps} h, each registered "
          f"as a new version of {name} (lineage from {parent}; the alias champion is not moved)")
    return Refresher(s, suite, every_h, parent, register_refresh(name, scenario.name))
