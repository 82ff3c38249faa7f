"""Refresh in the loop (``--refresh-every``, ``pipelines.refresh``) on configs/smoke.yaml: a refresh
reads no data at or after its time, registers a version whose lineage names its parent (the alias
champion stays), bad values are clear errors, and a closed loop with refresh runs end to end."""

from __future__ import annotations

import dataclasses

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from forecast.models import ForecasterSuite, LearnedForecaster
from forecast.splits import split_signal
from pipelines import _tracking as tracking
from pipelines import _tracking_registry as registry
from pipelines.cli import main
from pipelines.loop import EXPERIMENT, prepare
from pipelines.refresh import VALID_H, Refresher, check_refresh, tracked_refresher

EVERY_H = 12
T0 = pd.Timestamp("2018-12-14T00:00Z")
AT = T0 + pd.Timedelta(hours=EVERY_H)   # the first refresh time


@pytest.fixture(scope="module")
def load_suite(smoke_cfg, smoke_data) -> ForecasterSuite:
    """A tiny load model on smoke's training days (one epoch): the parent of the refreshes."""
    fs = dataclasses.replace(smoke_cfg.forecast, max_epochs=1, batches_per_epoch=3, hidden=16, num_threads=1)
    split = split_signal(smoke_data, smoke_cfg.scenario, "load_req_per_s", fs)
    model = LearnedForecaster("load_req_per_s", fs, split.tz)
    model.fit(split.upto_at(0, model.input_step), split.upto_at(1, model.input_step), outputs=split.outputs,
              progress=False)
    return ForecasterSuite({"load_req_per_s": model})


def _changed_from(data, at: pd.Timestamp, scale: float = 3.0):
    """``data`` with every value at or after ``at`` changed (hourly signals, 10-min load, clients)."""
    sig = data.signals
    signals = sig.assign(value=np.where(sig["ts"] >= at, sig["value"] * scale + 7.0, sig["value"]))
    ten = data.load_10min.copy()
    ten.loc[ten.index >= at] = ten.loc[ten.index >= at] * scale + 7.0
    cl = data.load.clients
    clients = cl.assign(load_req_per_s=np.where(cl["ts"] >= at, cl["load_req_per_s"] * scale + 7.0,
                                                cl["load_req_per_s"]))
    load = dataclasses.replace(data.load, clients=clients, load_10min=ten)
    return dataclasses.replace(data, signals=signals, load_10min=ten, load=load)


def _refreshed(cfg, data, plant, suite):
    s = prepare(cfg, "primary", 2 * EVERY_H, data=data, plant=plant)
    r = Refresher(s, suite, EVERY_H, "v0", say=lambda _: None)
    r.parts_at(EVERY_H)                                   # runs refresh 1 at AT
    return r


def _weights(r: Refresher) -> dict[str, torch.Tensor]:
    return r.suites[1].models["load_req_per_s"].net.state_dict()


def test_a_refresh_reads_no_data_at_or_after_its_time(smoke_cfg, smoke_data, load_suite):
    plant = prepare(smoke_cfg, "primary", 2 * EVERY_H, data=smoke_data).plant
    base = _refreshed(smoke_cfg, smoke_data, plant, load_suite)
    after = _refreshed(smoke_cfg, _changed_from(smoke_data, AT), plant, load_suite)
    w0, w1 = _weights(base), _weights(after)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)     # the same weights, bit for bit
    np.testing.assert_array_equal(base.suites[1].models["load_req_per_s"].calibration,
                                  after.suites[1].models["load_req_per_s"].calibration)
    np.testing.assert_array_equal(base.parts[1].burst_factor, after.parts[1].burst_factor)
    np.testing.assert_array_equal(base.parts[1].peak_factor, after.parts[1].peak_factor)
    # it did learn from the new data: the weights moved, and data just before AT changes them
    parent = load_suite.models["load_req_per_s"].net.state_dict()
    assert any(not torch.equal(parent[k], w0[k]) for k in parent)
    before = _refreshed(smoke_cfg, _changed_from(smoke_data, AT - pd.Timedelta(hours=VALID_H + 3)), plant,
                        load_suite)
    assert any(not torch.equal(w0[k], _weights(before)[k]) for k in w0)


