"""Climatological humidity (month × UTC hour) and wet-bulb temperature (Stull 2011).

The hisim weather files carry no humidity, so humidity comes from the nearest (great-circle) of
17 typical-year files, averaged to 12 × 24 tables of month × UTC hour. The table kept for the
wet bulb is the mean *water-vapour pressure* ``e = RH · e_s(T)`` (Magnus formula), not the mean
RH: the air's moisture content changes little within a month-hour, while RH falls as the air
warms. Applying a mean RH to an unusually hot hour would invent impossible wet bulbs (≈ 35 °C in
Paris at 39.8 °C with 75 % RH); with the mean vapour pressure the hour's RH is
``e / e_s(T_actual)``, clipped to Stull's 5…99 %. The mean RH table is kept for reports.

* the 15 German DWD test-reference years in the demandlib 0.2.2 wheel,
  ``demandlib/vdi/resources_weather/TRY2010_XX_Jahr.dat`` (UTF-8 text; station in the line
  ``Station: <name>``, location in ``Lage: 53°32'N <- B.   8°35'O <- L.`` (O = Ost = east); data
  after the line ``***`` in whitespace-separated columns ``RG IS MM DD HH N WR WG t p x RF ...``;
  ``HH`` 1…24 is MEZ = UTC+1 and ``RF`` the relative humidity, %). Mountain stations
  (``MOUNTAIN_STATIONS``: Fichtelberg 1,213 m, Stötten 734 m, Braunlage 607 m) are skipped: their
  air holds less water than a lowland city's, so Prague takes Chemnitz rather than Fichtelberg;
* two EPW files in the pvlib 0.16.1 sdist, read with ``pvlib.iotools.read_epw`` from a StringIO:
  ``tests/data/NLD_Amsterdam062400_IWEC.epw`` (IWEC, Amsterdam Schiphol, TZ +1) and
  ``tests/data/tmy_45.000_8.000_2005_2023.epw`` (a TMY at 45°N 8°E, data type "ECMWF/ERA", TZ +1).
  Both stated offsets agree with the sun: with TZ +1 the GHI-weighted hour falls +0.07 h from
  solar noon for IWEC (values closing the hour) and −0.13 h for the TMY (values at the labelled
  instant); read as UTC they would be ≈ 1 h and ≈ 0.9 h late.

Time convention: in all files the value labelled hour ``h`` (1…24, local standard time with
offset ``tz``) is taken to close the hour, so it is assigned to the UTC hour of day
``(h − 1 − tz) mod 24`` of the interval ``[ts, ts + 1 h)`` (for the TMY, whose values are at the
labelled instant, that is half an hour early: immaterial for month × hour means).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pvlib

from forecast.sources._archive import archive_path, cached_frame, list_members, read_member

__all__ = [
    "EPW_MEMBERS",
    "MOUNTAIN_STATIONS",
    "RH_VALID_PCT",
    "RhClimatology",
    "T_VALID_C",
    "TRY_PREFIX",
    "rh_climatology",
    "saturation_vp_hpa",
    "wetbulb_c",
    "wetbulb_series",
]

TRY_PREFIX = "demandlib/vdi/resources_weather/TRY2010_"
EPW_MEMBERS = ("pvlib-0.16.1/tests/data/NLD_Amsterdam062400_IWEC.epw",
               "pvlib-0.16.1/tests/data/tmy_45.000_8.000_2005_2023.epw")
RH_VALID_PCT = (5.0, 99.0)   # Stull (2011) fitted range of relative humidity, %
T_VALID_C = (-20.0, 50.0)    # Stull (2011) fitted range of air temperature, °C
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG), km
_HOUR_COLS = [f"m{m:02d}h{h:02d}" for m in range(1, 13) for h in range(24)]
_VP_COLS = [f"vp_{c}" for c in _HOUR_COLS]
_VERSION = 2
# DWD TRY2010 stations on mountains, not representative of a city's humidity (TRY 8, 11, 14).
MOUNTAIN_STATIONS = ("Braunlage", "Fichtelberg", "Stoetten")


@dataclass(frozen=True, eq=False)
class RhClimatology:
    """Mean relative humidity by month and UTC hour from one typical-year file.

    Attributes:
        rh_pct: shape (12, 24): ``rh_pct[month - 1, utc_hour]``, %.
        vp_hpa: shape (12, 24): mean water-vapour pressure by month and UTC hour, hPa.
        source: ``<archive member> (<station>)``.
        distance_km: great-circle distance from the requested point to the station, km.
        lat_deg: station latitude, degrees north.
        lon_deg: station longitude, degrees east.
        label: ``"climatological"`` (a schema flag).
    """

    rh_pct: np.ndarray
    vp_hpa: np.ndarray
    source: str
    distance_km: float
    lat_deg: float
    lon_deg: float
    label: str = "climatological"


def saturation_vp_hpa(temp_c: np.ndarray | float) -> np.ndarray:
    """Saturation vapour pressure over water, Magnus formula (Alduchov & Eskridge 1996), hPa."""
    t = np.asarray(temp_c, dtype=float)
    return 6.1094 * np.exp(17.625 * t / (t + 243.04))


def _month_hour_table(month: np.ndarray, hour_1_24: np.ndarray, values: np.ndarray,
                      tz_h: float, member: str) -> np.ndarray:
    """12 × 24 mean by month and UTC hour (hour 1…24 in local standard time closes the hour)."""
    utc_hour = (np.asarray(hour_1_24, dtype=int) - 1 - int(round(tz_h))) % 24
    table = pd.Series(np.asarray(values, dtype=float)).groupby(
        [np.asarray(month, dtype=int), utc_hour]).mean().unstack()
    if table.shape != (12, 24) or table.isna().to_numpy().any():
        raise ValueError(f"{member}: humidity does not cover every month × hour")
    return table.to_numpy()


def _tables(month: np.ndarray, hour: np.ndarray, rh_pct: np.ndarray, temp_c: np.ndarray,
            tz_h: float, member: str) -> np.ndarray:
    """(2, 12, 24): mean RH (%) and mean vapour pressure (hPa) by month × UTC hour."""
    vp = np.asarray(rh_pct, dtype=float) / 100.0 * saturation_vp_hpa(temp_c)
    return np.stack([_month_hour_table(month, hour, rh_pct, tz_h, member),
                     _month_hour_table(month, hour, vp, tz_h, member)])


def _dms(deg: str, minutes: str, hemi: str) -> float:
    value = float(deg) + float(minutes) / 60.0
    return -value if hemi in ("S", "W") else value


def _parse_try(member: str) -> tuple[str, float, float, np.ndarray]:
    """A DWD TRY2010 file → (station, lat °N, lon °E, (2, 12, 24) RH % and vapour pressure hPa)."""
    raw = read_member("demandlib", member)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    station = re.search(r"Station:\s*(.+?)\s{2,}", text)
    loc = re.search(r"Lage:\s*(\d+)°(\d+)'([NS]).*?(\d+)°(\d+)'([OEW])", text)
    if station is None or loc is None or "\n***" not in text:
        raise ValueError(f"{member}: expected 'Station:', 'Lage: dd°mm'N ... dd°mm'O' "
                         "and a '***' line")
    lat, lon = _dms(*loc.group(1, 2, 3)), _dms(*loc.group(4, 5, 6))
    header = text[:text.index("\n***")].splitlines()[-1].split()
    body = io.StringIO(text.split("\n***", 1)[1])
    data = pd.read_csv(body, sep=r"\s+", header=None, names=header)
    if len(data) != 8760 or not data["RF"].between(1, 100).all() or not data["t"].between(-50, 50).all():
        raise ValueError(f"{member}: expected 8760 rows with RF in 1..100 % and t in -50..50 °C")
    table = _tables(data["MM"], data["HH"], data["RF"], data["t"], 1.0, member)  # MEZ = UTC+1
    return station.group(1), lat, lon, table


def _parse_epw(member: str) -> tuple[str, float, float, np.ndarray]:
    """An EPW file in the pvlib sdist → (city, lat °N, lon °E, (2, 12, 24) RH % and vapour pressure hPa)."""
    text = read_member("pvlib-sdist", member).decode("utf-8", errors="replace")
    data, meta = pvlib.iotools.read_epw(io.StringIO(text))
    if len(data) != 8760 or not data["relative_humidity"].between(0, 100).all():
        raise ValueError(f"{member}: expected 8760 rows with relative_humidity in 0..100 %")
    table = _tables(data["month"].to_numpy(), data["hour"].to_numpy(),
                    data["relative_humidity"].to_numpy(), data["temp_air"].to_numpy(),
                    float(meta["TZ"]), member)
    return str(meta["city"]), float(meta["latitude"]), float(meta["longitude"]), table


def _build_sources() -> pd.DataFrame:
    """One row per source file: member, station, lat_deg, lon_deg, 288 RH and 288 vapour-pressure columns."""
    rows = []
    tries = [m for m in list_members("demandlib", TRY_PREFIX) if m.endswith("_Jahr.dat")]
    for member, parse in [(m, _parse_try) for m in tries] + [(m, _parse_epw) for m in EPW_MEMBERS]:
        station, lat, lon, table = parse(member)
        rows.append({"member": member, "station": station, "lat_deg": lat, "lon_deg": lon,
                     **dict(zip(_HOUR_COLS, table[0].ravel(), strict=True)),
                     **dict(zip(_VP_COLS, table[1].ravel(), strict=True))})
    return pd.DataFrame(rows)


def _sources() -> pd.DataFrame:
    return cached_frame("rh_climatology", [archive_path("demandlib"), archive_path("pvlib-sdist")],
                        {"epw": list(EPW_MEMBERS), "try": TRY_PREFIX}, _VERSION, _build_sources)


def _great_circle_km(lat1: float, lon1: float, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Haversine distance, km."""
    p1, p2 = math.radians(lat1), np.radians(lat2)
    dlat, dlon = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dlat / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def rh_climatology(lat_deg: float, lon_deg: float) -> RhClimatology:
    """Month × UTC-hour relative humidity of the source nearest to a point.

    Args:
        lat_deg: latitude, degrees north, in [-90, 90].
        lon_deg: longitude, degrees east, in [-180, 180].

    Raises:
        ValueError: coordinates out of range.
    """
    if not (-90.0 <= lat_deg <= 90.0 and -180.0 <= lon_deg <= 180.0):
        raise ValueError(f"rh_climatology: ({lat_deg}, {lon_deg}) is outside lat [-90, 90], "
                         "lon [-180, 180] degrees")
    src = _sources()
    src = src[~src["station"].str.strip().isin(MOUNTAIN_STATIONS)].reset_index(drop=True)
    dist = _great_circle_km(lat_deg, lon_deg, src["lat_deg"].to_numpy(), src["lon_deg"].to_numpy())
    i = int(np.argmin(dist))
    row = src.iloc[i]
    table = row[_HOUR_COLS].to_numpy(dtype=float).reshape(12, 24)
    vp = row[_VP_COLS].to_numpy(dtype=float).reshape(12, 24)
    return RhClimatology(table, vp, f"{row['member']} ({row['station']})", float(dist[i]),
                         float(row["lat_deg"]), float(row["lon_deg"]))


