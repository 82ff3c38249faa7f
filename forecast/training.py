"""Training of one learned forecaster with Lightning: windows as batches, pinball loss, early stopping.

``WindowBatches`` serves whole batches gathered from a ``(n_series, T)`` scaled array (no per-item
Python work). ``QuantileModule`` trains a ``ForecastNet`` on the mean pinball loss over the
quantiles, logging ``<prefix>train_loss`` and ``<prefix>val_loss`` per epoch (scaled units).
``train_net`` runs the Lightning ``Trainer`` with its progress bar, early stopping on the
validation loss and checkpoints in a temporary directory (deleted afterwards; the best weights
are restored into the net). ``fine_tune`` is its warm start: a few more epochs from the net's
current weights (the closed loop's refresh, ``pipelines.refresh``), keeping the starting weights
when no epoch beats them on the validation windows. The logger (e.g. MLflow's) is passed in by the caller. With a DDP
strategy every process trains on its share of each global batch (``forecast.distributed``).
"""

from __future__ import annotations

import atexit
import copy
import math
import tempfile
import warnings
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from forecast.distributed import BatchShare
from forecast.features import gather_windows
from forecast.nets import ForecastNet

__all__ = ["QuantileModule", "WindowBatches", "WindowData", "fine_tune", "lightning_strategy", "pinball_loss",
           "train_net", "validation_loss"]


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Mean pinball (quantile) loss; ``pred (..., Q)``, ``target (...)``, same units as the data."""
    err = target[..., None] - pred
    return torch.maximum(quantiles * err, (quantiles - 1.0) * err).mean()


class WindowBatches(Dataset):
    """Batches of (look-back, series id, calendar at t0, target) windows, in a seeded order.

    Args:
        values: ``(n_series, T)`` scaled values.
        calendar: ``(n_tz, T, F)`` calendar features at each position.
        tz_of_series: ``(n_series,)`` index into ``calendar`` per series.
        series_idx, origins: the windows (origin = position of the first target step).
        lookback, horizon: window lengths, steps.
        batch_size: windows per batch.
        seed: order of the windows (None keeps them in order).
    """

    def __init__(self, values: np.ndarray, calendar: np.ndarray, tz_of_series: np.ndarray,
                 series_idx: np.ndarray, origins: np.ndarray, lookback: int, horizon: int,
                 batch_size: int, seed: int | None) -> None:
        order = np.arange(len(origins))
        if seed is not None:
            order = np.random.default_rng(seed).permutation(len(origins))
        self.values, self.calendar, self.tz = values, calendar, tz_of_series
        self.series_idx, self.origins = series_idx[order], origins[order]
        self.lookback, self.horizon, self.batch_size = lookback, horizon, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.origins) / self.batch_size)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, ...]:
        return self.windows(b * self.batch_size, (b + 1) * self.batch_size)

    def windows(self, start: int, stop: int) -> tuple[torch.Tensor, ...]:
        """Windows ``start … stop − 1`` of the seeded order as ``(x, series id, calendar, target)``."""
        sid, org = self.series_idx[start:stop], self.origins[start:stop]
        x, y = gather_windows(self.values, sid, org, self.lookback, self.horizon)
        cal = self.calendar[self.tz[sid], org]
        return (torch.from_numpy(x.astype(np.float32)), torch.from_numpy(sid.astype(np.int64)),
                torch.from_numpy(cal.astype(np.float32)), torch.from_numpy(y.astype(np.float32)))


class QuantileModule(L.LightningModule):
    """Pinball-loss training of a ``ForecastNet`` on batches of ``BatchShare`` (with a loss weight).

    Losses are logged with ``sync_dist``: with several processes the logged epoch value is the
    window-weighted mean over all of them, the same number one process would log.
    """

    q: torch.Tensor            # the quantile levels (a registered buffer)
    epochs_run: torch.Tensor   # training epochs completed (a buffer: back from spawned processes)

    def __init__(self, net: ForecastNet, quantiles: tuple[float, ...], learning_rate: float,
                 prefix: str = "") -> None:
        super().__init__()
        self.net = net
        self.register_buffer("q", torch.tensor(quantiles, dtype=torch.float32))
        self.register_buffer("epochs_run", torch.zeros((), dtype=torch.int64))
        self.learning_rate = learning_rate
        self.prefix = prefix

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, sid, cal, y = batch[:4]
        return pinball_loss(self.net(x, sid, cal), y, self.q)

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        n = len(batch[0])
        if n:
            loss = self._loss(batch)
        else:  # this process's part of a short last batch is empty: no gradient, every weight in the graph
            loss = torch.stack([p.sum() for p in self.parameters()]).sum() * 0.0
        self.log(f"{self.prefix}train_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=n, sync_dist=True)
        return loss * batch[4]

    def validation_step(self, batch: tuple[torch.Tensor, ...], _: int) -> None:
        n = len(batch[0])
        loss = self._loss(batch) if n else torch.zeros(())
        self.log(f"{self.prefix}val_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=n, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        self.epochs_run.fill_(self.current_epoch + 1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


class WindowData(L.LightningDataModule):
    """Training batches (seeded order, the same in every process) and validation batches, each
    served as this process's share (``BatchShare``); built inside each process Lightning starts.

    Args:
        train, valid: the global batches.
        seed: seed of the training batch order.
        num_threads: torch CPU threads of each process (None: leave as is).
    """

    def __init__(self, train: WindowBatches, valid: WindowBatches, seed: int,
                 num_threads: int | None = None) -> None:
        super().__init__()
        self.train, self.valid, self.seed, self.num_threads = train, valid, seed, num_threads

    def setup(self, stage: str) -> None:
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)

    def _share(self, batches: WindowBatches) -> BatchShare:
        trainer = self.trainer
        if trainer is None:
            raise RuntimeError("WindowData: serves batches only inside Trainer.fit")
        return BatchShare(batches, trainer.global_rank, trainer.world_size)

    def train_dataloader(self) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(self._share(self.train), batch_size=None, shuffle=True, generator=gen)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._share(self.valid), batch_size=None, shuffle=False)


def lightning_strategy(strategy: str, processes: int) -> str:
    """Lightning's name for ``forecast.strategy`` (``auto`` with several processes is ``ddp``).

    DDP must look for parameters outside the loss: the MLP core's last backcast layer is one
    (N-HiTS's last residual is never used), and its gradient stays None as with one process.
    """
    if strategy == "auto":
        return "auto" if processes == 1 else "ddp_find_unused_parameters_true"
    return f"{strategy}_find_unused_parameters_true"


def _destroy_process_group() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class _ProcessGroupExit(Callback):
    """Destroys the process group when a DDP process exits. Lightning registers that only for
    NCCL; a gloo group left to the interpreter's exit can abort a spawned process ("terminate
    called without an active exception", seen once in CI)."""

    registered = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if (not _ProcessGroupExit.registered and torch.distributed.is_available()
                and torch.distributed.is_initialized()):
            atexit.register(_destroy_process_group)
            _ProcessGroupExit.registered = True


def _restore_best(trainer: L.Trainer, module: QuantileModule, ckpt: ModelCheckpoint) -> float:
    """Load the best checkpoint into ``module``; its validation loss (NaN without one).

    Global rank 0 reads the file (only it writes checkpoints; after ``ddp_spawn`` the calling
    process is rank 0 and holds the path) and broadcasts the weights to the other processes.
    """
    found = None
    if trainer.is_global_zero and ckpt.best_model_path:
        saved = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)
        score = saved["callbacks"][ckpt.state_key]["best_model_score"]
        found = (saved["state_dict"], float(score) if score is not None else float("nan"))
    found = trainer.strategy.broadcast(found, src=0)
    if found is None:
        return float("nan")
    module.load_state_dict(found[0])
    return found[1]


