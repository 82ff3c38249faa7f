"""The dispatcher (one sub-step, ``control.dispatch``) on cases solved by hand, and the plant's
hour of sub-steps (``control.realised.step``): spill to the free pool, drop only when every allowed
pool is full, deferrable overflow back to the backlog and offered again, SLO- and residency-
disallowed pools never receive spill, cheapest marginal cost first, pro rata sharing of free
capacity; one sub-step without overflow is the old hourly step; conservation at 1× and 100×."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from control import plant as pl
from control._queueing import erlang_b, erlang_c_late_fraction, erlang_c_probability, erlang_c_wait_s
from control.dispatch import dispatch, marginal_eur_per_req
from control.realised import step
from control.simulate import check_invariants
from control.state import Allocation, PlantState
from tests.control.cases import flat_forecast, random_instance, tiny_plant
from tests.tolerances import CONSERVATION, EXACT, ROUNDOFF

SUB_S = 600.0          # a 10-min sub-step
FLAT = np.zeros((3, 1))  # marginal cost per (pool, class): all equal


def _one_region(n_sites: int = 3, classes: tuple[str, ...] = ("chat",), **kw):
    """One region, one pool per site, 1 GPU-s per request, rho_max 1: a pool of G GPUs takes
    G × 600 requests per sub-step."""
    return tiny_plant(n_sites=n_sites, classes=classes, **kw)


def test_overflow_spills_to_the_free_pool():
    # pool 0 is routed 8 req/s for its 6; pool 1 (10 GPUs) is routed 4: it takes the 2 over
    plant = _one_region(n_sites=2)
    share = np.array([[[0.5], [0.5]]])
    d = dispatch(plant, share, np.array([[12.0 * SUB_S]]), np.array([4.0, 10.0]), SUB_S, FLAT[:2])
    np.testing.assert_allclose(d.served_req[0, :, 0], [4 * SUB_S, 8 * SUB_S], rtol=EXACT)
    np.testing.assert_allclose(d.spilled_req[0, :, 0], [0.0, 2 * SUB_S], rtol=EXACT)
    assert d.dropped_req.sum() == 0.0 and d.returned_req.sum() == 0.0
    np.testing.assert_allclose(d.utilisation, [1.0, 0.8], rtol=EXACT)


def test_interactive_work_is_dropped_only_when_every_allowed_pool_is_full():
    # 20 req/s all routed to pool 0 (5 GPUs); pools 1 and 2 have 4 and 3 free: 8 req/s dropped
    plant = _one_region()
    share = np.array([[[1.0], [0.0], [0.0]]])
    d = dispatch(plant, share, np.array([[20.0 * SUB_S]]), np.array([5.0, 4.0, 3.0]), SUB_S, FLAT)
    np.testing.assert_allclose(d.served_req[0, :, 0], np.array([5.0, 4.0, 3.0]) * SUB_S, rtol=EXACT)
    np.testing.assert_allclose(d.dropped_req, [[8.0 * SUB_S]], rtol=EXACT)
    np.testing.assert_allclose(d.utilisation, [1.0, 1.0, 1.0], rtol=EXACT)
    # one more GPU anywhere: one req/s fewer dropped
    more = dispatch(plant, share, np.array([[20.0 * SUB_S]]), np.array([5.0, 4.0, 4.0]), SUB_S, FLAT)
    np.testing.assert_allclose(more.dropped_req, [[7.0 * SUB_S]], rtol=EXACT)


def test_an_interactive_streams_unrouted_rest_is_placed_where_there_is_room():
    plant = _one_region(n_sites=2)
    share = np.array([[[0.6], [0.0]]])         # 40 % not routed: a load balancer still places it
    d = dispatch(plant, share, np.array([[10.0 * SUB_S]]), np.array([10.0, 10.0]), SUB_S, FLAT[:2])
    np.testing.assert_allclose(d.served_req[0, :, 0], [10.0 * SUB_S, 0.0], rtol=EXACT)
    np.testing.assert_allclose(d.spilled_req[0, :, 0], [4.0 * SUB_S, 0.0], rtol=EXACT)
    assert d.dropped_req.sum() == 0.0


def test_deferrable_overflow_returns_to_the_backlog_and_decided_deferral_is_not_placed():
    plant = _one_region(n_sites=2, classes=("chat", "batch"))
    # chat 6 and batch 6 req/s on pool 0 (8 GPUs: room for 8 req/s) and pool 1 full of nothing (0 GPUs);
    # batch's share is 0.75: its other quarter is deferred by decision and stays out of the dispatch.
    # Interactive work first: chat is served whole, batch gets the 2 req/s left, 4 return to the backlog
    share = np.zeros((1, 2, 2))
    share[0, 0] = [1.0, 0.75]
    offered = np.array([[6.0, 8.0]]) * SUB_S
    d = dispatch(plant, share, offered, np.array([8.0, 0.0]), SUB_S, np.zeros((2, 2)))
    np.testing.assert_allclose(d.served_req[0, 0], [6.0 * SUB_S, 2.0 * SUB_S], rtol=EXACT)
    np.testing.assert_allclose(d.dropped_req, [[0.0, 0.0]], rtol=EXACT)
    np.testing.assert_allclose(d.returned_req, [[0.0, 4.0 * SUB_S]], rtol=EXACT)   # not the decided 2 req/s
    assert d.served_req[0, 1].sum() == 0.0 and d.utilisation[1] == 0.0


@pytest.mark.parametrize("why", ["slo", "residency"])
def test_disallowed_pools_never_receive_spill(why):
    # pool 2 is idle with 100 GPUs but too far for the 1-s SLO (or outside the region's residency)
    if why == "slo":
        plant = _one_region(rtt_s=np.array([[0.01, 0.01, 0.95]]), slo_ttft_s=np.array([1.0]))
    else:
        plant = _one_region(residency_ok=np.array([[True, True, False]]))
    assert plant.allowed[0, :, 0].tolist() == [True, True, False]
    share = np.array([[[1.0], [0.0], [0.0]]])
    d = dispatch(plant, share, np.array([[10.0 * SUB_S]]), np.array([4.0, 2.0, 100.0]), SUB_S, FLAT)
    assert d.served_req[0, 2, 0] == 0.0 and d.spilled_req[0, 2, 0] == 0.0
    np.testing.assert_allclose(d.dropped_req, [[4.0 * SUB_S]], rtol=EXACT)


def test_spill_goes_to_the_cheapest_marginal_cost_first():
    # price × PUE × kWh per request: pool 2 cheapest (20 EUR/MWh), then pool 1 (40), pool 0 (80)
    plant = _one_region(it_kw_per_req_per_s=np.array([[1.0], [1.0], [1.0]]))
    pue = pl.pue(plant, np.full(3, 10.0))
    marginal = marginal_eur_per_req(plant, np.array([80.0, 40.0, 20.0]), pue)
    np.testing.assert_allclose(marginal[:, 0], np.array([80.0, 40.0, 20.0]) / 1000.0 * pue / 3600.0, rtol=EXACT)
    share = np.array([[[1.0], [0.0], [0.0]]])
    gpus = np.array([2.0, 5.0, 3.0])
    d = dispatch(plant, share, np.array([[7.0 * SUB_S]]), gpus, SUB_S, marginal)
    np.testing.assert_allclose(d.spilled_req[0, :, 0], [0.0, 2.0 * SUB_S, 3.0 * SUB_S], rtol=EXACT)
    # the other way round: the 5 req/s of overflow stay on pool 1 (free 5)
    d = dispatch(plant, share, np.array([[7.0 * SUB_S]]), gpus, SUB_S, marginal[::-1].copy())
    np.testing.assert_allclose(d.spilled_req[0, :, 0], [0.0, 5.0 * SUB_S, 0.0], rtol=EXACT)


def test_free_capacity_is_shared_pro_rata_between_overflowing_streams():
    # two regions each routed to its own full pool, overflowing 6 and 2 req/s into pool 2 (4 free):
    # each gets half of its overflow placed
    plant = tiny_plant(n_sites=3, n_regions=2)
    share = np.zeros((2, 3, 1))
    share[0, 0], share[1, 1] = 1.0, 1.0
    offered = np.array([[10.0], [6.0]]) * SUB_S
    d = dispatch(plant, share, offered, np.array([4.0, 4.0, 4.0]), SUB_S, FLAT)
    np.testing.assert_allclose(d.spilled_req[:, 2, 0], [3.0 * SUB_S, 1.0 * SUB_S], rtol=EXACT)
    np.testing.assert_allclose(d.dropped_req[:, 0], [3.0 * SUB_S, 1.0 * SUB_S], rtol=EXACT)


def test_a_stream_finding_its_cheapest_pool_full_moves_on_to_the_next():
    # both regions overflow; region 0 may use pools 2 (cheap, 2 free) and 3 (dear, 10 free),
    # region 1 only pool 2: round one shares pool 2 pro rata (6 vs 2 asked: 1.5 and 0.5 placed),
    # round two sends region 0's remaining 4.5 to pool 3
    plant = tiny_plant(n_sites=4, n_regions=2,
                       residency_ok=np.array([[True, False, True, True], [False, True, True, False]]))
    share = np.zeros((2, 4, 1))
    share[0, 0], share[1, 1] = 1.0, 1.0
    marginal = np.array([[1.0], [1.0], [1.0], [2.0]])
    d = dispatch(plant, share, np.array([[10.0], [6.0]]) * SUB_S, np.array([4.0, 4.0, 2.0, 10.0]), SUB_S, marginal)
    np.testing.assert_allclose(d.spilled_req[:, :, 0] / SUB_S, [[0, 0, 1.5, 4.5], [0, 0, 0.5, 0]], atol=EXACT)
    np.testing.assert_allclose(d.dropped_req[:, 0] / SUB_S, [0.0, 1.5], atol=EXACT)


# ---------------------------------------------------------------------- the plant's hour of sub-steps
def _old_hourly_step(plant, state, decision, fc):
    """Today's (pre-dispatcher) formulas for one hour without overflow: served = shares × work,
    TTFT and misses from the hour's mean rates (Erlang C)."""
    S_s = plant.step_s
    arrivals = fc.load_req_per_s[0] * S_s
    work = arrivals + np.where(plant.deferrable[None, :], state.backlog_req, 0.0)
    served = decision.share * work[:, None, :] / S_s                                    # req/s
    busy = np.einsum("rpk,pk->p", served, plant.gpu_s_per_req)
    rate = served.sum(axis=(0, 2))
    service = np.where(rate > 0, busy / np.where(rate > 0, rate, 1.0), 0.0)
    base = plant.rtt_s[:, plant.pool_site][:, :, None] + plant.prefill_s[None]
    wait = erlang_c_wait_s(decision.gpus, busy, service)
    late = erlang_c_late_fraction(decision.gpus[None, :, None], busy[None, :, None], service[None, :, None],
                                  plant.slo_ttft_s[None, None, :] - base)
    x = served[plant.pairs[:, 0], plant.pairs[:, 1], plant.pairs[:, 2]]
    it = pl.site_total(plant, pl.pool_it_kw(plant, x, decision.gpus))
    return {"served_req": served * S_s, "ttft_s": np.where(served > 0, base + wait[None, :, None], np.nan),
            "slo_miss_req": np.where(served > 0, served * S_s * late, 0.0), "it_kw": it,
            "backlog": state.backlog_req + arrivals - served.sum(axis=1) * S_s}


