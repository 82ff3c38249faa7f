"""The MPC's policy is the config's ``control:`` section, with its defaults in one place: the
shipped ``configs/default.yaml`` (issue #15)."""

from __future__ import annotations

import dataclasses

from control.params import ControlSettings


def test_the_default_policy_is_the_shipped_configs_control_section(default_cfg):
    assert default_cfg.control == ControlSettings()
    raw = default_cfg.raw["control"]
    for f in dataclasses.fields(ControlSettings):
        if f.name in raw:   # the YAML's values as written, not only as loaded
            expected = tuple(raw[f.name]) if f.name == "order" else raw[f.name]
            assert getattr(ControlSettings(), f.name) == expected, f.name
