"""Allocation problems solvable by hand, solved by the MPC's LP with each supported solver:
HiGHS through highspy (warm-started, the default) and CasADi's qpsol interface to HiGHS."""

from __future__ import annotations

import casadi as ca
import numpy as np
import pytest

from control import plant as pl
from control.controllers import CapacityProportional, MPCController, myopic
from control.mpc import AllocationMPC
from control.simulate import run_episode
from control.state import PlantState
from tests.control.cases import flat_forecast, policy, random_instance, tiny_plant
from tests.tolerances import ROUNDOFF, SOLVER, SOLVER_PRIMAL

SOLVERS = ("highs", "qpsol")


@pytest.fixture(params=SOLVERS, autouse=True)
def solver(request):
    """Every test here runs once per solver, passed as ``solver=`` to every AllocationMPC it builds."""
    return request.param


def test_highs_is_available():
    assert ca.has_conic("highs"), "this CasADi build lacks HiGHS; the MPC needs it"


def _solve(plant, fc, solver, horizon=None, **changes):
    """The MPC of ``policy(H, **changes)`` (H: the forecast's horizon unless given) on ``fc``."""
    mpc = AllocationMPC(plant, policy(horizon or fc.horizon, **changes), solver=solver)
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    result = mpc.solve(state, fc)
    assert result.success, result.status
    return result


def _per_site(plant, result, t=0):
    dense = plant.dense_pairs(result.plan.served_req_per_s[t])
    return dense.sum(axis=(0, 2))


def test_cheapest_site_fills_first_up_to_capacity(solver):
    plant = tiny_plant(gpus=10.0)
    fc = flat_forecast(plant, 1, load=15.0, price=np.array([40.0, 60.0]))
    result = _solve(plant, fc, solver)
    np.testing.assert_allclose(_per_site(plant, result), [10.0, 5.0], atol=SOLVER_PRIMAL)
    pue = pl.pue(plant, 10.0)
    expected_eur = pue * (10.0 * 40 + 5.0 * 60) / 1000.0
    np.testing.assert_allclose(result.terms.energy_cost_eur, expected_eur, rtol=SOLVER)
    assert result.terms.penalties_eur == pytest.approx(0.0, abs=SOLVER)


def test_binding_water_budget_moves_load_to_the_drier_site(solver):
    prices = np.array([49.0, 50.0])
    wet = tiny_plant(gpus=20.0, water_budget_l_per_day=np.array([0.0, 1e12]))
    dry = tiny_plant(gpus=20.0)
    fc = flat_forecast(wet, 1, load=10.0, price=prices)
    np.testing.assert_allclose(_per_site(dry, _solve(dry, fc, solver)), [10.0, 0.0], atol=SOLVER_PRIMAL)
    np.testing.assert_allclose(_per_site(wet, _solve(wet, fc, solver)), [0.0, 10.0], atol=SOLVER_PRIMAL)


def test_hot_site_loses_load_to_a_cool_one_at_equal_prices(solver):
    plant = tiny_plant(gpus=20.0)
    fc = flat_forecast(plant, 1, load=30.0, temp_c=np.array([35.0, 5.0]))
    np.testing.assert_allclose(_per_site(plant, _solve(plant, fc, solver)), [10.0, 20.0], atol=SOLVER_PRIMAL)


def test_slo_infeasible_pairs_have_no_variable_and_never_get_load(solver):
    # site 1 is cheap but 3 s away: RTT + prefill breaks the 2-s SLO
    plant = tiny_plant(gpus=10.0, rtt_s=np.array([[0.01, 3.0]]))
    assert plant.n_pairs == 1 and tuple(plant.pairs[0]) == (0, 0, 0)
    mpc = AllocationMPC(plant, policy(2), solver=solver)
    assert mpc.lp.d.m == 1 and mpc.solver_name == solver
    fc = flat_forecast(plant, 2, load=15.0, price=np.array([60.0, 1.0]))
    result = _solve(plant, fc, solver)
    assert (result.plan.share[:, :, 1, :] == 0).all()
    np.testing.assert_allclose(result.plan.dropped_req_per_s, 5.0, atol=SOLVER_PRIMAL)