def _roomy_hour(seed: int):
    """random_instance's plant with SLO misses priced, whole GPUs and a decision with room to spare."""
    plant, fc, _ = random_instance(seed, steps=2)
    plant = replace(plant, round_gpus_up=True, penalties=replace(plant.penalties, slo_miss_eur_per_request=0.005))
    rng = np.random.default_rng(seed)
    share = rng.uniform(0, 1, plant.allowed.shape) * plant.allowed
    share = share / share.sum(axis=1, keepdims=True)
    share[:, :, 1] *= 0.7                                    # batch: 30 % deferred by decision
    gpus = np.array([20.0, 25.0, 15.0])
    backlog = np.array([[0.0, 500.0], [0.0, 800.0]])
    state = replace(PlantState.initial(plant, water_day=int(fc.day_index[0])), gpus_active=gpus,
                    backlog_req=backlog)
    decision = Allocation(share, gpus, np.zeros(3), np.zeros(3))
    return plant, fc, state, decision


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_sub_step_without_overflow_is_the_old_hourly_step(seed):
    plant, fc, state, decision = _roomy_hour(seed)
    nxt, rec = step(plant, state, decision, fc)
    old = _old_hourly_step(plant, state, decision, fc)
    # no overflow (room to spare); the shares' round-off (Σ = 1 − 1e-16) is all that is spilled
    assert rec.spilled_req.sum() <= 1e-9 and rec.deferred_overflow_req.sum() == 0.0
    assert (rec.peak_utilisation < plant.rho_max).all()
    for name in ("served_req", "ttft_s", "slo_miss_req", "it_kw"):
        np.testing.assert_allclose(getattr(rec, name), old[name], rtol=EXACT, atol=ROUNDOFF, err_msg=name)
    np.testing.assert_allclose(nxt.backlog_req, old["backlog"], rtol=EXACT, atol=ROUNDOFF)
    assert rec.dropped_req.sum() == 0.0 and rec.slo_miss_req.sum() > 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_six_equal_sub_steps_are_one_hourly_step(seed):
    plant, fc, state, decision = _roomy_hour(seed)
    flat = replace(fc, load_sub_req_per_s=np.repeat(fc.load_req_per_s[:, None], 6, axis=1)).validate(plant)
    _, one = step(plant, state, decision, fc)
    _, six = step(plant, state, decision, flat)
    for name in ("served_req", "dropped_req", "backlog_change_req", "ttft_s", "slo_miss_req", "it_kw", "grid_kw"):
        np.testing.assert_allclose(getattr(six, name), getattr(one, name), rtol=EXACT, atol=ROUNDOFF, err_msg=name)
    assert six.cost_eur == pytest.approx(one.cost_eur, rel=EXACT)


