"""A per-site cap on facility power (``sites.X.power_cap_kw``; ``control.constraints.SitePowerCap``):
the MPC's known optimum with the cap binding, the dispatcher serving no more than fits under it,
the plant running no more GPUs than fit, and the config key reaching the plant.

Hand-made plant (``tiny_plant``): 1 GPU-second and 1 kW·s of dynamic IT energy per request, so a
site at PUE π drawing F kW of facility power serves F ÷ π req/s when no GPU idles."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from control import plant as pl
from control.constraints import pool_capacity_gpu_s
from control.controllers import MPCController
from control.dispatch import dispatch, marginal_eur_per_req
from control.from_data import plant_for
from control.mpc import AllocationMPC
from control.realised import step
from control.simulate import run_episode
from control.state import Allocation, PlantState
from pipelines.config import ConfigError, load_config
from tests.control.cases import flat_forecast, policy, tiny_plant
from tests.tolerances import CONSERVATION, EXACT, SOLVER, SOLVER_PRIMAL

SUB_S = 600.0
CAP_KW = 6.0


@pytest.mark.parametrize("solver", ["highs", "qpsol"])
def test_known_optimum_the_cheap_site_runs_at_its_cap_and_the_rest_goes_to_the_dear_one(solver):
    """10 req/s; S0 at 10 EUR/MWh capped at 6 kW, S1 at 100 EUR/MWh: S0 serves 6 ÷ π req/s, S1 the
    rest; energy cost per hour (6 × 10 + (10 − 6 ÷ π) × π × 100) ÷ 1000 EUR."""
    H = 3
    plant = tiny_plant(gpus=20.0, power_cap_kw=np.array([CAP_KW, np.inf]))
    fc = flat_forecast(plant, H, load=10.0, price=np.array([10.0, 100.0]))
    mpc = AllocationMPC(plant, policy(H), solver=solver)
    result = mpc.solve(PlantState.initial(plant, water_day=int(fc.day_index[0])), fc)
    assert result.success, result.status
    pue = float(pl.pue(plant, np.array([10.0]))[0])
    per_site = plant.dense_pairs(result.plan.served_req_per_s[0]).sum(axis=(0, 2))
    np.testing.assert_allclose(per_site, [CAP_KW / pue, 10.0 - CAP_KW / pue], atol=SOLVER_PRIMAL)
    expected = H * (CAP_KW * 10.0 + (10.0 - CAP_KW / pue) * pue * 100.0) / 1000.0
    assert result.terms.energy_cost_eur == pytest.approx(expected, rel=SOLVER)
    free = AllocationMPC(replace(plant, power_cap_kw=np.empty(0)), policy(H), solver=solver).solve(
        PlantState.initial(plant, water_day=int(fc.day_index[0])), fc)
    assert free.terms.energy_cost_eur == pytest.approx(H * 10.0 * pue * 10.0 / 1000.0, rel=SOLVER)


def test_idle_gpus_count_against_the_cap_in_the_plan():
    """1 kW idle per GPU at S0: every running GPU takes π kW of the cap, so S0 serves s req/s on
    s GPUs with π × 2s ≤ 6 kW, i.e. 3 ÷ π req/s."""
    plant = tiny_plant(gpus=20.0, power_cap_kw=np.array([CAP_KW, np.inf]), idle_kw_per_gpu=np.array([1.0, 1.0]))
    fc = flat_forecast(plant, 1, load=10.0, price=np.array([10.0, 100.0]))
    result = AllocationMPC(plant, policy(1)).solve(PlantState.initial(plant, water_day=int(fc.day_index[0])), fc)
    pue = float(pl.pue(plant, np.array([10.0]))[0])
    per_site = plant.dense_pairs(result.plan.served_req_per_s[0]).sum(axis=(0, 2))
    assert per_site[0] == pytest.approx(3.0 / pue, abs=SOLVER_PRIMAL)
    assert result.plan.gpus[0, 0] == pytest.approx(3.0 / pue, abs=SOLVER_PRIMAL)


def test_the_dispatcher_serves_what_fits_under_the_cap_and_spills_the_rest():
    """All 10 req/s routed to S0 (20 GPUs, capped at 6 kW): S0 serves 6 ÷ π req/s, S1 takes the rest."""
    plant = tiny_plant(gpus=20.0, power_cap_kw=np.array([CAP_KW, np.inf]))
    pue = pl.pue(plant, np.array([10.0, 10.0]))
    gpus = np.array([20.0, 20.0])
    cap = pool_capacity_gpu_s(plant, gpus, pue, SUB_S)      # 1 kW per busy GPU: room kW × s = GPU-s
    np.testing.assert_allclose(cap, [CAP_KW / pue[0] * SUB_S, 20.0 * SUB_S], rtol=EXACT)
    share = np.array([[[1.0], [0.0]]])
    d = dispatch(plant, share, np.array([[10.0 * SUB_S]]), gpus, SUB_S,
                 marginal_eur_per_req(plant, np.array([10.0, 100.0]), pue), cap)
    served = d.served_req[0, :, 0] / SUB_S
    np.testing.assert_allclose(served, [CAP_KW / pue[0], 10.0 - CAP_KW / pue[0]], rtol=EXACT)
    assert d.dropped_req.sum() == 0.0
    uncapped = replace(plant, power_cap_kw=np.empty(0))
    np.testing.assert_array_equal(pool_capacity_gpu_s(uncapped, gpus, pue, SUB_S), uncapped.rho_max * gpus * SUB_S)


def test_the_plant_runs_no_more_gpus_than_fit_and_never_draws_more_than_the_cap():
    """A decision of 20 GPUs at S0 (1 kW idle each, cap 6 kW): the plant runs ⌊6 ÷ π⌋ and its
    facility power stays within the cap; what S0 cannot take is served at S1."""
    plant = tiny_plant(gpus=20.0, power_cap_kw=np.array([CAP_KW, np.inf]),
                       idle_kw_per_gpu=np.array([1.0, 1.0]), rho_max=1.0, round_gpus_up=True)
    fc = flat_forecast(plant, 1, load=2.0)
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    decision = Allocation(share=np.array([[[1.0], [0.0]]]), gpus=np.array([20.0, 2.0]),
                          charge_kw=np.zeros(2), discharge_kw=np.zeros(2), source="test")
    _, rec = step(plant, state, decision, fc)
    pue = float(pl.pue(plant, np.array([10.0]))[0])
    assert rec.gpus_applied[0] == np.floor(CAP_KW / pue)
    assert rec.facility_kw[0] <= CAP_KW * (1 + EXACT)
    assert rec.dropped_req.sum() == 0.0 and rec.served_req[0, 1, 0] > 0


def test_a_closed_loop_mpc_keeps_every_hour_within_the_cap():
    plant = tiny_plant(gpus=20.0, power_cap_kw=np.array([CAP_KW, np.inf]), idle_kw_per_gpu=np.array([0.2, 0.2]),
                       rho_max=0.8)
    H = 6
    fc = flat_forecast(plant, H + 4, load=np.linspace(6.0, 14.0, H + 4)[:, None, None],
                       price=np.array([10.0, 100.0]))
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    ctrl = MPCController(AllocationMPC(plant, policy(4)), fc)
    episode = run_episode(plant, ctrl, fc, H, state)
    facility = np.array([r.facility_kw[0] for r in episode.records])
    assert (facility <= CAP_KW * (1 + SOLVER)).all() and facility.max() > CAP_KW * 0.9
    arrivals = sum(r.arrivals_req.sum() for r in episode.records)
    assert sum(r.dropped_req.sum() for r in episode.records) <= CONSERVATION * arrivals


def test_the_config_key_reaches_the_plant_and_a_bad_value_names_the_site(smoke_data):
    cfg = load_config("configs/smoke.yaml", ["sites.DE.power_cap_kw=250"])
    plant = plant_for(cfg, smoke_data)
    caps = dict(zip(plant.site_names, plant.power_cap_kw, strict=True))
    assert caps["DE"] == 250.0 and all(np.isinf(v) for k, v in caps.items() if k != "DE")
    with pytest.raises(ConfigError, match=r"sites\[DE\]\.power_cap_kw: -1 is out of range \[1, 1e\+09\]"):
        load_config("configs/smoke.yaml", ["sites.DE.power_cap_kw=-1"])
