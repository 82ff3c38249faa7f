"""Constraint families of the allocation LP and the plant: each family's rows, bounds and plant-side
limits in one place.

A family is one kind of limit. On the LP's own symbols (``control._lp.LinearProgram``) it says
whether a plant has it (``applies``), builds its rows per LP step (``rows``: CasADi expressions of
the decision blocks and the per-solve parameters the LP already has, e.g. ``pue``) and gives their
bounds from the plant, the state and the forecast (``bounds``): the LP adds the rows of every
family in ``FAMILIES`` that applies, under the family's ``name``, and ``AllocationMPC`` fills the
bounds at every solve. On the plant it may lower the GPUs that run (``limit_gpus``: the realised
step's ``running_gpus``) and what running GPUs may serve in a sub-step (``limit_capacity_gpu_s``:
the dispatcher's ``pool_capacity_gpu_s``); both default to no limit. A new limit is one plant field
(``control.plant.PlantParams``) and one family here: the MPC, the simulator, the dispatcher and the
hindsight references then honour it alike.

The LP's routing rows (demand and backlog balances per stream, pool capacity and the headroom
rows, group shares) and the move-blocking rows of the hindsight references (holds) are built in
``_lp._rows`` and bounded in ``_mpc_bounds``: they define what the decision variables mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import casadi as ca
import numpy as np
from numpy.typing import ArrayLike

from control import plant as pl
from control.batch_modes import shared_device_groups, within_shared_devices
from control.inputs import ControlForecast
from control.plant import PlantParams
from control.state import PlantState

if TYPE_CHECKING:
    from control._lp import LinearProgram

__all__ = ["FAMILIES", "BatteryEnergy", "ConstraintFamily", "DailyWaterBudget", "GpuRamp", "GpuStarts",
           "PowerBalance", "SharedDevices", "SitePowerCap", "pool_capacity_gpu_s", "running_gpus"]


class ConstraintFamily:
    """One kind of limit: rows ``lo ≤ g(x, p) ≤ hi`` of the LP and its plant side (module docstring)."""

    name = ""

    def applies(self, plant: PlantParams) -> bool:
        """Whether the plant has this limit (no rows, no plant-side effect otherwise)."""
        return True

    def rows(self, lp: LinearProgram) -> list[Any]:
        """The rows, one CasADi column per block of equal width (usually one per LP step)."""
        raise NotImplementedError

    def bounds(self, plant: PlantParams, lp: LinearProgram, state: PlantState,
               fc: ControlForecast) -> tuple[ArrayLike, ArrayLike]:
        """``lo, hi`` broadcastable to the rows' ``(blocks, width)``."""
        raise NotImplementedError

    def limit_gpus(self, plant: PlantParams, gpus: np.ndarray, pue_value: np.ndarray) -> np.ndarray:
        """The GPUs per pool that may run under the limit (the plant applies at most these)."""
        return gpus

    def limit_capacity_gpu_s(self, plant: PlantParams, cap_gpu_s: np.ndarray, gpus: np.ndarray,
                             pue_value: np.ndarray, sub_s: float) -> np.ndarray:
        """Each pool's capacity in a sub-step under the limit, GPU-seconds ``(P,)``."""
        return cap_gpu_s


class PowerBalance(ConstraintFamily):
    """Each site's power balance in every LP step, kW: facility power − grid import + curtailment −
    battery charge + discharge = −renewable (on-site PV and contracted wind); with holds, summed
    over each block (the block's renewable energy)."""

    name = "power_balance_kw"

    def rows(self, lp: LinearProgram) -> list[Any]:
        x, d = lp.x, lp.d
        at_site = pl.sparse_dm(np.eye(d.S)[:, lp.plant.battery_sites])  # (S, B): battery flows into site balances
        per_step = [pl.power_balance_residual_kw(pl.facility_kw(lp.p("pue", t), lp.it_kw(t)), x("g", t), 0,
                                                 x("c", t), ca.mtimes(at_site, x("bc", t)),
                                                 ca.mtimes(at_site, x("bd", t))) for t in range(d.H)]
        return lp.per_block(per_step)

    def bounds(self, plant: PlantParams, lp: LinearProgram, state: PlantState,
               fc: ControlForecast) -> tuple[ArrayLike, ArrayLike]:
        ren_kw = -fc.renewable_kw(plant)
        if lp.hold_steps > 1:   # balanced per block: the block's renewable energy
            ren_kw = np.add.reduceat(ren_kw, np.flatnonzero(lp.block_start), axis=0)
        return ren_kw, ren_kw


