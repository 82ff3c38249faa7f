"""The closed loop end to end on configs/smoke.yaml, in a temporary MLflow store."""

from __future__ import annotations

import dataclasses

import mlflow
import numpy as np
import pandas as pd
import pytest

from control.simulate import InvariantError, check_invariants
from pipelines import closed_loop
from pipelines.cli import main

STEPS = 6


def _runs(uri: str) -> pd.DataFrame:
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[closed_loop.EXPERIMENT])


def test_simulate_end_to_end_tracks_the_run(store, tmp_path, capsys):
    rc = main(["simulate", "configs/smoke.yaml", "--forecaster", "seasonal-naive", "--steps", str(STEPS),
               "--out", str(tmp_path / "plots")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "cost" in out and "CO2" in out and "SLO misses" in out
    runs = _runs(store)
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["params.controller"] == "mpc" and run["params.forecaster"] == "seasonal-naive"
    assert run["metrics.cost_eur"] > 0
    client = mlflow.MlflowClient()
    history = client.get_metric_history(run["run_id"], "step.cost_eur")
    assert sorted(m.step for m in history) == list(range(STEPS))
    arts = {a.path for a in client.list_artifacts(run["run_id"])}
    assert {"tables", "plots", "config.yaml"} <= arts
    plots = {a.path for a in client.list_artifacts(run["run_id"], "plots")}
    assert "plots/allocation.png" in plots
    sites = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run["run_id"],
                                                                artifact_path="tables/sites.parquet"))
    assert len(sites) == STEPS * 3


def test_compare_parent_children_and_the_hindsight_references(smoke_cfg, store, tmp_path, capsys):
    from pipelines._loop_compare import BOUND_ROW, MEASURES, REF_ROW
    from pipelines._loop_report import KPI_COLUMNS

    table = closed_loop.run_compare(smoke_cfg, "primary", STEPS, None, tmp_path / "cmp")
    assert set(KPI_COLUMNS) | set(MEASURES) <= set(table.columns)
    bound, ref = table.loc[BOUND_ROW, "cost_eur"], table.loc[REF_ROW, "cost_eur"]
    assert ref >= bound * (1 - 1e-6)
    assert table.loc[REF_ROW, "gap_to_bound"] == pytest.approx((ref - bound) / bound)
    controllers = table.drop(index=[BOUND_ROW, REF_ROW])
    assert (controllers["cost_eur"] >= bound * (1 - 1e-6)).all()     # the bound holds for every controller
    assert (controllers["gap_to_bound"] >= -1e-6).all()
    np.testing.assert_allclose(controllers["gap_to_hindsight"], (controllers["cost_eur"] - ref) / ref)
    assert ((controllers["drop_share"] >= 0) & (controllers["drop_share"] <= 1)).all()
    out = capsys.readouterr().out
    assert BOUND_ROW in out and REF_ROW in out and "bound_spread" in out and "value_of_forecasts" in out
    runs = _runs(store)
    parent = runs[runs["tags.mlflow.parentRunId"].isna()]
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert len(parent) == 1 and len(children) == len(controllers)
    assert set(children["tags.mlflow.parentRunId"]) == {parent.iloc[0]["run_id"]}
    top = parent.iloc[0]
    assert top["metrics.cost_ref"] == pytest.approx(ref) and top["metrics.cost_bound"] == pytest.approx(bound)
    assert np.isfinite(top["metrics.bound_spread"]) and np.isfinite(top["metrics.value_of_forecasts_eur"])
    assert children["metrics.gap_to_bound"].notna().all()
    client = mlflow.MlflowClient()
    arts = {a.path for a in client.list_artifacts(parent.iloc[0]["run_id"])}
    assert "comparison.csv" in arts and "plots" in arts


