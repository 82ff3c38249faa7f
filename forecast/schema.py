"""The data contract: one long table ``site | ts | signal | value`` (+ ``flag``), validated.

* ``site`` names a data centre for grid/weather signals, and a ``"<region>/<class>"`` stream for
  ``load_req_per_s``.
* ``ts`` is tz-aware UTC, the start of an hourly interval ``[ts, ts + 1 h)``.
* ``signal`` carries its unit in its name (see ``SIGNALS``).
* ``flag`` says how a value came about: ``recorded`` (as in the source), ``filled`` (a short gap,
  interpolated), ``resampled`` (load bootstrapped from training days), ``typical-year`` (a typical
  meteorological year, not the actual one), ``climatological`` (built from month-by-hour normals).

``validate_long`` is the one gate every series passes, packaged or user-given: it rejects naive or
mixed time zones, duplicates, unsorted time, unknown signals, rows outside the scenario's year (when
given), implausible series (a unit slip: the series' median and IQR outside the signal's typical
range, see ``SignalSpec``), impossible values and gaps longer than ``max_gap_h`` with an error naming
file, site, signal and time range; shorter gaps (missing hours or NaN) are filled by time
interpolation (the nearest value at either end of a series), flagged ``filled`` and counted per
cause (``REPAIR_CAUSES``). With ``dst_zones`` a duplicated hour within an hour of a DST change of one
of those zones is a DST artefact, not an error: its two rows are merged (mean, flag ``filled``) and
counted as ``DST duplicate``; a single missing hour there is filled and counted as ``DST missing
hour``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS",
    "ConfigError",
    "DataError",
    "rng",
    "FLAGS",
    "REPAIR_CAUSES",
    "SIGNALS",
    "SignalSpec",
    "ValidationReport",
    "check_plausible",
    "dst_transitions",
    "validate_long",
    "year_span",
]

COLUMNS = ("site", "ts", "signal", "value", "flag")
FLAGS = ("recorded", "filled", "resampled", "typical-year", "climatological")
REPAIR_CAUSES = ("gap filled", "DST duplicate", "DST missing hour")
STEP = pd.Timedelta(hours=1)
_INF = float("inf")


class DataError(ValueError):
    """Input data break the contract; the message names file, site, signal and time range."""


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def rng(lo: float, hi: float) -> dict[str, tuple[float, float]]:
    """Field metadata of a config dataclass: the closed valid interval of a number (checked where
    the config is read, ``pipelines.config.build_dataclass``)."""
    return {"range": (lo, hi)}


@dataclass(frozen=True)
class SignalSpec:
    """A signal's unit, meaning, physically possible range and typical level.

    Every value must lie in ``[lo, hi]``. A whole series must also look like this unit: its median
    within ``median_range`` and its level ``max(|median|, IQR)`` at least ``min_level`` (robust
    statistics, so negative or near-zero prices in a real series pass). A series outside is
    rejected as a unit slip; ``slips`` names the usual ones.
    """

    unit: str
    meaning: str
    lo: float
    hi: float
    median_range: tuple[float, float] = (-_INF, _INF)
    min_level: float = 0.0
    slips: str = ""


SIGNALS: dict[str, SignalSpec] = {
    "price_eur_per_mwh": SignalSpec("EUR/MWh", "day-ahead electricity price (may be negative)", -3000.0, 3000.0,
                                    (-500.0, 1000.0), 1.0, "EUR/kWh (÷1000) or EUR/GWh / ct/kWh×10 (×1000)"),
    "carbon_g_per_kwh": SignalSpec("gCO2/kWh", "grid carbon intensity (average, fuel mix)", 0.0, 2000.0,
                                   (0.0, 1500.0), 2.0, "kg/kWh or t/MWh (÷1000), g/MWh (×1000)"),
    "ewif_l_per_kwh": SignalSpec("L/kWh", "off-site water intensity of grid electricity", 0.0, 20.0,
                                 (0.0, 15.0), 0.01, "m3/kWh (÷1000), L/MWh (×1000)"),
    "solar_cf": SignalSpec("kW/kWp", "on-site PV output per kWp nameplate", 0.0, 1.2),
    "wind_cf": SignalSpec("kW/kW", "zone wind capacity factor", 0.0, 1.0),
    "temp_c": SignalSpec("degC", "ambient dry-bulb temperature", -60.0, 60.0,
                         (-45.0, 45.0), 0.0, "kelvin (+273.15), degF"),
    "wetbulb_c": SignalSpec("degC", "ambient wet-bulb temperature", -60.0, 45.0,
                            (-45.0, 35.0), 0.0, "kelvin (+273.15), degF"),
    "load_req_per_s": SignalSpec("req/s", "LLM request arrivals per (region, class)", 0.0, 1e7),
}


@dataclass(frozen=True)
class ValidationReport:
    """What validation did: hours filled, and hours repaired per cause, per (site, signal).

    Attributes:
        filled_h: hours filled (interpolated), any cause.
        repairs: hours repaired per cause (``REPAIR_CAUSES``; only causes that occurred).
    """

    filled_h: dict[tuple[str, str], int]
    repairs: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    @property
    def total_filled_h(self) -> int:
        return int(sum(self.filled_h.values()))

    def repairs_text(self, site: str, signal: str) -> str:
        """``"gap filled 3, DST duplicate 1"`` for one series (empty when nothing was repaired)."""
        counts = self.repairs.get((site, signal), {})
        return ", ".join(f"{c} {counts[c]}" for c in REPAIR_CAUSES if counts.get(c))


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


def dst_transitions(zones: Iterable[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """UTC instants at which a zone's UTC offset changes (the first hour on the new offset).

    Args:
        zones: IANA time zone names.
        start, end: the UTC span to search (widened by a day on either side).
    """
    hours = pd.date_range(start.floor("D") - pd.Timedelta(days=1), end.ceil("D") + pd.Timedelta(days=1),
                          freq=STEP, tz="UTC")
    found = pd.DatetimeIndex([], tz="UTC")
    for tz in sorted(set(zones)):
        offset = hours.tz_convert(tz).tz_localize(None) - hours.tz_localize(None)
        change = np.flatnonzero(offset[1:] != offset[:-1]) + 1
        found = found.union(hours[change])
    return found


def _near(ts: pd.Series | pd.DatetimeIndex, transitions: pd.DatetimeIndex) -> np.ndarray:
    """Whether each time lies within an hour of a DST change."""
    values = pd.DatetimeIndex(ts)
    if not len(transitions) or not len(values):
        return np.zeros(len(values), dtype=bool)
    gap = np.abs(values.to_numpy()[:, None] - transitions.to_numpy()[None, :])
    return (gap <= STEP.to_timedelta64()).any(axis=1)


def _merge_dst_duplicates(df: pd.DataFrame, source: str,
                          transitions: pd.DatetimeIndex) -> tuple[pd.DataFrame, dict[tuple[str, str], int]]:
    """Merge pairs of rows of one local hour repeated at a DST change; any other duplicate raises."""
    dup = df.duplicated(["site", "signal", "ts"], keep=False)
    if not dup.any():
        return df, {}
    rows = df[dup]
    size = rows.groupby(["site", "signal", "ts"])["value"].transform("size")
    dst = _near(rows["ts"], transitions) & (size == 2).to_numpy()
    if not dst.all():
        bad = rows[~dst]
        row = bad.iloc[0]
        near = " (not at a DST change of the scenario's time zones)" if len(transitions) else ""
        raise DataError(
            f"{source}: site {row['site']}, signal {row['signal']}: {len(bad)} duplicate rows, "
            f"first at {_fmt(row['ts'])}{near}"
        )
    keys = ["site", "signal", "ts"]
    first = dup & ~df.duplicated(keys, keep="first")
    out = df.copy()
    out.loc[first, "value"] = df.groupby(keys, sort=False)["value"].transform("mean")[first]
    out.loc[first, "flag"] = "filled"
    counts = {(str(k[0]), str(k[1])): int(n) for k, n in df[first].groupby(["site", "signal"]).size().items()}
    return out[~dup | first].reset_index(drop=True), counts


def _fill_series(group: pd.DataFrame, source: str, site: str, signal: str, max_gap_h: int,
                 transitions: pd.DatetimeIndex) -> tuple[pd.DataFrame, dict[str, int]]:
    """Fill a series' short gaps; returns it and the hours filled per cause."""
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
        return group, {}
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
    single = starts[(ends - starts) == 1]
    n_dst = int(_near(full[single], transitions).sum())
    # Inner gaps: linear in time; a short gap at either end takes the nearest value.
    g["value"] = g["value"].interpolate(method="time", limit_area="inside").ffill().bfill()
    g["site"], g["signal"] = site, signal
    g["flag"] = g["flag"].where(~missing, "filled")
    out = g.rename_axis("ts").reset_index()[list(COLUMNS)]
    return out, {"gap filled": int(missing.sum()) - n_dst, "DST missing hour": n_dst}


