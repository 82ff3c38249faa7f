"""The plant: NumPy and CasADi evaluations agree; the realised step conserves requests and power;
inputs are checked at the boundary; sizing follows the scenario."""

from __future__ import annotations

from dataclasses import replace

import casadi as ca
import numpy as np
import pytest

from control import plant as pl
from control.controllers import CapacityProportional, GreedyController, MPCController
from control.mpc import AllocationMPC
from control.realised import step
from control.sizing import TokenStats, size_plant
from control.state import Allocation
from tests.control.cases import flat_forecast, policy, random_instance, tiny_plant
from tests.tolerances import CONSERVATION, ROUNDOFF

EQUAL = 1e-9


def _numeric_vs_symbolic(fn, *args: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    syms = [ca.SX.sym(f"a{i}", len(a)) for i, a in enumerate(args)]
    f = ca.Function("f", syms, [fn(*syms)])
    return np.atleast_1d(np.asarray(fn(*args), dtype=float)), np.array(f(*args), dtype=float).ravel()


def test_numpy_and_casadi_equations_agree():
    plant, fc, _ = random_instance(3)
    rng = np.random.default_rng(0)
    x, n = rng.uniform(0, 5, plant.n_pairs), rng.uniform(0, 10, plant.n_pools)
    S = plant.n_sites
    v = [rng.uniform(0, 3, S) for _ in range(4)]
    temp = np.array([-5.0, 17.9, 30.0])
    cases = [
        (lambda a: pl.pue(plant, a), (temp,)),
        (pl.wue_l_per_kwh, (np.array([-10.0, 5.0, 25.0]),)),
        (lambda a, b: pl.pool_it_kw(plant, a, b), (x, n)),
        (lambda a: pl.pool_work_gpu(plant, a), (x,)),
        (lambda a: pl.stream_served_req_per_s(plant, a), (x,)),
        (lambda a: pl.site_total(plant, a), (n,)),
        (pl.facility_kw, (v[0], v[1])),
        (lambda a, b: pl.renewable_kw(plant, a, b), (v[0], v[1])),
        (lambda a, b, c, d: pl.power_balance_residual_kw(a, b, c, d, v[0], v[1]), tuple(v)),
        (lambda a, b, c: pl.soc_next_kwh(plant, a, b, c), (v[0], v[1], v[2])),
        (lambda a, b, c, d: pl.water_l(plant, a, b, c, d), tuple(v)),
        (lambda a, b: pl.energy_cost_eur(plant, a, b), (v[0] * 50, v[1])),
        (lambda a, b: pl.carbon_kg(plant, a, b), (v[0] * 300, v[1])),
        (lambda a: pl.delay_req_s(plant, a), (x,)),
    ]
    for fn, args in cases:
        num, sym = _numeric_vs_symbolic(fn, *args)
        np.testing.assert_allclose(num, sym, rtol=EQUAL, atol=EQUAL)


def test_pue_matches_the_published_cooling_points():
    plant = tiny_plant()
    # Cooling partial PUE 1.05 at −3.9 °C (outside air) and 1.30 at 35 °C (mechanical), + 0.03.
    np.testing.assert_allclose(pl.pue(plant, np.array([-3.9, 35.0])), [1.03 + 0.04996, 1.03 + 0.299], atol=ROUNDOFF)


def _check_invariants(plant, state, record, nxt):
    arrivals = record.arrivals_req
    served = record.served_req.sum(axis=1)
    np.testing.assert_allclose(arrivals, served + record.dropped_req + (nxt.backlog_req - state.backlog_req),
                               atol=CONSERVATION * max(1.0, arrivals.max()))
    residual = pl.power_balance_residual_kw(record.facility_kw, record.grid_kw, record.renewable_kw,
                                            record.curtailed_kw, record.charge_kw, record.discharge_kw)
    np.testing.assert_allclose(residual, 0.0, atol=CONSERVATION)
    work = np.einsum("rpk,pk->p", record.served_req / plant.step_s, plant.gpu_s_per_req)
    assert (work <= plant.rho_max * record.gpus_applied + 1e-9).all()
    assert (record.grid_kw >= 0).all() and (record.curtailed_kw >= 0).all()
    assert (nxt.soc_kwh >= -1e-12).all() and (nxt.soc_kwh <= plant.battery_kwh + 1e-9).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_realised_step_conserves_requests_and_power(seed):
    plant, fc, state = random_instance(seed, steps=10)
    fallback = CapacityProportional(plant)
    controllers = [MPCController(AllocationMPC(plant, policy(4)), fallback), GreedyController(plant, "price"),
                   fallback]
    for ctrl in controllers:
        s = state
        for t in range(6):
            alloc = ctrl.act(t, s, fc.window(t, 4))
            # a realised load different from the forecast: the decision's shares still apply
            realised = fc.window(t, 1)
            object.__setattr__(realised, "load_req_per_s", realised.load_req_per_s * 1.3)
            nxt, rec = step(plant, s, alloc, realised)
            _check_invariants(plant, s, rec, nxt)
            s = nxt


def test_interactive_is_served_first_and_deferrable_overflow_is_queued():
    plant = tiny_plant(n_sites=1, classes=("chat", "batch"), gpus=10.0)
    fc = flat_forecast(plant, 1, load=np.array([[8.0, 8.0]]))
    from control.state import PlantState

    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    share = np.ones((1, 1, 2))
    nxt, rec = step(plant, state, Allocation(share, np.array([10.0]), np.zeros(1), np.zeros(1)), fc)
    # 16 req/s routed, capacity 10 req/s, no other pool: chat first (8), batch the 2 left, 6 wait
    np.testing.assert_allclose(rec.served_req[0, 0], [8 * 3600, 2 * 3600])
    np.testing.assert_allclose(rec.dropped_req[0], [0.0, 0.0])
    np.testing.assert_allclose(nxt.backlog_req[0], [0.0, 6 * 3600])


def test_bad_inputs_name_the_array_site_and_step():
    plant = tiny_plant()
    fc = flat_forecast(plant, 3)
    price = np.array(fc.price_eur_per_mwh)
    price[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"price_eur_per_mwh: NaN or infinite .* step 2, S1"):
        flat_forecast(plant, 3, price=price)
    load = np.full((3, 1, 1), 5.0)
    load[1, 0, 0] = -1.0
    with pytest.raises(ValueError, match=r"load_req_per_s: negative value .* step 1, R0, chat"):
        flat_forecast(plant, 3, load=load)
    with pytest.raises(ValueError, match=r"forecast.price_eur_per_mwh: shape \(3, 3\), expected \(3, 2\)"):
        flat_forecast(tiny_plant(n_sites=3), 3).validate(plant)
    with pytest.raises(ValueError, match=r"gpus_max: negative value"):
        tiny_plant(gpus=[-1.0, 5.0])
    with pytest.raises(ValueError, match=r"allocation.gpus: NaN or infinite value .* S0/h100"):
        Allocation(np.zeros((1, 2, 1)), np.array([np.inf, 1.0]), np.zeros(2), np.zeros(2)).validate(plant)


def test_sizing_follows_margin_weights_and_hardware(smoke_cfg):
    sc, control = smoke_cfg.scenario, smoke_cfg.control
    tokens = {"conv": TokenStats(1000.0, 250.0), "code": TokenStats(2000.0, 30.0)}
    peak = np.array([60.0, 25.0, 15.0])
    plant = size_plant(sc, smoke_cfg.hardware, control, smoke_cfg.penalties, peak, tokens)
    assert plant.pool_names == ("DE/h100", "FR/a100", "SI/rtx2000ada")
    weights = np.array([s.capacity_weight for s in sc.sites]) / sum(s.capacity_weight for s in sc.sites)
    # capacity at rho_max, in GPU-seconds per second, covers margin × the site's share of the peak
    need = sc.sizing.capacity_margin * weights * (plant.gpu_s_per_req @ peak)
    cap = control.rho_max * plant.gpus_max
    assert (cap >= need - 1e-9).all() and (cap - need < control.rho_max + 1e-9).all()
    peak_it_kw = plant.gpus_max * np.array([610.0, 417.0, 70.0]) / 1000.0
    np.testing.assert_allclose(plant.pv_kwp, sc.sizing.pv_fraction_of_peak_it * peak_it_kw)
    assert plant.battery_kwh[0] > 0 and (plant.battery_kwh[1:] == 0).all()
    assert (plant.grid_limit_kw > peak_it_kw).all()
    # an edge pool's prefill alone breaks the 1-s code SLO for a 2,000-token prompt
    assert not plant.allowed[:, 2, 1].any() and plant.allowed[:, 0, :].all()


def test_erlang_c_known_values():
    """M/M/1: P(wait) = ρ, P(W > t) = ρ·exp(−(μ − λ)t); M/M/2 at a = 1: C = 1/3."""
    from control._queueing import erlang_c_late_fraction, erlang_c_probability, erlang_c_wait_s

    np.testing.assert_allclose(erlang_c_probability(np.array([1.0, 2.0]), np.array([0.5, 1.0])), [0.5, 1 / 3])
    np.testing.assert_allclose(erlang_c_wait_s(np.array([1.0]), np.array([0.5]), np.array([1.0])), [1.0])
    late = erlang_c_late_fraction(np.array([1.0]), np.array([0.5]), np.array([1.0]), np.array([1.0]))
    np.testing.assert_allclose(late, [0.5 * np.exp(-0.5)])
    assert erlang_c_late_fraction(np.array([1.0]), np.array([0.5]), np.array([1.0]), np.array([-0.1]))[0] == 1.0
    assert erlang_c_late_fraction(np.array([2.0]), np.array([2.0]), np.array([1.0]), np.array([5.0]))[0] == 1.0


def test_pairs_need_room_for_queueing_within_the_slo():
    """Slack = SLO − RTT − prefill = 1.0 − 0.01 − 0.1 = 0.89 s; one service time is 1 s."""
    from tests.control.cases import tiny_plant

    tight = tiny_plant(n_sites=1, slo_ttft_s=np.array([1.0]))
    assert tight.n_pairs == 1                                   # RTT + prefill alone fit
    assert replace(tight, slo_wait_margin_services=1.0).n_pairs == 0
    assert replace(tight, slo_wait_margin_services=0.5).n_pairs == 1


def test_sparse_incidence_and_the_lp_matrix_by_row_family_equal_the_dense_ones():
    """The fleet-scale build (sparse incidence matrices, the Jacobian one row family at a time, step
    0's rows by indexing) gives the LP's matrix and offsets the whole-matrix Jacobian gives."""
    plant, fc, _ = random_instance(3, steps=4)
    for name in ("pool_energy_matrix", "pool_work_matrix", "stream_matrix", "site_matrix"):
        np.testing.assert_array_equal(np.array(plant.casadi_matrices[name]), getattr(plant, name))
    mpc = AllocationMPC(plant, replace(policy(4), group_interactive_shares=True), solver="highs")
    lp = mpc.lp
    assert lp.rows["group_shares"][1] > 0 and lp.rows["burst"][1] > 0
    whole = ca.Function("whole", [lp.p.sym], [ca.jacobian(lp.g, lp.x.sym)])
    p = np.random.default_rng(0).uniform(0.5, 2.0, lp.p.size)
    by_family, _ = mpc.backend._data_fn(p)
    np.testing.assert_allclose(np.array(ca.densify(by_family)), np.array(ca.densify(whole(p))), rtol=EQUAL, atol=EQUAL)
