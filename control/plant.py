"""The plant: coefficients and equations, written once (DESIGN.md §2), evaluated on NumPy or CasADi.

Every equation below takes either NumPy arrays (the simulator, KPIs) or CasADi symbols (the MPC and
the hindsight optimum) and returns the same kind; ``tests/control/test_plant.py`` checks that both
evaluations agree to 1e-9. Vectors are per step: served load per allowed (region, pool, class)
*pair* ``x`` (req/s), active GPUs per pool ``n``, and per-site power flows (kW).

Sign convention (stated once): every power flow, water volume and request count is ≥ 0; the power
balance of a site is ``facility = grid + renewables − curtailed + discharge − charge``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import casadi as ca
import numpy as np

from control.params import Penalties

__all__ = ["PlantParams", "carbon_kg", "delay_req_s", "energy_cost_eur", "facility_kw", "pool_it_kw",
           "pool_work_gpu", "power_balance_residual_kw", "pue", "renewable_kw", "site_total", "soc_next_kwh",
           "stream_served_req_per_s", "water_l", "wue_l_per_kwh"]

L_PER_GAL = 3.785


def _checked_field(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only copy of a ``PlantParams`` array: its shape, finite (``power_cap_kw`` may be
    +inf: no cap) and ≥ 0 (but ``pool_site``) checked; the error names the field and index."""
    arr = np.array(value)
    if arr.shape != shape:
        raise ValueError(f"PlantParams.{name}: shape {arr.shape}, expected {shape}")
    bad = (np.isnan(arr) | (arr == -np.inf) if name == "power_cap_kw" else ~np.isfinite(arr)) \
        if arr.dtype.kind == "f" else np.zeros(arr.shape, dtype=bool)
    if bad.any():
        raise ValueError(f"PlantParams.{name}: non-finite value at index {np.argwhere(bad)[0].tolist()}")
    if arr.dtype.kind in "fi" and name != "pool_site" and (arr < 0).any():
        idx = np.argwhere(arr < 0)[0].tolist()
        raise ValueError(f"PlantParams.{name}: negative value {arr[tuple(idx)]:g} at {idx}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class PlantParams:
    """Every coefficient of the plant (arrays are read-only once built; see ``control.sizing``).

    Index order: sites ``S``, pools ``P``, regions ``R``, classes ``K``.

    Args:
        site_names, region_names, class_names: names in scenario order.
        pool_site: site index of each pool, ``(P,)``.
        pool_gpu: GPU type of each pool.
        gpus_max: GPUs installed per pool, ``(P,)``.
        idle_kw_per_gpu: idle power per active GPU, kW, ``(P,)``.
        it_kw_per_req_per_s: dynamic IT power per served req/s, kW, ``(P, K)``.
        gpu_s_per_req: GPU-seconds one request takes, ``(P, K)``.
        prefill_s: prefill time of one request, s, ``(P, K)``.
        rtt_s: network round trip region → site, s, ``(R, S)``.
        slo_ttft_s: time-to-first-token objective per class, s, ``(K,)``.
        deferrable: whether a class may wait in a backlog, ``(K,)``.
        deadline_steps: steps a deferred request may wait, ``(K,)`` (0 for interactive classes).
        pv_kwp, wind_kw: on-site PV nameplate and contracted wind nameplate, kW, ``(S,)``.
        grid_limit_kw: grid import limit, kW, ``(S,)``.
        battery_kwh, battery_kw: battery energy and power (0 where none), ``(S,)``.
        charge_eff, discharge_eff: one-way battery efficiencies (product = round trip).
        water_budget_l_per_day: on-site + off-site litres per UTC day, ``(S,)``.
        rho_max: utilisation cap of a pool.
        step_h: step length, h.
        pue_switch_temp_c: outside-air cooling below it, mechanical above.
        penalties: prices of drops, SLO misses, water over budget, GPU starts.
        residency_ok: region may be served at site, ``(R, S)`` (data residency).
        class_site_ok: class may be served at site, ``(S, K)`` (a class's avoided sites).
        round_gpus_up: the realised step applies ``ceil(n)`` GPUs (continuous when False).
        gpu_ramp_per_step: most GPUs a pool may start or stop in one step, ``(P,)`` (None: no
            limit, i.e. ``gpus_max``); whole GPUs when ``round_gpus_up``.
        slo_wait_margin_services: service times of queueing a pair must leave room for within
            its SLO to get a variable (0: RTT + prefill alone decide).
        backlog_fill: the dispatcher serves deferrable work a decision left in the backlog on
            the capacity its running GPUs still have (``control.dispatch``).
        power_cap_kw: most facility power per site, kW, ``(S,)`` (+inf: no cap; empty: none anywhere); the MPC
            plans within it (``control.constraints.SitePowerCap``), the plant runs no more GPUs
            than fit and the dispatcher serves no more than fits (``control.dispatch``).
        pool_device: device group of each pool ``(P,)``: an edge device's batch-mode sub-pools
            share one group and its ``gpus_max`` (``control.batch_modes``; empty: a group per pool).
        fixed_mode: each pool is its device's fixed (catalogue) batch mode ``(P,)`` (empty: all).
    """

    site_names: tuple[str, ...]
    region_names: tuple[str, ...]
    class_names: tuple[str, ...]
    pool_site: np.ndarray
    pool_gpu: tuple[str, ...]
    gpus_max: np.ndarray
    idle_kw_per_gpu: np.ndarray
    it_kw_per_req_per_s: np.ndarray
    gpu_s_per_req: np.ndarray
    prefill_s: np.ndarray
    rtt_s: np.ndarray
    slo_ttft_s: np.ndarray
    deferrable: np.ndarray
    deadline_steps: np.ndarray
    pv_kwp: np.ndarray
    wind_kw: np.ndarray
    grid_limit_kw: np.ndarray
    battery_kwh: np.ndarray
    battery_kw: np.ndarray
    water_budget_l_per_day: np.ndarray
    penalties: Penalties = field(default_factory=Penalties)
    charge_eff: float = 1.0
    discharge_eff: float = 1.0
    rho_max: float = 0.8
    step_h: float = 1.0
    pue_switch_temp_c: float = 18.0
    residency_ok: np.ndarray | None = None
    class_site_ok: np.ndarray | None = None
    round_gpus_up: bool = True
    gpu_ramp_per_step: np.ndarray | None = None
    slo_wait_margin_services: float = 0.0
    backlog_fill: bool = False
    power_cap_kw: np.ndarray = field(default_factory=lambda: np.empty(0))
    pool_device: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=int))
    fixed_mode: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))

    def __post_init__(self) -> None:
        S, P, R, K = self.n_sites, len(self.pool_gpu), len(self.region_names), len(self.class_names)
        shapes = {
            "pool_site": (P,), "gpus_max": (P,), "idle_kw_per_gpu": (P,),
            "it_kw_per_req_per_s": (P, K), "gpu_s_per_req": (P, K), "prefill_s": (P, K),
            "rtt_s": (R, S), "slo_ttft_s": (K,), "deferrable": (K,), "deadline_steps": (K,),
            "pv_kwp": (S,), "wind_kw": (S,), "grid_limit_kw": (S,), "battery_kwh": (S,),
            "battery_kw": (S,), "water_budget_l_per_day": (S,),
        }
        optional = {"residency_ok": np.ones((R, S), dtype=bool), "class_site_ok": np.ones((S, K), dtype=bool),
                    "gpu_ramp_per_step": np.array(self.gpus_max, dtype=float), "power_cap_kw": np.full(S, np.inf),
                    "pool_device": np.arange(P), "fixed_mode": np.ones(P, dtype=bool)}
        for name, default in optional.items():
            value = getattr(self, name)
            if value is None or np.size(value) == 0:   # None or empty: the default (e.g. no cap anywhere)
                object.__setattr__(self, name, default)
            shapes[name] = default.shape
        for name, shape in shapes.items():
            object.__setattr__(self, name, _checked_field(name, getattr(self, name), shape))
        if not ((self.pool_site >= 0) & (self.pool_site < S)).all():
            raise ValueError(f"PlantParams.pool_site: indices must be in 0..{S - 1}")
        for g in np.unique(self.pool_device):   # a device group: one site, one count, one fixed mode
            members = self.pool_device == g
            if np.ptp(self.pool_site[members]) or np.ptp(self.gpus_max[members]) or self.fixed_mode[members].sum() != 1:
                raise ValueError(f"PlantParams.pool_device: group {g} must share one site and gpus_max and "
                                 "have exactly one fixed_mode pool")
        if (self.gpu_s_per_req <= 0).any():
            raise ValueError("PlantParams.gpu_s_per_req: every entry must be > 0")
        if not (0 < self.charge_eff <= 1 and 0 < self.discharge_eff <= 1):
            raise ValueError("PlantParams.charge_eff / discharge_eff: must be in (0, 1]")

    # ---------------------------------------------------------------- dimensions and pairs
    @property
    def ramp_limited(self) -> bool:
        """Whether any pool's ramp is below its installed GPUs (the LP then has ramp-down rows)."""
        return bool((self.gpu_ramp_per_step < self.gpus_max).any())

    @property
    def n_sites(self) -> int:
        return len(self.site_names)

    @property
    def n_pools(self) -> int:
        return len(self.pool_gpu)

    @property
    def n_streams(self) -> int:
        """Number of (region, class) streams ``R·K`` (flattened region-major)."""
        return len(self.region_names) * len(self.class_names)

    @property
    def step_s(self) -> float:
        return 3600.0 * self.step_h

    @property
    def pool_names(self) -> tuple[str, ...]:
        return tuple(f"{self.site_names[s]}/{g}" for s, g in zip(self.pool_site, self.pool_gpu, strict=True))

    @cached_property
    def allowed(self) -> np.ndarray:
        """``(R, P, K)`` bool: RTT + prefill + a queueing margin within the class SLO, residency and
        the class's avoided sites (the policy: ``residency_ok``, ``class_site_ok``).

        The margin is ``slo_wait_margin_services`` service times of the pool for the class: a pair
        whose slack is shorter than that would see most of its requests late once the pool queues
        (Erlang-C tail), which the linear latency model cannot see.
        """
        assert self.residency_ok is not None and self.class_site_ok is not None   # by __post_init__
        rtt = self.rtt_s[:, self.pool_site]                      # (R, P)
        margin = self.slo_wait_margin_services * self.gpu_s_per_req      # (P, K)
        ok = rtt[:, :, None] + self.prefill_s[None, :, :] + margin[None] <= self.slo_ttft_s[None, None, :]
        return ok & self.residency_ok[:, self.pool_site][:, :, None] & self.class_site_ok[self.pool_site][None]

    @cached_property
    def battery_sites(self) -> np.ndarray:
        """Indices of the sites with a battery (energy and power > 0)."""
        return np.flatnonzero((self.battery_kwh > 0) & (self.battery_kw > 0))

    @cached_property
    def region_groups(self) -> np.ndarray:
        """``(R,)`` group index of each region: regions whose allowed (pool, class) pairs are the
        same share a group (numbered in order of first appearance)."""
        pattern = self.allowed.reshape(len(self.region_names), -1)
        _, first, inverse = np.unique(pattern, axis=0, return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first))       # renumber groups by first member
        return order[inverse.ravel()]

    def regions_pooled(self) -> PlantParams:
        """The same plant with each group of ``region_groups`` pooled into one region: the same
        allowed pairs, and each site at the shortest RTT of the group (a relaxation of the delay
        only; used for the later steps of a horizon, see ``control._lp``)."""
        groups = self.region_groups
        n = int(groups.max()) + 1
        ok = self.residency_ok
        assert ok is not None   # filled in by __post_init__
        far = float(self.rtt_s.max()) + float(self.slo_ttft_s.max()) + 1.0   # breaks every SLO
        rtt = np.stack([np.where(ok[groups == g], self.rtt_s[groups == g], far).min(axis=0) for g in range(n)])
        names = tuple("+".join(np.asarray(self.region_names)[groups == g]) for g in range(n))
        pooled = replace(self, region_names=names, rtt_s=rtt,
                         residency_ok=np.stack([ok[groups == g].any(axis=0) for g in range(n)]))
        first = np.array([np.flatnonzero(groups == g)[0] for g in range(n)])
        if not np.array_equal(pooled.allowed, self.allowed[first]):   # guards the construction
            raise RuntimeError("pooled regions changed the allowed pairs")
        return pooled

    @cached_property
    def pairs(self) -> np.ndarray:
        """``(m, 3)`` int: the allowed (region, pool, class) triples — the only served variables."""
        return np.argwhere(self.allowed)

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    @cached_property
    def pair_stream(self) -> np.ndarray:
        """Stream index ``r·K + k`` of each pair, ``(m,)``."""
        return self.pairs[:, 0] * len(self.class_names) + self.pairs[:, 2]

    def _incidence(self, rows: np.ndarray, n_rows: int, values: np.ndarray) -> np.ndarray:
        mat = np.zeros((n_rows, self.n_pairs))
        mat[rows, np.arange(self.n_pairs)] = values
        mat.setflags(write=False)
        return mat

    @cached_property
    def pool_energy_matrix(self) -> np.ndarray:
        """``(P, m)``: kW of dynamic IT power per req/s on each pair."""
        p, k = self.pairs[:, 1], self.pairs[:, 2]
        return self._incidence(p, self.n_pools, self.it_kw_per_req_per_s[p, k])

    @cached_property
    def pool_work_matrix(self) -> np.ndarray:
        """``(P, m)``: GPU-seconds per second per req/s on each pair."""
        p, k = self.pairs[:, 1], self.pairs[:, 2]
        return self._incidence(p, self.n_pools, self.gpu_s_per_req[p, k])

    @cached_property
    def stream_matrix(self) -> np.ndarray:
        """``(R·K, m)``: sums served pairs into streams."""
        return self._incidence(self.pair_stream, self.n_streams, np.ones(self.n_pairs))

    @cached_property
    def site_matrix(self) -> np.ndarray:
        """``(S, P)``: sums pools into sites."""
        mat = np.zeros((self.n_sites, self.n_pools))
        mat[self.pool_site, np.arange(self.n_pools)] = 1.0
        mat.setflags(write=False)
        return mat

    @cached_property
    def pair_delay_s(self) -> np.ndarray:
        """``(m,)``: RTT + prefill time of each pair, s (the linear latency model)."""
        r, p, k = self.pairs.T
        return self.rtt_s[r, self.pool_site[p]] + self.prefill_s[p, k]

    @cached_property
    def casadi_matrices(self) -> dict[str, ca.DM]:
        """Sparse CasADi copies of the incidence matrices (built once)."""
        names = ("pool_energy_matrix", "pool_work_matrix", "stream_matrix", "site_matrix")
        return {n: sparse_dm(getattr(self, n)) for n in names}

    def dense_pairs(self, x_pairs: np.ndarray) -> np.ndarray:
        """``(..., m)`` pair values → ``(..., R, P, K)`` with zeros on disallowed pairs."""
        out = np.zeros((*x_pairs.shape[:-1], *self.allowed.shape))
        out[..., self.pairs[:, 0], self.pairs[:, 1], self.pairs[:, 2]] = x_pairs
        return out


