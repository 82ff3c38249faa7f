"""Fan charts: day-ahead quantile forecasts (issued daily at 00:00 UTC) against the truth, one week."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from forecast.evaluate import model_inputs  # noqa: E402
from forecast.interface import Forecaster  # noqa: E402
from forecast.output import Forecast  # noqa: E402
from forecast.schema import SIGNALS  # noqa: E402
from forecast.splits import SignalSplit  # noqa: E402

__all__ = ["fan_chart", "plot_forecast"]


def fan_chart(model: Forecaster, split: SignalSplit, start: pd.Timestamp, n_series: int,
              path: Path, days: int = 7) -> Path | None:
    """Plot p10–p90 band, p50 and truth for the first ``n_series`` outputs over ``days`` days."""
    idx = split.full.index
    starts = [start + pd.Timedelta(days=d) for d in range(days)]
    origins = np.array([int(np.flatnonzero(idx == t)[0]) for t in starts if (idx == t).any()])
    inputs, times, org_in = model_inputs(model, split, origins)
    origins, org_in = origins[org_in >= model.lookback_steps], org_in[org_in >= model.lookback_steps]
    if len(origins) == 0:
        return None
    values = split.full[list(model.series)].to_numpy(dtype=float)
    h = 24
    pred = model.predict_windows(inputs, times, org_in, h)  # (N, H, n, Q)
    series = list(model.series)[:n_series]
    fig, axes = plt.subplots(len(series), 1, figsize=(11, 2.6 * len(series)), sharex=True, squeeze=False)
    for j, (ax, name) in enumerate(zip(axes[:, 0], series, strict=True)):
        for i, o in enumerate(origins):
            ts = idx[o:o + h]
            n = len(ts)
            ax.fill_between(ts, pred[i, :n, j, 0], pred[i, :n, j, -1], color="tab:blue", alpha=0.25,
                            label="p10–p90" if i == 0 else None)
            ax.plot(ts, pred[i, :n, j, 1], color="tab:blue", lw=1.2, label="p50" if i == 0 else None)
        span = (idx >= idx[origins[0]]) & (idx < idx[origins[-1]] + pd.Timedelta(hours=h))
        ax.plot(idx[span], values[span, j], color="k", lw=1.0, label="truth")
        ax.set_ylabel(SIGNALS[split.signal].unit)
        ax.set_title(f"{split.signal} — {name} ({model.name}, day-ahead from 00:00 UTC)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_forecast(fc: Forecast, folder: Path) -> list[Path]:
    """One PNG per signal of a single forecast: p50 lines with p10–p90 bands per series."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for sig, arr in fc.values.items():
        fig, ax = plt.subplots(figsize=(11, 4.5))
        for j, name in enumerate(fc.series[sig]):
            line = ax.plot(fc.timestamps, arr[:, j, 1], lw=1.2, label=name)[0]
            ax.fill_between(fc.timestamps, arr[:, j, 0], arr[:, j, -1], color=line.get_color(), alpha=0.12)
        ax.set_title(f"{sig}: forecast issued {fc.t0:%Y-%m-%d %H:%M} UTC (p50, band p10–p90)")
        ax.set_ylabel(SIGNALS[sig].unit)
        ax.grid(alpha=0.3)
        ax.legend(ncol=6, fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.12))
        fig.tight_layout()
        path = folder / f"forecast_{sig}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        out.append(path)
    return out
