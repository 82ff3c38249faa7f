"""LLM load: the seeded client draw, the local-time calendar, the bootstrap from training days only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.schema import year_span
from forecast.sources import llm_load
from tests.tolerances import CONSERVATION, EXACT


@pytest.fixture(scope="module")
def load(default_cfg):
    return llm_load.read_load(default_cfg.scenario, year_span(2018))


def test_every_client_placed_whole_and_seeded(load, default_cfg):
    a = load.assignment
    assert a["client"].nunique() == 162                       # m-large has 162 clients
    np.testing.assert_allclose(a.groupby("client")["fraction"].sum(), 1.0, rtol=0, atol=EXACT)
    assert a["fraction"].between(0, 1, inclusive="right").all()
    assert not a.duplicated(["client", "region", "class"]).any()
    again = llm_load.read_load(default_cfg.scenario, year_span(2018))
    pd.testing.assert_frame_equal(a, again.assignment)
    shares = a.groupby("class")["mean_req_per_s"].sum() / a["mean_req_per_s"].sum()
    for cls in default_cfg.scenario.classes:                  # targets 60 / 25 / 15 %, met by splitting
        assert shares[cls.name] == pytest.approx(cls.load_share, rel=CONSERVATION)


def test_recorded_hour_equals_raw_windows(load, default_cfg):
    raw = pd.read_csv(default_cfg.scenario.data.resolved_load_dir() / "servegen_m_large_clients.csv.gz")
    parts = load.assignment.query("region == 'Paris' and `class` == 'chat'").set_index("client")["fraction"]
    # Paris local Wed 5 Dec 2018 14:00 = day 2, hour 14 = 13:00 UTC; mean of six 600-s windows per client
    t0 = 2 * 86400 + 14 * 3600
    sel = raw[raw["client"].isin(parts.index) & (raw["t_seconds"] >= t0) & (raw["t_seconds"] < t0 + 3600)]
    expected = (sel.groupby("client")["rate_req_per_s"].mean() * parts).sum()
    sig = load.signals
    row = sig[(sig["site"] == "Paris/chat") & (sig["ts"] == pd.Timestamp("2018-12-05T13:00Z"))].iloc[0]
    assert row["flag"] == "recorded"
    assert row["value"] == pytest.approx(expected, rel=CONSERVATION)
    # London is UTC+0 in December: its day 0 starts at 00:00 UTC, Paris's an hour earlier
    first = load.signals[load.signals["flag"] == "recorded"].groupby("site")["ts"].min()
    assert first["London/chat"] == pd.Timestamp("2018-12-03T00:00Z")
    assert first["Paris/chat"] == pd.Timestamp("2018-12-02T23:00Z")


def test_recorded_load_is_conserved(load, default_cfg):
    raw = pd.read_csv(default_cfg.scenario.data.resolved_load_dir() / "servegen_m_large_clients.csv.gz")
    rec = load.signals[load.signals["flag"] == "recorded"]
    assert rec.groupby("site").size().eq(14 * 24).all()
    # Σ over streams and recorded hours = Σ over clients of hourly means (each client once)
    total_hourly = raw.assign(h=raw["t_seconds"] // 3600).groupby(["client", "h"])["rate_req_per_s"].mean().sum()
    assert rec["value"].sum() == pytest.approx(total_hourly, rel=CONSERVATION)


def test_bootstrap_draws_whole_training_days_of_the_same_weekday(load, default_cfg):
    s = load.signals.query("site == 'Berlin/code'").set_index("ts")
    local = s.index.tz_convert("Europe/Berlin")
    day0 = pd.Timestamp("2018-12-03")
    frame = pd.DataFrame({"v": s["value"].to_numpy(), "flag": s["flag"].to_numpy(),
                          "date": local.tz_localize(None).normalize(), "hour": local.hour})
    frame = frame.drop_duplicates(["date", "hour"])
    days = frame.pivot(index="date", columns="hour", values="v")
    flags = frame.groupby("date")["flag"].first()
    training = {d: days.loc[day0 + pd.Timedelta(days=d)].to_numpy() for d in range(9)}
    checked = 0
    for date in days.index[(flags == "resampled").to_numpy()]:
        row = days.loc[date].to_numpy()
        if np.isnan(row).any():           # DST days and the year's edges: partial days
            continue
        matches = [d for d, prof in training.items() if np.allclose(prof, row, rtol=0, atol=1e-12)]
        assert matches, f"{date:%Y-%m-%d} is not a training day"
        assert all((day0 + pd.Timedelta(days=d)).weekday() == date.weekday() for d in matches)
        checked += 1
    assert checked > 300
    # test days (11–13) never serve as donors
    assert set(load.donors.unique()) <= set(range(9))


def test_token_lengths_from_azure(load):
    t = load.tokens
    assert t.loc["conv", "requests"] == 19366 and t.loc["code", "requests"] == 8819
    assert t.loc["conv", "prompt_tokens_mean"] == pytest.approx(1155, abs=5)
    assert t.loc["conv", "output_tokens_mean"] == pytest.approx(211, abs=2)
    assert t.loc["code", "prompt_tokens_mean"] > t.loc["conv", "prompt_tokens_mean"]
    assert t.loc["code", "output_tokens_mean"] < t.loc["conv", "output_tokens_mean"]


def test_missing_load_dir_says_where_files_go(default_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("GREENLLM_LOAD_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="LLM load data not found: .*nowhere lacks .*GREENLLM_LOAD_DIR"):
        llm_load.read_load(default_cfg.scenario, year_span(2018))
