"""MLflow, in one place: the only module that imports it (the pipelines log through the functions
here; ``forecast/`` and ``control/`` never touch it).

Tracking URI: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///mlruns/mlflow.db`` (relative to the
working directory); artifacts of a SQLite store go to an ``artifacts/`` folder beside the database
(so ``mlruns/artifacts`` by default). The model registry (the forecaster as a pyfunc model, the
``champion`` alias, URIs back to bundle folders) is ``pipelines._tracking_registry``. Experiments
are tagged for the UI's model-training view; every run carries the git commit it ran from.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_TRACKING_URI", "child_run", "flatten", "git_commit", "is_server", "lightning_logger",
           "log_artifact", "log_artifacts", "log_child_run", "log_dataset", "log_json", "log_metric", "log_metrics",
           "log_params", "log_step_metrics", "log_text", "start_run", "store_client", "tracking_uri"]

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
#: the experiment tag that makes the MLflow UI open an experiment in its model-training view
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


# Stores MLflow 3.17 accepts for runs and the model registry (a plain folder or file: URI is refused).
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` or the default SQLite store (its folder is created)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    scheme = uri.split(":", 1)[0].split("+", 1)[0] if ":" in uri else ""
    if scheme not in TRACKING_SCHEMES:
        raise ValueError(f"MLFLOW_TRACKING_URI={uri!r}: not a tracking store this MLflow can use; give "
                         f"{DEFAULT_TRACKING_URI} (the default) or a URI with a scheme of "
                         f"{', '.join(TRACKING_SCHEMES)} (MLflow 3.17 refuses a plain folder)")
    if uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"MLFLOW_TRACKING_URI={uri!r}: cannot create {folder} ({exc.strerror})") from None
    return uri


def _artifact_location(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).resolve().parent / "artifacts").as_uri()
    return None


def _setup(uri: str | None = None) -> str:
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


@contextmanager
def start_run(experiment: str, run_name: str, tags: Mapping[str, str] | None = None) -> Iterator[Any]:
    """An active MLflow run in ``experiment`` (created with the store's artifact folder)."""
    import mlflow

    uri = _setup()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(
        experiment, artifact_location=_artifact_location(uri), tags=EXPERIMENT_KIND)
    if exp is not None and not EXPERIMENT_KIND.items() <= exp.tags.items():   # made by an older version
        for key, value in EXPERIMENT_KIND.items():
            client.set_experiment_tag(exp_id, key, value)
    run_tags = {"git_commit": git_commit()} | dict(tags or {})
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=run_tags) as run:
        yield run


def git_commit() -> str:
    """The commit of the working tree this code runs from (``unknown`` outside a git checkout),
    with ``+dirty`` when tracked files have changed."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def log_dataset(frame: Any, name: str, source: str, context: str = "training") -> None:
    """``frame`` (a pandas DataFrame) as a dataset input of the active run, with MLflow's digest."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    mlflow.log_input(from_pandas(frame, source=source, name=name), context=context)


@contextmanager
def child_run(run_name: str, parent: Any) -> Iterator[Any]:
    """A run nested in the active run ``parent`` (same experiment)."""
    import mlflow

    with mlflow.start_run(run_name=run_name, nested=True, experiment_id=parent.info.experiment_id,
                          tags={"git_commit": git_commit()}) as run:
        yield run


def is_server(uri: str) -> bool:
    """Whether the store at ``uri`` is an MLflow server (many writers at once), not a database file."""
    return uri.split(":", 1)[0] in ("http", "https", "databricks")


def log_child_run(uri: str, experiment_id: str, parent_run_id: str, run_name: str, params: Mapping[str, str],
                  metrics: Mapping[str, float]) -> str:
    """A finished child of run ``parent_run_id`` with ``params`` and ``metrics``, written through a
    client (no active run is needed, so a sweep's worker process can log its own cell); its run id."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    _setup(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.create_run(experiment_id, run_name=run_name, tags={"mlflow.parentRunId": parent_run_id})
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                     params=[Param(k, str(v)[:500]) for k, v in params.items()],
                     tags=[RunTag("mlflow.runName", run_name)])
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def lightning_logger(run: Any, experiment: str) -> Any:
    """Lightning's MLFlowLogger writing into ``run`` (per-epoch losses)."""
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(experiment_name=experiment, tracking_uri=tracking_uri(), run_id=run.info.run_id)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping → ``a.b.c`` keys (lists of named items by name) with string values."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out |= flatten(v, key + ".")
        elif isinstance(v, list) and v and all(isinstance(i, Mapping) and "name" in i for i in v):
            for item in v:
                out |= flatten({kk: vv for kk, vv in item.items() if kk != "name"}, f"{key}.{item['name']}.")
        else:
            out[key] = str(v)[:500]
    return out


def log_params(params: Mapping[str, str]) -> None:
    import mlflow

    items = list(params.items())
    for i in range(0, len(items), 100):
        mlflow.log_params(dict(items[i:i + 100]))


def log_json(obj: Any, name: str) -> None:
    import mlflow

    mlflow.log_text(json.dumps(obj, indent=1, default=str), name)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    import mlflow

    mlflow.log_metrics(dict(metrics), step=step)


def log_metric(key: str, value: float) -> None:
    import mlflow

    mlflow.log_metric(key, value)


def log_step_metrics(series: Mapping[str, Sequence[float]], batch: int = 900) -> None:
    """Per-step metrics of the active run: ``series[key][i]`` at step ``i``, one timestamp, in batches."""
    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(key, float(v), now, i) for key, values in series.items() for i, v in enumerate(values)]
    active = mlflow.active_run()
    if active is None:
        raise RuntimeError("log_step_metrics: called outside an MLflow run")
    client = mlflow.MlflowClient()
    for i in range(0, len(metrics), batch):
        client.log_batch(active.info.run_id, metrics=metrics[i:i + batch])


def log_text(text: str, artifact_file: str) -> None:
    import mlflow

    mlflow.log_text(text, artifact_file)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path)


def log_artifacts(folder: str | Path, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifacts(str(folder), artifact_path)


def store_client(uri: str) -> Any:
    """An ``MlflowClient`` on the store at ``uri`` (which becomes the tracking URI)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient()
