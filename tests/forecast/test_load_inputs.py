"""The learned load forecaster's inputs: the 10-min history (``forecast.load_input_step_min``),
nothing at or after the issue time t0, the log map (``forecast.load_log_scale``), the coarse/fine
look-back of the net and the settings' validation at the config boundary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.features import LOAD_10MIN, Scaling
from forecast.models import ForecasterSuite, LearnedForecaster
from forecast.nets import ForecastNet, NetSpec
from forecast.schema import ConfigError
from forecast.settings import ForecastSettings
from forecast.windows import rolling_mean, window_arrays
from pipelines.config import load_config
from tests.tolerances import EXACT, ROUNDOFF

LOAD = "load_req_per_s"
SERIES = ("R1/chat", "R1/code", "client:1")
TEN = pd.Timedelta(minutes=10)
T0 = pd.Timestamp("2018-12-10T00:00Z")
SETTINGS = ForecastSettings(signals=(LOAD,), lookback_load_h=24, level_h=6, hidden=16, embedding_dim=2,
                            dropout=0.0, batch_size=64, max_epochs=2, patience=1, batches_per_epoch=4,
                            seed=3, num_threads=1, load_input_step_min=10, load_fine_h=4,
                            load_origin_stride_min=30, load_log_scale=True)


def load_10min(days: int = 8, seed: int = 5) -> pd.DataFrame:
    """Seeded non-negative 10-min load with a daily cycle and noise, req/s."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2018-12-03", periods=144 * days, freq=TEN, tz="UTC", name="ts")
    hour = (idx.hour + idx.minute / 60).to_numpy()
    cols = {s: (5 + 3 * j) * (1.2 + np.sin(2 * np.pi * (hour - 4 * j) / 24)) + rng.gamma(2.0, 0.5, len(idx))
            for j, s in enumerate(SERIES)}
    return pd.DataFrame(cols, index=idx)


def hourly(ten: pd.DataFrame) -> pd.DataFrame:
    return ten.resample("1h").mean()


@pytest.fixture(scope="module")
def model() -> LearnedForecaster:
    ten = load_10min()
    train, valid = ten[ten.index < pd.Timestamp("2018-12-08", tz="UTC")].reindex(ten.index), ten
    return LearnedForecaster(LOAD, SETTINGS).fit(train, valid, outputs=SERIES[:2], progress=False)


