"""Constraint families of the allocation LP: each family's rows and their bounds in one place.

A family is one kind of limit, on the LP's own symbols (``control._lp.LinearProgram``): it says
whether a plant has it (``applies``), builds its rows per LP step (``rows``: CasADi expressions
of the decision blocks and the per-solve parameters the LP already has, e.g. ``pue``) and gives
their bounds from the plant, the state and the forecast (``bounds``). The LP adds the rows of every
family in ``FAMILIES`` that applies, under the family's ``name``; ``AllocationMPC`` fills the bounds
at every solve. A new limit is one plant field (``control.plant.PlantParams``), one family here
and, when it is physical, the dispatcher's share of it (``control.dispatch``) — the simulator and
the hindsight references then honour it as the MPC does.

The older families (demand, backlog, capacity, balance, ...) are still built in ``_lp._rows`` and
bounded in ``_mpc_bounds``; they move here one at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import casadi as ca
import numpy as np
from numpy.typing import ArrayLike

from control import plant as pl
from control.batch_modes import shared_device_groups
from control.inputs import ControlForecast
from control.plant import PlantParams
from control.state import PlantState

if TYPE_CHECKING:
    from control._lp import LinearProgram

__all__ = ["FAMILIES", "ConstraintFamily", "DailyWaterBudget", "SharedDevices", "SitePowerCap"]


class ConstraintFamily(Protocol):
    """One kind of limit: rows ``lo ≤ g(x, p) ≤ hi`` of the LP (module docstring)."""

    name: str

    def applies(self, plant: PlantParams) -> bool:
        """Whether the plant has this limit (no rows otherwise)."""
        ...

    def rows(self, lp: LinearProgram) -> list[Any]:
        """The rows, one CasADi column per block of equal width (usually one per LP step)."""
        ...

    def bounds(self, plant: PlantParams, lp: LinearProgram, state: PlantState,
               fc: ControlForecast) -> tuple[ArrayLike, ArrayLike]:
        """``lo, hi`` broadcastable to the rows' ``(blocks, width)``."""
        ...


class SitePowerCap:
    """Facility power of each capped site ≤ its cap in every LP step, kW:
    PUE × (idle kW per active GPU × GPUs + dynamic kW per served req/s × req/s) ≤ ``power_cap_kw``
    (``sites.X.power_cap_kw``; sites without a cap have no row). A pooled tail block holds its mean
    power, a hindsight sub-step its own."""

    name = "site_power_cap_kw"

    def applies(self, plant: PlantParams) -> bool:
        return bool(np.isfinite(plant.power_cap_kw).any())

    def rows(self, lp: LinearProgram) -> list[Any]:
        capped = np.flatnonzero(np.isfinite(lp.plant.power_cap_kw)).tolist()
        return [pl.facility_kw(lp.p("pue", t), lp.it_kw(t))[capped] for t in range(lp.d.H)]

    def bounds(self, plant: PlantParams, lp: LinearProgram, state: PlantState,
               fc: ControlForecast) -> tuple[ArrayLike, ArrayLike]:
        return -np.inf, plant.power_cap_kw[np.isfinite(plant.power_cap_kw)]


class DailyWaterBudget:
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


class SharedDevices:
    """GPUs running over the batch modes of one site's edge devices ≤ the devices installed, in
    every LP step: Σ_modes n[pool, t] ≤ ``gpus_max`` (``control.batch_modes``; devices without
    modes have no row). Each mode's own bound ``n ≤ gpus_max`` stays the box bound."""

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


#: The families every LP carries (those that apply to its plant).
FAMILIES: tuple[ConstraintFamily, ...] = (DailyWaterBudget(), SitePowerCap(), SharedDevices())