# ------------------------------------------------------------------- NumPy / CasADi dispatch
def sparse_dm(mat: np.ndarray) -> ca.DM:
    """A sparse CasADi matrix with ``mat``'s nonzeros (no dense DM on the way: at 1,000 sites the
    pair matrices are 2,000 × 30,000)."""
    r, c = np.nonzero(mat)
    return ca.DM.triplet(r.tolist(), c.tolist(), np.asarray(mat)[r, c].tolist(), *mat.shape)


def _sym(*values: Any) -> bool:
    return any(isinstance(v, ca.SX | ca.MX | ca.DM) for v in values)


def _col(v: Any) -> Any:
    return ca.DM(np.asarray(v, dtype=float)) if isinstance(v, np.ndarray | float | int) else v


def _mul(a: Any, b: Any) -> Any:
    """Elementwise product."""
    return _col(a) * _col(b) if _sym(a, b) else np.asarray(a) * np.asarray(b)


def _mv(plant: PlantParams, name: str, v: Any) -> Any:
    """Matrix ``name`` of the plant times vector ``v``."""
    if _sym(v):
        return ca.mtimes(plant.casadi_matrices[name], v)
    return getattr(plant, name) @ np.asarray(v)


def _sum(v: Any) -> Any:
    return ca.sum1(v) if _sym(v) else float(np.sum(v))


