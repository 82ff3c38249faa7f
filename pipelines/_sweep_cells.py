"""A sweep's cells: what one cell is, its key, how it runs, and its result on disk.

A cell is one closed-loop run: the sweep's config with the cell's grid overrides, one window, one
controller, one forecaster (``Cell``). Its key hashes everything its result depends on — the
resolved config after the overrides, the window, the controller, the forecaster and the steps — so
a rerun recognises a done cell (``OUT/cells/KEY.json``) and a changed config never reuses an old
result. ``run_cell`` is the one function both the Ray task and a serial run call; it returns a
``CellResult`` and never raises: a failed cell carries its error, the others go on.

Nothing here imports Ray or MLflow at module level (``pipelines._sweep_ray`` runs the cells on Ray;
``log_cell`` writes a child run through ``pipelines._tracking``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.config import ConfigError, apply_overrides, config_from_raw

__all__ = ["Cell", "CellResult", "SweepSpec", "TrackingTarget", "cell_key", "clear_data_cache", "grid_cells",
           "load_done", "log_cell", "parse_grid", "run_cell", "split_values", "write_result"]

_DATA_CACHE_SIZE = 2   # datasets kept per process (a worker runs many cells of the same scenario)


@dataclass(frozen=True)
class Cell:
    """One closed-loop run of a sweep.

    Attributes:
        overrides: the grid's ``key.path=value`` settings of this cell (after the sweep's ``--set``).
        window: a window name of ``pipelines._args.WINDOWS`` or an ISO start hour (UTC).
        controller: a name of ``pipelines._controllers.CONTROLLERS``.
        forecaster: ``perfect``, ``seasonal-naive`` or a learned bundle's local folder.
    """

    overrides: tuple[str, ...]
    window: str
    controller: str
    forecaster: str = "perfect"

    @property
    def forecaster_kind(self) -> str:
        """``perfect``, ``seasonal-naive`` or ``learned`` (a bundle's folder)."""
        return self.forecaster if self.forecaster in ("perfect", "seasonal-naive") else "learned"

    def label(self) -> str:
        """``overrides | window | controller [forecaster]`` in one short line."""
        return f"{' '.join(self.overrides) or 'base'} | {self.window} | {self.controller} [{self.forecaster_kind}]"


@dataclass(frozen=True)
class TrackingTarget:
    """Where a worker logs its own cell: an MLflow server's URI, the experiment and the parent run."""

    uri: str
    experiment_id: str
    parent_run_id: str


@dataclass(frozen=True)
class SweepSpec:
    """What every cell of a sweep shares.

    Attributes:
        config_path: the scenario file (absolute; errors name it, ``hardware`` is read beside it).
        raw: its resolved mapping with the sweep's ``--set`` overrides (``Config.raw``).
        steps: hours per cell (None: each window's own length).
        cwd: the driver's working folder (relative data paths in the config are read from it).
        tracking: set when workers log their own child runs (an MLflow server); None: the driver does.
    """

    config_path: str
    raw: Mapping[str, Any] = field(hash=False)
    steps: int | None = None
    cwd: str = ""
    tracking: TrackingTarget | None = None


@dataclass(frozen=True)
class CellResult:
    """One cell's outcome: its KPIs, or the error that stopped it (``kpis`` empty)."""

    cell: Cell
    key: str
    kpis: dict[str, float] = field(default_factory=dict, hash=False)
    error: str = ""
    wall_s: float = 0.0
    detail: str = ""      # the forecaster's one-line description
    reused: bool = False  # read from OUT/cells/ (done by an earlier run of the sweep)
    logged: bool = False  # its child run was written by the worker

    @property
    def ok(self) -> bool:
        return not self.error


# ---------------------------------------------------------------------- the grid
def split_values(text: str) -> list[str]:
    """``"0,0.01,[cost, water]"`` → its comma-separated values (commas inside ``[…]``/``{…}`` kept)."""
    values, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "[{") - (ch in "]}")
        if ch == "," and depth == 0:
            values.append(text[start:i].strip())
            start = i + 1
    values.append(text[start:].strip())
    return values


