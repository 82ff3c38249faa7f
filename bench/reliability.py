"""Hostile input and faults: every case of ``tests/reliability/cases_*.py`` run through ``greenllm``
and tabulated by outcome.

Each case builds its own bad input from the packaged data (a damaged load file, a user series with a
unit slip, a bad flag, a damaged checkpoint, a forced solver time-out, …) in a temporary folder and
runs the command in-process (``pipelines.cli.main``). Outcomes (``tests/reliability/_case.py``):
``clear error`` (exit 2, the message names what and where and the accepted range), ``repair
counted`` (exit 0, the repair and its count printed), and the defects: ``misleading`` (exit 2 but the
message misses the file / key / range), ``silent change`` (exit 0 with nothing said),
``internal error`` (the catch-all, exit 1) and ``traceback``.

Run from the project root (the cases and the configs' data folders are found from there):
``.venv/bin/python -m bench.reliability [--only SUBSTRING]`` → bench/results/reliability.md and
reliability.json. Exit status 1 when any case is a defect or not what it expects.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

try:
    from tests.reliability._case import all_cases, run_case
except ModuleNotFoundError as exc:   # run as a file from elsewhere: the cases live in the repo's tests/
    raise SystemExit("run from the project root: .venv/bin/python -m bench.reliability") from exc

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench" / "results"
DEFECTS = ("misleading", "silent change", "internal error", "traceback")


def _first_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("usage:")]
    msg = lines[-1] if lines else ""
    return (msg[:157] + "…") if len(msg) > 160 else msg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args()
    if Path.cwd().resolve() != ROOT:
        raise SystemExit(f"run from the project root {ROOT}: the configs' data folders are relative to it "
                         "(.venv/bin/python -m bench.reliability)")
    cases = [c for c in all_cases() if args.only in c.name]
    rows = []
    with tempfile.TemporaryDirectory(prefix="greenllm-reliability-") as tmp:
        for i, case in enumerate(cases):
            t0 = time.perf_counter()
            out = run_case(case, Path(tmp) / f"{i:03d}-{case.name}")
            secs = time.perf_counter() - t0
            msg = _first_line(out.stderr if out.status != 0 else out.stdout + out.stderr)
            rows.append({"case": case.name, "category": case.category, "expected": case.expect,
                         "verdict": out.verdict, "exit": out.status, "ok": out.ok, "seconds": round(secs, 2),
                         "message": msg})
            print(f"[{i + 1}/{len(cases)}] {case.name}: {out.verdict} (exit {out.status}, {secs:.1f} s)",
                  flush=True)
    verdicts = Counter(r["verdict"] for r in rows)
    wrong = [r for r in rows if not r["ok"]]
    machine = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs), Python {platform.python_version()}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reliability.json").write_text(json.dumps(
        {"machine": machine, "cases": rows, "verdicts": dict(verdicts),
         "defects": sum(verdicts[d] for d in DEFECTS), "not_as_expected": len(wrong)}, indent=1))
    lines = ["# Hostile input and faults", "",
             f"Written by `bench/reliability.py` on {time.strftime('%Y-%m-%d')}, machine: {machine}.",
             f"{len(rows)} cases from `tests/reliability/cases_*.py`, each built from the packaged data "
             "and run through `greenllm` in-process.", "",
             "| outcome | cases |", "|---|---|"]
    lines += [f"| {v} | {verdicts.get(v, 0)} |" for v in ("clear error", "repair counted", *DEFECTS)]
    lines += ["", f"Defects (misleading, silent change, internal error, traceback): "
              f"**{sum(verdicts[d] for d in DEFECTS)}**; cases not ending as expected: **{len(wrong)}**.", ""]
    lines += ["| category | case | expected | outcome | exit | message (last line) |", "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["category"], r["case"])):
        msg = r["message"].replace("|", "\\|")
        lines.append(f"| {r['category']} | {r['case']} | {r['expected']} | {r['verdict']} | {r['exit']} | {msg} |")
    (RESULTS / "reliability.md").write_text("\n".join(lines) + "\n")
    print(f"\n{dict(verdicts)}; defects {sum(verdicts[d] for d in DEFECTS)}, not as expected {len(wrong)} "
          f"→ {RESULTS / 'reliability.md'}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
