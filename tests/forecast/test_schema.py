"""The data contract: bad input gets an error naming file, site, signal and time range; short gaps
are filled and counted; nothing else changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.schema import DataError, validate_long
from forecast.sources.user import read_user_long
from tests.tolerances import EXACT


def _frame(n=48, signal="carbon_g_per_kwh", site="DE", start="2018-12-03T00:00:00+00:00"):
    ts = pd.date_range(start, periods=n, freq="1h")
    return pd.DataFrame({"site": site, "ts": ts.astype(str), "signal": signal,
                         "value": 100.0 + np.arange(n, dtype=float)})


def _csv(tmp_path, df, name="in.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_clean_input_passes_unchanged(tmp_path):
    df = _frame()
    out, report = read_user_long(_csv(tmp_path, df))
    assert report.total_filled_h == 0
    assert (out["flag"] == "recorded").all()
    assert np.abs(out["value"].to_numpy() - df["value"].to_numpy()).max() <= EXACT
    assert str(out["ts"].dt.tz) == "UTC"


def test_offsets_are_converted_to_utc(tmp_path):
    df = _frame(start="2018-12-03T01:00:00+01:00")
    out, _ = read_user_long(_csv(tmp_path, df))
    assert out["ts"].iloc[0] == pd.Timestamp("2018-12-03T00:00Z")


def test_naive_timestamps_rejected(tmp_path):
    df = _frame()
    df["ts"] = df["ts"].str.replace("+00:00", "", regex=False)
    with pytest.raises(DataError, match=r"in\.csv: column 'ts' has no time zone: all timestamps lack an offset"):
        read_user_long(_csv(tmp_path, df))


def test_mixed_time_zones_rejected(tmp_path):
    df = _frame()
    df.loc[5, "ts"] = df.loc[5, "ts"].replace("+00:00", "")
    with pytest.raises(DataError, match="mixed time zones: some timestamps lack an offset .*row 5"):
        read_user_long(_csv(tmp_path, df))


def test_duplicates_rejected(tmp_path):
    df = pd.concat([_frame(), _frame().iloc[[3]]], ignore_index=True)
    with pytest.raises(DataError,
                       match="site DE, signal carbon_g_per_kwh: 2 duplicate rows, first at 2018-12-03 03:00 UTC"):
        read_user_long(_csv(tmp_path, df))


def test_unsorted_rejected(tmp_path):
    df = _frame()
    df.iloc[[10, 11]] = df.iloc[[11, 10]].to_numpy()
    with pytest.raises(DataError,
                       match="time is not sorted \\(2018-12-03 11:00 UTC is followed by 2018-12-03 10:00 UTC\\)"):
        read_user_long(_csv(tmp_path, df))


def test_negative_carbon_and_load_rejected_negative_price_allowed(tmp_path):
    df = _frame()
    df.loc[7, "value"] = -1.0
    with pytest.raises(DataError, match=r"site DE, signal carbon_g_per_kwh: 1 value\(s\) outside "
                                        r"\[0, 2000\] gCO2/kWh, from 2018-12-03 07:00"):
        read_user_long(_csv(tmp_path, df))
    load = _frame(signal="load_req_per_s", site="Paris/chat")
    load.loc[3, "value"] = -5.0
    with pytest.raises(DataError, match="Paris/chat, signal load_req_per_s"):
        read_user_long(_csv(tmp_path, load))
    price = _frame(signal="price_eur_per_mwh")
    price.loc[3, "value"] = -50.0
    out, _ = read_user_long(_csv(tmp_path, price))
    assert out["value"].min() == -50.0


def test_short_gaps_filled_and_counted(tmp_path):
    df = _frame()
    df.loc[10, "value"] = np.nan          # NaN: 1 h
    df = df.drop(index=[20, 21, 22])      # missing rows: 3 h
    out, report = read_user_long(_csv(tmp_path, df), max_gap_h=3)
    assert report.filled_h == {("DE", "carbon_g_per_kwh"): 4}
    assert len(out) == 48
    assert (out["flag"] == "filled").sum() == 4
    # linear interpolation on a linear ramp reproduces it exactly
    assert np.abs(out["value"].to_numpy() - (100.0 + np.arange(48))).max() < 1e-9


def test_long_gap_rejected_with_range(tmp_path):
    df = _frame().drop(index=range(10, 20))
    with pytest.raises(DataError,
                       match="gap of 10 h from 2018-12-03 10:00 UTC to 2018-12-03 19:00 UTC .* exceeds max_gap_h=6"):
        read_user_long(_csv(tmp_path, df), max_gap_h=6)


def test_unknown_signal_and_columns(tmp_path):
    with pytest.raises(DataError, match="unknown signal\\(s\\) \\['price'\\]"):
        read_user_long(_csv(tmp_path, _frame(signal="price")))
    with pytest.raises(DataError, match="missing column\\(s\\) \\['value'\\]"):
        validate_long(_frame().drop(columns="value"), "x")


def test_parquet_with_naive_datetimes_rejected(tmp_path):
    df = _frame()
    df["ts"] = pd.to_datetime(df["ts"]).dt.tz_localize(None)
    path = tmp_path / "in.parquet"
    df.to_parquet(path)
    with pytest.raises(DataError, match="in.parquet: column 'ts' has no time zone"):
        read_user_long(path)


def test_missing_user_file(tmp_path):
    with pytest.raises(DataError, match="user data file not found"):
        read_user_long(tmp_path / "nope.csv")