def _peaky(classes=("chat",), gpus=6.0):
    """One pool of 6 GPUs (1 GPU-s per request, rho_max 1): 4 req/s on the hour's mean, 12 req/s
    in the first 10 minutes and 2.4 in the other five."""
    plant = tiny_plant(n_sites=1, classes=classes, gpus=gpus)
    sub = np.array([12.0, 2.4, 2.4, 2.4, 2.4, 2.4])[None, :, None, None] * np.ones((1, 1, 1, len(classes)))
    fc = replace(flat_forecast(plant, 1, load=4.0), load_sub_req_per_s=sub).validate(plant)
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    return plant, fc, state


def test_a_ten_minute_peak_overflows_an_hour_whose_mean_fits():
    plant, fc, state = _peaky()
    decision = Allocation(np.ones((1, 1, 1)), np.array([6.0]), np.zeros(1), np.zeros(1))
    _, hourly = step(plant, state, decision, replace(fc, load_sub_req_per_s=None))
    _, rec = step(plant, state, decision, fc)
    assert hourly.dropped_req.sum() == 0.0 and hourly.peak_utilisation[0] == pytest.approx(4.0 / 6.0)
    np.testing.assert_allclose(rec.dropped_req, [[6.0 * SUB_S]], rtol=EXACT)       # (12 − 6) req/s for 600 s
    assert rec.peak_utilisation[0] == pytest.approx(1.0)
    np.testing.assert_allclose(rec.arrivals_req, [[4.0 * 3600]], rtol=EXACT)


