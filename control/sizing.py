"""Plant sizes from the scenario, the hardware catalogue and the recorded load (DESIGN.md §2b).

A pure function: GPU counts per pool so that total capacity at ``rho_max`` is ``capacity_margin``
× the recorded peak load (the largest 10-min total), split over sites by ``capacity_weight`` (and
evenly over a site's pools); edge pools may be sized on another (the unscaled) peak, so that the
fleet factor leaves edge device counts as the trace gives them. PV kWp, contracted wind kW, grid
import limit and battery from ``Sizing`` and each site's peak IT / facility power (all GPUs busy;
facility at the PUE of ``design_temp_c``). ``fleet_load_factor`` finds the load factor that makes
the installed datacentre GPUs ``sizing.target_datacentre_gpus``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from control import batch_modes
from control.params import ControlSettings, HardwareCatalogue, Penalties
from control.plant import PlantParams, pue
from control.site_policy import check_every_stream_has_a_pool, policy_masks
from forecast.scenario import Scenario
from forecast.schema import ConfigError

__all__ = ["TokenStats", "fleet_load_factor", "great_circle_km", "provision_gpus", "rtt_s", "size_plant",
           "stream_work_req_per_s"]

EARTH_RADIUS_KM = 6371.0
ROUTE_FACTOR = 1.5
FIBRE_KM_PER_MS = 200.0
RTT_BASE_S = 0.005


@dataclass(frozen=True)
class TokenStats:
    """Mean tokens per request of one trace (``conv`` or ``code``)."""

    prompt_tokens: float
    output_tokens: float


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance, km (coordinates in degrees)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def rtt_s(distance_km: float) -> float:
    """Network round trip, s: 5 ms + 2 × distance × 1.5 (route factor) ÷ 200 km/ms."""
    return RTT_BASE_S + 2 * distance_km * ROUTE_FACTOR / FIBRE_KM_PER_MS / 1000.0


def _class_tokens(scenario: Scenario, tokens: dict[str, TokenStats]) -> tuple[np.ndarray, np.ndarray]:
    missing = sorted({k.tokens for k in scenario.classes} - set(tokens))
    if missing:
        raise ConfigError(f"size_plant: token statistics missing for trace(s) {missing}")
    prompt = np.array([tokens[k.tokens].prompt_tokens for k in scenario.classes])
    output = np.array([tokens[k.tokens].output_tokens for k in scenario.classes])
    return prompt, output


def _checked_peaks_req_per_s(K: int, peak_load_req_per_s: np.ndarray,
                             edge_peak_load_req_per_s: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The peak and the edge pools' peak per class, req/s ``(K,)`` (the edge one defaults to the peak).

    Raises:
        ConfigError: either is not ``K`` finite values ≥ 0.
    """
    peak = np.asarray(peak_load_req_per_s, dtype=float)
    edge_peak = peak if edge_peak_load_req_per_s is None else np.asarray(edge_peak_load_req_per_s, dtype=float)
    for name, arr in (("peak_load_req_per_s", peak), ("edge_peak_load_req_per_s", edge_peak)):
        if arr.shape != (K,) or not np.isfinite(arr).all() or (arr < 0).any():
            raise ConfigError(f"size_plant: {name} must be {K} finite values ≥ 0, got {arr}")
    return peak, edge_peak


def size_plant(scenario: Scenario, hardware: HardwareCatalogue, control: ControlSettings,
               penalties: Penalties, peak_load_req_per_s: np.ndarray, tokens: dict[str, TokenStats],
               design_temp_c: float = 35.0, edge_peak_load_req_per_s: np.ndarray | None = None) -> PlantParams:
    """Build the plant's coefficients.

    Args:
        scenario: sites, regions, classes and sizing rules.
        hardware: the GPU catalogue.
        control: rho_max, step length and PUE switch temperature.
        penalties: soft-constraint prices.
        peak_load_req_per_s: load per class at the recorded 10-min window of the highest total,
            req/s, ``(K,)``.
        tokens: mean prompt/output tokens per trace name.
        design_temp_c: ambient temperature for the peak facility power (grid limit, battery), °C.
        edge_peak_load_req_per_s: the peak the edge pools are sized on, ``(K,)`` (the fleet's
            unscaled peak: edge device counts do not follow the fleet factor); None: ``peak``.
    """
    peak, edge_peak = _checked_peaks_req_per_s(len(scenario.classes), peak_load_req_per_s,
                                               edge_peak_load_req_per_s)
    prompt, output = _class_tokens(scenario, tokens)
    pool_site, pool_gpu, pool_device, fixed = batch_modes.pools(scenario, hardware)
    gpus = [batch_modes.gpu_for(hardware, g) for g in pool_gpu]
    gpu_s = np.array([prompt / g.prefill_tok_per_s + output / g.decode_tok_per_s for g in gpus])
    energy_kw = np.array([(prompt * g.prefill_j_per_token + output * g.decode_j_per_token) / 1000.0
                          for g in gpus])
    weights = np.array([s.capacity_weight for s in scenario.sites])
    weights = weights / weights.sum()
    per_pool = np.array([weights[s] / len(scenario.sites[s].pools) for s in pool_site])
    pool_peak = np.where(np.array([g.kind == "edge" for g in gpus])[:, None], edge_peak[None, :], peak[None, :])
    need = np.einsum("pk,pk->p", gpu_s, pool_peak)
    gpus_max = np.ceil(scenario.sizing.capacity_margin * per_pool * need / control.rho_max - 1e-9)
    gpus_max = gpus_max[np.flatnonzero(fixed)][pool_device]      # a device's modes: its fixed mode's count
    busy_kw = np.where(fixed, [g.busy_w for g in gpus], 0.0) * gpus_max / 1000.0    # each device once
    site_it_kw = np.bincount(pool_site, weights=busy_kw, minlength=len(scenario.sites))
    prefill_s = np.array([batch_modes.mode_batch(n) * prompt / g.prefill_tok_per_s
                          for n, g in zip(pool_gpu, gpus, strict=True)])
    plant = _assemble(scenario, control, penalties, np.array(pool_site), tuple(pool_gpu), gpus_max,
                      np.array([g.idle_w for g in gpus]) / 1000.0, energy_kw, gpu_s, prefill_s, site_it_kw,
                      design_temp_c)
    return replace(plant, pool_device=np.array(pool_device), fixed_mode=np.array(fixed))


