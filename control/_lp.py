"""The allocation LP over a horizon, built once from the plant's equations on CasADi symbols.

Decision blocks (per LP step t): served req/s on allowed pairs ``x`` (the first ``E`` exact steps)
or on the pooled plant's pairs ``xa`` (the tail: regions with identical allowed pairs pooled, in
blocks of ``tail_block_steps`` plant steps), active GPUs ``n``, grid import ``g``, curtailment
``c``, battery charge/discharge ``bc``/``bd`` and end-of-step state of charge ``soc`` (at battery
sites only), unserved req/s ``u``/``ua`` per stream, end-of-step backlog ``q``/``qa`` per
deferrable stream, GPU starts ``st``, litres over budget ``wo`` per (site, UTC day), headroom
shortfalls ``zr``/``zb`` and, with group shares, the applied step's split ``share0`` per (region
group, pool, class). Parameters multiply decisions (PUE, WUE, EWIF, price, carbon, provisioning
ratio, day mask, backlog value per step end, objective weights); additive data (load, renewables,
initial state, deadlines) are row and variable bounds. Nothing here is rebuilt per solve.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

import casadi as ca
import numpy as np

from control import plant as pl
from control.constraints import FAMILIES
from control.plant import PlantParams

__all__ = ["Blocks", "KEPT_ROWS", "LinearProgram", "OBJECTIVES"]

OBJECTIVES = ("cost", "carbon", "delay", "water")
KEPT_ROWS = (*OBJECTIVES, "unserved", "headroom")  # stage rows: each objective, unserved requests, headroom risk


class Blocks:
    """Named ``(rows, width)`` blocks of one flat CasADi vector."""

    def __init__(self, name: str, spec: dict[str, tuple[int, int]], kind: type[ca.SX] = ca.SX) -> None:
        self.spec, self.offset, off = spec, {}, 0
        for key, (rows, width) in spec.items():
            self.offset[key] = off
            off += rows * width
        self.size = off
        self.sym = kind.sym(name, off)

    def __call__(self, key: str, t: int = 0) -> Any:
        width = self.spec[key][1]
        start = self.offset[key] + t * width
        return self.sym[start:start + width]

    def slice(self, key: str) -> slice:
        rows, width = self.spec[key]
        return slice(self.offset[key], self.offset[key] + rows * width)

    def unpack(self, vec: np.ndarray, key: str) -> np.ndarray:
        return np.asarray(vec)[self.slice(key)].reshape(self.spec[key])

    def pack(self, vec: np.ndarray, key: str, value: Any) -> None:
        vec[self.slice(key)] = np.broadcast_to(value, self.spec[key]).ravel()


@dataclass(frozen=True)
class Dims:
    H: int
    E: int                    # exact steps: routed per (region, pool, class); later ones pooled
    m: int
    ma: int                   # pairs of the pooled plant (region group, pool, class)
    P: int
    S: int
    RK: int
    RKa: int                  # pooled streams (region group, class)
    K: int
    n_days: int
    B: int                    # sites with a battery (the only ones with battery variables)
    interactive: np.ndarray   # stream indices of interactive classes
    deferred: np.ndarray      # stream indices of deferrable classes
    interactive_a: np.ndarray  # pooled stream indices of interactive classes
    deferred_a: np.ndarray

    @property
    def T(self) -> int:
        """Pooled steps (the horizon's tail)."""
        return self.H - self.E


def step_hours(horizon: int, exact_steps: int | None, block_steps: int) -> np.ndarray:
    """Length of each LP step in plant steps: exact ones 1, the tail in blocks of ``block_steps`` (the last shorter)."""
    E = horizon if exact_steps is None else min(int(exact_steps), horizon)
    tail = horizon - E
    blocks = [block_steps] * (tail // block_steps) + ([tail % block_steps] if tail % block_steps else [])
    return np.array([1] * E + blocks, dtype=int)


def dims(plant: PlantParams, horizon: int, exact_steps: int | None = None, pooled: PlantParams | None = None,
         n_steps: int | None = None) -> Dims:
    K = len(plant.class_names)
    streams = np.arange(plant.n_streams)
    defer = plant.deferrable[streams % K]
    n_days = math.ceil(horizon * plant.step_h / 24.0) + 1
    E = horizon if exact_steps is None else min(int(exact_steps), horizon)
    horizon = horizon if n_steps is None else n_steps    # LP steps (tail blocks count once)
    pooled_streams = np.arange(pooled.n_streams if pooled is not None else 0)
    defer_a = plant.deferrable[pooled_streams % K]
    return Dims(horizon, E, plant.n_pairs, pooled.n_pairs if pooled is not None else 0, plant.n_pools,
                plant.n_sites, plant.n_streams, len(pooled_streams), K, n_days, len(plant.battery_sites),
                streams[~defer], streams[defer], pooled_streams[~defer_a], pooled_streams[defer_a])


class LinearProgram:
    """Variables, parameters, constraint rows and objective terms of the horizon LP.

    Args:
        plant: coefficients.
        horizon: H steps.
        exact_steps: steps routed per (region, pool, class) from the start (None: all). Later
            steps plan on ``plant.regions_pooled()``: regions with the same allowed pairs are one
            region there, so routing, cost, carbon, power, water and capacity keep their exact
            form and only the delay is relaxed (the group's shortest RTT per site); provisioning
            ratios and backlog values are the group's. Only step 0 is applied, and the hindsight
            optimum is always exact.
        group_shares: the applied step splits every interactive stream of a region group over
            the pools in the same proportions (one share per (group, pool, class), variable
            ``share0``): each pool then takes a fixed part of the group's total load, so that a
            burst of one stream is spread over every pool the group uses instead of overflowing
            the few that suit that stream best (``control.group_interactive_shares``).
        tail_block_steps: plant steps per LP step in the pooled tail (move blocking; the last
            block is shorter when the tail does not divide); see ``step_hours``.
        hold_steps: the sub-step LP of the hindsight references (``control.reference``): steps
            are sub-steps and the hourly rules hold over blocks of this many steps, aligned to the
            horizon's end (a shrinking horizon that starts mid-hour begins with the rest of that
            hour): GPUs, grid import, curtailment and battery power are held over a block (rows
            ``hold``), the power balance holds for the block's energy (rows ``balance`` per block,
            as the plant accounts power per hour) and, when the first block is partial, its GPUs
            are those already running (row ``continue``). With holds, rows ``block_shares`` make
            each pair's served load one share per block (variable ``sh``) × the work the plant
            offers its stream in the step (parameter ``pair_load``): routing as the plant's hourly
            shares route it. They bind only when their row bounds say so (``AllocationMPC``),
            else they are free rows. 1: every step free (the hourly LP). Only with every step
            exact.
        sub_steps: M > 1 adds the applied step's ``sub_capacity`` rows: each pool's work in each
            of the hour's M sub-steps within its GPUs (the MPC binds them when the forecast knows
            the sub-steps: perfect foresight), so that the hour's shares and GPUs are chosen for
            the busiest sub-step of each pool instead of one fleet peak factor for every pool.
    """

    def __init__(self, plant: PlantParams, horizon: int, exact_steps: int | None = None,
                 group_shares: bool = False, tail_block_steps: int = 1, hold_steps: int = 1,
                 sub_steps: int = 1) -> None:
        if sub_steps < 1:
            raise ValueError(f"sub_steps: {sub_steps}, at least 1")
        if exact_steps is not None and exact_steps < 1:
            raise ValueError(f"exact_steps: {exact_steps}, at least 1 (the applied step is always exact)")
        if tail_block_steps < 1:
            raise ValueError(f"tail_block_steps: {tail_block_steps}, at least 1")
        if hold_steps < 1 or (hold_steps > 1 and exact_steps is not None and exact_steps < horizon):
            raise ValueError(f"hold_steps: {hold_steps}; valid: ≥ 1, and 1 unless every step is exact "
                             f"(exact_steps {exact_steps} < horizon {horizon})")
        self.plant, self.sub_steps = plant, int(sub_steps)
        self.pooled = plant.regions_pooled() if exact_steps is not None and exact_steps < horizon else None
        self.step_hours = step_hours(horizon, exact_steps, tail_block_steps if self.pooled is not None else 1)
        # the plant of each LP step: exact, or pooled with the block's length as its step
        durations = {int(h): replace(self.pooled, step_h=plant.step_h * int(h)) for h in set(self.step_hours)} \
            if self.pooled is not None else {}
        d = dims(plant, horizon, exact_steps, self.pooled, len(self.step_hours))
        step = np.arange(d.H)
        self.hold_steps = int(hold_steps)
        self.block_start = (step == 0) | ((d.H - step) % self.hold_steps == 0)   # (LP steps,) a block's first
        self.block_end = np.append(self.block_start[1:], True)                   # (LP steps,) a block's last
        self._step_plants = [plant if t < d.E else durations[int(self.step_hours[t])] for t in range(d.H)]
        self.d = d
        self._group_map(group_shares)
        groups = plant.region_groups
        stream = np.arange(d.RK)
        # (pooled streams, streams): sums each region group's streams of a class
        self.stream_to_pooled = ((groups[stream // d.K] * d.K + stream % d.K)[None, :]
                                 == np.arange(d.RKa)[:, None]).astype(float)
        self.x, self.p = self._blocks(group_shares, hold_steps)
        self.rows: dict[str, tuple[int, int]] = {}
        self.row_offset: dict[str, int] = {}
        self.terms = self._terms()
        self.g = ca.vertcat(*self._rows())
        self.g_fn = ca.Function("rows", [self.x.sym, self.p.sym], [self.g])
        self.objective = ca.dot(self.p("weights"), self._objective_rows())

    def _blocks(self, group_shares: bool, hold_steps: int) -> tuple[Blocks, Blocks]:
        """The decision and parameter blocks (see the module docstring); ``sh`` and ``pair_load`` with holds only."""
        d = self.d
        nd, nda = len(d.deferred), len(d.deferred_a)
        n_blocks = int(self.block_start.sum()) if hold_steps > 1 else 0
        x = Blocks("x", {"x": (d.E, d.m), "xa": (d.T, d.ma), "n": (d.H, d.P), "g": (d.H, d.S),
                         "c": (d.H, d.S), "bc": (d.H, d.B), "bd": (d.H, d.B), "soc": (d.H, d.B),
                         "u": (d.E, d.RK), "ua": (d.T, d.RKa), "q": (d.E, nd), "qa": (d.T, nda),
                         "st": (d.H, d.P), "wo": (1, d.S * d.n_days), "zr": (d.H, d.P), "zb": (1, d.m),
                         "share0": (1, len(self.group_keys)),
                         "sh": (n_blocks, d.m)})
        p = Blocks("p", {"pue": (d.H, d.S), "wue": (d.H, d.S), "ewif": (d.H, d.S),
                         "price": (d.H, d.S), "ci": (d.H, d.S), "ratio": (d.E, d.RK),
                         "ratio_a": (d.T, d.RKa), "daymask": (d.H, d.n_days), "term": (d.E, nd),
                         "term_a": (d.T, nda), "episode_end": (1, d.H), "burst": (1, d.RK),
                         "reserve_eur": (d.H, d.P),
                         "burst_eur": (1, d.m), "unserved_risk_eur": (d.E, d.RK),
                         "pair_load0": (1, d.m if group_shares else 0),
                         "unserved_risk_a": (d.T, d.RKa), "weights": (1, len(KEPT_ROWS)),
                         "pair_load": (d.H if hold_steps > 1 else 0, d.m),
                         "sub_ratio": (self.sub_steps if self.sub_steps > 1 else 0, d.RK)})
        return x, p

    def _group_map(self, group_shares: bool) -> None:
        """With ``group_shares``: the interactive pairs of step 0 (``group_pairs``) and, for each,
        the (region group, pool, class) share it takes (``group_col`` into ``group_keys``)."""
        plant = self.plant
        self.group_shares = group_shares
        inter = ~plant.deferrable[plant.pairs[:, 2]] if group_shares else np.zeros(plant.n_pairs, dtype=bool)
        key = np.stack([plant.region_groups[plant.pairs[:, 0]], plant.pairs[:, 1], plant.pairs[:, 2]], axis=1)
        self.group_keys = sorted({tuple(int(v) for v in k) for k in key[inter]})
        index = {k: i for i, k in enumerate(self.group_keys)}
        self.group_pairs = np.flatnonzero(inter)
        self.group_col = np.array([index[tuple(int(v) for v in k)] for k in key[self.group_pairs]], dtype=int)

    def step_plant(self, t: int) -> tuple[PlantParams, Any]:
        """The plant and the served-load vector of LP step t (exact pairs, or pooled ones; a
        pooled block's plant has the block's length as its step)."""
        x = self.x("x", t) if t < self.d.E else self.x("xa", t - self.d.E)
        return self._step_plants[t], x

    # ------------------------------------------------------------------ rows
    def _add(self, key: str, per_step: list[Any]) -> list[Any]:
        start = sum(r * w for r, w in self.rows.values())
        width = int(per_step[0].numel())
        self.rows[key] = (len(per_step), width)
        self.row_offset[key] = start
        return per_step

    def row_slice(self, key: str) -> slice:
        rows, width = self.rows[key]
        return slice(self.row_offset[key], self.row_offset[key] + rows * width)

    def it_kw(self, t: int) -> Any:
        """Site IT power at step t, kW (the plant's equation on symbols)."""
        plant, x = self.step_plant(t)
        return pl.site_total(plant, pl.pool_it_kw(plant, x, self.x("n", t)))

    def _rows(self) -> list[Any]:
        """Every constraint row, block by block, the objective rows last (``_add`` records where)."""
        plant, rows = self.plant, self._step_rows()
        keys = ("demand", "backlog", "demand_a", "backlog_a", "capacity", "reserve", "burst", "sub_capacity",
                "group_shares")
        blocks = [(key, rows[key]) for key in keys]
        blocks += [(f.name, f.rows(self)) for f in FAMILIES if f.applies(plant)]   # control.constraints
        blocks += self._hold_rows()
        out: list[Any] = []
        for key, block in blocks:
            if block and int(block[0].numel()):
                out += self._add(key, block)
        out += self._add("objectives", [self._objective_rows()])
        return out

    def _objective_rows(self) -> Any:
        """Each objective's stage expression, the requests left unserved and the headroom risk in
        request equivalents (its EUR ÷ the drop price), in ``KEPT_ROWS`` order."""
        risk_req = self.terms["risk_eur"] / self.risk_eur_per_req
        return ca.vertcat(*[self.stage_expr(o) for o in OBJECTIVES], self.unserved_req(), risk_req)

    def _step_rows(self) -> defaultdict[str, list[Any]]:
        """The rows of each LP step by block name (``burst`` and ``group_shares``: step 0 only)."""
        d = self.d
        rows: defaultdict[str, list[Any]] = defaultdict(list)
        # (pooled deferred streams, deferred streams): the regions' backlog into the pooled one
        to_pooled = ca.DM(self.stream_to_pooled[np.ix_(d.deferred_a, d.deferred)])
        for t in range(d.H):
            sp, xt = self.step_plant(t)
            self._stream_rows(rows, t, sp, xt, to_pooled)
            ratio, short_gpu_s = self._capacity_rows(rows, t, sp, xt)
            if t == 0:
                self._step0_rows(rows, xt, ratio, short_gpu_s)
                self._sub_step_rows(rows, sp, xt)
        return rows

    def _stream_rows(self, rows: defaultdict[str, list[Any]], t: int, sp: PlantParams, xt: Any,
                     to_pooled: Any) -> None:
        """Step t's ``demand`` rows (interactive streams, req/s) and ``backlog`` rows (deferrable
        streams' queues, requests); ``_a`` ones in the pooled tail."""
        d, x = self.d, self.x
        exact = t < d.E
        u = x("u", t) if exact else x("ua", t - d.E)
        served = pl.stream_served_req_per_s(sp, xt) + u
        inter, defer = (d.interactive, d.deferred) if exact else (d.interactive_a, d.deferred_a)
        if len(inter):
            rows["demand" if exact else "demand_a"].append(served[inter.tolist()])
        if len(defer):
            if exact:
                q_prev = x("q", t - 1) if t else 0
                rows["backlog"].append(x("q", t) - q_prev + sp.step_s * served[defer.tolist()])
            else:
                j = t - d.E
                q_prev = x("qa", j - 1) if j else ca.mtimes(to_pooled, x("q", d.E - 1))
                rows["backlog_a"].append(x("qa", j) - q_prev + sp.step_s * served[defer.tolist()])

    def _capacity_rows(self, rows: defaultdict[str, list[Any]], t: int, sp: PlantParams,
                       xt: Any) -> tuple[Any, Any]:
        """Step t's ``capacity`` and ``reserve`` rows (per pool); returns the provisioning ratio per
        pair and the work at that level over usable capacity, GPU-s (for the burst rows)."""
        d, x, p, rho_max = self.d, self.x, self.p, self.plant.rho_max
        ratio_rows = p("ratio", t) if t < d.E else p("ratio_a", t - d.E)
        ratio = ca.mtimes(sp.casadi_matrices["stream_matrix"].T, ratio_rows)  # per pair
        rows["capacity"].append(pl.pool_work_gpu(sp, xt) - rho_max * x("n", t))
        short_gpu_s = pl.pool_work_gpu(sp, ratio * xt) - rho_max * x("n", t)
        rows["reserve"].append(short_gpu_s - x("zr", t))
        return ratio, short_gpu_s

    def _step0_rows(self, rows: defaultdict[str, list[Any]], xt: Any, ratio: Any, short_gpu_s: Any) -> None:
        """The applied step's ``group_shares`` rows (with group shares) and ``burst`` rows."""
        plant, x, p = self.plant, self.x, self.p
        if len(self.group_pairs):  # x = (the group's share) × (the stream's load); [rows, 0]: columns
            pick, share = self.group_pairs.tolist(), x("share0")[self.group_col.tolist(), 0]
            rows["group_shares"].append(xt[pick, 0] - p("pair_load0")[pick, 0] * share)
        # any one stream at its burst level, the others at the provisioning level
        burst = ca.mtimes(plant.casadi_matrices["stream_matrix"].T, p("burst")) - ratio
        work = ca.DM(plant.pool_work_matrix.sum(axis=0))        # GPU-s per request per pair
        pool_of_pair = plant.pairs[:, 1].tolist()
        rows["burst"].append(short_gpu_s[pool_of_pair, 0] + burst * work * xt - x("zb"))

    def _sub_step_rows(self, rows: defaultdict[str, list[Any]], sp: PlantParams, xt: Any) -> None:
        """The applied step's ``sub_capacity`` rows (``sub_steps`` > 1): each pool's work in each
        sub-step of the hour, the hour's served load × the sub-step's load over the hour's mean per
        stream (parameter ``sub_ratio``; the dispatcher routes every sub-step by the hour's shares),
        minus its usable capacity (≤ 0 when the sub-steps are known, free rows otherwise)."""
        x, p, rho_max = self.x, self.p, self.plant.rho_max
        to_pairs = sp.casadi_matrices["stream_matrix"].T
        for m in range(self.sub_steps if self.sub_steps > 1 else 0):
            ratio = ca.mtimes(to_pairs, p("sub_ratio", m))
            rows["sub_capacity"].append(pl.pool_work_gpu(sp, ratio * xt) - rho_max * x("n", 0))

    def per_block(self, per_step: list[Any]) -> list[Any]:
        """Rows per step summed over each hold block (unchanged without holds)."""
        if self.hold_steps == 1:
            return per_step
        starts = np.flatnonzero(self.block_start).tolist() + [len(per_step)]
        return [sum(per_step[a:b]) for a, b in zip(starts[:-1], starts[1:], strict=True)]

    def _hold_rows(self) -> list[tuple[str, list[Any]]]:
        """``hold``: each held decision minus its value one step before, inside a block (= 0);
        ``continue``: the first step's GPUs when the first block is partial (= those running)."""
        if self.hold_steps == 1:
            return []
        x, keys = self.x, ("n", "g", "c", "bc", "bd")
        inside = [t for t in range(1, self.d.H) if not self.block_start[t]]
        rows = [ca.vertcat(*[x(k, t) - x(k, t - 1) for k in keys]) for t in inside]
        first_partial = self.d.H % self.hold_steps != 0
        block = (np.cumsum(self.block_start) - 1).tolist()
        shares = [x("x", t) - self.p("pair_load", t) * x("sh", block[t]) for t in range(self.d.H)]
        return [("hold", rows), ("continue", [x("n", 0)] if first_partial else []), ("block_shares", shares)]

    @property
    def risk_eur_per_req(self) -> float:
        """EUR per request equivalent of the kept ``headroom`` row (the drop price; 1 without one)."""
        return self.plant.penalties.drop_eur_per_request or 1.0

    def unserved_req(self) -> Any:
        """Requests left unserved over the horizon (exact and pooled steps), and the backlog left
        at the episode's end (parameter ``episode_end``: 1 at that LP step), which the end rule drops
        (the cost objective prices it through the backlog's terminal value instead)."""
        d, x, p = self.d, self.x, self.p
        unserved = self._unserved_in_steps_req()
        if len(d.deferred):
            end = p("episode_end")
            unserved = unserved + (sum(end[t] * ca.sum1(x("q", t)) for t in range(d.E))
                                   + sum(end[d.E + j] * ca.sum1(x("qa", j)) for j in range(d.T)))
        return unserved

    def _unserved_in_steps_req(self) -> Any:
        d, x = self.d, self.x
        return (sum(ca.sum1(x("u", t)) for t in range(d.E)) * self.plant.step_s
                + sum(ca.sum1(x("ua", j)) * self._step_plants[d.E + j].step_s for j in range(d.T)))

    def water_step_l(self, t: int) -> Any:
        p = self.p
        return pl.water_l(self._step_plants[t], p("wue", t), self.it_kw(t), p("ewif", t), self.x("g", t))

    # ------------------------------------------------------------------ objectives
    def _terms(self) -> dict[str, Any]:
        plant, d, x, p = self.plant, self.d, self.x, self.p
        pen = plant.penalties
        sps = self._step_plants
        energy = sum(pl.energy_cost_eur(sps[t], p("price", t), x("g", t)) for t in range(d.H))
        drops = self._unserved_in_steps_req() * pen.drop_eur_per_request
        starts = sum(ca.sum1(x("st", t)) for t in range(d.H)) * pen.gpu_start_eur
        water_pen = ca.sum1(x("wo")) * pen.water_eur_per_l
        terminal = ca.SX(0)
        if len(d.deferred):
            terminal = (sum(ca.dot(p("term", t), x("q", t)) for t in range(d.E))
                        + sum(ca.dot(p("term_a", j), x("qa", j)) for j in range(d.T)))
        risk = (sum(ca.dot(p("reserve_eur", t), x("zr", t)) for t in range(d.H))
                + sum(ca.dot(p("unserved_risk_eur", t), x("u", t)) for t in range(d.E))
                + sum(ca.dot(p("unserved_risk_a", j), x("ua", j)) for j in range(d.T))
                + ca.dot(p("burst_eur"), x("zb")))
        return {
            "energy_cost_eur": energy,
            "penalties_eur": drops + starts + water_pen,
            "terminal_eur": terminal,
            "risk_eur": risk,
            "carbon_kg": sum(pl.carbon_kg(sps[t], p("ci", t), x("g", t)) for t in range(d.H)),
            "water_l": sum(ca.sum1(self.water_step_l(t)) for t in range(d.H)),
            "delay_req_s": sum(pl.delay_req_s(*self.step_plant(t)) for t in range(d.H)),
        }

    def stage_expr(self, name: str) -> Any:
        """The expression minimised by a stage (``cost`` = energy + penalties + terminal value + risk)."""
        terms = self.terms
        if name == "cost":
            return terms["energy_cost_eur"] + terms["penalties_eur"] + terms["terminal_eur"] + terms["risk_eur"]
        return terms[{"carbon": "carbon_kg", "delay": "delay_req_s", "water": "water_l"}[name]]