def test_demand_above_total_capacity_drops_exactly_the_excess(solver):
    plant = tiny_plant(n_regions=2, gpus=10.0)
    fc = flat_forecast(plant, 2, load=12.5)
    result = _solve(plant, fc, solver)
    np.testing.assert_allclose(result.plan.dropped_req_per_s.sum(axis=1), 5.0, atol=SOLVER_PRIMAL)
    np.testing.assert_allclose(result.terms.penalties_eur, 2 * 5.0 * 3600 * 1.0, rtol=SOLVER)


def test_price_spike_deferred_by_the_horizon_mpc_paid_by_the_myopic_one(solver):
    plant = tiny_plant(n_sites=1, classes=("chat", "batch"), gpus=100.0)
    steps, spike = 4, 2
    price = np.full(steps + 4, 50.0)
    price[spike] = 500.0
    realised = flat_forecast(plant, steps + 4, load=np.array([[5.0, 10.0]]), price=price[:, None])
    state = PlantState.initial(plant, water_day=int(realised.day_index[0]))
    fallback = CapacityProportional(plant)
    mpc = MPCController(AllocationMPC(plant, policy(4), solver=solver), fallback, episode_steps=steps)
    myo = myopic(plant, policy(), fallback, episode_steps=steps, solver=solver)
    ep_mpc = run_episode(plant, mpc, realised, steps, state)
    ep_myo = run_episode(plant, myo, realised, steps, state)
    batch_served = lambda ep: [r.served_req[0, 0, 1] for r in ep.records]  # noqa: E731
    assert batch_served(ep_mpc)[spike] == pytest.approx(0.0, abs=1e-3)      # deferred past the spike
    assert batch_served(ep_myo)[spike] == pytest.approx(10.0 * 3600, rel=SOLVER)  # the myopic pays
    assert ep_mpc.dropped_req == pytest.approx(0.0, abs=1e-2)  # of 144,000 requests
    assert ep_myo.dropped_req == pytest.approx(0.0, abs=1e-2)
    saved = 10.0 * (500.0 - 50.0) * pl.pue(plant, 10.0) / 1000.0
    assert ep_myo.cost_eur - ep_mpc.cost_eur == pytest.approx(float(saved), rel=1e-3)  # ε of stage 2, 3


@pytest.mark.parametrize("seed", [0, 1])
def test_lexicographic_stage_two_keeps_stage_one_within_epsilon(seed, solver):
    plant, fc, state = random_instance(seed)
    eps = 0.001
    cost_only = AllocationMPC(plant, policy(fc.horizon, order=("cost",)), solver=solver).solve(state, fc)
    full = AllocationMPC(plant, policy(fc.horizon, epsilon=eps), solver=solver).solve(state, fc)
    assert cost_only.success and full.success and full.stage_status == ("Optimal",) * 3
    best = cost_only.terms.cost_eur
    assert full.terms.cost_eur <= best + eps * abs(best) + 2e-6 * max(1.0, abs(best))
    assert full.terms.cost_eur >= best - 1e-6 * max(1.0, abs(best))
    assert full.terms.carbon_kg <= cost_only.terms.carbon_kg + 1e-6 * cost_only.terms.carbon_kg
    assert full.stage_values[0] == pytest.approx(best, rel=SOLVER)


def test_weighted_mode_prices_carbon(solver):
    plant = tiny_plant(gpus=20.0)
    fc = flat_forecast(plant, 1, load=10.0, price=np.array([50.0, 51.0]),
                       carbon_g_per_kwh=np.array([800.0, 50.0]))
    cheap = _solve(plant, fc, solver, objective="weighted")
    green = _solve(plant, fc, solver, objective="weighted", carbon_price_eur_per_kg=0.1)
    np.testing.assert_allclose(_per_site(plant, cheap), [10.0, 0.0], atol=SOLVER_PRIMAL)
    np.testing.assert_allclose(_per_site(plant, green), [0.0, 10.0], atol=SOLVER_PRIMAL)