def _assemble(scenario: Scenario, control: ControlSettings, penalties: Penalties, pool_site: np.ndarray,
              pool_gpu: tuple[str, ...], gpus_max: np.ndarray, idle_kw: np.ndarray, energy_kw: np.ndarray,
              gpu_s: np.ndarray, prefill_s: np.ndarray, site_it_kw: np.ndarray,
              design_temp_c: float) -> PlantParams:
    sz = scenario.sizing
    rtt = np.array([[rtt_s(great_circle_km(r.lat_deg, r.lon_deg, s.lat_deg, s.lon_deg))
                     for s in scenario.sites] for r in scenario.regions])
    has_battery = np.array([s.battery for s in scenario.sites])
    residency_ok, class_site_ok = policy_masks(scenario)
    plant = PlantParams(
        site_names=scenario.site_names, region_names=scenario.region_names,
        class_names=scenario.class_names, pool_site=pool_site, pool_gpu=pool_gpu,
        gpus_max=gpus_max, idle_kw_per_gpu=idle_kw, it_kw_per_req_per_s=energy_kw,
        gpu_s_per_req=gpu_s, prefill_s=prefill_s, rtt_s=rtt,
        slo_ttft_s=np.array([k.slo_ttft_s for k in scenario.classes]),
        deferrable=np.array([k.deferrable for k in scenario.classes]),
        deadline_steps=np.array([int(round(k.deadline_h / control.step_h)) for k in scenario.classes]),
        pv_kwp=sz.pv_fraction_of_peak_it * site_it_kw,
        wind_kw=sz.wind_fraction_of_peak_it * site_it_kw,
        grid_limit_kw=np.zeros(len(site_it_kw)), battery_kwh=np.zeros(len(site_it_kw)),
        battery_kw=np.zeros(len(site_it_kw)),
        water_budget_l_per_day=np.array([s.water_budget_l_per_day for s in scenario.sites]),
        power_cap_kw=np.array([np.inf if s.power_cap_kw is None else s.power_cap_kw for s in scenario.sites]),
        penalties=penalties, charge_eff=math.sqrt(sz.battery_round_trip),
        discharge_eff=math.sqrt(sz.battery_round_trip), rho_max=control.rho_max,
        slo_wait_margin_services=control.slo_wait_margin_services, backlog_fill=control.backlog_fill,
        step_h=control.step_h, pue_switch_temp_c=control.pue_switch_temp_c, residency_ok=residency_ok,
        class_site_ok=class_site_ok,
    )
    check_every_stream_has_a_pool(scenario, plant)
    peak_facility_kw = pue(plant, np.full(len(site_it_kw), design_temp_c)) * site_it_kw
    battery_kw = np.where(has_battery, peak_facility_kw, 0.0)
    ramp = np.maximum(np.ceil(control.gpu_ramp_fraction_per_step * gpus_max - 1e-9), 1.0)
    return replace(plant, grid_limit_kw=sz.grid_limit_factor * peak_facility_kw,
                   battery_kw=battery_kw, battery_kwh=battery_kw * sz.battery_hours,
                   gpu_ramp_per_step=np.minimum(ramp, gpus_max))


