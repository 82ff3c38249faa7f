"""Solver faults: real HiGHS time-outs fall back to the previous plan shifted by one step (at most
``control.max_plan_reuse_steps`` times in a row), then to the heuristic; every fallback is a row
of the per-step table and an MLflow metric; the time limit reaches every optimiser and holds per
stage however long the episode."""

from __future__ import annotations

import dataclasses

import mlflow
import numpy as np
import pandas as pd
import pytest

from control.controllers import (
    CapacityProportional,
    FallbackEvent,
    MPCController,
    ShrinkingHorizonMPC,
    provisioned_gpus,
)
from control.mpc import AllocationMPC, MPCResult
from control.simulate import perfect_forecaster
from control.state import PlantState
from pipelines import closed_loop, loop
from pipelines.cli import main
from pipelines.config import load_config
from tests.conftest import CONFIGS
from tests.control.cases import policy, random_instance

STEPS = 6
TIME_OUT = "failed: stage cost: Time limit reached"


def _loop_with_time_outs_after_step_0(monkeypatch, cfg, data, controller: str = "mpc"):
    """``run_loop`` where the controller's HiGHS gets a 1e-9 s limit once step 0 is decided: every
    later solve really times out."""
    s = closed_loop.prepare(cfg, "primary", STEPS, data=data)
    made: list[MPCController] = []
    decisions: list = []
    make = closed_loop.make_controller

    def spy(name, setup):
        ctrl = make(name, setup)
        act = ctrl.act
        ctrl.seen = []                                   # (t, state, forecast) of every call
        ctrl.act = lambda *a: ctrl.seen.append(a) or decisions.append(act(*a)) or decisions[-1]
        made.append(ctrl)
        return ctrl

    def expire(t, *_):
        if t == 0:
            made[0].mpc.backend.time_limit_s = 1e-9

    monkeypatch.setattr(loop, "make_controller", spy)   # what run_loop calls
    out = closed_loop.run_loop(s, controller, "perfect", show_progress=False, observers=(expire,))
    return out, made[0], decisions


def test_a_time_out_reuses_the_previous_plan_once_then_the_heuristic(monkeypatch, smoke_cfg, smoke_data):
    out, ctrl, decisions = _loop_with_time_outs_after_step_0(monkeypatch, smoke_cfg, smoke_data)
    assert smoke_cfg.control.max_plan_reuse_steps == 1
    used = ["", "previous-plan+1", *["heuristic:capacity-proportional"] * (STEPS - 2)]
    assert list(out.per_step["fallback"]) == used
    assert list(out.per_step["fallback_reason"]) == ["", *[TIME_OUT] * (STEPS - 1)]
    assert out.kpis["fallback_steps"] == STEPS - 1
    assert ctrl.events == [FallbackEvent(t, TIME_OUT, used[t]) for t in range(1, STEPS)]
    assert [r.status for r in ctrl.results] == ["optimal", *[TIME_OUT] * (STEPS - 1)]
    assert out.episode.sources[:3] == ("mpc", "mpc:previous-plan", "mpc:fallback-capacity-proportional")
    planned = ctrl.results[0].plan.allocation(1)          # step 1 applies the step-0 plan's next step
    np.testing.assert_array_equal(decisions[1].share, planned.share)
    # its GPUs, at least the sizing rule's for its shares (perfect forecasts: the hour's 10-min peak)
    _, state, forecast = ctrl.seen[1]
    # (the busiest realised sub-step of each pool: control.controllers.provisioned_gpus)
    floor = provisioned_gpus(ctrl.mpc.plant, planned.share, state, forecast, ctrl.headroom)
    np.testing.assert_array_equal(decisions[1].gpus, np.maximum(planned.gpus, floor))


def test_no_plan_reuse_goes_straight_to_the_heuristic(monkeypatch, smoke_data):
    cfg = load_config(CONFIGS / "smoke.yaml", ["control.max_plan_reuse_steps=0"])
    out, _, _ = _loop_with_time_outs_after_step_0(monkeypatch, cfg, smoke_data)
    assert list(out.per_step["fallback"]) == ["", *["heuristic:capacity-proportional"] * (STEPS - 1)]
    assert out.kpis["fallback_steps"] == STEPS - 1


def test_the_settings_reach_every_optimiser(smoke_data):
    cfg = load_config(CONFIGS / "smoke.yaml", ["control.solver_time_limit_s=7.5", "control.max_plan_reuse_steps=3"])
    s = closed_loop.prepare(cfg, "primary", 2, data=smoke_data)
    for name, reuse in (("mpc", 3), ("mpc-temperature-unaware", 3), ("myopic", 0)):
        ctrl = closed_loop.make_controller(name, s)
        assert ctrl.mpc.backend.time_limit_s == 7.5, name
        assert ctrl.max_plan_reuse_steps == reuse, name
    assert AllocationMPC(s.plant, cfg.control).backend.time_limit_s == 7.5
    with pytest.raises(ValueError, match="solver_time_limit_s: 0.0"):
        AllocationMPC(s.plant, dataclasses.replace(cfg.control, solver_time_limit_s=0.0), horizon_steps=2)


