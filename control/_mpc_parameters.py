"""What goes into the parameter vector of ``control.mpc.AllocationMPC``'s LP at every solve.

- the forecast signals at the median (PUE, WUE, water intensity, price, carbon intensity);
- the load levels as ratios to the median forecast (``LoadLevels``): the provisioning level every
  step's GPUs cover, and the applied step's burst level the N−1 rows cover;
- the prices of the risk they leave: GPU-seconds per second short of a level, priced at the drops
  they expose (the newsvendor rate), and the same exposure of a request left unserved;
- the value of backlog left at the horizon's end, or its drop price at the episode's end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from control import plant as pl
from control._headroom import group_burst_ratio, group_ratio
from control._horizon import HorizonMap
from control._lp import LinearProgram
from control.inputs import ControlForecast
from control.plant import PlantParams
from control.sizing import stream_work_req_per_s

__all__ = ["TERMINAL_TIE_BREAK", "LoadLevels", "load_levels", "pack_risk_prices", "pack_signals",
           "pack_terminal", "shortfall_eur", "terminal_value_eur"]

TERMINAL_TIE_BREAK = 1.01


def shortfall_eur(plant: PlantParams) -> tuple[np.ndarray, np.ndarray]:
    """EUR per GPU-s/s short for one step if the load exceeded the level for sure (× (1 − level)
    gives the expected drops): per pool ``(P,)`` (the cheapest allowed class's work) and per
    allowed pair ``(m,)``."""
    work = np.where(plant.allowed.any(axis=0), plant.gpu_s_per_req, np.inf).min(axis=1)   # (P,)
    work = np.where(np.isfinite(work), work, plant.gpu_s_per_req.min(axis=1))
    pool = plant.penalties.drop_eur_per_request * plant.step_s / work
    pair_work = plant.gpu_s_per_req[plant.pairs[:, 1], plant.pairs[:, 2]]
    return pool, plant.penalties.drop_eur_per_request * plant.step_s / pair_work


def pack_signals(p: np.ndarray, lp: LinearProgram, plant: PlantParams, fc: ControlForecast,
                 fixed_pue: np.ndarray | None) -> np.ndarray:
    """Pack the site signals at the median; returns the PUE ``(H, S)`` (``fixed_pue``, or PUE(temperature))."""
    pue_value = np.broadcast_to(fixed_pue, fc.temp_c.shape) if fixed_pue is not None \
        else pl.pue(plant, fc.temp_c)
    lp.p.pack(p, "pue", pue_value)
    lp.p.pack(p, "wue", pl.wue_l_per_kwh(fc.wetbulb_c))
    for key, arr in (("ewif", fc.ewif_l_per_kwh), ("price", fc.price_eur_per_mwh),
                     ("ci", fc.carbon_g_per_kwh)):
        lp.p.pack(p, key, arr)
    return pue_value


@dataclass(frozen=True, eq=False)
class LoadLevels:
    """The forecast's load levels as ratios to its median, per LP step (the 10-min peak factor included)."""

    median: np.ndarray   # (H, R·K) median load, req/s
    ratio: np.ndarray    # (H, R·K) provisioning level ÷ median
    ratio_a: np.ndarray  # (T, pooled streams) the same in the pooled tail
    burst: np.ndarray    # (R·K,) the applied step's burst level ÷ median (deferrable: ``ratio``)
    sub: np.ndarray | None = None  # (M, R·K) the applied step's sub-step loads ÷ its mean (known sub-steps only)


def load_levels(plant: PlantParams, lp: LinearProgram, horizon_map: HorizonMap, fc: ControlForecast,
                correlation: float, group_bursts: bool, backlog_req: np.ndarray | None = None) -> LoadLevels:
    """The provisioning and burst levels of ``fc`` (per LP step). With group shares, a region
    group's streams' excesses combine at ``correlation`` and, with ``group_bursts``, the burst
    level is the group total's (``control._headroom``). ``backlog_req``: the deferrable backlog
    now per stream ``(R, K)`` (the sub-step rows offer it in every sub-step, as the plant does)."""
    d = lp.d
    med = fc.load_req_per_s.reshape(d.H, -1)
    # the 10-min peak factor is common to the fleet (fully correlated): it is divided out of the
    # levels before the forecast's spread is combined, and multiplies the combined ratio after
    peak = fc.peak_factor().reshape(d.H, -1)
    assert fc.load_burst_req_per_s is not None   # set by ControlForecast.validate, which solve runs
    prov_streams = np.maximum(fc.load_provision_req_per_s.reshape(d.H, -1) / peak, med)
    burst_streams = fc.load_burst_req_per_s.reshape(d.H, -1)[0] / peak[0]
    safe = np.where(med > 1e-12, med, 1.0)
    ratio = np.where(med > 1e-12, prov_streams / safe, 1.0)
    if lp.group_shares and correlation < 1.0:
        ratio = group_ratio(plant, med, prov_streams, ratio, correlation)
    ratio = ratio * peak
    prov = ratio * med
    med_a, prov_a = horizon_map.pooled(med[d.E:]), horizon_map.pooled(prov[d.E:])
    ratio_a = np.where(med_a > 1e-12, prov_a / np.where(med_a > 1e-12, med_a, 1.0), 1.0)
    base0 = ratio[0] / peak[0]
    burst_ratio = np.maximum(np.where(med[0] > 1e-12, burst_streams / safe[0], 1.0), base0)
    if lp.group_shares and group_bursts:
        burst_ratio = group_burst_ratio(plant, med[0], prov_streams[0], burst_streams, base0, correlation)
    burst_ratio = burst_ratio * peak[0]
    # deferrable overflow returns to the backlog (never dropped): no burst row for batch work
    burst_ratio[d.deferred] = ratio[0, d.deferred]
    sub = _sub_step_ratio(plant, fc, med[0], backlog_req) if lp.sub_steps > 1 else None
    return LoadLevels(med, ratio, ratio_a, burst_ratio, sub)


def _sub_step_ratio(plant: PlantParams, fc: ControlForecast, med0: np.ndarray,
                    backlog_req: np.ndarray | None) -> np.ndarray | None:
    """``(M, R·K)``: each stream's work in each sub-step of the applied hour over the hour's mean
    (arrivals, plus the backlog offered in every sub-step for deferrable streams, as
    ``control.sizing.provision_gpus`` sizes it; 1 for streams without work); None when the
    forecast does not know the sub-steps."""
    if fc.load_sub_req_per_s is None:
        return None
    sub = stream_work_req_per_s(plant, fc.load_sub_req_per_s[0], backlog_req).reshape(fc.sub_steps, -1)
    mean = stream_work_req_per_s(plant, med0.reshape(fc.load_req_per_s.shape[1:]), backlog_req).ravel()
    return np.where(mean > 1e-12, sub / np.where(mean > 1e-12, mean, 1.0), 1.0)


def pack_risk_prices(p: np.ndarray, lp: LinearProgram, plant: PlantParams, hours: np.ndarray,
                     levels: LoadLevels, shortfall: tuple[np.ndarray, np.ndarray], load_quantile: float,
                     burst_quantile: float) -> None:
    """Pack the prices of headroom left short (``shortfall``: ``shortfall_eur``'s; ``hours``: plant
    steps per LP step ``(H, 1)``) and of the exposure of a request left unserved. ``burst`` must be
    packed already."""
    d = lp.d
    lp.p.pack(p, "reserve_eur", hours * shortfall[0] * (1.0 - load_quantile))
    lp.p.pack(p, "burst_eur", shortfall[1] * (1.0 - burst_quantile))
    # a request left unserved is dropped in the high-load cases too: its share of the excess
    # counts as exposed, so that dropping load never buys headroom
    exposed = (1.0 - load_quantile) * (levels.ratio - 1.0)
    exposed[0] += (1.0 - burst_quantile) * (lp.p.unpack(p, "burst")[0] - levels.ratio[0])
    per_req = plant.penalties.drop_eur_per_request * plant.step_s
    lp.p.pack(p, "unserved_risk_eur", per_req * exposed[:d.E])
    lp.p.pack(p, "unserved_risk_a", per_req * hours[d.E:] * (1.0 - load_quantile) * (levels.ratio_a - 1.0))


def terminal_value_eur(plant: PlantParams, lp: LinearProgram, fc: ControlForecast, pue_value: np.ndarray) -> np.ndarray:
    """EUR per request of each deferrable stream left in the backlog at the horizon end (an
    estimate of serving it later): the mean over the horizon of the cheapest allowed pool's
    marginal energy cost (dynamic + provisioned idle power at rho_max, at the step's price and
    PUE), × ``TERMINAL_TIE_BREAK`` so that ties serve now."""
    d = lp.d
    per_req_kwh = (plant.it_kw_per_req_per_s
                   + plant.idle_kw_per_gpu[:, None] * plant.gpu_s_per_req / plant.rho_max) / 3600.0
    eur_per_kwh = fc.price_eur_per_mwh * pue_value / 1000.0                      # (H, S)
    pool_cost = eur_per_kwh[:, plant.pool_site][:, :, None] * per_req_kwh[None]  # (H, P, K)
    cost = np.where(plant.allowed[None], pool_cost[:, None], np.inf).min(axis=2)  # (H, R, K)
    cost = np.where(np.isfinite(cost), cost, plant.penalties.drop_eur_per_request)
    flat = cost.reshape(cost.shape[0], -1)[:, d.deferred]
    return np.maximum(flat.mean(axis=0), 0.0) * TERMINAL_TIE_BREAK


def pack_terminal(p: np.ndarray, lp: LinearProgram, plant: PlantParams, horizon_map: HorizonMap,
                  end_step: int | None, terminal_eur: np.ndarray | float) -> None:
    """Pack the value of backlog left at the horizon's end (``terminal_eur`` per request) and, at
    ``end_step`` (LP step), the episode's end: backlog left there is dropped."""
    d = lp.d
    term = np.zeros((d.H, len(d.deferred)))
    term[-1] = terminal_eur
    if end_step is not None:
        term[end_step] = plant.penalties.drop_eur_per_request
        ends = np.zeros(d.H)
        ends[end_step] = 1.0
        lp.p.pack(p, "episode_end", ends)
    lp.p.pack(p, "term", term[:d.E])
    lp.p.pack(p, "term_a", horizon_map.pooled_deferred(term[d.E:], mean=True))
