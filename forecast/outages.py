"""Service outages in the load history: windows in which every stream on one clock is at exactly 0.

A whole tier at 0 req/s for 10 minutes is the service (or its logging) down, not a lull in demand:
the users come back when it returns (ServeGen's m-mid trace has 8 such runs, 840 min in 14 days;
`greenllm data summary` lists them). A forecaster that reads those zeros as demand forecasts a low
level for the hour of the return, and the controller provisions for it (m-mid nov-19, 10-min
inputs: 13,227 requests dropped at 19:00 UTC, the hour after a 170-min outage). The learned load
model (``forecast.load_outage_fill``) reads each outage window of its inputs as the last value
before it when it forecasts; it trains on the history as recorded.

Streams are grouped by clock (their regions' UTC offsets in January and July): the recorded day is
placed at local midnight in each region, so an outage reaches London's streams an hour after
Berlin's. A group needs ``MIN_GROUP`` streams, so that one idle stream is never an outage.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

__all__ = ["MIN_GROUP", "clock_groups", "fill_outages", "outage_mask"]

MIN_GROUP = 3


def clock_groups(series: tuple[str, ...], tz: Mapping[str, str]) -> np.ndarray:
    """Group id per series: series whose zones have the same UTC offsets in January and July share one."""
    def offsets(zone: str) -> tuple:
        z = ZoneInfo(zone)
        return tuple(datetime(2018, month, 15, tzinfo=z).utcoffset() for month in (1, 7))
    keys = [offsets(tz.get(s, "UTC")) for s in series]
    uniq = sorted(set(keys))
    return np.array([uniq.index(k) for k in keys], dtype=np.int64)


def outage_mask(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``(T, n)`` True where every series of the column's clock group (≥ ``MIN_GROUP`` of them) is at
    exactly 0 in that row."""
    values = np.asarray(values, dtype=np.float64)
    mask = np.zeros(values.shape, dtype=bool)
    for g in np.unique(groups):
        cols = np.flatnonzero(groups == g)
        if len(cols) >= MIN_GROUP:
            mask[:, cols] = (values[:, cols] == 0).all(axis=1)[:, None]
    return mask


def fill_outages(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``values (T, n)`` with the masked rows of each series replaced by its last unmasked value
    before them (left as they are where there is none)."""
    values = np.asarray(values, dtype=np.float64)
    if not mask.any():
        return values
    rows = np.arange(len(values))[:, None]
    last = np.maximum.accumulate(np.where(mask, -1, rows), axis=0)   # last unmasked row at or before each
    filled = values[np.maximum(last, 0), np.arange(values.shape[1])[None, :]]
    return np.where(mask & (last >= 0), filled, values)
