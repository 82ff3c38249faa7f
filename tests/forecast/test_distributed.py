"""Each DDP process's share of the global batches (forecast.distributed), and how a process knows
it is a worker; no processes are started here (tests/pipelines/test_train_ddp.py starts them)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from forecast.distributed import BatchShare, launched_as_worker, share_bounds
from forecast.training import WindowBatches, lightning_strategy, pinball_loss
from tests.tolerances import FLOAT32_ATOL, FLOAT32_SUMS, FLOAT32_VALUE


def _batches(n_windows: int, batch_size: int) -> WindowBatches:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(4, 200)).astype(np.float32)
    calendar = rng.normal(size=(1, 200, 3)).astype(np.float32)
    sid = rng.integers(0, 4, n_windows)
    origins = rng.integers(24, 190, n_windows)
    return WindowBatches(values, calendar, np.zeros(4, int), sid, origins, 24, 6, batch_size, seed=5)


@pytest.mark.parametrize(("n", "world"), [(10, 2), (11, 2), (7, 3), (1, 2), (0, 4)])
def test_share_bounds_cover_the_batch_once(n, world):
    parts = [share_bounds(n, r, world) for r in range(world)]
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
    sizes = [b - a for a, b in parts]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("world", [2, 3])
def test_shares_are_the_global_batch_in_order_with_weights(world):
    glob = _batches(n_windows=53, batch_size=12)   # 5 batches, the last one of 5 windows
    shares = [BatchShare(glob, r, world) for r in range(world)]
    assert all(len(s) == len(glob) == 5 for s in shares)
    for b in range(len(glob)):
        whole = glob[b]
        parts = [s[b] for s in shares]
        for k in range(4):
            torch.testing.assert_close(torch.cat([p[k] for p in parts]), whole[k], rtol=0, atol=0)
        n = len(whole[0])
        for p in parts:   # part mean × world·n_part/n, averaged over processes = the batch mean
            assert float(p[4]) == pytest.approx(world * len(p[0]) / n, rel=FLOAT32_VALUE)
        assert sum(float(p[4]) for p in parts) / world == pytest.approx(1.0, rel=FLOAT32_VALUE)


def test_weighted_share_gradients_average_to_the_global_gradient():
    glob = _batches(n_windows=23, batch_size=23)   # one batch of 23 windows over 2 processes: 12 + 11
    torch.manual_seed(0)
    lin = torch.nn.Linear(24, 6 * 3)
    q = torch.tensor([0.1, 0.5, 0.9])

    def grad(x: torch.Tensor, y: torch.Tensor, weight: float) -> torch.Tensor:
        lin.zero_grad()
        (pinball_loss(lin(x).view(-1, 6, 3), y, q) * weight).backward()
        return lin.weight.grad.clone()

    x, _, _, y = glob[0]
    full = grad(x, y, 1.0)
    parts = [BatchShare(glob, r, 2)[0] for r in range(2)]
    mean_of_parts = sum(grad(p[0], p[3], float(p[4])) for p in parts) / 2   # what DDP's all-reduce does
    torch.testing.assert_close(mean_of_parts, full, rtol=FLOAT32_SUMS, atol=FLOAT32_ATOL)
    unweighted = sum(grad(p[0], p[3], 1.0) for p in parts) / 2
    assert not torch.allclose(unweighted, full, rtol=FLOAT32_SUMS, atol=FLOAT32_ATOL)   # the weights matter here


def test_one_process_serves_the_whole_batches_with_weight_one():
    glob = _batches(n_windows=30, batch_size=8)
    share = BatchShare(glob, 0, 1)
    for b in range(len(glob)):
        *items, w = share[b]
        assert float(w) == 1.0
        assert all(torch.equal(a, c) for a, c in zip(items, glob[b], strict=True))
    with pytest.raises(ValueError, match="rank 2 is not in 0 … 1"):
        BatchShare(glob, 2, 2)


@pytest.mark.parametrize(("env", "worker"), [
    ({}, False), ({"RANK": "0", "LOCAL_RANK": "0"}, False), ({"RANK": "1", "LOCAL_RANK": "1"}, True),
    ({"LOCAL_RANK": "1"}, True), ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, True),
    ({"NODE_RANK": "0", "LOCAL_RANK": "0"}, False), ({"GROUP_RANK": "2"}, True)])
def test_launched_as_worker_reads_the_launchers_variables(monkeypatch, env, worker):
    for key in ("RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert launched_as_worker() is worker


def test_lightning_strategy_names():
    assert lightning_strategy("auto", 1) == "auto"   # today's single process
    assert lightning_strategy("auto", 2) == "ddp_find_unused_parameters_true"
    assert lightning_strategy("ddp", 4) == "ddp_find_unused_parameters_true"
    assert lightning_strategy("ddp_spawn", 2) == "ddp_spawn_find_unused_parameters_true"


def test_one_process_training_reports_epochs_run_and_the_best_epochs_loss():
    from lightning.pytorch.loggers import CSVLogger

    from forecast.nets import ForecastNet, NetSpec
    from forecast.training import train_net

    train, valid = _batches(n_windows=96, batch_size=16), _batches(n_windows=40, batch_size=16)
    net = ForecastNet(NetSpec("mlp", 24, 6, 4, 3, 3, 24, 8, 2, 0.0))
    with tempfile.TemporaryDirectory() as tmp:
        logger = CSVLogger(tmp, name="t")
        report = train_net(net, train, valid, quantiles=(0.1, 0.5, 0.9), learning_rate=1.0, max_epochs=4,
                           patience=100, batches_per_epoch=3, seed=0, logger=logger, progress=False)
        logged = pd.read_csv(Path(logger.log_dir) / "metrics.csv")["val_loss"].dropna().to_numpy()
    assert report["epochs"] == 4.0 == len(logged)   # epochs run, even when an earlier one was best
    assert report["best_val_loss"] == pytest.approx(logged.min(), rel=FLOAT32_VALUE)
