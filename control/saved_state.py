"""Saved state without pickle: one ``.npz`` file of plain arrays plus JSON metadata.

Format (``greenllm-saved-state``, version 1), used for closed-loop checkpoints
(``OUT/checkpoint.npz``) and meant for the operator's state file:

* one ZIP archive written by ``numpy.savez`` (uncompressed; every member CRC-checked on reading);
* every member a NumPy array of bool, integer, float or unicode-string dtype — never an object
  array, so ``numpy.load(..., allow_pickle=False)`` reads it and loading cannot run code;
* the member ``__meta__``: a 0-d string array holding one JSON document
  ``{"format": "greenllm-saved-state", "version": 1, "arrays": [names], "meta": {...}}``;
  ``arrays`` lists every other member, so a file that lost one is refused as incomplete.

Dataclasses (``PlantState``, ``StepRecord``, ``Plan``, ``StepTiming``, event records) and tuples
are stored field by field (``pack``): a group of ``n`` items of one type becomes one array per
field named ``<prefix>.<field>`` with the items stacked on axis 0, and the group's metadata
``{"type": class name or "tuple", "count": n, "fields": {field: kind}}`` with kind ``array``,
``float``, ``int``, ``bool`` or ``str``. ``unpack`` rebuilds them with the constructor of a class
the caller names — the file never chooses code. Floats round-trip bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "FORMAT_VERSION", "SavedStateError", "load_state", "pack", "save_state", "unpack",
           "warm_from_arrays", "warm_to_arrays"]

FORMAT = "greenllm-saved-state"
FORMAT_VERSION = 1
META = "__meta__"
_DTYPE_KINDS = "biufU"          # bool, signed and unsigned integers, floats, unicode strings
_ZIP_MAGIC = b"PK\x03\x04"


class SavedStateError(ValueError):
    """A saved-state file that is not a valid, complete file of this format (or holds other data)."""


def save_state(path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write ``arrays`` and the JSON-serialisable ``meta`` to ``path`` atomically.

    Args:
        path: the ``.npz`` file (a kill while writing leaves the previous file intact).
        arrays: name → array of bool, integer, float or string dtype.
        meta: plain JSON data (dicts, lists, strings, numbers, booleans, None).

    Raises:
        ValueError: an array of another dtype (e.g. object), or a reserved name.
    """
    for name, arr in arrays.items():
        if name == META or not isinstance(arr, np.ndarray) or arr.dtype.kind not in _DTYPE_KINDS:
            kind = getattr(getattr(arr, "dtype", None), "kind", type(arr).__name__)
            raise ValueError(f"save_state: array {name!r} has kind {kind!r}; allowed: numeric, bool or "
                             f"str arrays, and not the name {META!r}")
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "arrays": sorted(arrays), "meta": meta}
    text = json.dumps(doc, sort_keys=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, allow_pickle=False, **{META: np.array(text)}, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _invalid(path: Path, why: str) -> SavedStateError:
    return SavedStateError(f"{path}: not a valid, complete {FORMAT} file (format version "
                           f"{FORMAT_VERSION}, a NumPy .npz archive): {why}")


def _read(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head != _ZIP_MAGIC:
        raise _invalid(path, f"it does not start as a ZIP archive (first bytes {head!r})")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    except Exception as exc:  # noqa: BLE001 — whatever a damaged file raises, it is not valid
        raise _invalid(path, f"{type(exc).__name__}: {str(exc)[:200]}") from None


def load_state(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read ``save_state``'s file: (arrays, meta). Never unpickles.

    Raises:
        FileNotFoundError: no such file.
        SavedStateError: truncated, garbled, another kind of file, another format version, an
            object array, or members missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"saved state not found: {path}")
    arrays = _read(path)
    if META not in arrays:
        raise _invalid(path, f"no {META!r} member")
    try:
        doc = json.loads(str(arrays.pop(META)[()]))
        fmt, version, names, meta = doc["format"], doc["version"], doc["arrays"], doc["meta"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _invalid(path, f"unreadable metadata ({type(exc).__name__}: {str(exc)[:120]})") from None
    if fmt != FORMAT:
        raise _invalid(path, f"format {fmt!r}")
    if version != FORMAT_VERSION:
        raise _invalid(path, f"format version {version!r}; this code reads version {FORMAT_VERSION}")
    missing, extra = sorted(set(names) - set(arrays)), sorted(set(arrays) - set(names))
    if missing or extra:
        raise _invalid(path, f"members missing {missing[:5]}, unexpected {extra[:5]}")
    bad = [n for n, a in arrays.items() if a.dtype.kind not in _DTYPE_KINDS]
    if bad:
        raise _invalid(path, f"arrays {bad[:5]} are not numeric, bool or str")
    if not isinstance(meta, dict):
        raise _invalid(path, "the metadata is not a JSON object")
    return arrays, meta


# ---------------------------------------------------------------------- dataclasses and tuples
def _kind(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return "array"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    if isinstance(value, str):
        return "str"
    raise ValueError(f"pack: a value of type {type(value).__name__} cannot be saved; "
                     "allowed: arrays, bool, int, float, str")


def _columns(item: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    if isinstance(item, tuple):
        return {str(i): v for i, v in enumerate(item)}
    raise ValueError(f"pack: {type(item).__name__} is neither a dataclass nor a tuple")


def pack(prefix: str, items: Sequence[Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Items of one dataclass type (or tuples of one layout) as one stacked array per field.

    Args:
        prefix: the array names' prefix (``<prefix>.<field>``).
        items: dataclass instances of one type, or tuples of one layout.

    Returns:
        (arrays, the group's metadata for ``unpack``).
    """
    rows = [_columns(it) for it in items]
    if not rows:
        return {}, {"type": None, "count": 0, "fields": {}}
    types = {type(it).__name__ for it in items}
    first = rows[0]
    kinds = {name: _kind(value) for name, value in first.items()}
    arrays: dict[str, np.ndarray] = {}
    for name, kind in kinds.items():
        values = [row[name] for row in rows]
        if len(types) > 1 or any(_kind(v) != kind for v in values) or (
                kind == "array" and len({(v.shape, v.dtype) for v in values}) > 1):
            raise ValueError(f"pack {prefix!r}: field {name!r} differs in type or shape between items")
        arrays[f"{prefix}.{name}"] = np.stack(values) if kind == "array" else np.array(values)
    type_name = "tuple" if isinstance(items[0], tuple) else type(items[0]).__name__
    return arrays, {"type": type_name, "count": len(rows), "fields": kinds}


_SCALAR = {"float": float, "int": int, "bool": bool, "str": str}


def _group_class(prefix: str, type_name: Any, kinds: dict[str, str],
                 cls: type | Mapping[str, type] | None) -> type | None:
    """The class ``unpack`` builds (None: tuples), checked against the group's type name and fields.

    Raises:
        SavedStateError: the type name is not the one expected (or allowed), or the fields differ.
    """
    if isinstance(cls, Mapping):
        if type_name != "tuple" and type_name not in cls:
            raise SavedStateError(f"saved group {prefix!r}: type {type_name!r}; expected one of {sorted(cls)}")
        cls = None if type_name == "tuple" else cls[type_name]
    expected = "tuple" if cls is None else cls.__name__
    if type_name != expected:
        raise SavedStateError(f"saved group {prefix!r}: type {type_name!r}, expected {expected!r}")
    if cls is not None:
        names = {f.name for f in dataclasses.fields(cls)}
        if set(kinds) != names:
            raise SavedStateError(f"saved {expected} {prefix!r}: fields {sorted(kinds)} differ from this "
                                  f"code's {sorted(names)}")
    return cls


def _group_columns(prefix: str, arrays: Mapping[str, np.ndarray], kinds: dict[str, str],
                   count: int) -> dict[str, np.ndarray]:
    """Each field's stacked array of the group.

    Raises:
        SavedStateError: a field's array is missing, not ``count`` items, or of an unknown kind.
    """
    columns: dict[str, np.ndarray] = {}
    for name, kind in kinds.items():
        arr = arrays.get(f"{prefix}.{name}")
        if arr is None or arr.ndim < 1 or arr.shape[0] != count or (kind != "array" and kind not in _SCALAR):
            raise SavedStateError(f"saved group {prefix!r}: field {name!r} missing or not {count} items of {kind}")
        columns[name] = arr
    return columns


def unpack(prefix: str, arrays: Mapping[str, np.ndarray], group: Mapping[str, Any],
           cls: type | Mapping[str, type] | None = None) -> list[Any]:
    """Rebuild ``pack``'s items.

    Args:
        prefix: as given to ``pack``.
        arrays: the loaded arrays.
        group: ``pack``'s metadata of the group.
        cls: the dataclass to build, or a mapping of allowed class names to classes (the file's
            type name picks one); None for tuples.

    Raises:
        SavedStateError: the group's type, fields or arrays do not match.
    """
    try:
        count, kinds, type_name = int(group["count"]), dict(group["fields"]), group["type"]
    except (KeyError, TypeError, ValueError):
        raise SavedStateError(f"saved group {prefix!r}: unreadable metadata {group!r:.200}") from None
    if count == 0:
        return []
    cls = _group_class(prefix, type_name, kinds, cls)
    columns = _group_columns(prefix, arrays, kinds, count)
    items = []
    for i in range(count):
        values = {name: (np.array(col[i]) if kinds[name] == "array" else _SCALAR[kinds[name]](col[i]))
                  for name, col in columns.items()}
        items.append(tuple(values[str(j)] for j in range(len(values))) if cls is None else cls(**values))
    return items


# ---------------------------------------------------------------------- solver warm starts
def warm_to_arrays(prefix: str, warm: object) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A solver warm start (``AllocationMPC.warm_start()``) as arrays and metadata.

    HiGHS gives None or a (column statuses, row statuses) pair of int lists; CasADi's qpsol an
    array (the last solution).
    """
    if warm is None:
        return {}, {"kind": "none"}
    if isinstance(warm, np.ndarray):
        return {f"{prefix}.x0": np.asarray(warm, dtype=float)}, {"kind": "x0"}
    if isinstance(warm, tuple) and len(warm) == 2:
        cols, rows = warm
        return ({f"{prefix}.cols": np.asarray(cols, dtype=np.int64),
                 f"{prefix}.rows": np.asarray(rows, dtype=np.int64)}, {"kind": "basis"})
    raise ValueError(f"warm_to_arrays: a warm start of type {type(warm).__name__} cannot be saved")


def warm_from_arrays(prefix: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> object:
    """``warm_to_arrays``' warm start back (None, a basis pair of int lists, or an array)."""
    kind = meta.get("kind")
    try:
        if kind == "none":
            return None
        if kind == "x0":
            return np.array(arrays[f"{prefix}.x0"], dtype=float)
        if kind == "basis":
            return ([int(v) for v in arrays[f"{prefix}.cols"]], [int(v) for v in arrays[f"{prefix}.rows"]])
    except KeyError as exc:
        raise SavedStateError(f"saved warm start {prefix!r}: array {exc} missing") from None
    raise SavedStateError(f"saved warm start {prefix!r}: kind {kind!r}; expected none, x0 or basis")
