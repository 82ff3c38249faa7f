"""Check the MLflow UI as a person would: runs, metric charts, artifacts, the registered model and
its alias, the training data as dataset inputs, and the link from a control run to its model.

``python -m pipelines.ui_check --out out/ui-check`` builds a small tracking store in a temporary
folder (``greenllm train`` and ``greenllm compare`` on configs/smoke.yaml), starts ``greenllm ui``
over it, opens its pages in headless Chromium (Debian's ``chromium``), checks that each page shows
what it should, and writes a screenshot of each page to ``--out``. Exit status 0 when every check
passes; 1 with the failing page named otherwise; 2 when Chromium is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["main"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def _browser(binary: str, url: str, shot: Path, expect: list[str] | None = None) -> str:
    """The rendered DOM of ``url`` (after scripts ran) and a screenshot of it.

    Charts render late on a busy machine: the page is read again with a longer virtual-time
    budget (20, 45, 90 s) until every ``expect`` string is there.
    """
    dom = ""
    for budget_ms in (20_000, 45_000, 90_000):
        common = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--hide-scrollbars", "--window-size=1500,1000", f"--virtual-time-budget={budget_ms}"]
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=240).stdout
        if not expect or all(e in dom for e in expect):
            break
    subprocess.run([*common, f"--screenshot={shot}", url], capture_output=True, timeout=240)
    return dom


def _wait_up(url: str, proc: subprocess.Popen, seconds: float = 90.0) -> None:
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"greenllm ui exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1.0)
    raise TimeoutError(f"the MLflow UI did not answer at {url} within {seconds:.0f} s")


def _make_store(env: dict[str, str]) -> None:
    greenllm = [sys.executable, "-m", "pipelines.cli"]
    for args in (["train", "configs/smoke.yaml", "--no-progress"],
                 ["compare", "configs/smoke.yaml", "--steps", "3", "--out", env["GREENLLM_UI_CHECK_TMP"] + "/cmp"]):
        print(f"ui-check: greenllm {' '.join(args)}", flush=True)
        subprocess.run(greenllm + args, env=env, check=True, stdout=subprocess.DEVNULL)


@dataclass(frozen=True)
class _Store:
    """What the check reads from the tracking store it made."""

    client: Any                # an MlflowClient on the store
    loop_experiment_id: str    # the closed-loop comparison's experiment
    child: Any                 # its MPC child run
    train_experiment_id: str
    train_metrics: list[str]   # two per-epoch loss metrics of the training run
    train_run_id: str
    model_name: str            # the registered forecaster the training run made
    dataset: str               # one of its dataset inputs (``<signal>-train``)


def _read_store(tracking_uri: str) -> _Store:
    """The closed-loop experiment's MPC child run and the training run's loss metrics."""
    from pipelines._tracking import store_client

    client = store_client(tracking_uri)
    loop = client.get_experiment_by_name("closed-loop")
    if loop is None:
        raise RuntimeError("ui-check: the store made for the check has no 'closed-loop' experiment")
    runs = client.search_runs([loop.experiment_id], "tags.mlflow.parentRunId != ''", max_results=50)
    child = next(r for r in runs if r.data.params.get("controller") == "mpc")
    from pipelines.train import EXPERIMENT as TRAIN_EXPERIMENT

    train_exp = client.get_experiment_by_name(TRAIN_EXPERIMENT)
    if train_exp is None:
        raise RuntimeError(f"ui-check: the store made for the check has no '{TRAIN_EXPERIMENT}' experiment")
    train_run = client.search_runs([train_exp.experiment_id], max_results=1)[0]
    train_metrics = sorted(k for k in train_run.data.metrics if "loss" in k)[:2]  # per-epoch losses
    datasets = [d.dataset.name for d in train_run.inputs.dataset_inputs]
    if not datasets or "forecaster_model_name" not in child.data.tags:
        raise RuntimeError("ui-check: the training run has no dataset inputs or the control run names no model")
    return _Store(client, loop.experiment_id, child, train_exp.experiment_id, train_metrics, train_run.info.run_id,
                  child.data.tags["forecaster_model_name"], datasets[0])


def _pages(store: _Store, base: str) -> list[tuple[str, str, list[str]]]:
    """``(name, url, strings the page must show)`` for each page the check opens."""
    exp, run, child = store.loop_experiment_id, store.child.info.run_id, store.child
    q = "workflowType=machine_learning"  # the UI's "Model training" view (MLflow 3 opens on GenAI)
    parent = store.client.get_run(child.data.tags["mlflow.parentRunId"])
    return [
        ("runs", f"{base}/#/experiments/{exp}/runs?{q}", [parent.info.run_name]),
        ("metric-charts", f"{base}/#/experiments/{store.train_experiment_id}/runs?{q}&compareRunsMode=CHART",
         ["Model metrics", *store.train_metrics]),
        ("run", f"{base}/#/experiments/{exp}/runs/{run}?{q}",   # the control run names its model
         [child.info.run_name, "cost_eur", store.model_name, "forecaster_model_run_id"]),
        ("artifacts", f"{base}/#/experiments/{exp}/runs/{run}/artifacts?{q}",
         ["plots", "tables", "config.yaml"]),
        ("training-run", f"{base}/#/experiments/{store.train_experiment_id}/runs/{store.train_run_id}?{q}",
         ["Datasets", "-train (", "git_commit", store.model_name]),   # the UI lists one dataset and "+N"
        ("registered-model", f"{base}/#/models/{store.model_name}?{q}", [store.model_name, "Version 1", "champion"]),
    ]


def _failed_pages(binary: str, pages: list[tuple[str, str, list[str]]], out: Path) -> list[str]:
    """Open each page, screenshot it into ``out``, print its status; the names of pages missing a string."""
    failed = []
    for name, url, expect in pages:
        dom = _browser(binary, url, out / f"{name}.png", expect)
        missing = [e for e in expect if e not in dom]
        status = "ok" if not missing else f"MISSING {missing}"
        print(f"ui-check: {name:17s} {status}   ({url}; screenshot {out / (name + '.png')})")
        if missing:
            failed.append(name)
    return failed


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the UI server; kill it when it has not exited within 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def main(argv: list[str] | None = None) -> int:
    """Run the check (see the module docstring); the exit status is 0, 1 or 2."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/ui-check"), help="folder for the screenshots")
    args = ap.parse_args(argv)
    binary = _chromium()
    if binary is None:
        print("ui-check: Chromium is not installed (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="greenllm-ui-") as tmp:
        env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db", GREENLLM_UI_CHECK_TMP=tmp)
        _make_store(env)
        store = _read_store(env["MLFLOW_TRACKING_URI"])
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ui", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_up(base, proc)
            failed = _failed_pages(binary, _pages(store, base), args.out)
        finally:
            _stop(proc)
    if failed:
        print(f"ui-check: FAILED pages: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("ui-check: every page shows its runs, metrics, artifacts, datasets, model, alias and model link")
    return 0


if __name__ == "__main__":
    sys.exit(main())
