"""The run's tables show what the dispatcher did: spill per step and per pool, deferrable
overflow, peak utilisation (``pipelines._loop_report``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from control.realised import step
from control.simulate import EpisodeResult
from control.state import Allocation, PlantState
from pipelines._loop_report import dispatch_columns, flow_frame, kpis
from tests.control.cases import flat_forecast, tiny_plant


def test_the_tables_show_what_was_spilled_where():
    # one region, chat on site 0 (4 GPUs, 3.2 req/s at rho_max 0.8) routed 6 req/s: 2.8 req/s spill
    # to site 1 in hour 0; hour 1 has room (3 req/s)
    plant = tiny_plant(n_sites=2, gpus=10.0, rho_max=0.8)
    fc = flat_forecast(plant, 2, load=np.array([6.0, 3.0])[:, None, None])
    state = PlantState.initial(plant, water_day=int(fc.day_index[0]))
    decision = Allocation(np.array([[[1.0], [0.0]]]), np.array([4.0, 10.0]), np.zeros(2), np.zeros(2))
    records = []
    for t in range(2):
        state, rec = step(plant, state, decision, fc.window(t, 1))
        records.append(rec)
    ep = EpisodeResult(tuple(records), ("test", "test"), state, 0.0, 1.0)
    cols = dispatch_columns(plant, ep)
    assert cols["spilled_req"] == pytest.approx([2.8 * 3600, 0.0])
    assert cols["spilled_to"] == ["S1/h100:10080", ""]
    assert cols["deferred_overflow_req"] == [0.0, 0.0]
    assert cols["peak_utilisation"] == pytest.approx([0.8, 0.75])
    flows = flow_frame(plant, ep, pd.Timestamp("2018-12-14", tz="UTC"))
    spilled = flows.set_index(["ts", "pool"])["spilled_req"]
    assert spilled.iloc[0] == 0.0 and spilled.iloc[1] == pytest.approx(10080.0) and spilled.iloc[2] == 0.0
    assert kpis(plant, ep, None)["spilled_req"] == pytest.approx(10080.0)
