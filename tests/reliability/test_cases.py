"""Every hostile-input case ends as it must: a clear error (exit 2, naming what and where) or a
counted repair — never a traceback, an internal error or a silent change."""

from __future__ import annotations

import pytest

from tests.reliability._case import all_cases, run_case

CASES = all_cases()


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in CASES])
def test_case(case, tmp_path):
    outcome = run_case(case, tmp_path)
    assert outcome.ok, (f"{case.name}: expected {case.expect}, got {outcome.verdict} "
                        f"(exit {outcome.status})\nstderr:\n{outcome.stderr[-3000:]}\n"
                        f"stdout:\n{outcome.stdout[-1500:]}")


def test_there_are_cases():
    assert len(CASES) >= 1
