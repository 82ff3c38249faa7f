"""PNG plots for people to look at (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from forecast.dataset import Dataset  # noqa: E402
from forecast.scenario import Scenario  # noqa: E402
from forecast.schema import SIGNALS  # noqa: E402

__all__ = ["plot_week"]


def _week(frame: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    return frame[(frame.index >= start) & (frame.index < start + pd.Timedelta(days=7))]


def _site_signal_plot(data: Dataset, signal: str, start: pd.Timestamp, path: Path) -> None:
    wide = _week(data.wide(signal), start)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for site in wide.columns:
        ax.plot(wide.index, wide[site], label=site, lw=1.2)
    spec = SIGNALS[signal]
    ax.set_title(f"{signal}: {spec.meaning} — week from {start:%Y-%m-%d} (UTC)")
    ax.set_ylabel(spec.unit)
    ax.grid(alpha=0.3)
    ax.legend(ncol=6, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.12))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _load_plot(data: Dataset, scenario: Scenario, start: pd.Timestamp, path: Path) -> None:
    load = data.signals[data.signals["signal"] == "load_req_per_s"]
    wide = _week(load.pivot(index="ts", columns="site", values="value"), start)
    flags = _week(load.pivot(index="ts", columns="site", values="flag"), start)
    n = len(scenario.regions)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), sharex=True, squeeze=False)
    for ax, region in zip(axes.ravel(), scenario.regions, strict=False):
        streams = [f"{region.name}/{k}" for k in scenario.class_names]
        ax.stackplot(wide.index, *[wide[s] for s in streams], labels=list(scenario.class_names), alpha=0.85)
        resampled = (flags[streams[0]] == "resampled").to_numpy()
        if resampled.any():
            ax.fill_between(wide.index, 0, 1, where=resampled, color="grey", alpha=0.15,
                            transform=ax.get_xaxis_transform(), label="resampled")
        ax.set_title(region.name, fontsize=10)
        ax.set_ylabel("req/s")
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"load_req_per_s per region and class — week from {start:%Y-%m-%d} (UTC); grey = resampled days")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_week(data: Dataset, scenario: Scenario, out_dir: Path, week_start: str) -> list[Path]:
    """One PNG per signal over one week; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = pd.Timestamp(week_start, tz="UTC")
    written = []
    for signal in sorted(data.signals["signal"].unique()):
        path = out_dir / f"{signal}.png"
        if signal == "load_req_per_s":
            _load_plot(data, scenario, start, path)
        else:
            _site_signal_plot(data, signal, start, path)
        written.append(path)
    return written
