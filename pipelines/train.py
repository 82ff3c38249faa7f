"""``greenllm train CONFIG`` and ``greenllm forecast CONFIG --at T``.

``train``: builds the scenario's data, trains one learned forecaster per signal on the strict time
split (Lightning: progress bar, early stopping, checkpoints in a temp dir), scores it and every
baseline on the test period, prints the table, and logs everything to MLflow (params, per-epoch
losses, test metrics per signal and horizon step, fan charts, resolved config) and registers the
bundle as a pyfunc model (``greenllm-forecaster-<scenario>-<tier>``; the alias ``champion`` moves to
it when it beats the version in service on newer data, ``pipelines._champion``), with the
training data as dataset inputs. With ``forecast.strategy=ddp`` every process runs this command
(started by Lightning or by ``torchrun``); only global rank 0 opens the MLflow run, scores and
registers, the others train their share of each batch and stop. ``forecast``: loads the
registered model and prints/plots the next H steps for every site and stream.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from control.from_data import fleet_dataset
from forecast.baselines import baselines_for
from forecast.distributed import launched_as_worker
from forecast.evaluate import Scores, evaluate, evaluation_origins, skill
from forecast.models import ForecasterSuite, LearnedForecaster
from forecast.sources.humidity import rh_climatology
from forecast.splits import SignalSplit, product_history, split_signal
from pipelines import _tracking as tracking
from pipelines import _tracking_registry as registry
from pipelines._champion import decide, train_end_tags
from pipelines._fancharts import fan_chart, plot_forecast
from pipelines.config import Config
from pipelines.loop import MODEL_URI, champion_uri

__all__ = ["EXPERIMENT", "print_table", "run_forecast", "run_train"]

EXPERIMENT = "greenllm-forecast"


def _vapour_tables(cfg: Config) -> dict[str, np.ndarray]:
    return {s.name: rh_climatology(s.lat_deg, s.lon_deg).vp_hpa for s in cfg.scenario.sites}


def _score_signal(model: LearnedForecaster, split: SignalSplit, cfg: Config) -> dict[str, Scores]:
    fs = cfg.forecast
    h = fs.horizon_steps
    origins = evaluation_origins(split, h, fs.eval_stride_h)
    scores = {"learned": evaluate(model, split, h, origins=origins)[0]}
    for name, base in baselines_for(split.signal, truth=split.full).items():
        base.fit(split.upto(0)[list(split.outputs)])
        scores[name] = evaluate(base, split, h, origins=origins)[0]
    return scores


def _log_scores(signal: str, scores: dict[str, Scores]) -> None:
    for name, sc in scores.items():
        tracking.log_metrics({f"test.{signal}.{name}.{k}": v for k, v in sc.summary().items()})
        for step in range(len(sc.mae_h)):
            tracking.log_metrics({f"test_h.{signal}.{name}.mae": float(sc.mae_h[step]),
                                  f"test_h.{signal}.{name}.rmse": float(sc.rmse_h[step]),
                                  f"test_h.{signal}.{name}.pinball": float(sc.pinball_h[step]),
                                  f"test_h.{signal}.{name}.coverage_80": float(sc.coverage_80_h[step])},
                                 step=step + 1)


def print_table(results: dict[str, dict[str, Any]]) -> None:
    """Per signal and forecaster: MAE, RMSE, pinball, 80 % coverage; skill of the learned model."""
    print(f"\n{'signal':<18} {'forecaster':<26} {'MAE':>10} {'RMSE':>10} {'pinball':>10} {'cov80':>6} {'skill':>6}")
    print("-" * 92)
    for sig, res in results.items():
        for name, sc in res["scores"].items():
            sk = f"{res['skill']:.3f}" if name == "learned" else ""
            label = res["learned_name"] if name == "learned" else name
            print(f"{sig:<18} {label:<26} {sc['mae']:>10.4g} {sc['rmse']:>10.4g} {sc['pinball']:>10.4g} "
                  f"{sc['coverage_80']:>6.1%} {sk:>6}")


def _time_predict(suite: ForecasterSuite, history: dict[str, pd.DataFrame], t0: pd.Timestamp,
                  horizon: int, repeats: int = 5) -> float:
    suite.predict(history, t0, horizon)
    times = []
    for _ in range(repeats):
        a = time.perf_counter()
        suite.predict(history, t0, horizon)
        times.append(time.perf_counter() - a)
    return 1000.0 * float(np.median(times))


def _fit_all(data: Any, cfg: Config, logger: Any,
             progress: bool) -> tuple[dict[str, LearnedForecaster], dict[str, SignalSplit]]:
    """One learned forecaster per signal, fitted on its strict time split."""
    fs, sc = cfg.forecast, cfg.scenario
    models, splits = {}, {}
    for sig in fs.signals:
        split = split_signal(data, sc, sig, fs)
        print(f"\n[{sig}] train {split.spans['train']}, validate {split.spans['valid']}, "
              f"test {split.spans['test']}", flush=True)
        model = LearnedForecaster(sig, fs, split.tz)
        models[sig] = model.fit(split.upto_at(0, model.input_step), split.upto_at(1, model.input_step),
                                outputs=split.outputs, logger=logger, progress=progress)
        splits[sig] = split
    return models, splits


def _train_as_worker(data: Any, cfg: Config) -> dict[str, Any]:
    """A DDP process other than global rank 0 (``forecast.strategy=ddp``): it trains its share of
    every fit, with no MLflow run; rank 0 tracks, scores and registers the model."""
    _fit_all(data, cfg, None, progress=False)
    print("greenllm train: DDP worker done (rank 0 tracks, scores and registers the model)", flush=True)
    return {"worker": True}


def _score_and_log(sig: str, model: LearnedForecaster, split: SignalSplit, cfg: Config, tmp: str) -> dict[str, Any]:
    """A signal's test scores against the baselines and skill (logged, with its fan chart)."""
    fs = cfg.forecast
    scores = _score_signal(model, split, cfg)
    _log_scores(sig, scores)
    sk = skill(scores["learned"], scores["seasonal_naive_24"], scores["seasonal_naive_168"])
    tracking.log_metric(f"test.{sig}.skill", sk)
    result = {"skill": sk, "learned_name": model.name, "spans": split.spans, "fit": model.fit_report,
              "scores": {k: v.summary() for k, v in scores.items()},
              "mae_h": {k: v.mae_h.tolist() for k, v in scores.items()}}
    start = (pd.Timestamp(fs.fan_chart_start, tz="UTC") if sig != "load_req_per_s"
             else split.full.index[evaluation_origins(split, fs.horizon_steps)[0][0]].floor("D"))
    png = fan_chart(model, split, start, fs.fan_chart_sites, Path(tmp) / "fan_charts" / f"{sig}.png")
    if png:
        tracking.log_artifact(png, "fan_charts")
    return result