def train_net(net: ForecastNet, train: WindowBatches, valid: WindowBatches, *,
              quantiles: tuple[float, ...], learning_rate: float, max_epochs: int, patience: int,
              batches_per_epoch: int, seed: int, prefix: str = "", logger: Any = None,
              progress: bool = True, strategy: str = "auto", devices: int = 1, num_nodes: int = 1,
              num_threads: int | None = None) -> dict[str, float]:
    """Train ``net`` in place (best validation weights kept); returns best val loss and epochs run.

    ``strategy``, ``devices`` and ``num_nodes`` go to Lightning's ``Trainer`` (CPU; ``ForecastSettings``
    documents them); the batches are global, each of the ``devices × num_nodes`` processes trains
    on its share. ``num_threads``: torch threads of each process (spawned ones included).
    """
    L.seed_everything(seed, workers=True, verbose=False)
    module = QuantileModule(net, quantiles, learning_rate, prefix)
    monitor = f"{prefix}val_loss"
    with tempfile.TemporaryDirectory(prefix="greenllm-ckpt-") as ckpt_dir, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        ckpt = ModelCheckpoint(dirpath=ckpt_dir, monitor=monitor, mode="min", save_top_k=1,
                               filename=f"{prefix.strip('.') or 'net'}-{{epoch}}")
        trainer = L.Trainer(
            max_epochs=max_epochs, limit_train_batches=min(batches_per_epoch, len(train)),
            accelerator="cpu", strategy=lightning_strategy(strategy, devices * num_nodes),
            devices=devices, num_nodes=num_nodes,
            use_distributed_sampler=False, logger=logger if logger is not None else False,
            callbacks=[EarlyStopping(monitor=monitor, patience=patience, mode="min"), ckpt, _ProcessGroupExit()],
            enable_progress_bar=progress, enable_model_summary=False, deterministic=True,
            num_sanity_val_steps=0, default_root_dir=ckpt_dir, log_every_n_steps=1)
        trainer.fit(module, datamodule=WindowData(train, valid, seed, num_threads))
        epochs = float(module.epochs_run)   # before the best checkpoint (an earlier epoch's) is loaded
        best = _restore_best(trainer, module, ckpt)
    net.eval()
    return {"best_val_loss": best, "epochs": epochs}