def wetbulb_c(temp_c: np.ndarray | float, rh_pct: np.ndarray | float) -> np.ndarray:
    """Wet-bulb temperature from air temperature and relative humidity (Stull 2011), °C.

    Tw = T·atan(0.151977·(RH + 8.313659)^½) + atan(T + RH) − atan(RH − 1.676331)
         + 0.00391838·RH^1.5·atan(0.023101·RH) − 4.686035   (T in °C, RH in %, at 1013.25 hPa).

    Valid for RH 5…99 % and T −20…50 °C (errors −1…+0.65 °C; worst at low RH and low T). RH is
    clipped into 5…99 %; T outside −20…50 °C is extrapolated. Where the fit would exceed the dry
    bulb (high RH), the result is capped at T, since a wet bulb cannot be warmer than the air.

    Args:
        temp_c: dry-bulb air temperature, °C.
        rh_pct: relative humidity, %.

    Returns:
        Wet-bulb temperature, °C, broadcast over the inputs.
    """
    t = np.asarray(temp_c, dtype=float)
    rh = np.clip(np.asarray(rh_pct, dtype=float), *RH_VALID_PCT)
    tw = (t * np.arctan(0.151977 * np.sqrt(rh + 8.313659)) + np.arctan(t + rh)
          - np.arctan(rh - 1.676331) + 0.00391838 * rh ** 1.5 * np.arctan(0.023101 * rh) - 4.686035)
    return np.minimum(tw, t)


