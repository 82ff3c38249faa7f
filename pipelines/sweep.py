"""``greenllm sweep``: every (grid setting × window × controller) as a Ray task (DESIGN.md §6).

Each cell is one closed-loop run (``pipelines._sweep_cells``) on a local Ray started in this
process, or on a cluster (``--address`` / ``RAY_ADDRESS``; ``pipelines._sweep_ray``). A done cell
is stored as ``OUT/cells/KEY.json`` the moment it returns, so a rerun of the same sweep skips it
(the key hashes the resolved config, window, controller, forecaster and steps). A failed cell is
reported with its error and retried on the next run; the others finish.

MLflow (experiment ``closed-loop``): one parent run with the sweep's tables, and one child per cell
(params ``grid.*``, window, controller, forecaster; the KPIs as metrics). The driver writes the
children as the results arrive (a SQLite store has one writer); with an MLflow server
(``http(s)://``) the workers write their own. The table at the end: per grid setting and
controller, the mean and spread (standard deviation) of the KPIs over the windows.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines import _tracking as tracking
from pipelines._sweep_cells import (
    Cell,
    CellResult,
    SweepSpec,
    TrackingTarget,
    cell_key,
    clear_data_cache,
    grid_cells,
    load_done,
    log_cell,
    parse_grid,
    run_cell,
    write_result,
)
from pipelines._sweep_ray import RayOptions, check_options, ray_session, run_cells
from pipelines.config import Config
from pipelines.loop import EXPERIMENT, forecaster_choice, load_suite

__all__ = ["SUMMARY_KPIS", "Cell", "CellResult", "RayOptions", "SweepOutcome", "SweepSpec", "cell_forecaster",
           "clear_data_cache", "ray_session", "run_cell", "run_cells", "run_sweep", "summary_table", "sweep_spec"]
# Cell, CellResult, SweepSpec, RayOptions, ray_session, run_cell, run_cells and clear_data_cache are the
# engine's public names (``pipelines._sweep_cells``, ``pipelines._sweep_ray``), e.g. for bench/ scripts.

SUMMARY_KPIS = ("cost_eur", "co2_kg", "water_l", "drops", "slo_misses")


@dataclass(frozen=True)
class SweepOutcome:
    """A sweep's results: every cell (done, reused or failed) in order, and the summary table."""

    results: tuple[CellResult, ...]
    table: pd.DataFrame

    @property
    def failed(self) -> tuple[CellResult, ...]:
        return tuple(r for r in self.results if not r.ok)


def sweep_spec(cfg: Config, steps: int | None, tracking_target: TrackingTarget | None = None) -> SweepSpec:
    """What every cell shares: the config (absolute path, resolved mapping), steps, working folder."""
    return SweepSpec(str(Path(cfg.path).resolve()), cfg.raw, steps, str(Path.cwd()), tracking_target)


def cell_forecaster(forecaster: str, cfg: Config) -> str:
    """``perfect``, ``seasonal-naive`` or the learned bundle's local folder, loaded and checked here
    once against ``cfg``'s control settings (a missing or damaged model is one error before any cell)."""
    kind, uri = forecaster_choice(forecaster, cfg)
    return kind if kind != "learned" else str(Path(load_suite(uri, cfg.control)[1]).resolve())


class _Driver:
    """Takes each cell's result as it arrives: file, MLflow child, progress line."""

    def __init__(self, spec: SweepSpec, target: TrackingTarget, total: int, cells_dir: Path) -> None:
        from tqdm.auto import tqdm

        self.spec, self.target, self.cells_dir, self.total = spec, target, cells_dir, total
        self.bar = tqdm(total=total, desc="cells", unit="cell", leave=False, disable=not sys.stderr.isatty())
        self.results: dict[str, CellResult] = {}

    def __call__(self, result: CellResult) -> None:
        if result.ok and not result.reused:
            write_result(self.cells_dir, result)
        if not result.logged:
            log_cell(self.target, result, self.spec.steps)
        self.results[result.key] = result
        self.bar.update(1)
        n, total = len(self.results), self.total
        if result.ok:
            note = "reused" if result.reused else f"{result.wall_s:.1f} s"
            self.bar.write(f"  [{n}/{total}] {result.cell.label()}: cost {result.kpis['cost_eur']:.2f} EUR, "
                           f"CO2 {result.kpis['co2_kg']:.1f} kg ({note})")
        else:
            self.bar.write(f"  [{n}/{total}] FAILED {result.cell.label()} (cell {result.key}): {result.error}")


def summary_table(results: list[CellResult], grid_keys: list[str]) -> pd.DataFrame:
    """Per grid setting and controller (and forecaster): n windows, mean and spread of ``SUMMARY_KPIS``."""
    rows = []
    for r in results:
        if r.ok:
            setting = {k: o.partition("=")[2] for k, o in zip(grid_keys, r.cell.overrides, strict=True)}
            rows.append({**setting, "controller": r.cell.controller, "forecaster": r.cell.forecaster_kind,
                         "window": r.cell.window, **{k: r.kpis.get(k, float("nan")) for k in SUMMARY_KPIS}})
    if not rows:
        return pd.DataFrame()
    by = [*grid_keys, "controller", "forecaster"]
    frame = pd.DataFrame(rows)
    table = frame.groupby(by, sort=False)[list(SUMMARY_KPIS)].agg(["mean", "std"])
    table.insert(0, ("windows", "n"), frame.groupby(by, sort=False)["window"].nunique())
    return table


