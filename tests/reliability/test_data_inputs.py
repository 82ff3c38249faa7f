"""Bad data inputs below the CLI: the parsed-data cache never hides or keeps a damaged file, the
plausibility ranges let real series through (negative prices, sparse load) and stop unit slips, and
DST artefacts are repaired and counted while other duplicates stay errors."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from forecast.dataset import build_dataset
from forecast.schema import DataError, check_plausible, validate_long
from forecast.sources import llm_load
from pipelines.config import load_config
from tests.conftest import CONFIGS
from tests.reliability.cases_data import SERVEGEN, _copy_load, _packaged_load_dir, _series

BERLIN = "Europe/Berlin"


def _frame(values, signal="price_eur_per_mwh", site="DE", start="2018-06-01T00:00:00+00:00"):
    ts = pd.date_range(start, periods=len(values), freq="1h")
    return pd.DataFrame({"site": site, "ts": ts.astype(str), "signal": signal, "value": values})


def _parsed(cache):
    return sorted((cache / "parsed" / "servegen_10min").glob("*.parquet"))


def test_damaged_load_file_is_never_cached_nor_hidden_by_the_cache(fresh_cache, tmp_path):
    path = _copy_load(tmp_path)
    good = llm_load.read_servegen_windows(path, "m-large", 14)
    assert len(_parsed(fresh_cache)) == 1
    data = (path / SERVEGEN).read_bytes()
    (path / SERVEGEN).write_bytes(data[: len(data) // 3])          # damaged in place
    with pytest.raises(DataError, match="cannot be read .*truncated"):
        llm_load.read_servegen_windows(path, "m-large", 14)
    scaled = pd.read_csv(_packaged_load_dir() / SERVEGEN)
    scaled["rate_req_per_s"] *= 1000                               # readable, but ×1000
    scaled.to_csv(path / SERVEGEN, index=False, compression="gzip")
    with pytest.raises(DataError, match=r"median 1\.87\d*e\+05 req/s"):
        llm_load.read_servegen_windows(path, "m-large", 14)
    assert len(_parsed(fresh_cache)) == 1                          # neither failure wrote a cache file
    shutil.copyfile(_packaged_load_dir() / SERVEGEN, path / SERVEGEN)
    pd.testing.assert_frame_equal(llm_load.read_servegen_windows(path, "m-large", 14), good)


def test_fractional_token_counts_rejected(tmp_path):
    path = _copy_load(tmp_path)
    conv = pd.read_csv(path / llm_load.AZURE_FILES["conv"])
    conv["GeneratedTokens"] = conv["GeneratedTokens"] + 0.5
    conv.to_csv(path / llm_load.AZURE_FILES["conv"], index=False, compression="gzip")
    with pytest.raises(DataError, match="GeneratedTokens must hold whole token counts ≥ 0; line 2 holds 44.5"):
        llm_load.token_stats(path)


@pytest.mark.parametrize("values", [
    np.r_[np.full(100, -20.0), np.linspace(-5, 40, 100)],     # a windy week: many negative prices
    np.r_[np.full(60, 0.0), np.linspace(-10, 30, 60)],         # median near zero, real spread
])
def test_real_negative_or_near_zero_prices_pass(values):
    out, _ = validate_long(_frame(values), "x")
    assert np.array_equal(out["value"].to_numpy(), values)


def test_price_in_eur_per_kwh_rejected_with_median():
    values = _series("DE", "price_eur_per_mwh").to_numpy()[:500] / 1000
    with pytest.raises(DataError, match=r"site DE, signal price_eur_per_mwh: .*median is 0\.0\d+ .*EUR/kWh \(÷1000\)"):
        check_plausible(_frame(values), "x")
    check_plausible(_frame(values * 1000), "x")


def test_spring_dst_missing_hour_and_autumn_duplicate_counted():
    price = _series("DE", "price_eur_per_mwh")
    local = price.index.tz_convert(BERLIN)
    text = pd.Series(local.strftime("%Y-%m-%dT%H:%M:%S%z"))
    text[local.get_loc(pd.Timestamp("2018-10-28T01:00Z"))] = "2018-10-28T02:00:00+0200"  # repeated 02:00
    df = pd.DataFrame({"site": "DE", "ts": text, "signal": "price_eur_per_mwh", "value": price.to_numpy()})
    df = df.drop(index=local.get_loc(pd.Timestamp("2018-03-25T01:00Z")))                  # spring: lost hour
    out, report = validate_long(df, "x", dst_zones=(BERLIN,))
    assert report.repairs == {("DE", "price_eur_per_mwh"): {"DST duplicate": 1, "DST missing hour": 2}}
    assert report.filled_h[("DE", "price_eur_per_mwh")] == 2 and len(out) == 8760
    merged = out.set_index("ts").loc[pd.Timestamp("2018-10-28T00:00Z")]
    assert merged["flag"] == "filled"
    assert merged["value"] == pytest.approx(price[["2018-10-28T00:00Z", "2018-10-28T01:00Z"]].mean())


def test_duplicate_away_from_dst_and_unsorted_input_stay_errors():
    df = _frame(np.linspace(10, 50, 48), start="2018-10-27T12:00:00+00:00")
    dup = pd.concat([df, df.iloc[[2]]], ignore_index=True)
    with pytest.raises(DataError, match="2 duplicate rows, first at 2018-10-27 14:00 UTC .not at a DST change"):
        validate_long(dup, "x", dst_zones=(BERLIN,))
    at_dst = df.iloc[[12]]                                          # 2018-10-28 00:00 UTC, repeated
    unsorted = pd.concat([df.iloc[:13], at_dst, df.iloc[13:]], ignore_index=True)
    unsorted.iloc[[3, 4]] = unsorted.iloc[[4, 3]].to_numpy()
    with pytest.raises(DataError, match="time is not sorted"):
        validate_long(unsorted, "x", dst_zones=(BERLIN,))


def test_rows_outside_the_year_rejected():
    df = _frame(np.full(10, 40.0), start="2017-12-31T20:00:00+00:00")
    with pytest.raises(DataError, match=r"4 row\(s\) outside the scenario's year 2018 .*from 2017-12-31 20:00 UTC"):
        validate_long(df, "x", year=2018)
    validate_long(df, "x")                                          # no year: the packaged readers' case


def test_every_load_stream_rescaled_alike_passes(tmp_path, smoke_cfg):
    rows = [pd.DataFrame({"site": s, "ts": _series(s, "load_req_per_s").index.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                          "signal": "load_req_per_s", "value": _series(s, "load_req_per_s").to_numpy() * 1000})
            for s in smoke_cfg.scenario.load_series]
    pd.concat(rows).to_csv(tmp_path / "load.csv", index=False)
    cfg = load_config(CONFIGS / "smoke.yaml", [f"data.user_data={tmp_path / 'load.csv'}"])
    data = build_dataset(cfg.scenario)
    assert data.wide("load_req_per_s")["Paris/chat"].median() == pytest.approx(
        1000 * _series("Paris/chat", "load_req_per_s").median())
