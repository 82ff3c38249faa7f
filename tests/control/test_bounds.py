"""Bounds: the hindsight optimum is ≤ every controller's realised cost; a shrinking-horizon MPC with
perfect forecasts equals it; solver failures fall back instead of crashing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from control.controllers import (
    CapacityProportional,
    GreedyController,
    MPCController,
    ShrinkingHorizonMPC,
    annual_mean_pue,
    myopic,
    temperature_unaware,
)
from control.mpc import AllocationMPC, MPCResult
from control.simulate import hindsight_optimum, run_episode
from tests.control.cases import policy, random_instance
from tests.tolerances import EXACT, SOLVER

EPISODE = 8


@pytest.mark.parametrize("seed", [0, 1])
def test_shrinking_horizon_mpc_with_perfect_forecasts_equals_the_hindsight_optimum(seed):
    plant, realised, state = random_instance(seed, steps=EPISODE)
    best = hindsight_optimum(plant, realised, EPISODE, state, policy(objective="weighted"))
    assert best.success, best.status
    ctrl = ShrinkingHorizonMPC(plant, policy(objective="weighted"), EPISODE, CapacityProportional(plant))
    episode = run_episode(plant, ctrl, realised, EPISODE, state)
    assert ctrl.events == []
    assert episode.cost_eur == pytest.approx(best.stage_values[0], rel=SOLVER)
    assert best.terms.cost_eur == pytest.approx(best.stage_values[0], rel=EXACT)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_hindsight_optimum_bounds_every_controller(seed):
    plant, realised, state = random_instance(seed, steps=EPISODE + 4)
    plant = replace(plant, round_gpus_up=True)
    best = hindsight_optimum(plant, realised, EPISODE, state, policy())
    assert best.success and best.stage_status[0] == "Optimal"
    cost_star = best.stage_values[0]
    fb = CapacityProportional(plant)
    controllers = [
        MPCController(AllocationMPC(plant, policy(4)), fb, episode_steps=EPISODE),
        myopic(plant, policy(), fb, episode_steps=EPISODE),
        temperature_unaware(plant, policy(4), annual_mean_pue(plant, realised.temp_c), fb, episode_steps=EPISODE),
        ShrinkingHorizonMPC(plant, policy(), EPISODE, fb),
        fb,
        *(GreedyController(plant, key) for key in ("nearest", "price", "carbon")),
    ]
    costs = {c.name: run_episode(plant, c, realised, EPISODE, state).cost_eur for c in controllers}
    for name, cost in costs.items():
        assert cost_star <= cost * (1 + SOLVER), (name, cost, cost_star)
    assert costs["mpc"] < min(costs[n] for n in ("capacity-proportional", "nearest-site",
                                                  "cheapest-price", "lowest-carbon"))


def test_a_failing_solver_falls_back_to_the_shifted_plan_then_to_the_heuristic(monkeypatch):
    plant, realised, state = random_instance(0, steps=12)
    ctrl = MPCController(AllocationMPC(plant, policy(3)), CapacityProportional(plant))
    good = ctrl.act(0, state, realised.window(0, 3))
    assert good.source == "mpc"
    failed = MPCResult(None, None, "failed: stage cost: Time limit reached", False, ("Time limit reached",), 0, 0.0)
    monkeypatch.setattr(ctrl.mpc, "solve", lambda *a, **k: failed)
    sources = [ctrl.act(t, state, realised.window(t, 3)).source for t in (1, 2, 3)]
    # the previous plan once (control.max_plan_reuse_steps = 1 by default), then the heuristic
    assert sources == ["mpc:previous-plan", "mpc:fallback-capacity-proportional", "mpc:fallback-capacity-proportional"]
    np.testing.assert_array_equal(ctrl.act(4, state, realised.window(4, 3)).share,
                                  CapacityProportional(plant).act(4, state, realised.window(4, 3)).share)
    assert len(ctrl.events) == 4


def test_a_solver_time_out_is_a_status_not_a_crash():
    plant, realised, state = random_instance(1, steps=8)
    result = AllocationMPC(plant, policy(8, solver_time_limit_s=1e-9)).solve(state, realised)
    assert not result.success and result.plan is None
    assert result.status.startswith("failed: stage cost")
