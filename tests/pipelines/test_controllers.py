"""The controller registry (``pipelines._controllers``): one entry per controller, from which the
CLI's names, ``compare``'s runs and the heuristics derive; the resumable-state protocol."""

from __future__ import annotations

import pytest

from control.controllers import CapacityProportional, GreedyController, MPCController
from pipelines import _controllers as registry
from pipelines import _loop_compare, closed_loop
from pipelines.cli import build_parser
from pipelines.loop import prepare

NAMES = ("mpc", "mpc-temperature-unaware", "myopic", "nearest-site", "cheapest-price", "lowest-carbon",
         "capacity-proportional")
HEURISTICS = NAMES[3:]


def _cli_help(command: str, dest: str) -> str:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return next(a for a in sub.choices[command]._actions if a.dest == dest).help


def test_the_names_derive_from_the_registry():
    assert registry.CONTROLLERS == tuple(registry.REGISTRY) == NAMES
    assert registry.HEURISTICS == _loop_compare.HEURISTICS == closed_loop.HEURISTICS == HEURISTICS
    assert _cli_help("simulate", "controller") == " | ".join(NAMES) + " (default: mpc)"


@pytest.mark.parametrize("main", ["learned", "seasonal-naive"])
def test_compare_runs_every_controller_with_its_forecasters_once(main):
    expected = [("mpc", main), ("mpc", "seasonal-naive"), ("mpc", "perfect"), ("mpc-temperature-unaware", main),
                ("myopic", main), *((h, main) for h in HEURISTICS)]
    assert registry.compare_plan(main) == list(dict.fromkeys(expected))
    assert len(registry.compare_plan(main)) == (9 if main == "learned" else 8)


def test_every_entry_makes_its_controller_and_only_the_mpcs_carry_state(smoke_cfg, smoke_data):
    s = prepare(smoke_cfg, "primary", 2, data=smoke_data)
    made = {name: registry.make_controller(name, s) for name in NAMES}
    assert all(isinstance(made[n], MPCController) for n in NAMES[:3])
    assert all(isinstance(made[n], GreedyController) for n in NAMES[3:6])
    assert isinstance(made["capacity-proportional"], CapacityProportional)
    assert {n for n, c in made.items() if isinstance(c, registry.Resumable)} == set(NAMES[:3])
    assert all(registry.controller_state(made[n]) is None for n in HEURISTICS)
    for name in HEURISTICS:   # nothing to restore: a no-op, whatever the checkpoint holds
        registry.restore_state(made[name], registry.controller_state(made["mpc"]))
    with pytest.raises(ValueError, match="controller: 'round-robin'; valid: mpc, .*, capacity-proportional$"):
        registry.make_controller("round-robin", s)


def test_a_controller_state_restores_into_a_fresh_controller(smoke_cfg, smoke_data):
    s = prepare(smoke_cfg, "primary", 2, data=smoke_data)
    first, second = registry.make_controller("mpc", s), registry.make_controller("mpc", s)
    first._age, first._t = 1, 1
    registry.restore_state(second, registry.controller_state(first))
    assert (second._age, second._t) == (1, 1)
