"""Hourly weather per city from the NSRDB files shipped in the hisim 1.2.4 wheel.

Two kinds of file, read straight out of the wheel (never installed):

* ``hisim/inputs/weather/NSRDB_15min/<City>/<id>_<lat>_<lon>_2019.csv`` (20 cities). Lines 1-2 are
  NSRDB metadata (``Latitude``, ``Longitude``, ``Time Zone``: the offset of the file's clock from
  UTC in hours), line 3 the column header. The column order differs between files, so columns are
  selected by name. Values are 15-min snapshots of 2019 (``Year, Month, Day, Hour, Minute``); the
  hourly value for ``[ts, ts + 1 h)`` is the mean of the four snapshots ``ts + 0/15/30/45 min``.
  Most files state ``Time Zone 0`` (UTC); Amsterdam and Stockholm state ``1`` (UTC+1), and their
  irradiance indeed peaks 1.33 h and 1.12 h after solar noon on the file clock, so the stated offset
  is applied. After conversion every file's GHI-weighted mean hour lies within −0.11…+0.35 h of the
  GHI-weighted solar transit (a check on every read: more than 0.5 h raises).
* ``hisim/inputs/weather/NSRDB/<City>/<City>.dat`` (9 cities, hourly; used only where no 15-min
  file exists: Belgrade, Cyprus, Madrid, Milan, Sarajevo, Seville, Vranje). A German text header
  (``Breitengrad``, ``Längengrad``, ``Art des TMY : mittleres Jahr``, ``Bezugszeitraum :
  2017-2019``) precedes a CSV header ``Year,MM,DD,HH,Minute,...``; rows run ``HH`` 1…24, always
  ``Minute`` 30, all with ``Year`` 2019. The time zone is not stated. Findings:

  - Interval convention: for Ljubljana and Athens (which also have 15-min files) temperature,
    pressure and wind speed of row ``HH`` equal the 15-min snapshot at ``(HH − 1):30`` UTC in all
    8,760 rows. So row ``HH`` describes the hour ``[HH − 1, HH)`` (its midpoint); it is stored at
    the interval start ``date + (HH − 1) h``.
  - Time zone: the GHI-weighted mean of ``HH − 0.5`` is compared with the GHI-weighted solar
    transit from ``pvlib.solarposition.sun_rise_set_transit_spa`` at the file's coordinates. Milan:
    11.402 h vs 11.399 h (+0.002 h); all nine files −0.011…+0.335 h. The files are in UTC, not
    local standard time (that would give ≈ +1 h). ``read_city`` re-does this on every parse and
    applies ``round(lag)`` hours, allowing only 0 (UTC) or the local standard offset.
  - Irradiance: in 7 of the 9 files (all but Madrid and Seville) GHI is ≥ 0.95 × the Ineichen
    clear-sky GHI in ≥ 81 % of daylight hours (Milan 99 %): it is clear-sky (cloud-free)
    irradiance, not the measured one (Milan: annual mean GHI 210 W/m², where ≈ 160 W/m² is
    usual). Such files get the label ``CLEAR_SKY_LABEL``; PV from them is an upper bound.
  - Despite the "typical year" header, the Ljubljana and Athens temperature, pressure and wind
    equal the 2019 record; the label ``typical-year`` is kept because that is what the file claims.
  - ``Belgrade`` (.dat, 44.81 N) and ``Belgrad`` (15-min, 44.77 N) are different files.

All data are 2019 (non-leap). ``read_city(city, year)`` puts them on the ``year`` calendar by same
month, day and hour (UTC); in a leap year 29 Feb repeats 28 Feb. Parsed frames are cached as
parquet (see ``_archive.cached_frame``).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pvlib

from forecast.schema import DataError, year_span
from forecast.sources._archive import archive_path, cached_frame, list_members, read_member

__all__ = [
    "CLEAR_SKY_LABEL",
    "COLUMNS",
    "SOURCE_YEAR",
    "WeatherSeries",
    "available_cities",
    "read_city",
    "resolve_city",
    "solar_noon_lag_h",
]

ARCHIVE = "hisim"
DIR_15MIN = "hisim/inputs/weather/NSRDB_15min/"
DIR_HOURLY = "hisim/inputs/weather/NSRDB/"
SOURCE_YEAR = 2019
COLUMNS = ("temp_c", "ghi_w_per_m2", "dni_w_per_m2", "dhi_w_per_m2", "wind_m_per_s", "pressure_hpa")
_RENAME = {"Temperature": "temp_c", "GHI": "ghi_w_per_m2", "DNI": "dni_w_per_m2",
           "DHI": "dhi_w_per_m2", "Wind Speed": "wind_m_per_s", "Pressure": "pressure_hpa"}
_ALIASES = {"vienna": "Viena", "wien": "Viena"}
CLEAR_SKY_LABEL = "clear-sky irradiance (cloud-free, not measured): PV is an upper bound"
_MAX_NOON_LAG_H = 0.5      # |GHI-weighted hour − solar transit| allowed after conversion, h
_CLEAR_SKY_FRACTION = 0.75  # share of daylight hours at ≥ 95 % of clear-sky GHI that flags a file
_VERSION = 1


@dataclass(frozen=True, eq=False)
class WeatherSeries:
    """One city's hourly weather on a calendar year.

    Attributes:
        frame: index ``ts`` (tz-aware UTC hourly interval starts of the whole year), columns
            ``temp_c`` (°C), ``ghi_w_per_m2``, ``dni_w_per_m2``, ``dhi_w_per_m2`` (W/m², hourly
            means), ``wind_m_per_s`` (m/s), ``pressure_hpa`` (hPa).
        lat_deg: latitude of the source file, degrees north.
        lon_deg: longitude of the source file, degrees east.
        member: path of the file inside the hisim wheel.
        source_year: year the values come from (2019).
        labels: provenance notes; contains ``"typical-year"`` for the hourly ``.dat`` files.
    """

    frame: pd.DataFrame
    lat_deg: float
    lon_deg: float
    member: str
    source_year: int
    labels: tuple[str, ...]


@lru_cache(maxsize=1)
def _city_members() -> dict[str, str]:
    """City name → archive member; a 15-min file wins over an hourly ``.dat`` of the same city."""
    hourly = {m.split("/")[-2]: m for m in list_members(ARCHIVE, DIR_HOURLY) if m.endswith(".dat")}
    quarter = {m.split("/")[-2]: m for m in list_members(ARCHIVE, DIR_15MIN) if m.endswith(".csv")}
    return dict(sorted({**hourly, **quarter}.items()))


def available_cities() -> list[str]:
    """Names accepted by ``read_city`` (hisim folder names, e.g. ``Viena`` for Vienna)."""
    return list(_city_members())


def resolve_city(city: str) -> str:
    """The hisim folder name of ``city`` (case-insensitive; ``Vienna`` → ``Viena``).

    Raises:
        DataError: no such city (the message lists the available ones).
    """
    members = _city_members()
    name = _ALIASES.get(city.strip().lower(), city.strip())
    matches = [c for c in members if c.lower() == name.lower()]
    if not matches:
        raise DataError(f"no hisim weather file for city {city!r}; available cities: "
                        f"{', '.join(members)}")
    return matches[0]


def solar_noon_lag_h(start_utc: pd.DatetimeIndex, ghi_w_per_m2: np.ndarray, lat_deg: float,
                     lon_deg: float, centre_min: float = 30.0) -> float:
    """GHI-weighted mean time of day minus GHI-weighted solar transit, hours.

    About 0 when ``start_utc`` really is UTC; about +1 when the clock is UTC+1 (cloud patterns
    move it by a few tenths of an hour).

    Args:
        start_utc: interval starts, read as UTC.
        ghi_w_per_m2: global horizontal irradiance per interval, W/m².
        lat_deg: latitude, degrees north.
        lon_deg: longitude, degrees east.
        centre_min: minutes from interval start to the time the value represents.
    """
    ghi = np.clip(np.asarray(ghi_w_per_m2, dtype=float), 0.0, None)
    hour = (start_utc.hour + start_utc.minute / 60.0 + centre_min / 60.0).to_numpy(dtype=float)
    days = start_utc.normalize()
    unique = days.unique()
    transit = pvlib.solarposition.sun_rise_set_transit_spa(unique, lat_deg, lon_deg)["transit"]
    transit_h = pd.Series((pd.DatetimeIndex(transit) - unique).total_seconds() / 3600.0,
                          index=unique)
    lag = hour - transit_h.reindex(days).to_numpy()
    return float((lag * ghi).sum() / ghi.sum())


def _select(raw: pd.DataFrame, member: str) -> pd.DataFrame:
    missing = [c for c in _RENAME if c not in raw.columns]
    if missing:
        raise ValueError(f"{member}: missing column(s) {missing}; columns: {list(raw.columns)}")
    return raw[list(_RENAME)].rename(columns=_RENAME).astype(float)


def _parse_15min(member: str) -> tuple[pd.DataFrame, float, float]:
    """15-min NSRDB csv → hourly means at UTC interval starts, plus the file's lat/lon."""
    text = read_member(ARCHIVE, member).decode("utf-8-sig")
    meta = pd.read_csv(io.StringIO(text), nrows=1)
    lat, lon, offset_h = (float(meta.loc[0, k]) for k in ("Latitude", "Longitude", "Time Zone"))
    raw = pd.read_csv(io.StringIO(text), skiprows=2)
    clock = pd.to_datetime(raw[["Year", "Month", "Day", "Hour", "Minute"]].set_axis(
        ["year", "month", "day", "hour", "minute"], axis=1))
    ts = pd.DatetimeIndex(clock - pd.Timedelta(hours=offset_h)).tz_localize("UTC")
    values = _select(raw, member).set_axis(ts)
    grouped = values.groupby(ts.floor("h"))
    counts = grouped.size()
    if (counts != 4).any():
        bad = counts[counts != 4]
        raise ValueError(f"{member}: expected 4 values per hour, {bad.iloc[0]} at {bad.index[0]} "
                         f"({len(bad)} hours affected)")
    hourly = grouped.mean()
    lag = solar_noon_lag_h(hourly.index, hourly["ghi_w_per_m2"].to_numpy(), lat, lon,
                           centre_min=22.5)
    if abs(lag) > _MAX_NOON_LAG_H:
        raise ValueError(f"{member}: with the stated Time Zone {offset_h:g} h the irradiance is "
                         f"centred {lag:+.2f} h from solar noon (allowed ±{_MAX_NOON_LAG_H} h)")
    return hourly, lat, lon


