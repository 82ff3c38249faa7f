"""The plant and its inputs from the scenario's real data (smoke scenario)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from control.from_data import peak_load_req_per_s, plant_for, realised_inputs
from tests.tolerances import EXACT, SOLVER


def test_plant_capacity_covers_the_recorded_peak_with_the_margin(smoke_cfg, smoke_data):
    sc = smoke_cfg.scenario
    plant = plant_for(smoke_cfg, smoke_data)
    peak = peak_load_req_per_s(smoke_data, sc.region_names, sc.class_names)
    # GPU-seconds per second the recorded peak needs if spread by capacity weight
    weights = np.array([s.capacity_weight for s in sc.sites])
    weights = weights / weights.sum()
    need = np.array([weights[s] for s in plant.pool_site]) * (plant.gpu_s_per_req @ peak)
    capacity = plant.gpus_max * plant.rho_max
    assert (capacity >= sc.sizing.capacity_margin * need - 1e-9).all()
    assert (capacity < sc.sizing.capacity_margin * need + plant.rho_max + 1e-9).all()  # ceil, no more


def test_realised_inputs_are_the_dataset_values(smoke_cfg, smoke_data):
    plant = plant_for(smoke_cfg, smoke_data)
    fc = realised_inputs(smoke_data, plant, "2018-12-14T05:00Z", 6)
    assert fc.horizon == 6
    price = smoke_data.wide("price_eur_per_mwh")
    ts = pd.Timestamp("2018-12-14T07:00Z")
    np.testing.assert_allclose(fc.price_eur_per_mwh[2], price.loc[ts, list(plant.site_names)].to_numpy())
    load = smoke_data.wide("load_req_per_s")
    region, klass = plant.region_names[1], plant.class_names[2]
    assert fc.load_req_per_s[2, 1, 2] == pytest.approx(load.loc[ts, f"{region}/{klass}"])
    assert fc.day_index[0] == (ts - pd.Timestamp("1970-01-01", tz="UTC")).days
    # the 10-min load rides along: (H, 6, R, K), the hour's six windows of the dataset
    assert fc.load_sub_req_per_s.shape == (6, 6, len(plant.region_names), len(plant.class_names))
    ten = smoke_data.load_10min[f"{region}/{klass}"]
    np.testing.assert_array_equal(fc.load_sub_req_per_s[2, :, 1, 2], ten.loc[ts:ts + pd.Timedelta(minutes=50)])
    np.testing.assert_allclose(fc.load_sub_req_per_s.mean(axis=1), fc.load_req_per_s, rtol=EXACT)


def test_a_window_outside_the_data_is_refused(smoke_cfg, smoke_data):
    plant = plant_for(smoke_cfg, smoke_data)
    with pytest.raises(ValueError, match="outside the data"):
        realised_inputs(smoke_data, plant, "2018-12-31T20:00Z", 24)


def test_on_real_data_the_hindsight_optimum_bounds_the_controllers(smoke_cfg, smoke_data):
    from control.controllers import CapacityProportional, GreedyController, MPCController, myopic
    from control.mpc import AllocationMPC
    from control.simulate import hindsight_optimum, run_episode
    from control.state import PlantState
    from tests.control.cases import policy

    plant = plant_for(smoke_cfg, smoke_data)
    steps, horizon = 12, 6
    realised = realised_inputs(smoke_data, plant, "2018-12-14T00:00Z", steps + horizon)
    state = PlantState.initial(plant, water_day=int(realised.day_index[0]))
    best = hindsight_optimum(plant, realised, steps, state, policy())
    assert best.success, best.status
    fb = CapacityProportional(plant)
    controllers = [MPCController(AllocationMPC(plant, policy(horizon)), fb, episode_steps=steps),
                   myopic(plant, policy(), fb, episode_steps=steps), fb, GreedyController(plant, "price")]
    for ctrl in controllers:
        episode = run_episode(plant, ctrl, realised, steps, state)
        assert best.stage_values[0] <= episode.cost_eur * (1 + 1e-6), ctrl.name
        for rec in episode.records:  # every request served, queued or dropped; power balances
            np.testing.assert_allclose(rec.served_req.sum(axis=1) + rec.dropped_req + rec.backlog_change_req,
                                       rec.arrivals_req, rtol=1e-9, atol=SOLVER)
            np.testing.assert_allclose(rec.grid_kw + rec.renewable_kw - rec.curtailed_kw + rec.discharge_kw
                                       - rec.charge_kw, rec.facility_kw, rtol=1e-9, atol=SOLVER)
