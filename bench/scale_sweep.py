"""Sweeps on Ray (issue #18, item 1): the same closed-loop cells on a local Ray with 2 workers (one
thread each, Ray's start-up included) against one process running them one after the other.

The cells: MPC with perfect forecasts on configs/default.yaml (m-large, fleet scale), a grid of
``control.epsilon`` (0.001, 0.01, 0.03, 0.1) × two fortnights from 12 and 26 Nov 2018 (336 h):
8 cells of 25–45 s (one took 41 s on the busy 2-core dev machine; each cell builds its dataset, as
the fleet factor depends on the control settings). The result says whether every cell took ≥ 20 s
(the issue's floor); if not, rerun with a larger ``--steps``. Both
sides run ``pipelines.sweep.run_cell``, the function a ``greenllm sweep`` task runs, with
one BLAS / OpenMP / torch thread; the serial side starts after its imports, the Ray side's clock
includes ``ray.init`` and the workers' start-up. The data's parquet caches are warmed first. The
KPIs of both sides must be equal (wall-clock step times aside). Target: Ray ÷ serial ≤ 0.65.

Run from the repository root on a quiet machine (about 7–8 min on 2 cores; up to 15 when busy)::

    .venv/bin/python -m bench.scale_sweep

→ bench/results/scale.json and scale.md, key ``sweep`` (``bench._scale_report``). ``--quick``:
configs/smoke.yaml, 6 h cells (a check of the script, not a result; nothing is written unless
``--results DIR`` is given).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"   # one thread in this process too, before NumPy and torch load

import argparse  # noqa: E402
import itertools  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench._scale_report import RESULTS, machine, update  # noqa: E402
from pipelines.config import load_config  # noqa: E402
from pipelines.sweep import (  # noqa: E402
    Cell,
    CellResult,
    SweepSpec,
    clear_data_cache,
    ray_session,
    run_cell,
    run_cells,
    sweep_spec,  # noqa: E402
)

ROOT = Path(__file__).resolve().parents[1]
EPSILONS = ("0.001", "0.01", "0.03", "0.1")
WINDOWS = ("2018-11-12T00:00Z", "2018-11-26T00:00Z")
STEPS_H = 336
MIN_CELL_S = 20.0
TARGET = 0.65
WORKERS = 2
TIMING = ("median_step_ms", "p95_step_ms", "max_step_ms")


def _cells(n: int) -> list[Cell]:
    """The first ``n`` cells of ε × window (ε slowest), MPC with perfect forecasts."""
    grid = [Cell((f"control.epsilon={e}",), w, "mpc", "perfect") for e, w in itertools.product(EPSILONS, WINDOWS)]
    if not 1 <= n <= len(grid):
        raise SystemExit(f"--cells {n}: out of range (accepted: 1 … {len(grid)})")
    return grid[:n]


def _serial(spec: SweepSpec, cells: list[Cell]) -> tuple[float, list[CellResult]]:
    import torch

    torch.set_num_threads(1)
    clear_data_cache()   # no dataset carried over from the warm-up
    start = time.perf_counter()
    results = []
    for cell in cells:
        results.append(run_cell(spec, cell))
        print(f"  serial {cell.label()}: {results[-1].wall_s:.1f} s {results[-1].error}", flush=True)
    return time.perf_counter() - start, results


def _on_ray(spec: SweepSpec, cells: list[Cell]) -> tuple[float, float, list[CellResult]]:
    """Wall time (Ray start-up included), the start-up alone, and the results in ``cells``' order."""
    got: dict[Cell, CellResult] = {}
    start = time.perf_counter()
    with ray_session(workers=WORKERS):
        up = time.perf_counter() - start
        run_cells(spec, cells, lambda r: got.__setitem__(r.cell, r))
    return time.perf_counter() - start, up, [got[c] for c in cells]


def _equal(a: list[CellResult], b: list[CellResult]) -> bool:
    same = [{k: v for k, v in x.kpis.items() if k not in TIMING} == {k: v for k, v in y.kpis.items() if k not in TIMING}
            for x, y in zip(a, b, strict=True)]
    return all(x.ok and y.ok for x, y in zip(a, b, strict=True)) and all(same)


def _markdown(d: dict) -> str:
    met = "met" if d["ray_over_serial"] <= TARGET else "missed"
    return "\n".join([
        "## Sweeps on Ray (`greenllm sweep`)", "",
        f"{d['cells']} closed-loop cells ({d['config']}, MPC with perfect forecasts, ε × windows "
        f"{', '.join(WINDOWS)}, {d['steps']} h each; a cell {d['cell_s_min']:.1f}–{d['cell_s_max']:.1f} s, median "
        f"{d['cell_s_median']:.1f} s serially: {'every' if d['cells_at_least_20_s'] else 'NOT every'} cell ≥ "
        f"{MIN_CELL_S:g} s), one thread per worker.", "",
        "| | wall s |", "|---|---|",
        f"| serial, one process | {d['serial_s']:.1f} |",
        f"| local Ray, {d['workers']} workers (start-up {d['ray_startup_s']:.1f} s included) | {d['ray_s']:.1f} |", "",
        f"Ray ÷ serial **{d['ray_over_serial']:.3f}** (target ≤ {TARGET}: {met}); the KPIs of both runs are "
        f"{'equal' if d['results_equal'] else 'NOT equal'}.", "",
        f"Machine: {d['machine']}. Command: `{d['command']}`."])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=len(EPSILONS) * len(WINDOWS), help="cells, 1 … 8 (default: 8)")
    ap.add_argument("--quick", action="store_true", help="configs/smoke.yaml, 6-h cells (a check, not a result)")
    ap.add_argument("--steps", type=int, default=None, help=f"hours per cell (default: {STEPS_H}; 6 with --quick)")
    ap.add_argument("--results", type=Path, default=None, help=f"results folder (default: {RESULTS}; none if --quick)")
    args = ap.parse_args()
    config, steps = ("configs/smoke.yaml", 6) if args.quick else ("configs/default.yaml", STEPS_H)
    steps = args.steps or steps
    cfg = load_config(ROOT / config)
    spec, cells = sweep_spec(cfg, steps), _cells(args.cells)
    print(f"warm-up: {config}'s data caches", flush=True)
    run_cell(spec, Cell((), cells[0].window, "nearest-site", "perfect"))
    serial_s, serial = _serial(spec, cells)
    ray_s, up_s, on_ray = _on_ray(spec, cells)
    walls = [r.wall_s for r in serial]
    data = {"cells": len(cells), "serial_s": serial_s, "ray_s": ray_s, "ray_over_serial": ray_s / serial_s,
            "ray_startup_s": up_s, "workers": WORKERS, "threads_per_worker": 1, "config": config, "steps": steps,
            "cell_s_min": min(walls), "cell_s_median": statistics.median(walls), "cell_s_max": max(walls),
            "cells_at_least_20_s": min(walls) >= MIN_CELL_S,
            "results_equal": _equal(serial, on_ray), "target": TARGET, "quick": args.quick, "machine": machine(),
            "command": " ".join([".venv/bin/python -m bench.scale_sweep", *sys.argv[1:]])}
    section = _markdown(data)
    print("\n" + section)
    if args.results is not None or not args.quick:
        print(f"\n→ {update('sweep', data, section, args.results or RESULTS)}")


if __name__ == "__main__":
    main()