def run_train(cfg: Config, progress: bool = True) -> dict[str, Any]:
    """Train, evaluate, log and register; returns the results (also printed)."""
    fs = cfg.forecast
    torch.set_num_threads(fs.num_threads)
    sc = cfg.scenario
    print(f"greenllm train: scenario {sc.name!r} from {cfg.path}: {fs.architecture} models for "
          f"{', '.join(fs.signals)}", flush=True)
    data = fleet_dataset(cfg, progress=progress)
    if launched_as_worker():
        return _train_as_worker(data, cfg)
    with start_run_for(cfg) as run, tempfile.TemporaryDirectory(prefix="greenllm-train-") as tmp:
        tracking.log_params(tracking.flatten(cfg.raw)
                            | {"forecast.resolved." + k: str(v) for k, v in fs.__dict__.items()})
        tracking.log_text(yaml.safe_dump(cfg.raw, sort_keys=False, allow_unicode=True), "config/resolved.yaml")
        logger = tracking.lightning_logger(run, EXPERIMENT)
        t_start, cpu_start = time.perf_counter(), time.process_time()
        models, splits = _fit_all(data, cfg, logger, progress)
        train_s, train_cpu_s = time.perf_counter() - t_start, time.process_time() - cpu_start
        suite = ForecasterSuite(models, _vapour_tables(cfg))
        results = {sig: _score_and_log(sig, models[sig], split, cfg, tmp) for sig, split in splits.items()}
        predict_ms = _time_predict(suite, product_history(data, sc), pd.Timestamp("2018-12-14T00:00Z"),
                                   fs.horizon_steps)
        _log_datasets(cfg, splits)
        name = registry.model_name(sc.name, sc.data.resolved_load_tier())
        reg = registry.log_forecaster(suite.save(Path(tmp) / "bundle"), name,
                                      train_end_tags(splits) | {"training_run_id": run.info.run_id})
        decision = _champion_step(reg, models, splits, cfg)
        summary = {"train_seconds": train_s, "train_cpu_seconds": train_cpu_s, "predict_ms": predict_ms,
                   "run_id": run.info.run_id,
                   "model_name": name, "model_version": reg.version, "model_id": reg.model_id,
                   "champion": decision, "tracking_uri": tracking.tracking_uri(),
                   "architecture": fs.architecture, "signals": results}
        tracking.log_metrics({"train_seconds": train_s, "predict_ms": predict_ms})
        tracking.log_json(summary, "results/forecast_results.json")
    print_table(results)
    print(f"\ntrained in {train_s:.1f} s; one forecast of every series: {predict_ms:.1f} ms; "
          f"registered {name} version {reg.version} (model {reg.model_id}, run {summary['run_id']}, "
          f"store {summary['tracking_uri']})\nchampion: {decision}")
    return summary


