"""Fair controllers: one GPU sizing rule (``control.sizing.provision_gpus``) for every controller,
heuristics that fill pools in their order up to what they provision and then spill, and the
provisioning level at the hour's 10-min peak (fitted on training days; realised for perfect
forecasts)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from control import sizing
from control.controllers import (
    CapacityProportional,
    GreedyController,
    MPCController,
    ShrinkingHorizonMPC,
    myopic,
    temperature_unaware,
)
from control.forecast_adapter import fit_peak_factor
from control.mpc import AllocationMPC
from control.state import PlantState
from tests.control.cases import DAY0, flat_forecast, policy, random_instance, tiny_plant
from tests.tolerances import EXACT

KEYS = ("nearest", "price", "carbon")


def _two_pools(gpus: list[float]) -> tuple:
    """Pool 0 is first in every order: nearer, cheaper and cleaner than pool 1."""
    plant = tiny_plant(n_sites=2, gpus=gpus, rtt_s=np.array([[0.01, 0.03]]))
    state = PlantState.initial(plant, water_day=DAY0)
    return plant, state


def _forecast(plant, provision: float, median: float = 10.0):
    return flat_forecast(plant, 2, load=median, price=np.array([30.0, 60.0]),
                         carbon_g_per_kwh=np.array([100.0, 400.0]),
                         load_provision_req_per_s=np.full((2, 1, 1), provision))


@pytest.mark.parametrize("key", KEYS)
def test_a_heuristic_fills_its_first_pool_up_to_what_it_provisions_then_spills(key):
    plant, state = _two_pools([10.0, 100.0])
    # headroom 25 %: pool 0's 10 GPUs provision 10 / 1.25 = 8 req/s (1 GPU-s per request, rho_max 1)
    alloc = GreedyController(plant, key, provision_headroom=0.25).act(0, state, _forecast(plant, provision=20.0))
    np.testing.assert_allclose(alloc.share[0, :, 0], [8.0 / 20.0, 12.0 / 20.0], rtol=EXACT)
    np.testing.assert_allclose(alloc.gpus, [10.0, 12.0 * 1.25], rtol=EXACT)
    np.testing.assert_allclose(alloc.gpus, sizing.provision_gpus(plant, alloc.share, np.full((1, 1), 20.0), 0.25),
                               rtol=EXACT)
    # below the first pool's provisioned capacity nothing spills
    alloc = GreedyController(plant, key, provision_headroom=0.25).act(0, state, _forecast(plant, provision=6.0))
    np.testing.assert_allclose(alloc.share[0, :, 0], [1.0, 0.0], atol=EXACT)
    np.testing.assert_allclose(alloc.gpus, [7.5, 0.0], rtol=EXACT)


def test_work_beyond_every_provisioned_capacity_takes_the_headroom_in_order_before_any_is_left_unrouted():
    plant, state = _two_pools([10.0, 10.0])
    alloc = GreedyController(plant, "nearest", provision_headroom=0.25).act(0, state, _forecast(plant, 19.0))
    # first pass 8 + 8 req/s at headroom; the 3 left fill pool 0's installed 10, then pool 1
    np.testing.assert_allclose(alloc.share[0, :, 0], [10.0 / 19.0, 9.0 / 19.0], rtol=EXACT)
    np.testing.assert_allclose(alloc.gpus, [10.0, 10.0], rtol=EXACT)   # never above the installed GPUs
    alloc = GreedyController(plant, "nearest", provision_headroom=0.25).act(0, state, _forecast(plant, 30.0))
    # the 10 req/s beyond every installed capacity go to the first pool (the dispatcher spills them)
    np.testing.assert_allclose(alloc.share[0, :, 0], [20.0 / 30.0, 10.0 / 30.0], rtol=EXACT)


def test_capacity_proportional_splits_by_installed_capacity_and_sizes_with_the_rule():
    plant, state = _two_pools([10.0, 30.0])
    alloc = CapacityProportional(plant, provision_headroom=0.1).act(0, state, _forecast(plant, 8.0))
    np.testing.assert_allclose(alloc.share[0, :, 0], [0.25, 0.75], rtol=EXACT)
    np.testing.assert_allclose(alloc.gpus, [2.0 * 1.1, 6.0 * 1.1], rtol=EXACT)


def test_the_sizing_rule_routes_the_deferrable_backlog_as_the_plant_does_and_checks_its_headroom():
    plant = tiny_plant(n_sites=1, classes=("chat", "batch"), gpus=50.0, rho_max=0.5)
    share = np.ones((1, 1, 2))
    backlog = np.array([[3600.0, 7200.0]])      # the interactive "backlog" is not work (plant rule)
    gpus = sizing.provision_gpus(plant, share, np.array([[4.0, 1.0]]), 0.5, backlog)
    np.testing.assert_allclose(gpus, [(4.0 + 1.0 + 2.0) / 0.5 * 1.5], rtol=EXACT)
    assert sizing.provision_gpus(plant, share, np.array([[400.0, 0.0]]), 0.0)[0] == 50.0
    with pytest.raises(ValueError, match="headroom"):
        sizing.provision_gpus(plant, share, np.array([[4.0, 1.0]]), -0.1)
    with pytest.raises(ValueError, match="provision_headroom"):
        GreedyController(plant, "nearest", provision_headroom=float("nan"))


def test_every_controller_applies_the_gpus_of_the_one_sizing_rule(monkeypatch):
    plant, realised, state = random_instance(5, steps=8)
    calls: list[str] = []

    def spy(p, share, load, headroom, backlog=None):
        calls.append(f"h={headroom}")
        return p.gpus_max.copy()            # a sentinel no controller would choose by itself

    monkeypatch.setattr(sizing, "provision_gpus", spy)
    fb = CapacityProportional(plant, provision_headroom=0.2)
    controllers = [fb, *(GreedyController(plant, k, provision_headroom=0.2) for k in KEYS),
                   MPCController(AllocationMPC(plant, policy(4)), fb, provision_headroom=0.2),
                   myopic(plant, policy(), fb, provision_headroom=0.2),
                   temperature_unaware(plant, policy(4), np.full(plant.n_sites, 1.2), fb, provision_headroom=0.2),
                   ShrinkingHorizonMPC(plant, policy(), 8, fb, provision_headroom=0.2)]
    for ctrl in controllers:
        calls.clear()
        alloc = ctrl.act(0, state, realised.window(0, 8))
        assert calls == ["h=0.2"], ctrl.name
        np.testing.assert_array_equal(alloc.gpus, plant.gpus_max, err_msg=ctrl.name)


def test_the_mpc_keeps_its_plan_where_it_asks_for_more_and_the_rule_where_that_asks_for_more():
    plant, realised, state = random_instance(6, steps=8)
    fc = realised.window(0, 4)
    plain = MPCController(AllocationMPC(plant, policy(4)), CapacityProportional(plant)).act(0, state, fc)
    raised = MPCController(AllocationMPC(plant, policy(4)), CapacityProportional(plant),
                           provision_headroom=0.5).act(0, state, fc)
    np.testing.assert_array_equal(raised.share, plain.share)
    floor = sizing.provision_gpus(plant, plain.share, fc.load_provision_req_per_s[0], 0.5, state.backlog_req)
    np.testing.assert_allclose(raised.gpus, np.maximum(plain.gpus, floor), rtol=EXACT)
    assert (raised.gpus > plain.gpus + 1e-6).any()


def test_the_peak_factor_is_the_quantile_of_the_hours_max_over_mean_on_training_days_only():
    start = pd.Timestamp("2018-12-03T00:00Z")
    idx = pd.date_range(start - pd.Timedelta(hours=1), periods=6 * 27, freq="10min")
    a = np.ones(len(idx))
    b = np.zeros(len(idx))
    # training day (day 0): hour 0 of "a" is 1,1,1,1,1,7 (mean 2, max 7: ratio 3.5); hour 1 is 2,2,2,2,2,8
    # (mean 3, max 8: 8/3); every other hour flat (ratio 1)
    a[6:12] = [1, 1, 1, 1, 1, 7]
    a[12:18] = [2, 2, 2, 2, 2, 8]
    a[:6] = [100, 1, 1, 1, 1, 1]         # the hour before day 0: not a training hour
    a[-6:] = [1, 1, 1, 1, 1, 1000]       # day 1: beyond train_days = 1
    b[6:12] = [0, 0, 0, 6, 0, 0]         # stream b: one hour with load (ratio 6), the rest empty (skipped)
    frame = pd.DataFrame({"R0/chat": a, "R0/batch": b}, index=idx)
    starts = {"R0/chat": start, "R0/batch": start}
    ratios_a = np.array([3.5, 8.0 / 3.0] + [1.0] * 22)
    got = fit_peak_factor(frame, ["R0/chat", "R0/batch"], starts, 0.9, train_days=1)
    np.testing.assert_allclose(got, [np.quantile(ratios_a, 0.9), 6.0], rtol=EXACT)
    # by hand: sorted ratios 1 (×22), 8/3, 3.5; position 0.9 × 23 = 20.7 → 1.0 (both neighbours 1)
    assert got[0] == pytest.approx(1.0)
    top = fit_peak_factor(frame, ["R0/chat"], starts, 0.99, train_days=1)[0]
    assert top == pytest.approx(8.0 / 3.0 + 0.77 * (3.5 - 8.0 / 3.0))   # position 22.77
    # one group: the summed load's hours are 1,1,1,7,1,7 (7/3) and 2,2,2,2,2,8 (8/3), the rest flat
    both = fit_peak_factor(frame, ["R0/chat", "R0/batch"], starts, 0.99, train_days=1,
                           group_of={"R0/chat": "fleet", "R0/batch": "fleet"})
    np.testing.assert_allclose(both, 7.0 / 3.0 + 0.77 * (8.0 / 3.0 - 7.0 / 3.0), rtol=EXACT)
    with pytest.raises(KeyError, match="R1/chat"):
        fit_peak_factor(frame, ["R1/chat"], starts, 0.9)


def test_perfect_forecasts_provision_for_the_realised_10_min_peak_of_each_hour():
    from pipelines._loop_forecasts import forecaster_for

    plant, state = _two_pools([100.0, 100.0])
    sub = np.array([[4.0, 4.0, 4.0, 4.0, 4.0, 10.0], [5.0] * 6, [1.0, 2.0, 3.0, 4.0, 5.0, 9.0]])[:, :, None, None]
    realised = replace(flat_forecast(plant, 3, load=sub.mean(axis=1)), load_sub_req_per_s=sub).validate(plant)
    fn, note = forecaster_for("perfect", None, plant, realised, pd.Timestamp("2018-12-14T00:00Z"), 2, 0.9)
    fc = fn(1)
    np.testing.assert_array_equal(fc.load_provision_req_per_s[:, 0, 0], [5.0, 9.0])   # the 10-min max
    np.testing.assert_array_equal(fc.load_burst_req_per_s[:, 0, 0], [5.0, 9.0])
    np.testing.assert_allclose(fc.load_req_per_s[:, 0, 0], [5.0, 4.0], rtol=EXACT)     # the mean stays
    assert "10-min peak" in note
    alloc = GreedyController(plant, "nearest").act(0, state, fn(0))
    np.testing.assert_allclose(alloc.gpus, [10.0, 0.0], rtol=EXACT)                     # peak, not mean 5


def test_perfect_forecasts_provision_the_fleet_peak_and_each_pools_busiest_sub_step():
    from dataclasses import replace

    from pipelines._loop_forecasts import forecaster_for

    plant = tiny_plant(n_sites=2, n_regions=2, classes=("chat", "batch"), gpus=100.0,
                       rtt_s=np.array([[0.01, 0.03], [0.03, 0.01]]))
    state = PlantState.initial(plant, water_day=DAY0)
    sub = np.zeros((1, 6, 2, 2))
    sub[0, :, 0, 0] = [4, 4, 4, 4, 4, 10]       # R0/chat bursts at the end, R1/chat at the start:
    sub[0, :, 1, 0] = [10, 4, 4, 4, 4, 4]       # the fleet total peaks at 14 on a mean of 10
    sub[0, :, 0, 1] = [0, 0, 0, 0, 0, 12]       # batch: its burst waits (no peak factor)
    realised = replace(flat_forecast(plant, 1, load=sub.mean(axis=1)), load_sub_req_per_s=sub).validate(plant)
    fn, _ = forecaster_for("perfect", None, plant, realised, pd.Timestamp("2018-12-14T00:00Z"), 1, 0.9)
    fc = fn(0)
    np.testing.assert_allclose(fc.load_provision_req_per_s[0], [[5 * 14 / 10, 2.0], [5 * 14 / 10, 0.0]], rtol=EXACT)
    alloc = GreedyController(plant, "nearest").act(0, state, fc)
    np.testing.assert_allclose(alloc.share[:, :, 0], np.eye(2), atol=EXACT)   # each region's chat to its nearest
    # pool 0 takes R0's chat and batch: busiest sub-step 10 + 12 = 22; pool 1 R1's chat: 10
    np.testing.assert_allclose(alloc.gpus, [22.0, 10.0], rtol=EXACT)


def test_the_mpc_keeps_its_planned_deferral_with_certain_forecasts_except_near_the_episode_end():
    """Perfect forecasts (no spread): the plan's deferral is deliberate, so the decision turns the
    dispatcher's backlog fill off — but not within the batch deadline (4 steps) of the episode's
    end, nor when the forecast has spread (the fill is the reserve against its errors), nor with
    ``keep_planned_deferral`` off."""
    plant = replace(tiny_plant(classes=("chat", "batch"), gpus=20.0), backlog_fill=True)
    state = PlantState.initial(plant, water_day=DAY0)
    certain = flat_forecast(plant, 6)
    spread = flat_forecast(plant, 6, load_provision_req_per_s=np.full((6, 1, 2), 15.0))
    fb = CapacityProportional(plant)
    ctrl = MPCController(AllocationMPC(plant, policy(6)), fb, episode_steps=10)
    assert ctrl.act(0, state, certain).backlog_fill is False     # 10 steps left > 4
    assert ctrl.act(6, state, certain).backlog_fill is True      # 4 steps left ≤ 4
    assert ctrl.act(0, state, spread).backlog_fill is True
    off = MPCController(AllocationMPC(plant, policy(6, keep_planned_deferral=False)), fb, episode_steps=10)
    assert off.act(0, state, certain).backlog_fill is True
    assert fb.act(0, state, certain).backlog_fill is True        # heuristics keep the plant's fill


@pytest.mark.parametrize(("sub_steps", "gpus"), [(6, 4.0), (1, 6.0)])
def test_the_perfect_mpc_plans_the_applied_hour_on_its_sub_steps(sub_steps, gpus):
    """Two regions, each nearest its own pool, 1 kW idle per GPU: R0 sends 3 req/s in the first half
    of the hour and 1 in the second, R1 the reverse, so the fleet is flat at 4 (peak factor 1).
    Routing each region to its nearest pool needs 3 GPUs per pool at its busiest sub-step; split
    half and half, each pool's work is 2 in every sub-step. Only the MPC whose applied step sees
    the sub-steps (``sub_steps`` 6, rows ``sub_capacity``) finds the split: 4 GPUs instead of 6
    (within the delay stage's ε = 0.1 % of cost, which buys a little nearness back)."""
    from pipelines._loop_forecasts import forecaster_for

    plant = tiny_plant(n_sites=2, n_regions=2, gpus=100.0, idle_kw_per_gpu=np.ones(2),
                       rtt_s=np.array([[0.01, 0.03], [0.03, 0.01]]))
    state = PlantState.initial(plant, water_day=DAY0)
    sub = np.zeros((2, 6, 2, 1))
    sub[:, :, 0, 0], sub[:, :, 1, 0] = [3, 3, 3, 1, 1, 1], [1, 1, 1, 3, 3, 3]
    realised = replace(flat_forecast(plant, 2, load=sub.mean(axis=1)), load_sub_req_per_s=sub).validate(plant)
    fn, _ = forecaster_for("perfect", None, plant, realised, pd.Timestamp("2018-12-14T00:00Z"), 2, 0.9)
    mpc = AllocationMPC(plant, policy(horizon_steps=2, order=("cost", "delay")), sub_steps=sub_steps)
    alloc = MPCController(mpc, CapacityProportional(plant)).act(0, state, fn(0))
    assert alloc.gpus.sum() == pytest.approx(gpus, rel=0.01)
    if sub_steps > 1:
        np.testing.assert_allclose(alloc.share[:, :, 0], 0.5, atol=0.01)


def test_the_sub_step_rows_are_free_for_a_forecast_without_sub_steps():
    """A learned forecast (no sub-steps) plans the same with or without the sub-step rows."""
    plant, fc, state = random_instance(4, steps=4)
    plans = [AllocationMPC(plant, policy(horizon_steps=4, order=("cost",)), sub_steps=m).solve(state, fc)
             for m in (1, 6)]
    assert plans[1].stage_values[0] == pytest.approx(plans[0].stage_values[0], rel=1e-7)


def test_the_sub_step_ratio_offers_the_backlog_in_every_sub_step():
    """The sub-step rows' work per stream over its hour's mean: chat 2 and 6 req/s (mean 4) → 0.5
    and 1.5; batch 0 and 2 req/s (mean 1) with 3,600 requests waiting (1 req/s over the hour,
    offered in every sub-step as the plant does) → (0 + 1) / 2 and (2 + 1) / 2, not 0 and 2."""
    from control._mpc_parameters import load_levels

    plant = tiny_plant(classes=("chat", "batch"), gpus=20.0)
    sub = np.zeros((1, 2, 1, 2))
    sub[0, :, 0, 0], sub[0, :, 0, 1] = [2.0, 6.0], [0.0, 2.0]
    fc = replace(flat_forecast(plant, 1, load=sub.mean(axis=1)), load_sub_req_per_s=sub).validate(plant)
    mpc = AllocationMPC(plant, policy(horizon_steps=1), sub_steps=2)
    levels = load_levels(plant, mpc.lp, mpc.horizon_map, fc, 1.0, False, np.array([[0.0, 3600.0]]))
    assert levels.sub is not None
    np.testing.assert_allclose(levels.sub, [[0.5, 0.5], [1.5, 1.5]], rtol=EXACT)
    assert load_levels(plant, mpc.lp, mpc.horizon_map, flat_forecast(plant, 1), 1.0, False).sub is None
