"""Test-period evaluation: rolling-origin forecasts scored against the truth, per signal and step.

Forecasts are issued every ``stride`` steps over the test period; a (origin, series) pair counts
when its whole horizon is test data. Scores, in the signal's unit, per horizon step and overall:
MAE and RMSE of the median, mean pinball loss over the quantiles, and the coverage of the
p10–p90 (80 %) interval. Skill (DESIGN.md §4) = learned MAE ÷ min(seasonal-naive-24 MAE,
seasonal-naive-168 MAE), both averaged over the horizon; < 1 beats the seasonal baselines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.interface import Forecaster
from forecast.splits import TEST, SignalSplit

__all__ = ["Scores", "evaluate", "model_inputs", "skill", "evaluation_origins"]


@dataclass(frozen=True)
class Scores:
    """Scores of one forecaster on one signal (arrays per horizon step, scalars overall)."""

    mae_h: np.ndarray
    rmse_h: np.ndarray
    pinball_h: np.ndarray
    coverage_80_h: np.ndarray
    n_windows: int

    @property
    def mae(self) -> float:
        return float(self.mae_h.mean())

    @property
    def rmse(self) -> float:
        return float(np.sqrt((self.rmse_h ** 2).mean()))

    @property
    def pinball(self) -> float:
        return float(self.pinball_h.mean())

    @property
    def coverage_80(self) -> float:
        return float(self.coverage_80_h.mean())

    def summary(self) -> dict[str, float]:
        return {"mae": self.mae, "rmse": self.rmse, "pinball": self.pinball,
                "coverage_80": self.coverage_80, "n_windows": float(self.n_windows)}


def evaluation_origins(split: SignalSplit, horizon: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Origins (positions in ``split.full``) and the ``(N, n_outputs)`` mask of complete test horizons."""
    is_test = (split.output_labels() == TEST).astype(np.int64)
    cs = np.concatenate([np.zeros((1, is_test.shape[1]), np.int64), np.cumsum(is_test, axis=0)])
    origins = np.arange(1, len(is_test) - horizon + 1)
    ok = (cs[origins + horizon] - cs[origins]) == horizon
    origins, ok = origins[ok.any(axis=1)], ok[ok.any(axis=1)]
    origins, ok = origins[::stride], ok[::stride]
    return origins, ok


def model_inputs(model: Forecaster, split: SignalSplit,
                 origins: np.ndarray) -> tuple[np.ndarray, pd.DatetimeIndex, np.ndarray]:
    """What ``model.predict_windows`` reads for forecasts issued at rows ``origins`` of
    ``split.full``: the values of its series at its input step (``split.fine`` for the 10-min
    load inputs), their times, and the origins as positions in them."""
    frame = split.frame_at(model.input_step)
    ratio = len(frame) // len(split.full)
    return frame[list(model.series)].to_numpy(dtype=np.float64), frame.index, np.asarray(origins) * ratio


def evaluate(model: Forecaster, split: SignalSplit, horizon: int, stride: int = 1,
             origins: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[Scores, np.ndarray]:
    """Score ``model`` on the test period; also returns the forecasts ``(N, H, n, Q)``."""
    org, mask = origins if origins is not None else evaluation_origins(split, horizon, stride)
    inputs, times, org_in = model_inputs(model, split, org)
    org_ok = org_in >= model.lookback_steps
    org, mask, org_in = org[org_ok], mask[org_ok], org_in[org_ok]
    if len(org) == 0:
        raise ValueError(f"{split.signal}: no test origins with {model.lookback_steps} steps of history")
    values = split.full[list(model.series)].to_numpy(dtype=np.float64)
    pred = model.predict_windows(inputs, times, org_in, horizon)
    pad = np.concatenate([values, np.full((horizon, values.shape[1]), np.nan)])
    truth = pad[org[:, None] + np.arange(horizon)[None, :]]  # (N, H, n)
    qs = np.asarray(model.quantiles)
    mid = int(np.argmin(np.abs(qs - 0.5)))
    m = np.repeat(mask[:, None, :], horizon, axis=1)
    err = truth - pred[..., mid]
    e_q = truth[..., None] - pred
    pin = np.maximum(qs * e_q, (qs - 1.0) * e_q).mean(axis=-1)
    lo, hi = int(np.argmin(np.abs(qs - 0.1))), int(np.argmin(np.abs(qs - 0.9)))
    cover = (truth >= pred[..., lo]) & (truth <= pred[..., hi])
    cnt = m.sum(axis=(0, 2))

    def avg(a: np.ndarray) -> np.ndarray:
        return np.where(m, a, 0.0).sum(axis=(0, 2)) / cnt

    scores = Scores(avg(np.abs(err)), np.sqrt(avg(err ** 2)), avg(pin), avg(cover.astype(float)),
                    int(mask.sum()))
    return scores, pred


def skill(learned: Scores, naive_24: Scores, naive_168: Scores) -> float:
    """Learned MAE ÷ the better seasonal-naive MAE (averaged over the horizon); < 1 is better."""
    return learned.mae / min(naive_24.mae, naive_168.mae)