def _log_datasets(cfg: Config, splits: dict[str, SignalSplit]) -> None:
    """Each signal's training and validation data as MLflow dataset inputs (with digests)."""
    for sig, split in splits.items():
        frame = split.upto(1).reset_index()
        frame.columns = [str(c) for c in frame.columns]
        tracking.log_dataset(frame, f"{sig}-train", f"{cfg.path}: {sig}, train {split.spans['train']}, "
                             f"validation {split.spans['valid']}")


def _champion_step(reg: registry.Registered, models: dict[str, LearnedForecaster],
                   splits: dict[str, SignalSplit], cfg: Config) -> str:
    """Move the alias ``champion`` to the new version when it beats the champion on newer data
    (``pipelines._champion``); the decision is tagged on the new version and returned in words."""
    champ = registry.champion(reg.name)
    champ_models = None
    if champ is not None:
        champ_models = dict(ForecasterSuite.load(registry.resolve_model(champ.uri)).models)
    d = decide(models, champ_models, champ.version if champ else "", champ.tags if champ else {}, splits,
               cfg.forecast.horizon_steps, cfg.forecast.eval_stride_h)
    if d.promote:
        registry.set_champion(reg.name, reg.version)
    registry.tag_version(reg.name, reg.version, "champion_decision", d.text)
    if np.isfinite(d.new_skill) and np.isfinite(d.champion_skill):
        tracking.log_metrics({"champion.new_mean_skill": d.new_skill, "champion.old_mean_skill": d.champion_skill})
    return f"v{reg.version} {d.text}"


def start_run_for(cfg: Config) -> Any:
    return tracking.start_run(EXPERIMENT, f"train-{cfg.scenario.name}-{cfg.forecast.architecture}",
                              {"scenario": cfg.scenario.name, "config": cfg.path})


def run_forecast(cfg: Config, at: str, model_uri: str, plots: Path) -> Any:
    """Forecast from the registered model at ``at`` (UTC); print p50 [p10, p90] and plot."""
    t0 = pd.Timestamp(at)
    if t0.tzinfo is None:
        raise ValueError(f"--at {at!r}: give a UTC time with a zone, e.g. 2018-12-14T00:00Z")
    model_uri = champion_uri(cfg) if model_uri == MODEL_URI else model_uri
    suite = ForecasterSuite.load(registry.resolve_model(model_uri))
    torch.set_num_threads(cfg.forecast.num_threads)
    data = fleet_dataset(cfg)
    fc = suite.predict(product_history(data, cfg.scenario), t0.tz_convert("UTC"), cfg.forecast.horizon_steps)
    print(f"greenllm forecast from {model_uri}, issued {fc.t0:%Y-%m-%d %H:%M} UTC, {fc.horizon} steps")
    for sig in fc.signals:
        p50, p10, p90 = (fc.frame(sig, q) for q in (0.5, 0.1, 0.9))
        print(f"\n{sig} — p50 [p10 … p90] per step")
        cols = list(p50.columns)
        print(f"{'UTC':<12}" + "".join(f"{c[:18]:>24}" for c in cols))
        for ts in p50.index:
            cells = "".join(f"{f'{p50.at[ts, c]:.4g} [{p10.at[ts, c]:.3g}…{p90.at[ts, c]:.3g}]':>24}" for c in cols)
            print(f"{ts:%m-%d %H:%M}  {cells}")
    written = plot_forecast(fc, plots)
    print(f"\nplots: {len(written)} PNG files in {plots}/")
    return fc
