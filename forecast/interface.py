"""The one interface every forecaster follows (learned models and baselines alike).

* ``fit(history, validation=None) -> self`` — ``history`` a wide frame (index ``ts``, UTC; columns
  series) holding the training period (NaN elsewhere); ``validation`` the same with the validation
  targets added (learned models only use it, for early stopping).
* ``predict(history, t0, horizon) -> Forecast`` — reads only rows with ``ts < t0``; step 0 covers
  ``[t0, t0 + step)``. ``history`` is ``{signal: wide frame}``, a long table or, for one signal,
  a wide frame.
* ``predict_windows(values, times, origins, horizon)`` — the batched core used by both ``predict``
  and the evaluation: ``values (T, n_series)`` at ``times``, at the forecaster's ``input_step``
  (the forecast step unless its inputs are finer, as the 10-min load); window ``i`` is issued at
  position ``origins[i]`` (of ``values``) and reads ``values[:origins[i]]`` only (except the
  oracle, which says so in its name). Returns ``(N, horizon, n_series, n_quantiles)`` in the
  signal's unit, clipped to the signal's physical range.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.features import as_history, lookback_frame
from forecast.output import DEFAULT_QUANTILES, Forecast
from forecast.schema import SIGNALS

__all__ = ["Forecaster", "STEP"]

STEP = pd.Timedelta(hours=1)


class Forecaster:
    """Base class: subclasses set ``name``, ``lookback_steps`` and implement ``_windows``."""

    name = "forecaster"
    reads_future = False

    def __init__(self, signal: str, step: pd.Timedelta = STEP,
                 quantiles: tuple[float, ...] = DEFAULT_QUANTILES) -> None:
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}; valid: {sorted(SIGNALS)}")
        self.signal = signal
        self.step = step
        self.quantiles = tuple(quantiles)
        self.series: tuple[str, ...] = ()
        self.lookback_steps = 1
        # What ``predict`` reads: ``history[input_key]`` at ``input_step`` (a learned load model
        # reads the 10-min load, ``forecast.features.LOAD_10MIN``; look-back counted in input steps).
        self.input_key = signal
        self.input_step = step

    @property
    def history_steps(self) -> int:
        """Rows before the issue time that ``predict`` reads when the history has them (at least
        ``lookback_steps``)."""
        return self.lookback_steps

    def fit(self, history: pd.DataFrame, validation: pd.DataFrame | None = None) -> Forecaster:
        """Learn from the training period (series are the history's columns)."""
        self.series = tuple(str(c) for c in history.columns)
        return self

    def _check_fitted(self) -> None:
        if not self.series:
            raise RuntimeError(f"{self.name} forecaster for {self.signal}: call fit() before predict()")

    def _windows(self, values: np.ndarray, times: pd.DatetimeIndex, origins: np.ndarray,
                 horizon: int) -> np.ndarray:
        raise NotImplementedError

    def predict_windows(self, values: np.ndarray, times: pd.DatetimeIndex, origins: np.ndarray,
                        horizon: int) -> np.ndarray:
        """Quantile forecasts ``(N, horizon, n_series, n_quantiles)`` issued at ``origins``."""
        self._check_fitted()
        if horizon < 1:
            raise ValueError(f"horizon must be ≥ 1 step, got {horizon}")
        origins = np.asarray(origins, dtype=np.int64)
        if origins.size and origins.min() < self.lookback_steps:
            raise ValueError(f"{self.name}: origins need {self.lookback_steps} steps of history before them")
        out = self._windows(np.asarray(values, dtype=np.float64), times, origins, horizon)
        spec = SIGNALS[self.signal]
        return np.sort(np.clip(out, spec.lo, spec.hi), axis=-1)

    def predict(self, history: object, t0: pd.Timestamp | str, horizon: int) -> Forecast:
        """Forecast ``horizon`` steps from ``t0`` (UTC) for every series, from rows before ``t0``."""
        self._check_fitted()
        t0 = pd.Timestamp(t0)
        if t0.tzinfo is None:
            raise ValueError(f"t0 must be tz-aware UTC (e.g. 2018-12-14T00:00Z), got {t0}")
        t0 = t0.tz_convert("UTC")
        if isinstance(history, pd.DataFrame) and "signal" not in history.columns:
            history = {self.signal: history}
        frame = lookback_frame(as_history(history), self.input_key, t0, self.history_steps,
                               self.series, self.input_step, min_steps=self.lookback_steps)
        values = frame.to_numpy(dtype=np.float64)
        arr = self._predict_last(values, frame.index, t0, horizon)
        return Forecast(t0, self.step, self.quantiles, {self.signal: self.series}, {self.signal: arr})

    def _predict_last(self, values: np.ndarray, times: pd.DatetimeIndex, t0: pd.Timestamp,
                      horizon: int) -> np.ndarray:
        return self.predict_windows(values, times, np.array([len(values)]), horizon)[0]
