"""Exogenous inputs of the plant over some steps: a forecast for the MPC, or what really happened.

The controller's view of a forecast (DESIGN.md §2 *Uncertainty*): prices, carbon, temperature and
renewables at the median; load at the median (``load_req_per_s``) and at the provisioning quantile
(``load_provision_req_per_s``, default p90). Realised data use the same type with both load arrays
equal. Every array is checked at construction against the plant (shape, NaN/inf, sign) with an error
naming the array, the site or stream, and the step.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from control.plant import PlantParams
from control.state import check_array

__all__ = ["ControlForecast"]

_SITE_SIGNALS = ("price_eur_per_mwh", "carbon_g_per_kwh", "ewif_l_per_kwh", "temp_c", "wetbulb_c",
                 "solar_cf", "wind_cf")
_MAY_BE_NEGATIVE = ("price_eur_per_mwh", "temp_c", "wetbulb_c")


@dataclass(frozen=True, eq=False)
class ControlForecast:
    """Per-step exogenous arrays; step 0 covers ``[t0, t0 + Δt)``.

    Args:
        price_eur_per_mwh, carbon_g_per_kwh, ewif_l_per_kwh, temp_c, wetbulb_c, solar_cf, wind_cf:
            per site, ``(H, S)``; temperatures °C, capacity factors kW/kW.
        load_req_per_s: median arrivals per (region, class), req/s, ``(H, R, K)``.
        load_provision_req_per_s: arrivals GPUs are provisioned for, ``(H, R, K)``.
        day_index: UTC day number (days since 1970-01-01) of each step, ``(H,)``.
        load_burst_req_per_s: a burst level of each stream (an upper quantile well above the
            provisioning one), ``(H, R, K)``; the MPC keeps headroom so that any one stream's
            burst in the applied step is absorbed. None: the provisioning level (no burst reserve).
        plant: the plant the arrays are checked against (not stored).
    """

    price_eur_per_mwh: np.ndarray
    carbon_g_per_kwh: np.ndarray
    ewif_l_per_kwh: np.ndarray
    temp_c: np.ndarray
    wetbulb_c: np.ndarray
    solar_cf: np.ndarray
    wind_cf: np.ndarray
    load_req_per_s: np.ndarray
    load_provision_req_per_s: np.ndarray
    day_index: np.ndarray
    load_burst_req_per_s: np.ndarray | None = None

    @property
    def horizon(self) -> int:
        return int(np.shape(self.day_index)[0])

    def validate(self, plant: PlantParams, min_steps: int = 1) -> ControlForecast:
        """Check every array against ``plant``; return self (arrays become read-only)."""
        H = self.horizon
        if H < min_steps:
            raise ValueError(f"forecast: {H} steps, at least {min_steps} needed")
        steps = tuple(f"step {t}" for t in range(H))
        for name in _SITE_SIGNALS:
            arr = check_array(f"forecast.{name}", getattr(self, name), (H, plant.n_sites),
                              nonneg=name not in _MAY_BE_NEGATIVE, labels=(steps, plant.site_names))
            object.__setattr__(self, name, arr)
        streams = (steps, plant.region_names, plant.class_names)
        shape = (H, len(plant.region_names), len(plant.class_names))
        if self.load_burst_req_per_s is None:
            object.__setattr__(self, "load_burst_req_per_s", np.asarray(self.load_provision_req_per_s))
        for name in ("load_req_per_s", "load_provision_req_per_s", "load_burst_req_per_s"):
            object.__setattr__(self, name, check_array(f"forecast.{name}", getattr(self, name), shape,
                                                       labels=streams))
        days = np.asarray(self.day_index)
        if days.shape != (H,) or (np.diff(days) < 0).any():
            raise ValueError(f"forecast.day_index: a non-decreasing (H,) = ({H},) array is needed")
        return self

    def window(self, start: int, steps: int) -> ControlForecast:
        """Steps ``start … start + steps − 1`` (an error when they are not all there)."""
        if start < 0 or start + steps > self.horizon:
            raise ValueError(f"forecast.window: steps {start}..{start + steps - 1} requested, "
                             f"the forecast has steps 0..{self.horizon - 1}")
        return replace(self, **{f.name: np.asarray(getattr(self, f.name))[start:start + steps]
                                for f in fields(self) if getattr(self, f.name) is not None})

    def renewable_kw(self, plant: PlantParams) -> np.ndarray:
        """Available on-site renewables per step and site, kW, ``(H, S)``."""
        return self.solar_cf * plant.pv_kwp + self.wind_cf * plant.wind_kw
