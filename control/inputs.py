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
import pandas as pd

from control.plant import PlantParams
from control.state import check_array

__all__ = ["ControlForecast", "utc_day_index"]

_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def utc_day_index(times: pd.DatetimeIndex) -> np.ndarray:
    """UTC day numbers (days since 1970-01-01) of tz-aware times: ``ControlForecast.day_index``."""
    return ((times - _EPOCH) // pd.Timedelta(days=1)).to_numpy().astype(int)

_SITE_SIGNALS = ("price_eur_per_mwh", "carbon_g_per_kwh", "ewif_l_per_kwh", "temp_c", "wetbulb_c",
                 "solar_cf", "wind_cf")
_MAY_BE_NEGATIVE = ("price_eur_per_mwh", "temp_c", "wetbulb_c")
SUB_STEP_MEAN_RTOL = 1e-9   # sub-step loads average to the hourly load to this relative tolerance


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
        load_sub_req_per_s: arrivals per sub-step of each hour (ServeGen: M = 6 ten-minute
            windows), req/s, ``(H, M, R, K)``; its mean over the M sub-steps is ``load_req_per_s``
            (checked at rtol 1e-9). Realised inputs carry it and the plant dispatches per sub-step;
            None (forecasts may leave it out): the plant takes each hour as one sub-step at the
            hourly mean.
        load_peak_factor: the part of the provisioning and burst levels that is the hour's 10-min
            peak over its mean (≥ 1), ``(H, R, K)``: a fleet-wide, fully correlated factor, unlike
            the forecast's spread (p_q − p50) that the MPC may combine as independent errors
            (``control.group_provision_correlation``), so the MPC divides it out before combining and
            multiplies it back after. None: 1 (the levels hold no peak factor).
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
    load_sub_req_per_s: np.ndarray | None = None
    load_peak_factor: np.ndarray | None = None

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
        if self.load_sub_req_per_s is not None:
            self._validate_sub_steps(plant, steps)
        if self.load_peak_factor is not None:
            peak = check_array("forecast.load_peak_factor", self.load_peak_factor, shape, labels=streams)
            if (peak < 1.0 - 1e-12).any():
                t, r, k = (int(i) for i in np.argwhere(peak < 1.0 - 1e-12)[0])
                raise ValueError(f"forecast.load_peak_factor: {peak[t, r, k]!r} at step {t}, {plant.region_names[r]}, "
                                 f"{plant.class_names[k]}; valid: ≥ 1 (a 10-min peak over the hour's mean)")
            object.__setattr__(self, "load_peak_factor", peak)
        days = np.asarray(self.day_index)
        if days.shape != (H,) or (np.diff(days) < 0).any():
            raise ValueError(f"forecast.day_index: a non-decreasing (H,) = ({H},) array is needed")
        return self

    @property
    def sub_steps(self) -> int:
        """Sub-steps per step M of ``load_sub_req_per_s`` (1 when there is none)."""
        return 1 if self.load_sub_req_per_s is None else int(np.shape(self.load_sub_req_per_s)[1])

    def _validate_sub_steps(self, plant: PlantParams, steps: tuple[str, ...]) -> None:
        """Shape ``(H, M, R, K)`` with M ≥ 1, finite, ≥ 0, and the mean over M = ``load_req_per_s``."""
        sub = np.asarray(self.load_sub_req_per_s)
        R, K = len(plant.region_names), len(plant.class_names)
        M = sub.shape[1] if sub.ndim == 4 and sub.shape[1] >= 1 else 1
        labels = (steps, tuple(f"sub-step {m}" for m in range(M)), plant.region_names, plant.class_names)
        sub = check_array("forecast.load_sub_req_per_s", sub, (self.horizon, M, R, K), labels=labels)
        object.__setattr__(self, "load_sub_req_per_s", sub)
        mean, hourly = sub.mean(axis=1), self.load_req_per_s
        bad = ~np.isclose(mean, hourly, rtol=SUB_STEP_MEAN_RTOL, atol=1e-12)
        if bad.any():
            t, r, k = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"forecast.load_sub_req_per_s: the mean of the {M} sub-steps of step {t}, "
                             f"{plant.region_names[r]}, {plant.class_names[k]} is {mean[t, r, k]!r} req/s, "
                             f"load_req_per_s is {hourly[t, r, k]!r} (they must agree to rtol "
                             f"{SUB_STEP_MEAN_RTOL:g}; {int(bad.sum())} such entries)")

    def peak_factor(self) -> np.ndarray:
        """``load_peak_factor``, ones where there is none, ``(H, R, K)``."""
        if self.load_peak_factor is None:
            return np.ones(np.shape(self.load_req_per_s))
        return np.asarray(self.load_peak_factor)

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
