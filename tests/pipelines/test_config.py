"""Config loading: strict keys, types and ranges, overrides, extends."""

from __future__ import annotations

import pytest
import yaml

from forecast.scenario import ConfigError
from pipelines.config import apply_overrides, load_config
from tests.conftest import CONFIGS


def test_default_scenario_shape(default_cfg):
    sc = default_cfg.scenario
    assert len(sc.sites) == 12 and len(sc.regions) == 8 and len(sc.classes) == 3
    assert sc.site_names == ("DE", "AT", "DK1", "DK2", "SE4", "FR", "IT-N", "NL", "CH", "SI", "CZ", "HU")
    assert sc.class_names == ("chat", "code", "batch")
    assert len(sc.load_series) == 24
    assert default_cfg.control.horizon_steps == 24 and default_cfg.control.rho_max == 0.8
    assert default_cfg.penalties.drop_eur_per_request == 0.05
    kinds = {g.name: g.kind for g in default_cfg.hardware.gpus}
    assert kinds == {"h100": "datacentre", "a100": "datacentre", "rtx2000ada": "edge", "jetson_orin_nx": "edge"}
    assert all(g.source for g in default_cfg.hardware.gpus)


def test_smoke_extends_default(smoke_cfg, default_cfg):
    assert smoke_cfg.scenario.site_names == ("DE", "FR", "SI")
    assert smoke_cfg.scenario.region_names == ("Paris", "Berlin")
    assert smoke_cfg.penalties == default_cfg.penalties
    assert smoke_cfg.scenario.classes == default_cfg.scenario.classes


def _write(tmp_path, mutate):
    raw = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
    mutate(raw)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    (tmp_path / "default.yaml").write_text((CONFIGS / "default.yaml").read_text())
    (tmp_path / "hardware.yaml").write_text((CONFIGS / "hardware.yaml").read_text())
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.update(colour="green"), "unknown top-level key(s) ['colour']"),
    (lambda r: r["sites"][0].update(lat_deg=95.0), "[DE].lat_deg: 95.0 is out of range [-90, 90]"),
    (lambda r: r["sites"][1].update(pools="a100"), "[FR].pools: expected a list"),
    (lambda r: r["sites"][0].update(flavour=1), "unknown key(s) ['flavour']"),
    (lambda r: r["regions"][0].update(tz="Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
    (lambda r: r["regions"][0].pop("lat_deg"), "[Paris].lat_deg: missing"),
    (lambda r: r.update(control={"rho_max": 1.5}), "control.rho_max: 1.5 is out of range [0.05, 1]"),
    (lambda r: r.update(control={"horizon_steps": 2.5}), "control.horizon_steps: expected an integer"),
    (lambda r: r.update(control={"objective": "fastest"}), "control.objective: 'fastest' is not one of"),
    (lambda r: r.update(control={"order": ["cost", "cost", "delay"]}), "distinct stages among cost"),
    (lambda r: r.update(data={"max_gap_h": True}), "data.max_gap_h: expected an integer"),
    (lambda r: r["sites"][0].update(pools=["tpu"]), "unknown GPU type 'tpu'"),
    (lambda r: r.update(classes=[{"name": "b", "tokens": "conv", "slo_ttft_s": 60.0, "deferrable": True,
                                   "deadline_h": 0, "load_share": 1.0}]), "a deferrable class needs a deadline"),
    (lambda r: r["sites"].append(dict(r["sites"][0])), "sites: duplicate names ['DE']"),
    (lambda r: r.update(control={"load_quantile": 0.7}),
     "control.load_quantile: 0.7 is not a quantile the forecasters produce; valid: 0.5, 0.9"),
    (lambda r: r.update(control={"burst_quantile": 0.6}),
     "control.burst_quantile: 0.6 is below control.load_quantile 0.9; valid: 0.9 … 0.9999"),
    (lambda r: r.update(control={"horizon_steps": 30}),
     "control.horizon_steps: 30 steps of 1.0 h need 30 h of forecasts, forecast.horizon_steps is 24; valid: 1 … 24"),
])
def test_bad_config_names_key_and_range(tmp_path, mutate, message):
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_set_overrides_by_name_index_and_yaml_value():
    cfg = load_config(CONFIGS / "smoke.yaml", ["sites.FR.water_budget_l_per_day=123", "regions.0.load_share=0.25",
                                                "control.order=[carbon, cost, delay]", "data.max_gap_h=3"])
    assert cfg.scenario.sites[1].water_budget_l_per_day == 123.0
    assert cfg.scenario.regions[0].load_share == 0.25
    assert cfg.control.order == ("carbon", "cost", "delay")
    assert cfg.scenario.data.max_gap_h == 3


def test_set_override_errors():
    with pytest.raises(ConfigError, match="no list item named 'XX'"):
        apply_overrides({"sites": [{"name": "DE"}]}, ["sites.XX.lat_deg=1"])
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_overrides({}, ["control.rho_max"])
    with pytest.raises(ConfigError, match="out of range"):
        load_config(CONFIGS / "smoke.yaml", ["control.load_quantile=0.99"])


def test_load_dir_env_override(monkeypatch, default_cfg, tmp_path):
    monkeypatch.setenv("GREENLLM_LOAD_DIR", str(tmp_path))
    monkeypatch.setenv("GREENLLM_LOAD_TIER", "m-mid")
    assert default_cfg.scenario.data.resolved_load_dir() == tmp_path
    assert default_cfg.scenario.data.resolved_load_tier() == "m-mid"
    monkeypatch.setenv("GREENLLM_LOAD_TIER", "xl")
    with pytest.raises(ConfigError, match="valid tiers"):
        default_cfg.scenario.data.resolved_load_tier()