def test_plan_prints_the_hour_and_the_plan(store, capsys):
    rc = main(["plan", "configs/smoke.yaml", "--at", "2018-12-14T08:00Z", "--forecaster", "seasonal-naive"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "hour starting 2018-12-14 08:00 UTC" in out and "GPUs per pool" in out


def test_a_missing_model_is_a_clear_error(store, capsys):
    rc = main(["simulate", "configs/smoke.yaml", "--forecaster", "champion",
               "--steps", "2"])
    assert rc == 2
    assert "greenllm train" in capsys.readouterr().err


def test_no_look_ahead_in_the_loop(smoke_cfg, smoke_data):
    """Altering every realised value from hour 3 on changes no decision before hour 3.

    The plant is the same in both runs: its sizing (on the recorded peak) is a design choice."""
    base = closed_loop.prepare(smoke_cfg, "primary", STEPS, data=smoke_data)
    cut = base.t0 + pd.Timedelta(hours=3)
    sig = smoke_data.signals.copy()
    later = sig["ts"] >= cut
    sig.loc[later, "value"] = sig.loc[later, "value"] * 1.7 + 1.0
    ten = smoke_data.load_10min.copy()               # the 10-min load alike (its hourly means follow)
    ten.loc[ten.index >= cut] = ten.loc[ten.index >= cut] * 1.7 + 1.0
    altered = dataclasses.replace(smoke_data, signals=sig, load_10min=ten)
    other = closed_loop.prepare(smoke_cfg, "primary", STEPS, data=altered, plant=base.plant)
    a = closed_loop.run_loop(base, "mpc", "seasonal-naive", show_progress=False).episode
    b = closed_loop.run_loop(other, "mpc", "seasonal-naive", show_progress=False).episode
    for t in range(3):
        np.testing.assert_array_equal(a.records[t].served_req, b.records[t].served_req)
        np.testing.assert_array_equal(a.records[t].gpus_applied, b.records[t].gpus_applied)
    assert any(not np.array_equal(a.records[t].served_req, b.records[t].served_req) for t in range(3, STEPS))


def test_invariant_check_catches_a_lost_request(smoke_cfg, smoke_data):
    s = closed_loop.prepare(smoke_cfg, "primary", 2, data=smoke_data)
    ep = closed_loop.run_loop(s, "capacity-proportional", "perfect", show_progress=False).episode
    rec = ep.records[0]
    check_invariants(s.plant, rec, 0)
    lost = dataclasses.replace(rec, dropped_req=rec.dropped_req * 0.0 + rec.dropped_req - 1.0)
    with pytest.raises(InvariantError, match="request conservation"):
        check_invariants(s.plant, lost, 0)
    hot = dataclasses.replace(rec, grid_kw=rec.grid_kw + 0.5)
    with pytest.raises(InvariantError, match="power balance"):
        check_invariants(s.plant, hot, 0)


class _Killed(Exception):
    pass


def test_resume_after_a_kill_equals_an_uninterrupted_run(smoke_cfg, smoke_data, tmp_path):
    s = closed_loop.prepare(smoke_cfg, "primary", STEPS, data=smoke_data)
    whole = closed_loop.run_loop(s, "mpc", "seasonal-naive", show_progress=False).episode
    ckpt = tmp_path / "checkpoint.pkl"

    def kill_at_4(t, *_):
        if t == 4:
            raise _Killed

    with pytest.raises(_Killed):
        closed_loop.run_loop(s, "mpc", "seasonal-naive", show_progress=False, checkpoint=ckpt,
                             checkpoint_every=2, observers=(kill_at_4,))
    resumed = closed_loop.run_loop(s, "mpc", "seasonal-naive", show_progress=False, checkpoint=ckpt,
                                   checkpoint_every=2, resume=True).episode
    assert len(resumed.records) == STEPS
    for a, b in zip(whole.records, resumed.records, strict=True):
        np.testing.assert_array_equal(a.served_req, b.served_req)
        np.testing.assert_array_equal(a.gpus_applied, b.gpus_applied)
        assert a.cost_eur == b.cost_eur
    assert resumed.cost_eur == whole.cost_eur
    other = closed_loop.prepare(smoke_cfg, "primary", STEPS + 1, data=smoke_data)
    with pytest.raises(ValueError, match="another run"):
        closed_loop.run_loop(other, "mpc", "seasonal-naive", show_progress=False, checkpoint=ckpt, resume=True)


@pytest.mark.slow
def test_ui_serves_and_leaves_no_server_behind(store, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from pipelines.ui_check import _free_port, _wait_up

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ui", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ))
    try:
        _wait_up(f"http://127.0.0.1:{port}", proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert "http://127.0.0.1:" in proc.stdout.read()
    time.sleep(1.0)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)


def test_simulate_prints_litres_over_budget_per_site_and_day(store, tmp_path, capsys):
    """A DE budget of 50 L/day is far below what DE uses: simulate names the site-day, its use,
    budget and excess, and the excess equals the per-step records' sum."""
    rc = main(["simulate", "configs/smoke.yaml", "--forecaster", "perfect", "--steps", str(STEPS),
               "--set", "sites.DE.water_budget_l_per_day=50", "--out", str(tmp_path / "plots")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "water over budget (1 site-days" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("DE   2018-12-14"))
    used, budget, over = (float(v) for v in line.split()[2:5])
    assert budget == 50.0 and over == pytest.approx(used - budget, abs=1.0) and over > 0