def test_returned_deferrable_work_is_offered_again_in_the_next_sub_step():
    plant, fc, state = _peaky(classes=("batch",))
    decision = Allocation(np.ones((1, 1, 1)), np.array([6.0]), np.zeros(1), np.zeros(1))
    nxt, rec = step(plant, state, decision, fc)
    # sub-step 0 returns (12 − 6) req/s × 600 s; sub-step 1 offers 2.4 + 6 = 8.4 req/s and returns
    # 2.4; sub-step 2 offers 4.8: all served; nothing waits at the hour's end
    np.testing.assert_allclose(rec.deferred_overflow_req, [[(6.0 + 2.4) * SUB_S]], rtol=EXACT)
    assert rec.dropped_req.sum() == 0.0 and nxt.backlog_req.sum() == pytest.approx(0.0, abs=ROUNDOFF)
    np.testing.assert_allclose(rec.served_req.sum(), 4.0 * 3600, rtol=EXACT)


def test_the_backlog_is_offered_in_equal_parts_and_a_decided_deferral_stays():
    plant = tiny_plant(n_sites=1, classes=("batch",), gpus=100.0)
    fc = flat_forecast(plant, 1, load=0.0)
    state = replace(PlantState.initial(plant, water_day=int(fc.day_index[0])), backlog_req=np.array([[6000.0]]),
                    arrivals_history_req=np.array([[[6000.0]], [[0.0]], [[0.0]]]))   # arrived an hour ago
    sub = replace(fc, load_sub_req_per_s=np.zeros((1, 6, 1, 1))).validate(plant)
    decision = Allocation(np.full((1, 1, 1), 0.5), np.array([100.0]), np.zeros(1), np.zeros(1))
    nxt, rec = step(plant, state, decision, sub)
    np.testing.assert_allclose(rec.served_req.sum(), 3000.0, rtol=EXACT)       # half of each 1,000 offered
    np.testing.assert_allclose(nxt.backlog_req, [[3000.0]], rtol=EXACT)
    assert rec.deferred_overflow_req.sum() == 0.0


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_sub_step_conservation_and_capacity_at_1x_and_100x_load(scale):
    plant, fc, state = random_instance(5, steps=6)
    plant = replace(plant, gpus_max=plant.gpus_max * scale, battery_kwh=plant.battery_kwh * scale,
                    battery_kw=plant.battery_kw * scale, gpu_ramp_per_step=None, round_gpus_up=True)
    rng = np.random.default_rng(int(scale))
    weights = rng.lognormal(0.0, 0.6, (6, 6, 2, 2))
    load = fc.load_req_per_s * scale * 1.4                             # over capacity in places
    fc = replace(fc, load_req_per_s=load, load_provision_req_per_s=load,
                 load_sub_req_per_s=load[:, None] * weights / weights.mean(axis=1, keepdims=True)).validate(plant)
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    spilled = returned = 0.0
    for t in range(6):
        share = rng.uniform(0, 1, plant.allowed.shape) * plant.allowed
        share = share / share.sum(axis=1, keepdims=True) * rng.uniform(0.6, 1.0, (2, 1, 2))
        gpus = plant.gpus_max * rng.uniform(0.3, 1.0, plant.n_pools)
        before = state.backlog_req
        state, rec = step(plant, state, Allocation(share, gpus, np.zeros(3), np.zeros(3)), fc.window(t, 1))
        check_invariants(plant, rec, t, backlog_before_req=before)
        residual = rec.arrivals_req - rec.served_req.sum(axis=1) - rec.dropped_req - rec.backlog_change_req
        size = rec.arrivals_req + rec.served_req.sum(axis=1) + rec.dropped_req + np.abs(rec.backlog_change_req) + before
        assert (np.abs(residual) <= CONSERVATION * np.maximum(size, 1.0)).all()
        assert (rec.peak_utilisation <= plant.rho_max * (1 + CONSERVATION)).all()
        spilled += rec.spilled_req.sum()
        returned += rec.deferred_overflow_req.sum()
    assert spilled > 0 and returned > 0                                # the dispatcher had work to do


