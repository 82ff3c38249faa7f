"""The closed loop's controllers by name, in one registry (DESIGN.md §5).

``REGISTRY`` maps a name to a ``ControllerEntry``: its factory ``(Setup) -> Controller``, whether
it is a baseline heuristic (``compare``'s ``gap_closed`` is against the best of them) and the
forecasters ``greenllm compare`` runs it with. ``greenllm simulate --controller``'s names,
``compare``'s runs (``compare_plan``) and ``HEURISTICS`` all derive from it: adding a controller
is one entry.

Controllers whose decisions depend on earlier steps (the MPC's plan, fallback age, events and
solver warm start) are ``Resumable``: a checkpoint stores ``controller_state`` and a resumed run
hands it back with ``restore_state`` (``pipelines._checkpoint``).

``control.controllers`` is imported when a controller is made, not with this module: the CLI
reads the names when it builds its parser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from control.controllers import CapacityProportional, Controller
    from pipelines.loop import Setup

__all__ = ["CONTROLLERS", "HEURISTICS", "MAIN", "REGISTRY", "ControllerEntry", "Resumable", "compare_plan",
           "controller_state", "make_controller", "restore_state"]

MAIN = "main"   # in ``ControllerEntry.compare_with``: the comparison's main forecaster
Factory = Callable[["Setup"], "Controller"]


@runtime_checkable
class Resumable(Protocol):
    """A controller that carries state across steps, saved in a checkpoint and restored on resume."""

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, object]]:
        """Its state as saved-state arrays and JSON metadata (``control.saved_state``, no pickle)."""
        ...

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        """Continue from ``snapshot()``'s result (a resumed run then decides as an uninterrupted one)."""
        ...


def controller_state(ctrl: object) -> tuple[dict[str, np.ndarray], dict[str, object]] | None:
    """What a checkpoint keeps of ``ctrl``: its ``snapshot()``, or None when it carries no state."""
    return ctrl.snapshot() if isinstance(ctrl, Resumable) else None


def restore_state(ctrl: object, saved: tuple[dict[str, np.ndarray], dict[str, Any]] | None) -> None:
    """Hand a checkpoint's ``controller_state`` back to ``ctrl`` (nothing to do for a stateless one)."""
    if saved is not None and isinstance(ctrl, Resumable):
        ctrl.restore(*saved)


# ---------------------------------------------------------------------- factories
# Every controller sizes GPUs with the one rule and its headroom (control.provision_headroom); the
# MPCs fall back to capacity-proportional.
def _capacity_proportional(s: Setup) -> CapacityProportional:
    from control.controllers import CapacityProportional

    return CapacityProportional(s.plant, provision_headroom=s.cfg.control.provision_headroom)


def _mpc(s: Setup) -> Controller:
    from control.controllers import MPCController
    from control.mpc import AllocationMPC

    c, fb = s.cfg.control, _capacity_proportional(s)
    return MPCController(AllocationMPC(s.plant, c, sub_steps=s.realised.sub_steps), fb, episode_steps=s.steps,
                         max_plan_reuse_steps=c.max_plan_reuse_steps, provision_headroom=c.provision_headroom)


def _temperature_unaware(s: Setup) -> Controller:
    from control.controllers import annual_mean_pue, temperature_unaware

    c, fb = s.cfg.control, _capacity_proportional(s)
    mean_pue = annual_mean_pue(s.plant, s.data.wide("temp_c")[list(s.plant.site_names)].to_numpy())
    return temperature_unaware(s.plant, c, mean_pue, fb, episode_steps=s.steps,
                               max_plan_reuse_steps=c.max_plan_reuse_steps, provision_headroom=c.provision_headroom)


def _myopic(s: Setup) -> Controller:
    from control.controllers import myopic

    c, fb = s.cfg.control, _capacity_proportional(s)
    return myopic(s.plant, c, fb, episode_steps=s.steps, provision_headroom=c.provision_headroom)


def _greedy(key: Literal["nearest", "price", "carbon"]) -> Factory:
    def make(s: Setup) -> Controller:
        from control.controllers import GreedyController

        return GreedyController(s.plant, key, provision_headroom=s.cfg.control.provision_headroom)
    return make


# ---------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class ControllerEntry:
    """One controller: how to make it, whether it is a heuristic, what ``compare`` runs it with."""

    factory: Factory
    heuristic: bool = False
    compare_with: tuple[str, ...] = (MAIN,)   # forecaster kinds; MAIN: the comparison's main one


REGISTRY: dict[str, ControllerEntry] = {
    "mpc": ControllerEntry(_mpc, compare_with=(MAIN, "seasonal-naive", "perfect")),
    "mpc-temperature-unaware": ControllerEntry(_temperature_unaware),
    "myopic": ControllerEntry(_myopic),
    "nearest-site": ControllerEntry(_greedy("nearest"), heuristic=True),
    "cheapest-price": ControllerEntry(_greedy("price"), heuristic=True),
    "lowest-carbon": ControllerEntry(_greedy("carbon"), heuristic=True),
    "capacity-proportional": ControllerEntry(_capacity_proportional, heuristic=True),
}
CONTROLLERS = tuple(REGISTRY)
HEURISTICS = tuple(name for name, entry in REGISTRY.items() if entry.heuristic)


def make_controller(name: str, s: Setup) -> Controller:
    """A controller by name (see ``CONTROLLERS``), for the run ``s``."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise ValueError(f"controller: {name!r}; valid: {', '.join(CONTROLLERS)}")
    return entry.factory(s)


def compare_plan(main: str) -> list[tuple[str, str]]:
    """(controller, forecaster kind) of every ``greenllm compare`` run, in order and each once;
    ``main``: the main forecaster's kind (``learned`` or ``seasonal-naive``)."""
    runs = [(name, main if kind == MAIN else kind) for name, entry in REGISTRY.items() for kind in entry.compare_with]
    return list(dict.fromkeys(runs))
