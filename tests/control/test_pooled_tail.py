"""The pooled tail (``exact_routing_steps``): steps after the first few plan per (pool, class) with the
regions pooled. Where regions differ only in RTT, pooling loses nothing for cost and carbon, and
the applied step keeps its exact form (allowed pairs only, every stream's shares ≤ 1)."""

from __future__ import annotations

import numpy as np
import pytest

from control.controllers import CapacityProportional, MPCController
from control.mpc import AllocationMPC
from control.simulate import hindsight_optimum, run_episode
from control.state import PlantState
from tests.control.cases import flat_forecast, policy, random_instance, tiny_plant
from tests.tolerances import SOLVER, SOLVER_PRIMAL

SOLVERS = ("highs", "qpsol")


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooling_regions_that_differ_only_in_rtt_keeps_the_cost_and_carbon_optima(seed, solver):
    plant, fc, state = random_instance(seed, steps=6)
    assert plant.allowed.all()   # every region may use every pool: regions differ only in RTT
    end = fc.horizon - 1         # the episode ends in the horizon: backlog left is dropped alike
    exact = AllocationMPC(plant, policy(6), solver=solver).solve(state, fc, end_step=end)
    pooled_mpc = AllocationMPC(plant, policy(6, exact_routing_steps=2), solver=solver)
    assert pooled_mpc.lp.x.size < AllocationMPC(plant, policy(6)).lp.x.size
    pooled = pooled_mpc.solve(state, fc, end_step=end)
    assert exact.success and pooled.success, (exact.status, pooled.status)
    np.testing.assert_allclose(pooled.stage_values[:2], exact.stage_values[:2], rtol=SOLVER, atol=SOLVER_PRIMAL)
    # delay is relaxed in the tail (the shortest RTT of any region): never above the exact optimum
    assert pooled.stage_values[2] <= exact.stage_values[2] * (1 + SOLVER)


def test_the_plan_of_pooled_steps_uses_allowed_pairs_and_keeps_every_request():
    # region 1 may not use site 1 (3 s away); the tail pools both regions
    plant = tiny_plant(n_regions=2, gpus=10.0, rtt_s=np.array([[0.01, 0.01], [0.01, 3.0]]))
    fc = flat_forecast(plant, 4, load=np.array([[4.0], [6.0]]), price=np.array([60.0, 1.0]))
    mpc = AllocationMPC(plant, policy(4, exact_routing_steps=1))
    result = mpc.solve(PlantState.initial(plant, water_day=int(fc.day_index[0])), fc)
    assert result.success, result.status
    share = result.plan.share
    assert (share[:, 1, 1, :] == 0).all()                      # never on the disallowed pair
    assert (share.sum(axis=2) <= 1 + 1e-9).all()
    served = plant.dense_pairs(result.plan.served_req_per_s).sum(axis=2)  # (H, R, K)
    np.testing.assert_allclose(served + result.plan.dropped_req_per_s.reshape(4, 2, 1),
                               fc.load_req_per_s, atol=SOLVER_PRIMAL)
    # the cheap site takes all it may: region 0's 4 req/s (region 1 cannot go there)
    np.testing.assert_allclose(served[0, 0, 0] * share[0, 0, 1, 0], 4.0, atol=SOLVER_PRIMAL)


def test_exact_routing_steps_below_zero_are_refused():
    plant = tiny_plant()   # (0 routes every step exactly)
    with pytest.raises(ValueError, match="exact_routing_steps: -1; valid: 0 "):
        AllocationMPC(plant, policy(4, exact_routing_steps=-1))
    with pytest.raises(ValueError, match="exact_routing_steps: 2; valid: 0 or ≥ the horizon"):
        AllocationMPC(plant, policy(4, exact_routing_steps=2), hold_steps=2)   # sub-step holds: all exact


def test_the_hindsight_optimum_bounds_an_mpc_with_a_pooled_tail():
    plant, realised, state = random_instance(5, steps=12)
    best = hindsight_optimum(plant, realised, 8, state, policy())
    fb = CapacityProportional(plant)
    ctrl = MPCController(AllocationMPC(plant, policy(4, exact_routing_steps=1)), fb, episode_steps=8)
    episode = run_episode(plant, ctrl, realised, 8, state)
    assert ctrl.events == []
    assert best.stage_values[0] <= episode.cost_eur * (1 + SOLVER)


def test_warm_started_pooled_solves_equal_cold_ones():
    plant, realised, state = random_instance(3, steps=10)
    warm = AllocationMPC(plant, policy(4, exact_routing_steps=2))
    for t in range(6):
        window = realised.window(t, 4)
        got = warm.solve(state, window)
        cold = AllocationMPC(plant, policy(4, exact_routing_steps=2)).solve(state, window)
        assert got.success and cold.success
        np.testing.assert_allclose(got.stage_values, cold.stage_values, rtol=SOLVER, atol=SOLVER)


@pytest.mark.parametrize("solver", SOLVERS)
def test_tail_blocks_lose_nothing_on_constant_inputs_and_plan_every_step(solver):
    # constant load, prices and weather: the best plan is the same every hour, so blocks of 3 h
    # after 2 exact hours (LP steps 1, 1, 3, 3) reach the all-exact optimum
    plant = tiny_plant(n_sites=2, n_regions=2, classes=("chat", "batch"), gpus=30.0,
                       idle_kw_per_gpu=np.array([0.1, 0.1]))
    fc = flat_forecast(plant, 8, load=np.array([[3.0, 2.0], [5.0, 1.0]]), price=np.array([40.0, 60.0]))
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    exact = AllocationMPC(plant, policy(8), solver=solver).solve(state, fc)
    blocked_mpc = AllocationMPC(plant, policy(8, exact_routing_steps=2, tail_block_steps=3), solver=solver)
    assert blocked_mpc.lp.step_hours.tolist() == [1, 1, 3, 3]
    blocked = blocked_mpc.solve(state, fc)
    assert exact.success and blocked.success, (exact.status, blocked.status)
    np.testing.assert_allclose(blocked.stage_values[:2], exact.stage_values[:2], rtol=SOLVER)
    assert blocked.plan.horizon == 8 and blocked.plan.share.shape == exact.plan.share.shape
    # a block's decision holds for each of its hours
    np.testing.assert_array_equal(blocked.plan.gpus[2:5], np.repeat(blocked.plan.gpus[2:3], 3, axis=0))


def test_the_hindsight_optimum_bounds_an_mpc_with_tail_blocks():
    plant, realised, state = random_instance(6, steps=14)
    best = hindsight_optimum(plant, realised, 8, state, policy())
    ctrl = MPCController(AllocationMPC(plant, policy(6, exact_routing_steps=2, tail_block_steps=2)),
                         CapacityProportional(plant), episode_steps=8)
    episode = run_episode(plant, ctrl, realised, 8, state)
    assert ctrl.events == []
    assert best.stage_values[0] <= episode.cost_eur * (1 + SOLVER)
