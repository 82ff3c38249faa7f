"""Closed loop: a controller acts, the plant steps with realised data; and the hindsight optimum."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from control.controllers import Controller
from control.inputs import ControlForecast
from control.mpc import AllocationMPC, MPCResult
from control.plant import PlantParams
from control.realised import step
from control.state import PlantState, StepRecord

__all__ = ["EpisodeResult", "hindsight_optimum", "perfect_forecaster", "run_episode"]

Forecaster = Callable[[int], ControlForecast]


@dataclass(frozen=True, eq=False)
class EpisodeResult:
    """A realised episode.

    Attributes:
        records: one record per step.
        sources: who made each step's decision (controller or fallback).
        final_state: the state after the last step.
        leftover_backlog_req: backlog at the episode end, counted as dropped (end rule).
        drop_eur_per_request: the drop penalty applied to it.
    """

    records: tuple[StepRecord, ...]
    sources: tuple[str, ...]
    final_state: PlantState
    leftover_backlog_req: float
    drop_eur_per_request: float

    @property
    def cost_eur(self) -> float:
        """Energy cost + penalties as realised, with leftover backlog charged as dropped."""
        return float(sum(r.cost_eur for r in self.records)
                     + self.leftover_backlog_req * self.drop_eur_per_request)

    @property
    def dropped_req(self) -> float:
        return float(sum(r.dropped_req.sum() for r in self.records) + self.leftover_backlog_req)


def perfect_forecaster(realised: ControlForecast, horizon: int) -> Forecaster:
    """Forecasts that read the truth: steps ``t … t + horizon − 1`` (fewer near the data's end)."""
    def forecast(t: int) -> ControlForecast:
        return realised.window(t, min(horizon, realised.horizon - t))
    return forecast


def run_episode(plant: PlantParams, controller: Controller, realised: ControlForecast, steps: int,
                state: PlantState, forecaster: Forecaster | None = None) -> EpisodeResult:
    """Run ``steps`` steps; the episode's end rule charges leftover backlog as dropped.

    Args:
        plant: coefficients.
        controller: decides every step.
        realised: what really happens, at least ``steps`` steps (more for look-ahead).
        steps: episode length.
        state: the initial state.
        forecaster: ``t -> forecast``; default: perfect forecasts over the whole remaining data.
    """
    realised.validate(plant, steps)
    forecaster = forecaster or perfect_forecaster(realised, realised.horizon)
    records, sources = [], []
    for t in range(steps):
        decision = controller.act(t, state, forecaster(t))
        state, record = step(plant, state, decision, realised.window(t, 1))
        records.append(record)
        sources.append(decision.source)
    leftover = float(np.where(plant.deferrable[None, :], state.backlog_req, 0.0).sum())
    return EpisodeResult(tuple(records), tuple(sources), state, leftover,
                         plant.penalties.drop_eur_per_request)


def hindsight_optimum(plant: PlantParams, realised: ControlForecast, steps: int, state: PlantState,
                      **mpc_kwargs: object) -> MPCResult:
    """The whole episode at once with realised data under the plant's rules: the lower bound.

    Continuous GPUs, the same penalties, and the same end rule (backlog left at the end counts as
    dropped). ``stage_values[0]`` of the result is the optimal realised cost ``cost*`` when the
    first stage is ``cost`` (the default).
    """
    exact = realised.window(0, steps)
    mpc = AllocationMPC(plant, steps, **mpc_kwargs)  # type: ignore[arg-type]
    return mpc.solve(state, exact, end_step=steps - 1)
