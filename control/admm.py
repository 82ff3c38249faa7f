"""Per-site ADMM for the allocation LP's cost stage (or its weighted objective): the sharing problem.

The LP of ``control._lp`` — min c·x s.t. lbg ≤ A x ≤ ubg, lbx ≤ x ≤ ubx — splits by column into one
block per site (its pools' served load, GPUs, starts, headroom shortfalls, grid import,
curtailment, battery, water overrun and group shares) and a coordinator block (the unserved
requests ``u`` and the backlog ``q`` of every stream). A row whose nonzeros lie in one block is that
block's own; the others couple blocks: each stream's demand and backlog balance, Σ x + u + Δq =
demand. ADMM in its sharing form (Boyd et al. 2011, *Distributed optimization and statistical
learning via ADMM*, §7.3), on coupling rows scaled to a largest coefficient of 1:

* every block b solves, warm, min c_b·x_b + ρ/2 ‖C_b x_b − v_b‖² under its own rows and bounds, with
  v_b = C_b x_b^k − mean^k + z^k − w^k (C_b: its coefficients in the coupling rows), plus a small
  proximal term (``control.admm_blocks.BlockQP``: a QP on OSQP through CasADi, built once, warm);
* per coupling row r with N_r blocks in it: mean = Σ_b C_b x_b ÷ N_r, z = clip(w + mean, l_r ÷ N_r,
  u_r ÷ N_r) (the row's bounds shared equally) and w ← w + mean − z (the scaled dual).

Stopping: the primal residual r = ‖N (mean − z)‖ (how far Σ_b C_b x_b is from the rows' bounds)
and the dual residual s = ρ (Σ_b ‖Δ(C_b x_b) − Δmean + Δz‖²)^½, each relative (r ÷ ‖Σ_b C_b x_b‖,
s ÷ ‖ρ w‖ over the blocks), both at most ``tolerance``, or ``max_iterations``. ρ: starts at
``rho`` (0: ‖c‖ of the coupled columns ÷ ‖rows' bounds‖, the ratio of the objective's and the
rows' scales) and follows residual balancing (Boyd §3.4.1): ×2 when r > 10 s, ÷2 when s > 10 r, w
rescaled with it. A step starts from the previous step's blocks, duals and ρ (warm).

``AdmmBackend`` plugs this into ``AllocationMPC`` as ``control.solver: admm``: the first stage
(cost, or the weighted objective) by ADMM; later lexicographic stages stay centralised (HiGHS on
the whole LP with the first stage's optimum kept, as the ``highs`` back end). Blocks run in this
process (``workers`` 0) or on W Ray actors, each owning a block of sites (``control.admm_ray``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from control._backends import HighsBackend
from control._lp import LinearProgram
from control.admm_blocks import BlockStructure, LocalWorkers, partition

__all__ = ["AdmmBackend", "AdmmReport", "AdmmSettings", "make_workers"]

RELAX = 1.6                  # over-relaxation α (Boyd §3.4.3: 1.5 … 1.8 speeds convergence)
KEEP_SLACK = 5e-3            # an ADMM stage's optimum is kept this much looser for later stages (the 0.5 % target)
MU, TAU = 10.0, 2.0          # residual balancing: rescale ρ by TAU when one residual exceeds MU × the other


@dataclass(frozen=True)
class AdmmSettings:
    """How ADMM runs (the config's ``control.admm_*`` keys)."""

    rho: float = 0.0               # initial penalty; 0: the scale ratio of the module docstring
    max_iterations: int = 1000
    tolerance: float = 1e-3        # relative primal and dual residuals
    workers: int = 0               # Ray actors; 0: every block in this process


@dataclass
class AdmmReport:
    """What the last ADMM solve did."""

    iterations: int = 0
    primal_rel: float = math.inf   # ‖Σ_b C_b x_b − its projection on the bounds‖ ÷ ‖the projection‖, unscaled rows
    dual_rel: float = math.inf
    rho: float = 0.0
    seconds: float = 0.0
    block_s: float = 0.0           # Σ over iterations of the slowest worker's compute (the blocks' QPs)
    block_sum_s: float = 0.0       # Σ over iterations and workers of compute (one worker's time for all blocks)
    exchange_s: float = 0.0        # Σ over iterations of the iterate call's wall time beyond the slowest worker
    converged: bool = False
    history: list[tuple[float, float, float]] = field(default_factory=list)   # (primal, dual, ρ) per iteration


class AdmmBackend(HighsBackend):
    """``control.solver: admm``: the first stage by per-site ADMM, later stages centralised (HiGHS).

    ``report`` says what the last ADMM solve did (iterations, residuals, ρ, seconds).
    """

    def __init__(self, lp: LinearProgram, time_limit_s: float, settings: AdmmSettings | None = None) -> None:
        super().__init__(lp, time_limit_s)
        self.settings = settings or AdmmSettings()
        self.part = partition(lp, self.colptr, self.rowind, self.n_core)
        self.workers = make_workers(self.part.structures, self.settings.workers)
        self.report = AdmmReport()
        self._w = np.zeros(len(self.part.coupling_rows))
        self._rho = float(self.settings.rho)

    def load(self, p, lbx, ubx, lbg, ubg) -> None:  # noqa: ANN001 (see Backend)
        super().load(p, lbx, ubx, lbg, ubg)
        part, n = self.part, self.n_core
        values = self._values.copy()
        scale = np.zeros(len(part.coupling_rows))
        np.maximum.at(scale, part.coupling_nz_row, np.abs(values[part.coupling_nz]))
        scale[scale == 0] = 1.0
        values[part.coupling_nz] /= scale[part.coupling_nz_row]
        lo, hi = self._lbg[:n] - self._offset[:n], self._ubg[:n] - self._offset[:n]   # as HighsBackend.load
        rows = part.coupling_rows
        self._scale, self._lo, self._hi = scale, lo[rows] / scale, hi[rows] / scale
        lbx, ubx = np.asarray(lbx, dtype=float), np.asarray(ubx, dtype=float)
        data = [(values[st.local_nz], values[st.coupling_nz], lo[st.local_rows], hi[st.local_rows], lbx[st.cols],
                 ubx[st.cols]) for st in part.structures]     # BlockQP.load caps infinite bounds for OSQP
        self._contrib = self.workers.load(data)

    def set_row_upper(self, row: int, value: float) -> None:
        """An earlier stage's optimum kept for the later, centralised stages: ADMM's iterate may sit a
        little below the LP's optimum (its rows hold to the tolerance only), so an objective row is
        kept ``KEEP_SLACK`` looser than it; should a later stage still find no solution, the MPC
        applies ADMM's plan and says so (status ``partial``)."""
        if row >= self.n_core:
            value = value + abs(value) * KEEP_SLACK
        super().set_row_upper(row, value)

    def solve(self, weights: np.ndarray, stage_index: int) -> tuple[np.ndarray | None, str, int]:
        if stage_index > 0:     # later lexicographic stages: centralised, on the whole LP
            return super().solve(weights, stage_index)
        start = time.perf_counter()
        cost = weights @ self._extra[:len(weights)]
        x, status = self._admm(cost)
        self.report.seconds = time.perf_counter() - start
        self.solver_time_s += self.report.seconds
        return x, status, self.report.iterations

    # ------------------------------------------------------------------ the iterations
    def _sum(self, contrib: list[np.ndarray]) -> np.ndarray:
        total = np.zeros(len(self.part.coupling_rows))
        for st, cx in zip(self.part.structures, contrib, strict=True):
            total[st.coupling] += cx
        return total

    def _initial_rho(self, cost: np.ndarray) -> float:
        if self._rho > 0:
            return self._rho
        coupled = np.concatenate([st.cols for st, c in zip(self.part.structures, self._contrib, strict=True)
                                  if len(c)])
        bounds = np.concatenate([self._lo[np.isfinite(self._lo)], self._hi[np.isfinite(self._hi)]])
        return max(float(np.linalg.norm(cost[coupled])), 1e-9) / max(float(np.linalg.norm(bounds)), 1.0)

    def _coupling_rel(self, total: np.ndarray) -> float:
        """‖Σ_b C_b x_b − its projection on the rows' bounds‖ ÷ ‖the projection‖, in the rows' own units."""
        inside = np.clip(total, self._lo, self._hi)
        gap = float(np.linalg.norm((total - inside) * self._scale))
        return gap / max(float(np.linalg.norm(inside * self._scale)), 1e-12)

    def _admm(self, cost: np.ndarray) -> tuple[np.ndarray | None, str]:
        s, N = self.settings, self.part.members
        costs = [cost[st.cols] for st in self.part.structures]
        mean = self._sum(self._contrib) / N
        it = _Iterate(self._contrib, mean, np.clip(self._w + mean, self._lo / N, self._hi / N), self._w,
                      self._initial_rho(cost))
        rep = self.report = AdmmReport()
        for k in range(1, s.max_iterations + 1):
            failed = self._iterate(it, costs)
            if failed:
                self._w, self._rho = np.zeros_like(it.w), 0.0
                return None, f"ADMM: {failed} (iteration {k})"
            rep.history.append((it.r_rel, it.s_rel, it.rho))
            rep.iterations, rep.primal_rel = k, self._coupling_rel(it.total)
            if max(it.r_rel, rep.primal_rel) <= s.tolerance and it.s_rel <= s.tolerance:
                rep.converged = True
                break
            if it.r_rel > MU * it.s_rel:        # residual balancing (the scaled dual follows ρ)
                it.rho, it.w = it.rho * TAU, it.w / TAU
            elif it.s_rel > MU * it.r_rel:
                it.rho, it.w = it.rho / TAU, it.w * TAU
        self._w, self._rho, self._contrib = it.w, it.rho, it.contrib
        rep.dual_rel, rep.rho = it.s_rel, it.rho
        x = np.zeros(self.n_cols)
        for st, xb in zip(self.part.structures, self.workers.solutions(), strict=True):
            x[st.cols] = xb
        if rep.converged:
            return x, "Optimal"
        return x, f"ADMM iteration cap {s.max_iterations}: primal {it.r_rel:.1e}, dual {it.s_rel:.1e}"

    def _iterate(self, it: _Iterate, costs: list[np.ndarray]) -> str:
        """One ADMM iteration on ``it`` (updated in place); a failed block's status, else ""."""
        structures, N = self.part.structures, self.part.members
        targets = [cx - (it.mean - it.z + it.w)[st.coupling] for st, cx in zip(structures, it.contrib, strict=True)]
        start = time.perf_counter()
        new, statuses, seconds = self.workers.iterate(costs, it.rho, targets)
        rep = self.report
        rep.block_s += max(seconds)
        rep.block_sum_s += sum(seconds)
        rep.exchange_s += time.perf_counter() - start - max(seconds)
        failed = [i for i, status in enumerate(statuses) if status != "Optimal"]
        if failed:
            return f"block {failed[0]} subproblem: {statuses[failed[0]]}"
        total = self._sum(new)
        mean = total / N
        relaxed = RELAX * mean + (1.0 - RELAX) * it.z     # over-relaxation (Boyd §3.4.3)
        z = np.clip(it.w + relaxed, self._lo / N, self._hi / N)
        w = it.w + relaxed - z
        change = sum(float(np.sum((cn - co - (mean - it.mean + z - it.z)[st.coupling]) ** 2))
                     for st, cn, co in zip(structures, new, it.contrib, strict=True))
        scale = max(float(np.linalg.norm(total)), float(np.linalg.norm(N * z)), 1e-12)
        it.r_rel = float(np.linalg.norm(N * (mean - z))) / scale
        it.s_rel = it.rho * math.sqrt(change) / max(it.rho * math.sqrt(float(np.sum(N * w * w))), 1e-12)
        it.contrib, it.mean, it.z, it.w, it.total = new, mean, z, w, total
        return ""


@dataclass
class _Iterate:
    """ADMM's iterate: each block's C x, the rows' mean and z, the scaled dual w, ρ and the residuals."""

    contrib: list[np.ndarray]
    mean: np.ndarray
    z: np.ndarray
    w: np.ndarray
    rho: float
    total: np.ndarray = field(default_factory=lambda: np.zeros(0))
    r_rel: float = math.inf
    s_rel: float = math.inf


def make_workers(structures: list[BlockStructure], workers: int) -> Any:
    """The blocks in this process (``workers`` 0) or on that many Ray actors (``control.admm_ray``)."""
    if workers <= 0:
        return LocalWorkers(structures)
    from control.admm_ray import RayWorkers
    return RayWorkers(structures, workers)
