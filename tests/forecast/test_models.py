"""Contract tests for every forecaster (learned architectures and baselines) on a seeded synthetic
series with known structure, plus the relative-accuracy claim and the bundle round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.baselines import PerfectForesight, Persistence, SeasonalNaive
from forecast.evaluate import evaluate, evaluation_origins
from forecast.models import ForecasterSuite, LearnedForecaster
from forecast.output import Forecast
from forecast.settings import ForecastSettings
from forecast.splits import TEST, TRAIN, VALID, SignalSplit

SIGNAL = "temp_c"
H = 24
SERIES = ("A", "B", "C")
T0 = pd.Timestamp("2018-03-01T00:00Z")  # inside the test period of the synthetic data
SETTINGS = ForecastSettings(signals=(SIGNAL,), lookback_grid_h=72, level_h=24, hidden=48,
                            embedding_dim=4, dropout=0.0, batch_size=128, max_epochs=10, patience=3,
                            batches_per_epoch=15, seed=7, num_threads=1)


def synthetic(days: int = 70, seed: int = 3) -> pd.DataFrame:
    """Daily cycle (known shape per series) + AR(1) noise (phi 0.95): persistence-like short term,
    seasonal long term — a model that learns both beats either naive rule."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2018-01-01", periods=24 * days, freq="1h", tz="UTC", name="ts")
    hour = idx.hour.to_numpy()
    cols = {}
    for j, name in enumerate(SERIES):
        noise = np.zeros(len(idx))
        eps = rng.normal(0, 0.6, len(idx))
        for t in range(1, len(idx)):
            noise[t] = 0.95 * noise[t - 1] + eps[t]
        cols[name] = 10 + 4 * j + (3 + j) * np.sin(2 * np.pi * (hour - 6 * j) / 24) + noise
    return pd.DataFrame(cols, index=idx)


@pytest.fixture(scope="module")
def data() -> SignalSplit:
    full = synthetic()
    idx = full.index
    lab = np.where(idx < pd.Timestamp("2018-02-10", tz="UTC"), TRAIN,
                   np.where(idx < pd.Timestamp("2018-02-24", tz="UTC"), VALID, TEST))
    labels = np.repeat(lab[:, None], len(SERIES), axis=1)
    return SignalSplit(SIGNAL, full, labels, SERIES, {})


def _learned(arch: str, split: SignalSplit, seed: int = 7) -> LearnedForecaster:
    fs = ForecastSettings(**{**SETTINGS.__dict__, "architecture": arch, "seed": seed})
    return LearnedForecaster(SIGNAL, fs).fit(split.upto(TRAIN), split.upto(VALID), progress=False)


@pytest.fixture(scope="module")
def models(data) -> dict:
    train = data.upto(TRAIN)
    out = {"mlp": _learned("mlp", data), "tcn": _learned("tcn", data)}
    for m in (Persistence(SIGNAL), SeasonalNaive(SIGNAL, 24), SeasonalNaive(SIGNAL, 168),
              PerfectForesight(SIGNAL, data.full)):
        out[m.name] = m.fit(train)
    return out


NAMES = ["mlp", "tcn", "persistence", "seasonal_naive_24", "seasonal_naive_168", "oracle_perfect_foresight"]


def _history(data: SignalSplit) -> dict[str, pd.DataFrame]:
    return {SIGNAL: data.full}


@pytest.mark.parametrize("name", NAMES)
def test_forecast_contract(models, data, name):
    fc = models[name].predict(_history(data), T0, H)
    assert isinstance(fc, Forecast)
    arr = fc.values[SIGNAL]
    assert arr.shape == (H, len(SERIES), 3)
    assert fc.series[SIGNAL] == SERIES
    assert fc.quantiles == (0.1, 0.5, 0.9)
    assert fc.timestamps[0] == T0 and fc.timestamps[-1] == T0 + pd.Timedelta(hours=H - 1)
    assert np.isfinite(arr).all()
    assert (np.diff(arr, axis=-1) >= 0).all()
    assert fc.quantile(0.5)[SIGNAL].shape == (H, len(SERIES))
    assert list(fc.frame(SIGNAL, 0.9).columns) == list(SERIES)