def wetbulb_series(weather_frame: pd.DataFrame, lat_deg: float,
                   lon_deg: float) -> tuple[pd.Series, RhClimatology]:
    """Hourly wet-bulb temperature from a weather frame and the nearest humidity climatology.

    The hour's RH is the climatological vapour pressure over the saturation pressure at the
    hour's own temperature (see the module docstring).

    Args:
        weather_frame: tz-aware UTC index, column ``temp_c`` (°C).
        lat_deg: latitude of the weather, degrees north.
        lon_deg: longitude of the weather, degrees east.

    Returns:
        ``wetbulb_c`` (°C, same index) and the RH climatology used.
    """
    idx = weather_frame.index
    if not isinstance(idx, pd.DatetimeIndex) or str(idx.tz) != "UTC":
        raise ValueError("wetbulb_series: weather_frame needs a tz-aware UTC DatetimeIndex")
    clim = rh_climatology(lat_deg, lon_deg)
    t = weather_frame["temp_c"].to_numpy()
    vp = clim.vp_hpa[idx.month.to_numpy() - 1, idx.hour.to_numpy()]
    rh = 100.0 * vp / saturation_vp_hpa(t)
    tw = wetbulb_c(t, rh)
    return pd.Series(tw, index=idx, name="wetbulb_c"), clim
