"""Baseline forecasters beside the learned ones, behind the same interface.

* ``Persistence`` — the last value, for every step;
* ``SeasonalNaive(season_steps)`` — the value one season (24 h or 168 h) before each step;
* ``PerfectForesight`` — the oracle: it reads the truth (its name says so), quantiles all equal.

Point baselines get quantiles from their own training residuals: per (step, series), the
empirical quantiles of ``truth − point`` over training windows are added to the point forecast,
so that pinball loss and interval coverage compare like with like.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.features import gather_windows
from forecast.interface import Forecaster
from forecast.output import Forecast

__all__ = ["PerfectForesight", "Persistence", "SeasonalNaive", "baselines_for"]


class _PointBaseline(Forecaster):
    """A point rule plus residual quantiles learned on the training period."""

    def __init__(self, signal: str, **kw: object) -> None:
        super().__init__(signal, **kw)  # type: ignore[arg-type]
        self.offsets: np.ndarray | None = None  # (H_fit, n_series, Q)

    def _point(self, values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        raise NotImplementedError  # (N, H, n_series)

    def fit(self, history: pd.DataFrame, validation: pd.DataFrame | None = None,
            horizon: int = 24) -> _PointBaseline:
        """Residual quantiles per (step, series) over training windows (every 6 h)."""
        super().fit(history)
        values = history.to_numpy(dtype=np.float64)
        origins = np.arange(self.lookback_steps, len(values) - horizon + 1, 6)
        if len(origins) == 0:
            raise ValueError(f"{self.name} {self.signal}: training history of {len(values)} steps is "
                             f"too short for look-back {self.lookback_steps} + horizon {horizon}")
        point = self._point(values, origins, horizon)
        n = values.shape[1]
        _, truth = gather_windows(values.T, np.repeat(np.arange(n), len(origins)),
                                  np.tile(origins, n), 0, horizon)
        truth = truth.reshape(n, len(origins), horizon).transpose(1, 2, 0)
        resid = truth - point
        with np.errstate(all="ignore"):
            off = np.nanquantile(resid, self.quantiles, axis=0)  # (Q, H, n)
        self.offsets = np.nan_to_num(np.moveaxis(off, 0, -1))
        return self

    def _windows(self, values: np.ndarray, times: pd.DatetimeIndex, origins: np.ndarray,
                 horizon: int) -> np.ndarray:
        assert self.offsets is not None
        point = self._point(values, origins, horizon)
        h_fit = self.offsets.shape[0]
        off = self.offsets[np.minimum(np.arange(horizon), h_fit - 1)]
        return point[..., None] + off[None]


class Persistence(_PointBaseline):
    """The last observed value for every step."""

    name = "persistence"

    def __init__(self, signal: str, **kw: object) -> None:
        super().__init__(signal, **kw)
        self.lookback_steps = 1

    def _point(self, values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        return np.repeat(values[origins - 1][:, None, :], horizon, axis=1)


class SeasonalNaive(_PointBaseline):
    """The value one season earlier: step k at origin o reads position o + k − season·(k // season + 1)."""

    def __init__(self, signal: str, season_steps: int, **kw: object) -> None:
        super().__init__(signal, **kw)
        if season_steps < 1:
            raise ValueError(f"season_steps must be ≥ 1, got {season_steps}")
        self.season_steps = season_steps
        self.lookback_steps = season_steps
        self.name = f"seasonal_naive_{season_steps}"

    def _point(self, values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        k = np.arange(horizon)
        pos = origins[:, None] + k[None, :] - self.season_steps * (k // self.season_steps + 1)[None, :]
        return values[pos]


class PerfectForesight(Forecaster):
    """Oracle that reads the truth (``truth``: wide frame covering the forecast periods)."""

    name = "oracle_perfect_foresight"
    reads_future = True

    def __init__(self, signal: str, truth: pd.DataFrame, **kw: object) -> None:
        super().__init__(signal, **kw)  # type: ignore[arg-type]
        self.truth = truth
        self.lookback_steps = 0

    def _windows(self, values: np.ndarray, times: pd.DatetimeIndex, origins: np.ndarray,
                 horizon: int) -> np.ndarray:
        pad = np.concatenate([values, np.full((horizon, values.shape[1]), np.nan)])
        pos = origins[:, None] + np.arange(horizon)[None, :]
        return np.repeat(pad[pos][..., None], len(self.quantiles), axis=-1)

    def predict(self, history: object, t0: pd.Timestamp | str, horizon: int) -> Forecast:
        """The truth over ``[t0, t0 + horizon·step)``; ``history`` is not needed."""
        self._check_fitted()
        t0 = pd.Timestamp(t0).tz_convert("UTC")
        want = pd.date_range(t0, periods=horizon, freq=self.step)
        truth = self.truth.reindex(want)[list(self.series)]
        if truth.isna().to_numpy().any():
            raise ValueError(f"oracle {self.signal}: the truth lacks values in {want[0]} … {want[-1]}")
        arr = np.repeat(truth.to_numpy(dtype=np.float64)[:, :, None], len(self.quantiles), axis=2)
        return Forecast(t0, self.step, self.quantiles, {self.signal: self.series}, {self.signal: arr})


def baselines_for(signal: str, truth: pd.DataFrame | None = None) -> dict[str, Forecaster]:
    """The standard baselines of a signal (oracle only when ``truth`` is given), unfitted."""
    out: dict[str, Forecaster] = {"persistence": Persistence(signal),
                                  "seasonal_naive_24": SeasonalNaive(signal, 24),
                                  "seasonal_naive_168": SeasonalNaive(signal, 168)}
    if truth is not None:
        out["oracle"] = PerfectForesight(signal, truth)
    return out
