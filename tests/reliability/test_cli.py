"""The CLI's boundary itself: numbers in ``--set``, the catch-all for an unforeseen error, ``--debug``."""

from __future__ import annotations

import pytest

from pipelines.cli import main
from pipelines.config import apply_overrides, load_config
from tests.conftest import CONFIGS


@pytest.mark.parametrize("text, value", [("5e4", 5e4), ("1E-3", 1e-3), ("-2e+3", -2e3), ("7", 7),
                                         ("0.5", 0.5), ("abc", "abc"), ("[1e3, 2]", [1e3, 2])])
def test_set_reads_exponent_numbers_as_numbers(text, value):
    assert apply_overrides({}, [f"a={text}"])["a"] == value


def test_the_readmes_own_set_example_is_accepted():
    cfg = load_config(CONFIGS / "smoke.yaml", ["sites.DE.water_budget_l_per_day=5e4"])
    assert next(s for s in cfg.scenario.sites if s.name == "DE").water_budget_l_per_day == 5e4


def _boom(*_a, **_k):
    raise RuntimeError("something nobody anticipated")


def test_an_unforeseen_error_is_one_line_and_exit_1(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("pipelines.data.run_summary", _boom)
    assert main(["data", "summary", str(CONFIGS / "smoke.yaml"), "--plots", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: something nobody anticipated" in err
    assert "--debug" in err and "Traceback" not in err


def test_debug_shows_the_traceback(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("pipelines.data.run_summary", _boom)
    assert main(["data", "summary", str(CONFIGS / "smoke.yaml"), "--plots", str(tmp_path), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
