"""LLM request load per (region, class) from real production traces, on the scenario's calendar.

Files (read in place from ``data.load_dir``, never copied): ServeGen (Alibaba Model Studio,
Apache-2.0) ``servegen_<tier>_clients.csv.gz`` — one row per client and 600-s window over 14 days,
``rate_req_per_s`` the window's mean rate, t = 0 at local midnight of day 0; and the Azure LLM
inference trace 2023 (CC-BY-4.0, Patel et al., "Splitwise", ISCA 2024) for token lengths per class.

Calendar (DESIGN.md §3): day 0 is placed at ``data.load_day0_local`` (Monday 3 Dec 2018) 00:00 in
*each region's* local time, so the recorded days keep their local-time daily shape everywhere. The
source does not name its weekday: Monday is an assumption. Clients are assigned to (region, class)
cells by a seeded draw (largest clients first, each to a cell drawn in proportion to the cell's
remaining deficit against ``region share × class share``; a client larger than the drawn cell's
deficit is split, the rest drawn again, so every stream gets load on every tier); the assignment,
with each part's fraction, is a table kept with the run. Each stream is Σ fraction × client series.
Outside the recorded days the load is a seeded day-of-week block bootstrap drawn from the training
days only (days ``0 … load_train_days − 1``), flagged ``resampled`` per timestamp. The load is
built at the trace's 10-min resolution (``LoadData.load_10min``); each hour's value is exactly the
mean of its six 10-min values.

Every file is checked before use, and an error names the file and what it should hold: readable
gzip CSV, the columns used, at least one data row, numeric times and rates, and plausible units
(the tier's total rate and the token counts, judged on their medians, catch a factor-1000 slip).
A file that fails is never cached (the parsed cache is keyed by the file's SHA-256).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.scenario import Scenario
from forecast.schema import DataError
from forecast.sources._archive import cached_frame

__all__ = ["AZURE_FILES", "LoadData", "SERVEGEN_FILES", "assign_clients", "check_load_dir", "read_load",
           "read_trace", "read_servegen_hourly", "read_servegen_windows", "token_stats"]

SERVEGEN_FILES = {"m-large": "servegen_m_large_clients.csv.gz", "m-mid": "servegen_m_mid_clients.csv.gz"}
AZURE_FILES = {"conv": "azure_llm_inference_2023_conv.csv.gz", "code": "azure_llm_inference_2023_code.csv.gz"}
WINDOW_S = 600
_VERSION = 3
SERVEGEN_COLUMNS = ("client", "t_seconds", "rate_req_per_s")
TOKEN_COLUMNS = ("ContextTokens", "GeneratedTokens")
# Plausible medians: the tier's total rate (sum over clients per window; ServeGen m-large ≈ 190,
# m-mid ≈ 1,900 req/s) and tokens per request (Azure 2023 conv: prompt 1,020, output 129; code:
# 1,469 and 13).
TIER_TOTAL_MEDIAN_REQ_PER_S = (0.01, 50_000.0)
TOKEN_MEDIAN = {"ContextTokens": (4.0, 200_000.0), "GeneratedTokens": (1.0, 10_000.0)}
_SERVEGEN_FORMAT = ("ServeGen client windows: gzip CSV with columns client, t_seconds (start of a 600-s "
                    "window, seconds since day 0), rate_req_per_s (the client's mean rate in it, req/s)")
_AZURE_FORMAT = ("Azure LLM inference trace: gzip CSV, one row per request, with columns TIMESTAMP, "
                 "ContextTokens (prompt tokens), GeneratedTokens (output tokens)")


def check_load_dir(path: Path, tier: str) -> Path:
    """The load folder, or an error that says where the files go."""
    needed = [SERVEGEN_FILES[tier], *AZURE_FILES.values()]
    missing = [f for f in needed if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"LLM load data not found: {path.resolve()} lacks {missing}. Put the ServeGen and Azure "
            "files there (the project reads ../shared/data/llm_load/ beside the repository; see its "
            "README), or point data.load_dir / the GREENLLM_LOAD_DIR environment variable at them."
        )
    return path


def read_trace(file: Path, columns: tuple[str, ...], expected: str) -> pd.DataFrame:
    """The ``columns`` of a gzip CSV trace; a clear error for a damaged, foreign or empty file.

    Args:
        file: the ``.csv.gz`` file.
        columns: the columns needed.
        expected: what the file should hold (quoted in errors).

    Raises:
        DataError: unreadable (truncated, not gzip, not CSV), a needed column missing, or no rows.
    """
    try:
        header = pd.read_csv(file, nrows=0).columns
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{file}: missing column(s) {missing}; it has {list(header)}. Expected {expected}")
        raw = pd.read_csv(file, usecols=list(columns))
    except DataError:
        raise
    except (EOFError, OSError, zlib.error, ValueError) as exc:
        raise DataError(f"{file}: cannot be read ({type(exc).__name__}: {exc}); the file is damaged "
                        f"(truncated?) or not a gzip CSV. Expected {expected}; restore it from the "
                        "source named in the README of its folder") from None
    if raw.empty:
        raise DataError(f"{file}: no data rows (empty or header only). Expected {expected}")
    return raw


def _numeric(raw: pd.DataFrame, column: str, file: Path, what: str) -> pd.Series:
    """A column as numbers; the first non-numeric or empty cell is an error naming its line."""
    values = pd.to_numeric(raw[column], errors="coerce")
    bad = values.isna() | np.isinf(values)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{file}: column {column!r} must hold {what}; line {i + 2} holds "
                        f"{raw[column].iloc[i]!r} ({int(bad.sum())} such rows)")
    return values.astype(float)


def _check_tier_total(raw: pd.DataFrame, file: Path) -> None:
    """The tier's total rate (sum over clients per window) must have a plausible median."""
    total = raw.groupby("t_seconds")["rate_req_per_s"].sum()
    med, iqr = float(total.median()), float(total.quantile(0.75) - total.quantile(0.25))
    lo, hi = TIER_TOTAL_MEDIAN_REQ_PER_S
    if not lo <= med <= hi:
        raise DataError(
            f"{file}: rate_req_per_s does not look like req/s per client: the tier's total (sum over "
            f"clients per window) has median {med:.4g} req/s and IQR {iqr:.4g}; expected a median "
            f"within [{lo:g}, {hi:g}] req/s (ServeGen m-large ≈ 190, m-mid ≈ 1,900). Was the rate "
            "given per 1000 s, per ms or ×1000? Convert it to req/s")


