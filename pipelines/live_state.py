"""The plant's live state as a JSON file: what ``greenllm plan --state`` reads and ``greenllm simulate
--state-out`` writes, so that a replay can be cut at any hour and planned onward from.

Format (every key optional but ``at``; names are the scenario's; a missing entry is 0)::

    {
      "at": "2018-12-14T08:00Z",               # the start of the hour the state holds at (UTC)
      "gpus_on": {"DE/h100": 120, ...},        # GPUs running per pool (≤ installed)
      "battery_soc_kwh": {"DE": 350.0, ...},   # state of charge per site with a battery (≤ its kWh)
      "water_used_today_l": {"DE": 420.0},     # litres used so far on the UTC day of "at"
      "backlog": {"Paris/batch": {"1": 3000.0, "3": 120.0}}   # deferrable work waiting per stream,
    }                                                          # by whole hours since arrival

Backlog ages run from 1 to the class deadline − 1 hours (older work has expired); work of age a
must be served within deadline − a + 1 hours (a deadline counts from the end of the arrival hour). The plant keeps
the arrivals of the last hours for its deadline rule; a backlog of age a stands for the arrivals
a hours ago that still wait (first in, first out), so the planner serves the oldest first and the
simulator expires what reaches its deadline, as in a replay. Every value is checked: an unknown
name, a negative or non-finite number, more GPUs than installed, charge above capacity, backlog on
an interactive class or an age out of range is an error naming the file, the key and the range.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from control.inputs import utc_day_index
from control.plant import PlantParams
from control.state import PlantState

__all__ = ["read_state", "state_document", "write_state"]

_NOISE_REQ = 1e-6   # backlog below this is round-off of the plant's balances, not work


def _backlog_by_age(plant: PlantParams, state: PlantState) -> dict[str, dict[str, float]]:
    """The backlog split by age, youngest first (first in, first out), from the arrivals history."""
    out: dict[str, dict[str, float]] = {}
    for r, region in enumerate(plant.region_names):
        for k, klass in enumerate(plant.class_names):
            left = float(state.backlog_req[r, k])
            if not plant.deferrable[k] or left <= _NOISE_REQ:
                continue
            ages: dict[str, float] = {}
            oldest, hist = max(int(plant.deadline_steps[k]) - 1, 1), state.arrivals_history_req
            for age in range(1, oldest + 1):
                last = age == oldest
                had = float(hist[age - 1, r, k]) if age <= len(hist) else 0.0
                take = left if last else min(left, had)
                if take > _NOISE_REQ:
                    ages[str(age)] = take
                left -= take
            out[f"{region}/{klass}"] = ages
    return out


def state_document(plant: PlantParams, state: PlantState, at: pd.Timestamp) -> dict[str, Any]:
    """The JSON document of ``state`` at the start of the hour ``at`` (module docstring)."""
    return {
        "at": at.strftime("%Y-%m-%dT%H:%MZ"),
        "gpus_on": {p: float(n) for p, n in zip(plant.pool_names, state.gpus_active, strict=True)},
        "battery_soc_kwh": {plant.site_names[s]: float(state.soc_kwh[s]) for s in plant.battery_sites},
        "water_used_today_l": {s: float(v) for s, v in zip(plant.site_names, state.water_used_today_l, strict=True)},
        "backlog": _backlog_by_age(plant, state),
    }


def write_state(path: Path, plant: PlantParams, state: PlantState, at: pd.Timestamp) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state_document(plant, state, at), indent=1) + "\n")
    return path


class _Reader:
    """Checks one document's entries; every error names the file and the key."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path, self.doc = path, doc

    def fail(self, key: str, what: str) -> ValueError:
        return ValueError(f"{self.path}: {key}: {what}")

    def number(self, key: str, value: Any, high: float = math.inf) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(key, f"{value!r} is not a finite number")
        if not 0 <= value <= high:
            raise self.fail(key, f"{value:g} is out of range [0, {high:g}]")
        return float(value)

    def table(self, key: str, names: tuple[str, ...], high: np.ndarray | None = None) -> np.ndarray:
        """A ``{name: number}`` entry as a vector over ``names`` (missing names 0)."""
        entry = self.doc.get(key, {})
        if not isinstance(entry, dict):
            raise self.fail(key, f"expected an object {{name: number}}, got {type(entry).__name__}")
        out = np.zeros(len(names))
        for name, value in entry.items():
            if name not in names:
                raise self.fail(f"{key}.{name}", f"unknown name (valid: {', '.join(names)})")
            i = names.index(name)
            out[i] = self.number(f"{key}.{name}", value, math.inf if high is None else float(high[i]))
        return out


def _read_backlog(reader: _Reader, plant: PlantParams, L: int) -> tuple[np.ndarray, np.ndarray]:
    """``backlog_req`` ``(R, K)`` and the arrivals history ``(L, R, K)`` from the ``backlog`` entry."""
    R, K = len(plant.region_names), len(plant.class_names)
    backlog, history = np.zeros((R, K)), np.zeros((L, R, K))
    streams = [f"{r}/{k}" for r in plant.region_names for k in plant.class_names]
    entry = reader.doc.get("backlog", {})
    if not isinstance(entry, dict):
        raise reader.fail("backlog", "expected an object {stream: {age_h: requests}}")
    for stream, ages in entry.items():
        if stream not in streams:
            raise reader.fail(f"backlog.{stream}", f"unknown stream (valid: {', '.join(streams)})")
        r, k = divmod(streams.index(stream), K)
        oldest = max(int(plant.deadline_steps[k]) - 1, 1)
        if not plant.deferrable[k]:
            raise reader.fail(f"backlog.{stream}", f"{plant.class_names[k]} is interactive: it has no backlog")
        if not isinstance(ages, dict):
            raise reader.fail(f"backlog.{stream}", "expected an object {age_h: requests}")
        for age_text, value in ages.items():
            age = int(age_text) if str(age_text).isdigit() else -1
            if not 1 <= age <= oldest:
                raise reader.fail(f"backlog.{stream}.{age_text}", f"age out of range: whole hours 1..{oldest} "
                                  f"(the {plant.class_names[k]} deadline is {oldest + 1} h)")
            req = reader.number(f"backlog.{stream}.{age_text}", value)
            backlog[r, k] += req
            if age <= L:
                history[age - 1, r, k] += req
    return backlog, history


def read_state(path: Path, plant: PlantParams, at: pd.Timestamp) -> PlantState:
    """The state of the JSON file ``path`` for the hour starting at ``at`` (module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, another hour, or a value out of range (names the file and key).
    """
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(doc, dict) or "at" not in doc:
        raise ValueError(f"{path}: expected a JSON object with at least \"at\" (the hour, UTC)")
    stated = pd.Timestamp(doc["at"])
    if stated.tzinfo is None or stated.tz_convert("UTC") != at:
        raise ValueError(f"{path}: at: {doc['at']!r} is not the planned hour {at:%Y-%m-%dT%H:%MZ} (a UTC time "
                         "with a zone)")
    reader = _Reader(Path(path), doc)
    gpus = reader.table("gpus_on", plant.pool_names, plant.gpus_max)
    soc = reader.table("battery_soc_kwh", plant.site_names, plant.battery_kwh)
    water = reader.table("water_used_today_l", plant.site_names)
    backlog, history = _read_backlog(reader, plant, PlantState.history_len(plant))
    day = int(utc_day_index(pd.DatetimeIndex([at]))[0])
    return PlantState(gpus, soc, backlog, history, water, day).validate(plant)
