"""Inputs of the learned models: look-back windows, calendar features and per-series scaling.

``History`` is what every forecaster reads: signal -> wide DataFrame (index ``ts``, UTC, regular
steps; columns = series). ``as_history`` also accepts the long table of ``forecast.schema``.
Calendar features are taken at the issue time ``t0`` in each series' local time zone (the future
calendar follows from it); six numbers: sin/cos of hour of day, day of week and day of year.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

__all__ = ["CALENDAR_FEATURES", "LOAD_10MIN", "History", "Scaling", "as_history", "calendar_features", "gather_windows",
           "long_history", "lookback_frame"]

# History key of the 10-min load (``region/class`` streams, req/s), beside the hourly
# ``load_req_per_s``: what a learned load model reads (``forecast.settings.load_input_step_min``).
LOAD_10MIN = "load_req_per_s@10min"
CALENDAR_FEATURES = ("hour_sin", "hour_cos", "dow_sin", "dow_cos", "doy_sin", "doy_cos")
History = Mapping[str, pd.DataFrame]


def as_history(obj: object) -> dict[str, pd.DataFrame]:
    """Signal -> wide frame from a mapping of wide frames or a long table (site|ts|signal|value)."""
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, pd.DataFrame) and {"site", "ts", "signal", "value"} <= set(obj.columns):
        return {str(sig): g.pivot(index="ts", columns="site", values="value")
                for sig, g in obj.groupby("signal", sort=False)}
    raise TypeError("history: expected {signal: wide DataFrame} or a long table with columns "
                    f"site, ts, signal, value; got {type(obj).__name__}")


def long_history(history: Mapping[str, pd.DataFrame], naive_utc: bool = True) -> pd.DataFrame:
    """The long table ``site | ts | signal | value`` of ``{signal: wide frame}`` (``as_history``'s
    inverse; ``naive_utc``: times in UTC without a zone, MLflow's datetime type)."""
    parts = [w.rename_axis("ts").reset_index().melt(id_vars="ts", var_name="site", value_name="value").assign(signal=s)
             for s, w in history.items()]
    out = pd.concat(parts, ignore_index=True)[["site", "ts", "signal", "value"]].dropna(subset=["value"])
    out["site"] = out["site"].astype(str)
    if naive_utc:
        out["ts"] = pd.to_datetime(out["ts"], utc=True).dt.tz_localize(None)
    return out.reset_index(drop=True)


def calendar_features(times: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """Calendar features ``(len(times), 6)`` at ``times`` in local time zone ``tz``."""
    if len(times) <= 32:  # fast path for single forecasts (no pandas overhead)
        zone = ZoneInfo(tz)
        loc = [t.to_pydatetime().astimezone(zone) for t in times]
        hour = np.array([t.hour + t.minute / 60.0 for t in loc])
        dow = np.array([t.weekday() for t in loc], dtype=float) + hour / 24.0
        doy = np.array([t.timetuple().tm_yday for t in loc], dtype=float) - 1.0 + hour / 24.0
        return _encode(hour, dow, doy)
    local = times.tz_convert(tz)
    hour = (local.hour + local.minute / 60.0).to_numpy(dtype=float)
    dow = local.day_of_week.to_numpy(dtype=float) + hour / 24.0
    doy = local.day_of_year.to_numpy(dtype=float) - 1.0 + hour / 24.0
    return _encode(hour, dow, doy)


def _encode(hour: np.ndarray, dow: np.ndarray, doy: np.ndarray) -> np.ndarray:
    cols = []
    for x, period in ((hour, 24.0), (dow, 7.0), (doy, 365.25)):
        ang = 2.0 * np.pi * x / period
        cols += [np.sin(ang), np.cos(ang)]
    return np.stack(cols, axis=1).astype(np.float32)


@dataclass(frozen=True)
class Scaling:
    """Per-series scaling ``z = (u − mean) / scale`` fitted on training data, where ``u = x`` (signal
    units) or, with ``log_base`` (non-negative signals such as load), ``u = log(1 + x / log_base)``:
    the net's level subtraction then removes a *ratio*, so a day-to-day change of the load's level
    scales the daily shape instead of shifting it. Both maps are increasing, so quantiles map to
    quantiles."""

    mean: np.ndarray
    scale: np.ndarray
    log_base: np.ndarray | None = None

    @classmethod
    def fit(cls, values: np.ndarray, log: bool = False) -> Scaling:
        """From a ``(T, n_series)`` array (NaN ignored); ``log``: the log map, with ``log_base``
        each series' training mean (floored like the scale).

        The scale has floors against near-flat series (10 % of the mean, 1 % of the largest
        series' spread), so that a series idle in training cannot explode once it wakes up.
        """
        base = None
        if log:
            level = np.nan_to_num(np.nanmean(values, axis=0))
            base = np.maximum(level, 0.01 * float(level.max(initial=0.0)) + 1e-9)
            values = np.log1p(np.maximum(values, 0.0) / base)
        mean = np.nan_to_num(np.nanmean(values, axis=0))
        std = np.nan_to_num(np.nanstd(values, axis=0))
        floor = 0.01 * float(std.max(initial=0.0)) + 1e-6
        scale = np.maximum(np.maximum(std, 0.1 * np.abs(mean)), floor)
        return cls(mean.astype(np.float64), scale.astype(np.float64), base)

    def forward(self, values: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """Scaled values ``(..., n)`` of ``values`` in signal units (series ``cols``, default all)."""
        c = slice(None) if cols is None else cols
        u = values if self.log_base is None else np.log1p(np.maximum(values, 0.0) / self.log_base[c])
        return (u - self.mean[c]) / self.scale[c]

    def inverse(self, z: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """Signal units of scaled values ``(..., n)`` (``forward``'s inverse)."""
        c = slice(None) if cols is None else cols
        u = z * self.scale[c] + self.mean[c]
        return u if self.log_base is None else np.expm1(u) * self.log_base[c]

    def to_json(self) -> dict[str, list[float]]:
        out = {"mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale]}
        if self.log_base is not None:
            out["log_base"] = [float(v) for v in self.log_base]
        return out

    @classmethod
    def from_json(cls, d: dict[str, list[float]]) -> Scaling:
        base = None if d.get("log_base") is None else np.asarray(d["log_base"], dtype=np.float64)
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["scale"], dtype=np.float64), base)


def lookback_frame(history: History, signal: str, t0: pd.Timestamp, steps: int,
                   series: tuple[str, ...], step: pd.Timedelta, min_steps: int | None = None) -> pd.DataFrame:
    """The last ``steps`` rows before ``t0`` of one signal, columns ``series``; rows at or after t0
    are never read. With ``min_steps``, fewer rows do when the history holds fewer regular, complete
    ones (at least ``min_steps``): the longest such run that ends just before ``t0``.

    Raises:
        KeyError: the signal or a series is missing from the history.
        ValueError: the look-back is incomplete, irregular or holds NaN (message names the range).
    """
    if signal not in history:
        hint = (" (a learned load model reads the 10-min load: forecast.splits.product_history adds it "
                "from Dataset.load_10min)" if signal == LOAD_10MIN else "")
        raise KeyError(f"history has no signal {signal!r}; have {sorted(history)}{hint}")
    frame = history[signal]
    missing = [s for s in series if s not in frame.columns]
    if missing:
        raise KeyError(f"history[{signal!r}] lacks series {missing}")
    if t0.tzinfo is None:
        raise ValueError(f"t0 must be tz-aware UTC, got {t0}")
    idx = frame.index
    if not idx.is_monotonic_increasing:
        raise ValueError(f"history[{signal!r}]: time is not sorted")
    end = int(idx.searchsorted(t0, side="left"))  # rows before t0 only
    cols = [frame.columns.get_loc(s) for s in series]
    past = frame.iloc[max(0, end - steps):end, cols]
    if min_steps is not None and min_steps < steps:
        past = _complete_tail(past, t0, step)
        if len(past) >= min_steps:
            return past
        steps = min_steps
        past = frame.iloc[max(0, end - steps):end, cols]
    want = pd.date_range(t0 - steps * step, periods=steps, freq=step)
    if len(past) < steps or not past.index.equals(want):
        have = f"{past.index[0]} … {past.index[-1]}" if len(past) else "nothing"
        raise ValueError(f"history[{signal!r}]: need {steps} regular steps {want[0]} … {want[-1]} "
                         f"before t0={t0}; have {have} ({len(past)} rows)")
    if past.isna().to_numpy().any():
        bad = past.columns[past.isna().any()].tolist()
        raise ValueError(f"history[{signal!r}]: NaN in the look-back {want[0]} … {want[-1]} "
                         f"for series {bad}")
    return past


def _complete_tail(past: pd.DataFrame, t0: pd.Timestamp, step: pd.Timedelta) -> pd.DataFrame:
    """The longest run of ``past``'s last rows that sit on the regular grid ending one ``step``
    before ``t0`` and hold no NaN."""
    n = len(past)
    on_grid = (t0 - past.index) / step == np.arange(n, 0, -1)
    good = on_grid & ~past.isna().to_numpy().any(axis=1)
    bad_from_end = np.flatnonzero(~good[::-1])
    return past.iloc[n - bad_from_end[0]:] if len(bad_from_end) else past


def gather_windows(values: np.ndarray, series_idx: np.ndarray, origin: np.ndarray,
                   lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Look-back inputs ``(N, lookback)`` and targets ``(N, horizon)`` from ``(n_series, T)`` values.

    Window ``i`` reads ``values[series_idx[i], origin[i] − lookback : origin[i]]`` as input and
    ``values[series_idx[i], origin[i] : origin[i] + horizon]`` as target (NaN past the end).
    """
    t_len = values.shape[1]
    back = origin[:, None] + np.arange(-lookback, 0)[None, :]
    ahead = origin[:, None] + np.arange(horizon)[None, :]
    x = values[series_idx[:, None], back]
    pad = np.concatenate([values, np.full((values.shape[0], horizon), np.nan, values.dtype)], axis=1)
    y = pad[series_idx[:, None], np.minimum(ahead, t_len + horizon - 1)]
    return x, y