class BatteryEnergy(ConstraintFamily):
    """Each battery's state of charge, kWh: soc[t] = soc[t − 1] + charged × η_c − discharged ÷ η_d,
    from the state's charge at step 0 (sites with a battery only)."""

    name = "battery_soc_kwh"

    def rows(self, lp: LinearProgram) -> list[Any]:
        x = lp.x
        return [x("soc", t) - pl.soc_next_kwh(lp.step_plant(t)[0], x("soc", t - 1) if t else 0, x("bc", t),
                                              x("bd", t)) for t in range(lp.d.H)]

    def bounds(self, plant: PlantParams, lp: LinearProgram, state: PlantState,
               fc: ControlForecast) -> tuple[ArrayLike, ArrayLike]:
        soc_kwh = np.zeros((lp.d.H, lp.d.B))
        soc_kwh[0] = state.soc_kwh[plant.battery_sites]
        return soc_kwh, soc_kwh


class GpuStarts(ConstraintFamily):
    """GPUs started per pool and LP step ≥ GPUs running − GPUs running one step before (from the
    state's running GPUs at step 0); starts are priced by ``penalties.gpu_start_eur`` and bounded by
    the ramp-up limit (``control._mpc_bounds.plant_bounds``)."""

    name = "gpus_started"

    def rows(self, lp: LinearProgram) -> list[Any]:
        x = lp.x
        return [x("st", t) - x("n", t) + (x("n", t - 1) if t else 0) for t in range(lp.d.H)]

    def bounds(self, plant: PlantParams, lp: LinearProgram, state: PlantState,
               fc: ControlForecast) -> tuple[ArrayLike, ArrayLike]:
        start = np.zeros((lp.d.H, lp.d.P))
        start[0] = -state.gpus_active
        return start, np.inf


class GpuRamp(ConstraintFamily):
    """GPUs stopped per pool and LP step ≤ the ramp limit × the step's hours (ramp-up is the bound on
    the starts; plants whose ramp is the installed count have no rows)."""

    name = "gpus_stopped"

    def applies(self, plant: PlantParams) -> bool:
        return plant.ramp_limited

    def rows(self, lp: LinearProgram) -> list[Any]:
        x = lp.x
        return [(x("n", t - 1) if t else 0) - x("n", t) for t in range(lp.d.H)]

    def bounds(self, plant: PlantParams, lp: LinearProgram, state: PlantState,
               fc: ControlForecast) -> tuple[ArrayLike, ArrayLike]:
        assert plant.gpu_ramp_per_step is not None   # filled in by PlantParams.__post_init__
        stop = lp.step_hours[:, None] * plant.gpu_ramp_per_step[None, :]
        stop[0] -= state.gpus_active
        return -np.inf, stop


class SitePowerCap(ConstraintFamily):
    """Facility power of each capped site ≤ its cap in every LP step, kW:
    PUE × (idle kW per active GPU × GPUs + dynamic kW per served req/s × req/s) ≤ ``power_cap_kw``
    (``sites.X.power_cap_kw``; sites without a cap have no row). A pooled tail block holds its mean
    power, a hindsight sub-step its own.

    Plant side: a site whose running GPUs alone would draw more than the cap when idle runs its
    pools scaled down by one factor (whole GPUs rounded down); in a sub-step the site lends its
    pools the dynamic power left under the cap (cap ÷ PUE − idle kW of the running GPUs), split in
    proportion to each pool's full-load dynamic power, as GPU-seconds at the pool's highest kW per
    busy GPU, so no sub-step draws more than the cap."""

    name = "site_power_cap_kw"

    def applies(self, plant: PlantParams) -> bool:
        return bool(np.isfinite(plant.power_cap_kw).any())

    def rows(self, lp: LinearProgram) -> list[Any]:
        capped = np.flatnonzero(np.isfinite(lp.plant.power_cap_kw)).tolist()
        return [pl.facility_kw(lp.p("pue", t), lp.it_kw(t))[capped] for t in range(lp.d.H)]

    def bounds(self, plant: PlantParams, lp: LinearProgram, state: PlantState,
               fc: ControlForecast) -> tuple[ArrayLike, ArrayLike]:
        return -np.inf, plant.power_cap_kw[np.isfinite(plant.power_cap_kw)]

    def limit_gpus(self, plant: PlantParams, gpus: np.ndarray, pue_value: np.ndarray) -> np.ndarray:
        fac_kw = np.asarray(pue_value, dtype=float) * pl.site_total(plant, plant.idle_kw_per_gpu * gpus)
        over = fac_kw > plant.power_cap_kw
        scale = np.where(over, plant.power_cap_kw / np.where(over, fac_kw, 1.0), 1.0)[plant.pool_site]
        n = gpus * scale
        return np.where(scale < 1.0, np.floor(n + 1e-9) if plant.round_gpus_up else n, gpus)

    def limit_capacity_gpu_s(self, plant: PlantParams, cap_gpu_s: np.ndarray, gpus: np.ndarray,
                             pue_value: np.ndarray, sub_s: float) -> np.ndarray:
        idle_kw = pl.site_total(plant, plant.idle_kw_per_gpu * np.asarray(gpus, dtype=float))
        room_kw = np.maximum(plant.power_cap_kw / np.asarray(pue_value, dtype=float) - idle_kw, 0.0)   # (S,)
        kw_per_busy_gpu = (plant.it_kw_per_req_per_s / plant.gpu_s_per_req).max(axis=1)    # (P,)
        full_kw = cap_gpu_s / sub_s * kw_per_busy_gpu
        site_full_kw = pl.site_total(plant, full_kw)[plant.pool_site]
        part = np.divide(full_kw, site_full_kw, out=np.zeros_like(full_kw), where=site_full_kw > 0)
        capped = np.isfinite(room_kw)[plant.pool_site]    # pools at sites without a cap keep cap_gpu_s
        room_kw_pool = np.where(capped, room_kw[plant.pool_site], 0.0) * part
        room_gpu_s = np.divide(room_kw_pool * sub_s, kw_per_busy_gpu, out=np.full_like(part, np.inf), where=capped)
        return np.minimum(cap_gpu_s, room_gpu_s)


