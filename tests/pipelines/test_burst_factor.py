"""The burst level the MPC keeps headroom for: a split-conformal factor on the spread, fitted on
data before the episode only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from control.forecast_adapter import LOAD, control_forecast, fit_burst_factor
from forecast.output import Forecast
from tests.control.cases import tiny_plant

T0 = pd.Timestamp("2018-12-14T00:00Z")
H = 6


def _predict(at: pd.Timestamp) -> Forecast:
    """p50 = 10, p90 = 12 everywhere (a spread of 2 req/s)."""
    values = np.tile(np.array([8.0, 10.0, 12.0]), (H, 1, 1))
    return Forecast(at, pd.Timedelta(hours=1), (0.1, 0.5, 0.9), {LOAD: ("R0/chat",)}, {LOAD: values})


def _truth(scores_before: np.ndarray, after: float) -> pd.DataFrame:
    idx = pd.date_range(T0 - pd.Timedelta(days=2), T0 + pd.Timedelta(days=1), freq="1h", inclusive="left")
    y = np.full(len(idx), 10.0 + 2.0 * after)
    before = idx < T0
    y[before] = 10.0 + 2.0 * scores_before[: before.sum()]
    return pd.DataFrame({"R0/chat": y}, index=idx)


def test_burst_factor_is_the_conformal_quantile_of_past_scores_and_ignores_the_future():
    plant = tiny_plant(n_sites=1)
    scores = np.linspace(0.0, 9.5, 48)      # hourly truth → scores (y − p50) / (p90 − p50)
    f = fit_burst_factor(_predict, _truth(scores, after=100.0), plant, T0, 0.9, 0.95)
    # every hour before t0 is scored once per forecast that covers it (up to H times)
    expected = np.sort(np.concatenate([scores[i:i + H] for i in range(48)]))
    rank = int(np.ceil((len(expected) + 1) * 0.95))
    assert f.shape == (1,)
    assert f[0] == pytest.approx(expected[rank - 1])
    same = fit_burst_factor(_predict, _truth(scores, after=-100.0), plant, T0, 0.9, 0.95)
    assert same[0] == f[0]   # values at or after t0 are never read


def test_burst_level_extrapolates_the_spread_and_never_falls_below_the_provisioning_level():
    plant = tiny_plant(n_sites=1)
    site = {s: np.zeros((H, 1, 3)) for s in ("price_eur_per_mwh", "carbon_g_per_kwh", "ewif_l_per_kwh",
                                            "temp_c", "wetbulb_c", "solar_cf", "wind_cf")}
    fc = _predict(T0)
    fc = Forecast(fc.t0, fc.step, fc.quantiles, {**{k: ("S0",) for k in site}, LOAD: ("R0/chat",)},
                  {**site, LOAD: fc.values[LOAD]})
    cf = control_forecast(fc, plant, 0.9, np.array([4.0]))
    np.testing.assert_allclose(cf.load_burst_req_per_s, 10.0 + 4.0 * 2.0)
    np.testing.assert_allclose(cf.load_provision_req_per_s, 12.0)
    assert (control_forecast(fc, plant, 0.9).load_burst_req_per_s == 12.0).all()


def _predict_two(at: pd.Timestamp) -> Forecast:
    """Two regions' chat, each p50 = 10, p90 = 12."""
    values = np.tile(np.array([8.0, 10.0, 12.0]), (H, 2, 1)).reshape(H, 2, 3)
    return Forecast(at, pd.Timedelta(hours=1), (0.1, 0.5, 0.9), {LOAD: ("R0/chat", "R1/chat")}, {LOAD: values})


def test_group_burst_factor_scores_the_region_group_total_with_the_combined_spread():
    plant = tiny_plant(n_sites=1, n_regions=2)
    assert (plant.region_groups == 0).all()
    scores = np.linspace(0.0, 9.5, 48)
    one = _truth(scores, after=0.0)["R0/chat"]
    same = pd.DataFrame({"R0/chat": one, "R1/chat": one})                # comonotone streams
    mirror = pd.DataFrame({"R0/chat": one, "R1/chat": 20.0 - one})       # the total never moves
    per_stream = fit_burst_factor(_predict_two, same, plant, T0, 0.9, 0.95)[0]
    summed = fit_burst_factor(_predict_two, same, plant, T0, 0.9, 0.95, group_correlation=1.0)[0]
    independent = fit_burst_factor(_predict_two, same, plant, T0, 0.9, 0.95, group_correlation=0.0)[0]
    assert summed == pytest.approx(per_stream)                  # total excess 4s over a spread of 4
    assert independent == pytest.approx(np.sqrt(2.0) * per_stream)   # ... over a spread of 2·√2
    flat = fit_burst_factor(_predict_two, mirror, plant, T0, 0.9, 0.95, group_correlation=0.0)[0]
    assert flat == 1.0     # no excess of the total: the burst level is the provisioning level
