"""Controllers with one interface, ``act(t, state, forecast) -> Allocation`` (DESIGN.md §5).

* ``MPCController`` — any ``AllocationMPC`` (receding horizon; the myopic one-step optimiser is an
  MPC with H = 1, the temperature-unaware MPC one with a constant PUE per site). On a solver
  failure or time-out it applies its previous plan shifted by one more step, at most
  ``max_plan_reuse_steps`` times in a row, then a named heuristic; every fallback is a
  ``FallbackEvent`` in ``events``.
* ``ShrinkingHorizonMPC`` — plans to the episode end (one LP per remaining length, built once each).
* Heuristics, as a real global load balancer: ``GreedyController`` (nearest site, cheapest price,
  lowest carbon) fills each stream's allowed pools in its order up to the capacity it provisions
  there (the sizing rule's GPUs for what it routes, at most the installed ones), then spills to the
  next pool; ``CapacityProportional`` splits by installed capacity. They serve all work now (no
  deferral, no battery).

Every controller's applied GPUs come from ONE rule, ``control.sizing.provision_gpus`` (the load's
provisioning level routed by the decision's shares, at rho_max, × (1 + ``provision_headroom``)):
the heuristics size with it directly, the MPC raises its applied step's GPUs to it (keeping its
own plan where that asks for more). The plant's dispatcher then serves every controller alike.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Protocol

import numpy as np

from control import plant as pl
from control import saved_state, sizing
from control._applied_step import certain_groups
from control.batch_modes import fixed_mode_gpus
from control.inputs import ControlForecast
from control.mpc import AllocationMPC, MPCResult, Plan
from control.params import ControlSettings
from control.plant import PlantParams
from control.shares import capacity_shares
from control.state import Allocation, PlantState

__all__ = [
    "CapacityProportional",
    "Controller",
    "FallbackEvent",
    "GreedyController",
    "MPCController",
    "ShrinkingHorizonMPC",
    "annual_mean_pue",
    "myopic",
    "provisioned_gpus",
    "temperature_unaware",
]


class Controller(Protocol):
    """Anything that decides one step."""

    name: str

    def act(self, t: int, state: PlantState, forecast: ControlForecast) -> Allocation: ...


def _idle_battery(plant: PlantParams) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(plant.n_sites), np.zeros(plant.n_sites)


def _check_headroom(headroom: float) -> float:
    if not (np.isfinite(headroom) and 0.0 <= headroom):
        raise ValueError(f"provision_headroom: {headroom}; valid: a finite fraction ≥ 0 (control.provision_headroom)")
    return float(headroom)


def provisioned_gpus(plant: PlantParams, share: np.ndarray, state: PlantState, forecast: ControlForecast,
                     headroom: float) -> np.ndarray:
    """The sizing rule's GPUs for a decision's shares at the forecast's provisioning level (step 0),
    or, when the forecast knows the hour's sub-steps (perfect foresight), at each pool's busiest one."""
    sub = forecast.load_sub_req_per_s
    if sub is None:
        return sizing.provision_gpus(plant, share, forecast.load_provision_req_per_s[0], headroom, state.backlog_req)
    return np.max([sizing.provision_gpus(plant, share, load, headroom, state.backlog_req) for load in sub[0]], axis=0)


class CapacityProportional:
    """Every stream split over its allowed pools in proportion to their installed capacity; GPUs
    from the sizing rule (``control.sizing.provision_gpus``).

    Args:
        plant: coefficients.
        name: label of its decisions.
        provision_headroom: spare capacity over the provisioning level (``control.provision_headroom``).
    """

    def __init__(self, plant: PlantParams, name: str = "capacity-proportional",
                 provision_headroom: float = 0.0) -> None:
        self.plant, self.name = plant, name
        self.headroom = _check_headroom(provision_headroom)

    def act(self, t: int, state: PlantState, forecast: ControlForecast) -> Allocation:
        share = capacity_shares(self.plant, fixed_mode_gpus(self.plant))
        gpus = provisioned_gpus(self.plant, share, state, forecast, self.headroom)
        return Allocation(share, gpus, *_idle_battery(self.plant), self.name)


class GreedyController:
    """A global load balancer with a preference order: each stream fills its allowed pools in order
    of a key up to the capacity it provisions there, then spills to the next.

    A pool's provisioned capacity is what the sizing rule (``control.sizing.provision_gpus``) gives
    for the work routed there, bounded by its installed GPUs: it takes work at the provisioning
    level up to ``rho_max × installed GPUs ÷ (1 + headroom)`` GPU-s per s. Streams are placed
    largest first. Work that finds no such room anywhere fills what is left of the installed
    capacity at rho_max (in the same order); what is left even then (or a stream forecast at
    zero) goes to the stream's first allowed pool, where the dispatcher spills it.

    Args:
        plant: coefficients.
        key: ``nearest`` (RTT), ``price`` (site price now) or ``carbon`` (site grid intensity now).
        provision_headroom: spare capacity over the provisioning level (``control.provision_headroom``).
    """

    def __init__(self, plant: PlantParams, key: Literal["nearest", "price", "carbon"],
                 provision_headroom: float = 0.0) -> None:
        self.plant, self.key = plant, key
        self.name = {"nearest": "nearest-site", "price": "cheapest-price", "carbon": "lowest-carbon"}[key]
        self.headroom = _check_headroom(provision_headroom)

    def _pool_rank(self, forecast: ControlForecast) -> np.ndarray:
        """``(R, P)`` sort key (lower is preferred)."""
        plant = self.plant
        if self.key == "nearest":
            return plant.rtt_s[:, plant.pool_site]
        site = forecast.price_eur_per_mwh[0] if self.key == "price" else forecast.carbon_g_per_kwh[0]
        rtt = plant.rtt_s[:, plant.pool_site]
        return site[plant.pool_site][None, :] + 1e-6 * rtt  # RTT breaks ties

    def _fill(self, work: np.ndarray, rank: np.ndarray, free: np.ndarray, share: np.ndarray) -> np.ndarray:
        """Route each stream's work not yet routed (``work`` × (1 − its shares so far)) in pool order
        into ``free`` GPU-s per s; ``share`` is updated in place. Returns the room left per pool."""
        plant, K = self.plant, len(self.plant.class_names)
        for flat in np.argsort(-work, axis=None, kind="stable"):
            r, k = divmod(int(flat), K)
            left = work[r, k] * max(1.0 - share[r, :, k].sum(), 0.0)
            for p in np.argsort(rank[r], kind="stable"):
                if left <= 1e-12 * work[r, k]:
                    break
                if not plant.allowed[r, p, k] or free[p] <= 0:
                    continue
                take = min(left, free[p] / plant.gpu_s_per_req[p, k])
                share[r, p, k] += take / work[r, k]
                free[p] = max(free[p] - take * plant.gpu_s_per_req[p, k], 0.0)
                left -= take
        return free

    def _route_rest(self, rank: np.ndarray, share: np.ndarray) -> None:
        """A stream's work beyond every installed capacity goes to its first allowed pool (the
        dispatcher spills or returns what finds no room): a balancer sends every request somewhere,
        and the heuristics defer nothing by decision."""
        plant = self.plant
        rest = np.maximum(1.0 - share.sum(axis=1), 0.0)                           # (R, K)
        for r, k in zip(*np.nonzero(rest > 1e-12), strict=True):
            order = [p for p in np.argsort(rank[r], kind="stable") if plant.allowed[r, p, k]]
            if order:
                share[r, order[0], k] += rest[r, k]

    def act(self, t: int, state: PlantState, forecast: ControlForecast) -> Allocation:
        plant = self.plant
        R, K = len(plant.region_names), len(plant.class_names)
        work = sizing.stream_work_req_per_s(plant, forecast.load_provision_req_per_s[0], state.backlog_req)
        share = np.zeros((R, plant.n_pools, K))
        rank = self._pool_rank(forecast)
        installed = plant.rho_max * fixed_mode_gpus(plant)                        # GPU-s per s
        room = self._fill(work, rank, installed / (1.0 + self.headroom), share)
        if (work * np.maximum(1.0 - share.sum(axis=1), 0.0) > 1e-9 * np.maximum(work, 1.0)).any():
            used = installed / (1.0 + self.headroom) - room                     # the headroom itself
            self._fill(work, rank, installed - used, share)
        self._route_rest(rank, share)
        gpus = provisioned_gpus(plant, share, state, forecast, self.headroom)
        return Allocation(share, gpus, *_idle_battery(plant), self.name)


def _event_types() -> dict[str, type]:
    """The dataclasses of this module by name: what a saved event record may be rebuilt as."""
    return {name: obj for name, obj in globals().items()
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == __name__}


@dataclasses.dataclass(frozen=True)
class FallbackEvent:
    """A step the MPC's own plan did not decide (plain ``int``/``str`` fields: saved as is).

    Attributes:
        step: the episode step.
        reason: the solve's status, e.g. ``failed: stage cost: Time limit reached``.
        fallback: what decided instead: ``previous-plan+N`` (the last plan's step N),
            ``heuristic:<name>``, or ``earlier-stage-plan`` (a later lexicographic stage failed;
            the plan of the stages before it was applied).
    """

    step: int
    reason: str
    fallback: str


class MPCController:
    """Receding-horizon MPC with fallbacks.

    Args:
        mpc: the built MPC.
        fallback: the heuristic used when no plan is available.
        name: label of its decisions.
        episode_steps: the episode length when known: a horizon reaching past it charges the
            backlog left at the episode end as dropped (the end rule).
        max_plan_reuse_steps: a failed solve applies the previous plan shifted by one more step
            at most this many times in a row (and only while the plan reaches that far), then
            ``fallback`` decides; 0: straight to ``fallback``.
        provision_headroom: the sizing rule's headroom (``control.provision_headroom``): the
            applied step runs at least ``control.sizing.provision_gpus`` of its shares at the
            forecast's provisioning level (the plan's own GPUs where they are more).
    """

    def __init__(self, mpc: AllocationMPC, fallback: Controller, name: str = "mpc",
                 episode_steps: int | None = None, max_plan_reuse_steps: int = 1,
                 provision_headroom: float = 0.0) -> None:
        if max_plan_reuse_steps < 0:
            raise ValueError(f"max_plan_reuse_steps: {max_plan_reuse_steps}; valid: 0 … horizon − 1")
        self.headroom = _check_headroom(provision_headroom)
        self.mpc, self.fallback, self.name = mpc, fallback, name
        self.episode_steps = episode_steps
        self.max_plan_reuse_steps = int(max_plan_reuse_steps)
        self._t = 0
        self.events: list[FallbackEvent] = []
        self.results: list[MPCResult] = []
        self._plan: Plan | None = None
        self._age = 0

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, object]]:
        """What a resumed run needs to decide exactly as this one would (plan, fallback age, events,
        warm start) as saved-state arrays and metadata (``control.saved_state``, no pickle)."""
        plan_arrays, plan_meta = saved_state.pack("plan", [self._plan] if self._plan is not None else [])
        event_arrays, event_meta = saved_state.pack("events", list(self.events))
        warm_arrays, warm_meta = saved_state.warm_to_arrays("warm", self.mpc.warm_start())
        meta = {"age": self._age, "t": self._t, "plan": plan_meta, "events": event_meta, "warm": warm_meta}
        return plan_arrays | event_arrays | warm_arrays, meta

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        """Continue from ``snapshot()``'s result.

        Raises:
            control.saved_state.SavedStateError: the snapshot is incomplete or of another layout.
        """
        try:
            plan_meta, event_meta, warm_meta = meta["plan"], meta["events"], meta["warm"]
            age, t = int(meta["age"]), int(meta["t"])  # type: ignore[call-overload]
        except (KeyError, TypeError, ValueError) as exc:
            raise saved_state.SavedStateError(f"controller snapshot: unreadable ({exc!r:.120})") from None
        plans = saved_state.unpack("plan", arrays, plan_meta, Plan)  # type: ignore[arg-type]
        events = saved_state.unpack("events", arrays, event_meta, _event_types())  # type: ignore[arg-type]
        warm = saved_state.warm_from_arrays("warm", arrays, warm_meta)  # type: ignore[arg-type]
        self._plan, self._age, self._t, self.events = (plans[0] if plans else None), age, t, events
        self.mpc.set_warm_start(warm)

    def _solve(self, state: PlantState, forecast: ControlForecast) -> MPCResult:
        end = None if self.episode_steps is None else self.episode_steps - 1 - self._t
        return self.mpc.solve(state, forecast, end_step=end if end is not None and 0 <= end < self.mpc.horizon
                              else None)

    def _floored(self, alloc: Allocation, state: PlantState, forecast: ControlForecast) -> Allocation:
        """The plan's decision with at least the sizing rule's GPUs for its shares, and the backlog
        fill this hour as ``_fill`` decides."""
        floor = provisioned_gpus(self.mpc.plant, alloc.share, state, forecast, self.headroom)
        return Allocation(alloc.share, np.maximum(alloc.gpus, floor), alloc.charge_kw, alloc.discharge_kw,
                          alloc.source, self._fill(forecast))

    def _fill(self, forecast: ControlForecast) -> bool:
        """Whether the dispatcher may fill free room with the backlog this hour: not when
        ``keep_planned_deferral`` holds, the hour's forecast has no spread (the plan's deferral is
        deliberate) and the episode's end is further away than the longest deferrable deadline. Called
        after a solve, which validated ``forecast`` (``certain_groups`` reads its burst level)."""
        plant = self.mpc.plant
        if not self.mpc.policy.keep_planned_deferral or not plant.deferrable.any():
            return True
        left = None if self.episode_steps is None else self.episode_steps - self._t
        if left is not None and left <= int(np.max(plant.deadline_steps[plant.deferrable])):
            return True
        return not bool(certain_groups(plant, forecast).all())   # ``forecast`` as the solve validated it

    def act(self, t: int, state: PlantState, forecast: ControlForecast) -> Allocation:
        self._t = t
        result = self._solve(state, forecast)
        self.results.append(result)
        if result.success and result.plan is not None:
            self._plan, self._age = result.plan, 0
            if result.status != "optimal":
                self.events.append(FallbackEvent(t, result.status, "earlier-stage-plan"))
            return self._floored(result.plan.allocation(0, self.name), state, forecast)
        age = self._age + 1
        if self._plan is not None and age <= self.max_plan_reuse_steps and age < self._plan.horizon:
            self._age = age
            self.events.append(FallbackEvent(t, result.status, f"previous-plan+{age}"))
            return self._floored(self._plan.allocation(age, f"{self.name}:previous-plan"), state, forecast)
        self._plan = None   # too old: the next failure goes to the heuristic as well
        self.events.append(FallbackEvent(t, result.status, f"heuristic:{self.fallback.name}"))
        alloc = self.fallback.act(t, state, forecast)
        return Allocation(alloc.share, alloc.gpus, alloc.charge_kw, alloc.discharge_kw,
                          f"{self.name}:fallback-{self.fallback.name}")


class ShrinkingHorizonMPC(MPCController):
    """MPC whose horizon always ends at the episode end (backlog left there counts as dropped).

    One ``AllocationMPC`` of ``policy`` per remaining length (its ``horizon_steps`` is not read),
    each built once when first needed; ``solver`` and ``hold_steps`` as ``AllocationMPC``'s.
    """

    episode_steps: int   # always known here (the base class allows None)

    def __init__(self, plant: PlantParams, policy: ControlSettings, episode_steps: int, fallback: Controller,
                 name: str = "mpc-shrinking", max_plan_reuse_steps: int = 1, provision_headroom: float = 0.0, *,
                 solver: str | None = None, hold_steps: int = 1) -> None:
        self._built: dict[int, AllocationMPC] = {}
        self.episode_steps, self.policy, self._solver, self._hold_steps = episode_steps, policy, solver, hold_steps
        super().__init__(self._mpc(plant, episode_steps), fallback, name, episode_steps, max_plan_reuse_steps,
                         provision_headroom)

    def _mpc(self, plant: PlantParams, steps: int) -> AllocationMPC:
        if steps not in self._built:
            self._built[steps] = AllocationMPC(plant, self.policy, solver=self._solver, horizon_steps=steps,
                                               hold_steps=self._hold_steps)
        return self._built[steps]

    def act(self, t: int, state: PlantState, forecast: ControlForecast) -> Allocation:
        if not 0 <= t < self.episode_steps:
            raise ValueError(f"ShrinkingHorizonMPC: step {t} outside the episode 0..{self.episode_steps - 1}")
        self.mpc = self._mpc(self.mpc.plant, self.episode_steps - t)
        return super().act(t, state, forecast)


def annual_mean_pue(plant: PlantParams, temp_c: np.ndarray) -> np.ndarray:
    """Each site's mean PUE over a year of hourly temperatures ``(T, S)`` (°C)."""
    return np.asarray(pl.pue(plant, np.asarray(temp_c, dtype=float))).mean(axis=0)


