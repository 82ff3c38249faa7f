"""``greenllm data summary CONFIG``: what the scenario's data are, where they come from, and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from control.batch_modes import device_name, gpu_for
from control.from_data import fleet_dataset, peak_load_req_per_s, plant_for
from forecast.dataset import Dataset
from forecast.schema import REPAIR_CAUSES
from forecast.sources.llm_load import WINDOW_S, read_servegen_windows
from pipelines._plots import plot_week
from pipelines.config import Config

__all__ = ["summary_table", "run_summary"]


def summary_table(data: Dataset) -> pd.DataFrame:
    """One row per (site or stream, signal): unit, span, mean/min/max, filled hours, flags, source."""
    sig = data.signals
    stats = sig.groupby(["site", "signal"], sort=False).agg(
        start=("ts", "min"), end=("ts", "max"), mean=("value", "mean"), min=("value", "min"),
        max=("value", "max"), hours=("value", "size"))
    flags = sig.groupby(["site", "signal"], sort=False)["flag"].agg(
        lambda f: ", ".join(f"{k} {v}" for k, v in f.value_counts().items()))
    table = stats.join(flags).reset_index()
    return table.merge(data.provenance, on=["site", "signal"], how="left")


def _fmt_num(x: float) -> str:
    return f"{x:,.1f}" if abs(x) >= 100 else f"{x:.3g}"


def _print_block(title: str, rows: pd.DataFrame) -> None:
    cols = ["site", "signal", "unit", "span (UTC)", "mean", "min", "max", "filled h", "flags", "source file"]
    lines = [[r.site, r.signal, r.unit, f"{r.start:%Y-%m-%d} … {r.end:%Y-%m-%d}", _fmt_num(r.mean),
              _fmt_num(r.min), _fmt_num(r.max), str(int(r.filled_h)), r.flag, Path(str(r.source).split(":")[-1]).name]
             for r in rows.itertuples()]
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(cols)]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)))


def _print_notes(cfg: Config, data: Dataset, table: pd.DataFrame) -> None:
    sc = cfg.scenario
    print("\nSources, labels and assumptions")
    for site in sc.site_names:
        prov = data.provenance[data.provenance["site"] == site]
        print(f"  {site}:")
        for r in prov.itertuples():
            print(f"    {r.signal:<18} {r.source}\n    {'':<18} {r.labels}; {r.notes}")
    ld, ds = data.load, sc.data
    rec = table[(table["signal"] == "load_req_per_s")]
    print(f"\n  load: {ld.file} ({len(ld.assignment)} clients, tier {ds.resolved_load_tier()}); day 0 = "
          f"{ds.load_day0_local} 00:00 local in every region (a Monday: an assumption, the source names no weekday);"
          f" {ds.load_days_recorded} recorded days, the rest a seeded day-of-week bootstrap from training days 0–8"
          f" (flag 'resampled'); streams: {len(rec)}")
    shares = ld.assignment.groupby("class")["mean_req_per_s"].sum() / ld.assignment["mean_req_per_s"].sum()
    rshares = ld.assignment.groupby("region")["mean_req_per_s"].sum() / ld.assignment["mean_req_per_s"].sum()
    print("  drawn class shares: " + ", ".join(f"{k} {v:.1%}" for k, v in shares.items()))
    print("  drawn region shares: " + ", ".join(f"{k} {v:.1%}" for k, v in rshares.items()))
    split = ld.assignment.groupby("client").size()
    print(f"  clients split over several streams (a client larger than a stream's remaining share): "
          f"{int((split > 1).sum())} of {len(split)}; fractions recorded with the draw")
    _print_outages(cfg)
    _print_fleet(cfg, data)
    for cls in sc.classes:
        t = ld.tokens.loc[cls.tokens]
        print(f"  class {cls.name}: tokens from Azure 2023 {cls.tokens} trace ({int(t.requests):,} requests): "
              f"prompt mean {t.prompt_tokens_mean:.0f} (p50 {t.prompt_tokens_p50:.0f}), output mean "
              f"{t.output_tokens_mean:.0f} (p50 {t.output_tokens_p50:.0f}); SLO {cls.slo_ttft_s:g} s"
              + (f", deferrable, deadline {cls.deadline_h} h" if cls.deferrable else ""))


def trace_outages(windows: pd.DataFrame) -> pd.DataFrame:
    """Runs of consecutive 10-min windows in which every client is at 0 req/s (the whole tier down:
    ServeGen m-mid has them): one row per run with ``day`` (recorded day), ``start`` (local
    ``HH:MM`` of its first window) and ``minutes``; empty when there are none.

    Args:
        windows: client, t_seconds (window start since local midnight of day 0), rate_req_per_s
            (``forecast.sources.llm_load.read_servegen_windows``).
    """
    total = windows.groupby("t_seconds")["rate_req_per_s"].sum()       # every window (the reader checks)
    edges = np.diff(np.concatenate([[0], (total.to_numpy() == 0).astype(int), [0]]))   # as schema's gap runs
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    first = total.index.to_numpy()[starts]
    return pd.DataFrame({"day": first // 86400,
                         "start": [f"{t % 86400 // 3600:02d}:{t % 3600 // 60:02d}" for t in first],
                         "minutes": (ends - starts) * WINDOW_S // 60})


def _print_outages(cfg: Config) -> None:
    ds = cfg.scenario.data
    runs = trace_outages(read_servegen_windows(ds.resolved_load_dir(), ds.resolved_load_tier(), ds.load_days_recorded))
    if runs.empty:
        print("  trace outages (every client at 0 req/s): none on the recorded days")
        return
    print(f"  trace outages (every client at 0 req/s, the whole tier down): {len(runs)} on the recorded days, "
          f"{int(runs['minutes'].sum())} min in all — "
          + ", ".join(f"day {r.day} {r.start} local, {r.minutes} min" for r in runs.itertuples())
          + "; resampled days repeat their donor day's; the forecasters and the plant read them as zero load")


def _print_fleet(cfg: Config, data: Dataset) -> None:
    """The fleet factor as an assumption: tier, factor, target and resulting GPUs, 10-min peak."""
    sc = cfg.scenario
    plant = plant_for(cfg, data)
    edge = np.array([gpu_for(cfg.hardware, g).kind == "edge" for g in plant.pool_gpu])
    fixed = edge & plant.fixed_mode
    counts = pd.Series(plant.gpus_max[fixed], index=[device_name(g) for g in np.array(plant.pool_gpu)[fixed]])
    counts = counts.groupby(level=0).sum()
    peak = float(peak_load_req_per_s(data, sc.region_names, sc.class_names).sum())
    target = sc.sizing.target_datacentre_gpus
    why = (f"so that the plant installs sizing.target_datacentre_gpus = {target:,} datacentre GPUs"
           if target else "sizing.target_datacentre_gpus = 0: the trace's own rates")
    print(f"  fleet scale (an assumption): load of tier {sc.data.resolved_load_tier()} × {data.load_factor:.4g} "
          f"({why}); result: {int(plant.gpus_max[~edge].sum()):,} datacentre GPUs (H100/A100 pools), edge "
          f"devices as the unscaled trace sizes them: "
          + (", ".join(f"{int(n):,} {g}" for g, n in counts.items()) or "none")
          + f"; recorded 10-min peak {peak / data.load_factor:,.1f} req/s unscaled, {peak:,.1f} req/s scaled "
          f"(capacity at rho_max = {sc.sizing.capacity_margin:g} × it)")
    if sc.sizing.edge_batch_modes:
        modes = pd.Series(np.array(plant.pool_gpu)[edge]).drop_duplicates().tolist()
        print(f"  edge batch modes (sizing.edge_batch_modes = {list(sc.sizing.edge_batch_modes)}; those that fit "
              f"the device memory, the MPC chooses per hour): {', '.join(modes)}")


def _print_repairs(data: Dataset) -> None:
    """Hours repaired per cause: totals, then one line per repaired series."""
    prov = data.provenance
    repaired = prov[prov["repairs"].fillna("").astype(str) != ""]
    totals = dict.fromkeys(REPAIR_CAUSES, 0)
    for text in repaired["repairs"]:
        for part in str(text).split(", "):
            cause, n = part.rsplit(" ", 1)
            totals[cause] += int(n)
    print("\nRepaired hours per cause: " + ", ".join(f"{c} {n}" for c, n in totals.items()))
    for r in repaired.itertuples():
        origin = "user data" if str(r.source).startswith("user:") else "packaged"
        print(f"  {r.site} {r.signal}: {r.repairs} ({origin})")


def run_summary(cfg: Config, plots_dir: Path, week_start: str) -> Dataset:
    """Build the data, print the tables and notes, write one PNG per signal for one week."""
    sc = cfg.scenario
    print(f"greenllm data summary: scenario {sc.name!r} ({len(sc.sites)} sites, {len(sc.regions)} regions, "
          f"{len(sc.classes)} classes) from {cfg.path}", flush=True)
    data = fleet_dataset(cfg, progress=True)
    table = summary_table(data)
    is_load = table["signal"] == "load_req_per_s"
    _print_block("Per site (grid, weather, on-site renewables)", table[~is_load])
    _print_block("Per user region and class (requests)", table[is_load])
    _print_notes(cfg, data, table)
    _print_repairs(data)
    written = plot_week(data, sc, plots_dir, week_start)
    print(f"\nPlots of the week from {week_start} (UTC): {len(written)} PNG files in {plots_dir}/")
    for path in written:
        print(f"  {path}")
    return data
