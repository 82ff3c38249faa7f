"""One hostile-input case: build the bad input from the packaged data, run ``greenllm`` on it
in-process, and classify what happened.

Every ``cases_*.py`` module of this package exposes ``CASES: list[Case]``; the tests
(``test_cases.py``) assert each case's expected outcome and ``bench/reliability.py`` tabulates them.

Outcomes:
    ``clear error``   exit 2 and the message names everything in ``mentions``;
    ``repair counted`` exit 0 and the output names everything in ``mentions`` (what was repaired
                      and how many);
    ``misleading``    exit 2 but the message misses something in ``mentions``;
    ``silent change`` exit 0 where an error or a counted repair was expected;
    ``internal error`` exit 1 (the catch-all: a defect);
    ``traceback``     an exception escaped ``main`` (a defect).
"""

from __future__ import annotations

import contextlib
import io
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Expect = Literal["clear error", "repair counted"]


@dataclass(frozen=True)
class Invocation:
    """What one case runs: ``greenllm ARGV`` with extra environment variables (``{tmp}`` in a value
    is the case's temporary folder)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """A bad input and what the product must do with it.

    Args:
        name: short id (also the pytest id).
        category: the class of input (``load file``, ``user series``, ``config``, ``CLI flag``,
            ``checkpoint``, ``solver``, ``UI``, …).
        build: makes the bad input under the given folder and returns what to run.
        expect: ``clear error`` or ``repair counted``.
        mentions: substrings the message (stderr for errors, stdout + stderr for repairs) must
            contain, case-insensitive: the file / site / signal / key, and the valid range.
        slow: the case trains or simulates (pytest marks it ``slow``).
    """

    name: str
    category: str
    build: Callable[[Path], Invocation]
    expect: Expect
    mentions: tuple[str, ...]
    slow: bool = False


@dataclass(frozen=True)
class Outcome:
    case: Case
    status: int | None   # exit status; None when an exception escaped
    stdout: str
    stderr: str
    verdict: str

    @property
    def ok(self) -> bool:
        return self.verdict == self.case.expect


def _missing(text: str, mentions: tuple[str, ...]) -> list[str]:
    low = text.lower()
    return [m for m in mentions if m.lower() not in low]


def run_case(case: Case, tmp: Path) -> Outcome:
    """Build the case's input in ``tmp``, run ``greenllm`` in-process and classify the outcome."""
    from pipelines.cli import main

    tmp.mkdir(parents=True, exist_ok=True)
    inv = case.build(tmp)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", **inv.env}
    env = {k: v.replace("{tmp}", str(tmp)) for k, v in env.items()}
    saved = {k: os.environ.get(k) for k in env}
    out, err = io.StringIO(), io.StringIO()
    status: int | None
    try:
        os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main([a.replace("{tmp}", str(tmp)) for a in inv.argv])
            except SystemExit as exc:  # argparse's own errors exit 2 with a usage line
                status = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - a traceback is the defect we classify
                traceback.print_exc(file=err)
                status = None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    stdout, stderr = out.getvalue(), err.getvalue()
    if status is None:
        verdict = "traceback"
    elif status == 1:
        verdict = "internal error"
    elif status == 2:
        verdict = "clear error" if not _missing(stderr, case.mentions) else "misleading"
    elif status == 0:
        ok = case.expect == "repair counted" and not _missing(stdout + stderr, case.mentions)
        verdict = "repair counted" if ok else "silent change"
    else:
        verdict = f"exit {status}"
    return Outcome(case, status, stdout, stderr, verdict)


def all_cases() -> list[Case]:
    """Every ``CASES`` of the ``cases_*`` modules beside this one, in file order."""
    import importlib

    cases: list[Case] = []
    for path in sorted(Path(__file__).parent.glob("cases_*.py")):
        mod = importlib.import_module(f"tests.reliability.{path.stem}")
        cases.extend(mod.CASES)
    return cases
