"""Weather, humidity / wet-bulb and PV readers on the real hisim, demandlib and pvlib files.

Hand-checked numbers come from the raw files read with the ``csv`` module (means) or by eye (rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib
import pytest

from forecast.schema import DataError, year_span
from forecast.sources import humidity, solar, weather
from tests.tolerances import EXACT, HAND_CHECKED

# city → (mean of the raw file's Temperature column over all rows, °C; one hour checked by eye:
#         2018 UTC interval start, temp_c, ghi_w_per_m2)
CITIES = {
    # 35,040 rows of 403286_48.85_2.34_2019.csv; rows 2019,6,21,12,{0,15,30,45} (Time Zone 0):
    # T 21.6 21.7 21.7 21.8, GHI 586 584 579 572
    "Paris": (11.786, "2018-06-21T12:00Z", 21.7, 580.25),
    # 902141_48.21_16.38_2019.csv (columns DHI,GHI,DNI,Temperature,...): rows 2019,1,15,9,*:
    # T 2.3 2.4 2.5 2.6, GHI 11 12 11 14
    "Viena": (11.809, "2018-01-15T09:00Z", 2.45, 12.0),
    # 8,760 rows of Milan.dat; row 2019,6,21,13,30 is the hour [12:00, 13:00) UTC: T 28.4, GHI 878
    "Milan": (14.433, "2018-06-21T12:00Z", 28.4, 878.0),
}


@pytest.mark.parametrize("city", list(CITIES))
def test_read_city_shape_span_and_hand_checked_values(city):
    mean_t, ts, temp, ghi = CITIES[city]
    wx = weather.read_city(city, 2018)
    f = wx.frame
    assert f.shape == (8760, 6) and list(f.columns) == list(weather.COLUMNS)
    assert str(f.index.tz) == "UTC"
    assert f.index.equals(year_span(2018))
    assert f.notna().all().all()
    assert f["temp_c"].mean() == pytest.approx(mean_t, abs=HAND_CHECKED)
    assert 0 <= f["ghi_w_per_m2"].min() and f["ghi_w_per_m2"].max() < 1200
    assert f.loc[ts, "temp_c"] == pytest.approx(temp, abs=EXACT)
    assert f.loc[ts, "ghi_w_per_m2"] == pytest.approx(ghi, abs=EXACT)
    assert wx.source_year == 2019 and wx.member.startswith("hisim/inputs/weather/NSRDB")
    assert "2019 weather on the 2018 calendar (same month, day, hour UTC)" in wx.labels


def test_milan_dat_is_utc_typical_year_with_clear_sky_irradiance():
    wx = weather.read_city("Milan")
    assert (wx.lat_deg, wx.lon_deg) == (45.45, 9.18)
    assert "typical-year" in wx.labels and weather.CLEAR_SKY_LABEL in wx.labels
    # After conversion the GHI-weighted hour sits on solar noon (measured +0.002 h); UTC+1: ≈ 1.
    ghi = wx.frame["ghi_w_per_m2"].to_numpy()
    lag = weather.solar_noon_lag_h(wx.frame.index, ghi, wx.lat_deg, wx.lon_deg)
    assert abs(lag) < 0.1
    assert weather.CLEAR_SKY_LABEL not in weather.read_city("Paris").labels


def test_amsterdam_stated_utc_plus_one_is_applied():
    f = weather.read_city("Amsterdam").frame
    # Raw rows 2019,6,21,13,{0,15,30,45} local (Time Zone 1): GHI 693 689 881 875
    assert f.loc["2018-06-21T12:00Z", "ghi_w_per_m2"] == pytest.approx(784.5, abs=EXACT)
    # Raw 2019,1,1,0,0 local is 2018-12-31 23:00 UTC: it fills the last hour of the calendar (T 1.5)
    assert f.loc["2018-12-31T23:00Z", "temp_c"] == pytest.approx(1.5, abs=EXACT)


def test_leap_year_repeats_28_february_and_vienna_alias():
    f = weather.read_city("Vienna", 2020).frame
    assert len(f) == 8784
    pd.testing.assert_series_equal(f.loc["2020-02-29T12:00Z"], f.loc["2020-02-28T12:00Z"],
                                   check_names=False)


def test_unknown_city_lists_available():
    with pytest.raises(DataError, match="Paris.*Viena|Viena.*Paris") as err:
        weather.read_city("Atlantis")
    assert "Atlantis" in str(err.value)
    assert {"Potsdam", "Viena", "Milan", "Madrid", "Copenhagen"} <= set(weather.available_cities())


def test_stull_check_value_and_rh_clipping():
    assert float(humidity.wetbulb_c(20.0, 50.0)) == pytest.approx(13.7, abs=0.1)
    assert float(humidity.wetbulb_c(20.0, 0.0)) == float(humidity.wetbulb_c(20.0, 5.0))
    assert float(humidity.wetbulb_c(20.0, 100.0)) <= 20.0


@pytest.mark.parametrize("city", list(CITIES))
def test_wetbulb_below_dry_bulb(city):
    wx = weather.read_city(city)
    tw, clim = humidity.wetbulb_series(wx.frame, wx.lat_deg, wx.lon_deg)
    assert tw.index.equals(wx.frame.index) and tw.notna().all()
    assert (tw <= wx.frame["temp_c"]).all()
    assert clim.rh_pct.shape == (12, 24) and clim.label == "climatological"
    assert ((clim.rh_pct > 0) & (clim.rh_pct <= 100)).all()


def test_rh_climatology_picks_nearest_source():
    ams = humidity.rh_climatology(52.37, 4.90)
    assert "NLD_Amsterdam062400_IWEC.epw" in ams.source and ams.distance_km < 15
    pot = humidity.rh_climatology(52.41, 13.06)
    assert "TRY2010_04_Jahr.dat" in pot.source and "Potsdam" in pot.source and pot.distance_km < 5
    mil = humidity.rh_climatology(45.45, 9.18)
    assert "tmy_45.000_8.000" in mil.source and mil.distance_km == pytest.approx(105, abs=2)
    with pytest.raises(ValueError, match=r"lat \[-90, 90\]"):
        humidity.rh_climatology(95.0, 0.0)


@pytest.mark.parametrize("city", ["Paris", "Viena", "Potsdam"])
def test_pv_capacity_factor_annual_and_night(city):
    wx = weather.read_city(city)
    cf = solar.pv_capacity_factor(wx, 35.0, 180.0, 14.0)
    assert cf.index.equals(wx.frame.index) and cf.notna().all()
    assert 0.08 <= cf.mean() <= 0.16
    assert cf.min() >= 0 and cf.max() <= 1.0
    mid = wx.frame.index + pd.Timedelta(minutes=30)
    sun = pvlib.solarposition.get_solarposition(mid, wx.lat_deg, wx.lon_deg)
    elevation = sun["elevation"].to_numpy()
    night = elevation < -5
    assert night.sum() > 3000 and np.all(cf.to_numpy()[night] == 0)


def test_pv_rejects_bad_tilt():
    with pytest.raises(ValueError, match=r"tilt_deg=120 is outside \[0, 90\]"):
        solar.pv_capacity_factor(weather.read_city("Paris"), 120, 180, 14)


@pytest.mark.parametrize("city", list(CITIES))
def test_wetbulb_stays_physical_on_hot_hours(city):
    """A hot hour keeps the month-hour's moisture, not its RH: no wet bulb above Europe's records.

    With a mean-RH climatology Paris at 39.8 °C got a 35 °C wet bulb; the highest wet bulbs
    observed in Europe are about 28 °C.
    """
    wx = weather.read_city(city)
    tw, clim = humidity.wetbulb_series(wx.frame, wx.lat_deg, wx.lon_deg)
    assert tw.max() <= 28.0
    hottest = wx.frame["temp_c"].idxmax()
    # The hottest hour is drier (RH) than the climatological mean RH of its month-hour.
    rh_mean = clim.rh_pct[hottest.month - 1, hottest.hour]
    assert float(tw[hottest]) < float(humidity.wetbulb_c(wx.frame["temp_c"][hottest], rh_mean))


def test_mountain_stations_are_skipped():
    prague = humidity.rh_climatology(50.09, 14.42)
    assert "Chemnitz" in prague.source
    assert not any(m in prague.source for m in humidity.MOUNTAIN_STATIONS)
