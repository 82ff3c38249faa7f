"""The load model's rolling interval calibration (``forecast.load_calibration_window_h``): the
quantiles below the median refitted at every forecast on its own forecasts of the last origins whose
targets are known, nothing read at or after the issue time, the validation factors elsewhere."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest

from forecast.calibration import apply_spread_factors, fit_spread_factors
from forecast.features import lookback_frame
from forecast.models import LearnedForecaster
from forecast.settings import ForecastSettings
from tests.tolerances import EXACT

LOAD = "load_req_per_s"
SERIES = ("R1/chat", "R1/code")
WINDOW_H = 12
SETTINGS = ForecastSettings(signals=(LOAD,), lookback_load_h=24, level_h=6, hidden=16, embedding_dim=2,
                            dropout=0.0, batch_size=64, max_epochs=8, patience=8, batches_per_epoch=8,
                            seed=3, num_threads=1, load_input_step_min=60, horizon_steps=6,
                            load_calibration_window_h=WINDOW_H)
T0 = pd.Timestamp("2018-12-10T00:00Z")


def hourly_load(days: int = 8, seed: int = 7) -> pd.DataFrame:
    """Seeded non-negative hourly load with a daily cycle and bursty noise, req/s."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2018-12-03", periods=24 * days, freq="1h", tz="UTC", name="ts")
    hour = idx.hour.to_numpy()
    return pd.DataFrame({s: 40 + (6 + 4 * j) * (1.2 + np.sin(2 * np.pi * (hour - 5 * j) / 24))
                         + rng.gamma(1.0, 2.0, len(idx)) for j, s in enumerate(SERIES)}, index=idx)


@pytest.fixture(scope="module")
def model() -> LearnedForecaster:
    load = hourly_load()
    train = load[load.index < pd.Timestamp("2018-12-07", tz="UTC")].reindex(load.index)
    return LearnedForecaster(LOAD, SETTINGS).fit(train, load, progress=False)


def without_rolling(model: LearnedForecaster) -> LearnedForecaster:
    other = copy.copy(model)
    other.settings = dataclasses.replace(model.settings, load_calibration_window_h=0)
    return other


def test_the_quantiles_below_the_median_follow_the_recent_forecasts(model):
    """Known case: the applied p10 spread is ``fit_spread_factors`` of the raw forecasts issued at the
    last 12 origins, scored on their targets before t0; p50 and p90 keep the validation factors."""
    load = hourly_load()
    hist = load[load.index < T0]
    fc = model.predict(hist, T0, 6).values[LOAD]                   # (H, n, Q)
    static = without_rolling(model).predict(hist, T0, 6).values[LOAD]
    assert model.history_steps == 24 + WINDOW_H
    np.testing.assert_allclose(fc[..., 1:], static[..., 1:], rtol=EXACT)
    assert not np.allclose(fc[..., 0], static[..., 0])

    raw_model = copy.copy(model)
    raw_model.calibration = None
    values, t = hist.to_numpy(), len(hist)
    origins = t - np.arange(WINDOW_H, 0, -1)
    raw = raw_model.predict_windows(values, hist.index, origins, 6)     # (K, H, n, Q), physical units
    truth = np.concatenate([values, np.full((6, 2), np.nan)])[origins[:, None] + np.arange(6)]
    truth[origins[:, None] + np.arange(6) >= t] = np.nan                 # only targets known before t0
    fitted = fit_spread_factors(raw.transpose(0, 2, 1, 3).reshape(-1, 6, 3),
                                truth.transpose(0, 2, 1).reshape(-1, 6), model.quantiles)
    factors = model.calibration.copy()
    factors[:, 0] = fitted[:, 0]
    raw_t0 = raw_model.predict(hist, T0, 6).values[LOAD]
    np.testing.assert_allclose(fc, apply_spread_factors(raw_t0, factors, model.quantiles), rtol=1e-5)


def test_nothing_at_or_after_t0_is_read(model):
    load = hourly_load()
    hist = load[load.index < T0]
    spoiled = load.copy()
    spoiled[spoiled.index >= T0] = 1e6
    np.testing.assert_allclose(model.predict(spoiled, T0, 6).values[LOAD],
                               model.predict(hist, T0, 6).values[LOAD], rtol=EXACT)


def test_a_short_history_keeps_the_validation_factors(model):
    """With only the look-back before t0 (fewer than 12 past origins), the forecast is the one
    with the validation factors; a NaN before the look-back shortens the history the same way."""
    load = hourly_load()
    hist = load[load.index < T0]
    static = without_rolling(model).predict(hist, T0, 6).values[LOAD]
    np.testing.assert_allclose(model.predict(hist.iloc[-30:], T0, 6).values[LOAD], static, rtol=EXACT)
    gap = hist.copy()
    gap.iloc[-26] = np.nan
    np.testing.assert_allclose(model.predict(gap, T0, 6).values[LOAD], static, rtol=EXACT)


def test_a_bundle_from_before_reads_no_rolling_window(model):
    spec = model.spec()
    del spec["settings"]["load_calibration_window_h"]
    old = LearnedForecaster.from_spec(spec, model.net.state_dict())
    assert old.calibration_window == 0 and old.history_steps == old.lookback_steps


def test_lookback_frame_takes_the_complete_tail_it_is_given():
    load = hourly_load(days=2)
    t0 = load.index[-1] + pd.Timedelta(hours=1)
    step = pd.Timedelta(hours=1)
    assert len(lookback_frame({LOAD: load}, LOAD, t0, 100, SERIES, step, min_steps=24)) == 48
    holed = load.drop(load.index[10])
    assert len(lookback_frame({LOAD: holed}, LOAD, t0, 100, SERIES, step, min_steps=24)) == 37
    with pytest.raises(ValueError, match=r"need 40 regular steps"):
        lookback_frame({LOAD: holed}, LOAD, t0, 100, SERIES, step, min_steps=40)
