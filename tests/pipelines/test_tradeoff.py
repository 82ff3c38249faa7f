"""``greenllm tradeoff`` end to end on configs/smoke.yaml in a temporary MLflow store: the points are
the MPC with order [cost, metric] and ε (or the metric priced), measured against the ε = 0 run."""

from __future__ import annotations

import dataclasses

import mlflow
import pytest

from pipelines.cli import main
from pipelines.closed_loop import EXPERIMENT, prepare, run_loop
from pipelines.config import load_config
from pipelines.tradeoff import tradeoff_front

STEPS = 4


def test_tradeoff_end_to_end_one_child_per_point_and_the_green_llm_line(store, tmp_path, capsys):
    rc = main(["tradeoff", "configs/smoke.yaml", "--forecaster", "seasonal-naive", "--eps", "0,3",
               "--steps", str(STEPS), "--out", str(tmp_path / "out")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Green-LLM check (ε = 3 % against cost-first): seasonal-naive: CO2" in out and "perfect: CO2" in out
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    parent = runs[runs["tags.mlflow.runName"] == "tradeoff-carbon-eps"]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"].iloc[0]]
    assert len(parent) == 1 and len(children) == 4          # 2 points × (seasonal-naive, perfect)
    assert set(children["params.point"]) == {"0", "3"}
    assert (tmp_path / "out" / "front_carbon_eps.png").stat().st_size > 0


def test_a_point_is_the_mpc_with_cost_then_the_metric_at_that_epsilon(smoke_data):
    """The ε = 2 % water point equals a plain closed-loop run with order [cost, water] and ε = 0.02,
    and the table measures it against the ε = 0 run."""
    cfg = load_config("configs/smoke.yaml")
    s = prepare(cfg, "primary", STEPS, data=smoke_data)
    table = tradeoff_front(s, "water", "eps", (0.0, 2.0), ("perfect",), show_progress=False)
    plain = dataclasses.replace(cfg, control=dataclasses.replace(cfg.control, order=("cost", "water"), epsilon=0.02))
    out = run_loop(dataclasses.replace(s, cfg=plain), "mpc", "perfect", show_progress=False)
    row = table.set_index("point").loc[2.0]
    assert row["cost_eur"] == out.kpis["cost_eur"] and row["water_l"] == out.kpis["water_l"]
    base = table.set_index("point").loc[0.0]
    assert row["water_cut_pct"] == pytest.approx(100 * (1 - row["water_l"] / base["water_l"]))
    assert base["cost_increase_pct"] == 0.0


@pytest.mark.parametrize(("eps", "message"), [("0,abc", "'abc' in '0,abc' is not a number"),
                                              ("0,200", "200 is out of range [0, 100]"),
                                              ("1,1", "a value repeats")])
def test_bad_eps_lists_are_refused_before_any_work(eps, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["tradeoff", "configs/smoke.yaml", "--eps", eps])
    assert exc.value.code == 2 and message in capsys.readouterr().err
