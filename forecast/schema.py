"""The data contract: one long table ``site | ts | signal | value`` (+ ``flag``), validated.

* ``site`` names a data centre for grid/weather signals, and a ``"<region>/<class>"`` stream for
  ``load_req_per_s``.
* ``ts`` is tz-aware UTC, the start of an hourly interval ``[ts, ts + 1 h)``.
* ``signal`` carries its unit in its name (see ``SIGNALS``).
* ``flag`` says how a value came about: ``recorded`` (as in the source), ``filled`` (a short gap,
  interpolated), ``resampled`` (load bootstrapped from training days), ``typical-year`` (a typical
  meteorological year, not the actual one), ``climatological`` (built from month-by-hour normals).

``validate_long`` is the one gate every series passes, packaged or user-given: it rejects naive or
mixed time zones, duplicates, unsorted time, unknown signals, impossible values and gaps longer
than ``max_gap_h`` with an error naming file, site, signal and time range; shorter gaps (missing
hours or NaN) are filled by time interpolation (the nearest value at either end of a series),
flagged ``filled`` and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS",
    "DataError",
    "FLAGS",
    "SIGNALS",
    "SignalSpec",
    "ValidationReport",
    "validate_long",
    "year_span",
]

COLUMNS = ("site", "ts", "signal", "value", "flag")
FLAGS = ("recorded", "filled", "resampled", "typical-year", "climatological")
STEP = pd.Timedelta(hours=1)


class DataError(ValueError):
    """Input data break the contract; the message names file, site, signal and time range."""


@dataclass(frozen=True)
class SignalSpec:
    """A signal's unit, meaning and physically possible range."""

    unit: str
    meaning: str
    lo: float
    hi: float


SIGNALS: dict[str, SignalSpec] = {
    "price_eur_per_mwh": SignalSpec("EUR/MWh", "day-ahead electricity price (may be negative)", -3000.0, 3000.0),
    "carbon_g_per_kwh": SignalSpec("gCO2/kWh", "grid carbon intensity (average, fuel mix)", 0.0, 2000.0),
    "ewif_l_per_kwh": SignalSpec("L/kWh", "off-site water intensity of grid electricity", 0.0, 20.0),
    "solar_cf": SignalSpec("kW/kWp", "on-site PV output per kWp nameplate", 0.0, 1.2),
    "wind_cf": SignalSpec("kW/kW", "zone wind capacity factor", 0.0, 1.0),
    "temp_c": SignalSpec("degC", "ambient dry-bulb temperature", -60.0, 60.0),
    "wetbulb_c": SignalSpec("degC", "ambient wet-bulb temperature", -60.0, 45.0),
    "load_req_per_s": SignalSpec("req/s", "LLM request arrivals per (region, class)", 0.0, 1e7),
}


@dataclass(frozen=True)
class ValidationReport:
    """What validation did: hours filled per (site, signal)."""

    filled_h: dict[tuple[str, str], int]

    @property
    def total_filled_h(self) -> int:
        return int(sum(self.filled_h.values()))


def year_span(year: int) -> pd.DatetimeIndex:
    """Hourly UTC interval starts of a calendar year (the span every packaged series covers)."""
    return pd.date_range(f"{year}-01-01", f"{year + 1}-01-01", freq="1h", inclusive="left", tz="UTC", name="ts")


