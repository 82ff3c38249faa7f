"""The dispatcher: one sub-step of what a global load balancer does in real time (DESIGN.md §5).

Within an hour the decision is fixed (shares per stream and pool, active GPUs); in every sub-step
the dispatcher

1. routes each stream's offered work by the hour's shares (``share × offered``);
2. serves the interactive classes first, fleet-wide (batch work can wait, a chat cannot): each
   pool serves its routed interactive work up to its capacity ``rho_max × GPUs × sub-step
   seconds`` (GPU-seconds, ``plant.gpu_s_per_req`` per request; pro rata when routed more), and
   what overflows — with an interactive stream's unrouted rest (``1 − Σ_p share``: a load
   balancer drops nothing it can place) — spills to the stream's allowed pools
   (``plant.allowed``: SLO- and residency-disallowed pairs never receive spill) with capacity
   left after interactive work, cheapest marginal cost of the hour first; a pool's free capacity
   is shared pro rata (by GPU-seconds asked) between the streams overflowing into it, and a
   stream that finds its cheapest pool full moves on to the next;
3. then serves the deferrable classes with what capacity is left: routed work first (pro rata in
   a pool), its overflow spilled the same way; so routed batch work never takes the room an
   interactive spill needs (a pool's batch work yields to another pool's chat overflow);
4. returns deferrable work that finds no room to the backlog and drops interactive work that no
   allowed pool can take. A deferrable stream's unrouted rest is deferred by decision: it stays in
   the backlog — unless ``plant.backlog_fill``: then that rest fills what capacity running GPUs
   still have (the same spill, cheapest first), so a reserve the load did not need serves waiting
   batch work instead of idling (work-conserving; a decision's GPUs are paid for either way).

A pool's capacity in a sub-step is ``rho_max × GPUs × sub-step seconds`` unless the caller passes
it (``cap_gpu_s``): the plant passes ``control.constraints.pool_capacity_gpu_s``, where each
constraint family that limits what running GPUs may serve (e.g. a site's facility power cap) has
lowered it, so no sub-step breaks a family's limit.

Marginal cost of a (pool, class) = price × PUE × dynamic kWh per request (``it_kw_per_req_per_s``
kW per req/s is kW·s/3600 = kWh per request), in EUR per request (``marginal_eur_per_req``).
Everything is vectorised over (region, pool, class); the spill takes at most ``P + 1`` rounds
(each round either places every remaining stream or fills at least one pool).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from control.plant import PlantParams

__all__ = ["Dispatch", "dispatch", "marginal_eur_per_req"]


@dataclass(frozen=True, eq=False)
class Dispatch:
    """One sub-step's outcome. Requests are counts over the sub-step.

    Attributes:
        served_req: served per (region, pool, class), spill included, ``(R, P, K)``.
        spilled_req: of ``served_req``, what each pool received beyond the shares (spill and
            backlog fill), ``(R, P, K)``.
        returned_req: deferrable work that found no room, back to the backlog, ``(R, K)``.
        dropped_req: interactive work no allowed pool could take, ``(R, K)``.
        utilisation: busy share of each pool's active GPUs (0 where none run), ``(P,)``.
    """

    served_req: np.ndarray
    spilled_req: np.ndarray
    returned_req: np.ndarray
    dropped_req: np.ndarray
    utilisation: np.ndarray


def marginal_eur_per_req(plant: PlantParams, price_eur_per_mwh: np.ndarray,
                         pue_value: np.ndarray) -> np.ndarray:
    """Energy cost of one more request per (pool, class), EUR: price × PUE × dynamic kWh per request.

    Args:
        plant: coefficients.
        price_eur_per_mwh: the hour's price per site, ``(S,)``.
        pue_value: the hour's PUE per site, ``(S,)``.
    """
    site = plant.pool_site
    kwh_per_req = plant.it_kw_per_req_per_s / 3600.0                          # (P, K)
    eur_per_kwh = np.asarray(price_eur_per_mwh, dtype=float)[site] / 1000.0
    return eur_per_kwh[:, None] * np.asarray(pue_value, dtype=float)[site][:, None] * kwh_per_req


def _spill(plant: PlantParams, left_req: np.ndarray, free_gpu_s: np.ndarray,
           marginal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place ``left_req`` ``(R, K)`` on allowed pools with free GPU-seconds ``(P,)``, cheapest first.

    Returns:
        (spilled per (region, pool, class), what is left per stream, free GPU-seconds left per pool).
    """
    R, K = left_req.shape
    P = plant.n_pools
    spilled = np.zeros((R, P, K))
    if not (left_req > 0).any():
        return spilled, left_req, free_gpu_s
    work = plant.gpu_s_per_req[None]                                           # (1, P, K)
    cost = np.where(plant.allowed, marginal[None], np.inf)                     # (R, P, K)
    pools = np.arange(P)[None, :, None]
    left, free = left_req.copy(), free_gpu_s.copy()
    for _ in range(P + 1):
        cand = np.where(free[None, :, None] > 0, cost, np.inf)
        target = np.argmin(cand, axis=1)                                       # (R, K)
        asking = (left > 0) & np.isfinite(np.take_along_axis(cand, target[:, None, :], axis=1)[:, 0])
        if not asking.any():
            break
        ask = np.where((target[:, None, :] == pools) & asking[:, None, :], left[:, None, :], 0.0)
        demand = (ask * work).sum(axis=(0, 2))                                 # GPU-s per pool
        full = demand > free
        grant = np.where(full, free / np.where(full, demand, 1.0), 1.0)
        take = ask * grant[None, :, None]
        spilled += take
        free = np.where(full, 0.0, free - demand)
        left = np.where(asking, np.where(full[target], left - take.sum(axis=1), 0.0), left)
    return spilled, np.maximum(left, 0.0), free