def test_warm_started_solves_equal_cold_ones(solver):
    """The basis carried from step to step changes the path, never the optimum."""
    plant, realised, state = random_instance(3, steps=10)
    warm = AllocationMPC(plant, policy(4), solver=solver)
    for t in range(6):
        window = realised.window(t, 4)
        got = warm.solve(state, window)
        cold = AllocationMPC(plant, policy(4), solver=solver).solve(state, window)
        assert got.success and cold.success
        np.testing.assert_allclose(got.stage_values, cold.stage_values, rtol=SOLVER, atol=SOLVER)


def test_gpu_ramp_limit_the_horizon_mpc_ramps_ahead_and_the_myopic_one_drops(solver):
    """Load steps from 0 to 8 GPUs' worth at step 3; at most 2 GPUs may start (or stop) per step."""
    plant = tiny_plant(n_sites=1, gpus=10.0, gpu_ramp_per_step=np.array([2.0]))
    steps = 6
    load = np.where(np.arange(steps + 6) >= 3, 8.0, 0.0)[:, None, None]
    realised = flat_forecast(plant, steps + 6, load=load)
    state = PlantState.initial(plant, water_day=int(realised.day_index[0]))
    fallback = CapacityProportional(plant)
    ep_mpc = run_episode(plant, MPCController(AllocationMPC(plant, policy(6), solver=solver), fallback,
                                              episode_steps=steps), realised, steps, state)
    ep_myo = run_episode(plant, myopic(plant, policy(), fallback, episode_steps=steps, solver=solver),
                         realised, steps, state)
    assert ep_mpc.dropped_req == pytest.approx(0.0, abs=1e-3)
    assert ep_myo.dropped_req == pytest.approx((6 + 4 + 2) * 3600.0, rel=SOLVER)
    for ep in (ep_mpc, ep_myo):
        gpus = np.array([0.0] + [r.gpus_applied[0] for r in ep.records])
        assert np.abs(np.diff(gpus)).max() <= 2.0 + 1e-9


def _loads(plant, median, provision, burst):
    shape = (1, len(plant.region_names), len(plant.class_names))
    return {"load": median, "load_provision_req_per_s": np.full(shape, float(provision)),
            "load_burst_req_per_s": np.full(shape, float(burst))}


def test_burst_headroom_spreads_a_stream_over_two_pools(solver):
    # 10 req/s per site; the cheap site alone would take all 8 req/s. A burst to 16 req/s must fit
    # wherever the stream goes (N−1 rule): at most 5 on the cheap site (5 × 16/8 = 10), 3 on the other.
    plant = tiny_plant(gpus=10.0)
    fc = flat_forecast(plant, 1, price=np.array([40.0, 60.0]), **_loads(plant, 8.0, 8.0, 16.0))
    result = _solve(plant, fc, solver)
    np.testing.assert_allclose(_per_site(plant, result), [5.0, 3.0], atol=SOLVER)
    assert result.plan.gpus[0][1] >= 6.0 - 1e-6   # the second pool holds its share of the burst
    assert result.terms.risk_eur == pytest.approx(0.0, abs=SOLVER)
    no_burst = _solve(plant, flat_forecast(plant, 1, price=np.array([40.0, 60.0]), **_loads(plant, 8.0, 8.0, 8.0)),
                      solver)
    np.testing.assert_allclose(_per_site(plant, no_burst), [8.0, 0.0], atol=SOLVER)


def test_headroom_beyond_capacity_is_priced_never_bought_with_dropped_load(solver):
    # 20 req/s installed: the median 15 is served in full although neither the provisioning level
    # (25) nor the burst (40) fits; what is left short is a priced risk, not a planned drop.
    plant = tiny_plant(gpus=10.0)
    fc = flat_forecast(plant, 1, **_loads(plant, 15.0, 25.0, 40.0))
    result = _solve(plant, fc, solver)
    np.testing.assert_allclose(result.plan.dropped_req_per_s, 0.0, atol=SOLVER_PRIMAL)
    np.testing.assert_allclose(result.plan.gpus[0], [10.0, 10.0], atol=SOLVER)
    assert result.terms.risk_eur > 0.0
    assert result.terms.cost_eur == pytest.approx(result.terms.energy_cost_eur + result.terms.risk_eur, rel=1e-9)