def test_sub_step_load_is_checked_and_sliced():
    plant = tiny_plant(n_regions=2, classes=("chat", "batch"))
    fc = flat_forecast(plant, 3, load=6.0)
    sub = np.full((3, 6, 2, 2), 6.0)
    sub[1, :, 1, 0] = [12.0, 0.0, 6.0, 6.0, 6.0, 6.0]
    ok = replace(fc, load_sub_req_per_s=sub).validate(plant)
    assert ok.sub_steps == 6 and fc.sub_steps == 1
    np.testing.assert_array_equal(ok.window(1, 2).load_sub_req_per_s, sub[1:3])
    bad = sub.copy()
    bad[2, 3, 0, 1] += 1e-6
    with pytest.raises(ValueError, match=r"load_sub_req_per_s: the mean of the 6 sub-steps of step 2, R0, batch"):
        replace(fc, load_sub_req_per_s=bad).validate(plant)
    bad = sub.copy()
    bad[0, 2, 1, 1] = -1.0
    with pytest.raises(ValueError, match=r"load_sub_req_per_s: negative value .* step 0, sub-step 2, R1, batch"):
        replace(fc, load_sub_req_per_s=bad).validate(plant)
    with pytest.raises(ValueError, match=r"load_sub_req_per_s: shape \(3, 6, 2\), expected"):
        replace(fc, load_sub_req_per_s=sub[..., 0]).validate(plant)