def _parse_servegen(file: Path, days: int) -> pd.DataFrame:
    raw = read_trace(file, SERVEGEN_COLUMNS, _SERVEGEN_FORMAT)
    raw["t_seconds"] = _numeric(raw, "t_seconds", file, f"numbers: seconds since day 0, multiples of "
                                f"{WINDOW_S} in 0 … {14 * 86400 - WINDOW_S:,}")
    raw["rate_req_per_s"] = _numeric(raw, "rate_req_per_s", file, "numbers ≥ 0 (req/s)")
    off = raw[(raw["t_seconds"] < 0) | (raw["t_seconds"] % WINDOW_S != 0)]
    if len(off):
        raise DataError(f"{file}: t_seconds must be multiples of {WINDOW_S} s ≥ 0 (window starts); "
                        f"{len(off)} rows are not, first {off['t_seconds'].iloc[0]:g} (line {off.index[0] + 2})")
    if raw["rate_req_per_s"].lt(0).any():
        bad = raw[raw["rate_req_per_s"].lt(0)].iloc[0]
        raise DataError(f"{file}: negative rate (client {bad['client']}, t={bad['t_seconds']:g} s); "
                        "rate_req_per_s must be ≥ 0 req/s")
    _check_tier_total(raw, file)
    raw = raw[raw["t_seconds"] < days * 86400].astype({"t_seconds": "int64"})
    counts = raw.groupby("client").size()
    per_client = days * 86400 // WINDOW_S
    if counts.empty or (counts != per_client).any() or raw.duplicated(["client", "t_seconds"]).any():
        raise DataError(f"{file}: every client needs {per_client} distinct windows in days 0 … {days - 1} "
                        f"(data.load_days_recorded={days}); some have {sorted(set(counts))[:10]} rows")
    return raw.sort_values(["client", "t_seconds"], kind="stable").reset_index(drop=True)


