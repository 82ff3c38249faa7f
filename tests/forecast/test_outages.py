"""Service outages in the load inputs (``forecast.outages``, ``forecast.load_outage_fill``): found
per clock group, read as the last value before them when forecasting, never a lull of one stream."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.models import LearnedForecaster
from forecast.outages import clock_groups, fill_outages, outage_mask
from forecast.settings import ForecastSettings
from tests.tolerances import EXACT

LOAD = "load_req_per_s"
TZ = {"London/chat": "Europe/London", "London/code": "Europe/London", "London/batch": "Europe/London",
      "Berlin/chat": "Europe/Berlin", "Berlin/code": "Europe/Berlin", "Paris/chat": "Europe/Paris",
      "Lisbon/chat": "Europe/Lisbon"}


def test_streams_are_grouped_by_clock():
    """Berlin and Paris share a clock; London and Lisbon share another (UTC+0 / +1 in summer)."""
    series = tuple(TZ)
    g = clock_groups(series, TZ)
    assert g[series.index("Berlin/chat")] == g[series.index("Paris/chat")] != g[series.index("London/chat")]
    assert g[series.index("London/chat")] == g[series.index("Lisbon/chat")]


def test_an_outage_is_every_stream_of_a_clock_at_zero_and_reads_as_the_last_value():
    """Known case: rows 1–2 of the three-stream group are at 0 (an outage, filled with row 0); the
    fourth stream alone at 0 in row 2 is a lull (kept: a group of one is never an outage)."""
    v = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 4.0, 1.0]])
    groups = np.array([0, 0, 0, 1])
    mask = outage_mask(v, groups)
    np.testing.assert_array_equal(mask[:, :3], [[False] * 3, [True] * 3, [True] * 3, [False] * 3])
    assert not mask[:, 3].any()
    np.testing.assert_array_equal(fill_outages(v, mask),
                                  [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 0], [2, 0, 4, 1]])
    first = np.zeros((2, 3))
    np.testing.assert_array_equal(fill_outages(first, outage_mask(first, np.zeros(3, int))), first)  # none before


SERIES = ("R1/chat", "R1/code", "R1/batch")
SETTINGS = ForecastSettings(signals=(LOAD,), lookback_load_h=24, level_h=6, hidden=16, embedding_dim=2,
                            dropout=0.0, batch_size=64, max_epochs=3, patience=3, batches_per_epoch=4,
                            seed=3, num_threads=1, load_input_step_min=60, horizon_steps=6,
                            load_calibration_window_h=0, load_outage_fill=True)


@pytest.fixture(scope="module")
def model() -> tuple[LearnedForecaster, pd.DataFrame]:
    rng = np.random.default_rng(2)
    idx = pd.date_range("2018-12-03", periods=24 * 8, freq="1h", tz="UTC", name="ts")
    load = pd.DataFrame({s: 30 + 10 * np.sin(2 * np.pi * idx.hour.to_numpy() / 24) + rng.gamma(1.0, 2.0, len(idx))
                         for s in SERIES}, index=idx)
    train = load[load.index < pd.Timestamp("2018-12-07", tz="UTC")].reindex(load.index)
    return LearnedForecaster(LOAD, SETTINGS).fit(train, load, progress=False), load


def test_the_load_model_forecasts_through_an_outage(model):
    """Three hours of outage before t0 forecast as the history with those hours at the value before
    them; with the fill off, the zeros are read as demand (a lower median)."""
    net, load = model
    t0 = pd.Timestamp("2018-12-10T00:00Z")
    hist = load[load.index < t0]
    down = hist.copy()
    down.iloc[-3:] = 0.0
    held = hist.copy()
    held.iloc[-3:] = hist.iloc[-4].to_numpy()
    np.testing.assert_allclose(net.predict(down, t0, 6).values[LOAD], net.predict(held, t0, 6).values[LOAD],
                               rtol=EXACT)
    raw = LearnedForecaster.from_spec(_spec_without_fill(net), net.net.state_dict())
    assert (raw.predict(down, t0, 6).values[LOAD][..., 1] < net.predict(down, t0, 6).values[LOAD][..., 1]).all()


def _spec_without_fill(net: LearnedForecaster) -> dict:
    spec = net.spec()
    spec["settings"] = dict(spec["settings"], load_outage_fill=False)
    return spec


def test_a_bundle_from_before_reads_zeros_as_demand(model):
    net, _ = model
    spec = net.spec()
    del spec["settings"]["load_outage_fill"]
    assert not LearnedForecaster.from_spec(spec, net.net.state_dict()).settings.load_outage_fill
