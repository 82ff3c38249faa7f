"""A user's own series in the long format (CSV or parquet): ``site, ts, signal, value[, flag]``.

``ts`` must carry a time zone (``2018-12-03T00:00:00+00:00`` or ``...Z``); every row is converted to
UTC. The table passes the same validation as the packaged data (``forecast.schema.validate_long``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecast.schema import DataError, ValidationReport, validate_long

__all__ = ["read_user_long"]


def read_user_long(path: Path, max_gap_h: int = 6) -> tuple[pd.DataFrame, ValidationReport]:
    """Read and validate a long-format file.

    Args:
        path: ``.csv`` (optionally ``.gz``) or ``.parquet``.
        max_gap_h: longest gap (missing hours or NaN) that is filled, hours.

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
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: could not be read: {exc}") from None
    return validate_long(df, str(path), max_gap_h)