@pytest.mark.parametrize("order", [("carbon", "cost", "delay"), ("water", "cost", "carbon")])
def test_carbon_or_water_first_keeps_the_headroom_cost_first_keeps(solver, order):
    """Idle GPUs emit CO2 and use water: a carbon- or water-first plan would run GPUs for the median
    load only. The unserved stage keeps the headroom risk at its optimum, so the GPUs for the
    provisioning level (12 req/s) and the burst (16 req/s) stay, as cost-first runs them."""
    plant = tiny_plant(gpus=20.0, idle_kw_per_gpu=np.array([0.5, 0.5]))
    fc = flat_forecast(plant, 1, price=np.array([40.0, 60.0]), **_loads(plant, 8.0, 12.0, 16.0))
    cost_first = _solve(plant, fc, solver)
    other = _solve(plant, fc, solver, order=order)
    assert other.terms.risk_eur <= cost_first.terms.risk_eur * (1 + 1e-6) + SOLVER
    assert other.plan.gpus[0].sum() >= 12.0 * (1 - SOLVER)
    np.testing.assert_allclose(other.plan.dropped_req_per_s, 0.0, atol=SOLVER_PRIMAL)


def test_cost_first_keeps_its_headroom_and_its_epsilon_covers_only_what_is_paid(solver):
    """After the cost stage, carbon may spend ε of the cost an operator pays (energy, penalties,
    terminal value), never the headroom risk: the GPUs for the provisioning level (12 req/s) and
    the burst (16 req/s) stay, though idling them off would cut CO2 within ε of the whole objective."""
    plant = tiny_plant(gpus=20.0, idle_kw_per_gpu=np.array([0.5, 0.5]))
    fc = flat_forecast(plant, 1, price=np.array([40.0, 60.0]), carbon_g_per_kwh=np.array([500.0, 100.0]),
                       **_loads(plant, 8.0, 12.0, 16.0))
    cost_first = _solve(plant, fc, solver, order=("cost",))
    green = _solve(plant, fc, solver, order=("cost", "carbon"), epsilon=0.5)
    assert green.terms.risk_eur <= cost_first.terms.risk_eur * (1 + 1e-6) + SOLVER
    assert green.plan.gpus[0].sum() >= 12.0 * (1 - SOLVER)
    paid = lambda r: r.terms.cost_eur - r.terms.risk_eur  # noqa: E731
    assert paid(green) <= paid(cost_first) * 1.5 + SOLVER
    assert green.terms.carbon_kg < cost_first.terms.carbon_kg * 0.9   # the cleaner site took the work


def test_carbon_first_still_serves_every_request_it_can(solver):
    """Dropping a request emits nothing; carbon-first must not buy carbon with drops: it serves
    all 10 req/s on the cleaner site, then cost and delay break ties."""
    plant = tiny_plant(gpus=20.0)
    fc = flat_forecast(plant, 2, load=10.0, price=np.array([40.0, 60.0]),
                       carbon_g_per_kwh=np.array([500.0, 100.0]))
    result = _solve(plant, fc, solver, order=("carbon", "cost", "delay"))
    np.testing.assert_allclose(result.plan.dropped_req_per_s, 0.0, atol=SOLVER_PRIMAL)
    # the cleaner site; cost (stage 2) may spend the ε = 0.1 % of carbon on the cheaper one
    np.testing.assert_allclose(_per_site(plant, result), [0.0, 10.0], atol=0.01)
    assert len(result.stage_values) == 3
    assert result.terms.carbon_kg <= AllocationMPC._kept(result.stage_values[0], 1e-3) * (1 + 1e-12)


def test_carbon_first_serves_the_backlog_the_episode_end_would_drop(solver):
    """Deferring batch work past the horizon emits nothing; at the episode's end the backlog is
    dropped (the end rule), so carbon-first must serve it, while without an end in the horizon
    it defers what the deadline allows."""
    plant = tiny_plant(n_sites=1, classes=("batch",), gpus=100.0)
    fc = flat_forecast(plant, 3, load=10.0)
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    order = ("carbon", "cost", "delay")
    open_end = AllocationMPC(plant, policy(3, order=order), solver=solver).solve(state, fc)
    ending = AllocationMPC(plant, policy(3, order=order), solver=solver).solve(state, fc, end_step=2)
    assert open_end.success and ending.success
    assert open_end.plan.backlog_req[2].sum() > 1_000.0          # deferred beyond the horizon
    assert ending.plan.backlog_req[2].sum() == pytest.approx(0.0, abs=SOLVER)
    np.testing.assert_allclose(ending.plan.dropped_req_per_s, 0.0, atol=ROUNDOFF)


