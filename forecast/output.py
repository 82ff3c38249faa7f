"""What every forecaster returns: ``Forecast``, quantiles per (signal, series) × step.

A ``Forecast`` issued at ``t0`` holds, per signal, an array ``(horizon, n_series, n_quantiles)``
in the signal's unit (see ``forecast.schema.SIGNALS``), the series names in the scenario's order
(sites for grid/weather signals, ``"<region>/<class>"`` streams for ``load_req_per_s``), the
quantile levels (ascending, default 0.1 / 0.5 / 0.9) and the step: step ``k`` covers
``[t0 + k·step, t0 + (k+1)·step)``. Quantiles are non-decreasing along the last axis.

How the controller reads it::

    fc = forecaster.predict(history, t0, horizon=24)
    p50 = fc.quantile(0.5)                    # dict signal -> (H, n_series) array
    price = p50["price_eur_per_mwh"]          # (24, 12) EUR/MWh, columns fc.series["price_eur_per_mwh"]
    load_p90 = fc.quantile(0.9)["load_req_per_s"]   # (24, n_streams) req/s
    fc.frame("temp_c", 0.5)                   # DataFrame: index fc.timestamps, columns = sites
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_QUANTILES", "Forecast"]

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class Forecast:
    """Quantile forecasts of one or more signals issued at ``t0``.

    Attributes:
        t0: issue time (UTC); step 0 covers ``[t0, t0 + step)``.
        step: step length.
        quantiles: quantile levels, ascending.
        series: signal -> series names (columns of that signal's arrays).
        values: signal -> array ``(horizon, n_series, n_quantiles)`` in the signal's unit.
    """

    t0: pd.Timestamp
    step: pd.Timedelta
    quantiles: tuple[float, ...]
    series: dict[str, tuple[str, ...]]
    values: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        if self.t0.tzinfo is None:
            raise ValueError(f"Forecast.t0 must be tz-aware UTC, got {self.t0}")
        if list(self.quantiles) != sorted(self.quantiles):
            raise ValueError(f"Forecast.quantiles must ascend, got {self.quantiles}")
        for sig, arr in self.values.items():
            want = (len(self.series[sig]), len(self.quantiles))
            if arr.ndim != 3 or arr.shape[1:] != want:
                raise ValueError(f"Forecast[{sig}]: shape {arr.shape}, expected (H, {want[0]}, {want[1]})")

    @property
    def signals(self) -> tuple[str, ...]:
        return tuple(self.values)

    @property
    def horizon(self) -> int:
        return next(iter(self.values.values())).shape[0]

    @property
    def timestamps(self) -> pd.DatetimeIndex:
        """Start of each step (UTC)."""
        return pd.date_range(self.t0, periods=self.horizon, freq=self.step, name="ts")

    def _q_index(self, q: float) -> int:
        hits = [i for i, level in enumerate(self.quantiles) if abs(level - q) < 1e-9]
        if not hits:
            raise KeyError(f"quantile {q} not in the forecast; have {self.quantiles}")
        return hits[0]

    def quantile(self, q: float) -> dict[str, np.ndarray]:
        """Signal -> ``(horizon, n_series)`` array of quantile ``q`` (e.g. 0.5 or 0.9)."""
        i = self._q_index(q)
        return {sig: arr[:, :, i] for sig, arr in self.values.items()}

    def frame(self, signal: str, q: float = 0.5) -> pd.DataFrame:
        """One signal's quantile ``q`` as a DataFrame: index step start (UTC), columns series."""
        if signal not in self.values:
            raise KeyError(f"no signal {signal!r} in the forecast; have {list(self.values)}")
        return pd.DataFrame(self.values[signal][:, :, self._q_index(q)], index=self.timestamps,
                            columns=list(self.series[signal]))

    def long(self) -> pd.DataFrame:
        """Long table: signal | site | ts | quantile | value."""
        parts = []
        ts = self.timestamps
        for sig, arr in self.values.items():
            h, n, nq = arr.shape
            parts.append(pd.DataFrame({
                "signal": sig,
                "site": np.tile(np.repeat(np.array(self.series[sig], dtype=object), nq), h),
                "ts": np.repeat(ts, n * nq),
                "quantile": np.tile(np.array(self.quantiles), h * n),
                "value": arr.reshape(-1)}))
        return pd.concat(parts, ignore_index=True)

    def merged(self, other: Forecast) -> Forecast:
        """This forecast and another one (same t0, step, quantiles) with their signals joined."""
        if (other.t0 != self.t0 or other.step != self.step or other.quantiles != self.quantiles):
            raise ValueError("Forecast.merged: t0, step and quantiles must match")
        return Forecast(self.t0, self.step, self.quantiles, {**self.series, **other.series},
                        {**self.values, **other.values})
