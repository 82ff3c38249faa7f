"""Solver back ends for the allocation LP: HiGHS through highspy (warm-started) or CasADi's qpsol.

Both take the LP of ``control._lp`` as CasADi built it and solve one stage at a time:
``load(p, lbx, ubx, lbg, ubg)`` fixes the step's data, ``solve(weights)`` minimises
``weights · objective rows`` and ``set_row_upper(row, value)`` keeps an earlier stage's optimum.

* ``highs`` (default): CasADi evaluates the LP's matrix, offsets and bounds from the parameters
  (one compiled Function, built once), and the model goes to HiGHS through highspy, which keeps
  the simplex basis between calls. Stage 1 starts from the previous step's stage-1 basis as it
  was (shifting it one step, as the receding horizon moves, took more iterations on the pooled,
  blocked LP of the default scenario: median 645 vs 368 per step); later stages change
  only the cost vector and one row bound and re-optimise with the primal simplex from the previous
  stage's optimal basis. CasADi's own HiGHS interface cannot pass a basis, so each of its stages
  starts cold: ~5,000 simplex iterations per stage on the reference instance against a few
  hundred warm (see ``bench/mpc.py``).
* ``qpsol``: CasADi's conic interface (``ca.qpsol(..., "highs")``), cold starts; kept as the second
  supported solver and as a cross-check (the known-optimum tests run on both).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol, cast

import casadi as ca
import highspy
import numpy as np

from control._lp import LinearProgram

__all__ = ["BACKENDS", "Backend", "HighsBackend", "QpsolBackend", "make_backend"]

INF = highspy.kHighsInf
_COLWISE = int(highspy.MatrixFormat.kColwise.value)
_MINIMIZE = int(highspy.ObjSense.kMinimize.value)
REBUILD_FRACTION = 0.01   # qpsol: share of the time limit HiGHS's running clock may use before a rebuild


class Backend(Protocol):
    solver_time_s: float

    def load(self, p: np.ndarray, lbx: np.ndarray, ubx: np.ndarray, lbg: np.ndarray,
             ubg: np.ndarray) -> None: ...

    def solve(self, weights: np.ndarray, stage_index: int) -> tuple[np.ndarray | None, str, int]: ...

    def set_row_upper(self, row: int, value: float) -> None: ...

    def objective_values(self, x: np.ndarray) -> np.ndarray: ...

    def keep_basis(self) -> None: ...

    def export_warm(self) -> object: ...

    def import_warm(self, warm: object) -> None: ...


class QpsolBackend:
    """CasADi ``qpsol`` with HiGHS: every stage solved from scratch."""

    def __init__(self, lp: LinearProgram, time_limit_s: float) -> None:
        self.lp = lp
        self.time_limit_s = float(time_limit_s)
        self._problem = {"x": lp.x.sym, "p": lp.p.sym, "f": lp.objective, "g": lp.g}
        self._build()
        self._x0 = np.zeros(lp.x.size)
        self.solver_time_s = 0.0

    def _build(self) -> None:
        """A fresh solver: HiGHS inside it counts its time limit over every call, so it is rebuilt
        once that clock has used ``REBUILD_FRACTION`` of the limit (each stage keeps ≥ 99 % of it)."""
        opts: dict[str, Any] = {"error_on_fail": False,
                                "highs": {"output_flag": False, "time_limit": self.time_limit_s}}
        self.solver = ca.qpsol("allocation_lp", "highs", self._problem, opts)
        self._clock_s = 0.0

    def load(self, p, lbx, ubx, lbg, ubg) -> None:  # noqa: ANN001 (see Backend)
        self.p, self.lbx, self.ubx, self.lbg, self.ubg = p.copy(), lbx, ubx, lbg, ubg.copy()
        self.solver_time_s = 0.0

    def solve(self, weights: np.ndarray, stage_index: int) -> tuple[np.ndarray | None, str, int]:
        self.lp.p.pack(self.p, "weights", weights)
        if self._clock_s > REBUILD_FRACTION * self.time_limit_s:
            self._build()
        try:
            sol = self.solver(x0=self._x0, p=self.p, lbx=self.lbx, ubx=self.ubx, lbg=self.lbg, ubg=self.ubg)
        except RuntimeError as exc:  # CasADi raises on internal errors even with error_on_fail off
            return None, f"error: {str(exc).splitlines()[0][:200]}", 0
        stats = self.solver.stats()
        self.solver_time_s += float(stats.get("t_wall_solver", 0.0))
        self._clock_s += float(stats.get("t_wall_solver", 0.0))
        iters = int(stats.get("simplex_iteration_count", 0)) + int(stats.get("ipm_iteration_count", 0))
        status = str(stats.get("return_status", "unknown"))
        x = np.array(sol["x"], dtype=float).ravel()
        if status != "Optimal" or not stats.get("success", False):
            return None, status, iters
        if not np.isfinite(x).all():
            return None, "numerical trouble: non-finite solution", iters
        self._x0 = x
        return x, status, iters

    def set_row_upper(self, row: int, value: float) -> None:
        self.ubg[row] = value

    def objective_values(self, x: np.ndarray) -> np.ndarray:
        """The objective rows at ``x`` (``control._lp.KEPT_ROWS`` order)."""
        rows = np.array(self.lp.g_fn(x, self.p), dtype=float).ravel()
        return rows[self.lp.row_slice("objectives")]

    def keep_basis(self) -> None:
        """Nothing to keep: CasADi's interface has no basis."""

    def export_warm(self) -> object:
        return self._x0.copy()

    def import_warm(self, warm: object) -> None:
        self._x0 = np.array(warm, dtype=float)


