"""`greenllm train` and `greenllm forecast` end to end on the smoke scenario, in a temporary MLflow
store (no network)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.cli import main
from pipelines.config import load_config
from tests.conftest import CONFIGS
from tests.tolerances import ROUNDOFF

pytestmark = pytest.mark.slow  # trains two small models end to end: ≈ 30 s on 2 cores

SET = ["--set", "forecast.signals=[load_req_per_s, temp_c]", "--set", "forecast.num_threads=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    store = tmp_path_factory.mktemp("mlflow")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}/mlflow.db")
    rc = main(["train", str(CONFIGS / "smoke.yaml"), "--no-progress", *SET])
    yield rc, store
    mp.undo()


def test_train_logs_run_metrics_artifacts_and_model(trained, monkeypatch):
    import mlflow

    rc, store = trained
    assert rc == 0
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("greenllm-forecast")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    m = run.data.metrics
    for sig in ("load_req_per_s", "temp_c"):
        assert f"test.{sig}.skill" in m
        for name in ("learned", "persistence", "seasonal_naive_24", "seasonal_naive_168", "oracle"):
            assert f"test.{sig}.{name}.mae" in m and f"test.{sig}.{name}.coverage_80" in m
        assert len(client.get_metric_history(run.info.run_id, f"{sig}.val_loss")) >= 1
        assert len(client.get_metric_history(run.info.run_id, f"test_h.{sig}.learned.mae")) == 24
    assert m["test.temp_c.oracle.mae"] == 0.0
    assert run.data.params["forecast.architecture"] == "mlp"
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"fan_charts", "config", "results"} <= arts
    pngs = [a.path for a in client.list_artifacts(run.info.run_id, "fan_charts")]
    assert "fan_charts/temp_c.png" in pngs and "fan_charts/load_req_per_s.png" in pngs
    versions = client.search_model_versions(f"name='{_name()}'")
    assert [str(v.version) for v in versions] == ["1"] and versions[0].run_id == run.info.run_id
    assert (store / "artifacts").is_dir()  # artifacts beside the database, not in the repo
    # one registered model per scenario and tier, the first version champion, the decision tagged
    v1 = client.get_model_version_by_alias(_name(), "champion")
    assert str(v1.version) == "1" and "no champion yet" in v1.tags["champion_decision"]
    assert {"train_end.load_req_per_s", "train_end.temp_c"} <= set(v1.tags)
    # the UI's model-training view, the training data as dataset inputs with digests, the commit
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    inputs = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"load_req_per_s-train", "temp_c-train"} and all(inputs.values())
    assert run.data.tags["git_commit"]


def _name() -> str:
    from pipelines._tracking_registry import model_name

    cfg = load_config(CONFIGS / "smoke.yaml")
    return model_name(cfg.scenario.name, cfg.scenario.data.resolved_load_tier())


def test_pyfunc_model_round_trip_equals_the_native_forecast(trained, monkeypatch, smoke_cfg, smoke_data):
    """``mlflow.pyfunc.load_model("models:/…@champion").predict(history)`` is the bundle's own forecast."""
    import mlflow

    from forecast.features import long_history
    from forecast.models import ForecasterSuite
    from forecast.splits import product_history
    from pipelines._tracking_registry import resolve_model

    _, store = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    uri = f"models:/{_name()}@champion"
    model = mlflow.pyfunc.load_model(uri)
    assert model.metadata.signature is not None and model.metadata.signature.params is not None
    hist = product_history(smoke_data, smoke_cfg.scenario)
    t0 = pd.Timestamp("2018-12-14T00:00Z")
    recent = {s: w[(w.index < t0) & (w.index >= t0 - pd.Timedelta(days=21))] for s, w in hist.items()}
    got = model.predict(long_history(recent), params={"t0": "2018-12-14T00:00Z", "horizon": 24})
    native = ForecasterSuite.load(resolve_model(uri)).predict(hist, t0, 24).long()
    assert len(got) == len(native) and (got["signal"].to_numpy() == native["signal"].to_numpy()).all()
    np.testing.assert_allclose(got["value"].to_numpy(), native["value"].to_numpy(), rtol=0, atol=ROUNDOFF)


