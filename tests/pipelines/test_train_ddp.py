"""`greenllm train` with 2 DDP processes on CPU (gloo) on the smoke scenario, in a temporary MLflow
store: ``ddp_spawn`` from this process, ``ddp`` under ``torchrun``; one run, one registered model,
the same bundle as one process trains. Also the config errors of ``forecast.strategy / devices``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from forecast.scenario import ConfigError
from pipelines.cli import main
from pipelines.config import load_config
from tests.conftest import CONFIGS
from tests.tolerances import DDP_TRAINING, DDP_WEIGHTS_ATOL

ROOT = Path(__file__).resolve().parents[2]
# one MLP model (it has a parameter outside the loss), no dropout: 1 and 2 processes then differ
# only by the order of floating-point sums
SET = ["--set", "forecast.signals=[load_req_per_s]", "--set", "forecast.num_threads=1",
       "--set", "forecast.dropout=0.0"]
DDP = ["--set", "forecast.devices=2"]
NAME = "greenllm-forecaster-smoke-m-large"   # the smoke scenario's registered model (load tier m-large)


def _runs_and_versions(uri: str) -> tuple[list, list]:
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("greenllm-forecast")
    return client.search_runs([exp.experiment_id]), client.search_model_versions(f"name='{NAME}'")


def _one_process_fit(overrides: list[str]):
    from control.from_data import fleet_dataset
    from forecast.models import LearnedForecaster
    from forecast.splits import split_signal

    cfg = load_config(CONFIGS / "smoke.yaml", [s for s in overrides if s != "--set"])
    split = split_signal(fleet_dataset(cfg, progress=False), cfg.scenario, "load_req_per_s", cfg.forecast)
    model = LearnedForecaster("load_req_per_s", cfg.forecast, split.tz)
    return model.fit(split.upto_at(0, model.input_step), split.upto_at(1, model.input_step), outputs=split.outputs,
                     progress=False)


def _check_store(uri: str, strategy: str) -> dict:
    """One run (rank 0's) with per-epoch losses logged once, one model version; its bundle's spec."""
    import mlflow

    from pipelines._tracking_registry import resolve_model

    runs, versions = _runs_and_versions(uri)
    assert len(runs) == 1 and [str(v.version) for v in versions] == ["1"]
    run = runs[0]
    assert run.data.params["forecast.strategy"] == strategy and run.data.params["forecast.devices"] == "2"
    epochs = mlflow.MlflowClient(uri).get_metric_history(run.info.run_id, "load_req_per_s.val_loss")
    spec = json.loads((resolve_model(f"models:/{NAME}/1") / "spec.json").read_text())
    assert len(epochs) == spec["models"][0]["fit_report"]["epochs"]   # once per epoch, not per process
    return spec


@pytest.mark.slow  # ≈ 40 s on 2 cores: the spawned processes import torch and Lightning
def test_ddp_spawn_trains_the_same_model_as_one_process(store):
    from forecast.models import ForecasterSuite
    from pipelines._tracking_registry import resolve_model

    rc = main(["train", str(CONFIGS / "smoke.yaml"), "--no-progress", *SET, *DDP,
               "--set", "forecast.strategy=ddp_spawn"])
    assert rc == 0
    spec = _check_store(store, "ddp_spawn")
    one = _one_process_fit(SET)
    assert spec["models"][0]["settings"] == one.spec()["settings"]   # the layout is not in the bundle
    assert not {"strategy", "devices", "num_nodes"} & set(spec["models"][0]["settings"])
    loss_2, loss_1 = spec["models"][0]["fit_report"]["best_val_loss"], one.fit_report["best_val_loss"]
    assert abs(loss_2 - loss_1) <= DDP_TRAINING * loss_1
    state = torch.load(resolve_model(f"models:/{NAME}/1") / "state_dict.pt", weights_only=True)
    ref = one.net.state_dict()
    for key, value in ref.items():
        torch.testing.assert_close(state[f"load_req_per_s::{key}"], value, rtol=DDP_TRAINING, atol=DDP_WEIGHTS_ATOL)
    assert ForecasterSuite.load(resolve_model(f"models:/{NAME}@champion")).models


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow  # ≈ 50 s on 2 cores: two `greenllm train` processes under torchrun
def test_torchrun_ddp_tracks_on_rank_zero_only(store):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "pipelines.cli", "train", str(CONFIGS / "smoke.yaml"), "--no-progress", *SET, *DDP,
           "--set", "forecast.strategy=ddp"]
    env = os.environ | {"PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": store}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("DDP worker done") == 1 and done.stdout.count(f"registered {NAME}") == 1
    _check_store(store, "ddp")


@pytest.mark.parametrize(("override", "match"), [
    ("forecast.strategy=horovod", r"forecast.strategy: 'horovod' is not one of \['auto', 'ddp', 'ddp_spawn'\]"),
    ("forecast.devices=0", r"forecast.devices: 0 is out of range \[1, 1024\]"),
    ("forecast.num_nodes=0", r"forecast.num_nodes: 0 is out of range \[1, 1024\]"),
    ("forecast.devices=two", r"forecast.devices"),
])
def test_bad_strategy_or_process_counts_are_config_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(CONFIGS / "smoke.yaml", [override])


def test_global_batch_must_split_evenly_over_processes():
    with pytest.raises(ConfigError, match=r"forecast.batch_size: 256 .* 3 × 1 = 3 processes.*multiple of 3 "
                                          r"\(e.g. 255 or 258\)"):
        load_config(CONFIGS / "smoke.yaml", ["forecast.devices=3"])
    with pytest.raises(ConfigError, match=r"forecast.batch_size: 256 .* 3 × 2 = 6 processes"):
        load_config(CONFIGS / "smoke.yaml", ["forecast.devices=3", "forecast.num_nodes=2", "forecast.strategy=ddp"])
    fs = load_config(CONFIGS / "smoke.yaml", ["forecast.devices=2", "forecast.num_nodes=2",
                                              "forecast.strategy=ddp"]).forecast
    assert (fs.strategy, fs.processes, fs.batch_size) == ("ddp", 4, 256)
    default = load_config(CONFIGS / "default.yaml").forecast
    assert (default.strategy, default.devices, default.num_nodes) == ("auto", 1, 1)