def _serve_pro_rata(plant: PlantParams, routed: np.ndarray, cap_gpu_s: np.ndarray) -> np.ndarray:
    """Routed work ``(R, P, K)`` each pool serves within its capacity ``(P,)``, GPU-seconds: all of
    it where it fits, else every stream scaled by one factor."""
    need = np.einsum("rpk,pk->p", routed, plant.gpu_s_per_req)
    over = need > cap_gpu_s
    scale = np.where(over, cap_gpu_s / np.where(over, need, 1.0), 1.0)
    return routed * scale[None, :, None]


def _serve_classes(plant: PlantParams, routed: np.ndarray, offered_req: np.ndarray, unrouted: np.ndarray,
                   cap_gpu_s: np.ndarray,
                   marginal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps 2 and 3 of the module docstring: the interactive classes, then the deferrable ones,
    served pro rata within ``cap_gpu_s`` and their overflow spilled (an interactive stream's
    ``unrouted`` rest with it).

    Returns:
        (served, spilled per (region, pool, class), what is left per stream, free GPU-seconds left per pool).
    """
    work, defer = plant.gpu_s_per_req, plant.deferrable[None, :]
    cap = cap_gpu_s
    served, spilled = np.zeros_like(routed), np.zeros_like(routed)
    left = np.zeros_like(offered_req)
    for group in (~defer, defer):                                              # interactive, then deferrable
        part = np.where(group[:, None, :], routed, 0.0)
        mine = _serve_pro_rata(plant, part, cap)
        cap = np.maximum(cap - np.einsum("rpk,pk->p", mine, work), 0.0)
        overflow = (part - mine).sum(axis=1)                                   # (R, K)
        if group is not defer:   # an interactive stream's unrouted rest is placed too
            overflow = overflow + np.where(group, unrouted, 0.0)
        moved, rest, cap = _spill(plant, np.where(group, overflow, 0.0), cap, marginal)
        served, spilled, left = served + mine + moved, spilled + moved, left + rest
    return served, spilled, left, cap


def dispatch(plant: PlantParams, share: np.ndarray, offered_req: np.ndarray, gpus: np.ndarray,
             sub_s: float, marginal: np.ndarray, cap_gpu_s: np.ndarray | None = None,
             fill: bool = True) -> Dispatch:
    """One sub-step of the dispatcher (module docstring).

    Args:
        plant: coefficients.
        share: the hour's shares of each stream over pools, ``(R, P, K)``; a stream's shares sum
            to at most 1 (a deferrable stream's rest is deferred by decision).
        offered_req: work offered per stream in the sub-step, requests ``(R, K)``.
        gpus: active GPUs per pool, ``(P,)``.
        sub_s: the sub-step's length, s.
        marginal: marginal cost per (pool, class), EUR per request ``(P, K)``
            (``marginal_eur_per_req``); only the order matters.
        cap_gpu_s: each pool's capacity in the sub-step, GPU-seconds ``(P,)``
            (``control.constraints.pool_capacity_gpu_s``; None: ``rho_max × gpus × sub_s``).
        fill: False: no backlog fill in this sub-step whatever ``plant.backlog_fill`` (the
            decision's ``Allocation.backlog_fill``).

    Returns:
        The sub-step's ``Dispatch``.
    """
    work = plant.gpu_s_per_req                                                 # (P, K)
    defer = plant.deferrable[None, :]
    routed = share * offered_req[:, None, :]                                   # (R, P, K)
    cap = plant.rho_max * np.asarray(gpus, dtype=float) * sub_s if cap_gpu_s is None else np.asarray(cap_gpu_s)
    unrouted = np.maximum(1.0 - share.sum(axis=1), 0.0) * offered_req          # (R, K): no share holds it
    served, spilled, left, cap = _serve_classes(plant, routed, offered_req, unrouted, cap, marginal)
    if plant.backlog_fill and fill:   # the deferred-by-decision rest fills the capacity still free
        moved, _, cap = _spill(plant, np.where(defer, unrouted, 0.0), cap, marginal)
        served, spilled = served + moved, spilled + moved
    busy = np.einsum("rpk,pk->p", served, work)
    full_s = np.asarray(gpus, dtype=float) * sub_s
    util = np.divide(busy, full_s, out=np.zeros_like(busy), where=full_s > 0)
    return Dispatch(served, spilled, np.where(defer, left, 0.0), np.where(defer, 0.0, left), util)