class DailyWaterBudget(ConstraintFamily):
    """Litres over each site's daily budget ``wo[s, day]`` ≥ the day's on-site + off-site water −
    the budget (the water already used today counts on day 0); ``wo`` is priced by
    ``penalties.water_eur_per_l``. One row per (site, UTC day), site fastest."""

    name = "water_l_per_day"

    def applies(self, plant: PlantParams) -> bool:
        return True

    def rows(self, lp: LinearProgram) -> list[Any]:
        d = lp.d
        over = ca.reshape(lp.x("wo"), d.S, d.n_days)
        total = 0
        for t in range(d.H):
            total = total + ca.mtimes(lp.water_step_l(t), lp.p("daymask", t).T)
        return [ca.vec(over - total)]

    def bounds(self, plant: PlantParams, lp: LinearProgram, state: PlantState,
               fc: ControlForecast) -> tuple[ArrayLike, ArrayLike]:
        used = state.water_used_today_l if int(fc.day_index[0]) == state.water_day else 0.0
        lo = -np.repeat(plant.water_budget_l_per_day[None, :], lp.d.n_days, axis=0)
        lo[0] += used
        return lo.ravel()[None, :], np.inf


class SharedDevices(ConstraintFamily):
    """GPUs running over the batch modes of one site's edge devices ≤ the devices installed, in
    every LP step: Σ_modes n[pool, t] ≤ ``gpus_max`` (``control.batch_modes``; devices without
    modes have no row). Each mode's own bound ``n ≤ gpus_max`` stays the box bound. Plant side: a
    device group asked for more GPUs than it has is scaled down to its count
    (``control.batch_modes.within_shared_devices``)."""

    name = "shared_devices"

    def applies(self, plant: PlantParams) -> bool:
        return bool(shared_device_groups(plant))

    def rows(self, lp: LinearProgram) -> list[Any]:
        groups = shared_device_groups(lp.plant)
        member = np.zeros((len(groups), lp.plant.n_pools))
        for i, group in enumerate(groups):
            member[i, group] = 1.0
        return [ca.mtimes(ca.DM(member), lp.x("n", t)) for t in range(lp.d.H)]

    def bounds(self, plant: PlantParams, lp: LinearProgram, state: PlantState,
               fc: ControlForecast) -> tuple[ArrayLike, ArrayLike]:
        return -np.inf, np.array([plant.gpus_max[g[0]] for g in shared_device_groups(plant)])

    def limit_gpus(self, plant: PlantParams, gpus: np.ndarray, pue_value: np.ndarray) -> np.ndarray:
        return within_shared_devices(plant, gpus)


#: The families every LP carries (those that apply to its plant).
FAMILIES: tuple[ConstraintFamily, ...] = (PowerBalance(), BatteryEnergy(), GpuStarts(), GpuRamp(), DailyWaterBudget(),
                                          SitePowerCap(), SharedDevices())


def running_gpus(plant: PlantParams, gpus: np.ndarray, pue_value: np.ndarray) -> np.ndarray:
    """The GPUs per pool that run: ``gpus`` within every applying family's limit (in ``FAMILIES`` order)."""
    for family in FAMILIES:
        if family.applies(plant):
            gpus = family.limit_gpus(plant, gpus, pue_value)
    return gpus


def pool_capacity_gpu_s(plant: PlantParams, gpus: np.ndarray, pue_value: np.ndarray, sub_s: float) -> np.ndarray:
    """Each pool's capacity in a sub-step, GPU-seconds ``(P,)``: ``rho_max × gpus × sub_s`` within
    every applying family's limit (the dispatcher's capacity)."""
    cap = plant.rho_max * np.asarray(gpus, dtype=float) * sub_s
    for family in FAMILIES:
        if family.applies(plant):
            cap = family.limit_capacity_gpu_s(plant, cap, gpus, pue_value, sub_s)
    return cap
