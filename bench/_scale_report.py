"""bench/results/scale.json and scale.md: one key per study (``sweep``, ``ddp``, ``admm``).

Each study script (``bench/scale_*.py``) measures its own part and calls ``update``: the JSON keeps
the other studies' keys as they were, and the Markdown is rewritten from the whole JSON, one
section per study, each with the machine and the command that measured it.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

__all__ = ["machine", "update"]

RESULTS = Path(__file__).resolve().parent / "results"
ORDER = ("sweep", "ddp", "admm")


def machine() -> str:
    """This machine in words (architecture, cores, Python)."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def update(key: str, data: dict, markdown: str, results: Path = RESULTS) -> Path:
    """Store study ``key``'s numbers and its Markdown section; returns the Markdown path.

    Args:
        key: the study (``sweep``, ``ddp`` or ``admm``).
        data: its JSON-serialisable numbers (the issue's keys).
        markdown: its section, starting with a ``## `` heading.
        results: the results folder.
    """
    if key not in ORDER:
        raise ValueError(f"bench._scale_report.update: unknown study {key!r}; valid: {', '.join(ORDER)}")
    results.mkdir(parents=True, exist_ok=True)
    json_path, md_path = results / "scale.json", results / "scale.md"
    store = json.loads(json_path.read_text()) if json_path.exists() else {}
    store[key] = data
    store.setdefault("_sections", {})[key] = markdown
    json_path.write_text(json.dumps(store, indent=2, sort_keys=True) + "\n")
    sections = [store["_sections"][k] for k in ORDER if k in store["_sections"]]
    md_path.write_text("# Scale-out: Ray sweeps, DDP training, per-site ADMM\n\n" + "\n\n".join(sections) + "\n")
    return md_path
