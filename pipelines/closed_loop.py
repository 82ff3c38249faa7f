"""The closed loop on real data: ``greenllm simulate``, ``compare`` and ``plan`` (DESIGN.md §5).

The names bench/ and tests import, from the modules that hold them:

* ``pipelines.loop`` — ``Setup``, ``prepare``, ``load_suite``, ``run_loop`` (shared by every command);
* ``pipelines._controllers`` — the controller registry (``make_controller``, ``CONTROLLERS``, ``HEURISTICS``);
* ``pipelines.simulate`` — ``run_simulate``;
* ``pipelines.compare`` — ``compare_runs``, ``run_compare`` (and ``comparison_table``);
* ``pipelines.plan`` — ``run_plan``;
* the evaluation windows (``WINDOWS``, ``SECONDARY``), ``reference_metrics`` (DESIGN §5's gaps) and
  ``daily_water`` (litres per site and UTC day of a run).
"""

from __future__ import annotations

from pipelines._args import SECONDARY, WINDOWS
from pipelines._controllers import CONTROLLERS, HEURISTICS, make_controller
from pipelines._loop_compare import reference_metrics
from pipelines._loop_report import daily_water
from pipelines.compare import compare_runs, comparison_table, run_compare
from pipelines.loop import (
    EXPERIMENT,
    MODEL_URI,
    RunOutput,
    Setup,
    burst_group_correlation,
    load_suite,
    prepare,
    run_loop,
)
from pipelines.plan import run_plan
from pipelines.simulate import run_simulate

__all__ = ["CONTROLLERS", "EXPERIMENT", "HEURISTICS", "MODEL_URI", "SECONDARY", "WINDOWS", "RunOutput", "Setup",
           "burst_group_correlation", "compare_runs", "comparison_table", "daily_water", "load_suite",
           "make_controller", "prepare", "reference_metrics", "run_compare", "run_loop", "run_plan", "run_simulate"]
