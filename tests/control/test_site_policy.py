"""The routing policy in config (``regions.X.allowed_sites``, ``classes.Y.avoid_sites``;
``control.site_policy``): the plant's allowed pairs, no request ever served outside them — by the
MPC, by the dispatcher's spill or by a heuristic — and config errors that name the entry or stream."""

from __future__ import annotations

import numpy as np
import pytest

from control.from_data import plant_for
from pipelines.closed_loop import prepare, run_loop
from pipelines.config import ConfigError, load_config

SMOKE = "configs/smoke.yaml"


def _site_pools(plant, site: str) -> np.ndarray:
    return np.array([plant.site_names[s] == site for s in plant.pool_site])


def test_a_region_restricted_to_a_country_gets_pairs_there_only(smoke_data):
    cfg = load_config(SMOKE, ["regions.Paris.allowed_sites=[FR]", "classes.code.avoid_sites=[SI]"])
    plant = plant_for(cfg, smoke_data)
    paris, berlin = plant.region_names.index("Paris"), plant.region_names.index("Berlin")
    fr = _site_pools(plant, "FR")
    assert plant.allowed[paris][~fr].sum() == 0 and plant.allowed[paris][fr].any()
    free = plant_for(load_config(SMOKE), smoke_data)
    np.testing.assert_array_equal(plant.allowed[berlin][:, plant.class_names.index("chat")],
                                  free.allowed[berlin][:, free.class_names.index("chat")])
    code = plant.class_names.index("code")
    assert not plant.allowed[:, _site_pools(plant, "SI"), code].any()


@pytest.mark.parametrize("controller", ["nearest-site", "capacity-proportional", "mpc"])   # the fallback too
def test_no_request_is_served_outside_its_allowed_sites_even_by_spill(smoke_data, controller):
    """Paris may use FR only, whose pool is the smaller: at the peak its overflow would spill to DE
    under free routing; under the policy it waits or drops, never leaves FR."""
    cfg = load_config(SMOKE, ["regions.Paris.allowed_sites=[FR]"])
    s = prepare(cfg, "primary", 12, data=smoke_data)
    out = run_loop(s, controller, "seasonal-naive", None, show_progress=False)
    paris = s.plant.region_names.index("Paris")
    outside = ~_site_pools(s.plant, "FR")
    for rec in out.episode.records:    # every step, spill included
        assert rec.served_req[paris][outside].sum() == 0.0
    assert sum(r.served_req[paris].sum() for r in out.episode.records) > 0


def test_an_unknown_site_or_country_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError, match=r"regions\.Paris\.allowed_sites: 'XX' is neither a site nor a country "
                                          r"of this scenario \(valid: DE, FR, SI\)"):
        load_config(SMOKE, ["regions.Paris.allowed_sites=[XX]"])


def test_a_policy_that_leaves_a_stream_no_pool_is_a_config_error_naming_it(smoke_data):
    cfg = load_config(SMOKE, ["regions.Paris.allowed_sites=[DE]", "classes.chat.avoid_sites=[DE]"])
    with pytest.raises(ConfigError, match=r"stream Paris/chat: the policy .* leaves it no pool: no site is left"):
        plant_for(cfg, smoke_data)
