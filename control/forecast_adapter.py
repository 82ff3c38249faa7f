"""The forecast → control adapter: a quantile ``forecast.output.Forecast`` becomes the MPC's
``control.inputs.ControlForecast``.

``control_forecast`` reads every site signal at the median (p50) and the load at p50, at the
provisioning quantile (``control.load_quantile``, one of the forecast's quantiles) and, with a burst
factor per stream, at the burst level ``p50 + f · (p_q − p50)``. ``fit_burst_factor`` fits ``f``:
the split-conformal ``burst_quantile`` of the scores ``(y − p50) / (p_q − p50)`` of the same
forecaster on the ``TAIL_DAYS`` days before the episode (data before t0 only), optionally on each
region group's interactive class totals with their spread combined as the MPC combines it
(``control.group_provision_correlation``).

Decisions are hourly but the plant steps at the load's 10-min resolution: ``fit_peak_factor`` fits
the hour's 10-min peak over its mean on the load's training days (``PEAK_TRAIN_DAYS``); it
multiplies the provisioning and burst levels and travels along as
``ControlForecast.load_peak_factor``. ``peak_provisioned`` is the perfect-foresight view: each
hour's realised fleet peak factor on the realised inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from control._headroom import combined_excess, group_matrix
from control.from_data import SITE_SIGNALS
from control.inputs import ControlForecast, utc_day_index
from control.plant import PlantParams
from forecast.output import Forecast

__all__ = ["LOAD", "PEAK_TRAIN_DAYS", "TAIL_DAYS", "control_forecast", "fit_burst_factor", "fit_peak_factor",
           "interactive_streams", "peak_provisioned"]

LOAD = "load_req_per_s"
TAIL_DAYS = 2
TAIL_FACTOR_RANGE = (1.0, 50.0)   # a burst is at least the provisioning level
PEAK_TRAIN_DAYS = 9   # the load model's training days 0 … 8 (forecast.load_train_days; the bootstrap's donors)


def _nearest_q(fc: Forecast, q: float) -> float:
    """The forecast's quantile level ``q`` (never a neighbour: the MPC prices exposure at 1 − q)."""
    level = min(fc.quantiles, key=lambda x: abs(x - q))
    if abs(level - q) > 1e-9:
        raise ValueError(f"control.load_quantile: {q} is not one of the forecast's quantiles {fc.quantiles}")
    return level


def _stream_columns(fc: Forecast, plant: PlantParams) -> list[int]:
    streams = [f"{r}/{k}" for r in plant.region_names for k in plant.class_names]
    return [fc.series[LOAD].index(s) for s in streams]


