"""Edge batch modes (``sizing.edge_batch_modes``; ``control.batch_modes``): the derived figures and
the memory check of the shipped catalogue, the MPC's mode choice on hand-solvable cases, the devices
the modes share (LP rows and the plant's clamp), and a closed loop on the smoke scenario.

Hand-made device (``_modes_plant``): 10 devices, 1 kW idle each, in two modes at one site — batch 1
(1 GPU-s and 2 kW·s of dynamic energy per request, prefill 0.5 s) and batch 4 (0.5 GPU-s, 1 kW·s,
prefill 2 s): batch 4 serves a request for half the device time and half the energy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from control import plant as pl
from control.batch_modes import fixed_mode_gpus, memory_needed_gb, mode_table, within_shared_devices
from control.controllers import CapacityProportional, MPCController
from control.from_data import plant_for
from control.mpc import AllocationMPC
from control.simulate import run_episode
from control.state import PlantState
from pipelines.config import ConfigError, load_config
from tests.control.cases import flat_forecast, policy, tiny_plant
from tests.tolerances import EXACT, SOLVER, SOLVER_PRIMAL

DEVICES = 10.0
MODES = "sizing.edge_batch_modes=[1, 2, 4, 8]"


def _modes_plant(slo_ttft_s: float = 10.0) -> pl.PlantParams:
    return tiny_plant(n_sites=1, classes=("chat",), pool_site=np.array([0, 0]), pool_gpu=("edge@b1", "edge@b4"),
                      gpus_max=np.array([DEVICES, DEVICES]), idle_kw_per_gpu=np.array([1.0, 1.0]),
                      it_kw_per_req_per_s=np.array([[2.0], [1.0]]), gpu_s_per_req=np.array([[1.0], [0.5]]),
                      prefill_s=np.array([[0.5], [2.0]]), slo_ttft_s=np.array([slo_ttft_s]),
                      pool_device=np.array([0, 0]), fixed_mode=np.array([False, True]))


def _solve(plant: pl.PlantParams, load: float, H: int = 2, solver: str = "highs"):
    fc = flat_forecast(plant, H, load=load, price=100.0)
    result = AllocationMPC(plant, policy(H, order=("cost",)), solver=solver).solve(
        PlantState.initial(plant, water_day=int(fc.day_index[0])), fc)
    assert result.success, result.status
    pue = float(pl.pue(plant, np.array([10.0]))[0])
    return result, pue


@pytest.mark.parametrize("solver", ["highs", "qpsol"])
def test_known_optimum_batch_4_serves_everything_when_its_ttft_fits(solver):
    """8 req/s: batch 4 on 4 devices draws 4 + 8 = 12 kW, batch 1 would draw 8 + 16 = 24 kW."""
    result, pue = _solve(_modes_plant(), 8.0, solver=solver)
    np.testing.assert_allclose(result.plan.gpus[0], [0.0, 4.0], atol=SOLVER_PRIMAL)
    assert result.terms.energy_cost_eur == pytest.approx(2 * 12.0 * pue * 100.0 / 1000.0, rel=SOLVER)


def test_known_optimum_batch_1_when_batch_4_misses_the_ttft_slo():
    """SLO 2 s: batch 4's prefill (2 s) + RTT misses it, so batch 1 serves all: 8 + 16 = 24 kW."""
    plant = _modes_plant(slo_ttft_s=2.0)
    assert plant.allowed[0, :, 0].tolist() == [True, False]
    result, pue = _solve(plant, 8.0)
    np.testing.assert_allclose(result.plan.gpus[0], [8.0, 0.0], atol=SOLVER_PRIMAL)
    assert result.terms.energy_cost_eur == pytest.approx(2 * 24.0 * pue * 100.0 / 1000.0, rel=SOLVER)


def test_the_modes_share_the_devices_in_the_plan():
    """24 req/s: 10 devices serve at most 20 req/s (all at batch 4); without the shared rows the LP
    would add 10 batch-1 devices and serve all 24."""
    result, _ = _solve(_modes_plant(), 24.0)
    np.testing.assert_allclose(result.plan.gpus[0], [0.0, DEVICES], atol=SOLVER_PRIMAL)
    served = result.plan.served_req_per_s[0].sum()
    assert served == pytest.approx(20.0, abs=SOLVER_PRIMAL)