def _fmt(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def _check_ts(ts: pd.Series, source: str) -> pd.Series:
    """Return ``ts`` as datetime64 UTC, or raise for naive / mixed / unparsable timestamps."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        return ts.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(ts.dtype):
        raise DataError(
            f"{source}: column 'ts' has no time zone (naive timestamps, e.g. {ts.iloc[0]}); "
            "give UTC times with an offset, e.g. 2018-12-03T00:00:00+00:00"
        )
    text = ts.astype(str)
    has_zone = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d|UTC)$", regex=True)
    if not has_zone.all():
        bad = text[~has_zone]
        kind = "mixed time zones: some" if has_zone.any() else "no time zone: all"
        raise DataError(
            f"{source}: column 'ts' has {kind} timestamps lack an offset "
            f"({len(bad)} rows, first at row {bad.index[0]}: {bad.iloc[0]!r}); "
            "give every timestamp an offset, e.g. 2018-12-03T00:00:00+00:00"
        )
    try:
        return pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: column 'ts' could not be parsed as ISO 8601 times: {exc}") from None


def _fill_series(group: pd.DataFrame, source: str, site: str, signal: str,
                 max_gap_h: int) -> tuple[pd.DataFrame, int]:
    ts = group["ts"]
    if not ts.is_monotonic_increasing:
        pos = int(np.argmax(ts.diff().dt.total_seconds().to_numpy()[1:] < 0)) + 1
        raise DataError(
            f"{source}: site {site}, signal {signal}: time is not sorted "
            f"({_fmt(ts.iloc[pos - 1])} is followed by {_fmt(ts.iloc[pos])})"
        )
    off_grid = ts[ts.dt.floor("h") != ts]
    if len(off_grid):
        raise DataError(
            f"{source}: site {site}, signal {signal}: timestamps must start whole hours "
            f"(hourly data); first off-grid: {_fmt(off_grid.iloc[0])}"
        )
    full = pd.date_range(ts.iloc[0], ts.iloc[-1], freq=STEP)
    g = group.set_index("ts").reindex(full)
    missing = g["value"].isna().to_numpy()
    if not missing.any():
        return group, 0
    # Runs of consecutive missing hours.
    edges = np.diff(np.concatenate([[0], missing.astype(int), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(ends - starts))
    if ends[longest] - starts[longest] > max_gap_h:
        a, b = full[starts[longest]], full[ends[longest] - 1]
        raise DataError(
            f"{source}: site {site}, signal {signal}: gap of {ends[longest] - starts[longest]} h "
            f"from {_fmt(a)} to {_fmt(b)} (missing or NaN) exceeds max_gap_h={max_gap_h}"
        )
    # Inner gaps: linear in time; a short gap at either end takes the nearest value.
    g["value"] = g["value"].interpolate(method="time", limit_area="inside").ffill().bfill()
    g["site"], g["signal"] = site, signal
    g["flag"] = g["flag"].where(~missing, "filled")
    out = g.rename_axis("ts").reset_index()[list(COLUMNS)]
    return out, int(missing.sum())


def validate_long(df: pd.DataFrame, source: str, max_gap_h: int = 6,
                  signals: dict[str, SignalSpec] | None = None) -> tuple[pd.DataFrame, ValidationReport]:
    """Check a long-format table against the contract and fill short gaps.

    Args:
        df: columns ``site, ts, signal, value`` and optionally ``flag`` (default ``recorded``).
        source: file (or source) name used in error messages.
        max_gap_h: longest run of missing/NaN hours that is filled, hours.
        signals: the allowed signals and ranges (default ``SIGNALS``).

    Returns:
        The validated table (UTC, sorted by site, signal, ts; gaps filled and flagged) and a report.

    Raises:
        DataError: naming file, site, signal and time range of the first problem found.
    """
    signals = SIGNALS if signals is None else signals
    missing_cols = [c for c in ("site", "ts", "signal", "value") if c not in df.columns]
    if missing_cols:
        raise DataError(f"{source}: missing column(s) {missing_cols}; the long format is site | ts | signal | value")
    extra = sorted(set(df.columns) - set(COLUMNS))
    if extra:
        raise DataError(f"{source}: unknown column(s) {extra}; valid: {list(COLUMNS)}")
    df = df.copy()
    if "flag" not in df.columns:
        df["flag"] = "recorded"
    bad_flags = sorted(set(df["flag"].astype(str)) - set(FLAGS))
    if bad_flags:
        raise DataError(f"{source}: unknown flag(s) {bad_flags}; valid: {list(FLAGS)}")
    df["ts"] = _check_ts(df["ts"], source)
    df["site"] = df["site"].astype(str)
    df["signal"] = df["signal"].astype(str)
    unknown = sorted(set(df["signal"]) - set(signals))
    if unknown:
        raise DataError(f"{source}: unknown signal(s) {unknown}; valid: {sorted(signals)}")
    try:
        df["value"] = pd.to_numeric(df["value"], errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: column 'value' is not numeric: {exc}") from None
    dup = df.duplicated(["site", "signal", "ts"], keep=False)
    if dup.any():
        row = df[dup].iloc[0]
        raise DataError(
            f"{source}: site {row['site']}, signal {row['signal']}: {int(dup.sum())} duplicate rows, "
            f"first at {_fmt(row['ts'])}"
        )
    inf = np.isinf(df["value"].to_numpy())
    if inf.any():
        row = df[inf].iloc[0]
        raise DataError(f"{source}: site {row['site']}, signal {row['signal']}: infinite value at {_fmt(row['ts'])}")
    for name, spec in signals.items():
        sel = (df["signal"] == name) & ((df["value"] < spec.lo) | (df["value"] > spec.hi))
        if sel.any():
            bad = df[sel]
            row = bad.iloc[0]
            raise DataError(
                f"{source}: site {row['site']}, signal {name}: {len(bad)} value(s) outside "
                f"[{spec.lo:g}, {spec.hi:g}] {spec.unit}, from {_fmt(bad['ts'].min())} to "
                f"{_fmt(bad['ts'].max())} (first: {row['value']:g})"
            )
    parts, filled = [], {}
    for (site, signal), group in df.groupby(["site", "signal"], sort=False):
        out, n = _fill_series(group.reset_index(drop=True), source, str(site), str(signal), max_gap_h)
        parts.append(out)
        filled[(str(site), str(signal))] = n
    result = pd.concat(parts, ignore_index=True) if parts else df[list(COLUMNS)]
    return result[list(COLUMNS)], ValidationReport(filled)