def test_champion_moves_only_on_better_skill(trained, monkeypatch, smoke_cfg, smoke_data):
    """The trained models against persistence forecasts as the other version, each way round: the
    version with the lower mean skill on test data after both training ends wins, whichever is
    champion (on smoke's tiny training set persistence is the better one)."""
    from forecast.baselines import baselines_for
    from forecast.models import ForecasterSuite
    from forecast.splits import split_signal
    from pipelines._champion import decide, train_end_tags
    from pipelines._tracking_registry import resolve_model

    _, store = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}/mlflow.db")
    cfg = load_config(CONFIGS / "smoke.yaml", [s for s in SET if s != "--set"])
    learned = ForecasterSuite.load(resolve_model(f"models:/{_name()}@champion")).models
    signals = ("load_req_per_s", "temp_c")
    splits = {s: split_signal(smoke_data, cfg.scenario, s, cfg.forecast) for s in signals}
    persist = {s: baselines_for(s)["persistence"].fit(splits[s].upto(0)[list(splits[s].outputs)]) for s in signals}
    learned = {s: learned[s] for s in signals}
    tags, h, stride = train_end_tags(splits), cfg.forecast.horizon_steps, cfg.forecast.eval_stride_h
    a = decide(persist, learned, "1", tags, splits, h, stride)    # persistence would replace learned
    b = decide(learned, persist, "1", tags, splits, h, stride)    # learned would replace persistence
    assert a.origins == b.origins > 0
    assert a.new_skill == b.champion_skill and a.champion_skill == b.new_skill != a.new_skill
    assert a.promote == (a.new_skill < a.champion_skill) and b.promote == (not a.promote)
    assert {"kept v1", "promoted over v1"} == {d.text.split(":")[0] for d in (a, b)}


def test_registered_model_reloads_and_predicts_identically(trained, monkeypatch, smoke_cfg, smoke_data):
    from forecast.models import ForecasterSuite
    from forecast.splits import product_history
    from pipelines._tracking_registry import resolve_model

    _, store = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}/mlflow.db")
    folder = resolve_model(f"models:/{_name()}/latest")
    spec = json.loads((folder / "spec.json").read_text())
    assert [m["signal"] for m in spec["models"]] == ["load_req_per_s", "temp_c"]
    a, b = ForecasterSuite.load(folder), ForecasterSuite.load(folder)
    hist = product_history(smoke_data, smoke_cfg.scenario)
    t0 = pd.Timestamp("2018-12-14T00:00Z")
    fa, fb = a.predict(hist, t0, 24), b.predict(hist, t0, 24)
    assert set(fa.signals) == {"load_req_per_s", "temp_c", "wetbulb_c"}
    assert fa.series["load_req_per_s"] == smoke_cfg.scenario.load_series
    assert fa.series["temp_c"] == smoke_cfg.scenario.site_names
    for sig in fa.signals:
        np.testing.assert_array_equal(fa.values[sig], fb.values[sig])


def test_forecast_command_prints_and_plots(trained, monkeypatch, tmp_path, capsys):
    _, store = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}/mlflow.db")
    rc = main(["forecast", str(CONFIGS / "smoke.yaml"), "--at", "2018-12-14T00:00Z",
               "--plots", str(tmp_path / "fc"), *SET])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Paris/chat" in out and "wetbulb_c" in out and "12-14 23:00" in out
    assert (tmp_path / "fc" / "forecast_temp_c.png").is_file()


def test_forecast_without_model_is_a_clear_error(trained, monkeypatch, capsys):
    _, store = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}/mlflow.db")
    rc = main(["forecast", str(CONFIGS / "smoke.yaml"), "--at", "2018-12-14T00:00Z",
               "--model", "models:/no-such-model/latest"])
    assert rc == 2
    assert "greenllm train" in capsys.readouterr().err


def test_forecast_settings_are_strict():
    from forecast.scenario import ConfigError

    with pytest.raises(ConfigError, match="forecast: unknown key"):
        load_config(CONFIGS / "smoke.yaml", ["forecast.epochs=3"])
    with pytest.raises(ConfigError, match="forecast.horizon_steps"):
        load_config(CONFIGS / "smoke.yaml", ["forecast.horizon_steps=0"])
    with pytest.raises(ConfigError, match="forecast.architecture"):
        load_config(CONFIGS / "smoke.yaml", ["forecast.architecture=lstm"])
    with pytest.raises(ConfigError, match="wetbulb_c is derived"):
        load_config(CONFIGS / "smoke.yaml", ["forecast.signals=[wetbulb_c]"])
    assert load_config(CONFIGS / "default.yaml").forecast.architecture == "mlp"
