"""Training of one learned forecaster with Lightning: windows as batches, pinball loss, early stopping.

``WindowBatches`` serves whole batches gathered from a ``(n_series, T)`` scaled array (no per-item
Python work). ``QuantileModule`` trains a ``ForecastNet`` on the mean pinball loss over the
quantiles, logging ``<prefix>train_loss`` and ``<prefix>val_loss`` per epoch (scaled units).
``train_net`` runs the Lightning ``Trainer`` with its progress bar, early stopping on the
validation loss and checkpoints in a temporary directory (deleted afterwards; the best weights
are restored into the net). The logger (e.g. MLflow's) is passed in by the caller.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from forecast.features import gather_windows
from forecast.nets import ForecastNet

__all__ = ["QuantileModule", "WindowBatches", "pinball_loss", "train_net"]


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
        sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
        sid, org = self.series_idx[sl], self.origins[sl]
        x, y = gather_windows(self.values, sid, org, self.lookback, self.horizon)
        cal = self.calendar[self.tz[sid], org]
        return (torch.from_numpy(x.astype(np.float32)), torch.from_numpy(sid.astype(np.int64)),
                torch.from_numpy(cal.astype(np.float32)), torch.from_numpy(y.astype(np.float32)))


class QuantileModule(L.LightningModule):
    """Pinball-loss training of a ``ForecastNet``."""

    q: torch.Tensor   # the quantile levels (a registered buffer)

    def __init__(self, net: ForecastNet, quantiles: tuple[float, ...], learning_rate: float,
                 prefix: str = "") -> None:
        super().__init__()
        self.net = net
        self.register_buffer("q", torch.tensor(quantiles, dtype=torch.float32))
        self.learning_rate = learning_rate
        self.prefix = prefix

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, sid, cal, y = batch
        return pinball_loss(self.net(x, sid, cal), y, self.q)

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log(f"{self.prefix}train_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], _: int) -> None:
        self.log(f"{self.prefix}val_loss", self._loss(batch), on_step=False, on_epoch=True,
                 prog_bar=True, batch_size=len(batch[0]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


def train_net(net: ForecastNet, train: WindowBatches, valid: WindowBatches, *,
              quantiles: tuple[float, ...], learning_rate: float, max_epochs: int, patience: int,
              batches_per_epoch: int, seed: int, prefix: str = "", logger: Any = None,
              progress: bool = True) -> dict[str, float]:
    """Train ``net`` in place (best validation weights kept); returns best val loss and epochs run."""
    L.seed_everything(seed, workers=True, verbose=False)
    module = QuantileModule(net, quantiles, learning_rate, prefix)
    monitor = f"{prefix}val_loss"
    gen = torch.Generator().manual_seed(seed)
    train_dl = DataLoader(train, batch_size=None, shuffle=True, generator=gen)
    valid_dl = DataLoader(valid, batch_size=None, shuffle=False)
    with tempfile.TemporaryDirectory(prefix="greenllm-ckpt-") as ckpt_dir, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        ckpt = ModelCheckpoint(dirpath=ckpt_dir, monitor=monitor, mode="min", save_top_k=1,
                               filename=f"{prefix.strip('.') or 'net'}-{{epoch}}")
        trainer = L.Trainer(
            max_epochs=max_epochs, limit_train_batches=min(batches_per_epoch, len(train)),
            accelerator="cpu", devices=1, logger=logger if logger is not None else False,
            callbacks=[EarlyStopping(monitor=monitor, patience=patience, mode="min"), ckpt],
            enable_progress_bar=progress, enable_model_summary=False, deterministic=True,
            num_sanity_val_steps=0, default_root_dir=ckpt_dir, log_every_n_steps=1)
        trainer.fit(module, train_dl, valid_dl)
        if ckpt.best_model_path:
            state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state)
        best = float(ckpt.best_model_score) if ckpt.best_model_score is not None else float("nan")
    net.eval()
    return {"best_val_loss": best, "epochs": float(trainer.current_epoch)}