def read_servegen_windows(path: Path, tier: str, days: int) -> pd.DataFrame:
    """The 10-min windows of the recorded days: columns client, t_seconds, rate_req_per_s (cached)."""
    file = check_load_dir(path, tier) / SERVEGEN_FILES[tier]
    return cached_frame("servegen_10min", [file], {"tier": tier, "days": days}, _VERSION,
                        lambda: _parse_servegen(file, days))


def read_servegen_hourly(path: Path, tier: str, days: int) -> pd.DataFrame:
    """Hourly mean rate per client and local (day, hour): columns client, day, hour, rate_req_per_s."""
    raw = read_servegen_windows(path, tier, days)
    raw = raw.assign(day=raw["t_seconds"] // 86400, hour=raw["t_seconds"] % 86400 // 3600)
    return raw.groupby(["client", "day", "hour"], as_index=False)["rate_req_per_s"].mean()


def _client_cube(windows: pd.DataFrame, days: int) -> tuple[pd.Index, np.ndarray]:
    """Clients (sorted) and their rates as a ``(clients, days, 24, 6)`` cube of 10-min windows, req/s."""
    clients = pd.Index(windows["client"].unique()).sort_values()
    per_day = 86400 // WINDOW_S
    cube = windows["rate_req_per_s"].to_numpy(dtype=float).reshape(len(clients), days, 24, per_day // 24)
    return clients, cube


def _token_counts(file: Path) -> pd.DataFrame:
    """Prompt and output tokens per request of one Azure trace, checked."""
    raw = read_trace(file, TOKEN_COLUMNS, _AZURE_FORMAT)
    for col, (lo, hi) in TOKEN_MEDIAN.items():
        v = _numeric(raw, col, file, "token counts (whole numbers ≥ 0)")
        med = float(v.median())
        if not lo <= med <= hi:
            raise DataError(f"{file}: {col} does not look like tokens per request: median {med:.4g}, "
                            f"expected within [{lo:g}, {hi:g}] tokens (Azure 2023 conv: prompt 1,020, "
                            "output 129). Were the counts given per 1000 tokens or ×1000?")
        frac = (v < 0) | (v != np.round(v))
        if frac.any():
            i = int(np.flatnonzero(frac.to_numpy())[0])
            raise DataError(f"{file}: {col} must hold whole token counts ≥ 0; line {i + 2} holds {v.iloc[i]:g} "
                            f"({int(frac.sum())} such rows)")
        raw[col] = v
    return raw


def token_stats(path: Path) -> pd.DataFrame:
    """Prompt/output token statistics per Azure trace (index ``conv``, ``code``)."""
    rows = {}
    for name, fname in AZURE_FILES.items():
        df = _token_counts(path / fname)
        prompt, output = df["ContextTokens"], df["GeneratedTokens"]
        rows[name] = {"requests": len(df), "prompt_tokens_mean": prompt.mean(), "output_tokens_mean": output.mean(),
                      "prompt_tokens_p50": prompt.median(), "output_tokens_p50": output.median(),
                      "prompt_tokens_p90": prompt.quantile(0.9), "output_tokens_p90": output.quantile(0.9),
                      "file": fname}
    return pd.DataFrame.from_dict(rows, orient="index")


def _place_client(rate_req_per_s: float, target: np.ndarray, assigned: np.ndarray,
                  rng: np.random.Generator, tol: float) -> dict[int, float]:
    """Cell -> fraction of one client, drawn by the cells' deficits (``assigned`` is updated).

    When the client's remaining rate exceeds the drawn cell's deficit, the deficit's fraction of the
    client goes there and the rest is drawn again; once every cell is full, by target, placed whole."""
    left = 1.0
    parts: dict[int, float] = {}
    while True:
        deficit = np.clip(target - assigned, 0.0, None)
        full = deficit.sum() <= tol
        weights = target if full else deficit
        cell = int(rng.choice(len(target), p=weights / weights.sum()))
        if full or rate_req_per_s * left <= deficit[cell] + tol:   # the rest fits: place it whole
            parts[cell] = parts.get(cell, 0.0) + left
            assigned[cell] += rate_req_per_s * left
            return parts
        frac = deficit[cell] / rate_req_per_s                        # fill the cell, draw again for the rest
        parts[cell] = parts.get(cell, 0.0) + frac
        assigned[cell] = target[cell]
        left -= frac


def assign_clients(client_rate: pd.Series, scenario: Scenario, seed: int) -> pd.DataFrame:
    """Seeded draw of clients to (region, class) cells, splitting a client that overfills its cell.

    Largest client first, each to a cell drawn in proportion to the cells' remaining deficit against
    ``region share × class share × the tier's total``, split over cells until placed (``_place_client``);
    so every cell with a positive share ends with load, whatever the tier's client count.

    Args:
        client_rate: mean rate per client over the recorded days, req/s.
        scenario: regions and classes with their load shares.
        seed: the draw's seed.

    Returns:
        One row per (client, cell) part, in draw order: client, region, class, fraction (of the
        client's rate; a client's fractions sum to 1), mean_req_per_s (the part's mean rate,
        fraction × the client's).
    """
    regions, classes = scenario.regions, scenario.classes
    r_share = np.array([r.load_share for r in regions]) / sum(r.load_share for r in regions)
    k_share = np.array([k.load_share for k in classes]) / sum(k.load_share for k in classes)
    total = float(client_rate.sum())
    target = np.outer(r_share, k_share).ravel() * total
    assigned = np.zeros_like(target)
    rng = np.random.default_rng(seed)
    tol = 1e-12 * max(total, 1e-300)
    rows = []
    for client, rate in client_rate.sort_values(ascending=False, kind="stable").items():
        for cell, frac in _place_client(float(rate), target, assigned, rng, tol).items():
            r, k = divmod(cell, len(classes))
            rows.append((client, regions[r].name, classes[k].name, frac, frac * float(rate)))
    return pd.DataFrame(rows, columns=["client", "region", "class", "fraction", "mean_req_per_s"])


@dataclass(frozen=True)
class LoadData:
    """Load on the scenario's calendar, and how it was made.

    Attributes:
        signals: long table (site = ``region/class``, ts UTC, signal ``load_req_per_s``, value, flag):
            each hour's value is the mean of its six 10-min values in ``load_10min``.
        load_10min: 10-min UTC timestamps (6 per hour of the span) × ``region/class`` streams, req/s.
        clients, clients_10min: per-client recorded series, hourly and at 10 min, one row per (client
            part, step): client, region, class, fraction, ts, load_req_per_s (fraction × the client's rate).
        assignment: client → (region, class) draw, one row per part (``assign_clients``).
        tokens: token statistics per Azure trace.
        donors: local date → training day used by the bootstrap.
        file: the ServeGen file read.
    """

    signals: pd.DataFrame
    clients: pd.DataFrame
    assignment: pd.DataFrame
    tokens: pd.DataFrame
    donors: pd.Series
    file: Path
    load_10min: pd.DataFrame
    clients_10min: pd.DataFrame


def _donor_days(dates: pd.DatetimeIndex, day0: pd.Timestamp, train_days: int, seed: int) -> pd.Series:
    """A training day with the same weekday for every local date (seeded, one draw per date)."""
    rng = np.random.default_rng(seed + 1)
    by_weekday: dict[int, list[int]] = {}
    for d in range(train_days):
        by_weekday.setdefault((day0 + pd.Timedelta(days=d)).weekday(), []).append(d)
    if len(by_weekday) < 7:
        raise ValueError(f"load_train_days={train_days}: the bootstrap needs every weekday among the "
                         "training days (≥ 7)")
    return pd.Series([int(rng.choice(by_weekday[d.weekday()])) for d in dates], index=dates)


def _local_index(ts: pd.DatetimeIndex, tz: str, day0: pd.Timestamp, donors: pd.Series,
                 n_days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source day, local hour, 10-min window of the hour and recorded-mask of UTC times in ``tz``."""
    local = ts.tz_convert(tz)
    local_date = local.tz_localize(None).normalize()
    day_idx = (local_date - day0).days.to_numpy()
    recorded = (day_idx >= 0) & (day_idx < n_days)
    src_day = np.where(recorded, day_idx, donors.reindex(local_date).to_numpy())
    return src_day.astype(int), local.hour.to_numpy(), local.minute.to_numpy() // 10, recorded


def _check_streams(stream_cube: np.ndarray, scenario: Scenario, tier: str, file: Path) -> None:
    """Every (region, class) stream must have load on the recorded days."""
    empty = [n for n, total in zip(scenario.load_series, stream_cube.reshape(len(stream_cube), -1).sum(axis=1),
                                   strict=True) if not total > 0]
    if empty:
        r, k = empty[0].split("/")
        raise DataError(
            f"{file}: load stream {empty[0]} gets no load on tier {tier!r} ({len(empty)} such streams: "
            f"{empty}); its share regions.{r}.load_share × classes.{k}.load_share must be > 0, and the "
            "tier's clients must have requests on the recorded days. Every (region, class) stream needs load")


def _client_table(assignment: pd.DataFrame, clients: pd.Index, cube: np.ndarray, scenario: Scenario,
                  day0: pd.Timestamp, donors: pd.Series, n_days: int) -> pd.DataFrame:
    """Per client part, its recorded series (fraction × the client's; region's calendar) at ``cube``'s step."""
    pos = {c: i for i, c in enumerate(clients)}
    sub, parts = cube.shape[3], []
    for region in scenario.regions:
        rows = assignment[assignment["region"] == region.name]
        if rows.empty:
            continue
        start = day0.tz_localize(region.tz).tz_convert("UTC")
        rec_span = pd.date_range(start, periods=24 * sub * n_days, freq=f"{60 // sub}min")
        src, hour, window, _ = _local_index(rec_span, region.tz, day0, donors, n_days)
        idx = np.array([pos[c] for c in rows["client"]])
        values = cube[idx][:, src, hour, window % sub] * rows["fraction"].to_numpy()[:, None]
        rep = {k: np.repeat(rows[k].to_numpy(), len(rec_span)) for k in ("client", "region", "class", "fraction")}
        parts.append(pd.DataFrame({**rep, "ts": rec_span[np.tile(np.arange(len(rec_span)), len(rows))],
                                   "load_req_per_s": values.ravel()}))
    return pd.concat(parts, ignore_index=True)


def _stream_cube(assignment: pd.DataFrame, clients: pd.Index, cube: np.ndarray,
                 streams: tuple[str, ...]) -> np.ndarray:
    """Each stream's Σ fraction × client rate: a ``(streams, days, 24, 6)`` cube of 10-min windows, req/s."""
    weights = np.zeros((len(streams), len(clients)))
    s_pos, c_pos = {s: i for i, s in enumerate(streams)}, {c: i for i, c in enumerate(clients)}
    for c, r, k, f in zip(assignment["client"], assignment["region"], assignment["class"],
                          assignment["fraction"], strict=True):
        weights[s_pos[f"{r}/{k}"], c_pos[c]] += f
    return (weights @ cube.reshape(len(clients), -1)).reshape(len(streams), *cube.shape[1:])


def _streams_10min(stream_cube: np.ndarray, span: pd.DatetimeIndex, scenario: Scenario, day0: pd.Timestamp,
                   donors: pd.Series, n_days: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The streams at 10 min over ``span`` (req/s, on each region's local calendar) and the
    ``(hours, streams)`` mask of hours whose every 10-min value is recorded."""
    streams, sub = scenario.load_series, stream_cube.shape[3]
    s_pos = {s: i for i, s in enumerate(streams)}
    span10 = pd.date_range(span[0], periods=sub * len(span), freq=f"{WINDOW_S}s", name="ts")
    values10 = np.empty((len(span10), len(streams)))
    recorded = np.empty((len(span), len(streams)), dtype=bool)
    for region in scenario.regions:
        src, hour, window, rec = _local_index(span10, region.tz, day0, donors, n_days)
        cols = [s_pos[f"{region.name}/{k}"] for k in scenario.class_names]
        values10[:, cols] = stream_cube[cols][:, src, hour, window].T
        recorded[:, cols] = rec.reshape(len(span), sub).all(axis=1, keepdims=True)
    return pd.DataFrame(values10, index=span10, columns=list(streams)), recorded


def read_load(scenario: Scenario, span: pd.DatetimeIndex, train_days: int = 9) -> LoadData:
    """Per (region, class) load over ``span`` (UTC hours) at 10 min and hourly: recorded + bootstrapped days.

    Args:
        scenario: regions, classes and data settings.
        span: regular hourly UTC timestamps to cover.
        train_days: the bootstrap draws from days ``0 … train_days − 1`` only.

    Raises:
        DataError: a damaged load file, or a (region, class) stream left without load.
    """
    ds = scenario.data
    path, tier, n_days = ds.resolved_load_dir(), ds.resolved_load_tier(), ds.load_days_recorded
    file = path / SERVEGEN_FILES[tier]
    if len(span) > 1 and (span[1:] - span[:-1] != pd.Timedelta(hours=1)).any():
        raise ValueError(f"read_load: span must be regular hourly UTC timestamps, got {span[:3]} …")
    clients, cube = _client_cube(read_servegen_windows(path, tier, n_days), n_days)
    hourly = cube.mean(axis=3)                                        # (clients, days, 24)
    client_rate = pd.Series(hourly.mean(axis=(1, 2)), index=clients)
    assignment = assign_clients(client_rate, scenario, ds.load_seed)
    stream_cube = _stream_cube(assignment, clients, cube, scenario.load_series)
    _check_streams(stream_cube, scenario, tier, file)
    day0 = pd.Timestamp(ds.load_day0_local)
    all_dates = pd.date_range(span[0].tz_localize(None) - pd.Timedelta(days=1),
                              span[-1].tz_localize(None) + pd.Timedelta(days=1), freq="D").normalize()
    donors = _donor_days(all_dates, day0, train_days, ds.load_seed)
    load_10min, recorded = _streams_10min(stream_cube, span, scenario, day0, donors, n_days)
    streams = scenario.load_series
    hourly_streams = load_10min.to_numpy().reshape(len(span), -1, len(streams)).mean(axis=1)
    signals = pd.DataFrame({"site": np.repeat(streams, len(span)),
                            "ts": span[np.tile(np.arange(len(span)), len(streams))],
                            "signal": "load_req_per_s", "value": hourly_streams.T.ravel(),
                            "flag": np.where(recorded.T.ravel(), "recorded", "resampled")})
    tables = [_client_table(assignment, clients, c, scenario, day0, donors, n_days) for c in (hourly[..., None], cube)]
    return LoadData(signals, tables[0], assignment, token_stats(path), donors, file, load_10min, tables[1])