def provision_gpus(plant: PlantParams, share: np.ndarray, load_req_per_s: np.ndarray, headroom: float,
                   backlog_req: np.ndarray | None = None) -> np.ndarray:
    """GPUs per pool for an hour: THE sizing rule every controller applies (load quantile + headroom).

    The work the shares route of ``load_req_per_s`` (the provisioning level: the load quantile ×
    the hour's 10-min peak factor) and, for deferrable classes, of the backlog (as the plant routes
    it), at ``rho_max``, times ``1 + headroom``; at most the installed GPUs. Continuous: the plant
    rounds up to whole GPUs.

    Args:
        plant: coefficients.
        share: each (region, class) stream's shares over the pools ``(R, P, K)``.
        load_req_per_s: arrivals to provision for per stream, req/s ``(R, K)``.
        headroom: spare capacity on top, a fraction of the provisioned work (≥ 0;
            ``control.provision_headroom``).
        backlog_req: deferrable backlog at the hour's start per stream, requests ``(R, K)``
            (None: none).

    Raises:
        ValueError: a negative or non-finite headroom, or arrays of the wrong shape.
    """
    if not (np.isfinite(headroom) and headroom >= 0):
        raise ValueError(f"provision_gpus: headroom {headroom}; valid: a finite fraction ≥ 0")
    R, K = len(plant.region_names), len(plant.class_names)
    load = np.asarray(load_req_per_s, dtype=float)
    share = np.asarray(share, dtype=float)
    if load.shape != (R, K) or share.shape != (R, plant.n_pools, K):
        raise ValueError(f"provision_gpus: load {load.shape} / share {share.shape}; "
                         f"expected ({R}, {K}) / ({R}, {plant.n_pools}, {K})")
    work = stream_work_req_per_s(plant, load, backlog_req)
    need = np.einsum("rpk,rk,pk->p", share, work, plant.gpu_s_per_req) / plant.rho_max   # GPUs at rho_max
    return np.minimum(need * (1.0 + headroom), plant.gpus_max)


def stream_work_req_per_s(plant: PlantParams, load_req_per_s: np.ndarray,
                          backlog_req: np.ndarray | None) -> np.ndarray:
    """Work of each stream in a step, req/s ``(…, R, K)``: ``load_req_per_s`` plus, for deferrable
    classes, the backlog ``(R, K)`` spread over the step (as the plant offers it; None: none)."""
    load = np.asarray(load_req_per_s, dtype=float)
    if backlog_req is None:
        return load
    return load + np.where(plant.deferrable[None, :], np.asarray(backlog_req, dtype=float), 0.0) / plant.step_s


def fleet_load_factor(scenario: Scenario, hardware: HardwareCatalogue, control: ControlSettings,
                      penalties: Penalties, peak_load_req_per_s: np.ndarray,
                      tokens: dict[str, TokenStats]) -> float:
    """The load factor f that makes the installed datacentre GPUs ``sizing.target_datacentre_gpus``.

    ``size_plant`` on ``f × peak`` (edge pools on the unscaled peak) gives the datacentre pools'
    GPUs; they grow linearly with f up to the whole-GPU rounding, so f = target ÷ (GPUs at f = 1),
    corrected until the count is within 1 % of the target (bisection if the corrections circle).

    Args:
        scenario, hardware, control, penalties, tokens: as for ``size_plant``.
        peak_load_req_per_s: the unscaled recorded 10-min peak per class, req/s, ``(K,)``.

    Returns:
        f (1.0 when the target is 0: no scaling).

    Raises:
        ConfigError: no datacentre pool, or a target no factor reaches within 1 % (names the key).
    """
    target = scenario.sizing.target_datacentre_gpus
    if target == 0:
        return 1.0
    peak = np.asarray(peak_load_req_per_s, dtype=float)
    dc = np.array([hardware.get(g).kind == "datacentre" for s in scenario.sites for g in s.pools])

    def installed(f: float) -> float:
        plant = size_plant(scenario, hardware, control, penalties, f * peak, tokens,
                           edge_peak_load_req_per_s=peak)
        return float(plant.gpus_max[[batch_modes.gpu_for(hardware, g).kind == "datacentre"
                                     for g in plant.pool_gpu]].sum())

    if not dc.any() or installed(1.0) <= 0:
        raise ConfigError(f"sizing.target_datacentre_gpus={target}: the scenario has no datacentre pool "
                          "(or no load) to scale; set it to 0")
    if 1.01 * target < dc.sum():
        raise ConfigError(f"sizing.target_datacentre_gpus={target}: fewer than the {int(dc.sum())} "
                          f"datacentre pools (each has at least one GPU); valid: 0 or ≥ {int(dc.sum())}")
    return _factor_for_target(installed, target, int(dc.sum()))


def _factor_for_target(installed: Callable[[float], float], target: int, n_dc_pools: int) -> float:
    """The factor f whose ``installed(f)`` datacentre GPUs are within 1 % of ``target``: the linear
    correction f × target ÷ GPUs, bisection when it leaves the bracket (at most 60 tries).

    Raises:
        ConfigError: no factor reaches the target within 1 %.
    """
    f, lo, hi = 1.0, 0.0, math.inf
    for _ in range(60):
        n = installed(f)
        if abs(n - target) <= 0.01 * target:
            return f
        lo, hi = (f, hi) if n < target else (lo, f)
        step = f * target / n if n > 0 else 2 * f
        f = step if lo < step < hi else (lo + hi) / 2 if math.isfinite(hi) else 2 * f
    raise ConfigError(f"sizing.target_datacentre_gpus={target}: no load factor gives within 1 % of "
                      f"{target} datacentre GPUs (whole GPUs per pool over {n_dc_pools} pools: near "
                      f"{installed(f):.0f} at factor {f:.4g}); choose another target or 0")