@pytest.mark.parametrize("name", NAMES)
def test_same_input_same_forecast(models, data, name):
    a = models[name].predict(_history(data), T0, H).values[SIGNAL]
    b = models[name].predict(_history(data), T0, H).values[SIGNAL]
    np.testing.assert_array_equal(a, b)


def test_same_seed_same_model(models, data):
    again = _learned("mlp", data)
    np.testing.assert_array_equal(models["mlp"].predict(_history(data), T0, H).values[SIGNAL],
                                  again.predict(_history(data), T0, H).values[SIGNAL])


@pytest.mark.parametrize("name", NAMES)
def test_no_look_ahead(models, data, name):
    """A forecast issued at t0 is unchanged when every value at or after t0 is altered (only the
    oracle, which reads the truth by design, changes)."""
    model = models[name]
    base = model.predict(_history(data), T0, H).values[SIGNAL]
    altered = data.full.copy()
    after = altered.index >= T0
    altered.loc[after] = np.random.default_rng(0).normal(500.0, 50.0, size=(after.sum(), len(SERIES)))
    if model.reads_future:
        model.truth = altered
        try:
            changed = model.predict({SIGNAL: altered}, T0, H).values[SIGNAL]
        finally:
            model.truth = data.full
        assert not np.allclose(changed, base)
    else:
        np.testing.assert_array_equal(model.predict({SIGNAL: altered}, T0, H).values[SIGNAL], base)
        # and rows at/after t0 may be absent altogether
        np.testing.assert_array_equal(
            model.predict({SIGNAL: data.full[data.full.index < T0]}, T0, H).values[SIGNAL], base)


@pytest.mark.parametrize("arch", ["mlp", "tcn"])
def test_save_load_same_prediction(models, data, tmp_path, arch):
    suite = ForecasterSuite({SIGNAL: models[arch]})
    loaded = ForecasterSuite.load(suite.save(tmp_path / arch))
    np.testing.assert_array_equal(suite.predict(_history(data), T0, H).values[SIGNAL],
                                  loaded.predict(_history(data), T0, H).values[SIGNAL])


@pytest.mark.parametrize("arch", ["mlp", "tcn"])
def test_learned_beats_seasonal_naive(models, data, arch):
    origins = evaluation_origins(data, H, stride=3)
    learned = evaluate(models[arch], data, H, origins=origins)[0]
    naive = min(evaluate(models[n], data, H, origins=origins)[0].mae
                for n in ("seasonal_naive_24", "seasonal_naive_168"))
    assert learned.mae < 0.85 * naive, (learned.mae, naive)
    assert 0.6 < learned.coverage_80 < 0.97


def test_oracle_is_exact(models, data):
    origins = evaluation_origins(data, H, stride=5)
    assert evaluate(models["oracle_perfect_foresight"], data, H, origins=origins)[0].mae == 0.0


def test_wetbulb_derived_from_temperature(models, data):
    vp = {s: np.full((12, 24), 8.0) for s in SERIES}  # 8 hPa: dew point ≈ 3.8 °C
    fc = ForecasterSuite({SIGNAL: models["mlp"]}, vp).predict(_history(data), T0, H)
    tw, t = fc.values["wetbulb_c"], fc.values[SIGNAL]
    assert tw.shape == t.shape and fc.series["wetbulb_c"] == SERIES
    assert (tw <= t + 1e-9).all() and (np.diff(tw, axis=-1) >= 0).all()


def test_bad_history_is_a_clear_error(models, data):
    short = data.full[data.full.index < T0].iloc[-10:]
    with pytest.raises(ValueError, match="need 72 regular steps"):
        models["mlp"].predict({SIGNAL: short}, T0, H)
    with pytest.raises(KeyError, match="lacks series"):
        models["mlp"].predict({SIGNAL: data.full[["A"]]}, T0, H)
    with pytest.raises(ValueError, match="tz-aware"):
        models["mlp"].predict(_history(data), "2018-03-01T00:00", H)
    with pytest.raises(ValueError, match="exceeds the trained"):
        models["mlp"].predict(_history(data), T0, H + 1)
