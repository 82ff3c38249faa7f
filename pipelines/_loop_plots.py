"""Closed-loop plots (PNG): allocation per site, grid vs renewables, signals with load, cumulative cost."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["plot_allocation", "plot_cumulative", "plot_power", "plot_signals"]

# 20 distinct colours (12 sites; the default cycle has 10). ``cm.tab20`` is a ListedColormap of 20
# RGB tuples, but matplotlib's stubs type it as a plain Colormap, which has no ``colors``.
_TAB20: tuple[tuple[float, float, float], ...] = plt.cm.tab20.colors  # type: ignore[attr-defined]


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, n)
    return math.ceil(n / cols), cols


def plot_allocation(sites: pd.DataFrame, path: Path, title: str) -> Path:
    """Stacked served requests per site over time."""
    wide = sites.pivot(index="ts", columns="site", values="served_req") / 3600.0
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.stackplot(wide.index, wide.T.to_numpy(), labels=list(wide.columns), colors=_TAB20)
    ax.set(ylabel="served load, req/s", xlabel="UTC", title=title)
    ax.legend(ncol=6, fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_power(sites: pd.DataFrame, path: Path, title: str) -> Path:
    """Per site: facility power, grid import and renewables available."""
    names = list(dict.fromkeys(sites["site"]))
    rows, cols = _grid(len(names))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.3 * rows), sharex=True, squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        s = sites[sites["site"] == name].set_index("ts")
        ax.plot(s.index, s["facility_kw"], label="facility", color="black", lw=1)
        ax.fill_between(s.index, 0, s["grid_kw"], label="grid import", color="tab:red", alpha=0.4)
        ax.plot(s.index, s["renewable_kw"], label="renewables available", color="tab:green", lw=1)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=6)
    fig.suptitle(f"{title} — kW per site")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_signals(sites: pd.DataFrame, path: Path, title: str) -> Path:
    """Price, carbon intensity and temperature per site, with the load the controller chose there."""
    fig, axes = plt.subplots(4, 1, figsize=(11, 10), sharex=True)
    for ax in axes:  # 12 sites: 20 distinct colours, not the default 10
        ax.set_prop_cycle(color=_TAB20)
    for name, s in sites.groupby("site", sort=False):
        s = s.set_index("ts")
        axes[0].plot(s.index, s["served_req"] / 3600.0, label=name, lw=1)
        axes[1].plot(s.index, s["price_eur_per_mwh"], lw=1)
        axes[2].plot(s.index, s["carbon_g_per_kwh"], lw=1)
        axes[3].plot(s.index, s["temp_c"], lw=1)
    for ax, label in zip(axes, ("chosen load, req/s", "price, EUR/MWh", "carbon, gCO2/kWh", "temperature, °C"),
                         strict=True):
        ax.set_ylabel(label)
    axes[0].legend(ncol=6, fontsize=7)
    axes[0].set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_cumulative(series: dict[str, pd.DataFrame], path: Path, title: str) -> Path:
    """Cumulative cost (EUR) and CO2 (kg) over time, one line per controller."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax in axes:
        ax.set_prop_cycle(color=_TAB20)
    for name, frame in series.items():
        axes[0].plot(frame.index, frame["cost_eur"].cumsum(), label=name, lw=1.2)
        axes[1].plot(frame.index, frame["co2_kg"].cumsum(), label=name, lw=1.2)
    # drops make some controllers cost 1000× others: a log axis keeps the close ones apart
    axes[0].set_yscale("symlog", linthresh=1.0)   # symmetric: negative prices can make a cost negative
    axes[0].set(ylabel="cumulative cost, EUR (log scale above 1)", title=f"{title}: cost")
    axes[1].set(ylabel="cumulative CO2, kg", title=f"{title}: CO2")
    axes[0].legend(fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