def _dat_header(text: str, member: str) -> dict[str, str]:
    """``key : value`` lines of a ``.dat`` header (Breitengrad, Längengrad, Art des TMY, ...)."""
    head = text.split("Year,MM", 1)[0]
    fields = {m.group(1).strip(): m.group(2).strip()
              for m in re.finditer(r"^([^:\n]+?)\s*:\s*(.+)$", head, flags=re.M)}
    for key in ("Breitengrad", "Längengrad"):
        if key not in fields:
            raise ValueError(f"{member}: header has no {key!r} line; header keys: {list(fields)}")
    return fields


def _parse_dat(member: str) -> tuple[pd.DataFrame, float, float]:
    """Hourly NSRDB ``.dat`` → frame at UTC interval starts (time zone inferred from the sun)."""
    text = read_member(ARCHIVE, member).decode("utf-8-sig")
    head = _dat_header(text, member)
    lat, lon = float(head["Breitengrad"]), float(head["Längengrad"])
    raw = pd.read_csv(io.StringIO(text[text.index("Year,MM"):]))
    if not (raw["HH"].between(1, 24).all() and (raw["Minute"] == 30).all()):
        raise ValueError(f"{member}: expected HH in 1..24 and Minute 30 in every row")
    date = pd.to_datetime(raw[["Year", "MM", "DD"]].set_axis(["year", "month", "day"], axis=1))
    start = pd.DatetimeIndex(date + pd.to_timedelta(raw["HH"] - 1, unit="h")).tz_localize("UTC")
    values = _select(raw, member)
    lag = solar_noon_lag_h(start, values["ghi_w_per_m2"].to_numpy(), lat, lon, centre_min=30.0)
    offset_h = int(round(lag))
    if offset_h not in (0, int(round(lon / 15.0))):
        raise ValueError(f"{member}: irradiance is centred {lag:+.2f} h from solar noon; expected "
                         f"≈ 0 (UTC) or ≈ {round(lon / 15.0)} (local standard time)")
    return values.set_axis(start - pd.Timedelta(hours=offset_h)), lat, lon


