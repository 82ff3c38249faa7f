"""A user's own series in the long format (CSV or parquet): ``site, ts, signal, value[, flag]``.

``ts`` must carry a time zone (``2018-12-03T00:00:00+00:00`` or ``...Z``); every row is converted to
UTC. The table passes the same validation as the packaged data (``forecast.schema.validate_long``),
plus, when the scenario gives them, its year (rows outside it are an error) and its regions' time
zones (a local hour repeated or missing at a DST change is repaired and counted, not an error).
An empty or header-only file is an error.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from forecast.schema import DataError, ValidationReport, validate_long

__all__ = ["read_user_long"]


def read_user_long(path: Path, max_gap_h: int = 6, year: int | None = None,
                   dst_zones: Iterable[str] = ()) -> tuple[pd.DataFrame, ValidationReport]:
    """Read and validate a long-format file.

    Args:
        path: ``.csv`` (optionally ``.gz``) or ``.parquet``.
        max_gap_h: longest gap (missing hours or NaN) that is filled, hours.
        year: the scenario's calendar year (UTC); rows outside it are an error.
        dst_zones: IANA zones whose DST changes explain a repeated or missing local hour.

    Raises:
        DataError: the file is missing, of an unknown kind, or breaks the data contract.
    """
    if not path.is_file():
        raise DataError(f"user data file not found: {path}")
    name = path.name.lower()
    try:
        if name.endswith((".csv", ".csv.gz")):
            df = pd.read_csv(path, dtype={"site": str, "ts": str, "signal": str})
        elif name.endswith(".parquet"):
            df = pd.read_parquet(path)
        else:
            raise DataError(f"{path}: unknown file kind; use .csv, .csv.gz or .parquet")
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: could not be read: {exc}") from None
    if df.empty:
        raise DataError(f"{path}: no data rows (empty or header only); the long format is "
                        "site | ts | signal | value, one row per hour")
    return validate_long(df, str(path), max_gap_h, year=year, dst_zones=dst_zones)
