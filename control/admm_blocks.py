"""ADMM's blocks: which site owns each LP column, the LP split into blocks, and each block's QP.

``column_blocks`` places every column of ``control._lp``'s LP at a site (its pools' served load, GPUs,
starts, headroom shortfalls, grid import, curtailment, battery, water overrun and group shares) or
at the coordinator (unserved requests and backlog). ``partition`` reads the LP's sparsity: a row
whose nonzeros lie in one block is that block's own, the others couple blocks (each stream's demand
and backlog balance). ``BlockQP`` is one block's subproblem (OSQP), ``BlockWorker`` several of them in one
process (this one or a Ray actor's: ``control.admm_ray``). The iterations are ``control.admm``'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import casadi as ca
import numpy as np
import scipy.sparse as sp

from control._lp import LinearProgram

__all__ = ["BlockQP", "BlockStructure", "BlockWorker", "LocalWorkers", "Partition", "column_blocks", "partition"]

PROX = 1e-3                  # proximal term δ/2 ‖x − x_k‖², δ = PROX × ρ: strictly convex blocks; ADMM's fixed point
                             # is unchanged (the semidefinite QP made the block solvers stall)
QP_EPS = 1e-6                # OSQP's absolute and relative tolerances in a block (ADMM's own: control.admm_tolerance)
QP_MAX_ITER = 4_000          # OSQP's iterations per block solve; its iterate then stands (inexact ADMM steps
                             # still converge; the residuals judge the result)
SOLVED = ("solved", "solved inaccurate", "maximum iterations reached")   # usable iterates; infeasible ones fail
BIG = 1e30                   # OSQP's infinity
_SITE_KEYS_POOL = ("n", "st", "zr")
_COORDINATOR_KEYS = ("u", "ua", "q", "qa")


def _finite(v: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(v, dtype=float), -BIG, BIG)



def _pair_sites(plant: Any, pairs: np.ndarray) -> np.ndarray:
    return np.asarray(plant.pool_site)[pairs[:, 1]]


def column_blocks(lp: LinearProgram) -> np.ndarray:
    """The block of each LP column: its site (0 … S − 1), or S for the coordinator (``u``, ``q``).

    Raises:
        ValueError: a variable block this mapping does not know (a new LP variable must say
            where it belongs before ADMM can split the LP).
    """
    plant, d = lp.plant, lp.d
    pair_site = _pair_sites(plant, plant.pairs)
    battery = np.asarray(plant.battery_sites)
    per_key: dict[str, np.ndarray] = {
        "x": pair_site, "zb": pair_site, "sh": pair_site, "g": np.arange(d.S), "c": np.arange(d.S),
        "bc": battery, "bd": battery, "soc": battery,
        "wo": np.arange(d.S * d.n_days) % d.S,   # reshaped (S, days) column-major: site = index mod S
        "share0": np.asarray(plant.pool_site)[[k[1] for k in lp.group_keys]].astype(int),
    }
    if lp.pooled is not None:
        per_key["xa"] = _pair_sites(lp.pooled, lp.pooled.pairs)
    out = np.full(lp.x.size, -1, dtype=int)
    for key, (rows, width) in lp.x.spec.items():
        if rows * width == 0:
            continue
        if key in _COORDINATOR_KEYS:
            site = np.full(width, d.S)
        elif key in _SITE_KEYS_POOL:
            site = np.asarray(plant.pool_site)
        elif key in per_key:
            site = per_key[key]
        else:
            raise ValueError(f"ADMM: LP variable block {key!r} has no site; known: "
                             f"{sorted((*_COORDINATOR_KEYS, *_SITE_KEYS_POOL, *per_key))}")
        out[lp.x.slice(key)] = np.tile(np.asarray(site, dtype=int), rows)
    return out


@dataclass(frozen=True)
class BlockStructure:
    """One block's columns and rows in the LP, and the sparsity of its QP (fixed when built)."""

    cols: np.ndarray        # global columns, ascending
    local_rows: np.ndarray  # global core rows of this block alone, ascending
    coupling: np.ndarray    # indices into the coupling rows this block has coefficients in, ascending
    local_nz: np.ndarray    # positions in A's nonzeros of (local rows × cols), in the block's CSC order
    coupling_nz: np.ndarray  # positions in A's nonzeros of (coupling rows × cols), CSC order
    local_sp: ca.Sparsity
    coupling_sp: ca.Sparsity


