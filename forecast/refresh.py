"""Warm-start refit of a learned forecaster on newer data (the closed loop's refresh).

``warm_refit(model, history, validation, epochs)`` returns a *copy* of a fitted
``LearnedForecaster`` whose nets were trained a few more epochs from their current weights
(``forecast.training.fine_tune``) on ``history`` with ``validation`` for the choice of weights and
the interval calibration; the parent is left unchanged (it stays the registered version the
refresh descends from). What stays fixed, and why: the series and their per-series scaling (the
weights were learnt in those units; a new scaling would make the warm start a cold one), the
architecture and the settings. The calibration of the quantile spread is refitted on the new
validation windows (``forecast.calibration``), as a full fit does.

The caller decides which rows the refit may read: every value of ``history`` and ``validation``
is used, nothing else (``pipelines.refresh`` cuts them strictly before the refresh time).
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from forecast.models import LearnedForecaster, MemberMean
from forecast.nets import ForecastNet
from forecast.training import fine_tune
from forecast.windows import SubStepWindows

__all__ = ["warm_refit"]


def _members(model: LearnedForecaster) -> list[ForecastNet]:
    net = model.net
    if net is None:
        raise ValueError(f"{model.signal}: warm refit of an unfitted model")
    return list(net.members) if isinstance(net, MemberMean) else [net]   # type: ignore[arg-type]


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's per-fit banner (accelerators, tips) and known-harmless warnings off: a refresh
    runs inside the closed loop's progress bar and prints its own line."""
    log = logging.getLogger("lightning.pytorch")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for text in (".*LeafSpec.*", ".*does not have many workers.*", ".*smaller than the logging interval.*",
                         ".*litlogger.*"):
                warnings.filterwarnings("ignore", message=text)
            yield
    finally:
        log.setLevel(level)


def _windows(model: LearnedForecaster, history: pd.DataFrame,
             validation: pd.DataFrame) -> tuple[SubStepWindows, SubStepWindows]:
    """Training and validation windows as ``LearnedForecaster.fit`` builds them, in the model's
    scaling (frames at the model's ``input_step``: 10 min for a 10-min load model)."""
    cols = list(model.all_series)
    history, validation, target_ok = model._validation_split(history[cols], validation[cols])
    train_b = model._batches(history, np.ones((len(cols), len(history)), bool), model._train_stride(),
                             model.settings.seed)
    return train_b, model._batches(validation, target_ok, model.ratio, None)


def warm_refit(model: LearnedForecaster, history: pd.DataFrame, validation: pd.DataFrame, *, epochs: int,
               progress: bool = False) -> LearnedForecaster:
    """A copy of ``model`` warm-started on ``history`` (training rows; NaN elsewhere) for at most
    ``epochs`` epochs, early-stopped and calibrated on the targets of ``validation`` that
    ``history`` lacks (as ``LearnedForecaster.fit`` reads them).

    Args:
        model: a fitted learned forecaster (the parent; not modified).
        history: wide training frame; columns are reordered to the model's series.
        validation: wide frame with the training values plus the validation targets.
        epochs: the most epochs each member net trains.
        progress: show Lightning's progress bar.

    Returns:
        The refitted copy; its ``fit_report`` holds ``refresh_start_val_loss``,
        ``refresh_best_val_loss``, ``refresh_epochs`` and ``refresh_kept_start`` (member 0), the
        training and validation window counts.

    Raises:
        ValueError: a series of the model is missing from the frames, or no complete window.
    """
    missing = [s for s in model.all_series if s not in history.columns or s not in validation.columns]
    if missing:
        raise ValueError(f"{model.signal}: warm refit needs every training series; missing {missing[:5]}")
    new = copy.deepcopy(model)
    s = new.settings
    train_b, valid_b = _windows(new, history, validation)
    report: dict[str, float] = {}
    for k, net in enumerate(_members(new)):
        with _quiet_lightning():
            got = fine_tune(net, train_b, valid_b, quantiles=new.quantiles, learning_rate=s.learning_rate,
                            epochs=epochs, batches_per_epoch=s.batches_per_epoch, seed=s.seed + k,
                            progress=progress, num_threads=s.num_threads)
        report = report or {f"refresh_{key}": value for key, value in got.items()}
    new.fit_report = {**report, "train_windows": float(len(train_b.origins)),
                      "valid_windows": float(len(valid_b.origins))}
    new.calibration = None
    if s.calibrate_intervals:
        new._calibrate(valid_b)
    return new