def parse_grid(items: list[str] | tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """``--grid key.path=v1,v2`` items → ``[(key, [v1, v2]), …]`` in the order given.

    Raises:
        ValueError: no ``=``, an empty key or value, a key given twice, or a repeated value.
    """
    grid: list[tuple[str, list[str]]] = []
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        values = split_values(text)
        if not eq or not key:
            raise ValueError(f"--grid {item!r}: expected key.path=v1,v2,… (e.g. control.epsilon=0.001,0.03)")
        if key in (k for k, _ in grid):
            raise ValueError(f"--grid {item!r}: {key} is already a grid key; give its values once, comma-separated")
        if "" in values:
            raise ValueError(f"--grid {item!r}: an empty value; give v1,v2,… (YAML values)")
        if len(set(values)) != len(values):
            raise ValueError(f"--grid {item!r}: a value repeats")
        grid.append((key, values))
    return grid


def grid_cells(grid: list[tuple[str, list[str]]], windows: tuple[str, ...], controllers: tuple[str, ...],
               forecasters: tuple[str, ...] = ("perfect",)) -> list[Cell]:
    """Every (grid setting × window × controller × forecaster), the grid's first key slowest."""
    settings = itertools.product(*[[f"{k}={v}" for v in values] for k, values in grid])
    return [Cell(tuple(setting), w, c, f)
            for setting, w, c, f in itertools.product(list(settings), windows, controllers, forecasters)]


def cell_key(spec: SweepSpec, cell: Cell) -> str:
    """16 hex digits of SHA-256 over what the cell's result depends on (resolved config, window,
    controller, forecaster, steps); the overrides that do not parse are hashed as given."""
    try:
        config: Any = apply_overrides(dict(spec.raw), cell.overrides)
    except ConfigError:   # a bad override fails the cell in run_cell, with its message
        config = {"raw": spec.raw, "overrides": cell.overrides}
    what = {"config": config, "window": cell.window, "controller": cell.controller,
            "forecaster": cell.forecaster, "steps": spec.steps}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------- one cell
_DATA: dict[Any, Any] = {}


def clear_data_cache() -> None:
    """Forget the datasets this process keeps for its next cells (a benchmark's clean start)."""
    _DATA.clear()


def _dataset(cfg: Any) -> Any:
    """The fleet's dataset of ``cfg``, kept for the next cells of the same scenario in this process."""
    from control.from_data import fleet_dataset

    # what fleet_dataset reads: the scenario, the catalogue and, through the fleet factor (the
    # datacentre GPUs control.sizing installs), rho_max alone of the control settings; so cells that
    # differ only in the MPC's policy (epsilon, order, prices, …) share one dataset
    key = (cfg.scenario, cfg.hardware, cfg.control.rho_max)
    if key not in _DATA:
        while len(_DATA) >= _DATA_CACHE_SIZE:
            _DATA.pop(next(iter(_DATA)))
        _DATA[key] = fleet_dataset(cfg)
    return _DATA[key]


def run_cell(spec: SweepSpec, cell: Cell) -> CellResult:
    """Run ``cell`` in this process (a Ray task or a serial run); a failure is returned, not raised."""
    from pipelines.loop import load_suite, prepare, run_loop

    start = time.perf_counter()
    key = cell_key(spec, cell)
    if spec.cwd and Path(spec.cwd).is_dir():
        os.chdir(spec.cwd)
    try:
        cfg = config_from_raw(apply_overrides(dict(spec.raw), cell.overrides), spec.config_path)
        kind = cell.forecaster_kind
        suite = load_suite(cell.forecaster, cfg.control)[0] if kind == "learned" else None
        s = prepare(cfg, cell.window, spec.steps, data=_dataset(cfg))
        out = run_loop(s, cell.controller, kind, suite, show_progress=False)
    except Exception as exc:  # noqa: BLE001 - one cell's failure is reported; the others go on
        return CellResult(cell, key, error=f"{type(exc).__name__}: {exc}", wall_s=time.perf_counter() - start)
    kpis = {k: float(v) for k, v in out.kpis.items()}
    return CellResult(cell, key, kpis, wall_s=time.perf_counter() - start, detail=out.forecaster)


# ---------------------------------------------------------------------- results on disk and in MLflow
def write_result(folder: Path, result: CellResult) -> Path:
    """``folder/KEY.json`` of a done cell (written whole, then renamed: a crash leaves no half file)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.key}.json"
    tmp = path.with_suffix(".tmp")
    data = asdict(result) | {"cell": asdict(result.cell)}
    tmp.write_text(json.dumps({k: v for k, v in data.items() if k not in ("reused", "logged")}, indent=1,
                              allow_nan=True))
    tmp.replace(path)
    return path


def load_done(folder: Path, cells: list[tuple[str, Cell]]) -> dict[str, CellResult]:
    """The done cells among ``(key, cell)`` found in ``folder`` (a file that does not read is redone)."""
    done: dict[str, CellResult] = {}
    for key, cell in cells:
        path = folder / f"{key}.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
            kpis = {str(k): float(v) for k, v in data["kpis"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if kpis and not data.get("error"):
            done[key] = CellResult(cell, key, kpis, wall_s=float(data.get("wall_s", 0.0)),
                                   detail=str(data.get("detail", "")), reused=True)
    return done


def cell_params(result: CellResult, steps: int | None) -> dict[str, str]:
    """A cell's MLflow params: its key, each override as ``grid.KEY``, window, controller, forecaster."""
    c = result.cell
    grid = {f"grid.{o.partition('=')[0]}": o.partition("=")[2] for o in c.overrides}
    return {"cell_key": result.key, **grid, "window": c.window, "controller": c.controller,
            "forecaster": c.forecaster, "forecaster_detail": result.detail, "steps": str(steps or "window"),
            "reused": str(result.reused), "status": "failed" if result.error else "done",
            **({"error": result.error} if result.error else {})}


def log_cell(target: TrackingTarget, result: CellResult, steps: int | None) -> str:
    """The cell's child run under the sweep's parent (params, finite KPIs, ``wall_s``); its run id."""
    import math

    from pipelines import _tracking as tracking

    metrics = {k: v for k, v in result.kpis.items() if math.isfinite(v)} | {"wall_s": result.wall_s}
    return tracking.log_child_run(target.uri, target.experiment_id, target.parent_run_id, result.cell.label(),
                                  cell_params(result, steps), metrics)
