"""`greenllm data summary` end to end, and the assembled dataset's contract."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from forecast.dataset import build_dataset
from forecast.schema import SIGNALS, DataError
from pipelines.cli import main
from pipelines.config import load_config
from tests.conftest import CONFIGS, ROOT

SITE_SIGNALS = {"price_eur_per_mwh", "carbon_g_per_kwh", "ewif_l_per_kwh", "wind_cf", "solar_cf",
                "temp_c", "wetbulb_c"}


def test_dataset_covers_every_series_hourly(smoke_data, smoke_cfg):
    sig = smoke_data.signals
    span = pd.date_range("2018-01-01", periods=8760, freq="1h", tz="UTC")
    for site in smoke_cfg.scenario.site_names:
        assert set(sig.loc[sig["site"] == site, "signal"]) == SITE_SIGNALS
    assert set(sig.loc[sig["signal"] == "load_req_per_s", "site"]) == set(smoke_cfg.scenario.load_series)
    for (_, _), g in sig.groupby(["site", "signal"]):
        assert len(g) == 8760 and (g["ts"].to_numpy() == span.to_numpy()).all()
    assert sig["value"].notna().all()
    for name, spec in SIGNALS.items():
        v = sig.loc[sig["signal"] == name, "value"]
        assert v.between(spec.lo, spec.hi).all(), name
    wb = smoke_data.wide("wetbulb_c")
    assert (wb <= smoke_data.wide("temp_c") + 1e-9).all().all()
    prov = smoke_data.provenance
    assert len(prov) == 3 * 7 + 6 and prov["source"].str.len().gt(0).all()
    assert prov.loc[(prov.site == "FR") & (prov.signal == "carbon_g_per_kwh"), "filled_h"].item() == 5


def test_user_data_replaces_a_series(smoke_cfg, tmp_path):
    ts = pd.date_range("2018-01-01", periods=8760, freq="1h", tz="UTC")
    user = pd.DataFrame({"site": "FR", "ts": ts.strftime("%Y-%m-%dT%H:%M:%S%z"), "signal": "price_eur_per_mwh",
                         "value": 10.0 + np.arange(8760) % 24})
    user = user.drop(index=[100, 101])            # a 2-h gap: filled, counted
    path = tmp_path / "mine.csv"
    user.to_csv(path, index=False)
    cfg = load_config(CONFIGS / "smoke.yaml", [f"data.user_data={path}"])
    data = build_dataset(cfg.scenario)
    fr = data.wide("price_eur_per_mwh")["FR"]
    assert fr.iloc[0] == 10.0 and fr.iloc[23] == 33.0
    row = data.provenance.query("site == 'FR' and signal == 'price_eur_per_mwh'").iloc[0]
    assert row["source"] == f"user:{path}" and row["filled_h"] == 2
    # other series untouched
    assert data.wide("price_eur_per_mwh")["DE"].mean() == pytest.approx(44.47, abs=0.05)


def test_user_data_for_unknown_site_is_an_error(smoke_cfg, tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"site": ["XX"], "ts": ["2018-01-01T00:00:00+00:00"], "signal": ["temp_c"],
                  "value": [1.0]}).to_csv(path, index=False)
    cfg = load_config(CONFIGS / "smoke.yaml", [f"data.user_data={path}"])
    with pytest.raises(DataError, match=r"site\(s\) \['XX'\] are not in scenario 'smoke'"):
        build_dataset(cfg.scenario)


def test_cli_summary_smoke(tmp_path, capsys):
    rc = main(["data", "summary", str(CONFIGS / "smoke.yaml"), "--plots", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Per site (grid, weather, on-site renewables)" in out and "Per user region and class" in out
    assert "Paris/chat" in out and "Berlin/batch" in out and "resampled" in out
    assert "fleet scale (an assumption): load of tier m-large × 1 (sizing.target_datacentre_gpus = 0" in out
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == sorted(f"{s}.png" for s in SITE_SIGNALS | {"load_req_per_s"})
    assert all((tmp_path / "plots" / p).stat().st_size > 10_000 for p in pngs)


def test_cli_reports_bad_config_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "data", "summary", str(CONFIGS / "smoke.yaml"),
                           "--set", "control.rho_max=7"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "control.rho_max: 7 is out of range [0.05, 1]" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_help_lists_subcommands():
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "data" in proc.stdout


def test_trace_outages_are_runs_of_windows_with_every_client_at_zero():
    """Only windows where the whole tier is at 0 count; consecutive ones form one run (day, local
    start, minutes); one client at 0 while another serves is no outage."""
    from pipelines.data import trace_outages

    t = np.arange(0, 2 * 86400, 600)
    a = np.ones(len(t))
    b = np.ones(len(t))
    a[[6, 7, 8]] = b[[6, 7, 8]] = 0.0               # day 0 01:00–01:30: three windows down
    a[150] = b[150] = 0.0                           # day 1 01:00: one window
    a[20] = 0.0                                     # one client only: not an outage
    windows = pd.DataFrame({"client": np.repeat(["a", "b"], len(t)), "t_seconds": np.tile(t, 2),
                            "rate_req_per_s": np.concatenate([a, b])})
    runs = trace_outages(windows)
    assert runs.to_dict("list") == {"day": [0, 1], "start": ["01:00", "01:00"], "minutes": [30, 10]}
    assert trace_outages(windows.assign(rate_req_per_s=1.0)).empty