class BlockQP:
    """One block's ADMM subproblem, min c·x + ρ/2 ‖C x − v‖² + δ/2 ‖x − x_k‖² under its rows and
    bounds: a QP on OSQP through CasADi's conic interface, built once on the block's sparsity and
    warm-started from its last solution and duals (its Hessian ρ (C'C + PROX·I) from a CasADi
    Function of the coupling coefficients and ρ). Columns are scaled so that each one's largest
    coupling coefficient is 1 (the backlog's is 1/3600 otherwise, an ill-conditioned QP)."""

    def __init__(self, st: BlockStructure) -> None:
        self.st = st
        n = len(st.cols)
        cvals, rho = ca.SX.sym("c", st.coupling_sp.nnz()), ca.SX.sym("rho")
        cmat = ca.SX(st.coupling_sp, cvals)
        hess = rho * (ca.mtimes(cmat.T, cmat) + PROX * ca.SX.eye(n))
        self._hess = ca.Function("block_hessian", [cvals, rho], [hess])
        opts: dict[str, Any] = {"osqp": {"eps_abs": QP_EPS, "eps_rel": QP_EPS, "max_iter": QP_MAX_ITER, "polish": True,
                         "verbose": False}, "warm_start_primal": True, "warm_start_dual": True,
                "error_on_fail": False}
        self.qp = ca.conic("block", "osqp", {"h": hess.sparsity(), "a": st.local_sp}, opts)
        self._lcol = np.asarray(st.local_sp.get_col(), dtype=int)
        self._ccol = np.asarray(st.coupling_sp.get_col(), dtype=int)
        self.d = np.ones(n)     # column scales: x = d · (the QP's variables)
        self.x, self.lam_x, self.lam_a = np.zeros(n), np.zeros(n), np.zeros(len(st.local_rows))
        self._rho = -1.0

    def load(self, local_values: np.ndarray, cvals: np.ndarray, lba: np.ndarray, uba: np.ndarray,
             lbx: np.ndarray, ubx: np.ndarray) -> None:
        """The step's nonzeros of its own rows and of the (scaled) coupling rows, and its bounds."""
        st, n = self.st, len(self.st.cols)
        peak = np.zeros(n)   # each column's largest coupling coefficient: scaled to 1
        np.maximum.at(peak, self._ccol, np.abs(cvals))
        d_new = np.where(peak > 0, 1.0 / np.where(peak > 0, peak, 1.0), 1.0)
        self.x, self.lam_x, self.d = self.x * self.d / d_new, self.lam_x * d_new / self.d, d_new
        self.cvals = cvals * d_new[self._ccol]
        self.cmat = sp.csc_matrix((self.cvals, st.coupling_sp.row(), st.coupling_sp.colind()),
                                  shape=(len(st.coupling), n))
        self.a = ca.DM(st.local_sp, local_values * d_new[self._lcol])
        self.lba, self.uba = _finite(lba), _finite(uba)
        self.lbx, self.ubx = _finite(lbx / d_new), _finite(ubx / d_new)
        self.x = np.clip(self.x, self.lbx, self.ubx)
        self._rho = -1.0

    def contribution(self) -> np.ndarray:
        return self.cmat @ self.x if self.cmat.shape[0] else np.zeros(0)

    def solve(self, cost: np.ndarray, rho: float, v: np.ndarray) -> tuple[np.ndarray, str]:
        """x minimising the subproblem (kept with its duals as the next warm start); ``Optimal`` or
        OSQP's status."""
        if rho != self._rho:
            self.h, self._rho = self._hess(self.cvals, rho), rho
        g = cost * self.d - PROX * rho * self.x   # the proximal term's linear part (its fixed point is ADMM's)
        if len(v):
            g = g - rho * (self.cmat.T @ v)
        sol = self.qp(h=self.h, g=g, a=self.a, lba=self.lba, uba=self.uba, lbx=self.lbx, ubx=self.ubx,
                      x0=self.x, lam_x0=self.lam_x, lam_a0=self.lam_a)
        status = str(self.qp.stats().get("return_status", "unknown"))
        x = np.asarray(sol["x"], dtype=float).ravel()
        if status not in SOLVED or not np.isfinite(x).all():
            return self.x, status
        self.x = np.clip(x, self.lbx, self.ubx)
        self.lam_x = np.asarray(sol["lam_x"], dtype=float).ravel()
        self.lam_a = np.asarray(sol["lam_a"], dtype=float).ravel()
        return self.x, "Optimal"