def test_water_is_a_stage_in_any_order(solver):
    """S0 is 2.5 % cheaper but evaporates more (wet bulb 25 °C against 5 °C): cost first keeps the
    load at S0; water first moves all of it to S1 without dropping any; cost then water with 5 %
    slack on cost moves it too (the move costs 2.5 %), with 1 % slack only as much as the slack pays."""
    plant = tiny_plant(gpus=20.0)
    fc = flat_forecast(plant, 2, load=10.0, price=np.array([40.0, 41.0]), wetbulb_c=np.array([25.0, 5.0]),
                       ewif_l_per_kwh=np.array([0.0, 0.0]))
    np.testing.assert_allclose(_per_site(plant, _solve(plant, fc, solver, order=("cost", "carbon"))), [10.0, 0.0],
                               atol=SOLVER_PRIMAL)
    water_first = _solve(plant, fc, solver, order=("water", "cost"))
    # the cost stage may spend the ε = 0.1 % of water on the cheaper site
    np.testing.assert_allclose(_per_site(plant, water_first), [0.0, 10.0], atol=0.05)
    np.testing.assert_allclose(water_first.plan.dropped_req_per_s, 0.0, atol=SOLVER_PRIMAL)
    loose = _solve(plant, fc, solver, order=("cost", "water"), epsilon=0.05)
    np.testing.assert_allclose(_per_site(plant, loose), [0.0, 10.0], atol=SOLVER_PRIMAL)
    tight = _solve(plant, fc, solver, order=("cost", "water"), epsilon=0.01)
    # the water stage moves load until the cost slack is spent: ε × cost* at 1 EUR/MWh × PUE more
    cost = tight.stage_values[0]
    moved_req_per_s_h = (AllocationMPC._kept(cost, 0.01) - cost) * 1000.0 / float(pl.pue(plant, 10.0))
    at_s1 = sum(_per_site(plant, tight, t)[1] for t in range(2))
    assert at_s1 == pytest.approx(moved_req_per_s_h, rel=SOLVER) and at_s1 < 10.0
    litres = float(pl.wue_l_per_kwh(5.0)) * 10.0 * 2   # 10 kW IT at S1 for 2 h
    assert water_first.stage_values[0] == pytest.approx(litres, rel=SOLVER)
    assert water_first.terms.water_l <= AllocationMPC._kept(litres, 1e-3) * (1 + 1e-9)


@pytest.mark.parametrize("metric", ["carbon", "water"])
def test_an_epsilon_front_on_one_lp_keeps_cost_at_zero_and_is_monotone(solver, metric):
    """The tradeoff's points on one horizon LP: ε = 0 keeps cost-first's cost (solver tolerance);
    as ε grows the metric never rises and the cost stays within (1 + ε) of the optimum."""
    plant, fc, state = random_instance(3)
    cost_only = AllocationMPC(plant, policy(fc.horizon, order=("cost",)), solver=solver).solve(state, fc)
    best = cost_only.stage_values[0]
    values = []
    for eps in (0.0, 0.01, 0.05, 0.2):
        mpc = AllocationMPC(plant, policy(fc.horizon, order=("cost", metric), epsilon=eps), solver=solver)
        r = mpc.solve(state, fc)
        assert r.success
        planned_cost = r.terms.cost_eur
        assert planned_cost <= AllocationMPC._kept(best, eps) + SOLVER * max(1.0, abs(best))
        if eps == 0.0:
            assert planned_cost == pytest.approx(best, rel=2 * SOLVER)   # the kept bound: ε + the solver slack
        values.append(r.stage_values[1])
    assert all(b <= a * (1 + SOLVER) + SOLVER for a, b in zip(values, values[1:], strict=False))
    assert values[-1] < values[0]
