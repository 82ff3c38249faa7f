"""Small hand-made plants and inputs for the control tests (no data files needed).

``tiny_plant`` builds a plant of up to a few sites with one pool each and made-up, round
coefficients, so that optima can be worked out by hand: 1 GPU-second per request, 1 kW of dynamic
IT power per req/s (i.e. 1 kJ per request), no idle power unless asked.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from control.inputs import ControlForecast
from control.params import ControlSettings, Penalties
from control.plant import PlantParams
from control.state import PlantState

DAY0 = 17_800  # a UTC day number (2018-09-24); only differences matter

# The policy the hand-made cases were worked out with (``AllocationMPC``'s keyword defaults before the
# policy became ``ControlSettings``, issue #15): no GPU floor, every step routed exactly, free shares,
# no expiry guard, the streams' provisioning levels added up (correlation 1), bursts per stream at p95.
CASE_POLICY = replace(ControlSettings(), burst_quantile=0.95, min_gpus_interactive=0.0, exact_routing_steps=0,
                      tail_block_steps=1, group_interactive_shares=False, expiry_guard=False,
                      max_share_vs_capacity=0.0, slo_aware_gpus=False, group_provision_correlation=1.0,
                      group_bursts=False)


def policy(horizon_steps: int = 24, **changes: object) -> ControlSettings:
    """``CASE_POLICY`` with horizon H = ``horizon_steps`` and the given fields changed."""
    return replace(CASE_POLICY, **{"horizon_steps": horizon_steps, **changes})


def tiny_plant(n_sites: int = 2, n_regions: int = 1, classes: tuple[str, ...] = ("chat",),
               gpus: float | list[float] = 100.0, **kw: object) -> PlantParams:
    """One pool per site, classes named in ``classes`` (``batch*`` ones are deferrable, deadline 4)."""
    S, R, K = n_sites, n_regions, len(classes)
    defer = np.array([c.startswith("batch") for c in classes])
    args: dict[str, object] = dict(
        site_names=tuple(f"S{i}" for i in range(S)), region_names=tuple(f"R{i}" for i in range(R)),
        class_names=tuple(classes), pool_site=np.arange(S), pool_gpu=tuple("h100" for _ in range(S)),
        gpus_max=np.broadcast_to(np.asarray(gpus, dtype=float), (S,)).copy(),
        idle_kw_per_gpu=np.zeros(S), it_kw_per_req_per_s=np.ones((S, K)),
        gpu_s_per_req=np.ones((S, K)), prefill_s=np.full((S, K), 0.1),
        rtt_s=np.full((R, S), 0.01), slo_ttft_s=np.full(K, 2.0), deferrable=defer,
        deadline_steps=np.where(defer, 4, 0), pv_kwp=np.zeros(S), wind_kw=np.zeros(S),
        grid_limit_kw=np.full(S, 1e4), battery_kwh=np.zeros(S), battery_kw=np.zeros(S),
        water_budget_l_per_day=np.full(S, 1e12),
        penalties=Penalties(drop_eur_per_request=1.0, slo_miss_eur_per_request=0.0,
                            water_eur_per_l=0.01, gpu_start_eur=0.0),
        rho_max=1.0, round_gpus_up=False,
    )
    args.update(kw)
    return PlantParams(**args)  # type: ignore[arg-type]


def flat_forecast(plant: PlantParams, steps: int, load: float | np.ndarray = 10.0,
                  price: float | np.ndarray = 50.0, temp_c: float | np.ndarray = 10.0,
                  start_day: int = DAY0, **over: np.ndarray) -> ControlForecast:
    """Constant (or given) per-step inputs; ``load`` broadcasts to ``(H, R, K)``, site arrays to ``(H, S)``."""
    H, S = steps, plant.n_sites
    R, K = len(plant.region_names), len(plant.class_names)
    site = lambda v: np.broadcast_to(np.asarray(v, dtype=float), (H, S)).copy()  # noqa: E731
    load_arr = np.broadcast_to(np.asarray(load, dtype=float), (H, R, K)).copy()
    fields = dict(price_eur_per_mwh=site(price), carbon_g_per_kwh=site(300.0), ewif_l_per_kwh=site(1.0),
                  temp_c=site(temp_c), wetbulb_c=site(5.0), solar_cf=site(0.0), wind_cf=site(0.0),
                  load_req_per_s=load_arr, load_provision_req_per_s=load_arr.copy(),
                  day_index=start_day + np.arange(H) // 24)
    for key, value in over.items():
        fields[key] = site(value) if key not in ("load_provision_req_per_s", "load_burst_req_per_s") else value
    return ControlForecast(**fields).validate(plant)


def random_instance(seed: int, steps: int = 8) -> tuple[PlantParams, ControlForecast, PlantState]:
    """A seeded 3-site, 2-region, chat + batch instance with idle power, battery and water budgets."""
    rng = np.random.default_rng(seed)
    plant = tiny_plant(
        n_sites=3, n_regions=2, classes=("chat", "batch"), gpus=[20.0, 25.0, 15.0],
        idle_kw_per_gpu=np.array([0.1, 0.08, 0.12]),
        it_kw_per_req_per_s=rng.uniform(0.5, 1.5, (3, 2)), gpu_s_per_req=rng.uniform(0.5, 1.5, (3, 2)),
        rtt_s=rng.uniform(0.005, 0.05, (2, 3)), pv_kwp=np.array([5.0, 0.0, 3.0]),
        wind_kw=np.array([0.0, 4.0, 2.0]), battery_kwh=np.array([10.0, 0.0, 0.0]),
        battery_kw=np.array([5.0, 0.0, 0.0]), charge_eff=0.95, discharge_eff=0.95,
        water_budget_l_per_day=np.array([60.0, 80.0, 40.0]), rho_max=0.8,
        penalties=Penalties(0.05, 0.0, 0.01, 0.001),
    )
    H, S = steps, 3
    load = rng.uniform(2.0, 12.0, (H, 2, 2))
    fc = flat_forecast(plant, H, load=load, price=rng.uniform(-5, 120, (H, S)),
                       temp_c=rng.uniform(0, 30, (H, S)), carbon_g_per_kwh=rng.uniform(50, 600, (H, S)),
                       wetbulb_c=rng.uniform(0, 20, (H, S)), solar_cf=rng.uniform(0, 0.8, (H, S)),
                       wind_cf=rng.uniform(0, 1, (H, S)))
    state = PlantState.initial(plant, water_day=DAY0)
    return plant, fc, state
