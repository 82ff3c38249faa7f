"""The realised step (DESIGN.md §5): apply a decision's first step to what really happened.

Applied from the decision, for the whole hour: shares of each (region, class) stream over its
allowed pools (a deferrable stream's rest deferred by decision), active GPUs rounded up, battery
power clipped to what is feasible. The hour runs ``M`` sub-steps at the load's own resolution
(``realised.load_sub_req_per_s``; one sub-step at the hourly mean when it is None); in each the
dispatcher (``control.dispatch``) routes the sub-step's offered work by the shares, spills what a
pool cannot take at rho_max to the stream's other allowed pools with free capacity, returns
deferrable work that finds no room to the backlog and drops interactive work no pool can take.

Offered work of a stream in sub-step ``m`` (requests): its arrivals in the sub-step; for a
deferrable stream also ``1/M`` of the backlog it started the hour with and what the dispatcher
returned to the backlog in sub-step ``m − 1`` (so returned work is offered again in the next
sub-step, and in later hours through the backlog). Of every offer the decided deferral
``(1 − Σ_p share) ×`` offered stays in the backlog and is not offered again within the hour.

Recomputed at the end of the hour on its totals: the FIFO deadline rule (what a deferrable stream
has left is at most its arrivals of the last ``deadline`` hours; the rest is dropped), IT power from
the hour's served work plus the idle power of the active GPUs, facility power, grid import and
curtailment, cost, carbon, water. TTFT and SLO misses per sub-step from that sub-step's utilisation
(Erlang C), summed over the sub-steps (TTFT as a request-weighted mean).

Invariants (``control.simulate.check_invariants``): arrivals = served + dropped + backlog change per
stream; every sub-step within rho_max × GPUs per pool; the power balance of every site.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from control import plant as pl
from control._queueing import erlang_c_late_fraction, erlang_c_probability, erlang_c_wait_s
from control.constraints import pool_capacity_gpu_s, running_gpus
from control.dispatch import dispatch, marginal_eur_per_req
from control.inputs import ControlForecast
from control.plant import PlantParams
from control.shares import recent_arrivals_req
from control.state import Allocation, PlantState, StepRecord

__all__ = ["slo_aware_decision_gpus", "slo_aware_gpus", "step"]


def _applied_gpus(plant: PlantParams, gpus: np.ndarray, active: np.ndarray) -> np.ndarray:
    """GPUs asked for: rounded up (when whole GPUs), within the installed count and the ramp limit
    (``control.constraints.running_gpus`` then applies the constraint families' limits)."""
    n = np.clip(gpus, 0.0, plant.gpus_max)
    n = np.minimum(np.ceil(n - 1e-9), plant.gpus_max) if plant.round_gpus_up else n
    ramp = plant.gpu_ramp_per_step
    return np.clip(n, np.maximum(active - ramp, 0.0), np.minimum(active + ramp, plant.gpus_max))


def _work_req(plant: PlantParams, arrivals_req: np.ndarray, backlog_req: np.ndarray) -> np.ndarray:
    """Requests a step may serve per (region, class): its arrivals and, for deferrable classes, the backlog."""
    return arrivals_req + np.where(plant.deferrable[None, :], backlog_req, 0.0)


def _routed(plant: PlantParams, share: np.ndarray, work_req: np.ndarray) -> np.ndarray:
    """Req/s per (region, pool, class) that the shares route of the work."""
    return share * work_req[:, None, :] / plant.step_s                      # (R, P, K)


def _backlog(plant: PlantParams, state: PlantState, arrivals_req: np.ndarray,
             served_req: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dropped requests, next backlog and next arrival history per stream."""
    left = state.backlog_req + arrivals_req - served_req.sum(axis=1)
    left = np.maximum(left, 0.0)  # guards round-off only: served ≤ work by construction
    defer = plant.deferrable[None, :]
    # FIFO deadline rule: what waits is at most the arrivals of the last `deadline` steps.
    allowed = arrivals_req + recent_arrivals_req(plant, state.arrivals_history_req)
    backlog = np.where(defer, np.minimum(left, allowed), 0.0)
    dropped = left - backlog
    history = np.concatenate([arrivals_req[None], state.arrivals_history_req])[:-1] \
        if state.arrivals_history_req.shape[0] else state.arrivals_history_req
    return dropped, backlog, history


def _battery(plant: PlantParams, soc: np.ndarray, decision: Allocation) -> tuple[np.ndarray, np.ndarray]:
    dt = plant.step_h
    charge = np.clip(decision.charge_kw, 0.0, plant.battery_kw)
    charge = np.minimum(charge, np.maximum(plant.battery_kwh - soc, 0.0) / (plant.charge_eff * dt))
    discharge = np.clip(decision.discharge_kw, 0.0, plant.battery_kw)
    discharge = np.minimum(discharge, soc * plant.discharge_eff / dt)
    return charge, discharge


def _late(plant: PlantParams, served: np.ndarray, gpus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean queueing wait per pool, s, and the share of each (region, pool, class)'s requests over
    the class SLO: RTT + prefill + an M/M/c wait longer than the slack left."""
    rate = served.sum(axis=(0, 2))
    work = np.einsum("rpk,pk->p", served, plant.gpu_s_per_req)
    service_s = np.where(rate > 0, work / np.where(rate > 0, rate, 1.0), 0.0)
    prob = erlang_c_probability(gpus, work)
    wait = erlang_c_wait_s(gpus, work, service_s, prob)
    slack = plant.slo_ttft_s[None, None, :] - _base_ttft_s(plant)
    late = erlang_c_late_fraction(gpus[None, :, None], work[None, :, None], service_s[None, :, None], slack,
                                  prob[None, :, None])
    return wait, np.where(served > 0, late, 0.0)


def _base_ttft_s(plant: PlantParams) -> np.ndarray:
    return plant.rtt_s[:, plant.pool_site][:, :, None] + plant.prefill_s[None]      # (R, P, K)


@dataclass(frozen=True, eq=False)
class _Hour:
    """The dispatcher's hour: totals over its sub-steps (requests), queueing, peak utilisation."""

    arrivals_req: np.ndarray         # (R, K)
    served_req: np.ndarray           # (R, P, K)
    spilled_req: np.ndarray          # (R, P, K)
    returned_req: np.ndarray         # (R, K), summed over the sub-steps
    ttft_s: np.ndarray               # (R, P, K), request-weighted over the sub-steps; NaN where none
    slo_miss_req: np.ndarray         # (R, P, K)
    peak_utilisation: np.ndarray     # (P,)


def _sub_step_arrivals_req(plant: PlantParams, x: ControlForecast) -> np.ndarray:
    """Arrivals per sub-step and stream, requests ``(M, R, K)`` (M = 1 at the hourly mean when the
    realised data have no sub-step load)."""
    sub = x.load_sub_req_per_s
    rates = np.asarray(x.load_req_per_s)[:1] if sub is None else np.asarray(sub)[0]
    return rates * (plant.step_s / rates.shape[0])


def _dispatch_hour(plant: PlantParams, state: PlantState, share: np.ndarray, gpus: np.ndarray,
                   x: ControlForecast, pue_value: np.ndarray, fill: bool = True) -> _Hour:
    """Run the dispatcher over the hour's sub-steps (the module docstring defines the offers)."""
    arrivals = _sub_step_arrivals_req(plant, x)
    M = arrivals.shape[0]
    sub_s = plant.step_s / M
    marginal = marginal_eur_per_req(plant, x.price_eur_per_mwh[0], pue_value)
    cap_gpu_s = pool_capacity_gpu_s(plant, gpus, pue_value, sub_s)   # within every family's limit
    from_backlog = np.where(plant.deferrable[None, :], state.backlog_req / M, 0.0)
    returned = np.zeros_like(from_backlog)
    served, spilled, wait_req_s, miss = (np.zeros(share.shape) for _ in range(4))
    returned_total, peak = np.zeros_like(returned), np.zeros(plant.n_pools)
    for m in range(M):
        d = dispatch(plant, share, arrivals[m] + from_backlog + returned, gpus, sub_s, marginal, cap_gpu_s, fill)
        returned = d.returned_req
        wait, late = _late(plant, d.served_req / sub_s, gpus)
        wait_req_s += np.multiply(d.served_req, wait[None, :, None], out=np.zeros(share.shape),
                                  where=d.served_req > 0)
        miss += d.served_req * late
        served += d.served_req
        spilled += d.spilled_req
        returned_total += returned
        peak = np.maximum(peak, d.utilisation)
    ttft = np.where(served > 0, _base_ttft_s(plant) + wait_req_s / np.where(served > 0, served, 1.0), np.nan)
    return _Hour(arrivals.sum(axis=0), served, spilled, returned_total, ttft, miss, peak)


def slo_aware_gpus(plant: PlantParams, served: np.ndarray, gpus_min: np.ndarray,
                   idle_eur_per_gpu_step: np.ndarray) -> np.ndarray:
    """Whole GPUs per pool that minimise idle cost + the SLO-miss penalty of serving ``served``.

    The plant's own rule (Erlang-C late share per region and class) on the load a controller expects,
    searched over ``ceil(gpus_min) … gpus_max``: what the linear model cannot see (one or two GPUs
    queue like M/M/1), priced as the plant prices it.

    Args:
        plant: coefficients.
        served: req/s per (region, pool, class) the controller expects to serve ``(R, P, K)``.
        gpus_min: GPUs the decision needs anyway (capacity, headroom) ``(P,)``.
        idle_eur_per_gpu_step: what one more active GPU costs over the step, EUR ``(P,)``.
    """
    low = np.minimum(np.ceil(np.asarray(gpus_min, dtype=float) - 1e-9), plant.gpus_max)
    work = np.einsum("rpk,pk->p", served, plant.gpu_s_per_req)
    low = np.where(work > 0, np.maximum(low, np.minimum(np.floor(work) + 1.0, plant.gpus_max)), low)  # stable queue
    best, best_eur = low.copy(), np.full(plant.n_pools, np.inf)
    miss_eur = plant.penalties.slo_miss_eur_per_request * plant.step_s
    searching = np.ones(plant.n_pools, dtype=bool)
    c = low.copy()
    while searching.any():
        _, late = _late(plant, served, c)
        eur = c * idle_eur_per_gpu_step + miss_eur * (served * late).sum(axis=(0, 2))
        better = searching & (eur < best_eur - 1e-12)
        best, best_eur = np.where(better, c, best), np.where(better, eur, best_eur)
        # from a stable queue on, idle cost grows linearly and the misses fall convexly: past the minimum, stop
        searching &= better & (c < plant.gpus_max)
        c = np.where(searching, c + 1, best)
    return best


def slo_aware_decision_gpus(plant: PlantParams, share: np.ndarray, load_req_per_s: np.ndarray,
                            backlog_req: np.ndarray, gpus_min: np.ndarray, pue_value: np.ndarray,
                            price_eur_per_mwh: np.ndarray) -> np.ndarray:
    """``slo_aware_gpus`` for a decision: its shares of ``load_req_per_s`` (per (region, class))
    and the deferrable backlog, as ``step`` routes them, with one more GPU priced at the step's
    PUE and price per site (idle power only)."""
    routed = _routed(plant, share, _work_req(plant, load_req_per_s * plant.step_s, backlog_req))
    idle_eur = (plant.idle_kw_per_gpu * np.asarray(pue_value)[plant.pool_site]
                * np.asarray(price_eur_per_mwh)[plant.pool_site] / 1000.0 * plant.step_h)
    return slo_aware_gpus(plant, routed, gpus_min, idle_eur)


def _water(plant: PlantParams, state: PlantState, day: int, water_step_l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Litres used today after the step, and the increase of today's excess over the budget."""
    used = state.water_used_today_l if day == state.water_day else np.zeros(plant.n_sites)
    after = used + water_step_l
    budget = plant.water_budget_l_per_day
    return after, np.maximum(after - budget, 0.0) - np.maximum(used - budget, 0.0)


def _site_power_kw(plant: PlantParams, state: PlantState, decision: Allocation, x: ControlForecast,
                   x_pairs: np.ndarray, gpus: np.ndarray, pue_value: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-site IT, facility and renewable power, battery charge and discharge, grid import and
    curtailment, kW, of the step's served req/s per pair ``x_pairs`` on ``gpus``."""
    it = pl.site_total(plant, pl.pool_it_kw(plant, x_pairs, gpus))
    fac = pl.facility_kw(pue_value, it)
    ren = pl.renewable_kw(plant, x.solar_cf[0], x.wind_cf[0])
    charge, discharge = _battery(plant, state.soc_kwh, decision)
    net = fac - ren + charge - discharge
    grid, curtailed = np.maximum(net, 0.0), np.maximum(-net, 0.0)
    return it, fac, ren, charge, discharge, grid, curtailed


def _site_water_l(plant: PlantParams, state: PlantState, x: ControlForecast, day: int, it_kw: np.ndarray,
                  grid_kw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-site water, l: on site, off site (the grid's), used today after the step and the
    increase of today's excess over the budget."""
    onsite = pl.water_l(plant, pl.wue_l_per_kwh(x.wetbulb_c[0]), it_kw, 0.0, grid_kw)
    offsite = pl.water_l(plant, 0.0, it_kw, x.ewif_l_per_kwh[0], grid_kw)
    return onsite, offsite, *_water(plant, state, day, onsite + offsite)


def _penalties_eur(plant: PlantParams, dropped_req: np.ndarray, miss_req: np.ndarray, over_l: np.ndarray,
                   starts: np.ndarray) -> tuple[float, float, float, float]:
    """The step's drop, SLO-miss, water and GPU-start penalties, EUR."""
    pen = plant.penalties
    return (pen.drop_eur_per_request * float(dropped_req.sum()),
            pen.slo_miss_eur_per_request * float(miss_req.sum()),
            pen.water_eur_per_l * float(over_l.sum()),
            pen.gpu_start_eur * float(starts.sum()))


def step(plant: PlantParams, state: PlantState, decision: Allocation,
         realised: ControlForecast) -> tuple[PlantState, StepRecord]:
    """Advance the plant one step with realised data (step 0 of ``realised``).

    Args:
        plant: coefficients.
        state: the state at the start of the step.
        decision: the controller's allocation for this step.
        realised: what really happened; only step 0 is read.

    Returns:
        The next state and the step's record.
    """
    decision.validate(plant)
    x = realised.window(0, 1)
    pue_value = pl.pue(plant, x.temp_c[0])
    gpus = running_gpus(plant, _applied_gpus(plant, decision.gpus, state.gpus_active), pue_value)
    hour = _dispatch_hour(plant, state, np.asarray(decision.share), gpus, x, pue_value, bool(decision.backlog_fill))
    arrivals, served = hour.arrivals_req, hour.served_req
    dropped, backlog, history = _backlog(plant, state, arrivals, served)
    x_pairs = served[plant.pairs[:, 0], plant.pairs[:, 1], plant.pairs[:, 2]] / plant.step_s
    it, fac, ren, charge, discharge, grid, curtailed = _site_power_kw(plant, state, decision, x, x_pairs, gpus,
                                                                      pue_value)
    day = int(x.day_index[0])
    onsite, offsite, used_after, over = _site_water_l(plant, state, x, day, it, grid)
    starts = np.maximum(gpus - state.gpus_active, 0.0)
    miss = hour.slo_miss_req
    record = StepRecord(
        arrivals, served, dropped, backlog - state.backlog_req, gpus, starts, it, fac, ren,
        grid, curtailed, charge, discharge, onsite, offsite, over, hour.ttft_s, miss,
        np.maximum(grid - plant.grid_limit_kw, 0.0),
        float(pl.energy_cost_eur(plant, x.price_eur_per_mwh[0], grid)),
        *_penalties_eur(plant, dropped, miss, over, starts),
        float(pl.carbon_kg(plant, x.carbon_g_per_kwh[0], grid)),
        float(pl.delay_req_s(plant, x_pairs)),
        hour.spilled_req, hour.returned_req, hour.peak_utilisation,
    )
    soc = np.clip(pl.soc_next_kwh(plant, state.soc_kwh, charge, discharge), 0.0, plant.battery_kwh)  # round-off
    return PlantState(gpus, soc, backlog, history, used_after, day), record
