"""``greenllm simulate``: one closed-loop run (``pipelines.loop``), printed and tracked in MLflow
(experiment ``closed-loop``), checkpointed every N steps when asked and resumable."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines import _tracking as tracking
from pipelines import _tracking_registry as registry
from pipelines._loop_report import fallback_lines, water_over_budget
from pipelines.config import Config
from pipelines.live_state import write_state
from pipelines.loop import (
    EXPERIMENT,
    MODEL_URI,
    RunOutput,
    Setup,
    forecaster_choice,
    load_suite,
    log_run,
    prepare,
    run_loop,
    run_params,
)
from pipelines.refresh import check_refresh, tracked_refresher

__all__ = ["print_kpis", "run_simulate"]


def print_kpis(name: str, k: dict[str, float]) -> None:
    """A run's KPI summary, five lines."""
    print(f"\n{name}")
    print(f"  cost {k['cost_eur']:.2f} EUR = energy {k['energy_cost_eur']:.2f} + drops {k['drop_penalty_eur']:.2f}"
          f" + SLO {k['slo_penalty_eur']:.2f} + water {k['water_penalty_eur']:.2f}"
          f" + starts {k['start_penalty_eur']:.3f}")
    print(f"  CO2 {k['co2_kg']:.1f} kg   water {k['water_l']:.0f} L (on-site {k['water_onsite_l']:.0f}, "
          f"off-site {k['water_offsite_l']:.0f})   energy IT {k['energy_it_kwh']:.0f} kWh, cooling "
          f"{k['energy_cooling_kwh']:.0f} kWh")
    print(f"  renewable share {k['renewable_share'] * 100:.1f} %, curtailed {k['curtailed_kwh']:.0f} kWh   "
          f"TTFT mean {k['ttft_mean_s']:.3f} s, p95 {k['ttft_p95_s']:.3f} s   SLO misses {k['slo_misses']:.0f}"
          f"   dropped {k['drops']:.0f}   deferred {k['deferred_req']:.0f}")
    print(f"  decision time per step: median {k['median_step_ms']:.0f} ms, p95 {k['p95_step_ms']:.0f} ms, "
          f"max {k['max_step_ms']:.0f} ms   fallback steps {k['fallback_steps']:.0f}")


def _report(out: RunOutput, s: Setup, title: str, state_out: Path | None) -> None:
    """The run's KPIs, fallback steps, final state (to ``state_out``) and water over budget, printed."""
    print_kpis(title, out.kpis)
    for line in fallback_lines(out.per_step):
        print(line)
    if state_out is not None:
        at = s.t0 + pd.Timedelta(hours=s.steps)
        print(f"state at {at:%Y-%m-%d %H:%M} UTC → {write_state(state_out, s.plant, out.episode.final_state, at)} "
              f"(plan onward: greenllm plan CONFIG --at {at:%Y-%m-%dT%H:%MZ} --state {state_out})")
    over = water_over_budget(out.sites, s.plant)
    if over is not None:
        print(f"\nwater over budget ({len(over)} site-days; on-site + off-site litres per UTC day):")
        print(over.to_string())


def run_simulate(cfg: Config, controller: str = "mpc", forecaster: str = MODEL_URI, window: str = "primary",
                 steps: int | None = None, out_dir: Path = Path("out/simulate"), checkpoint_every: int = 0,
                 resume: bool = False, force: bool = False, state_out: Path | None = None,
                 refresh_every: int | None = None) -> dict[str, float]:
    """``greenllm simulate``: one closed-loop run, printed and tracked (checkpointed every N steps
    to ``out_dir/checkpoint.npz`` when asked; ``resume`` continues from it, ``force`` accepts a
    checkpoint written by another code version; ``state_out``: the final state as JSON for ``plan --state``;
    ``refresh_every``: re-fit the learned forecaster every N hours, ``pipelines.refresh``)."""
    if force and not resume:
        raise ValueError("--force: only with --resume (it accepts a checkpoint of another code version)")

    kind, uri = forecaster_choice(forecaster, cfg)
    suite, lineage = None, {}
    if kind == "learned":
        suite, folder = load_suite(uri, cfg.control)
        lineage = registry.model_lineage(uri, folder)
    s = prepare(cfg, window, steps)
    check_refresh(refresh_every, s.steps, kind, s.data, s.t0)
    if refresh_every:
        lineage = lineage | {"refresh_every_h": str(refresh_every)}   # part of what a checkpoint depends on
    print(f"greenllm simulate: {controller} with {forecaster} forecasts, {s.steps} h from {s.t0:%Y-%m-%d %H:%M} UTC "
          f"({s.plant.n_sites} sites, {s.plant.n_pools} pools, H = {s.horizon})")
    with tracking.start_run(EXPERIMENT, f"{controller}-{kind}-{s.window}") as run:
        refresher = tracked_refresher(s, suite, refresh_every, lineage) if refresh_every and suite else None
        out = run_loop(s, controller, kind, suite, checkpoint=out_dir / "checkpoint.npz",
                       checkpoint_every=checkpoint_every, resume=resume, lineage=lineage, force=force,
                       refresher=refresher)
        log_run(out, s, run_params(s, controller, kind, out.forecaster, lineage) | {"resumed": str(resume)}, out_dir)
        _report(out, s, f"{controller} ({out.forecaster})", state_out)
        print(f"\nMLflow run {run.info.run_id} in experiment '{EXPERIMENT}'; plots in {out_dir}/; "
              "browse with `greenllm ui`")
    return out.kpis
