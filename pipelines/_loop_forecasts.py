"""Forecasts for the closed loop: what the controller sees at step t, from data before t only.

``forecaster_for(kind, ...)`` returns ``t -> ControlForecast`` for the closed loop:

* ``perfect``: the realised signals (reads the future; the perfect-foresight reference).
* ``seasonal-naive``: every signal's value 24 h earlier (``forecast.baselines.SeasonalNaive``).
* ``models:/greenllm-forecaster-<scenario>-<tier>@champion`` (or another ``models:/``, ``runs:/…``,
  or a folder): the registered learned forecasters (``forecast.models.ForecasterSuite``); a signal
  the bundle does not forecast (e.g. the off-site water intensity) is filled by the seasonal-naive
  baseline, and the run says so.

This module wires config, data and models; turning a ``Forecast`` into the controller's
``ControlForecast`` (levels, burst and peak factors) is ``control.forecast_adapter``.

The MPC reads every site signal at the median (p50) and provisions GPUs for the load at the
configured quantile (``control.load_quantile``, one of the forecast's quantiles: the config load
checks it). It also keeps headroom for one stream's *burst* (``control.burst_quantile``), a level the forecasts
do not carry: it is extrapolated from each stream's spread, ``p50 + f · (p_q − p50)``, with ``f``
the split-conformal ``burst_quantile`` of the scores ``(y − p50) / (p_q − p50)`` of the same
forecaster on the ``TAIL_DAYS`` days before the episode (data before t0 only; for the primary
window these are the load model's validation days, never its training days). With the MPC's group
bursts (``control.group_bursts``) the scores are those of each region group's interactive class
totals, their spread combined as the MPC combines it (``control.group_provision_correlation``).

Decisions are hourly but the plant steps at the load's 10-min resolution, so GPUs are provisioned
for the hour's 10-min *peak*, not its mean: the fleet's peak factor (10-min max ÷ hourly mean of
the interactive streams' summed load), at the provisioning quantile (``control.load_quantile``)
over the hours of the load's training days (recorded days 0 … ``PEAK_TRAIN_DAYS`` − 1,
``Dataset.load_10min``), multiplies the provisioning and burst levels of the interactive streams
of learned and seasonal-naive forecasts (``fit_peak_factor``, ``dataset_peak_factor``) and travels
along as ``ControlForecast.load_peak_factor`` (the MPC combines the forecast spread without it); the
median stays the hourly mean. The perfect forecaster uses each hour's realised fleet peak factor instead and hands
the controllers the realised sub-steps (``ControlForecast.load_sub_req_per_s``), so that the
applied GPUs cover each pool's busiest realised 10-min window. Every controller reads the same
provisioning level through one sizing rule (``control.sizing.provision_gpus``).

With ``--refresh-every N`` (``pipelines.refresh``) the learned forecaster is re-fitted every N
hours, and ``forecast_parts`` refits both factors with it at the refresh time ``at``: the burst
factor on the ``TAIL_DAYS`` days before ``at`` (the refresh's validation days), the peak factor on
every recorded hour before ``at`` (``peak_before``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from control.forecast_adapter import (
    LOAD,
    PEAK_TRAIN_DAYS,
    TAIL_DAYS,
    control_forecast,
    fit_burst_factor,
    fit_peak_factor,
    interactive_streams,
    peak_provisioned,
)
from control.from_data import SITE_SIGNALS
from control.inputs import ControlForecast
from control.plant import PlantParams
from forecast.baselines import SeasonalNaive
from forecast.dataset import Dataset
from forecast.features import LOAD_10MIN
from forecast.models import ForecasterSuite
from forecast.output import Forecast

__all__ = ["LOAD", "PEAK_TRAIN_DAYS", "ForecastParts", "LoopForecaster", "control_forecast", "dataset_peak_factor",
           "fit_peak_factor", "forecast_parts", "forecaster_for", "history_of", "peak_provisioned",
           "window_forecaster"]

SIGNALS = (*SITE_SIGNALS, LOAD)
LoopForecaster = Callable[[int], ControlForecast]


def history_of(dataset: Dataset) -> dict[str, pd.DataFrame]:
    """``{signal: ts × series}`` of every signal the controller needs (the forecasters' input),
    with the 10-min load under ``LOAD_10MIN`` (what a learned load model reads)."""
    out = {s: dataset.wide(s) for s in SIGNALS}
    load_10min = getattr(dataset, "load_10min", None)
    if load_10min is not None:
        out[LOAD_10MIN] = load_10min
    return out


def _recorded_start(dataset: Dataset) -> dict[str, pd.Timestamp]:
    """Each load stream's first recorded hour (UTC)."""
    sig = dataset.signals
    sel = sig[(sig["signal"] == LOAD) & (sig["flag"] == "recorded")]
    return {str(k): pd.Timestamp(v) for k, v in sel.groupby("site")["ts"].min().items()}


def dataset_peak_factor(dataset: Dataset, plant: PlantParams, quantile: float,
                        before: pd.Timestamp | None = None) -> np.ndarray | None:
    """Per stream ``(R·K,)``: the fleet's peak factor (``fit_peak_factor`` of the summed load of
    the interactive streams, at ``quantile``) for interactive streams, 1 for deferrable ones; None
    when the dataset has no 10-min load. ``before``: fitted on every recorded hour before it (a
    refresh, ``pipelines.refresh``) instead of the load model's ``PEAK_TRAIN_DAYS`` training days.

    Fleet-wide because the dispatcher pools spare capacity: what one pool cannot take spills to
    the stream's other allowed pools, so the capacity to hold is the fleet total's 10-min peak, not
    the sum of each stream's own (on the default data, p90 1.26 for the total against 1.88 for the
    load-weighted streams'). Deferrable overflow waits in the backlog for a later sub-step."""
    load_10min = getattr(dataset, "load_10min", None)
    if load_10min is None:
        return None
    streams = [f"{r}/{k}" for r in plant.region_names for k in plant.class_names]
    inter = [s for s, i in zip(streams, interactive_streams(plant), strict=True) if i]
    if not inter:
        return np.ones(len(streams))
    start, days = _recorded_start(dataset), PEAK_TRAIN_DAYS
    if before is not None:   # every hour before ``before`` (whole hours: ``before`` is on the hour)
        load_10min = load_10min[load_10min.index < before]
        days = int(np.ceil((before - min(start[s] for s in inter)) / pd.Timedelta(days=1)))
    fleet = fit_peak_factor(load_10min, inter, start, quantile, train_days=max(days, 1),
                            group_of={s: "fleet" for s in inter})[0]
    return np.where(interactive_streams(plant), fleet, 1.0)


def _seasonal_suite(history: dict[str, pd.DataFrame], signals: tuple[str, ...],
                    before: pd.Timestamp) -> ForecasterSuite:
    """Seasonal naive 24 h; its residual quantiles are fitted on the rows before ``before`` only."""
    return ForecasterSuite({s: SeasonalNaive(s, 24).fit(history[s][history[s].index < before])
                            for s in signals})


_Predictor = Callable[[pd.Timestamp], Forecast]


def _perfect_forecaster(realised: ControlForecast, plant: PlantParams, horizon: int) -> tuple[LoopForecaster, str]:
    """The realised inputs as forecasts (GPUs for each hour's realised 10-min peak when there are sub-steps)."""
    seen = peak_provisioned(realised, plant)
    note = "perfect foresight (realised data" + (", GPUs for each hour's 10-min peak)" if seen is not realised
                                                 else ")")
    return window_forecaster(seen, horizon), note


def window_forecaster(known: ControlForecast, horizon: int) -> LoopForecaster:
    """``t -> ControlForecast``: ``known``'s next ``horizon`` steps from step t (fewer at its end)."""
    return lambda t: known.window(t, min(horizon, known.horizon - t))


def _signal_predictor(kind: str, history: dict[str, pd.DataFrame], t0: pd.Timestamp, horizon: int,
                      suite: ForecasterSuite | None) -> tuple[_Predictor, str]:
    """``at -> Forecast`` of every signal from the rows before ``at``, and its description; a signal
    the learned bundle lacks is forecast by the seasonal-naive baseline fitted before ``t0``."""
    extra: ForecasterSuite | None = None
    if kind == "seasonal-naive":
        models = _seasonal_suite(history, SIGNALS, t0)
        note = "seasonal naive 24 h, every signal"
    elif kind == "learned":
        if suite is None:
            raise ValueError("forecaster 'learned' needs the loaded ForecasterSuite")
        missing = tuple(s for s in SIGNALS if s not in suite.models and s != "wetbulb_c")
        if "wetbulb_c" not in suite.models and "temp_c" not in suite.models:
            missing = (*missing, "wetbulb_c")
        extra = _seasonal_suite(history, missing, t0) if missing else None
        models = suite
        note = "learned (registered)" + (f"; seasonal naive 24 h for {', '.join(missing)}" if missing else "")
    else:
        raise ValueError(f"forecaster: {kind!r}; valid: perfect, seasonal-naive, learned")

    def predict(at: pd.Timestamp) -> Forecast:
        fc = models.predict(history, at, horizon)
        if extra is not None:
            fc = fc.merged(extra.predict(history, at, horizon))
        return fc

    return predict, note


def _load_predictor(kind: str, history: dict[str, pd.DataFrame], t0: pd.Timestamp, horizon: int,
                    suite: ForecasterSuite | None) -> _Predictor:
    """``at -> Forecast`` of the load alone, by the model ``_signal_predictor`` uses for it: all the
    burst factor reads, without forecasting every other signal 48 times."""
    model = suite.models.get(LOAD) if kind == "learned" and suite is not None else None
    if model is None:
        model = SeasonalNaive(LOAD, 24).fit(history[LOAD][history[LOAD].index < t0])
    load = {key: history[key] for key in (LOAD, LOAD_10MIN) if key in history}   # a 10-min model reads the latter
    return lambda at: model.predict(load, at, horizon)


def _burst_factor(predict: _Predictor, history: dict[str, pd.DataFrame], plant: PlantParams, t0: pd.Timestamp,
                  load_quantile: float, burst_quantile: float | None,
                  group_correlation: float | None) -> tuple[np.ndarray | None, str]:
    """Per stream burst factor ``f`` (``fit_burst_factor``) and its note; None and "" without a burst level."""
    if burst_quantile is None:
        return None, ""
    factor = fit_burst_factor(predict, history[LOAD], plant, t0, load_quantile, burst_quantile,
                              group_correlation=group_correlation)
    on = "region-group totals" if group_correlation is not None else "streams"
    return factor, (f"; burst p{burst_quantile * 100:g} = p50 + f·(p{load_quantile * 100:g} − p50), "
                    f"f = {factor[0]:.2f} (split-conformal on the {TAIL_DAYS} days before t0, {on})")


def _peak_note(peak: np.ndarray | None, load_quantile: float) -> str:
    """How the interactive GPUs are scaled for the 10-min peak ("" without 10-min load)."""
    if peak is None:
        return ""
    return (f"; interactive GPUs for the 10-min peak: × {peak.max():.3f}, the fleet's p{load_quantile * 100:g} "
            f"of 10-min max ÷ hourly mean on the {PEAK_TRAIN_DAYS} training days")


@dataclass(frozen=True)
class ForecastParts:
    """What the loop's forecast is made of: ``predict(at)`` (every signal from the rows before
    ``at``), the burst and peak factors (``control.forecast_adapter``) and a one-line note."""

    predict: Callable[[pd.Timestamp], Forecast]
    burst_factor: np.ndarray | None
    peak_factor: np.ndarray | None
    note: str

    def control(self, at: pd.Timestamp, plant: PlantParams, load_quantile: float) -> ControlForecast:
        """The controller's forecast issued at ``at``."""
        return control_forecast(self.predict(at), plant, load_quantile, self.burst_factor, self.peak_factor)


def forecast_parts(kind: str, dataset: Dataset, plant: PlantParams, t0: pd.Timestamp, horizon: int,
                   load_quantile: float, suite: ForecasterSuite | None = None, burst_quantile: float | None = None,
                   group_correlation: float | None = None, history: dict[str, pd.DataFrame] | None = None,
                   peak_before: pd.Timestamp | None = None) -> ForecastParts:
    """The predictor and factors of a ``seasonal-naive`` or ``learned`` forecaster fitted on data
    before ``t0`` (``forecaster_for`` documents the arguments; ``history``: ``history_of(dataset)``
    when already built; ``peak_before``: the peak factor on every recorded hour before it)."""
    history = history if history is not None else history_of(dataset)
    predict, note = _signal_predictor(kind, history, t0, horizon, suite)
    factor, burst_note = _burst_factor(_load_predictor(kind, history, t0, horizon, suite), history, plant, t0,
                                       load_quantile, burst_quantile, group_correlation)
    peak = dataset_peak_factor(dataset, plant, load_quantile, peak_before)
    return ForecastParts(predict, factor, peak, note + burst_note + _peak_note(peak, load_quantile))


def forecaster_for(kind: str, dataset: Dataset, plant: PlantParams, realised: ControlForecast,
                   t0: pd.Timestamp, horizon: int, load_quantile: float,
                   suite: ForecasterSuite | None = None, burst_quantile: float | None = None,
                   group_correlation: float | None = None) -> tuple[LoopForecaster, str]:
    """The closed loop's ``t -> ControlForecast`` and a one-line description of it.

    Args:
        kind: ``perfect``, ``seasonal-naive`` or ``learned`` (then ``suite`` is the loaded bundle).
        dataset: the scenario's data (history; forecasters read rows before each step only).
        plant: the plant (site and stream order).
        realised: the realised inputs from ``t0`` (used by ``perfect`` only).
        t0: the episode's first hour (UTC).
        horizon: steps per forecast.
        load_quantile: the quantile GPUs are provisioned for.
        suite: the learned forecasters (``kind == "learned"``).
        burst_quantile: the burst level the MPC keeps headroom for (None: no burst reserve).
        group_correlation: fit the burst factor on region-group totals (``fit_burst_factor``).
    """
    if kind == "perfect":
        return _perfect_forecaster(realised, plant, horizon)
    parts = forecast_parts(kind, dataset, plant, t0, horizon, load_quantile, suite, burst_quantile,
                           group_correlation)

    def forecast(t: int) -> ControlForecast:
        return parts.control(t0 + pd.Timedelta(hours=t), plant, load_quantile)

    return forecast, parts.note