def validation_loss(net: ForecastNet, valid: WindowBatches, quantiles: tuple[float, ...]) -> float:
    """The mean pinball loss of ``net`` (eval mode) over every window of ``valid`` (scaled units):
    the number Lightning logs as the validation loss of an epoch; NaN without windows."""
    q = torch.tensor(quantiles, dtype=torch.float32)
    total, count = 0.0, 0
    net.eval()
    with torch.no_grad():
        for b in range(len(valid)):
            x, sid, cal, y = valid[b]
            if len(x):
                total += float(pinball_loss(net(x, sid, cal), y, q)) * len(x)
                count += len(x)
    return total / count if count else float("nan")


def fine_tune(net: ForecastNet, train: WindowBatches, valid: WindowBatches, *, quantiles: tuple[float, ...],
              learning_rate: float, epochs: int, batches_per_epoch: int, seed: int, progress: bool = False,
              num_threads: int | None = None) -> dict[str, float]:
    """Warm start: train ``net`` in place from its current weights for at most ``epochs`` epochs
    (Lightning, as ``train_net``; no early stop before the last epoch), keeping the best of the
    starting weights and each epoch's on ``valid``; so a refresh never scores worse on its own
    validation windows than the net it started from.

    Returns:
        ``start_val_loss``, ``best_val_loss`` (of the weights kept), ``epochs`` run and
        ``kept_start`` (1.0 when no epoch beat the starting weights).
    """
    start = validation_loss(net, valid, quantiles)
    weights = copy.deepcopy(net.state_dict())
    net.train()   # Lightning keeps the mode it is given: a loaded net is in eval mode (no dropout)
    report = train_net(net, train, valid, quantiles=quantiles, learning_rate=learning_rate, max_epochs=epochs,
                       patience=epochs, batches_per_epoch=batches_per_epoch, seed=seed, progress=progress,
                       num_threads=num_threads)
    kept = not report["best_val_loss"] < start
    if kept:
        net.load_state_dict(weights)
    net.eval()
    return {"start_val_loss": start, "best_val_loss": start if kept else report["best_val_loss"],
            "epochs": report["epochs"], "kept_start": float(kept)}
