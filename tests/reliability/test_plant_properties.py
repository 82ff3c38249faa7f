"""Property tests of the realised step at any fleet scale: over random loads (hourly, or six random
10-min sub-steps through the dispatcher), shares, GPU counts, backlogs, batteries and renewables at
1×–1000× scale, ``control.realised.step`` conserves requests per stream (arrivals = served + dropped
+ backlog change), keeps every pool within rho_max × GPUs in every sub-step and balances power per
site, to a tolerance relative to the size of the terms, and ``check_invariants`` agrees; a broken
record is refused with the step, the stream or site, and the values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.realised import step
from control.simulate import INVARIANT_RTOL, InvariantError, check_invariants
from control.state import Allocation, PlantState, StepRecord
from tests.control.cases import DAY0, flat_forecast, tiny_plant
from tests.tolerances import CONSERVATION

S, R, CLASSES = 3, 2, ("chat", "batch")   # batch is deferrable (deadline 4 steps)


def situation(seed: int, scale: float, rounding: bool, no_arrivals: tuple[bool, ...], backlog_exp: int,
              sub_steps: bool = False):
    """A random plant, state, decision and realised hour; sizes (GPUs, load, backlog, renewables,
    batteries) multiplied by ``scale``; streams flagged in ``no_arrivals`` get none; deferrable
    backlog up to ``10**backlog_exp × scale`` requests; with ``sub_steps`` the hour's load comes
    in six random 10-min sub-steps (lognormal, mean the hourly load)."""
    rng = np.random.default_rng(seed)
    gpus = np.ceil(rng.uniform(1, 40, S) * scale)
    battery_kwh = rng.choice([0.0, 1.0], S) * rng.uniform(1, 20, S) * scale
    plant = tiny_plant(
        n_sites=S, n_regions=R, classes=CLASSES, gpus=list(gpus), idle_kw_per_gpu=rng.uniform(0.0, 0.3, S),
        it_kw_per_req_per_s=rng.uniform(0.2, 2.0, (S, 2)), gpu_s_per_req=rng.uniform(0.2, 2.0, (S, 2)),
        rtt_s=rng.uniform(0.005, 0.05, (R, S)), pv_kwp=rng.uniform(0, 10, S) * scale,
        wind_kw=rng.uniform(0, 10, S) * scale, battery_kwh=battery_kwh, battery_kw=battery_kwh / 2,
        charge_eff=0.95, discharge_eff=0.95, rho_max=float(rng.uniform(0.5, 1.0)), round_gpus_up=rounding)
    load = rng.uniform(0, 12, (1, R, 2)) * scale * ~np.array(no_arrivals).reshape(1, R, 2)
    realised = flat_forecast(plant, 1, load=load, price=rng.uniform(-20, 200), temp_c=rng.uniform(-10, 40),
                             solar_cf=rng.uniform(0, 1, S), wind_cf=rng.uniform(0, 1, S))
    if sub_steps:
        weights = rng.lognormal(0.0, 0.8, (1, 6, R, 2))
        realised = dataclasses.replace(realised, load_sub_req_per_s=load[:, None] * weights
                                       / weights.mean(axis=1, keepdims=True)).validate(plant)
    defer = plant.deferrable[None, :]
    backlog = np.where(defer, rng.uniform(0, 1, (R, 2)) * 10.0 ** backlog_exp * scale, 0.0)
    history = np.where(defer[None], rng.uniform(0, 1, (PlantState.history_len(plant), R, 2)), 0.0) \
        * 10.0 ** backlog_exp * scale
    state = PlantState(rng.uniform(0, 1, S) * gpus, rng.uniform(0, 1, S) * battery_kwh, backlog, history,
                       rng.uniform(0, 1e3, S) * scale, DAY0)
    share = rng.uniform(0, 1, (R, S, 2)) * rng.choice([0.0, 1.0], (R, S, 2), p=[0.2, 0.8])
    total = share.sum(axis=1, keepdims=True)
    share = share / np.where(total > 0, total, 1.0) * rng.choice([1.0, rng.uniform(0, 1)], (R, 1, 2))
    decision = Allocation(share, rng.uniform(0, 1.2, S) * gpus, rng.uniform(0, 1.5, S) * plant.battery_kw,
                          rng.uniform(0, 1.5, S) * plant.battery_kw)
    return plant, state, decision, realised


def _conservation_residual(rec: StepRecord, backlog_before: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    served = rec.served_req.sum(axis=1)
    residual = rec.arrivals_req - (served + rec.dropped_req + rec.backlog_change_req)
    size = rec.arrivals_req + served + np.abs(rec.dropped_req) + np.abs(rec.backlog_change_req) + backlog_before
    return residual, np.maximum(size, 1.0)


def _power_residual(rec: StepRecord) -> tuple[np.ndarray, np.ndarray]:
    flows = (rec.grid_kw, rec.renewable_kw, rec.curtailed_kw, rec.discharge_kw, rec.charge_kw, rec.facility_kw)
    residual = rec.facility_kw - (rec.grid_kw + rec.renewable_kw - rec.curtailed_kw + rec.discharge_kw - rec.charge_kw)
    return residual, np.maximum(sum(np.abs(f) for f in flows), 1.0)


situations = st.tuples(
    st.integers(0, 2**32 - 1),
    st.floats(1.0, 1000.0),
    st.booleans(),
    st.tuples(*[st.booleans()] * (R * 2)),
    st.integers(0, 7),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(situations)
def test_the_step_conserves_requests_and_balances_power_at_any_scale(args):
    plant, state, decision, realised = situation(*args)
    nxt, rec = step(plant, state, decision, realised)
    residual, size = _conservation_residual(rec, state.backlog_req)
    assert (np.abs(residual) <= CONSERVATION * size).all(), (residual, size)
    residual, size = _power_residual(rec)
    assert (np.abs(residual) <= CONSERVATION * size).all(), (residual, size)
    assert (rec.served_req >= 0).all() and (rec.grid_kw >= 0).all() and (rec.curtailed_kw >= 0).all()
    assert (rec.dropped_req >= -CONSERVATION * size.max()).all()
    assert (nxt.backlog_req >= 0).all() and (nxt.backlog_req[:, ~plant.deferrable] == 0).all()
    assert (rec.peak_utilisation <= plant.rho_max + CONSERVATION).all()
    assert (rec.spilled_req <= rec.served_req + CONSERVATION * np.maximum(rec.served_req, 1.0)).all()
    check_invariants(plant, rec, 0, backlog_before_req=state.backlog_req)


@pytest.mark.parametrize("sub_steps", [False, True])
@pytest.mark.parametrize("seed", range(20))
def test_a_1e7_backlog_at_100x_load_with_no_new_batch_arrivals_passes_the_checks(seed, sub_steps):
    """Round-off of a few 1e-9 requests on a backlog of 1e7 or more is within the tolerance (the
    former one, 1e-9 × max(1, |arrivals|), tripped on 14 of these 20 steps: no arrivals, so 1e-9);
    with six sub-steps the backlog is offered in six parts and what finds no room comes back."""
    plant, state, decision, realised = situation(seed, 100.0, True, (False, True, False, True), 6, sub_steps)
    assert state.backlog_req[:, 1].max() > 1e7
    nxt, rec = step(plant, state, decision, realised)
    check_invariants(plant, rec, 0, backlog_before_req=state.backlog_req)
    residual, size = _conservation_residual(rec, state.backlog_req)
    assert (np.abs(residual) <= CONSERVATION * size).all()


@pytest.fixture()
def valid():
    plant, state, decision, realised = situation(7, 300.0, True, (False,) * 4, 4)
    _, rec = step(plant, state, decision, realised)
    check_invariants(plant, rec, 7, backlog_before_req=state.backlog_req)
    return plant, state, rec


def test_a_lost_request_is_named_by_step_and_stream(valid):
    plant, state, rec = valid
    _, size = _conservation_residual(rec, state.backlog_req)
    dropped = rec.dropped_req.copy()
    dropped[1, 1] += 1e-6 * size[1, 1]                       # far above round-off, far below a request lost per 1e6
    broken = dataclasses.replace(rec, dropped_req=dropped)
    with pytest.raises(InvariantError, match=r"step 7: request conservation .* stream R1/batch") as err:
        check_invariants(plant, broken, 7, backlog_before_req=state.backlog_req)
    assert err.value.step == 7 and "tolerance" in str(err.value)
    assert not isinstance(err.value, ValueError)             # a defect, reported as such by the CLI
    dropped[1, 1] = rec.dropped_req[1, 1] + 0.1 * INVARIANT_RTOL * size[1, 1]   # round-off: accepted
    check_invariants(plant, dataclasses.replace(rec, dropped_req=dropped), 7, backlog_before_req=state.backlog_req)


def test_an_unbalanced_site_and_an_overloaded_pool_are_named(valid):
    plant, state, rec = valid
    grid = rec.grid_kw.copy()
    grid[2] += 1e-6 * max(rec.facility_kw[2], 1.0)
    with pytest.raises(InvariantError, match=r"step 7: power balance .* site S2"):
        check_invariants(plant, dataclasses.replace(rec, grid_kw=grid), 7)
    busy = int(np.argmax(rec.served_req.sum(axis=(0, 2))))
    gpus = rec.gpus_applied.copy()
    gpus[busy] *= 0.5
    with pytest.raises(InvariantError, match=f"step 7: capacity .* pool {plant.pool_names[busy]}"):
        check_invariants(plant, dataclasses.replace(rec, gpus_applied=gpus), 7)


def test_a_nan_never_passes(valid):
    plant, state, rec = valid
    arrivals = rec.arrivals_req.copy()
    arrivals[0, 0] = np.nan
    with pytest.raises(InvariantError, match="stream R0/chat"):
        check_invariants(plant, dataclasses.replace(rec, arrivals_req=arrivals), 7)


def test_a_broken_step_in_a_run_is_reported_with_run_hour_step_and_stream(tmp_path, monkeypatch, capsys):
    """A violated invariant ends the run as a defect (exit 1, never exit 2 'your input') whose one
    line names the controller, the hour, the step, the stream and both sides."""
    import control.simulate as simulate
    from pipelines.cli import main

    real_step = simulate.step

    def leaky(plant, state, decision, realised):
        nxt, rec = real_step(plant, state, decision, realised)
        if leaky.calls == 1:   # step 1 loses 5 requests of one stream
            dropped = rec.dropped_req.copy()
            dropped[1, 0] += 5.0
            rec = dataclasses.replace(rec, dropped_req=dropped)
        leaky.calls += 1
        return nxt, rec

    leaky.calls = 0
    monkeypatch.setattr(simulate, "step", leaky)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    rc = main(["simulate", "configs/smoke.yaml", "--controller", "capacity-proportional", "--forecaster",
               "perfect", "--steps", "3", "--out", str(tmp_path / "sim")])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "InvariantError: capacity-proportional (perfect), 2018-12-14 01:00 UTC: step 1: request conservation" in err
    assert "stream Berlin/" in err and "tolerance" in err


def test_a_sub_step_overload_and_a_spill_to_a_disallowed_pair_are_named(valid):
    plant, state, rec = valid
    peak = rec.peak_utilisation.copy()
    peak[1] = plant.rho_max * (1 + 1e-6)
    with pytest.raises(InvariantError, match=f"step 7: sub-step capacity .* pool {plant.pool_names[1]}"):
        check_invariants(plant, dataclasses.replace(rec, peak_utilisation=peak), 7)
    peak[1] = 0.0 if rec.served_req[:, 1].sum() > 0 else -1.0       # below the hour's mean: impossible
    with pytest.raises(InvariantError, match="sub-step capacity"):
        check_invariants(plant, dataclasses.replace(rec, peak_utilisation=peak), 7)
    spilled = rec.spilled_req.copy()
    r, p, k = np.argwhere(plant.allowed)[0]
    spilled[r, p, k] = rec.served_req[r, p, k] * (1 + 1e-6) + 1.0    # more spilled in than served
    with pytest.raises(InvariantError, match=f"dispatch broken at region R{r}, pool {plant.pool_names[p]}"):
        check_invariants(plant, dataclasses.replace(rec, spilled_req=spilled), 7)
    overflow = rec.deferred_overflow_req.copy()
    overflow[0, 0] = 1.0                                             # chat is interactive
    with pytest.raises(InvariantError, match="deferrable overflow 1 at stream R0/chat"):
        check_invariants(plant, dataclasses.replace(rec, deferred_overflow_req=overflow), 7)


def test_nothing_is_served_or_spilled_on_a_disallowed_pair():
    plant = tiny_plant(n_sites=2, classes=("chat",), residency_ok=np.array([[True, False]]))
    realised = flat_forecast(plant, 1, load=5.0)
    state = PlantState.initial(plant, DAY0)
    _, rec = step(plant, state, Allocation(np.array([[[1.0], [0.0]]]), np.array([2.0, 50.0]), np.zeros(2),
                                           np.zeros(2)), realised)
    assert rec.served_req[0, 1, 0] == 0.0 and rec.dropped_req[0, 0] == pytest.approx(3.0 * 3600)
    check_invariants(plant, rec, 0)
    served = rec.served_req.copy()
    served[0, 1, 0], served[0, 0, 0] = 1.0, served[0, 0, 0] - 1.0
    with pytest.raises(InvariantError, match="dispatch broken at region R0, pool S1/h100, class chat"):
        check_invariants(plant, dataclasses.replace(rec, served_req=served), 0)
