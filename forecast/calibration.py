"""Split-conformal calibration of the quantile spread, fitted on the validation period only.

A pinball-trained net's p10/p90 often come out too narrow on unseen days (it fits the training
noise). The calibration rescales each quantile's *distance from the median* by a factor per
(horizon step, quantile), fitted on validation forecasts only:

    q'(h) = p50(h) + f[h, q] · (q(h) − p50(h)),   f > 0, f[h, median] = 1.

For a quantile level ``τ < 0.5`` the non-conformity score of a validation window is
``r = (p50 − y) / (p50 − q)``: the truth falls below the rescaled quantile exactly when
``r > f``, so ``f`` is the split-conformal ``1 − τ`` quantile of the scores (finite-sample rank
``⌈(n + 1)(1 − τ)⌉``); above the median symmetrically with ``r = (y − p50) / (q − p50)``. Because
``f > 0`` and only the spread is scaled, the median (and its MAE) is unchanged and the quantiles
stay ordered. Scores are ratios, so the factors are the same in scaled and physical units.
Steps are pooled with their neighbours (``±pool`` steps) so that short validation periods still
give stable factors.
"""

from __future__ import annotations

import numpy as np

__all__ = ["apply_spread_factors", "fit_spread_factors", "median_index"]

MIN_GAP = 1e-6


def median_index(quantiles: tuple[float, ...] | np.ndarray) -> int:
    qs = np.asarray(quantiles, dtype=float)
    return int(np.argmin(np.abs(qs - 0.5)))


def fit_spread_factors(pred: np.ndarray, truth: np.ndarray, quantiles: tuple[float, ...],
                       pool: int = 2, bounds: tuple[float, float] = (0.1, 20.0)) -> np.ndarray:
    """Factors ``(H, Q)`` from validation forecasts ``pred (N, H, Q)`` and truth ``(N, H)``.

    Args:
        pred: quantile forecasts (ordered along the last axis).
        truth: the values they forecast (NaN ignored).
        quantiles: levels of the last axis of ``pred``.
        pool: each step's factor uses the scores of steps ``h − pool … h + pool``.
        bounds: factors are clipped to this range (a guard against degenerate validation data).
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    n, horizon, n_q = pred.shape
    mid = median_index(quantiles)
    factors = np.ones((horizon, n_q))
    p50 = pred[..., mid]
    for qi, tau in enumerate(quantiles):
        if qi == mid:
            continue
        if tau < 0.5:
            gap, excess, level = p50 - pred[..., qi], p50 - truth, 1.0 - tau
        else:
            gap, excess, level = pred[..., qi] - p50, truth - p50, tau
        score = excess / np.maximum(gap, MIN_GAP)  # (N, H)
        for h in range(horizon):
            s = score[:, max(0, h - pool):h + pool + 1].ravel()
            s = s[np.isfinite(s)]
            if len(s) == 0:
                continue
            rank = min(1.0, np.ceil((len(s) + 1) * level) / len(s))
            factors[h, qi] = np.quantile(s, rank, method="higher")
    return np.clip(factors, *bounds)


def apply_spread_factors(pred: np.ndarray, factors: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """Rescale ``pred (..., H, n_series, Q)`` (any leading axes) by ``factors (H_fit, Q)``.

    Steps beyond the fitted horizon reuse the last step's factors.
    """
    mid = median_index(quantiles)
    horizon = pred.shape[-3]
    f = factors[np.minimum(np.arange(horizon), len(factors) - 1)][:, None, :]  # (H, 1, Q)
    p50 = pred[..., mid:mid + 1]
    return p50 + f * (pred - p50)