# ------------------------------------------------------------------- equations (one step)
def pue(plant: PlantParams, temp_c: Any) -> Any:
    """Facility PUE at ambient temperature ``temp_c`` (°C), per site (DESIGN.md §2 cooling)."""
    free = 0.0036 * temp_c + 0.064
    mech = 0.0064 * temp_c + 0.075
    if _sym(temp_c):
        return 1.03 + ca.if_else(temp_c < plant.pue_switch_temp_c, free, mech)
    return 1.03 + np.where(np.asarray(temp_c) < plant.pue_switch_temp_c, free, mech)


def wue_l_per_kwh(wetbulb_c: Any) -> Any:
    """On-site water usage effectiveness, L/kWh of IT energy, from wet-bulb temperature (°C)."""
    tw_f = wetbulb_c * 1.8 + 32.0
    wue = 1.2 * (6e-5 * tw_f**3 - 0.01 * tw_f**2 + 0.61 * tw_f - 10.4)
    return ca.fmax(wue, 0.05) if _sym(wue) else np.maximum(wue, 0.05)


def pool_it_kw(plant: PlantParams, x_req_per_s: Any, gpus: Any) -> Any:
    """IT power per pool, kW: idle power of active GPUs + dynamic power of served tokens."""
    return _mv(plant, "pool_energy_matrix", x_req_per_s) + _mul(plant.idle_kw_per_gpu, gpus)