def check_plausible(df: pd.DataFrame, source: str, signals: dict[str, SignalSpec] | None = None) -> None:
    """Reject a series whose robust level does not fit its unit (a factor-1000 slip, kelvin, ...).

    Args:
        df: long table (``site, ts, signal, value``).
        source: file (or source) name used in error messages.
        signals: the signals' specs (default ``SIGNALS``).

    Raises:
        DataError: naming file, site, signal, the series' median and IQR, and the expected range.
    """
    signals = SIGNALS if signals is None else signals
    q = df.groupby(["site", "signal"], sort=False)["value"].quantile([0.25, 0.5, 0.75]).unstack()
    for (site, signal), (q25, med, q75) in zip(q.index, q.to_numpy(), strict=True):
        spec = signals[signal]
        if np.isnan(med):
            continue
        lo, hi = spec.median_range
        iqr = q75 - q25
        if lo <= med <= hi and max(abs(med), iqr) >= spec.min_level:
            continue
        expect = f"a median within [{lo:g}, {hi:g}] {spec.unit}"
        if spec.min_level > 0:
            expect += f" and a median or IQR of at least {spec.min_level:g} {spec.unit}"
        raise DataError(
            f"{source}: site {site}, signal {signal}: the series does not look like {spec.unit}: its "
            f"median is {med:.4g} and its IQR {iqr:.4g} {spec.unit}, expected {expect} "
            f"({spec.meaning}). Usual unit slips: {spec.slips}; convert the series to {spec.unit}"
        )


