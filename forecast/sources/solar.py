"""On-site PV output per kWp from hourly weather, with pvlib's PVWatts chain.

For each hourly interval ``[ts, ts + 1 h)`` of a ``WeatherSeries``:

1. sun position at the interval midpoint ``ts + 30 min`` (``pvlib.solarposition``, at the weather
   file's latitude/longitude, with its pressure and temperature for refraction);
2. plane-of-array irradiance, ``pvlib.irradiance.get_total_irradiance`` with the Hay-Davies sky
   model, extraterrestrial DNI from ``get_extra_radiation`` and ground albedo ``ALBEDO``;
3. cell temperature, ``pvlib.temperature.faiman`` (U0 = 25 W/m²K, U1 = 6.84 W·s/m³K) from air
   temperature and wind speed;
4. DC power, ``pvlib.pvsystem.pvwatts_dc`` with pdc0 = 1 kW per kWp and γ = −0.0037 /K, times
   ``1 − system_losses_pct / 100`` (a flat PVWatts loss; the default 14 % ≈ pvlib's
   ``pvwatts_losses()`` 14.08 %: soiling, shading, mismatch, wiring, LID, availability, ...);
5. AC power, ``pvlib.inverter.pvwatts`` with DC rating ``INVERTER_PDC0_KW_PER_KWP`` = 1/0.96 and
   nominal efficiency 0.96, i.e. an AC nameplate of 1 kW per kWp (DC/AC ratio 1.0: no clipping).

No incidence-angle, spectral or snow model beyond the flat losses. The result is clipped to ≥ 0
(inverter night tare is not modelled) and is 0 whenever the irradiance is 0.
"""

from __future__ import annotations

import pandas as pd
import pvlib

from forecast.sources.weather import WeatherSeries

__all__ = ["ALBEDO", "GAMMA_PDC_PER_K", "INVERTER_PDC0_KW_PER_KWP", "pv_capacity_factor"]

ALBEDO = 0.2                      # ground reflectance, fraction
GAMMA_PDC_PER_K = -0.0037         # DC power temperature coefficient, 1/K
INVERTER_ETA_NOM = 0.96           # PVWatts nominal inverter efficiency, fraction
INVERTER_PDC0_KW_PER_KWP = 1.0 / INVERTER_ETA_NOM  # inverter DC rating → 1 kW AC per kWp DC


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"pv_capacity_factor: {name}={value} is outside [{lo:g}, {hi:g}]")


def _poa_global_w_per_m2(weather: WeatherSeries, tilt_deg: float, azimuth_deg: float) -> pd.Series:
    """Plane-of-array global irradiance at each interval midpoint, W/m²."""
    wx = weather.frame
    mid = wx.index + pd.Timedelta(minutes=30)
    sun = pvlib.solarposition.get_solarposition(
        mid, weather.lat_deg, weather.lon_deg,
        pressure=wx["pressure_hpa"].to_numpy() * 100.0, temperature=wx["temp_c"].to_numpy())
    poa = pvlib.irradiance.get_total_irradiance(
        tilt_deg, azimuth_deg, sun["apparent_zenith"].to_numpy(), sun["azimuth"].to_numpy(),
        wx["dni_w_per_m2"].to_numpy(), wx["ghi_w_per_m2"].to_numpy(), wx["dhi_w_per_m2"].to_numpy(),
        dni_extra=pvlib.irradiance.get_extra_radiation(mid).to_numpy(), albedo=ALBEDO,
        model="haydavies")
    return pd.Series(poa["poa_global"], index=wx.index).fillna(0.0).clip(lower=0.0)


def pv_capacity_factor(weather: WeatherSeries, tilt_deg: float = 35.0, azimuth_deg: float = 180.0,
                       system_losses_pct: float = 14.0) -> pd.Series:
    """Hourly AC output per kWp DC nameplate (capacity factor), kW/kWp.

    Args:
        weather: hourly weather (``read_city``), UTC interval starts.
        tilt_deg: module tilt from horizontal, degrees, in [0, 90].
        azimuth_deg: module azimuth, degrees clockwise from north (180 = south), in [0, 360].
        system_losses_pct: flat DC system losses, %, in [0, 99].

    Returns:
        ``solar_cf`` (kW AC per kWp DC, ≥ 0), indexed like ``weather.frame``.

    Raises:
        ValueError: a parameter outside its range.
    """
    _check_range("tilt_deg", tilt_deg, 0.0, 90.0)
    _check_range("azimuth_deg", azimuth_deg, 0.0, 360.0)
    _check_range("system_losses_pct", system_losses_pct, 0.0, 99.0)
    wx = weather.frame
    poa = _poa_global_w_per_m2(weather, tilt_deg, azimuth_deg)
    t_cell = pvlib.temperature.faiman(poa, wx["temp_c"], wx["wind_m_per_s"])
    pdc = pvlib.pvsystem.pvwatts_dc(poa, t_cell, pdc0=1.0, gamma_pdc=GAMMA_PDC_PER_K)
    pdc = pdc * (1.0 - system_losses_pct / 100.0)
    pac = pvlib.inverter.pvwatts(pdc, pdc0=INVERTER_PDC0_KW_PER_KWP, eta_inv_nom=INVERTER_ETA_NOM)
    return pd.Series(pac, index=wx.index, name="solar_cf").fillna(0.0).clip(lower=0.0)
