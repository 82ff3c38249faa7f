"""The strict time split of DESIGN.md §3, per signal: which values train, validate and test.

Grid and weather signals split by UTC date (default: train Jan–Sep, validate Oct, test Nov–Dec
2018). Load splits by recorded day of each stream (local days from its day 0: train 0–8,
validate 9–10, test 11–13); only recorded load is used — the bootstrapped days never are. The load
frame holds the per-client series (columns ``client:<id>``; a client split over streams of several
regions is one series per region, ``client:<id>@<region>``, each on its region's calendar) and the
(region, class) streams (their sums, named ``<region>/<class>``), the streams being the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecast.dataset import Dataset
from forecast.features import LOAD_10MIN
from forecast.scenario import Scenario
from forecast.schema import ConfigError
from forecast.settings import ForecastSettings

__all__ = ["SignalSplit", "TEST", "TRAIN", "VALID", "product_history", "split_signal"]

TRAIN, VALID, TEST = 0, 1, 2


@dataclass(frozen=True)
class SignalSplit:
    """One signal's truth and split labels.

    Attributes:
        signal: signal name.
        full: wide truth (index ts UTC, columns every training series; NaN where unknown).
        labels: ``(T, n_series)`` int: 0 train, 1 validation, 2 test, −1 unused.
        outputs: the series forecast for the product (scenario order).
        spans: human-readable span of each part (for reports).
        tz: series -> local time zone of its calendar (load: the region's; absent = UTC).
        fine: the same truth at a finer step (load: 10 min; its rows start with ``full``'s and each
            row of ``full`` is the mean of its sub-steps), labelled as the row it falls in; None
            when the signal has no finer data.
    """

    signal: str
    full: pd.DataFrame
    labels: np.ndarray
    outputs: tuple[str, ...]
    spans: dict[str, str]
    tz: dict[str, str] = field(default_factory=dict)
    fine: pd.DataFrame | None = None

    def upto(self, last_label: int) -> pd.DataFrame:
        """Values labelled ``0 … last_label`` (NaN elsewhere): 0 = train, 1 = train + validation."""
        keep = (self.labels >= 0) & (self.labels <= last_label)
        return self.full.where(keep)

    def frame_at(self, step: pd.Timedelta) -> pd.DataFrame:
        """The truth at ``step``: ``full`` or ``fine`` (a ValueError when neither has that step)."""
        for frame in (self.full, self.fine):
            if frame is not None and len(frame) > 1 and frame.index[1] - frame.index[0] == step:
                return frame
        raise ValueError(f"{self.signal}: no truth at a {step} step (this split has "
                         f"{self.full.index[1] - self.full.index[0]}"
                         + ("" if self.fine is None else f" and {self.fine.index[1] - self.fine.index[0]}") + ")")

    def upto_at(self, last_label: int, step: pd.Timedelta) -> pd.DataFrame:
        """``upto`` at ``step`` (the row labels repeated over their sub-steps)."""
        frame = self.frame_at(step)
        sub = len(frame) // len(self.full)
        keep = np.repeat((self.labels >= 0) & (self.labels <= last_label), sub, axis=0)
        return frame.where(keep)

    def output_labels(self) -> np.ndarray:
        return self.labels[:, [list(self.full.columns).index(s) for s in self.outputs]]


def _span(index: pd.DatetimeIndex, mask: np.ndarray) -> str:
    rows = index[mask.any(axis=1)]
    return f"{rows[0]:%Y-%m-%d %H:%M} … {rows[-1]:%Y-%m-%d %H:%M} UTC" if len(rows) else "empty"


def _grid_split(data: Dataset, scenario: Scenario, signal: str, fs: ForecastSettings) -> SignalSplit:
    wide = data.wide(signal)[list(scenario.site_names)]
    idx = wide.index
    a = pd.Timestamp(fs.grid_train_end, tz="UTC")
    b = pd.Timestamp(fs.grid_valid_end, tz="UTC")
    lab = np.where(idx < a, TRAIN, np.where(idx < b, VALID, TEST))
    labels = np.repeat(lab[:, None], wide.shape[1], axis=1)
    spans = {n: _span(idx, labels == v) for n, v in (("train", TRAIN), ("valid", VALID), ("test", TEST))}
    return SignalSplit(signal, wide, labels, scenario.site_names, spans)


def _load_split(data: Dataset, scenario: Scenario, fs: ForecastSettings) -> SignalSplit:
    days = scenario.data.load_days_recorded
    if fs.load_train_days + fs.load_valid_days >= days:
        raise ConfigError(f"forecast.load_train_days + load_valid_days = "
                          f"{fs.load_train_days + fs.load_valid_days} leaves no test day of the "
                          f"{days} recorded days")
    cl = data.load.clients
    key = "client:" + cl["client"].astype(str)
    key = key.where(cl.groupby("client")["region"].transform("nunique") == 1, key + "@" + cl["region"])
    cl = cl.assign(series=key)
    clients = cl.pivot_table(index="ts", columns="series", values="load_req_per_s", aggfunc="sum")
    streams = cl.assign(stream=cl["region"] + "/" + cl["class"]).pivot_table(
        index="ts", columns="stream", values="load_req_per_s", aggfunc="sum")
    outputs = tuple(s for s in scenario.load_series if s in streams.columns)
    full = pd.concat([streams[list(outputs)], clients], axis=1).sort_index()
    full = full.reindex(pd.date_range(full.index[0], full.index[-1], freq="1h", name="ts"))
    values = full.to_numpy()
    have = np.isfinite(values)
    first = np.argmax(have, axis=0)
    day = (np.arange(len(full))[:, None] - first[None, :]) // 24
    lab = np.where(day < fs.load_train_days, TRAIN,
                   np.where(day < fs.load_train_days + fs.load_valid_days, VALID, TEST))
    labels = np.where(have, lab, -1)
    spans = {n: _span(full.index, labels[:, :len(outputs)] == v)
             for n, v in (("train", TRAIN), ("valid", VALID), ("test", TEST))}
    region_tz = {r.name: r.tz for r in scenario.regions}
    tz = {s: region_tz[s.split("/")[0]] for s in outputs}
    parts = cl[["series", "region"]].drop_duplicates()
    tz |= {c: region_tz[r] for c, r in zip(parts["series"], parts["region"], strict=True)}
    fine = _load_fine(data, full, labels, outputs)
    return SignalSplit("load_req_per_s", full, labels, outputs, spans, tz, fine)


def _load_fine(data: Dataset, full: pd.DataFrame, labels: np.ndarray, outputs: tuple[str, ...]) -> pd.DataFrame:
    """The load truth at 10 min: streams from ``Dataset.load_10min``, client parts from
    ``LoadData.clients_10min``; NaN where the hour is unused (label −1), like ``full``."""
    c10 = data.load.clients_10min
    many = c10.groupby("client")["region"].transform("nunique") > 1
    series = "client:" + c10["client"].astype(str)
    c10 = c10.assign(series=series.where(~many, series + "@" + c10["region"]))
    sub = 6  # 10-min windows per hour (the trace's resolution)
    index = pd.date_range(full.index[0], periods=sub * len(full), freq=pd.Timedelta(hours=1) / sub, name="ts")
    clients = c10.pivot_table(index="ts", columns="series", values="load_req_per_s", aggfunc="sum")
    fine = pd.concat([data.load_10min[list(outputs)].reindex(index), clients.reindex(index)], axis=1)
    fine = fine.reindex(columns=full.columns)
    return fine.where(np.repeat(labels >= 0, sub, axis=0))


def split_signal(data: Dataset, scenario: Scenario, signal: str, fs: ForecastSettings) -> SignalSplit:
    """The truth and split labels of one signal (load: recorded days only)."""
    if signal == "load_req_per_s":
        return _load_split(data, scenario, fs)
    return _grid_split(data, scenario, signal, fs)


def product_history(data: Dataset, scenario: Scenario) -> dict[str, pd.DataFrame]:
    """Signal -> wide frame (ts × series in scenario order) as the product's forecasters read it
    (load: the ``region/class`` streams, recorded and resampled, hourly and at 10 min under
    ``forecast.features.LOAD_10MIN``)."""
    out = {}
    for sig in data.signals["signal"].unique():
        wide = data.wide(str(sig))
        order = scenario.load_series if sig == "load_req_per_s" else scenario.site_names
        out[str(sig)] = wide[[c for c in order if c in wide.columns]]
    if "load_req_per_s" in out:
        out[LOAD_10MIN] = data.load_10min[list(out["load_req_per_s"].columns)]
    return out