@pytest.mark.parametrize("reuse", [0, 1, 2])
def test_plan_reuse_counts_failures_in_a_row_and_a_success_resets_it(monkeypatch, reuse):
    plant, realised, state = random_instance(0, steps=16)
    ctrl = MPCController(AllocationMPC(plant, policy(4)), CapacityProportional(plant), max_plan_reuse_steps=reuse)
    solve = ctrl.mpc.solve
    failed = MPCResult(None, None, TIME_OUT, False, ("Time limit reached",), 0, 0.0)
    pattern = [True, False, False, False, False, True, False, False, False]   # solver succeeds?
    for t, ok in enumerate(pattern):
        monkeypatch.setattr(ctrl.mpc, "solve", solve if ok else (lambda *a, **k: failed))
        ctrl.act(t, state, realised.window(t, 4))
    expected = []
    for start in (1, 6):
        n = 4 if start == 1 else 3
        expected += [FallbackEvent(start + i, TIME_OUT, f"previous-plan+{i + 1}" if i < reuse
                                   else "heuristic:capacity-proportional") for i in range(n)]
    assert ctrl.events == expected
    assert all(type(e.step) is int and type(e.reason) is str for e in ctrl.events)


def test_a_plan_is_never_reused_beyond_its_horizon(monkeypatch):
    plant, realised, state = random_instance(1, steps=8)
    ctrl = MPCController(AllocationMPC(plant, policy(3)), CapacityProportional(plant), max_plan_reuse_steps=5)
    ctrl.act(0, state, realised.window(0, 3))
    failed = MPCResult(None, None, TIME_OUT, False, ("Time limit reached",), 0, 0.0)
    monkeypatch.setattr(ctrl.mpc, "solve", lambda *a, **k: failed)
    for t in (1, 2, 3):
        ctrl.act(t, state, realised.window(t, 3))
    assert [e.fallback for e in ctrl.events] == ["previous-plan+1", "previous-plan+2",
                                                 "heuristic:capacity-proportional"]
    shrinking = ShrinkingHorizonMPC(plant, policy(), 3, CapacityProportional(plant), max_plan_reuse_steps=2)
    assert shrinking.max_plan_reuse_steps == 2
    with pytest.raises(ValueError, match="max_plan_reuse_steps"):
        MPCController(ctrl.mpc, CapacityProportional(plant), max_plan_reuse_steps=-1)


@pytest.mark.parametrize("solver", ["highs", "qpsol"])
def test_the_time_limit_holds_per_stage_not_over_the_episode(smoke_cfg, smoke_data, solver):
    """HiGHS counts its time limit over every run of one solver object; the limit must hold per
    stage: with a limit well above one stage's time, solves go on succeeding after the solver's
    total run time has passed the limit twice."""
    limit = 0.25
    s = closed_loop.prepare(smoke_cfg, "primary", 24, data=smoke_data)
    mpc = AllocationMPC(s.plant, dataclasses.replace(smoke_cfg.control, solver_time_limit_s=limit), solver=solver)
    fc = perfect_forecaster(s.realised, s.horizon)
    state = PlantState.initial(s.plant, water_day=int(s.realised.day_index[0]))
    total, t = 0.0, 0
    while total < 2 * limit:
        result = mpc.solve(state, fc(t % 24))
        assert result.status == "optimal", (t, total, result.status)
        total += result.solver_time_s
        t += 1


def test_simulate_logs_and_prints_every_fallback(tmp_path, monkeypatch, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    rc = main(["simulate", "configs/smoke.yaml", "--forecaster", "perfect", "--steps", "3", "--out",
               str(tmp_path / "sim"), "--set", "control.solver_time_limit_s=1e-6"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "fallback steps 3" in printed
    for t in range(3):
        assert (f"fallback at step {t} (2018-12-14 0{t}:00 UTC): {TIME_OUT} -> heuristic:capacity-proportional"
                in printed)
    mlflow.set_tracking_uri(uri)
    run = mlflow.search_runs(experiment_names=[closed_loop.EXPERIMENT]).iloc[0]
    assert run["metrics.fallback_steps"] == 3
    client = mlflow.MlflowClient()
    assert [m.value for m in sorted(client.get_metric_history(run["run_id"], "step.fallback"),
                                    key=lambda m: m.step)] == [1.0, 1.0, 1.0]
    table = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run["run_id"],
                                                                artifact_path="tables/per_step.parquet"))
    assert list(table["fallback"]) == ["heuristic:capacity-proportional"] * 3
    assert list(table["fallback_reason"]) == [TIME_OUT] * 3


def test_event_records_are_plain_data():
    event = FallbackEvent(3, TIME_OUT, "previous-plan+1")
    assert dataclasses.asdict(event) == {"step": 3, "reason": TIME_OUT, "fallback": "previous-plan+1"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.step = 4  # type: ignore[misc]