def control_forecast(fc: Forecast, plant: PlantParams, load_quantile: float,
                     burst_factor: np.ndarray | None = None,
                     peak_factor: np.ndarray | None = None) -> ControlForecast:
    """The MPC's inputs from a quantile forecast: p50 site signals; load at p50, at the quantile
    and (with ``burst_factor`` per stream, ``(R·K,)``) at the burst level ``p50 + f · (p_q − p50)``;
    the quantile and burst levels × ``peak_factor`` per stream ``(R·K,)`` (the hour's 10-min peak
    over its mean, ``fit_peak_factor``; None: 1).

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
    cols = _stream_columns(fc, plant)
    shape = (H, len(plant.region_names), len(plant.class_names))
    load = np.maximum(med[LOAD][:, cols], 0.0).reshape(shape)
    prov = np.maximum(fc.quantile(_nearest_q(fc, load_quantile))[LOAD][:, cols], 0.0).reshape(shape)
    prov = np.maximum(prov, load)
    burst = None
    if burst_factor is not None:
        burst = load + np.asarray(burst_factor).reshape(shape[1:])[None] * (prov - load)
    peak = None
    if peak_factor is not None:
        peak = np.broadcast_to(np.asarray(peak_factor, dtype=float).reshape(shape[1:])[None], shape)
        prov = prov * peak
        burst = None if burst is None else burst * peak
    days = utc_day_index(fc.timestamps)
    return ControlForecast(**arrays, load_req_per_s=load, load_provision_req_per_s=prov,
                           day_index=days, load_burst_req_per_s=burst, load_peak_factor=peak).validate(plant)


def fit_burst_factor(predict: Callable[[pd.Timestamp], Forecast], truth: pd.DataFrame, plant: PlantParams,
                     t0: pd.Timestamp, load_quantile: float, burst_quantile: float,
                     days: int = TAIL_DAYS, group_correlation: float | None = None) -> np.ndarray:
    """Per stream ``(R·K,)``: the split-conformal ``burst_quantile`` of ``(y − p50) / (p_q − p50)``
    over forecasts issued hourly in the ``days`` days before ``t0``, scored on values before t0,
    pooled over streams and steps (one factor: two days are too few for a stream's own 1 % tail).

    Args:
        predict: ``at -> Forecast`` of the forecaster the loop uses (reads data before ``at``).
        truth: realised load, ts × stream (only rows before ``t0`` are read).
        plant: stream order.
        t0: the episode start; nothing at or after it is read.
        load_quantile: the provisioning quantile (the spread's upper end).
        burst_quantile: the level of the burst.
        days: days of forecasts scored.
        group_correlation: score each region group's interactive class totals instead of the
            streams (the MPC's group bursts): ``(Y − ΣP50) / spread`` with the streams' spreads
            combined with this correlation (1: summed, 0: root of the summed squares), as the
            MPC combines them; pooled over groups, classes and steps.
    """
    streams = [f"{r}/{k}" for r in plant.region_names for k in plant.class_names]
    seen = truth.loc[truth.index < t0, streams]
    scores: list[np.ndarray] = []
    for at in pd.date_range(t0 - pd.Timedelta(days=days), t0 - pd.Timedelta(hours=1), freq="1h"):
        fc = predict(at)
        cols = _stream_columns(fc, plant)
        keep = fc.timestamps < t0
        y = seen.reindex(fc.timestamps[keep]).to_numpy()
        p50 = fc.quantile(_nearest_q(fc, 0.5))[LOAD][:, cols][keep]
        spread = fc.quantile(_nearest_q(fc, load_quantile))[LOAD][:, cols][keep] - p50
        if group_correlation is not None:
            y, p50, spread = _group_totals(plant, y, p50, spread, group_correlation)
        scores.append(np.where(spread > 1e-6, (y - p50) / np.maximum(spread, 1e-6), np.nan))
    s = np.concatenate(scores).ravel()                         # pooled over streams and steps
    s = np.sort(s[np.isfinite(s)])
    if not len(s):
        return np.full(len(streams), TAIL_FACTOR_RANGE[0])
    rank = min(len(s), int(np.ceil((len(s) + 1) * burst_quantile)))
    out = np.full(len(streams), s[rank - 1])
    return np.clip(out, *TAIL_FACTOR_RANGE)


def _group_totals(plant: PlantParams, y: np.ndarray, p50: np.ndarray, spread: np.ndarray,
                  rho: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (step, region group, interactive class): realised and median totals and the spread
    combined as the MPC combines it (``control._headroom.combined_excess``)."""
    to_group = group_matrix(plant)
    inter = np.tile(~plant.deferrable, int(plant.region_groups.max()) + 1)   # (G·K,)
    return ((y @ to_group.T)[:, inter], (p50 @ to_group.T)[:, inter],
            combined_excess(plant, spread, rho)[:, inter])


def fit_peak_factor(load_10min: pd.DataFrame, streams: Sequence[str], train_start: Mapping[str, pd.Timestamp],
                    quantile: float, train_days: int = PEAK_TRAIN_DAYS,
                    group_of: Mapping[str, str] | None = None) -> np.ndarray:
    """Per stream ``(len(streams),)``: the ``quantile`` (linear interpolation) over the training
    hours of the hour's peak factor, max ÷ mean of its 10-min values; ≥ 1 by construction.

    Args:
        load_10min: ts (UTC, 10-min) × stream, req/s (``Dataset.load_10min``).
        streams: the columns to fit, in the order returned.
        train_start: each stream's first recorded hour (its day 0, local midnight, in UTC).
        quantile: the level (the provisioning quantile, ``control.load_quantile``).
        train_days: days from ``train_start`` that are read (the load model's training days).
        group_of: stream → group: the streams of a group share the factor of their summed load,
            fitted on the hours that are training hours of every member (None: each stream alone).

    Hours whose mean is 0 are skipped; a stream without any training hour gets 1.

    Raises:
        KeyError: a stream is missing from ``load_10min`` or ``train_start``.
    """
    missing = [s for s in streams if s not in load_10min.columns or s not in train_start]
    if missing:
        raise KeyError(f"fit_peak_factor: streams {missing} missing from the 10-min load or its training start")
    key = {s: (s if group_of is None else group_of[s]) for s in streams}
    factor: dict[str, float] = {}
    for group in dict.fromkeys(key.values()):
        members = [s for s in streams if key[s] == group]
        starts = [pd.Timestamp(train_start[s]) for s in members]     # hours on every member's training days
        start, end = max(starts), min(starts) + pd.Timedelta(days=train_days)
        total = load_10min[members].sum(axis=1, min_count=len(members))
        total = total[(total.index >= start) & (total.index < end)].dropna()
        hourly = total.groupby(total.index.floor("1h")).agg(["mean", "max"])
        hourly = hourly[hourly["mean"] > 0]
        ratio = float(np.quantile(hourly["max"] / hourly["mean"], quantile)) if len(hourly) else 1.0
        factor[group] = max(ratio, 1.0)
    return np.array([factor[key[s]] for s in streams])


def interactive_streams(plant: PlantParams) -> np.ndarray:
    """``(R·K,)`` bool: streams of interactive classes (region-major, as ``PlantParams``)."""
    return np.tile(~plant.deferrable, len(plant.region_names))


def peak_provisioned(realised: ControlForecast, plant: PlantParams) -> ControlForecast:
    """The perfect forecaster's view: realised inputs whose provisioning and burst levels are the
    hourly means × each hour's realised fleet peak factor (10-min max ÷ mean of the interactive
    streams' summed load, ``load_sub_req_per_s``) for interactive streams; unchanged without
    sub-steps. It keeps the
    sub-steps, so the applied hour's GPUs cover each pool's busiest realised sub-step
    (``control.controllers``)."""
    sub = getattr(realised, "load_sub_req_per_s", None)
    if sub is None:
        return realised
    inter = interactive_streams(plant).reshape(len(plant.region_names), len(plant.class_names))
    total = np.where(inter[None, None], np.asarray(sub), 0.0).sum(axis=(2, 3))  # (H, M)
    mean = total.mean(axis=1)
    factor = np.where(mean > 0, total.max(axis=1) / np.where(mean > 0, mean, 1.0), 1.0)    # (H,)
    peak = np.broadcast_to(np.where(inter[None], factor[:, None, None], 1.0), realised.load_req_per_s.shape)
    level = np.maximum(realised.load_req_per_s * peak, realised.load_provision_req_per_s)
    return replace(realised, load_provision_req_per_s=level, load_burst_req_per_s=level, load_peak_factor=peak)