def myopic(plant: PlantParams, policy: ControlSettings, fallback: Controller, episode_steps: int | None = None,
           provision_headroom: float = 0.0, *, solver: str | None = None,
           backlog_value_eur_per_req: float | None = None) -> MPCController:
    """The one-step optimiser (H = 1) with the MPC's objective and rules (``policy``; its
    ``horizon_steps`` is not read) and sizing floor.

    It cannot see later prices, so a deferred request is valued at half the drop penalty (None;
    else ``backlog_value_eur_per_req``): it serves every arrival it can in its hour and defers
    only what capacity (or a deadline) forces. Its one-step plans cannot be reused: a failed solve
    goes straight to ``fallback``.
    """
    if backlog_value_eur_per_req is None:
        backlog_value_eur_per_req = 0.5 * plant.penalties.drop_eur_per_request
    mpc = AllocationMPC(plant, policy, solver=solver, horizon_steps=1,
                        backlog_value_eur_per_req=backlog_value_eur_per_req)
    return MPCController(mpc, fallback, "myopic", episode_steps, max_plan_reuse_steps=0,
                         provision_headroom=provision_headroom)


def temperature_unaware(plant: PlantParams, policy: ControlSettings, mean_pue: np.ndarray,
                        fallback: Controller, episode_steps: int | None = None,
                        max_plan_reuse_steps: int = 1, provision_headroom: float = 0.0, *,
                        solver: str | None = None) -> MPCController:
    """The MPC of ``policy`` planning with each site's annual mean PUE instead of PUE(temperature)."""
    mpc = AllocationMPC(plant, policy, solver=solver, fixed_pue=mean_pue)
    return MPCController(mpc, fallback, "mpc-temperature-unaware", episode_steps, max_plan_reuse_steps,
                         provision_headroom)