def _history(ten: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {LOAD: hourly(ten)[list(SERIES[:2])], LOAD_10MIN: ten[list(SERIES[:2])]}


def test_the_load_model_reads_the_10min_history(model):
    """It reads ``LOAD_10MIN`` at 10 min over the whole look-back, and the latest 10-min window
    before t0 changes its forecast (the hourly frame does not)."""
    assert (model.input_key, model.input_step) == (LOAD_10MIN, TEN)
    assert model.lookback_steps == SETTINGS.lookback_load_h * 6
    ten = load_10min()
    base = model.predict(_history(ten), T0, 24).values[LOAD]
    last = ten.copy()
    last.loc[T0 - TEN, SERIES[0]] *= 3.0
    assert not np.allclose(model.predict(_history(last), T0, 24).values[LOAD][:, 0], base[:, 0])
    hist = _history(ten)
    hist[LOAD] = hist[LOAD] * 10.0
    np.testing.assert_allclose(model.predict(hist, T0, 24).values[LOAD], base, rtol=EXACT)


def test_no_input_at_or_after_t0(model):
    """Rows at or after t0 (10-min or hourly) are never read: changing or removing them leaves the
    forecast as it was."""
    ten = load_10min()
    base = model.predict(_history(ten), T0, 24).values[LOAD]
    later = ten.copy()
    later[later.index >= T0] = 1e6
    np.testing.assert_allclose(model.predict(_history(later), T0, 24).values[LOAD], base, rtol=EXACT)
    cut = ten[ten.index < T0]
    np.testing.assert_allclose(model.predict(_history(cut), T0, 24).values[LOAD], base, rtol=EXACT)


def test_windows_read_before_the_origin_and_target_hourly_means():
    """A window's inputs are the positions before its origin; its targets the means of each hour."""
    values = np.arange(2 * 60, dtype=float).reshape(2, 60)
    origin = np.array([12, 30])
    x, y = window_arrays(values, rolling_mean(values, 6), np.array([0, 1]), origin, 12, 3, 6)
    assert (x.max(axis=1) < values[[0, 1], origin]).all()
    want = np.stack([[values[s, o + 6 * h:o + 6 * h + 6].mean() for h in range(3)]
                     for s, o in zip((0, 1), origin, strict=True)])
    np.testing.assert_allclose(y, want, rtol=EXACT)


def test_training_targets_are_the_hourly_means(model):
    """On the hour, the training targets of the 10-min model are the hourly load (scaled)."""
    ten = load_10min()
    batches = model._batches(ten, np.ones((len(SERIES), len(ten)), bool), 6, None)
    _, _, y = batches.arrays(batches.series_idx, batches.origins)
    scaled = model.scaling.forward(hourly(ten).to_numpy()).T
    want = scaled[batches.series_idx[:, None], batches.origins[:, None] // 6 + np.arange(model.horizon_steps)]
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_log_scaling_round_trip_keeps_quantile_order():
    values = np.random.default_rng(1).gamma(2.0, 3.0, (50, 4))
    s = Scaling.fit(values, log=True)
    np.testing.assert_allclose(s.inverse(s.forward(values)), values, rtol=1e-9, atol=ROUNDOFF)
    q = np.sort(np.random.default_rng(2).normal(size=(5, 4, 3)), axis=-1).transpose(0, 2, 1)  # (5, 3 q, 4 series)
    assert (np.diff(s.inverse(q), axis=1) >= 0).all()
    back = Scaling.from_json(s.to_json())
    np.testing.assert_allclose(back.forward(values), s.forward(values), rtol=EXACT)


def test_net_reads_recent_steps_fine_and_older_ones_coarse():
    """``fine_steps`` at the input step, the rest as hourly means: an input change inside one
    older hour that keeps its mean changes nothing; the same change among the recent steps does."""
    spec = NetSpec("mlp", 48, 4, 1, 6, 3, 6, 8, 2, 0.0, sub_steps=6, fine_steps=12)
    net = ForecastNet(spec).eval()
    assert spec.core_lookback == 6 + 12
    x = np.random.default_rng(0).normal(size=(1, 48)).astype(np.float32)
    moved_old, moved_new = x.copy(), x.copy()
    moved_old[0, 6:8] += np.array([1.0, -1.0], dtype=np.float32)       # hour 2 of the look-back, same mean
    moved_new[0, 40:42] += np.array([1.0, -1.0], dtype=np.float32)     # inside the fine part
    sid, cal = np.zeros(1, np.int64), np.zeros((1, 6), np.float32)

    def run(a: np.ndarray) -> np.ndarray:
        import torch
        return net(torch.from_numpy(a), torch.from_numpy(sid), torch.from_numpy(cal)).detach().numpy()

    np.testing.assert_allclose(run(moved_old), run(x), atol=1e-5)
    assert not np.allclose(run(moved_new), run(x), atol=1e-5)


def test_save_load_same_prediction(model, tmp_path):
    suite = ForecasterSuite({LOAD: model})
    hist = _history(load_10min())
    again = ForecasterSuite.load(suite.save(tmp_path / "bundle"))
    np.testing.assert_allclose(again.predict(hist, T0, 24).values[LOAD], suite.predict(hist, T0, 24).values[LOAD],
                               rtol=EXACT)
    assert again.models[LOAD].input_key == LOAD_10MIN


def test_missing_10min_history_is_a_clear_error(model):
    hist = _history(load_10min())
    del hist[LOAD_10MIN]
    with pytest.raises(KeyError, match=LOAD_10MIN):
        model.predict(hist, T0, 24)


@pytest.mark.parametrize(("key", "value", "says"), [
    ("load_input_step_min", 30, r"forecast\.load_input_step_min: 30; valid: \[10, 60\]"),
    ("load_origin_stride_min", 25, r"forecast\.load_origin_stride_min: 25; valid with load_input_step_min 10: "
                                   r"\[10, 20, 30, 60\]"),
    ("load_fine_h", 30, r"forecast\.load_fine_h: 30 h exceeds the load look-back forecast\.lookback_load_h = 24 h"),
])
def test_load_settings_rejected_at_the_config_boundary(key, value, says):
    with pytest.raises(ConfigError, match=says):
        ForecastSettings(**{**SETTINGS.__dict__, key: value})


def test_config_overrides_reach_the_load_settings(default_cfg):
    """The keys load from a config with ``--set`` and their range is checked there too."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"
    cfg = load_config(path, ["forecast.load_input_step_min=10", "forecast.load_fine_h=3"])
    assert (cfg.forecast.load_input_step_min, cfg.forecast.load_fine_h) == (10, 3)
    with pytest.raises(ConfigError, match="load_input_step_min"):
        load_config(path, ["forecast.load_input_step_min=5"])


def test_load_ensemble_size_overrides_for_load_only(default_cfg):
    fs = ForecastSettings(ensemble_size=2, load_ensemble_size=3)
    assert (fs.ensemble_of(LOAD), fs.ensemble_of("price_eur_per_mwh")) == (3, 2)
    assert ForecastSettings(ensemble_size=2, load_ensemble_size=0).ensemble_of(LOAD) == 2
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"
    with pytest.raises(ConfigError, match="load_ensemble_size"):
        load_config(path, ["forecast.load_ensemble_size=17"])
