"""Plant and controller parameters: penalties, control settings and the hardware catalogue.

Filled from YAML by ``pipelines.config``; the field metadata ``range`` is the valid interval.
Sign convention (stated once): power flows and water are positive quantities; grid import ≥ 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from forecast.schema import ConfigError, rng

__all__ = ["ControlSettings", "EdgeMemory", "Gpu", "HardwareCatalogue", "Penalties"]

STAGES = ("cost", "carbon", "delay", "water")   # the lexicographic stages a policy may order


@dataclass(frozen=True)
class Penalties:
    """Prices of the soft constraints (DESIGN.md §2b), euros."""

    drop_eur_per_request: float = field(default=0.05, metadata=rng(0.0, 1e3))
    slo_miss_eur_per_request: float = field(default=0.005, metadata=rng(0.0, 1e3))
    water_eur_per_l: float = field(default=0.01, metadata=rng(0.0, 1e3))
    gpu_start_eur: float = field(default=0.001, metadata=rng(0.0, 1e3))


@dataclass(frozen=True)
class ControlSettings:
    """How the MPC plans: the config's ``control:`` section, and the policy ``AllocationMPC`` reads.

    The field defaults are the shipped ``configs/default.yaml``'s values (``ControlSettings()`` is
    the default policy; ``tests/control/test_policy.py`` checks that they agree).

    Args:
        horizon_steps: H, steps of the receding horizon.
        step_h: Δt, hours per step.
        rho_max: utilisation cap of a pool (keeps the Erlang-C wait small).
        load_quantile: the load quantile GPUs are provisioned for.
        burst_quantile: the level of a stream's burst that the applied step keeps headroom for
            (any one stream at a time; see ``control.mpc.AllocationMPC``).
        objective: ``lexicographic`` or ``weighted``.
        order: lexicographic stage order: distinct stages among cost, carbon, delay and water
            (litres on site and off site), in any order (the hindsight references solve cost alone).
        epsilon: relative slack kept on earlier stages.
        pue_switch_temp_c: above it cooling is mechanical, below outside air.
        carbon_signal: ``average`` (fuel mix) or ``marginal`` where the data provide it.
        carbon_price_eur_per_kg, water_price_eur_per_l, delay_price_eur_per_s: weighted-mode prices.
        gpu_ramp_fraction_per_step: share of a pool's installed GPUs that may start or stop in one
            step (rounded up to whole GPUs, at least one; 1 = no limit).
        slo_wait_margin_services: a region–pool pair gets a variable only when RTT + prefill +
            this many of the pool's service times fit in the class SLO (room for queueing).
        backlog_fill: the plant's dispatcher serves deferrable work a decision left in the
            backlog on what capacity running GPUs still have, cheapest first (work-conserving;
            every controller gets the same dispatcher).
        keep_planned_deferral: in an hour whose forecast has no spread (perfect forecasts) the
            MPC's decision turns the fill off: its deferral to cheaper hours is deliberate, and no
            forecast error needs the room filled; except within the longest deferrable deadline of
            the episode's end, where the end rule would drop what the last hours cannot fit.
        min_gpus_interactive: GPUs the MPC keeps on at every pool that may serve an interactive
            class (0 = none; with ``slo_aware_gpus`` in the planned steps only); the hindsight
            optimum does not use it.
        exact_routing_steps: steps of the horizon the MPC routes per (region, pool, class); later
            steps plan per (pool, class) with the regions pooled, a smaller LP (0 = every step
            exact); the applied step and the hindsight optimum are always exact.
        tail_block_steps: steps per LP step after the exact ones (move blocking of the pooled
            tail: one decision and the mean inputs per block; 1 = every step planned).
        group_interactive_shares: the applied step splits every interactive stream of a region
            group (regions with the same allowed pairs) over the pools in the same proportions, so
            that a burst of one stream spreads over every pool the group uses.
        expiry_guard: the applied step's share of a deferrable stream serves the requests that
            expire in it even if none arrive (shares are fractions of the realised work).
        max_share_vs_capacity: with group shares, a pool's split of a group's interactive class
            is at most this multiple of its capacity-proportional split (0 = no cap), where the
            forecast of the group's class total has spread (none to guard against otherwise).
        slo_aware_gpus: the applied step runs the whole GPUs per pool that minimise idle cost + the
            plant's Erlang-C SLO-miss penalty for the routed load (never fewer than planned).
        group_provision_correlation: with group shares, the correlation assumed between the
            forecast errors of a region group's interactive streams when their provisioning
            levels are added up (1: the sum of the streams' quantiles; 0: independent errors).
        group_bursts: with group shares, the applied step keeps headroom for one region group's
            class total at its burst level (fitted on group totals) instead of one stream's.
        solver_time_limit_s: HiGHS time limit of each LP stage of a step (a lexicographic step
            solves up to four), s; a stage that hits it fails the step (or keeps the earlier
            stage's plan) and the controller falls back.
        hindsight_time_limit_s: HiGHS time limit of the hindsight LP of ``compare``'s references
            (``cost_bound``; the whole episode at 10-min routing, ~1 min on 2 cores), s.
        milp_time_limit_s: time limit of the whole-GPU MILP hindsight (``control.reference``), s;
            it keeps its best whole-GPU plan when it stops early, and reports so.
        max_plan_reuse_steps: how many steps in a row a failed solve may apply the previous plan
            shifted by one more step before the fallback heuristic decides (0 = straight to the
            heuristic; at most ``horizon_steps − 1``).
        provision_headroom: the one GPU sizing rule's spare capacity (``control.sizing.provision_gpus``):
            every controller's applied hour runs at least the GPUs of its routed provisioning-level
            load (load quantile × 10-min peak factor) at rho_max × (1 + this).
        solver: the MPC's LP solver: ``highs`` (highspy, warm-started), ``qpsol`` (CasADi's conic
            interface to HiGHS) or ``admm`` (the cost or weighted stage by per-site ADMM, later
            lexicographic stages centralised; ``control.admm``). The hindsight references always use HiGHS.
        admm_rho: ADMM's initial penalty ρ (0: the objective's scale ÷ the coupling rows'; then
            residual balancing, ×2 or ÷2 when one residual exceeds 10× the other).
        admm_max_iterations: ADMM's iteration cap per step (it then returns its last iterate and says so).
        admm_tolerance: ADMM stops when its relative primal and dual residuals are both at most this.
        admm_workers: Ray actors solving the site blocks (0: all in this process; ≥ 1: a local
            Ray started in-process, or the cluster of ``RAY_ADDRESS``).
    """

    horizon_steps: int = field(default=24, metadata=rng(1, 24 * 14))
    step_h: float = field(default=1.0, metadata=rng(1.0, 1.0))
    rho_max: float = field(default=0.8, metadata=rng(0.05, 1.0))
    load_quantile: float = field(default=0.9, metadata=rng(0.1, 0.9))
    burst_quantile: float = field(default=0.9, metadata=rng(0.5, 0.9999))
    objective: Literal["lexicographic", "weighted"] = "lexicographic"
    order: tuple[Literal["cost", "carbon", "delay", "water"], ...] = ("cost", "carbon", "delay")
    epsilon: float = field(default=0.001, metadata=rng(0.0, 1.0))
    pue_switch_temp_c: float = field(default=18.0, metadata=rng(-20.0, 45.0))
    carbon_signal: Literal["average", "marginal"] = "average"
    carbon_price_eur_per_kg: float = field(default=0.0, metadata=rng(0.0, 1e3))
    water_price_eur_per_l: float = field(default=0.0, metadata=rng(0.0, 1e3))
    delay_price_eur_per_s: float = field(default=0.0, metadata=rng(0.0, 1e3))
    gpu_ramp_fraction_per_step: float = field(default=1.0, metadata=rng(0.01, 1.0))
    slo_wait_margin_services: float = field(default=1.0, metadata=rng(0.0, 100.0))
    backlog_fill: bool = True
    keep_planned_deferral: bool = True
    min_gpus_interactive: float = field(default=4.0, metadata=rng(0.0, 1000.0))
    exact_routing_steps: int = field(default=6, metadata=rng(0, 24 * 14))
    group_interactive_shares: bool = True
    tail_block_steps: int = field(default=4, metadata=rng(1, 24))
    expiry_guard: bool = False
    max_share_vs_capacity: float = field(default=1.5, metadata=rng(0.0, 100.0))
    slo_aware_gpus: bool = False
    group_provision_correlation: float = field(default=0.0, metadata=rng(0.0, 1.0))
    group_bursts: bool = True
    solver_time_limit_s: float = field(default=60.0, metadata=rng(1e-6, 3600.0))
    max_plan_reuse_steps: int = 1   # range 0 … horizon_steps − 1, checked below
    milp_time_limit_s: float = field(default=20.0, metadata=rng(1e-3, 3600.0))
    hindsight_time_limit_s: float = field(default=600.0, metadata=rng(1e-6, 7200.0))
    provision_headroom: float = field(default=0.0, metadata=rng(0.0, 1.0))
    solver: Literal["highs", "qpsol", "admm"] = "highs"
    admm_rho: float = field(default=0.0, metadata=rng(0.0, 1e9))
    admm_max_iterations: int = field(default=1000, metadata=rng(1, 100_000))
    admm_tolerance: float = field(default=1e-3, metadata=rng(1e-9, 0.5))
    admm_workers: int = field(default=0, metadata=rng(0, 1024))

    def __post_init__(self) -> None:
        # H = 1 keeps the default 1 valid (a one-step plan has nothing left to reuse: the heuristic decides)
        if not 0 <= self.max_plan_reuse_steps <= max(self.horizon_steps - 1, 1):
            raise ConfigError(f"control.max_plan_reuse_steps: {self.max_plan_reuse_steps} is out of range "
                              f"[0, {max(self.horizon_steps - 1, 1)}] (at most control.horizon_steps − 1: a plan has "
                              f"{self.horizon_steps} steps, the first applied when it is made)")
        if 0 < self.max_share_vs_capacity < 1:
            raise ConfigError(f"control.max_share_vs_capacity: {self.max_share_vs_capacity}; valid: 0 (off) or ≥ 1 "
                              "(below 1 the splits cannot add up to the whole stream)")
        if not self.order or len(set(self.order)) < len(self.order) or not set(self.order) <= set(STAGES):
            raise ConfigError(
                f"control.order: distinct stages among {', '.join(STAGES)} are needed, in any order "
                f"(got {list(self.order)})"
            )


@dataclass(frozen=True)
class Gpu:
    """One accelerator type, per GPU, for the scenario's model (see configs/hardware.yaml).

    Args:
        name: catalogue key.
        kind: ``datacentre`` or ``edge``.
        idle_w: power when on and idle, W.
        prefill_tok_per_s: prompt tokens processed per second at full use.
        decode_tok_per_s: output tokens generated per second at full use (at the given batch).
        prefill_j_per_token, decode_j_per_token: dynamic energy per token above idle, J.
        source: where the numbers come from (tags M measured, C configured, D derived).
        batch: the batch size the decode figures are for (an edge device's fixed mode, the one
            the baselines run when ``sizing.edge_batch_modes`` offers the MPC others).
        memory_gb: device memory, GB (the batch modes' memory check; ``control.batch_modes``).
        decode_tok_per_s_batch1: decode rate at batch 1 (the base of the batch modes' figures).
    """

    name: str
    kind: Literal["datacentre", "edge"]
    idle_w: float = field(metadata=rng(0.0, 5000.0))
    busy_w: float = field(metadata=rng(0.0, 5000.0))
    prefill_tok_per_s: float = field(metadata=rng(1.0, 1e6))
    decode_tok_per_s: float = field(metadata=rng(0.1, 1e6))
    prefill_j_per_token: float = field(metadata=rng(0.0, 100.0))
    decode_j_per_token: float = field(metadata=rng(0.0, 100.0))
    source: str
    batch: int = field(default=1, metadata=rng(1, 4096))
    memory_gb: float | None = field(default=None, metadata=rng(0.1, 1e4))
    decode_tok_per_s_batch1: float | None = field(default=None, metadata=rng(0.1, 1e6))

    def __post_init__(self) -> None:
        if self.busy_w < self.idle_w:
            raise ConfigError(f"hardware.{self.name}.busy_w: must be ≥ idle_w ({self.idle_w} W)")


@dataclass(frozen=True)
class EdgeMemory:
    """The served model on an edge device, for the batch modes' memory check and decode rate.

    Args:
        weights_gb: the quantised weights, GB.
        kv_bytes_per_token: KV cache per token of one sequence, bytes.
        context_tokens: KV cache reserved per batch slot, tokens.
        mean_kv_tokens: tokens in a slot's cache on average while it decodes.
        runtime_reserve_gb: runtime, CUDA context and (unified memory) OS share, GB.
        source: where the numbers come from.
    """

    weights_gb: float = field(metadata=rng(0.01, 1e4))
    kv_bytes_per_token: float = field(metadata=rng(0.0, 1e9))
    context_tokens: int = field(metadata=rng(1, 10_000_000))
    mean_kv_tokens: float = field(metadata=rng(0.0, 1e7))
    runtime_reserve_gb: float = field(metadata=rng(0.0, 1e4))
    source: str


@dataclass(frozen=True)
class HardwareCatalogue:
    """Every GPU type a pool may use, by name; ``edge_memory`` for edge batch modes."""

    model: str
    gpus: tuple[Gpu, ...]
    edge_memory: EdgeMemory | None = None

    def get(self, name: str) -> Gpu:
        for gpu in self.gpus:
            if gpu.name == name:
                return gpu
        raise ConfigError(
            f"unknown GPU type {name!r}; the catalogue has {[g.name for g in self.gpus]}"
        )