def pool_work_gpu(plant: PlantParams, x_req_per_s: Any) -> Any:
    """GPU-seconds per second each pool needs for the served load (≤ rho_max · GPUs)."""
    return _mv(plant, "pool_work_matrix", x_req_per_s)


def site_total(plant: PlantParams, pool_values: Any) -> Any:
    """Sum a per-pool vector into a per-site vector."""
    return _mv(plant, "site_matrix", pool_values)


def stream_served_req_per_s(plant: PlantParams, x_req_per_s: Any) -> Any:
    """Served req/s per (region, class) stream, ``(R·K,)``."""
    return _mv(plant, "stream_matrix", x_req_per_s)


def facility_kw(pue_value: Any, it_kw: Any) -> Any:
    """Facility power per site, kW = PUE · IT."""
    return _mul(pue_value, it_kw)


def renewable_kw(plant: PlantParams, solar_cf: Any, wind_cf: Any) -> Any:
    """On-site renewables available per site, kW (PV kWp · solar CF + wind kW · wind CF)."""
    return _mul(plant.pv_kwp, solar_cf) + _mul(plant.wind_kw, wind_cf)


def power_balance_residual_kw(facility: Any, grid: Any, renewable: Any, curtailed: Any,
                              charge: Any, discharge: Any) -> Any:
    """``grid + renewables − curtailed + discharge − charge − facility`` per site, kW (= 0)."""
    return grid + renewable - curtailed + discharge - charge - facility