def _check_year(df: pd.DataFrame, source: str, year: int) -> None:
    span = year_span(year)
    out = df[(df["ts"] < span[0]) | (df["ts"] > span[-1])]
    if len(out):
        row = out.iloc[0]
        raise DataError(
            f"{source}: site {row['site']}, signal {row['signal']}: {len(out)} row(s) outside the "
            f"scenario's year {year} (data.year), from {_fmt(out['ts'].min())} to {_fmt(out['ts'].max())}; "
            f"valid times are {_fmt(span[0])} … {_fmt(span[-1])} (offsets are converted to UTC)"
        )


def _check_values(df: pd.DataFrame, source: str, signals: dict[str, SignalSpec]) -> None:
    inf = np.isinf(df["value"].to_numpy())
    if inf.any():
        row = df[inf].iloc[0]
        raise DataError(f"{source}: site {row['site']}, signal {row['signal']}: infinite value at {_fmt(row['ts'])}")
    check_plausible(df, source, signals)
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


def _parse_table(df: pd.DataFrame, source: str, signals: dict[str, SignalSpec]) -> pd.DataFrame:
    """Columns, flags, time zones, signal names and numeric values; a copy with ``flag``."""
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
    return df


def validate_long(df: pd.DataFrame, source: str, max_gap_h: int = 6,
                  signals: dict[str, SignalSpec] | None = None, year: int | None = None,
                  dst_zones: Iterable[str] = ()) -> tuple[pd.DataFrame, ValidationReport]:
    """Check a long-format table against the contract and repair what is safe to repair.

    Args:
        df: columns ``site, ts, signal, value`` and optionally ``flag`` (default ``recorded``).
        source: file (or source) name used in error messages.
        max_gap_h: longest run of missing/NaN hours that is filled, hours.
        signals: the allowed signals and ranges (default ``SIGNALS``).
        year: when given, every row must lie in this calendar year (UTC).
        dst_zones: IANA zones whose DST changes explain a duplicated or a single missing hour.

    Returns:
        The validated table (UTC, sorted by site, signal, ts; gaps filled and flagged) and a report.

    Raises:
        DataError: naming file, site, signal and time range of the first problem found.
    """
    signals = SIGNALS if signals is None else signals
    df = _parse_table(df, source, signals)
    if year is not None:
        _check_year(df, source, year)
    zones = tuple(dst_zones)
    transitions = (dst_transitions(zones, df["ts"].min(), df["ts"].max())
                   if zones and len(df) else pd.DatetimeIndex([], tz="UTC"))
    df, merged = _merge_dst_duplicates(df, source, transitions)
    _check_values(df, source, signals)
    parts, filled, repairs = [], {}, {}
    for (site, signal), group in df.groupby(["site", "signal"], sort=False):
        key = (str(site), str(signal))
        out, causes = _fill_series(group.reset_index(drop=True), source, key[0], key[1], max_gap_h, transitions)
        parts.append(out)
        filled[key] = sum(causes.values())
        counts = {**causes, "DST duplicate": merged.get(key, 0)}
        repairs[key] = {c: n for c, n in counts.items() if n}
    result = pd.concat(parts, ignore_index=True) if parts else df[list(COLUMNS)]
    return result[list(COLUMNS)], ValidationReport(filled, {k: v for k, v in repairs.items() if v})