def _log_tables(outcome: SweepOutcome, out_dir: Path) -> None:
    """``cells.csv`` (every cell, KPIs or error) and ``summary.csv`` in ``out_dir`` and on the parent run."""
    cells = pd.DataFrame([{"cell_key": r.key, "overrides": " ".join(r.cell.overrides), "window": r.cell.window,
                           "controller": r.cell.controller, "forecaster": r.cell.forecaster, "error": r.error,
                           "reused": r.reused, "wall_s": r.wall_s, **r.kpis} for r in outcome.results])
    out_dir.mkdir(parents=True, exist_ok=True)
    cells.to_csv(out_dir / "cells.csv", index=False)
    outcome.table.to_csv(out_dir / "summary.csv")
    for name in ("cells.csv", "summary.csv"):
        tracking.log_artifact(out_dir / name, "sweep")


def _run_all(driver: _Driver, keyed: list[tuple[str, Cell]], done: dict[str, CellResult], ray: RayOptions) -> None:
    """The done cells to ``driver`` as they are, the others as Ray tasks (no Ray when none is left)."""
    for result in done.values():
        driver(result)
    todo = [c for k, c in keyed if k not in done]
    if todo:
        with ray_session(ray.address, ray.workers) as where:
            driver.bar.write(f"  on {where}")
            run_cells(driver.spec, todo, driver)
    driver.bar.close()


def run_sweep(cfg: Config, grid: list[str], windows: tuple[str, ...] = ("primary",),
              controllers: tuple[str, ...] = ("mpc",), forecaster: str = "perfect", steps: int | None = None,
              out_dir: Path = Path("out/sweep"), address: str | None = None,
              workers: int | None = None) -> SweepOutcome:
    """``greenllm sweep``: every cell on Ray, done cells skipped, printed, stored and tracked.

    Args:
        cfg: the scenario (with the ``--set`` overrides every cell shares).
        grid: ``key.path=v1,v2`` items (``--grid``); their product are the settings.
        windows: window names or ISO start hours.
        controllers: controller names.
        forecaster: ``perfect``, ``seasonal-naive`` or a learned model's URI / folder.
        steps: hours per cell, ≥ 1 (None: each window's length).
        out_dir: results: ``cells/KEY.json`` per done cell, ``cells.csv``, ``summary.csv``.
        address: a Ray cluster (None: ``RAY_ADDRESS`` or a local Ray).
        workers: CPUs of the local Ray (None: all cores).
    """
    parsed = parse_grid(grid)
    check_options(address, workers)
    base = sweep_spec(cfg, steps)
    cells = grid_cells(parsed, windows, controllers, (cell_forecaster(forecaster, cfg),))
    keyed = [(cell_key(base, c), c) for c in cells]
    done = load_done(out_dir / "cells", keyed)
    print(f"greenllm sweep: {len(cells)} cells ({len(done)} done before, {len(cells) - len(done)} to run) — "
          f"{len(parsed)} grid key(s) × {len(windows)} window(s) × {len(controllers)} controller(s), {forecaster}")
    uri = tracking.tracking_uri()
    with tracking.start_run(EXPERIMENT, f"sweep-{cfg.scenario.name}") as parent:
        target = TrackingTarget(uri, parent.info.experiment_id, parent.info.run_id)
        spec = sweep_spec(cfg, steps, target if tracking.is_server(uri) else None)
        driver = _Driver(spec, target, len(cells), out_dir / "cells")
        _run_all(driver, keyed, done, RayOptions(address, workers))
        results = [driver.results[k] for k, _ in keyed]
        outcome = SweepOutcome(tuple(results), summary_table(results, [k for k, _ in parsed]))
        _log_tables(outcome, out_dir)
        tracking.log_params({"grid": " ; ".join(grid) or "none", "windows": ",".join(windows),
                             "controllers": ",".join(controllers), "forecaster": forecaster,
                             "cells": str(len(cells)), "failed": str(len(outcome.failed))})
        _print_end(outcome, parent.info.run_id, out_dir)
    return outcome


def _print_end(outcome: SweepOutcome, run_id: str, out_dir: Path) -> None:
    """The summary table, the failed cells again, and where everything is."""
    pd.set_option("display.width", 220)
    if not outcome.table.empty:
        print("\nmean and spread (std) over the windows, per grid setting and controller:")
        print(outcome.table.round(3).to_string(na_rep="n/a"))
    for r in outcome.failed:
        print(f"FAILED {r.cell.label()} (cell {r.key}): {r.error}")
    n_ok = len(outcome.results) - len(outcome.failed)
    print(f"\n{n_ok} of {len(outcome.results)} cells done; results in {out_dir}/ (cells/, cells.csv, summary.csv); "
          f"MLflow parent run {run_id} ('{EXPERIMENT}'), one child per cell")
    if outcome.failed:
        print(f"{len(outcome.failed)} cell(s) failed; rerun the same command to retry them (done cells are kept)")
