"""Load a YAML config into frozen dataclasses, strictly.

Unknown keys, missing keys, wrong types and out-of-range values fail with the key path and what is
valid. ``extends: other.yaml`` starts from another config (mappings merge, lists are replaced).
``--set a.b=c`` overrides apply before validation; list items are addressed by ``name`` or index
(``sites.DE.water_budget_l_per_day=5e4``). Values are parsed as YAML (``true``, ``1e3``, ``[a, b]``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from control.params import ControlSettings, HardwareCatalogue, Penalties
from forecast.output import DEFAULT_QUANTILES
from forecast.scenario import ConfigError, Scenario
from forecast.settings import ForecastSettings

__all__ = ["Config", "ConfigError", "apply_overrides", "build_dataclass", "config_from_raw", "load_config"]


@dataclass(frozen=True)
class Config:
    """Everything one run needs, resolved and validated."""

    scenario: Scenario
    penalties: Penalties
    control: ControlSettings
    hardware: HardwareCatalogue
    path: str
    raw: dict[str, Any]  # the resolved mapping (logged as the run's config)
    forecast: ForecastSettings = ForecastSettings()


_TOP_KEYS = {"extends", "name", "data", "sizing", "sites", "regions", "classes", "penalties",
             "control", "hardware", "forecast"}


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader that also reads ``5e4`` and ``1E-3`` as numbers (YAML 1.2 does; 1.1
    needs a dot, so ``water_budget_l_per_day=5e4`` would otherwise arrive as the string '5e4')."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+)$"""),
    list("-+0123456789"))


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = _yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, val in over.items():
            out[key] = _merge(base[key], val) if key in base else val
        return out
    return over


def _resolve_extends(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle")
    data = _read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends: a file name is needed, got {parent!r}")
    return _merge(_resolve_extends(path.parent / parent, (*seen, path)), data)


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides to a raw config mapping (returns a new mapping)."""
    import copy

    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        key, text = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = _yaml(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML: {exc}") from exc
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                idx = _list_index(node, part, where)
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise ConfigError(f"--set {item!r}: {where} is not a mapping or list")
    return out


def _list_index(node: list[Any], part: str, where: str) -> int:
    for i, entry in enumerate(node):
        if isinstance(entry, dict) and entry.get("name") == part:
            return i
    if part.isdigit() and int(part) < len(node):
        return int(part)
    names = [e.get("name") for e in node if isinstance(e, dict)]
    raise ConfigError(f"--set: {where}: no list item named {part!r} (names: {names})")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def build_dataclass(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys, types and ranges."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path}: missing (a {_type_name(hints[name])} is needed)")
            continue
        value = _convert(hints[name], data[name], path)
        lo_hi = f.metadata.get("range")
        if lo_hi is not None and value is not None and not (lo_hi[0] <= value <= lo_hi[1]):
            raise ConfigError(f"{path}: {data[name]!r} is out of range [{lo_hi[0]:g}, {lo_hi[1]:g}]")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}" if where and not str(exc).startswith(where) else str(exc)) from None


def _convert(tp: Any, value: Any, path: str) -> Any:
    """``value`` checked against type hint ``tp`` (dataclass, Literal, tuple, optional or scalar)."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):   # a hint is a class, never an instance
        return build_dataclass(tp, value, path)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{path}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin is tuple:
        return _convert_tuple(tp, value, path)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, path)
    return _convert_scalar(tp, value, path)


def _convert_tuple(tp: Any, value: Any, path: str) -> tuple[Any, ...]:
    """A YAML list as a ``tuple[item, ...]``; items are labelled by ``name`` when they have one."""
    (item_tp, *_rest) = typing.get_args(tp)
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        label = f"{path}[{i}]"
        if isinstance(item, dict) and "name" in item:
            label = f"{path}[{item['name']}]"
        out.append(_convert(item_tp, item, label))
    return tuple(out)


def _convert_scalar(tp: Any, value: Any, path: str) -> Any:
    """A ``bool``, ``int``, ``float`` (finite) or ``str`` (a YAML date becomes its ISO string)."""
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, dt.date):
            return value.isoformat()
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {_type_name(tp)}")  # a bug in the dataclass


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, merge, override and validate a config file.

    Args:
        path: the scenario YAML (may ``extends`` another).
        overrides: ``key.path=value`` strings (``--set``).
    """
    path = Path(path)
    return config_from_raw(apply_overrides(_resolve_extends(path), overrides), path)


def config_from_raw(raw: dict[str, Any], path: str | Path) -> Config:
    """Validate a resolved mapping (``Config.raw``, e.g. with more ``apply_overrides``) read from ``path``.

    Args:
        raw: the mapping, ``extends`` already merged and overrides applied.
        path: the config file it came from (errors name it; ``hardware`` is read beside it).
    """
    path = Path(path)
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown}; valid: {sorted(_TOP_KEYS)}")
    for key in ("name", "sites", "regions", "classes"):
        if key not in raw:
            raise ConfigError(f"{path}: {key}: missing")
    try:
        scenario = build_dataclass(
            Scenario,
            {k: raw[k] for k in ("name", "data", "sites", "regions", "classes", "sizing") if k in raw}
            | {"data": raw.get("data", {}), "sizing": raw.get("sizing", {})},
            "",
        )
        penalties = build_dataclass(Penalties, raw.get("penalties", {}), "penalties")
        control = build_dataclass(ControlSettings, raw.get("control", {}), "control")
        forecast = build_dataclass(ForecastSettings, raw.get("forecast", {}), "forecast")
        hw_path = path.resolve().parent / str(raw.get("hardware", "hardware.yaml"))
        hardware = build_dataclass(HardwareCatalogue, _read_yaml(hw_path), "hardware")
        for site in scenario.sites:
            for gpu in site.pools:
                try:
                    hardware.get(gpu)
                except ConfigError as exc:
                    raise ConfigError(f"sites.{site.name}.pools: {exc}") from None
        _check_sections(control, forecast)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return Config(scenario, penalties, control, hardware, str(path), raw, forecast)


def _check_sections(control: ControlSettings, forecast: ForecastSettings) -> None:
    """What one section's value must agree with in another: the provisioning quantile is one the
    forecasters produce (at or above the median: the MPC prices the exposure above it at
    1 − quantile), and the forecasts cover the control horizon."""
    levels = [q for q in DEFAULT_QUANTILES if q >= 0.5]
    if not any(abs(control.load_quantile - q) < 1e-9 for q in levels):
        raise ConfigError(f"control.load_quantile: {control.load_quantile} is not a quantile the forecasters "
                          f"produce; valid: {', '.join(str(q) for q in levels)}")
    if control.burst_quantile < control.load_quantile:
        raise ConfigError(f"control.burst_quantile: {control.burst_quantile} is below control.load_quantile "
                          f"{control.load_quantile}; valid: {control.load_quantile} … 0.9999")
    hours = control.horizon_steps * control.step_h
    if hours > forecast.horizon_steps:
        raise ConfigError(f"control.horizon_steps: {control.horizon_steps} steps of {control.step_h} h need "
                          f"{hours:g} h of forecasts, forecast.horizon_steps is {forecast.horizon_steps}; valid: "
                          f"1 … {int(forecast.horizon_steps // control.step_h)}")