class _Deadline:
    """A HiGHS interrupt callback that stops the solve once ``time.perf_counter()`` passes ``at``."""

    def __init__(self, at: float) -> None:
        self.at, self.fired = at, False

    def __call__(self, event: Any) -> None:
        if time.perf_counter() > self.at:
            self.fired = True
            event.interrupt()


class HighsBackend:
    """highspy with the LP's matrix evaluated by CasADi, and simplex bases kept between solves.

    The objective rows of ``control._lp`` (each stage's objective and the unserved requests) are
    not passed as rows: each is dense, and only the stages after the first need some of them as
    constraints, so a row is added when a stage first bounds it.
    """

    def __init__(self, lp: LinearProgram, time_limit_s: float) -> None:
        self.lp = lp
        self._split_rows(self._compile_data(lp))
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.time_limit_s = float(time_limit_s)
        # a cold first stage: dual simplex, or "ipm" (interior point without crossover: the
        # hindsight references' sub-step LP, 6× the hourly one, where the simplex takes minutes)
        self.cold_solver = "simplex"
        self._warm: highspy.HighsBasis | None = None   # stage-1 basis of the last solve
        self.solver_time_s = 0.0

    def _compile_data(self, lp: LinearProgram) -> ca.Sparsity:
        """Compile the Function giving the LP's matrix A(p) and offsets g(0, p), evaluated into
        preallocated arrays; returns A's sparsity."""
        x, p = lp.x.sym, lp.p.sym
        # one row family at a time: a family's rows are alike, so CasADi's coloring needs few
        # sweeps; the whole matrix at once (dense stream rows beside dense objective rows) took
        # 4× longer at 100 sites and grew faster than the LP
        families = sorted(lp.row_offset, key=lp.row_offset.__getitem__)
        jac = ca.vertcat(*[ca.jacobian(lp.g[lp.row_slice(k)], x) for k in families])
        if ca.depends_on(jac, x):
            raise ValueError("the allocation LP is not linear in its decisions")
        sparsity = jac.sparsity()
        # g(x, p) = A(p)·x + g(0, p): one Function gives A(p) (fixed sparsity) and g(0, p).
        self._data_fn = ca.Function("lp_data", [p], [jac, ca.substitute(lp.g, x, ca.SX.zeros(x.numel()))])
        # evaluated into preallocated NumPy arrays (no DM → list → array conversion per solve)
        self._p_in = np.zeros(lp.p.size)
        self._values = np.zeros(sparsity.nnz())
        self._offset = np.zeros(sparsity.size1())
        self._data_buf, self._data_eval = self._data_fn.buffer()
        # casadi's stub asks for the C++ byte ``size`` too (SWIG takes it from the memoryview), and
        # numpy's stubs give ndarray its buffer protocol for Python >= 3.12 only
        self._data_buf.set_arg(0, memoryview(self._p_in))  # type: ignore[call-arg, arg-type]
        self._data_buf.set_res(0, memoryview(self._values))  # type: ignore[call-arg, arg-type]
        self._data_buf.set_res(1, memoryview(self._offset))  # type: ignore[call-arg, arg-type]
        return sparsity

    def _split_rows(self, sparsity: ca.Sparsity) -> None:
        """Split A's nonzeros into the core rows passed to HiGHS (column-wise) and the objective
        rows (the LP's last), kept aside until a stage bounds them."""
        colptr = np.asarray(sparsity.colind(), dtype=np.int64)
        rowind = np.asarray(sparsity.row(), dtype=np.int64)
        self.colptr, self.rowind = colptr, rowind     # A's CSC sparsity (the ADMM back end splits it)
        self.n_cols = sparsity.size2()
        obj = self.lp.row_slice("objectives")
        if obj.stop != sparsity.size1():
            raise ValueError("the objective rows must be the LP's last rows")
        self.n_core = obj.start                       # rows passed to HiGHS
        self._n_extra = obj.stop - obj.start          # objective rows, added when bounded
        col = np.repeat(np.arange(self.n_cols), np.diff(colptr))
        core = rowind < self.n_core
        self._core_nz = core
        self._core_start = np.concatenate(
            [[0], np.cumsum(np.bincount(col[core], minlength=self.n_cols))]).astype(np.int32)
        self._core_index = rowind[core].astype(np.int32)
        self._extra_pos = (rowind[~core] - self.n_core, col[~core])
        self._integrality = np.zeros(self.n_cols, dtype=np.int32)   # every column continuous
        self._all_cols = np.arange(self.n_cols, dtype=np.int32)

    # ------------------------------------------------------------------ the step's model
    def load(self, p, lbx, ubx, lbg, ubg) -> None:  # noqa: ANN001 (see Backend)
        self._p_in[:] = p
        self._data_eval()
        values, offset = self._values, self._offset
        self._lbg, self._ubg = np.asarray(lbg, dtype=float), np.asarray(ubg, dtype=float).copy()
        n = self.n_core
        lo, hi = self._lbg[:n] - offset[:n], self._ubg[:n] - offset[:n]
        core = values[self._core_nz]
        self.highs.passModel(self.n_cols, n, len(core), _COLWISE, _MINIMIZE, 0.0, np.zeros(self.n_cols),
                             np.asarray(lbx, dtype=float), np.where(np.isfinite(ubx), ubx, INF),
                             np.where(np.isfinite(lo), lo, -INF), np.where(np.isfinite(hi), hi, INF),
                             self._core_start, self._core_index, core, self._integrality)
        self._extra = np.zeros((self._n_extra, self.n_cols))
        self._extra[self._extra_pos] = values[~self._core_nz]
        self._added: dict[int, int] = {}   # objective row → HiGHS row
        self.solver_time_s = 0.0

    def solve(self, weights: np.ndarray, stage_index: int) -> tuple[np.ndarray | None, str, int]:
        h = self.highs
        cost = weights @ self._extra[:len(weights)]
        h.changeColsCost(self.n_cols, self._all_cols, cost)
        if stage_index == 0:
            warm = self._warm is not None and h.setBasis(self._warm) == highspy.HighsStatus.kOk
            h.setOptionValue("presolve", "off" if warm else "on")
            h.setOptionValue("simplex_strategy", 1)   # dual simplex
            h.setOptionValue("solver", "simplex" if warm else self.cold_solver)
            h.setOptionValue("run_crossover", "off" if self.cold_solver == "ipm" and not warm else "on")
        else:  # the previous stage's optimal basis stays primal feasible: primal simplex
            h.setOptionValue("solver", "simplex")
            h.setOptionValue("presolve", "off")
            h.setOptionValue("simplex_strategy", 4)
        # HiGHS's time limit counts the object's run time over all its solves: give each stage its own
        h.setOptionValue("time_limit", h.getRunTime() + self.time_limit_s)
        start = time.perf_counter()
        h.run()
        self.solver_time_s += time.perf_counter() - start
        info = h.getInfo()
        iters = max(int(info.simplex_iteration_count), 0) + max(int(info.ipm_iteration_count), 0)
        status = h.modelStatusToString(h.getModelStatus())
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None, status, iters
        x = np.asarray(h.getSolution().col_value, dtype=float)
        if not np.isfinite(x).all():
            return None, "numerical trouble: non-finite solution", iters
        return x, status, iters

    def solve_mip(self, weights: np.ndarray, integer_cols: np.ndarray, mip_rel_gap: float,
                  start: np.ndarray | None = None,
                  time_limit_s: float | None = None) -> tuple[np.ndarray | None, str, float]:
        """Minimise ``weights · objective rows`` over the loaded model with ``integer_cols`` whole
        (HiGHS branch and bound, presolve on, the back end's time limit); the columns are
        continuous again afterwards.

        Args:
            weights: on the objective rows (``control._lp.KEPT_ROWS`` order).
            integer_cols: indices of the columns that must be whole numbers.
            mip_rel_gap: stop when (incumbent − dual bound) ÷ incumbent is at most this.
            start: whole values of ``integer_cols`` to start from (HiGHS completes the rest), or None.
            time_limit_s: the MILP's own time limit, s (None: the back end's).

        Returns:
            ``(x, status, gap)``: the best whole solution found (None when there is none), HiGHS's
            model status (``Optimal`` when the gap was reached, ``Time limit reached`` when it
            stopped early with or without a solution) and the relative gap left (inf without one).
        """
        h, cols = self.highs, np.asarray(integer_cols, dtype=np.int32)
        limit_s = self.time_limit_s if time_limit_s is None else float(time_limit_s)
        h.changeColsCost(self.n_cols, self._all_cols, weights @ self._extra[:len(weights)])
        h.changeColsIntegrality(len(cols), cols, np.full(len(cols), highspy.HighsVarType.kInteger.value, np.uint8))
        for key, value in (("presolve", "on"), ("solver", "choose"), ("mip_rel_gap", float(mip_rel_gap)),
                           ("time_limit", h.getRunTime() + limit_s)):
            h.setOptionValue(key, value)
        if start is not None:
            h.setSolution(len(cols), cols, np.asarray(start, dtype=float))
        began = time.perf_counter()
        # HiGHS's time limit does not stop the LP that completes a partial start (at the hindsight
        # reference's size it ran 130 s past a 20 s limit): an interrupt callback holds the limit
        deadline = _Deadline(began + limit_s)
        callbacks = (h.cbSimplexInterrupt, h.cbIpmInterrupt, h.cbMipInterrupt)
        for callback in callbacks:
            callback.subscribe(deadline)
        try:
            h.run()
            info, status = h.getInfo(), h.modelStatusToString(h.getModelStatus())
            status = "Time limit reached" if deadline.fired else status
            found = int(info.primal_solution_status) == 2   # kSolutionStatusFeasible
            x = np.asarray(h.getSolution().col_value, dtype=float) if found else None
            gap = float(info.mip_gap) if found else float("inf")
        finally:
            for callback in callbacks:
                callback.unsubscribe(deadline)
            self.solver_time_s += time.perf_counter() - began
            h.changeColsIntegrality(len(cols), cols, np.zeros(len(cols), np.uint8))
        return (x if x is not None and np.isfinite(x).all() else None), status, gap

    def keep_basis(self) -> None:
        """Keep the current (stage-1 optimal) basis for the next solve's first stage."""
        basis = self.highs.getBasis()   # kept before any objective row is added: n_core rows
        self._warm = basis if basis.valid and self.highs.getNumRow() == self.n_core else None

    def export_warm(self) -> object:
        """The kept stage-1 basis as integer status lists (None when there is none)."""
        if self._warm is None:
            return None
        return ([int(v.value) for v in self._warm.col_status], [int(v.value) for v in self._warm.row_status])

    def import_warm(self, warm: object) -> None:
        if warm is None:
            self._warm = None
            return
        cols, rows = cast(tuple[Sequence[int], Sequence[int]], warm)   # export_warm's basis pair of int lists
        basis = highspy.HighsBasis()
        basis.col_status = [highspy.HighsBasisStatus(v) for v in cols]
        basis.row_status = [highspy.HighsBasisStatus(v) for v in rows]
        basis.valid = True
        self._warm = basis

    def set_row_upper(self, row: int, value: float) -> None:
        self._ubg[row] = value
        hi = value - self._offset[row]
        if row < self.n_core:
            lo = self._lbg[row] - self._offset[row]
            self.highs.changeRowBounds(int(row), float(lo) if np.isfinite(lo) else -INF, float(hi))
        elif row in self._added:
            self.highs.changeRowBounds(self._added[row], -INF, float(hi))
        else:
            coef = self._extra[row - self.n_core]
            idx = np.flatnonzero(coef).astype(np.int32)
            self.highs.addRow(-INF, float(hi), len(idx), idx, coef[idx])
            self._added[row] = self.highs.getNumRow() - 1

    def objective_values(self, x: np.ndarray) -> np.ndarray:
        """The objective rows at ``x`` (``control._lp.KEPT_ROWS`` order)."""
        return self._extra @ x + self._offset[self.n_core:]


BACKENDS = {"highs": HighsBackend, "qpsol": QpsolBackend}


def make_backend(name: str, lp: LinearProgram, time_limit_s: float, admm: Any = None) -> Any:
    """The named back end (``highs``, ``qpsol`` or ``admm``: ``control.admm.AdmmBackend`` with the
    ``control.admm.AdmmSettings`` ``admm``)."""
    if name == "admm":
        from control.admm import AdmmBackend  # it builds on HighsBackend: imported here, not at the top
        return AdmmBackend(lp, time_limit_s, admm)
    if name not in BACKENDS:
        raise ValueError(f"solver: {name!r}; valid: {sorted((*BACKENDS, 'admm'))}")
    return BACKENDS[name](lp, time_limit_s)