def test_bad_refresh_every_is_a_clear_error(store, smoke_data, capsys):
    for value in ("0", "1.5", "x"):
        with pytest.raises(SystemExit) as exc:
            main(["simulate", "configs/smoke.yaml", "--refresh-every", value])
        assert exc.value.code == 2
        assert "--refresh-every" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--refresh-every 25: out of range; valid: .* 1 to .* \(24 h\)"):
        check_refresh(25, 24, "learned", smoke_data, T0)
    with pytest.raises(ValueError, match="re-fits a learned forecaster.*seasonal-naive"):
        check_refresh(12, 24, "seasonal-naive", smoke_data, T0)
    for start in ("2018-11-19T00:00Z", "2018-07-16T00:00Z", "2018-12-17T00:00Z"):   # resampled load
        with pytest.raises(ValueError, match="not on recorded load.*primary window only"):
            check_refresh(24, 168, "learned", smoke_data, pd.Timestamp(start))
    check_refresh(24, 72, "learned", smoke_data, T0)      # the primary window is fine
    rc = main(["compare", "configs/smoke.yaml", "--forecaster", "seasonal-naive", "--refresh-every", "12"])
    assert rc == 2 and "learned forecaster" in capsys.readouterr().err
    rc = main(["compare", "configs/smoke.yaml", "--windows", "--refresh-every", "12"])
    assert rc == 2 and "secondary windows" in capsys.readouterr().err


def test_a_refresh_registers_a_version_naming_its_parent(store, smoke_cfg, smoke_data, load_suite, tmp_path):
    name = registry.model_name("smoke", "m-large")
    with tracking.start_run("greenllm-forecast", "parent"):
        parent = registry.log_forecaster(load_suite.save(tmp_path / "parent"), name, {})
    registry.set_champion(name, parent.version)
    s = prepare(smoke_cfg, "primary", 2 * EVERY_H, data=smoke_data)
    lineage = {"forecaster_model_name": name, "forecaster_model_version": parent.version}
    with tracking.start_run(EXPERIMENT, "refresh"):
        r = tracked_refresher(s, load_suite, EVERY_H, lineage)
        r.parts_at(EVERY_H)
    client = mlflow.MlflowClient()
    mv = client.get_model_version(name, str(int(parent.version) + 1))
    assert mv.tags["refresh.parent_version"] == parent.version
    assert pd.Timestamp(mv.tags["refresh.at"]) == AT
    assert pd.Timestamp(mv.tags["refresh.data_end"]) == AT - pd.Timedelta(hours=1)
    assert f"version {parent.version}" in mv.description and "champion" in mv.description
    assert registry.champion(name).version == parent.version       # a refresh never moves the alias
    table = r.refresh_table()
    assert table.loc[0, "parent"] == f"v{parent.version}" and table.loc[0, "version"] == f"v{mv.version}"


@pytest.mark.slow   # a closed loop with two refreshes, each registered: ≈ 30–40 s on 2 cores
def test_simulate_with_refresh_end_to_end(store, load_suite, tmp_path, capsys):
    folder = load_suite.save(tmp_path / "bundle")
    rc = main(["simulate", "configs/smoke.yaml", "--forecaster", str(folder), "--steps", "24",
               "--refresh-every", "8", "--out", str(tmp_path / "out")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "refresh 1 at 2018-12-14 08:00 UTC" in out and "refresh 2 done" in out and "cost" in out
    mlflow.set_tracking_uri(store)
    run = mlflow.search_runs(experiment_names=[EXPERIMENT]).iloc[0]
    assert run["params.refresh_every_h"] == "8" and run["metrics.refreshes"] == 2
    versions = pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=run["run_id"], artifact_path="tables/forecaster_versions.parquet"))
    assert list(versions["refresh"]) == [0] * 8 + [1] * 8 + [2] * 8
    assert versions["forecaster_version"].iloc[0] == str(folder)
    name = registry.model_name("smoke", "m-large")
    tags = [mlflow.MlflowClient().get_model_version(name, v).tags for v in ("1", "2")]
    assert "refresh.parent_version" in tags[0] and tags[1]["refresh.parent_version"] == "1"
    assert registry.champion(name) is None                          # no alias set by refreshes