def _clear_sky_fraction(frame: pd.DataFrame, lat_deg: float, lon_deg: float) -> float:
    """Share of daylight hours (clear-sky GHI > 100 W/m²) with GHI ≥ 95 % of Ineichen clear sky."""
    mid = frame.index + pd.Timedelta(minutes=30)
    clear = pvlib.location.Location(lat_deg, lon_deg).get_clearsky(mid, model="ineichen")["ghi"]
    day = clear.to_numpy() > 100.0
    ratio = frame["ghi_w_per_m2"].to_numpy()[day] / clear.to_numpy()[day]
    return float(np.mean(ratio >= 0.95))


def _parse(member: str) -> pd.DataFrame:
    """Source frame (UTC, source year) plus constant columns ``_lat``, ``_lon``, ``_clear``."""
    parse = _parse_dat if member.endswith(".dat") else _parse_15min
    frame, lat, lon = parse(member)
    frame = frame.rename_axis("ts").sort_index()
    if frame.index.has_duplicates:
        raise ValueError(f"{member}: duplicate hours after conversion to UTC")
    return frame.assign(_lat=lat, _lon=lon, _clear=_clear_sky_fraction(frame, lat, lon))


def _to_calendar(source: pd.DataFrame, year: int, member: str) -> pd.DataFrame:
    """Place source-year hours on ``year`` by (month, day, hour UTC); 29 Feb repeats 28 Feb."""
    idx = source.index
    key = pd.Index(idx.month * 10000 + idx.day * 100 + idx.hour)
    target = year_span(year)
    day = np.where((target.month == 2) & (target.day == 29), 28, target.day)
    pos = key.get_indexer(target.month * 10000 + day * 100 + target.hour)
    if (pos < 0).any():
        first = target[np.flatnonzero(pos < 0)[0]]
        raise ValueError(f"{member}: no value for {first:%m-%d %H}:00 UTC "
                         f"({int((pos < 0).sum())} hours of {year} missing)")
    return source.iloc[pos].set_axis(target)


