"""Plans from the live state (``pipelines.live_state``; ``plan --state``, ``simulate --state-out``):
the JSON round trip, a replay cut and planned onward, the backlog's ages driving the plan, and
errors that name the file and the key."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.cli import main
from pipelines.closed_loop import prepare, run_loop
from pipelines.config import load_config
from pipelines.live_state import read_state, write_state
from pipelines.plan import run_plan

SMOKE = "configs/smoke.yaml"
AT = pd.Timestamp("2018-12-14T10:00Z")


def test_a_replayed_state_survives_the_json_round_trip(smoke_data, tmp_path):
    s = prepare(load_config(SMOKE), "primary", 10, data=smoke_data)
    state = run_loop(s, "mpc", "perfect", show_progress=False).episode.final_state
    back = read_state(write_state(tmp_path / "state.json", s.plant, state, AT), s.plant, AT)
    np.testing.assert_allclose(back.gpus_active, state.gpus_active)
    np.testing.assert_allclose(back.soc_kwh, state.soc_kwh)
    np.testing.assert_allclose(back.water_used_today_l, state.water_used_today_l)
    np.testing.assert_allclose(back.backlog_req, np.where(state.backlog_req > 1e-6, state.backlog_req, 0.0))
    assert back.water_day == state.water_day


def test_simulate_cut_then_plan_onward_from_its_state(store, tmp_path, capsys):
    state = tmp_path / "state.json"
    assert main(["simulate", SMOKE, "--forecaster", "perfect", "--steps", "10", "--state-out", str(state),
                 "--out", str(tmp_path / "sim")]) == 0
    assert "--at 2018-12-14T10:00Z --state" in capsys.readouterr().out
    rc = main(["plan", SMOKE, "--forecaster", "seasonal-naive", "--at", "2018-12-14T10:00Z", "--state", str(state),
               "--out", str(tmp_path / "plan")])
    assert rc == 0
    doc = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert doc["at"] == "2018-12-14T10:00Z" and len(doc["hours"]) == 24
    table = pd.read_csv(tmp_path / "plan" / "plan.csv")
    assert set(table["what"]) >= {"gpus", "grid_kw", "share"}
    assert table[table["what"] == "gpus"]["value"].ge(0).all()


def test_old_backlog_is_served_in_the_hour_before_its_deadline(store, smoke_cfg, tmp_path):
    """800 batch requests of Paris arrived 11 h ago (deadline 12 h, counted from the end of the hour
    of arrival): the plan serves them within its first two hours, when the deadline rule says."""
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"at": "2018-12-14T10:00Z", "backlog": {"Paris/batch": {"11": 800.0}}}))
    out = run_plan(smoke_cfg, "2018-12-14T10:00Z", "seasonal-naive", state_file=path)
    plant = prepare(smoke_cfg, "2018-12-14T10:00Z", 1).plant
    k, r = plant.class_names.index("batch"), plant.region_names.index("Paris")
    assert out["state"].backlog_req[r, k] == 800.0 and out["state"].arrivals_history_req[10, r, k] == 800.0
    served = [plant.dense_pairs(out["plan"].served_req_per_s[t])[r, :, k].sum() * plant.step_s for t in range(3)]
    assert sum(served[:2]) >= 800.0 * (1 - 1e-6)


@pytest.mark.parametrize(("doc", "message"), [
    ({"at": "2018-12-14T10:00Z", "gpus_on": {"XX/h100": 1}}, "gpus_on.XX/h100: unknown name (valid: DE/h100"),
    ({"at": "2018-12-14T10:00Z", "gpus_on": {"DE/h100": 1e9}}, "gpus_on.DE/h100: 1e+09 is out of range [0, "),
    ({"at": "2018-12-14T10:00Z", "water_used_today_l": {"FR": -3}}, "water_used_today_l.FR: -3 is out of range"),
    ({"at": "2018-12-14T10:00Z", "battery_soc_kwh": {"DE": "full"}}, "battery_soc_kwh.DE: 'full' is not a finite"),
    ({"at": "2018-12-14T10:00Z", "backlog": {"Paris/chat": {"1": 5}}}, "backlog.Paris/chat: chat is interactive"),
    ({"at": "2018-12-14T10:00Z", "backlog": {"Paris/batch": {"12": 5}}}, "age out of range: whole hours 1..11"),
    ({"at": "2018-12-14T11:00Z"}, "at: '2018-12-14T11:00Z' is not the planned hour 2018-12-14T10:00Z"),
])
def test_a_bad_state_file_is_an_error_naming_the_file_and_key(smoke_data, smoke_cfg, tmp_path, doc, message):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(doc))
    plant = prepare(smoke_cfg, "primary", 1, data=smoke_data).plant
    with pytest.raises(ValueError, match=str(path)) as exc:
        read_state(path, plant, AT)
    assert message in str(exc.value)


def test_a_state_file_that_is_not_json_names_the_line(smoke_data, smoke_cfg, tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"at": "2018-12-14T10:00Z",\n "gpus_on": {')
    plant = prepare(smoke_cfg, "primary", 1, data=smoke_data).plant
    with pytest.raises(ValueError, match=r"not JSON \(.* at line 2"):
        read_state(path, plant, AT)
