"""DDP training study (issue #18, item 2): one forecaster trained by 1 process and by 2 DDP processes
on CPU (gloo), same global batch, seed and data; validation loss and wall time of each.

Records the ``ddp`` key of ``bench/results/scale.json`` / ``scale.md`` (``bench._scale_report``):
``processes``, ``wall_s`` and ``best_val_loss`` per process count, ``val_loss_rel_diff``
(|loss₂ − loss₁| ÷ loss₁, target ≤ 2 %), the data, config and machine. Run from the repository root:
``python -m bench.scale_ddp [--config configs/default.yaml] [--signal price_eur_per_mwh]
[--max-epochs 10] [--strategy ddp_spawn]`` (about 3–5 min on 2 cores).

The two runs differ only by how the global batch is computed: dropout masks are drawn per process
(the same stream in each) and gradients are summed in a different order, so the losses are close,
not bit-equal. Wall time includes starting the processes (``ddp_spawn`` imports torch and Lightning
in each, every fit).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench._scale_report import machine, update
from control.from_data import fleet_dataset
from forecast.models import LearnedForecaster
from forecast.splits import split_signal
from pipelines.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
TARGET_REL_DIFF = 0.02


def fit_once(cfg: Config, data: Any, signal: str) -> dict[str, float]:
    """Train ``signal``'s forecaster under ``cfg.forecast``; wall time, best val loss, epochs."""
    fs = cfg.forecast
    split = split_signal(data, cfg.scenario, signal, fs)
    torch.set_num_threads(fs.num_threads)
    t0 = time.perf_counter()
    model = LearnedForecaster(signal, fs, split.tz)
    model.fit(split.upto_at(0, model.input_step), split.upto_at(1, model.input_step), outputs=split.outputs,
              progress=False)
    wall_s = time.perf_counter() - t0
    rep = model.fit_report
    return {"wall_s": round(wall_s, 2), "best_val_loss": rep["best_val_loss"], "epochs": rep["epochs"],
            "train_windows": rep["train_windows"], "valid_windows": rep["valid_windows"]}


def _markdown(res: dict[str, Any]) -> str:
    one, two = res["runs"]["1"], res["runs"]["2"]
    verdict = "met" if res["val_loss_rel_diff"] <= TARGET_REL_DIFF else "**missed**"
    return "\n".join([
        "## DDP training (`forecast.strategy`, `devices`, `num_nodes`)", "",
        f"`{res['command']}` on {res['machine']}, {res['date']}.", "",
        f"Data: {res['data']}. Global batch {res['global_batch']} windows "
        f"({res['global_batch'] // 2} per process with 2), seed {res['seed']}, "
        f"strategy `{res['strategy']}` on CPU (gloo).", "",
        "| processes | wall s | best val loss (scaled pinball) | epochs |", "|---|---|---|---|",
        f"| 1 | {one['wall_s']:.1f} | {one['best_val_loss']:.6f} | {one['epochs']:.0f} |",
        f"| 2 | {two['wall_s']:.1f} | {two['best_val_loss']:.6f} | {two['epochs']:.0f} |", "",
        f"val_loss_rel_diff = {res['val_loss_rel_diff']:.3%} (target ≤ {TARGET_REL_DIFF:.0%}: {verdict}); "
        f"wall time 2 ÷ 1 processes = {two['wall_s'] / one['wall_s']:.2f}.", "",
        res["note"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--signal", default="price_eur_per_mwh")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--strategy", default="ddp_spawn", choices=["ddp", "ddp_spawn"])
    args = parser.parse_args(argv)
    if Path.cwd().resolve() != ROOT:
        raise SystemExit(f"run from the project root {ROOT} (python -m bench.scale_ddp)")
    base = [f"forecast.max_epochs={args.max_epochs}", "forecast.num_threads=1"]
    cfg = load_config(args.config, base)
    data = fleet_dataset(cfg, progress=False)
    runs = {"1": fit_once(cfg, data, args.signal)}
    print(f"1 process: {runs['1']}", flush=True)
    cfg2 = load_config(args.config, [*base, f"forecast.strategy={args.strategy}", "forecast.devices=2"])
    runs["2"] = fit_once(cfg2, data, args.signal)
    print(f"2 processes: {runs['2']}", flush=True)
    l1, l2 = runs["1"]["best_val_loss"], runs["2"]["best_val_loss"]
    res = {"processes": [1, 2], "wall_s": {k: r["wall_s"] for k, r in runs.items()},
           "best_val_loss": {k: r["best_val_loss"] for k, r in runs.items()},
           "val_loss_rel_diff": abs(l2 - l1) / l1, "target_rel_diff": TARGET_REL_DIFF, "runs": runs,
           "strategy": args.strategy, "global_batch": cfg.forecast.batch_size, "seed": cfg.forecast.seed,
           "data": f"{args.config} (scenario {cfg.scenario.name!r}), signal {args.signal}, "
                   f"forecast.max_epochs={args.max_epochs}, num_threads=1 per process, other settings as the config",
           "machine": machine() + " (shared with other jobs)", "date": time.strftime("%Y-%m-%d"),
           "command": " ".join(["python -m bench.scale_ddp", *(argv if argv is not None else sys.argv[1:])]),
           "note": "Same windows, batch order and initial weights; the losses differ by dropout masks "
                   "(each process draws its own for its half of the batch) and by summation order. "
                   "With 2 cores shared by other jobs, wall times are indicative only."}
    print(update("ddp", res, _markdown(res)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