def read_city(city: str, year: int = 2018) -> WeatherSeries:
    """Hourly weather of a hisim city on the ``year`` calendar.

    Args:
        city: a name from ``available_cities()`` (case-insensitive; ``Vienna`` → ``Viena``).
        year: calendar year of the output; the 2019 values are placed on it by month, day, hour UTC.

    Returns:
        The weather (8,760 rows for 2018, 8,784 in a leap year) with its location and labels.

    Raises:
        DataError: unknown city (the message lists the available ones).
        ValueError: a file that breaks the format described in the module docstring.
    """
    member = _city_members()[resolve_city(city)]
    source = cached_frame("weather", [archive_path(ARCHIVE)], {"member": member}, _VERSION,
                          lambda: _parse(member))
    lat, lon, clear = (float(source[c].iloc[0]) for c in ("_lat", "_lon", "_clear"))
    frame = _to_calendar(source[list(COLUMNS)], year, member)
    labels = [f"{SOURCE_YEAR} weather on the {year} calendar (same month, day, hour UTC)"]
    if member.endswith(".dat"):
        labels += ["typical-year", "hourly .dat file: header says typical year (mittleres Jahr "
                   "2017-2019), rows say 2019; UTC inferred from solar noon"]
    if clear >= _CLEAR_SKY_FRACTION:
        labels.append(CLEAR_SKY_LABEL)
    return WeatherSeries(frame, lat, lon, member, SOURCE_YEAR, tuple(labels))
