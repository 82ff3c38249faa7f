"""Windows of the learned forecasters when the inputs are finer than the forecast step.

The load forecaster reads the 10-min history (the latest windows say most about the next hour)
and forecasts hourly means. Both live on one 10-min grid: the inputs are the 10-min values, the
target of a window issued at 10-min position ``o`` for step ``h`` is the mean of the ``ratio``
values ``o + ratio·h … o + ratio·h + ratio − 1`` (``ratio`` = sub-steps per forecast step, 6 for
10 min → 1 h). An origin on the hour gives exactly the hourly means the product forecasts; origins
between the hours (``forecast.load_origin_stride_min`` < 60) add training windows with the same
meaning, one sub-step shifted. With ``ratio`` 1 everything reduces to ``gather_windows``.
A window's inputs are the ``lookback`` values before its origin only (causal by construction).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from forecast.training import WindowBatches

__all__ = ["SubStepWindows", "complete_windows", "rolling_mean", "substep_ratio", "window_arrays"]


def substep_ratio(step: pd.Timedelta, input_step: pd.Timedelta) -> int:
    """Input steps per forecast step (a ValueError unless ``input_step`` divides ``step``)."""
    ratio = step / input_step
    if ratio < 1 or ratio != int(ratio):
        raise ValueError(f"input step {input_step} must divide the forecast step {step}")
    return int(ratio)


def rolling_mean(values: np.ndarray, ratio: int) -> np.ndarray:
    """``(n, T)`` → ``(n, T)``: mean of ``values[:, t : t + ratio]`` (NaN where any is NaN or past the end)."""
    if ratio == 1:
        return values
    n, t_len = values.shape
    pad = np.concatenate([values, np.full((n, ratio - 1), np.nan, values.dtype)], axis=1)
    return np.stack([pad[:, k:k + t_len] for k in range(ratio)]).mean(axis=0)


def window_arrays(inputs: np.ndarray, targets: np.ndarray, series_idx: np.ndarray, origin: np.ndarray,
                  lookback: int, horizon: int, ratio: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(N, lookback)`` and targets ``(N, horizon)`` of windows ``(series_idx, origin)``.

    Window ``i`` reads ``inputs[s, o − lookback : o]`` and targets ``targets[s, o + ratio·h]``
    (``targets`` already rolled by ``rolling_mean``; NaN past the end).
    """
    t_len = inputs.shape[1]
    back = origin[:, None] + np.arange(-lookback, 0)[None, :]
    x = inputs[series_idx[:, None], back]
    ahead = origin[:, None] + ratio * np.arange(horizon)[None, :]
    pad = np.concatenate([targets, np.full((targets.shape[0], 1), np.nan, targets.dtype)], axis=1)
    y = pad[series_idx[:, None], np.minimum(ahead, t_len)]
    return x, y


def complete_windows(z: np.ndarray, targets: np.ndarray, lookback: int, horizon: int, ratio: int,
                     stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Series and origins of the windows with a finite look-back in ``z (n, T)`` and finite targets
    (``window_arrays``); origins every ``stride`` steps from the first whole forecast step."""
    cs_f = np.concatenate([np.zeros((z.shape[0], 1)), np.cumsum(np.isfinite(z), axis=1)], axis=1)
    origins = np.arange(-(-lookback // ratio) * ratio, z.shape[1] - ratio * horizon + 1, stride)
    ok_back = (cs_f[:, origins] - cs_f[:, origins - lookback]) == lookback
    ok_tgt = np.isfinite(targets[:, origins[:, None] + ratio * np.arange(horizon)[None, :]]).all(axis=2)
    sid, pos = np.nonzero(ok_back & ok_tgt)
    return sid, origins[pos]


class SubStepWindows(WindowBatches):
    """``WindowBatches`` whose targets are means over ``ratio`` input steps (``window_arrays``).

    Args:
        values: ``(n_series, T)`` scaled inputs at the input step.
        targets: ``(n_series, T)`` scaled targets, ``rolling_mean(values, ratio)`` with unwanted
            targets set to NaN by the caller.
        ratio: input steps per forecast step.
        (the rest as ``WindowBatches``; origins are positions on the input grid)
    """

    def __init__(self, values: np.ndarray, targets: np.ndarray, ratio: int, calendar: np.ndarray,
                 tz_of_series: np.ndarray, series_idx: np.ndarray, origins: np.ndarray, lookback: int,
                 horizon: int, batch_size: int, seed: int | None) -> None:
        super().__init__(values, calendar, tz_of_series, series_idx, origins, lookback, horizon, batch_size, seed)
        self.targets, self.ratio = targets, ratio

    def arrays(self, sid: np.ndarray, org: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, calendar, y)`` of the windows ``(sid, org)`` as NumPy arrays."""
        x, y = window_arrays(self.values, self.targets, sid, org, self.lookback, self.horizon, self.ratio)
        return x, self.calendar[self.tz[sid], org], y

    def windows(self, start: int, stop: int) -> tuple[torch.Tensor, ...]:
        """Windows ``start … stop − 1`` of the seeded order as ``(x, series id, calendar, target)``."""
        sid, org = self.series_idx[start:stop], self.origins[start:stop]
        x, cal, y = self.arrays(sid, org)
        return (torch.from_numpy(x.astype(np.float32)), torch.from_numpy(sid.astype(np.int64)),
                torch.from_numpy(cal.astype(np.float32)), torch.from_numpy(np.nan_to_num(y).astype(np.float32)))