def test_the_plant_runs_at_most_the_devices_over_the_modes():
    """12 GPUs asked over 10 devices: scaled by 10/12, whole GPUs by largest remainder (3.33, 6.67 → 3, 7)."""
    plant = _modes_plant()
    np.testing.assert_allclose(within_shared_devices(plant, np.array([4.0, 8.0])), [10 / 3, 20 / 3], rtol=EXACT)
    whole = replace(plant, round_gpus_up=True)
    np.testing.assert_array_equal(within_shared_devices(whole, np.array([4.0, 8.0])), [3.0, 7.0])
    np.testing.assert_array_equal(within_shared_devices(whole, np.array([3.0, 7.0])), [3.0, 7.0])
    np.testing.assert_array_equal(fixed_mode_gpus(plant), [0.0, DEVICES])


def test_a_device_group_must_share_its_count_and_have_one_fixed_mode():
    with pytest.raises(ValueError, match="pool_device: group 0"):
        tiny_plant(n_sites=1, pool_site=np.array([0, 0]), pool_gpu=("e@b1", "e@b4"), gpus_max=np.array([10.0, 9.0]),
                   idle_kw_per_gpu=np.zeros(2), it_kw_per_req_per_s=np.ones((2, 1)), gpu_s_per_req=np.ones((2, 1)),
                   prefill_s=np.ones((2, 1)), pool_device=np.array([0, 0]), fixed_mode=np.array([False, True]))


def test_the_catalogue_memory_check_and_derived_figures():
    """The 8 GB Orin NX cannot hold batch 8 (weights + reserve + 8 slots of 2,048 tokens of KV cache);
    the 16 GB RTX 2000 Ada holds every mode. Batch 1 decodes at the measured rate; larger batches
    take less energy per request and a longer TTFT."""
    hw = load_config("configs/smoke.yaml").hardware
    assert hw.edge_memory is not None
    assert memory_needed_gb(hw.edge_memory, 8) > 8.0 > memory_needed_gb(hw.edge_memory, 4)
    rows = {(r["device"], r["batch"]): r for r in mode_table(hw, (1, 2, 4, 8), 1000.0, 200.0)}
    assert not rows[("jetson_orin_nx", 8)]["fits"] and all(rows[("rtx2000ada", b)]["fits"] for b in (1, 2, 4, 8))
    assert rows[("rtx2000ada", 1)]["decode_tok_per_s"] == pytest.approx(hw.get("rtx2000ada").decode_tok_per_s_batch1)
    for dev, batches in (("rtx2000ada", (1, 2, 4, 8)), ("jetson_orin_nx", (1, 2, 4))):
        j = [rows[(dev, b)]["j_per_request"] for b in batches]
        ttft = [rows[(dev, b)]["ttft_s"] for b in batches]
        assert all(np.diff(j) < 0) and all(np.diff(ttft) > 0)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"sizing.edge_batch_modes: \[2, 2\]; valid: distinct"):
        load_config("configs/smoke.yaml", ["sizing.edge_batch_modes=[2, 2]"])


def test_a_mode_list_without_the_catalogue_batch_is_refused(smoke_data):
    cfg = load_config("configs/smoke.yaml", ["sizing.edge_batch_modes=[1, 2]"])
    with pytest.raises(ConfigError, match=r"must include rtx2000ada's catalogue batch 4"):
        plant_for(cfg, smoke_data)


def test_smoke_closed_loop_with_modes_mpc_and_baseline(smoke_data):
    """Sub-pools per mode that fits, one count per device; the MPC's hours stay within the devices
    (whatever modes it picks; ``run_episode`` checks the invariants every step); a baseline runs
    the fixed mode only."""
    cfg = load_config("configs/smoke.yaml", [MODES])
    plant = plant_for(cfg, smoke_data)
    edge = [i for i, g in enumerate(plant.pool_gpu) if g.startswith("rtx2000ada")]
    assert [plant.pool_gpu[i] for i in edge] == [f"rtx2000ada@b{b}" for b in (1, 2, 4, 8)]
    assert len(set(plant.gpus_max[edge])) == 1 and plant.fixed_mode[edge].tolist() == [False, False, True, False]
    fc = flat_forecast(plant, 10, load=np.full((1, len(plant.region_names), len(plant.class_names)), 0.5))
    for ctrl in (MPCController(AllocationMPC(plant, policy(4)), fc), CapacityProportional(plant)):
        episode = run_episode(plant, ctrl, fc, 6, PlantState.initial(plant, water_day=int(fc.day_index[0])))
        gpus = np.array([r.gpus_applied for r in episode.records])
        assert (gpus[:, edge].sum(axis=1) <= plant.gpus_max[edge[0]] * (1 + EXACT)).all()
        if isinstance(ctrl, CapacityProportional):
            assert (gpus[:, edge][:, [0, 1, 3]] == 0).all()
