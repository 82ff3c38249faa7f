"""Forecasts for the closed loop: what the controller sees at step t, from data before t only.

``forecaster_for(kind, ...)`` returns ``t -> ControlForecast`` for the closed loop:

* ``perfect``: the realised signals (reads the future; the perfect-foresight reference).
* ``seasonal-naive``: every signal's value 24 h earlier (``forecast.baselines.SeasonalNaive``).
* ``models:/greenllm-forecaster/latest`` (or ``runs:/…``, or a folder): the registered learned
  forecasters (``forecast.models.ForecasterSuite``); a signal the bundle does not forecast (e.g.
  the off-site water intensity) is filled by the seasonal-naive baseline, and the run says so.

The MPC reads every site signal at the median (p50) and provisions GPUs for the load at the
configured quantile (``control.load_quantile``, nearest quantile the forecast has).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from control.from_data import SITE_SIGNALS
from control.inputs import ControlForecast
from control.plant import PlantParams
from forecast.baselines import SeasonalNaive
from forecast.dataset import Dataset
from forecast.models import ForecasterSuite
from forecast.output import Forecast

__all__ = ["LOAD", "LoopForecaster", "control_forecast", "forecaster_for", "history_of"]

LOAD = "load_req_per_s"
SIGNALS = (*SITE_SIGNALS, LOAD)
_DAY = pd.Timedelta(days=1)
LoopForecaster = Callable[[int], ControlForecast]


def history_of(dataset: Dataset) -> dict[str, pd.DataFrame]:
    """``{signal: ts × series}`` of every signal the controller needs (the forecasters' input)."""
    return {s: dataset.wide(s) for s in SIGNALS}


def _nearest_q(fc: Forecast, q: float) -> float:
    return min(fc.quantiles, key=lambda level: abs(level - q))


def control_forecast(fc: Forecast, plant: PlantParams, load_quantile: float) -> ControlForecast:
    """The MPC's inputs from a quantile forecast: p50 site signals; load at p50 and at the quantile.

    Raises:
        KeyError: a signal or a site/stream the plant needs is missing from the forecast.
    """
    H = fc.horizon
    med = fc.quantile(_nearest_q(fc, 0.5))
    arrays = {}
    for name in SITE_SIGNALS:
        if name not in med:
            raise KeyError(f"forecast has no {name}; it has {sorted(med)}")
        cols = [fc.series[name].index(s) for s in plant.site_names]
        arrays[name] = med[name][:, cols]
    streams = [f"{r}/{k}" for r in plant.region_names for k in plant.class_names]
    cols = [fc.series[LOAD].index(s) for s in streams]
    shape = (H, len(plant.region_names), len(plant.class_names))
    load = np.maximum(med[LOAD][:, cols], 0.0).reshape(shape)
    prov = np.maximum(fc.quantile(_nearest_q(fc, load_quantile))[LOAD][:, cols], 0.0).reshape(shape)
    days = ((fc.timestamps - pd.Timestamp("1970-01-01", tz="UTC")) // _DAY).to_numpy().astype(int)
    return ControlForecast(**arrays, load_req_per_s=load, load_provision_req_per_s=np.maximum(prov, load),
                           day_index=days).validate(plant)


def _seasonal_suite(history: dict[str, pd.DataFrame], signals: tuple[str, ...],
                    before: pd.Timestamp) -> ForecasterSuite:
    """Seasonal naive 24 h; its residual quantiles are fitted on the rows before ``before`` only."""
    return ForecasterSuite({s: SeasonalNaive(s, 24).fit(history[s][history[s].index < before])
                            for s in signals})


def forecaster_for(kind: str, dataset: Dataset, plant: PlantParams, realised: ControlForecast,
                   t0: pd.Timestamp, horizon: int, load_quantile: float,
                   suite: ForecasterSuite | None = None) -> tuple[LoopForecaster, str]:
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
    """
    if kind == "perfect":
        return (lambda t: realised.window(t, min(horizon, realised.horizon - t))), "perfect foresight (realised data)"
    history = history_of(dataset)
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

    def forecast(t: int) -> ControlForecast:
        at = t0 + pd.Timedelta(hours=t)
        fc = models.predict(history, at, horizon)
        if kind == "learned" and extra is not None:
            fc = fc.merged(extra.predict(history, at, horizon))
        return control_forecast(fc, plant, load_quantile)

    return forecast, note
