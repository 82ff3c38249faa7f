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


# --- interval calibration (split-conformal spread scaling, fitted on validation only) ------------

def test_spread_factors_fix_too_narrow_intervals():
    """Median 0, p10/p90 at ±0.5 for N(0, 1) truth (true ±1.28): the factors widen both sides
    to ≈ 2.56 and the calibrated interval covers ≈ 80 %; the median is untouched, order kept."""
    from forecast.calibration import apply_spread_factors, fit_spread_factors

    rng = np.random.default_rng(11)
    truth = rng.normal(0.0, 1.0, size=(4000, H))
    pred = np.broadcast_to(np.array([-0.5, 0.0, 0.5]), (4000, H, 3)).copy()
    f = fit_spread_factors(pred, truth, (0.1, 0.5, 0.9))
    assert f.shape == (H, 3) and (f[:, 1] == 1.0).all()
    np.testing.assert_allclose(f[:, [0, 2]], 2 * 1.2816, rtol=0.06)
    fresh = rng.normal(0.0, 1.0, size=(4000, H))
    adj = apply_spread_factors(pred[:, :, None, :], f, (0.1, 0.5, 0.9))[:, :, 0]
    cover = ((fresh >= adj[..., 0]) & (fresh <= adj[..., 2])).mean()
    assert 0.77 < cover < 0.83
    np.testing.assert_array_equal(adj[..., 1], pred[..., 1])
    assert (np.diff(adj, axis=-1) >= 0).all()


def test_calibration_widens_too_narrow_intervals(data):
    """Noise doubles after the training period: the net's intervals, learnt on quiet data, are
    too narrow; the calibration (validation only) moves validation and test coverage toward
    80 %, leaves the median unchanged and survives save → load."""
    full = data.full.copy()
    rng = np.random.default_rng(5)
    late = full.index >= pd.Timestamp("2018-02-10", tz="UTC")
    full.loc[late] += rng.normal(0, 4.0, size=(late.sum(), len(SERIES)))
    split = SignalSplit(SIGNAL, full, data.labels, SERIES, {})
    model = _learned("mlp", split)
    assert model.calibration is not None
    valid = SignalSplit(SIGNAL, full, np.where(data.labels == TEST, -1,
                                               np.where(data.labels == VALID, TEST, data.labels)), SERIES, {})
    factors = model.calibration
    cal_v, pred_cal = evaluate(model, valid, H)
    cal_t = evaluate(model, split, H)[0]
    model.calibration = None
    raw_v, pred_raw = evaluate(model, valid, H)
    raw_t = evaluate(model, split, H)[0]
    model.calibration = factors
    assert raw_v.coverage_80 < 0.7, raw_v.coverage_80  # the set-up: too narrow
    assert factors[:, [0, 2]].mean() > 1.0
    assert abs(cal_v.coverage_80 - 0.8) < abs(raw_v.coverage_80 - 0.8)
    assert 0.7 <= cal_v.coverage_80 <= 0.9
    assert abs(cal_t.coverage_80 - 0.8) < abs(raw_t.coverage_80 - 0.8)
    np.testing.assert_array_equal(pred_cal[..., 1], pred_raw[..., 1])  # p50 untouched
    assert cal_v.mae == raw_v.mae
    assert (np.diff(pred_cal, axis=-1) >= 0).all()


def test_calibration_stored_in_spec(models, data, tmp_path):
    model = models["mlp"]
    assert model.calibration is not None and model.calibration.shape == (H, 3)
    folder = ForecasterSuite({SIGNAL: model}).save(tmp_path / "cal")
    import json

    spec = json.loads((folder / "spec.json").read_text())["models"][0]
    np.testing.assert_array_equal(np.asarray(spec["calibration"]["factors"]), model.calibration)
    loaded = ForecasterSuite.load(folder).models[SIGNAL]
    np.testing.assert_array_equal(loaded.calibration, model.calibration)
    off = ForecastSettings(**{**SETTINGS.__dict__, "calibrate_intervals": False})
    assert LearnedForecaster(SIGNAL, off).fit(data.upto(TRAIN), data.upto(VALID), progress=False).calibration is None


def test_seed_ensemble_round_trip(data, tmp_path):
    """``ensemble_size`` nets (seeds seed … seed + n − 1) averaged; member 0 is the single model;
    the bundle reloads to the same prediction."""
    fs = ForecastSettings(**{**SETTINGS.__dict__, "ensemble_size": 2, "max_epochs": 3})
    model = LearnedForecaster(SIGNAL, fs).fit(data.upto(TRAIN), data.upto(VALID), progress=False)
    assert len(model.net.members) == 2 and "member1_best_val_loss" in model.fit_report
    fc = model.predict(_history(data), T0, H).values[SIGNAL]
    assert (np.diff(fc, axis=-1) >= 0).all()
    loaded = ForecasterSuite.load(ForecasterSuite({SIGNAL: model}).save(tmp_path / "ens"))
    np.testing.assert_array_equal(loaded.predict(_history(data), T0, H).values[SIGNAL], fc)


def test_suite_checks_it_covers_the_control_settings(models):
    suite = ForecasterSuite({SIGNAL: models["mlp"]})
    suite.check_covers(H, 0.9)
    with pytest.raises(ValueError, match=f"forecaster {SIGNAL}: trained for {H} steps, but control.horizon_steps "
                                         f"is {H + 1} \\(valid with this model: 1 … {H}"):
        suite.check_covers(H + 1, 0.9)
    as_load = ForecasterSuite({"load_req_per_s": models["mlp"]})   # the quantile check reads the load model
    as_load.check_covers(H, 0.5)
    with pytest.raises(ValueError, match="control.load_quantile 0.7 is not one of its quantiles"):
        as_load.check_covers(H, 0.7)
