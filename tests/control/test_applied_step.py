"""The applied step under forecast error: one split per region group for interactive streams
(a burst spreads over the group's pools) and the expiry guard for deferrable shares. Each case is
solved by hand; the realised step (DESIGN.md §5) then applies the decision to other data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from control import plant as pl
from control.mpc import AllocationMPC
from control.params import Penalties
from control.realised import slo_aware_gpus, step
from control.state import Allocation, PlantState
from tests.control.cases import flat_forecast, policy, tiny_plant
from tests.tolerances import EXACT, ROUNDOFF, SOLVER, SOLVER_PRIMAL

SOLVERS = ("highs", "qpsol")


def _two_regions_two_sites():
    """Equal prices; region 0 is next to site 0, region 1 next to site 1 (delay breaks ties);
    6 GPUs per site at 1 GPU-s per request; both regions forecast 4 req/s, p90 6 req/s."""
    plant = tiny_plant(n_sites=2, n_regions=2, gpus=6.0, rtt_s=np.array([[0.01, 0.05], [0.05, 0.01]]))
    fc = flat_forecast(plant, 2, load=4.0, load_provision_req_per_s=np.full((2, 2, 1), 6.0))
    return plant, fc


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_burst_spreads_over_the_group_with_group_shares_and_spills_without(solver):
    plant, fc = _two_regions_two_sites()
    assert (plant.region_groups == 0).all()          # both regions may use both sites
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    burst = replace(fc, load_req_per_s=np.array([[[7.0], [4.0]]] * 2))   # region 0 at 7 req/s
    drops, spills = {}, {}
    for grouped in (False, True):
        result = AllocationMPC(plant, policy(2, group_interactive_shares=grouped), solver=solver).solve(state, fc)
        assert result.success, result.status
        share = result.plan.share[0, :, :, 0]                         # (R, P)
        if grouped:
            np.testing.assert_allclose(share, [[0.5, 0.5], [0.5, 0.5]], atol=SOLVER_PRIMAL)
        else:   # each region at its nearest site, each site's p90 (6) within its 6 GPUs
            np.testing.assert_allclose(share, [[1.0, 0.0], [0.0, 1.0]], atol=SOLVER_PRIMAL)
        np.testing.assert_allclose(result.plan.gpus[0], [6.0, 6.0], atol=SOLVER_PRIMAL)
        _, record = step(plant, state, result.plan.allocation(0), burst)
        drops[grouped] = float(record.dropped_req.sum())
        spills[grouped] = record.spilled_req
    # without group shares 7 req/s reach site 0's 6 GPUs: the dispatcher spills the 1 req/s over
    # to site 1 (4 req/s routed, 2 free) instead of dropping it; with them 5.5 req/s reach each site
    assert drops[False] == pytest.approx(0.0, abs=SOLVER) and drops[True] == pytest.approx(0.0, abs=SOLVER)
    np.testing.assert_allclose(spills[False][:, :, 0], [[0.0, 1.0 * 3600], [0.0, 0.0]], rtol=1e-9, atol=ROUNDOFF)
    assert spills[True].sum() == pytest.approx(0.0, abs=SOLVER)


@pytest.mark.parametrize("solver", SOLVERS)
def test_group_shares_bind_interactive_streams_only(solver):
    plant = tiny_plant(n_sites=2, n_regions=2, classes=("chat", "batch"), gpus=20.0,
                       rtt_s=np.array([[0.01, 0.05], [0.05, 0.01]]))
    fc = flat_forecast(plant, 3, load=np.array([[3.0, 2.0], [5.0, 1.0]]), price=np.array([40.0, 60.0]))
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    free = AllocationMPC(plant, policy(3), solver=solver).solve(state, fc)
    grouped = AllocationMPC(plant, policy(3, group_interactive_shares=True), solver=solver).solve(state, fc)
    assert free.success and grouped.success
    chat = grouped.plan.share[0, :, :, 0]
    np.testing.assert_allclose(chat[0], chat[1], atol=SOLVER_PRIMAL)
    # a restriction of the applied step: never cheaper, and equal here (the cheap site has room)
    assert grouped.stage_values[0] >= free.stage_values[0] * (1 - 1e-9)
    assert grouped.stage_values[0] == pytest.approx(free.stage_values[0], rel=SOLVER)


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_expiry_guard_serves_expiring_work_even_when_nothing_arrives(solver):
    # 36,000 batch requests wait, all older than the deadline allows after this hour; 36,000 more
    # are forecast to arrive; serving is dear now and cheap later, so the plan serves only what
    # expires. None arrive: without the guard the share (half the forecast work) serves half of
    # the expiring requests and the rest is dropped.
    plant = tiny_plant(n_sites=1, classes=("batch",), gpus=100.0)
    fc = flat_forecast(plant, 4, load=10.0, price=np.array([[500.0], [50.0], [50.0], [50.0]]))
    empty = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    state = replace(empty, backlog_req=np.array([[36_000.0]]))
    nothing = replace(fc, load_req_per_s=np.zeros_like(fc.load_req_per_s))
    dropped = {}
    for guard in (False, True):
        result = AllocationMPC(plant, policy(4, expiry_guard=guard), solver=solver).solve(state, fc)
        assert result.success, result.status
        _, record = step(plant, state, result.plan.allocation(0), nothing)
        assert record.arrivals_req.sum() == 0.0      # conservation: what waited is served or dropped
        assert record.served_req.sum() + record.dropped_req.sum() == pytest.approx(
            -record.backlog_change_req.sum(), rel=EXACT)
        dropped[guard] = float(record.dropped_req.sum())
    assert dropped[False] == pytest.approx(18_000.0, rel=SOLVER)
    assert dropped[True] == pytest.approx(0.0, abs=SOLVER)


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_share_cap_keeps_each_pool_within_its_capacity_share(solver):
    # site 0 is cheaper and both have 6 GPUs: uncapped, the group's chat goes all to site 0;
    # capped at 1.5 × the capacity share (0.5), site 0 takes 0.75 and site 1 the rest; the
    # forecast has spread (p90 1.2 req/s), which is what the cap guards against
    plant = tiny_plant(n_sites=2, n_regions=2, gpus=6.0)
    fc = flat_forecast(plant, 2, load=1.0, price=np.array([40.0, 60.0]),
                       load_provision_req_per_s=np.full((2, 2, 1), 1.2))
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    free = AllocationMPC(plant, policy(2, group_interactive_shares=True), solver=solver).solve(state, fc)
    capped = AllocationMPC(plant, policy(2, group_interactive_shares=True, max_share_vs_capacity=1.5),
                           solver=solver).solve(state, fc)
    assert free.success and capped.success
    np.testing.assert_allclose(free.plan.share[0, :, :, 0], [[1.0, 0.0], [1.0, 0.0]], atol=SOLVER_PRIMAL)
    np.testing.assert_allclose(capped.plan.share[0, :, :, 0], [[0.75, 0.25], [0.75, 0.25]], atol=SOLVER_PRIMAL)
    # a forecast without spread (burst level = median) has no burst to guard against: no cap
    certain = flat_forecast(plant, 2, load=1.0, price=np.array([40.0, 60.0]))
    uncapped = AllocationMPC(plant, policy(2, group_interactive_shares=True, max_share_vs_capacity=1.5),
                             solver=solver).solve(state, certain)
    np.testing.assert_allclose(uncapped.plan.share[0, :, :, 0], [[1.0, 0.0], [1.0, 0.0]], atol=SOLVER_PRIMAL)
    with pytest.raises(ValueError, match="max_share_vs_capacity: 0.5"):
        AllocationMPC(plant, policy(2, group_interactive_shares=True, max_share_vs_capacity=0.5))
    with pytest.raises(ValueError, match="max_share_vs_capacity: -1"):
        AllocationMPC(plant, policy(2, group_interactive_shares=True, max_share_vs_capacity=-1.0))


def _queueing_pool():
    """One pool of 10 whole GPUs at 1 GPU-s per request, 0.5 kW idle each, SLO misses priced:
    3 req/s need 4 GPUs at rho_max 0.8, but 4 GPUs queue (Erlang C) past the 2-s SLO often."""
    plant = tiny_plant(n_sites=1, gpus=10.0, idle_kw_per_gpu=np.array([0.5]), rho_max=0.8,
                       round_gpus_up=True,
                       penalties=Penalties(drop_eur_per_request=1.0, slo_miss_eur_per_request=1e-4,
                                           water_eur_per_l=0.0, gpu_start_eur=0.0))
    return plant, flat_forecast(plant, 2, load=3.0, price=100.0)


def _realised_eur(plant, state, fc, gpus: float) -> float:
    decision = Allocation(np.ones((1, 1, 1)), np.array([gpus]), np.zeros(1), np.zeros(1), "test")
    _, record = step(plant, state, decision, fc)
    return record.energy_cost_eur + record.slo_penalty_eur + record.drop_penalty_eur


def test_slo_aware_gpus_pick_the_count_the_plant_prices_cheapest():
    plant, fc = _queueing_pool()
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    idle_eur = plant.idle_kw_per_gpu * pl.pue(plant, fc.temp_c[0]) * fc.price_eur_per_mwh[0] / 1000.0
    served = np.full((1, 1, 1), 3.0)
    chosen = slo_aware_gpus(plant, served, np.array([3.75]), idle_eur)
    realised = {c: _realised_eur(plant, state, fc, c) for c in range(4, 11)}
    best = min(realised, key=realised.get)
    assert chosen[0] == best
    assert 4 < best < 10                      # an interior optimum: the rule has work to do
    # never below what the decision needs, and no SLO price: the fewest GPUs
    assert slo_aware_gpus(plant, served, np.array([7.2]), idle_eur)[0] >= 8
    free = replace(plant, penalties=replace(plant.penalties, slo_miss_eur_per_request=0.0))
    assert slo_aware_gpus(free, served, np.array([3.75]), idle_eur)[0] == 4


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_mpc_applies_slo_aware_gpus_and_the_plant_charges_less(solver):
    plant, fc = _queueing_pool()
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    eur = {}
    for aware in (False, True):
        result = AllocationMPC(plant, policy(2, slo_aware_gpus=aware), solver=solver).solve(state, fc)
        assert result.success, result.status
        assert result.plan.gpus[0, 0] >= 3.75 - 1e-7          # at least the capacity the LP needs
        eur[aware] = _realised_eur(plant, state, fc, float(result.plan.gpus[0, 0]))
    assert eur[True] < eur[False]


@pytest.mark.parametrize("solver", SOLVERS)
def test_group_provisioning_adds_the_streams_excesses_as_correlated(solver):
    # two regions in one group, each 4 req/s at the median and 6 at p90 (no burst above p90):
    # correlation 1 provisions the sum of the quantiles (12 GPUs at 1 GPU-s per request),
    # 0 the median plus the root of the summed squared excesses (8 + 2·√2); idle power makes
    # the fewest GPUs that hold it the optimum
    plant, fc = _two_regions_two_sites()
    plant = replace(plant, idle_kw_per_gpu=np.full(2, 0.1))
    fc = replace(fc, load_burst_req_per_s=fc.load_req_per_s.copy())
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    for rho, expected in ((1.0, 12.0), (0.5, 10.0 + np.sqrt(2.0)), (0.0, 8.0 + 2.0 * np.sqrt(2.0))):
        mpc = AllocationMPC(plant, policy(2, group_interactive_shares=True, group_provision_correlation=rho),
                            solver=solver)
        result = mpc.solve(state, fc)
        assert result.success, result.status
        assert result.plan.gpus[0].sum() == pytest.approx(expected, rel=SOLVER)
    with pytest.raises(ValueError, match="group_provision_correlation: 1.5"):
        AllocationMPC(plant, policy(2, group_interactive_shares=True, group_provision_correlation=1.5))


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_ten_minute_peak_factor_is_never_combined_as_an_independent_error(solver):
    # the same two regions without forecast spread (p90 = median = 4 req/s) but a 10-min peak 1.5 ×
    # the hour's mean in both: the peak is the fleet's, so correlation 0 still provisions 2 × 6 GPUs
    # (combined as independent errors it would be 8 + 2·√2 ≈ 10.8, and the peak sub-step drops)
    plant, fc = _two_regions_two_sites()
    plant = replace(plant, idle_kw_per_gpu=np.full(2, 0.1))
    med = fc.load_req_per_s.copy()
    peak = np.where(plant.deferrable[None, None, :], 1.0, np.full(med.shape, 1.5))
    fc = replace(fc, load_provision_req_per_s=med * peak, load_burst_req_per_s=med * peak, load_peak_factor=peak)
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    for rho in (1.0, 0.0):
        mpc = AllocationMPC(plant, policy(2, group_interactive_shares=True, group_provision_correlation=rho),
                            solver=solver)
        result = mpc.solve(state, fc)
        assert result.success, result.status
        assert result.plan.gpus[0].sum() == pytest.approx(12.0, rel=SOLVER)
    with pytest.raises(ValueError, match="load_peak_factor"):
        replace(fc, load_peak_factor=np.full(med.shape, 0.5)).validate(plant)


@pytest.mark.parametrize("solver", SOLVERS)
def test_group_bursts_hold_the_group_total_at_its_burst_level(solver):
    # two regions in one group, each 4 req/s at the median, 6 at p90 and 10 at the burst level,
    # independent errors: the group is provisioned for 8 + √(2² + 2²) and, with group bursts,
    # holds 8 + √(6² + 6²) in the applied step (one stream at 10 with the other provisioned
    # without: 8 + 2√2 + (10 − 4·(1 + 2√2/8)))
    plant = tiny_plant(n_sites=2, n_regions=2, gpus=20.0, idle_kw_per_gpu=np.full(2, 0.1),
                       rtt_s=np.array([[0.01, 0.05], [0.05, 0.01]]))
    fc = flat_forecast(plant, 2, load=4.0, load_provision_req_per_s=np.full((2, 2, 1), 6.0),
                       load_burst_req_per_s=np.full((2, 2, 1), 10.0))
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    held = {}
    for grouped in (False, True):
        mpc = AllocationMPC(plant, policy(2, group_interactive_shares=True, group_provision_correlation=0.0,
                                          group_bursts=grouped), solver=solver)
        result = mpc.solve(state, fc)
        assert result.success, result.status
        held[grouped] = float(result.plan.gpus[0].sum())
    assert held[True] == pytest.approx(8.0 + 6.0 * np.sqrt(2.0), rel=SOLVER)
    assert held[False] == pytest.approx(8.0 + 2.0 * np.sqrt(2.0) + 10.0 - 4.0 * (1.0 + np.sqrt(8.0) / 8.0), rel=SOLVER)


def test_with_slo_aware_gpus_the_floor_holds_in_the_planned_steps_only():
    plant, fc = _queueing_pool()
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    idle_eur = plant.idle_kw_per_gpu * pl.pue(plant, fc.temp_c[0]) * fc.price_eur_per_mwh[0] / 1000.0
    best = slo_aware_gpus(plant, np.full((1, 1, 1), 3.0), np.array([3.75]), idle_eur)[0]
    assert best < 9
    floored = AllocationMPC(plant, policy(2, min_gpus_interactive=9.0)).solve(state, fc)
    aware = AllocationMPC(plant, policy(2, min_gpus_interactive=9.0, slo_aware_gpus=True)).solve(state, fc)
    assert floored.plan.gpus[0, 0] >= 9.0 - 1e-9 and floored.plan.gpus[1, 0] >= 9.0 - 1e-9
    assert aware.plan.gpus[0, 0] == best                     # the applied step: the plant's rule
    assert aware.plan.gpus[1, 0] >= 9.0 - 1e-9              # the plan after it keeps the floor


@pytest.mark.parametrize("solver", SOLVERS)
def test_group_shares_tie_a_group_only_where_its_forecast_has_spread(solver):
    # perfect forecasts (no spread above the median; a 10-min peak factor is no spread): each region
    # is routed on its own, to its nearest site, as without group shares; with a p90 spread the
    # group's streams are split alike (the first test of this file)
    plant, fc = _two_regions_two_sites()
    peak = np.full(fc.load_req_per_s.shape, 1.2)
    certain = replace(fc, load_provision_req_per_s=fc.load_req_per_s * peak,
                      load_burst_req_per_s=fc.load_req_per_s * peak, load_peak_factor=peak)
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    for forecast, expected in ((certain, [[1.0, 0.0], [0.0, 1.0]]), (fc, [[0.5, 0.5], [0.5, 0.5]])):
        result = AllocationMPC(plant, policy(2, group_interactive_shares=True), solver=solver).solve(state, forecast)
        assert result.success, result.status
        np.testing.assert_allclose(result.plan.share[0, :, :, 0], expected, atol=SOLVER_PRIMAL)