class BlockWorker:
    """Several blocks' subproblems in one process (this one, or a Ray actor's)."""

    def __init__(self, structures: list[BlockStructure]) -> None:
        self.blocks = [BlockQP(st) for st in structures]

    def load(self, data: list[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
        """Each block's ``BlockQP.load`` arguments; returns each block's C x at its warm start."""
        for qp, args in zip(self.blocks, data, strict=True):
            qp.load(*args)
        return [qp.contribution() for qp in self.blocks]

    def iterate(self, costs: list[np.ndarray], rho: float,
                targets: list[np.ndarray]) -> tuple[list[np.ndarray], list[str], float]:
        """One x-update of every block; returns each block's C x, its status and the seconds spent."""
        start = time.perf_counter()
        out, statuses = [], []
        for qp, cost, v in zip(self.blocks, costs, targets, strict=True):
            _, status = qp.solve(cost, rho, v)
            out.append(qp.contribution())
            statuses.append(status)
        return out, statuses, time.perf_counter() - start

    def solutions(self) -> list[np.ndarray]:
        return [qp.x * qp.d for qp in self.blocks]


def _csc(n_rows: int, n_cols: int, rows: np.ndarray, cols: np.ndarray) -> ca.Sparsity:
    """The CSC sparsity of nonzeros given in column-major order (rows ascending within a column)."""
    colind = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=n_cols))]).astype(int)
    return ca.Sparsity(int(n_rows), int(n_cols), colind.tolist(), np.asarray(rows, dtype=int).tolist())


@dataclass(frozen=True)
class Partition:
    """The LP split into blocks: each block's structure, and the coupling rows."""

    structures: list[BlockStructure]
    coupling_rows: np.ndarray    # global core rows with nonzeros in more than one block, ascending
    coupling_nz: np.ndarray      # positions in A's nonzeros in coupling rows
    coupling_nz_row: np.ndarray  # their index into coupling_rows
    members: np.ndarray          # blocks with nonzeros in each coupling row (N_r)


def _block_structure(b: int, blocks: np.ndarray, r: np.ndarray, c: np.ndarray, nz: np.ndarray,
                     n_blocks_of_row: np.ndarray, row_block: np.ndarray, coupling_index: np.ndarray) -> BlockStructure:
    cols = np.flatnonzero(blocks == b)
    local_rows = np.flatnonzero((n_blocks_of_row == 1) & (row_block == b))
    mine = blocks[c] == b
    loc = mine & (n_blocks_of_row[r] == 1)
    cpl = mine & (coupling_index[r] >= 0)
    coupling = np.unique(coupling_index[r[cpl]])
    local_sp = _csc(len(local_rows), len(cols), np.searchsorted(local_rows, r[loc]), np.searchsorted(cols, c[loc]))
    coupling_sp = _csc(len(coupling), len(cols), np.searchsorted(coupling, coupling_index[r[cpl]]),
                       np.searchsorted(cols, c[cpl]))
    return BlockStructure(cols, local_rows, coupling, nz[loc], nz[cpl], local_sp, coupling_sp)


def partition(lp: LinearProgram, colptr: np.ndarray, rowind: np.ndarray, n_core: int) -> Partition:
    """Split the LP's core rows (A's CSC sparsity: ``colptr``, ``rowind``) by ``column_blocks``."""
    blocks = column_blocks(lp)
    col = np.repeat(np.arange(len(colptr) - 1), np.diff(colptr))
    nz = np.flatnonzero(rowind < n_core)
    r, c = rowind[nz], col[nz]
    row_blocks = np.unique(np.stack([r, blocks[c]], axis=1), axis=0)
    n_blocks_of_row = np.bincount(row_blocks[:, 0], minlength=n_core)
    row_block = np.full(n_core, -1)
    row_block[row_blocks[:, 0]] = row_blocks[:, 1]      # the block of a one-block row
    coupling_rows = np.flatnonzero(n_blocks_of_row > 1)
    coupling_index = np.full(n_core, -1)
    coupling_index[coupling_rows] = np.arange(len(coupling_rows))
    structures = [_block_structure(b, blocks, r, c, nz, n_blocks_of_row, row_block, coupling_index)
                  for b in range(int(blocks.max()) + 1)]
    in_coupling = coupling_index[r] >= 0
    return Partition(structures, coupling_rows, nz[in_coupling], coupling_index[r[in_coupling]],
                     n_blocks_of_row[coupling_rows].astype(float))


class LocalWorkers:
    """The blocks in this process, in one ``BlockWorker`` (``workers`` 0)."""

    def __init__(self, structures: list[BlockStructure]) -> None:
        self.worker = BlockWorker(structures)

    def load(self, data: list[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
        return self.worker.load(data)

    def iterate(self, costs: list[np.ndarray], rho: float,
                targets: list[np.ndarray]) -> tuple[list[np.ndarray], list[str], list[float]]:
        """``BlockWorker.iterate``; the seconds per worker (one here)."""
        out, statuses, seconds = self.worker.iterate(costs, rho, targets)
        return out, statuses, [seconds]

    def solutions(self) -> list[np.ndarray]:
        return self.worker.solutions()


