"""Solver faults: a time limit the solver cannot meet, and solver settings out of range.

A time-out is a fault the run survives: every step HiGHS cannot finish falls back (the previous
plan shifted by one step, then the capacity-proportional heuristic) and ``simulate`` counts and
lists the fallbacks. A time limit or plan-reuse count out of range is a clear config error, and
so is a hindsight optimum (``compare``) or a ``plan`` the solver cannot finish.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.reliability._case import Case, Invocation

SMOKE = "configs/smoke.yaml"
TINY_S = "1e-6"   # the smallest valid limit: HiGHS stops before its first iteration on every stage
STEPS = 4


def _simulate(*sets: str) -> Callable[[Path], Invocation]:
    def build(tmp: Path) -> Invocation:
        argv = ["simulate", SMOKE, "--forecaster", "perfect", "--steps", str(STEPS), "--out", "{tmp}/sim"]
        for item in sets:
            argv += ["--set", item]
        return Invocation(argv)
    return build


def _compare_tiny(tmp: Path) -> Invocation:
    return Invocation(["compare", SMOKE, "--forecaster", "seasonal-naive", "--steps", "3", "--out", "{tmp}/cmp",
                       "--set", f"control.hindsight_time_limit_s={TINY_S}"])


def _plan_tiny(tmp: Path) -> Invocation:
    return Invocation(["plan", SMOKE, "--at", "2018-12-14T08:00Z", "--forecaster", "perfect",
                       "--set", f"control.solver_time_limit_s={TINY_S}"])


CASES: list[Case] = [
    Case("solver-time-out-every-step", "solver", _simulate(f"control.solver_time_limit_s={TINY_S}"),
         "repair counted",
         ("fallback steps 4", "fallback at step 0", "fallback at step 3", "Time limit reached",
          "heuristic:capacity-proportional")),
    Case("solver-time-limit-zero", "solver", _simulate("control.solver_time_limit_s=0"), "clear error",
         ("control.solver_time_limit_s", "out of range", "1e-06", "3600")),
    Case("solver-time-limit-negative", "solver", _simulate("control.solver_time_limit_s=-5"), "clear error",
         ("control.solver_time_limit_s", "-5", "out of range", "3600")),
    Case("solver-time-limit-not-a-number", "solver", _simulate("control.solver_time_limit_s=fast"), "clear error",
         ("control.solver_time_limit_s", "fast")),
    Case("plan-reuse-beyond-horizon", "solver", _simulate("control.max_plan_reuse_steps=24"), "clear error",
         ("control.max_plan_reuse_steps", "24", "[0, 23]")),
    Case("plan-reuse-negative", "solver", _simulate("control.max_plan_reuse_steps=-1"), "clear error",
         ("control.max_plan_reuse_steps", "-1", "out of range", "[0, 23]")),
    Case("hindsight-time-out", "solver", _compare_tiny, "clear error",
         ("hindsight optimum", "Time limit reached", "control.hindsight_time_limit_s", "7200")),
    Case("plan-time-out", "solver", _plan_tiny, "clear error",
         ("no plan", "Time limit reached", "control.solver_time_limit_s")),
]