def soc_next_kwh(plant: PlantParams, soc: Any, charge: Any, discharge: Any) -> Any:
    """Battery state of charge after one step, kWh."""
    gain = _mul(plant.charge_eff, charge) - _mul(1.0 / plant.discharge_eff, discharge)
    return soc + gain * plant.step_h


def water_l(plant: PlantParams, wue: Any, it_kw: Any, ewif_l_per_kwh: Any, grid_kw: Any) -> Any:
    """Litres per site in one step: on-site WUE · IT energy + off-site EWIF · grid energy."""
    return (_mul(wue, it_kw) + _mul(ewif_l_per_kwh, grid_kw)) * plant.step_h


def energy_cost_eur(plant: PlantParams, price_eur_per_mwh: Any, grid_kw: Any) -> Any:
    """Energy cost of one step, EUR."""
    return _sum(_mul(price_eur_per_mwh, grid_kw)) * plant.step_h / 1000.0


def carbon_kg(plant: PlantParams, carbon_g_per_kwh: Any, grid_kw: Any) -> Any:
    """Grid emissions of one step, kg CO2."""
    return _sum(_mul(carbon_g_per_kwh, grid_kw)) * plant.step_h / 1000.0


def delay_req_s(plant: PlantParams, x_req_per_s: Any) -> Any:
    """Request-weighted RTT + prefill time of one step, request·seconds (linear latency model)."""
    return _sum(_mul(plant.pair_delay_s, x_req_per_s)) * plant.step_s
