"""``greenllm sweep`` on configs/smoke.yaml with a local Ray (one session for the module) in a
temporary MLflow store: the cells equal the serial runs, a rerun skips the done cells, a failed
cell is reported while the others finish; ``greenllm tradeoff``'s points on Ray equal its serial ones."""

from __future__ import annotations

import json

import mlflow
import pytest

from pipelines._sweep_cells import Cell, cell_key, parse_grid, split_values
from pipelines._sweep_ray import RayOptions, job_env
from pipelines.cli import main
from pipelines.closed_loop import EXPERIMENT, prepare, run_loop
from pipelines.config import load_config
from pipelines.sweep import run_sweep, sweep_spec
from pipelines.tradeoff import tradeoff_front

STEPS = 4
SMOKE = "configs/smoke.yaml"
TIMING = ("median_step_ms", "p95_step_ms", "max_step_ms")   # wall-clock KPIs: differ between any two runs


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (its start-up takes seconds); ``ray_session`` uses it as it is."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": job_env()})
    yield ray
    ray.shutdown()


def _same_kpis(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    assert {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}


@pytest.mark.slow   # a local Ray's workers start in seconds each
def test_a_two_cell_sweep_equals_the_serial_runs_and_tracks_a_parent_with_a_child_per_cell(
        local_ray, store, tmp_path, smoke_data, capsys):
    outcome = run_sweep(load_config(SMOKE), ["control.epsilon=0.001,0.03"], ("primary",), ("mpc",), "perfect",
                        STEPS, tmp_path / "out")
    assert not outcome.failed and len(outcome.results) == 2
    for result in outcome.results:
        serial = run_loop(prepare(load_config(SMOKE, list(result.cell.overrides)), "primary", STEPS, data=smoke_data),
                          "mpc", "perfect", show_progress=False)
        _same_kpis(result.kpis, serial.kpis)
        stored = json.loads((tmp_path / "out" / "cells" / f"{result.key}.json").read_text())
        assert stored["kpis"]["cost_eur"] == result.kpis["cost_eur"]
    assert list(outcome.table.index.get_level_values("control.epsilon")) == ["0.001", "0.03"]
    assert (tmp_path / "out" / "cells.csv").is_file() and (tmp_path / "out" / "summary.csv").is_file()
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    parent = runs[runs["tags.mlflow.parentRunId"].isna()]
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert len(parent) == 1 and len(children) == 2
    assert set(children["tags.mlflow.parentRunId"]) == {parent.iloc[0]["run_id"]}
    assert set(children["params.grid.control.epsilon"]) == {"0.001", "0.03"}
    assert "mean and spread" in capsys.readouterr().out


@pytest.mark.slow   # a local Ray's workers start in seconds each
def test_a_rerun_skips_the_done_cells_and_runs_only_the_new_ones(local_ray, store, tmp_path):
    cfg, out = load_config(SMOKE), tmp_path / "out"
    first = run_sweep(cfg, ["control.epsilon=0.03"], ("primary",), ("nearest-site",), "perfect", STEPS, out)
    again = run_sweep(cfg, ["control.epsilon=0.03,0.05"], ("primary",), ("nearest-site",), "perfect", STEPS, out)
    assert [r.reused for r in again.results] == [True, False]
    assert again.results[0].kpis == first.results[0].kpis
    assert len(list((out / "cells").glob("*.json"))) == 2


@pytest.mark.slow   # a local Ray's workers start in seconds each
def test_a_failed_cell_is_reported_and_the_other_finishes_with_a_nonzero_exit(local_ray, store, tmp_path, capsys):
    rc = main(["sweep", SMOKE, "--grid", "control.epsilon=0.03,abc", "--controllers", "nearest-site",
               "--steps", str(STEPS), "--out", str(tmp_path / "out")])
    assert rc == 1
    out = capsys.readouterr().out
    assert "FAILED control.epsilon=abc | primary | nearest-site [perfect]" in out
    assert "control.epsilon: expected a number, got 'abc'" in out
    assert "1 of 2 cells done" in out
    assert len(list((tmp_path / "out" / "cells").glob("*.json"))) == 1   # the failed cell is retried next time


@pytest.mark.slow   # a local Ray's workers start in seconds each
def test_tradeoff_points_on_ray_equal_the_serial_points(local_ray, smoke_data, capsys):
    s = prepare(load_config(SMOKE), "primary", STEPS, data=smoke_data)
    serial = tradeoff_front(s, "carbon", "eps", (0.0, 3.0), ("perfect",), show_progress=False)
    on_ray = tradeoff_front(s, "carbon", "eps", (0.0, 3.0), ("perfect",), show_progress=False, ray=RayOptions())
    assert on_ray.equals(serial)
    assert "2 points as Ray tasks" in capsys.readouterr().out


# ---------------------------------------------------------------------- without Ray work
def test_grid_values_split_on_top_level_commas_only():
    assert split_values("0,0.5, 3") == ["0", "0.5", "3"]
    assert split_values("[cost, water],[cost, carbon]") == ["[cost, water]", "[cost, carbon]"]
    assert parse_grid(["a.b=1,2", "c=[x, y]"]) == [("a.b", ["1", "2"]), ("c", ["[x, y]"])]


@pytest.mark.parametrize(("items", "message"), [(["control.epsilon"], "expected key.path=v1,v2"),
                                                (["control.epsilon=1,,2"], "an empty value"),
                                                (["a=1", "a=2"], "already a grid key"),
                                                (["a=1,1"], "a value repeats")])
def test_bad_grids_are_refused(items, message):
    with pytest.raises(ValueError, match=message):
        parse_grid(items)


def test_the_cell_key_follows_the_config_window_controller_and_steps():
    cfg = load_config(SMOKE)
    spec, cell = sweep_spec(cfg, STEPS), Cell(("control.epsilon=0.03",), "primary", "mpc")
    key = cell_key(spec, cell)
    assert key == cell_key(sweep_spec(load_config(SMOKE), STEPS), cell)
    others = [cell_key(spec, Cell(("control.epsilon=0.05",), "primary", "mpc")),
              cell_key(spec, Cell(cell.overrides, "nov-19", "mpc")),
              cell_key(spec, Cell(cell.overrides, "primary", "myopic")),
              cell_key(spec, Cell(cell.overrides, "primary", "mpc", "seasonal-naive")),
              cell_key(sweep_spec(cfg, STEPS + 1), cell),
              cell_key(sweep_spec(load_config(SMOKE, ["penalties.drop_eur_per_request=1"]), STEPS), cell)]
    assert key not in others and len(set(others)) == len(others)


@pytest.mark.parametrize(("argv", "message"), [
    (["--controllers", "mpc,bogus"], "'bogus' in 'mpc,bogus': not one of mpc"),
    (["--windows", "primary,primary"], "an item repeats"),
    (["--workers", "0"], "out of range"),
])
def test_bad_sweep_options_are_refused_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", SMOKE, *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_workers_with_a_cluster_address_is_refused(store, capsys):
    assert main(["sweep", SMOKE, "--workers", "2", "--address", "ray://head:10001"]) == 2
    assert "only for a local Ray" in capsys.readouterr().err


@pytest.mark.parametrize(("uri", "server"), [("http://127.0.0.1:5000", True), ("https://mlflow.example", True),
                                             ("sqlite:///mlruns/mlflow.db", False), ("postgresql://db/x", False)])
def test_only_an_mlflow_server_lets_the_workers_write_their_own_cells(uri, server):
    from pipelines._tracking import is_server

    assert is_server(uri) is server
