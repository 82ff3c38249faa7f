"""Every (region, class) stream has load on every tier (fractional client split), the 10-min load,
the 10-min peak that sizes the plant, and the fleet factor (issue 13, items 1 and 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from control.batch_modes import gpu_for
from control.from_data import fleet_dataset, peak_load_req_per_s, plant_for, token_stats
from control.sizing import fleet_load_factor, size_plant
from forecast.dataset import build_dataset
from forecast.scenario import ConfigError
from forecast.schema import DataError, year_span
from forecast.sources import llm_load
from forecast.splits import split_signal
from pipelines.config import load_config
from pipelines.data import _print_fleet
from tests.conftest import CONFIGS
from tests.tolerances import CONSERVATION, EXACT, HAND_CHECKED


def _raw(cfg, tier: str) -> pd.DataFrame:
    return pd.read_csv(cfg.scenario.data.resolved_load_dir() / llm_load.SERVEGEN_FILES[tier])


def _check_every_stream_loaded(load: llm_load.LoadData, scenario, n_clients: int) -> None:
    a = load.assignment
    assert a["client"].nunique() == n_clients
    np.testing.assert_allclose(a.groupby("client")["fraction"].sum(), 1.0, rtol=0, atol=EXACT)
    rec = load.signals[load.signals["flag"] == "recorded"]
    means = rec.groupby("site")["value"].mean().reindex(list(scenario.load_series))
    assert (means > 0).all(), means[~(means > 0)]
    assert list(load.load_10min.columns) == list(scenario.load_series)
    # each stream's share of the tier is region share × class share (the split fills every cell exactly)
    total = means.sum()
    for r in scenario.regions:
        for k in scenario.classes:
            want = r.load_share / sum(x.load_share for x in scenario.regions) * k.load_share
            want /= sum(x.load_share for x in scenario.classes)
            assert means[f"{r.name}/{k.name}"] / total == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("tier", ["m-large", "m-mid"])
def test_every_stream_has_load_on_every_packaged_tier(default_cfg, tier, monkeypatch):
    monkeypatch.setenv("GREENLLM_LOAD_TIER", tier)
    load = llm_load.read_load(default_cfg.scenario, year_span(2018))
    n = _raw(default_cfg, tier)["client"].nunique()
    _check_every_stream_loaded(load, default_cfg.scenario, n)
    # the tier's largest client (m-mid: 52 % of the tier) exceeds the largest stream's share
    # (Berlin/chat: 22 % × 60 %): it is split, and appears with its fractions in the client table
    a = load.assignment
    big = a.loc[a["mean_req_per_s"].idxmax(), "client"]
    parts = a[a["client"] == big]
    assert len(parts) > 1
    cl = load.clients[load.clients["client"] == big]
    assert set(zip(cl["region"], cl["class"], strict=True)) == set(zip(parts["region"], parts["class"], strict=True))


@pytest.fixture()
def five_clients(tmp_path, default_cfg):
    """A tier with fewer clients than streams: the 5 largest clients of m-mid, as a load folder."""
    src = default_cfg.scenario.data.resolved_load_dir()
    raw = _raw(default_cfg, "m-mid")
    keep = raw.groupby("client")["rate_req_per_s"].mean().nlargest(5).index
    raw[raw["client"].isin(keep)].to_csv(tmp_path / llm_load.SERVEGEN_FILES["m-mid"], index=False,
                                         compression="gzip")
    for name in llm_load.AZURE_FILES.values():
        (tmp_path / name).symlink_to((src / name).resolve())
    return tmp_path, raw[raw["client"].isin(keep)]


def test_a_tier_with_fewer_clients_than_streams(default_cfg, five_clients, fresh_cache, monkeypatch):
    folder, raw = five_clients
    monkeypatch.setenv("GREENLLM_LOAD_DIR", str(folder))
    monkeypatch.setenv("GREENLLM_LOAD_TIER", "m-mid")
    sc = default_cfg.scenario
    load = llm_load.read_load(sc, year_span(2018))
    assert len(sc.load_series) == 24
    _check_every_stream_loaded(load, sc, 5)
    # on its recorded days every stream's 10-min series is Σ fraction × the raw client windows
    windows = raw.pivot(index="t_seconds", columns="client", values="rate_req_per_s")
    day0 = pd.Timestamp(sc.data.load_day0_local)
    for r in sc.regions:
        start = day0.tz_localize(r.tz).tz_convert("UTC")
        rec = load.load_10min.loc[start:start + pd.Timedelta(days=14) - pd.Timedelta(minutes=10)]
        for k in sc.class_names:
            parts = load.assignment.query("region == @r.name and `class` == @k").set_index("client")["fraction"]
            expected = windows[parts.index].to_numpy() @ parts.to_numpy()
            np.testing.assert_allclose(rec[f"{r.name}/{k}"].to_numpy(), expected, rtol=CONSERVATION, atol=1e-12)


def test_hourly_load_is_the_mean_of_its_six_10_min_values(smoke_data, smoke_cfg):
    streams = list(smoke_cfg.scenario.load_series)
    ten = smoke_data.load_10min
    assert ten.index.tz is not None and str(ten.index.tz) == "UTC"
    assert len(ten) == 6 * 8760 and ten.index[0] == pd.Timestamp("2018-01-01T00:00Z")
    assert (np.diff(ten.index.asi8) == np.diff(ten.index.asi8)[0]).all()
    assert ten.index[1] - ten.index[0] == pd.Timedelta(minutes=10)
    assert list(ten.columns) == streams
    hourly = smoke_data.wide("load_req_per_s")[streams].to_numpy()
    six = ten.to_numpy().reshape(8760, 6, len(streams))
    np.testing.assert_allclose(six.mean(axis=1), hourly, rtol=EXACT, atol=0)
    assert (six.std(axis=1) > 0).mean() > 0.5          # real 10-min variation, resampled days included


def test_the_10_min_peak_sizes_the_plant(smoke_cfg, smoke_data):
    sc = smoke_cfg.scenario
    raw = _raw(smoke_cfg, "m-large")
    # by hand: smoke's regions (Paris, Berlin) share one UTC offset in December, so the streams' total
    # at a UTC 10-min window is the tier's total (Σ over clients) at that local window
    tier_peak = raw.groupby("t_seconds")["rate_req_per_s"].sum().max()
    peak = peak_load_req_per_s(smoke_data, sc.region_names, sc.class_names)
    assert peak.sum() == pytest.approx(tier_peak, rel=HAND_CHECKED)
    load = smoke_data.signals.query("signal == 'load_req_per_s' and flag == 'recorded'")
    hourly_peak = load.groupby("ts")["value"].sum().max()
    assert sc.sizing.capacity_margin * hourly_peak < peak.sum()   # the hourly peak would undersize
    plant = plant_for(smoke_cfg, smoke_data)
    weights = np.array([s.capacity_weight for s in sc.sites]) / sum(s.capacity_weight for s in sc.sites)
    need = weights[plant.pool_site] * (plant.gpu_s_per_req @ peak)
    assert (plant.gpus_max * plant.rho_max >= sc.sizing.capacity_margin * need - 1e-9).all()


def _kinds(cfg, plant) -> np.ndarray:
    return np.array([gpu_for(cfg.hardware, g).kind for g in plant.pool_gpu])


def test_fleet_dataset_scales_every_load_series_and_nothing_else(smoke_data, capsys):
    cfg = load_config(CONFIGS / "smoke.yaml", ["sizing.target_datacentre_gpus=300"])
    fleet = fleet_dataset(cfg)
    f = fleet.load_factor
    assert f > 1 and smoke_data.load_factor == 1.0
    np.testing.assert_allclose(fleet.wide("load_req_per_s"), f * smoke_data.wide("load_req_per_s"), rtol=EXACT)
    np.testing.assert_allclose(fleet.load_10min, f * smoke_data.load_10min, rtol=EXACT)
    np.testing.assert_allclose(fleet.load.clients["load_req_per_s"], f * smoke_data.load.clients["load_req_per_s"],
                               rtol=EXACT)
    pd.testing.assert_frame_equal(fleet.wide("price_eur_per_mwh"), smoke_data.wide("price_eur_per_mwh"))
    plant, small = plant_for(cfg, fleet), plant_for(cfg, smoke_data)
    dc = _kinds(cfg, plant) == "datacentre"
    assert abs(plant.gpus_max[dc].sum() - 300) <= 0.01 * 300
    assert small.gpus_max[dc].sum() < 150
    np.testing.assert_array_equal(plant.gpus_max[~dc], small.gpus_max[~dc])   # edge devices unchanged
    assert (plant.gpus_max[~dc] > 0).all()
    _print_fleet(cfg, fleet)                    # data summary's assumption line
    peak = peak_load_req_per_s(smoke_data, cfg.scenario.region_names, cfg.scenario.class_names).sum()
    line = capsys.readouterr().out
    assert f"tier m-large × {f:.4g} (so that the plant installs sizing.target_datacentre_gpus = 300" in line
    assert f"result: {int(plant.gpus_max[dc].sum())} datacentre GPUs" in line
    assert f"{int(small.gpus_max[~dc].sum())} rtx2000ada" in line
    assert f"recorded 10-min peak {peak:,.1f} req/s unscaled, {f * peak:,.1f} req/s scaled" in line


@pytest.mark.parametrize("tier", ["m-large", "m-mid"])
def test_default_fleet_has_the_target_datacentre_gpus(default_cfg, tier, monkeypatch):
    monkeypatch.setenv("GREENLLM_LOAD_TIER", tier)
    target = default_cfg.scenario.sizing.target_datacentre_gpus
    assert target == 1000
    fleet = fleet_dataset(default_cfg)
    plant = plant_for(default_cfg, fleet)
    dc = _kinds(default_cfg, plant) == "datacentre"
    assert abs(plant.gpus_max[dc].sum() - target) <= 0.01 * target
    unscaled = plant_for(default_cfg, fleet.with_load_factor(1.0 / fleet.load_factor))
    np.testing.assert_array_equal(plant.gpus_max[~dc], unscaled.gpus_max[~dc])
    assert unscaled.gpus_max[dc].sum() < 0.7 * target


def test_fleet_load_factor_at_zero_and_out_of_reach(smoke_cfg, smoke_data):
    sc = smoke_cfg.scenario
    peak = peak_load_req_per_s(smoke_data, sc.region_names, sc.class_names)
    args = (smoke_cfg.hardware, smoke_cfg.control, smoke_cfg.penalties, peak, token_stats(smoke_data))
    assert sc.sizing.target_datacentre_gpus == 0 and fleet_load_factor(sc, *args) == 1.0
    one = load_config(CONFIGS / "smoke.yaml", ["sizing.target_datacentre_gpus=1"]).scenario
    with pytest.raises(ConfigError, match=r"sizing\.target_datacentre_gpus=1: fewer than the 2 datacentre pools"):
        fleet_load_factor(one, *args)
    for target in (2, 3, 50, 2000):             # reachable: within 1 %, or exact for small targets
        sc_t = load_config(CONFIGS / "smoke.yaml", [f"sizing.target_datacentre_gpus={target}"]).scenario
        f = fleet_load_factor(sc_t, *args)
        dc = np.array([smoke_cfg.hardware.get(g).kind == "datacentre" for g in ("h100", "a100", "rtx2000ada")])
        plant = size_plant(sc_t, args[0], args[1], args[2], f * peak, args[4], edge_peak_load_req_per_s=peak)
        assert abs(plant.gpus_max[dc].sum() - target) <= 0.01 * target, target


def test_an_empty_stream_is_a_data_error_naming_it_and_the_tier():
    cfg = load_config(CONFIGS / "smoke.yaml", ["regions.Paris.load_share=0"])
    with pytest.raises(DataError, match=r"load stream Paris/chat gets no load on tier 'm-large' \(3 such "
                                        r"streams.*regions\.Paris\.load_share × classes\.chat\.load_share"):
        llm_load.read_load(cfg.scenario, year_span(2018))


def test_a_user_load_stream_is_flat_within_the_hour_and_may_not_be_empty(smoke_data, tmp_path):
    ts = pd.date_range("2018-01-01", periods=8760, freq="1h", tz="UTC")
    level = smoke_data.wide("load_req_per_s")["Berlin/code"].to_numpy()
    for name, values in (("mine.csv", level * (1 + 0.1 * (np.arange(8760) % 3))), ("zero.csv", 0 * level)):
        pd.DataFrame({"site": "Berlin/code", "ts": ts.strftime("%Y-%m-%dT%H:%M:%S%z"), "signal": "load_req_per_s",
                      "value": values}).to_csv(tmp_path / name, index=False)
    data = build_dataset(load_config(CONFIGS / "smoke.yaml", [f"data.user_data={tmp_path}/mine.csv"]).scenario)
    six = data.load_10min["Berlin/code"].to_numpy().reshape(8760, 6)
    np.testing.assert_allclose(six, np.repeat(data.wide("load_req_per_s")["Berlin/code"].to_numpy()[:, None], 6, 1),
                               rtol=EXACT)
    pd.testing.assert_series_equal(data.load_10min["Paris/chat"], smoke_data.load_10min["Paris/chat"])
    with pytest.raises(DataError, match="load stream Berlin/code has no load on tier 'm-large'"):
        build_dataset(load_config(CONFIGS / "smoke.yaml", [f"data.user_data={tmp_path}/zero.csv"]).scenario)


def test_a_split_client_trains_as_one_series_per_region_on_its_calendar(default_cfg):
    data = build_dataset(default_cfg.scenario)
    split = split_signal(data, default_cfg.scenario, "load_req_per_s", default_cfg.forecast)
    clients = [c for c in split.full.columns if c.startswith("client:")]
    across = data.load.assignment.groupby("client")["region"].nunique()
    assert (across > 1).any()                   # m-large has clients split over regions
    # each series covers exactly the recorded days of one region (a sum over regions would not)
    assert (split.full[clients].notna().sum() == 14 * 24).all()
    assert {f"client:{c}@{r}" for c in across.index[across > 1]
            for r in data.load.assignment.query("client == @c")["region"]} <= set(clients)
    # the streams are Σ of their clients' parts
    total_clients = split.full[clients].sum(axis=1, min_count=1)
    total_streams = split.full[list(split.outputs)].sum(axis=1, min_count=1)
    pd.testing.assert_series_equal(total_clients, total_streams, check_names=False, rtol=CONSERVATION)
