"""Where requests may run: the scenario's routing policy as plant masks (DESIGN.md §2b).

Two rules, both from the config: a region's ``allowed_sites`` (data residency: e.g. EU-only, or a
national rule such as Stockholm → SE) and a class's ``avoid_sites``; entries are site names or
country codes. A disallowed (region, pool, class) pair gets no LP variable (``PlantParams.allowed``),
so neither the MPC, the dispatcher's spill nor any fallback heuristic can send a request there. A
policy that leaves a stream with load and no pool is a config error naming the stream.
"""

from __future__ import annotations

import numpy as np

from control.plant import PlantParams
from forecast.scenario import Scenario
from forecast.schema import ConfigError

__all__ = ["check_every_stream_has_a_pool", "policy_masks", "policy_lines"]


def policy_masks(scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """``residency_ok`` ``(R, S)`` and ``class_site_ok`` ``(S, K)`` of ``PlantParams``."""
    S = len(scenario.sites)
    residency = np.ones((len(scenario.regions), S), dtype=bool)
    for r, region in enumerate(scenario.regions):
        if region.allowed_sites:
            residency[r] = False
            residency[r, list(scenario.sites_matching(region.allowed_sites,
                                                      f"regions.{region.name}.allowed_sites"))] = True
    class_ok = np.ones((S, len(scenario.classes)), dtype=bool)
    for k, cls in enumerate(scenario.classes):
        class_ok[list(scenario.sites_matching(cls.avoid_sites, f"classes.{cls.name}.avoid_sites")), k] = False
    return residency, class_ok


def check_every_stream_has_a_pool(scenario: Scenario, plant: PlantParams) -> None:
    """Every (region, class) stream with load has an allowed pool.

    Raises:
        ConfigError: names the stream, the sites the policy leaves it and why none serves it.
    """
    region_w = np.array([r.load_share for r in scenario.regions])
    class_w = np.array([k.load_share for k in scenario.classes])
    for r, region in enumerate(scenario.regions):
        for k, cls in enumerate(scenario.classes):
            if region_w[r] <= 0 or class_w[k] <= 0 or plant.allowed[r, :, k].any():
                continue
            assert plant.residency_ok is not None and plant.class_site_ok is not None
            sites = [s for i, s in enumerate(scenario.site_names)
                     if plant.residency_ok[r, i] and plant.class_site_ok[i, k]]
            why = (f"of its sites ({', '.join(sites)}) none has a pool within the {cls.slo_ttft_s:g} s TTFT SLO"
                   if sites else "no site is left")
            raise ConfigError(f"stream {region.name}/{cls.name}: the policy (regions.{region.name}.allowed_sites "
                              f"{list(region.allowed_sites)}, classes.{cls.name}.avoid_sites "
                              f"{list(cls.avoid_sites)}) leaves it no pool: {why}")


def policy_lines(scenario: Scenario) -> list[str]:
    """One line per rule in force (for ``plan`` and ``data summary``); empty when routing is free."""
    lines = [f"{r.name} → {', '.join(r.allowed_sites)} only" for r in scenario.regions if r.allowed_sites]
    lines += [f"{k.name} never at {', '.join(k.avoid_sites)}" for k in scenario.classes if k.avoid_sites]
    return lines
