"""The plant and its exogenous inputs from a scenario's real data (``forecast.dataset``).

* ``fleet_dataset(config)``: ``build_dataset`` with every load series multiplied by the fleet
  factor (``sizing.target_datacentre_gpus`` installed datacentre GPUs; 0: factor 1), derived per
  tier by ``control.sizing.fleet_load_factor`` from the unscaled recorded peak.
* ``plant_for(config, dataset)``: ``size_plant`` with the recorded load's peak (per class, at the
  10-min window of the highest total over the recorded days only; resampled days never size the
  plant; edge pools on the unscaled peak) and the token statistics of the Azure traces the classes
  use.
* ``realised_inputs(dataset, plant, start, steps)``: the realised signals of ``steps`` hours from
  ``start`` (UTC) as a ``ControlForecast`` — the truth the plant is stepped with, and what a
  perfect forecaster hands the MPC. Load is provisioned at its own value (no quantile); the 10-min
  load rides along as ``load_sub_req_per_s`` ``(H, 6, R, K)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from control.inputs import ControlForecast, utc_day_index
from control.plant import PlantParams
from control.sizing import TokenStats, fleet_load_factor, size_plant
from forecast.dataset import Dataset, build_dataset

__all__ = ["SITE_SIGNALS", "fleet_dataset", "peak_load_req_per_s", "plant_for", "realised_inputs",
           "token_stats"]

SITE_SIGNALS = ("price_eur_per_mwh", "carbon_g_per_kwh", "ewif_l_per_kwh", "temp_c", "wetbulb_c",
                "solar_cf", "wind_cf")


def token_stats(dataset: Dataset) -> dict[str, TokenStats]:
    """Mean prompt and output tokens per Azure trace (``conv``, ``code``)."""
    tok = dataset.load.tokens
    return {str(name): TokenStats(float(row["prompt_tokens_mean"]), float(row["output_tokens_mean"]))
            for name, row in tok.iterrows()}


def _load_cube(dataset: Dataset, regions: tuple[str, ...], classes: tuple[str, ...]) -> pd.DataFrame:
    sig = dataset.signals
    sel = sig[sig["signal"] == "load_req_per_s"]
    wide = sel.pivot(index="ts", columns="site", values="value")
    names = [f"{r}/{k}" for r in regions for k in classes]
    missing = [n for n in names if n not in wide.columns]
    if missing:
        raise KeyError(f"load streams missing from the dataset: {missing}")
    return wide[names]


def peak_load_req_per_s(dataset: Dataset, regions: tuple[str, ...], classes: tuple[str, ...]) -> np.ndarray:
    """Load per class at the recorded 10-min window of the highest total load, req/s, ``(K,)``.

    Only the recorded hours of each stream count (a stream's resampled hours never size the plant).
    """
    sig = dataset.signals
    sel = sig[sig["signal"] == "load_req_per_s"]
    names = [f"{r}/{k}" for r in regions for k in classes]
    recorded = (sel["flag"] == "recorded").groupby([sel["ts"], sel["site"]]).any().unstack("site")
    missing = [n for n in names if n not in recorded.columns or n not in dataset.load_10min.columns]
    if missing:
        raise KeyError(f"load streams missing from the dataset: {missing}")
    ten = dataset.load_10min[names]
    mask = recorded[names].reindex(ten.index.floor("h")).fillna(False).to_numpy(dtype=bool)
    if not mask.any():
        raise ValueError("the dataset has no recorded load hours to size the plant from")
    values = np.where(mask, ten.to_numpy(), 0.0)
    row = int(np.argmax(values.sum(axis=1)))
    return values[row].reshape(len(regions), len(classes)).sum(axis=0)


def plant_for(config: object, dataset: Dataset, design_temp_c: float = 35.0) -> PlantParams:
    """The plant of a config (``pipelines.config.Config``) sized on its dataset's recorded load.

    Edge pools are sized on the unscaled peak (``peak ÷ dataset.load_factor``): the fleet factor
    leaves edge device counts as the trace gives them.
    """
    sc = config.scenario  # type: ignore[attr-defined]
    peak = peak_load_req_per_s(dataset, sc.region_names, sc.class_names)
    return size_plant(sc, config.hardware, config.control, config.penalties,  # type: ignore[attr-defined]
                      peak, token_stats(dataset), design_temp_c,
                      edge_peak_load_req_per_s=peak / dataset.load_factor)


def fleet_dataset(config: object, progress: bool = False) -> Dataset:
    """``build_dataset(config.scenario)`` with every load series × the fleet factor.

    The factor (``Dataset.load_factor``) makes the plant sized on the scaled load install
    ``sizing.target_datacentre_gpus`` datacentre GPUs (within 1 %); 0 there: factor 1.

    Args:
        config: a ``pipelines.config.Config``.
        progress: print one line per site while building.
    """
    sc = config.scenario  # type: ignore[attr-defined]
    data = build_dataset(sc, progress=progress)
    if sc.sizing.target_datacentre_gpus == 0:
        return data
    peak = peak_load_req_per_s(data, sc.region_names, sc.class_names)
    factor = fleet_load_factor(sc, config.hardware, config.control, config.penalties,  # type: ignore[attr-defined]
                               peak, token_stats(data))
    return data.with_load_factor(factor)


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
    R, K = len(plant.region_names), len(plant.class_names)
    cube = _load_cube(dataset, plant.region_names, plant.class_names).reindex(index).to_numpy()
    load = cube.reshape(steps, R, K)
    ten = dataset.load_10min
    every = ten.index[1] - ten.index[0]
    M = int(round(pd.Timedelta(hours=1) / every))
    sub = ten[[f"{r}/{k}" for r in plant.region_names for k in plant.class_names]].reindex(
        pd.date_range(t0, periods=steps * M, freq=every)).to_numpy().reshape(steps, M, R, K)
    days = utc_day_index(index)
    return ControlForecast(**arrays, load_req_per_s=load, load_provision_req_per_s=load,
                           day_index=days, load_sub_req_per_s=sub).validate(plant)
