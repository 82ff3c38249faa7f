"""The plant and its exogenous inputs from a scenario's real data (``forecast.dataset``).

* ``plant_for(config, dataset)``: ``size_plant`` with the recorded load's peak (per class, at the
  hour of the highest total over the recorded days only; resampled days never size the plant) and
  the token statistics of the Azure traces the classes use.
* ``realised_inputs(dataset, plant, start, steps)``: the realised signals of ``steps`` hours from
  ``start`` (UTC) as a ``ControlForecast`` — the truth the plant is stepped with, and what a
  perfect forecaster hands the MPC. Load is provisioned at its own value (no quantile).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from control.inputs import ControlForecast
from control.plant import PlantParams
from control.sizing import TokenStats, size_plant
from forecast.dataset import Dataset

__all__ = ["SITE_SIGNALS", "peak_load_req_per_s", "plant_for", "realised_inputs", "token_stats"]

SITE_SIGNALS = ("price_eur_per_mwh", "carbon_g_per_kwh", "ewif_l_per_kwh", "temp_c", "wetbulb_c",
                "solar_cf", "wind_cf")
_DAY = pd.Timedelta(days=1)


def token_stats(dataset: Dataset) -> dict[str, TokenStats]:
    """Mean prompt and output tokens per Azure trace (``conv``, ``code``)."""
    tok = dataset.load.tokens
    return {str(name): TokenStats(float(row["prompt_tokens_mean"]), float(row["output_tokens_mean"]))
            for name, row in tok.iterrows()}


def _load_cube(dataset: Dataset, regions: tuple[str, ...], classes: tuple[str, ...],
               recorded_only: bool = False) -> pd.DataFrame:
    sig = dataset.signals
    sel = sig[sig["signal"] == "load_req_per_s"]
    if recorded_only:
        sel = sel[sel["flag"] == "recorded"]
    wide = sel.pivot(index="ts", columns="site", values="value")
    names = [f"{r}/{k}" for r in regions for k in classes]
    missing = [n for n in names if n not in wide.columns]
    if missing:
        raise KeyError(f"load streams missing from the dataset: {missing}")
    return wide[names]


def peak_load_req_per_s(dataset: Dataset, regions: tuple[str, ...], classes: tuple[str, ...]) -> np.ndarray:
    """Load per class at the recorded hour of the highest total load, req/s, ``(K,)``."""
    cube = _load_cube(dataset, regions, classes, recorded_only=True)
    if cube.empty:
        raise ValueError("the dataset has no recorded load hours to size the plant from")
    peak_row = cube.sum(axis=1).idxmax()
    return cube.loc[peak_row].to_numpy().reshape(len(regions), len(classes)).sum(axis=0)


def plant_for(config: object, dataset: Dataset, design_temp_c: float = 35.0) -> PlantParams:
    """The plant of a config (``pipelines._config.Config``) sized on its dataset's recorded load."""
    sc = config.scenario  # type: ignore[attr-defined]
    peak = peak_load_req_per_s(dataset, sc.region_names, sc.class_names)
    return size_plant(sc, config.hardware, config.control, config.penalties,  # type: ignore[attr-defined]
                      peak, token_stats(dataset), design_temp_c)


def realised_inputs(dataset: Dataset, plant: PlantParams, start: pd.Timestamp | str,
                    steps: int) -> ControlForecast:
    """Realised signals for ``steps`` hours from ``start`` (UTC), checked against ``plant``.

    Raises:
        ValueError: the window leaves the data (names the first and last hour available).
    """
    t0 = pd.Timestamp(start)
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
    index = pd.date_range(t0, periods=steps, freq="1h")
    arrays: dict[str, np.ndarray] = {}
    for name in SITE_SIGNALS:
        wide = dataset.wide(name)
        if index[0] < wide.index[0] or index[-1] > wide.index[-1]:
            raise ValueError(f"window {index[0]} … {index[-1]} is outside the data "
                             f"({wide.index[0]} … {wide.index[-1]})")
        arrays[name] = wide.reindex(index)[list(plant.site_names)].to_numpy()
    cube = _load_cube(dataset, plant.region_names, plant.class_names).reindex(index).to_numpy()
    load = cube.reshape(steps, len(plant.region_names), len(plant.class_names))
    days = ((index - pd.Timestamp("1970-01-01", tz="UTC")) // _DAY).to_numpy().astype(int)
    return ControlForecast(**arrays, load_req_per_s=load, load_provision_req_per_s=load,
                           day_index=days).validate(plant)
