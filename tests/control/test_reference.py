"""The hindsight references (``control.reference``) and the measures built on them (DESIGN.md §5).

cost_bound: the sub-step hindsight LP (routing per sub-step, GPUs / grid / battery per hour,
continuous GPUs, no queueing); cost_ref: the cheaper of its plan and a whole-GPU MILP plan, each
replayed through the plant. Known optima on hand-made plants, the shrinking-horizon identity, the
bound on real (smoke) data, and the gap formulas.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from control.controllers import CapacityProportional, MPCController, ShrinkingHorizonMPC
from control.mpc import AllocationMPC
from control.plant import pue
from control.reference import PlanReplay, block_backlog_req, hindsight_bound, hindsight_reference, hourly_plan
from control.simulate import hindsight_optimum, run_episode
from control.state import PlantState
from pipelines._loop_report import GAP_CLOSED_NA_WITHIN, gaps, idle_energy_eur, value_of_forecasts
from tests.control.cases import DAY0, flat_forecast, policy, random_instance, tiny_plant
from tests.tolerances import SOLVER, SOLVER_PRIMAL


def _sub_steps(plant, fc, M: int, seed: int):
    """``fc`` with sub-step loads that vary within each hour around its hourly mean."""
    rng = np.random.default_rng(seed)
    weight = rng.uniform(0.4, 1.6, (fc.horizon, M, *fc.load_req_per_s.shape[1:]))
    weight /= weight.mean(axis=1, keepdims=True)
    return replace(fc, load_sub_req_per_s=fc.load_req_per_s[:, None] * weight).validate(plant)


@pytest.mark.parametrize("seed", [0, 1])
def test_shrinking_horizon_perfect_mpc_on_the_sub_step_lp_equals_cost_bound(seed):
    """A perfect-foresight MPC whose horizon shrinks to the episode end, built on the same sub-step
    LP (hourly holds, continuous GPUs) and closing the loop on the sub-step plant (no queueing
    penalty), realises exactly cost_bound. That plant accounts power per sub-step, the bound per
    hour: without renewables or a battery the two are the same."""
    T, M = 3, 3
    plant, fc, _ = random_instance(seed, steps=T)
    zero = np.zeros(plant.n_sites)
    plant = replace(plant, pv_kwp=zero, wind_kw=zero, battery_kwh=zero, battery_kw=zero)
    state = PlantState.initial(plant, water_day=DAY0)
    problem, _, bound = hindsight_bound(plant, _sub_steps(plant, fc.validate(plant), M, seed), T, state)
    assert problem.sub_steps == M and problem.plant.step_h == pytest.approx(1 / M)
    ctrl = ShrinkingHorizonMPC(problem.plant, policy(order=("cost",)), T * M, CapacityProportional(problem.plant),
                               hold_steps=M)
    episode = run_episode(problem.plant, ctrl, problem.forecast, T * M, problem.state)
    assert ctrl.events == []
    assert episode.cost_eur == pytest.approx(bound.stage_values[0], rel=SOLVER)
    gpus = np.array([r.gpus_applied for r in episode.records]).reshape(T, M, -1)
    np.testing.assert_allclose(gpus, np.repeat(gpus[:, :1], M, axis=1), atol=SOLVER_PRIMAL)   # held per hour


@pytest.mark.parametrize("seed", [2, 3])
def test_flat_sub_steps_give_the_hourly_hindsight_lp_and_peaks_cost_more(seed):
    """With every sub-step at its hour's mean the sub-step LP is the hourly one (battery, renewables,
    water budgets and deadlines included); sub-step peaks only raise the bound."""
    T, M = 6, 4
    plant, fc, state = random_instance(seed, steps=T)
    flat = replace(fc, load_sub_req_per_s=np.repeat(fc.load_req_per_s[:, None], M, axis=1)).validate(plant)
    hourly = hindsight_optimum(plant, fc, T, state, policy(order=("cost",)))
    _, _, bound = hindsight_bound(plant, flat, T, state)
    assert bound.stage_values[0] == pytest.approx(hourly.stage_values[0], rel=SOLVER)
    _, _, peaks = hindsight_bound(plant, _sub_steps(plant, fc, M, seed), T, state)
    assert peaks.stage_values[0] >= hourly.stage_values[0] * (1 - SOLVER)


def test_without_sub_step_load_the_references_are_hourly():
    plant, fc, state = random_instance(5, steps=6)
    ref = hindsight_reference(plant, fc, 6, state)
    hourly = hindsight_optimum(plant, fc, 6, state, policy(order=("cost",)))
    assert ref.sub_steps == 1
    assert ref.cost_bound_eur == pytest.approx(hourly.stage_values[0], rel=SOLVER)
    assert ref.cost_ref_eur >= ref.cost_bound_eur * (1 - SOLVER)
    assert ref.shares_lp_replay_eur == ref.lp_replay_eur   # hourly routing is share routing already
    assert ref.shares_lp_eur == ref.cost_bound_eur and ref.shares_spread == 0.0


def test_known_optimum_gpus_cover_the_sub_step_peak_and_the_milp_rounds_them_up():
    """One site, 1 kW idle per GPU, 1 GPU-s and 1 kJ per request, 2.2 and 2.8 req/s in the two
    sub-steps of each hour: the LP runs 2.8 GPUs all hour, the MILP 3; each hour costs
    (2.5 kW served + the idle kW) × PUE × price."""
    T, M = 2, 2
    plant = tiny_plant(n_sites=1, gpus=10.0, idle_kw_per_gpu=np.array([1.0]))
    fc = flat_forecast(plant, T, load=2.5, price=100.0, temp_c=10.0)
    fc = replace(fc, load_sub_req_per_s=np.tile(np.array([2.2, 2.8])[None, :, None, None], (T, 1, 1, 1))
                 ).validate(plant)
    state = PlantState.initial(plant, water_day=DAY0)
    problem, mpc, bound = hindsight_bound(plant, fc, T, state)
    eur_per_kw_h = float(pue(plant, np.array([10.0]))[0]) * 100.0 / 1000.0
    np.testing.assert_allclose(bound.plan.gpus, 2.8, rtol=SOLVER)
    assert bound.stage_values[0] == pytest.approx(T * (2.5 + 2.8) * eur_per_kw_h, rel=SOLVER)
    milp, gap = mpc.solve_whole_gpus(problem.state, problem.forecast, end_step=T * M - 1,
                                     block_shares=block_backlog_req(plant, bound.plan, state, M))
    assert milp.success and milp.status == "Optimal" and gap <= 1e-3
    np.testing.assert_array_equal(milp.plan.gpus, 3.0)
    assert milp.stage_values[0] == pytest.approx(T * (2.5 + 3.0) * eur_per_kw_h, rel=SOLVER)


def test_on_smoke_data_cost_ref_is_at_least_cost_bound_and_the_milp_has_whole_gpus(smoke_cfg, smoke_data):
    from pipelines.closed_loop import prepare

    steps = 3
    s = prepare(smoke_cfg, "primary", steps, data=smoke_data)
    state = PlantState.initial(s.plant, water_day=int(s.realised.day_index[0]))
    ref = hindsight_reference(s.plant, s.realised, steps, state)
    assert ref.sub_steps == 6
    assert ref.cost_ref_eur >= ref.cost_bound_eur * (1 - SOLVER)
    assert ref.cost_ref_eur == np.nanmin([ref.lp_replay_eur, ref.shares_lp_replay_eur, ref.milp_replay_eur])
    assert ref.episode.cost_eur == ref.cost_ref_eur and len(ref.episode.records) == steps
    assert ref.bound_spread == pytest.approx((ref.cost_ref_eur - ref.cost_bound_eur) / ref.cost_bound_eur)
    # the shares LP is the bound's LP with the routing held for the hour: never below it
    assert ref.shares_lp_eur >= ref.cost_bound_eur * (1 - SOLVER) and ref.shares_spread >= -SOLVER
    problem, mpc, bound = hindsight_bound(s.plant, s.realised, steps, state)
    milp, gap = mpc.solve_whole_gpus(problem.state, problem.forecast, end_step=steps * 6 - 1,
                                     block_shares=block_backlog_req(s.plant, bound.plan, state, 6))
    assert milp.success
    np.testing.assert_allclose(milp.plan.gpus, np.round(milp.plan.gpus), atol=SOLVER)
    assert milp.stage_values[0] >= bound.stage_values[0] * (1 - SOLVER)
    assert gap <= 1e-3 or milp.status == "Time limit reached"
    # the time limit holds through the LP that completes a rounded-up start (HiGHS alone ran it to the end)
    start = np.minimum(np.ceil(bound.plan.gpus - 1e-9), problem.plant.gpus_max)
    late, gap = mpc.solve_whole_gpus(problem.state, problem.forecast, end_step=steps * 6 - 1, start_gpus=start,
                                     time_limit_s=1e-9)
    assert not late.success and late.status == "failed: whole GPUs: Time limit reached" and gap == np.inf
    ref = replace(ref, milp_replay_eur=np.nan, milp_status="Time limit reached")
    assert ref.milp_summary == "whole-GPU MILP: no plan (Time limit reached)"


def test_a_hindsight_lp_out_of_time_is_a_named_failure():
    from control.reference import HindsightFailed

    plant, fc, state = random_instance(0, steps=4)
    with pytest.raises(HindsightFailed, match="hindsight bound .LP.*Time limit reached"):
        hindsight_bound(plant, _sub_steps(plant, fc, 2, 0), 4, state, time_limit_s=1e-9)


def test_gap_closed_is_na_when_the_best_heuristic_is_within_2_percent_of_cost_ref():
    heur = ("nearest-site", "capacity-proportional")
    costs = {"mpc": 105.0, "nearest-site": 101.5, "capacity-proportional": 130.0}
    g = gaps(costs, 100.0, 90.0, heur)
    assert math.isnan(g["mpc"]["gap_closed"])          # 101.5 is within 2 % of 100
    assert g["mpc"]["gap_to_hindsight"] == pytest.approx(0.05)
    assert g["mpc"]["gap_to_bound"] == pytest.approx(15.0 / 90.0)
    edge = 100.0 * (1 + GAP_CLOSED_NA_WITHIN)
    assert math.isnan(gaps({**costs, "nearest-site": edge}, 100.0, 90.0, heur)["mpc"]["gap_closed"])
    assert math.isnan(gaps({**costs, "nearest-site": 95.0}, 100.0, 90.0, heur)["mpc"]["gap_closed"])
    g = gaps({**costs, "nearest-site": 120.0}, 100.0, 90.0, heur)
    assert g["mpc"]["gap_closed"] == pytest.approx(0.75)
    assert g["nearest-site"]["gap_closed"] == pytest.approx(0.0)
    assert g["capacity-proportional"]["gap_closed"] == pytest.approx(-0.5)
    assert math.isnan(gaps({"mpc": 1.0}, 1.0, 1.0, heur)["mpc"]["gap_closed"])   # no heuristic ran


def test_value_of_forecasts_parts_add_up_and_idle_energy_is_priced_by_hand():
    plant, fc, state = random_instance(4, steps=9)   # 3 more hours for the MPC's look-ahead
    fb = CapacityProportional(plant)
    good = run_episode(plant, MPCController(AllocationMPC(plant, policy(3)), fb, episode_steps=6), fc, 6, state)
    poor = run_episode(plant, fb, fc, 6, state)
    v = value_of_forecasts(plant, fc, poor, good)
    assert v["value_of_forecasts_eur"] == pytest.approx(poor.cost_eur - good.cost_eur)
    parts = sum(v[f"value_of_forecasts_{p}_eur"] for p in ("idle_energy", "drops", "slo", "other"))
    assert parts == pytest.approx(v["value_of_forecasts_eur"])
    by_hand = sum(plant.idle_kw_per_gpu[p] * r.gpus_applied[p] * pue(plant, fc.temp_c[t])[plant.pool_site[p]]
                  * fc.price_eur_per_mwh[t, plant.pool_site[p]] / 1000.0
                  for t, r in enumerate(poor.records) for p in range(plant.n_pools))
    assert idle_energy_eur(plant, poor, fc) == pytest.approx(by_hand)


def test_a_plan_that_defers_to_a_cheap_hour_is_replayed_without_the_backlog_fill():
    """Batch work arrives in a dear hour (200 EUR/MWh) beside chat work that leaves half a GPU free;
    the hindsight plan defers it to the cheap hours (10 EUR/MWh). The filling dispatcher would serve
    it on that free half GPU at the dear price, so ``cost_ref`` is the fill-off replay: the same as
    on a plant without the fill, and cheaper than the fill-on replay."""
    T = 3
    plant = tiny_plant(n_sites=1, classes=("chat", "batch"), gpus=10.0, idle_kw_per_gpu=np.array([1.0]),
                       backlog_fill=True)
    load = np.zeros((T, 1, 2))
    load[:, 0, 0], load[0, 0, 1] = 2.5, 1.0
    fc = flat_forecast(plant, T, load=load, price=np.array([200.0, 10.0, 10.0])[:, None])
    state = PlantState.initial(plant, water_day=DAY0)
    ref = hindsight_reference(plant, fc, T, state)
    plain = hindsight_reference(replace(plant, backlog_fill=False), fc, T, state)
    assert ref.ref_source.endswith("(fill off)")
    assert ref.cost_ref_eur == pytest.approx(plain.cost_ref_eur, rel=SOLVER)
    problem, mpc, bound = hindsight_bound(plant, fc, T, state)
    filled = run_episode(plant, PlanReplay(plant, hourly_plan(plant, bound.plan, fc, state, 1), fc, "lp"), fc, T,
                         state)
    assert filled.records[0].served_req[..., 1].sum() > 0.4 * 3600   # the fill served batch at 200 EUR/MWh
    assert ref.cost_ref_eur < filled.cost_eur * (1 - SOLVER)