def test_erlang_b_in_closed_form_matches_the_recursion():
    """B_i = a·B_{i−1} ÷ (i + a·B_{i−1}) for c = 1 … 200 at loads from 1e-6 to 1.5 per server."""
    servers = np.arange(1, 201, dtype=float)
    for rho in (1e-6, 0.05, 0.5, 0.8, 0.95, 0.999, 1.5):
        a = rho * servers
        b, expected = np.ones_like(a), np.empty_like(a)
        for i in range(1, 201):
            b = a * b / (i + a * b)
            expected[i - 1] = b[i - 1]
        np.testing.assert_allclose(erlang_b(servers, a), expected, rtol=1e-9, atol=0.0)
    # a 1,000-GPU pool at 80 %: finite, tiny, and Erlang C in [B, 1]
    c, a = np.array([1000.0]), np.array([800.0])
    big_b, big_c = erlang_b(c, a)[0], erlang_c_probability(c, a)[0]
    assert 0.0 <= big_b <= big_c < 1e-6


def test_interactive_overflow_takes_free_capacity_before_deferrable_overflow():
    # pool 0 (4 GPUs) is routed chat 4 and batch 4 req/s: chat is served there, batch overflows;
    # pool 1 (6 GPUs) is routed chat 8: 2 chat overflow. Free room: none at 0, none at 1 — add
    # pool 2 with 3 GPUs routed nothing: chat's 2 take it first, batch gets the 1 left, 3 return
    plant = _one_region(classes=("chat", "batch"))
    share = np.zeros((1, 3, 2))
    share[0, 0] = [1 / 3, 1.0]
    share[0, 1] = [2 / 3, 0.0]
    offered = np.array([[12.0, 4.0]]) * SUB_S
    d = dispatch(plant, share, offered, np.array([4.0, 6.0, 3.0]), SUB_S, np.zeros((3, 2)))
    np.testing.assert_allclose(d.served_req[0, 2], [2.0 * SUB_S, 1.0 * SUB_S], rtol=EXACT)
    np.testing.assert_allclose(d.dropped_req, [[0.0, 0.0]], atol=ROUNDOFF)
    np.testing.assert_allclose(d.returned_req, [[0.0, 3.0 * SUB_S]], rtol=EXACT)


def test_routed_deferrable_work_yields_its_pool_to_another_pools_interactive_overflow():
    # pool 0 (4 GPUs) is routed chat 6 req/s: 2 overflow. Pool 1 (4 GPUs) is routed batch 4 req/s,
    # exactly its capacity. Chat is served fleet-wide first: its 2 take pool 1's room, and 2 req/s
    # of the routed batch work return to the backlog (nothing is dropped)
    plant = _one_region(n_sites=2, classes=("chat", "batch"))
    share = np.zeros((1, 2, 2))
    share[0, 0, 0] = 1.0
    share[0, 1, 1] = 1.0
    d = dispatch(plant, share, np.array([[6.0, 4.0]]) * SUB_S, np.array([4.0, 4.0]), SUB_S, np.zeros((2, 2)))
    np.testing.assert_allclose(d.served_req[0, :, 0], [4.0 * SUB_S, 2.0 * SUB_S], rtol=EXACT)
    np.testing.assert_allclose(d.served_req[0, :, 1], [0.0, 2.0 * SUB_S], atol=ROUNDOFF)
    np.testing.assert_allclose(d.dropped_req, [[0.0, 0.0]], atol=ROUNDOFF)
    np.testing.assert_allclose(d.returned_req, [[0.0, 2.0 * SUB_S]], rtol=EXACT)


def test_backlog_fill_serves_a_decided_deferral_on_free_capacity_cheapest_first():
    # batch 8 req/s offered, share 0.25 to pool 0: 6 req/s deferred by decision. Pools 0 and 1 run
    # 4 GPUs each (room for 4 req/s), pool 1 is cheaper. Without backlog fill the 6 stay in the
    # backlog; with it they fill pool 1's 4 first, then pool 0's 2 left; nothing else moves
    plant = _one_region(n_sites=2, classes=("batch",))
    share = np.array([[[0.25], [0.0]]])
    offered = np.array([[8.0 * SUB_S]])
    cost = np.array([[2.0], [1.0]])
    gpus = np.array([4.0, 4.0])
    plain = dispatch(plant, share, offered, gpus, SUB_S, cost)
    np.testing.assert_allclose(plain.served_req[0, :, 0], [2.0 * SUB_S, 0.0], rtol=EXACT)
    d = dispatch(replace(plant, backlog_fill=True), share, offered, gpus, SUB_S, cost)
    np.testing.assert_allclose(d.served_req[0, :, 0], [4.0 * SUB_S, 4.0 * SUB_S], rtol=EXACT)
    np.testing.assert_allclose(d.spilled_req[0, :, 0], [2.0 * SUB_S, 4.0 * SUB_S], rtol=EXACT)
    assert d.returned_req.sum() == 0.0 and d.dropped_req.sum() == 0.0
    np.testing.assert_allclose(d.utilisation, [1.0, 1.0], rtol=EXACT)


def test_backlog_fill_never_takes_room_interactive_work_needs_nor_runs_more_gpus():
    # chat 3 req/s on pool 0 (4 GPUs) and a batch backlog deferred whole (share 0): the fill takes
    # only pool 0's 1 req/s left; pool 1 runs no GPU and receives nothing
    plant = replace(_one_region(n_sites=2, classes=("chat", "batch")), backlog_fill=True)
    share = np.zeros((1, 2, 2))
    share[0, 0, 0] = 1.0
    d = dispatch(plant, share, np.array([[3.0, 50.0]]) * SUB_S, np.array([4.0, 0.0]), SUB_S, np.zeros((2, 2)))
    np.testing.assert_allclose(d.served_req[0, 0], [3.0 * SUB_S, 1.0 * SUB_S], rtol=EXACT)
    assert d.served_req[0, 1].sum() == 0.0 and d.returned_req.sum() == 0.0


def test_backlog_fill_over_an_hour_conserves_requests_and_empties_what_fits():
    # the decided-deferral case above, filled: every sub-step's 1,000 offered fit the 100 GPUs
    plant = tiny_plant(n_sites=1, classes=("batch",), gpus=100.0)
    fc = flat_forecast(plant, 1, load=0.0)
    state = replace(PlantState.initial(plant, water_day=int(fc.day_index[0])), backlog_req=np.array([[6000.0]]),
                    arrivals_history_req=np.array([[[6000.0]], [[0.0]], [[0.0]]]))
    sub = replace(fc, load_sub_req_per_s=np.zeros((1, 6, 1, 1))).validate(plant)
    decision = Allocation(np.full((1, 1, 1), 0.5), np.array([100.0]), np.zeros(1), np.zeros(1))
    nxt, rec = step(replace(plant, backlog_fill=True), state, decision, sub)
    np.testing.assert_allclose(rec.served_req.sum(), 6000.0, rtol=EXACT)
    np.testing.assert_allclose(nxt.backlog_req, [[0.0]], atol=ROUNDOFF)
    check_invariants(replace(plant, backlog_fill=True), rec, 0, backlog_before_req=state.backlog_req)


def test_a_decision_that_turns_the_fill_off_keeps_its_deferral_in_the_backlog():
    # the hour above with the plant's fill on and the decision's off: half of the 6,000 is served
    # by share, the other half stays deferred (the dispatcher's fill=False alone does the same)
    plant = replace(tiny_plant(n_sites=1, classes=("batch",), gpus=100.0), backlog_fill=True)
    fc = flat_forecast(plant, 1, load=0.0)
    state = replace(PlantState.initial(plant, water_day=int(fc.day_index[0])), backlog_req=np.array([[6000.0]]),
                    arrivals_history_req=np.array([[[6000.0]], [[0.0]], [[0.0]]]))
    sub = replace(fc, load_sub_req_per_s=np.zeros((1, 6, 1, 1))).validate(plant)
    decision = Allocation(np.full((1, 1, 1), 0.5), np.array([100.0]), np.zeros(1), np.zeros(1), backlog_fill=False)
    nxt, rec = step(plant, state, decision, sub)
    np.testing.assert_allclose(rec.served_req.sum(), 3000.0, rtol=EXACT)
    np.testing.assert_allclose(nxt.backlog_req, [[3000.0]], rtol=EXACT)
    check_invariants(plant, rec, 0, backlog_before_req=state.backlog_req)
    one = _one_region(n_sites=2, classes=("batch",))
    d = dispatch(replace(one, backlog_fill=True), np.array([[[0.25], [0.0]]]), np.array([[8.0 * SUB_S]]),
                 np.array([4.0, 4.0]), SUB_S, np.array([[2.0], [1.0]]), fill=False)
    np.testing.assert_allclose(d.served_req[0, :, 0], [2.0 * SUB_S, 0.0], rtol=EXACT)
