"""The forecaster in MLflow's model registry: logged as a pyfunc model from code
(``pipelines._tracking_pyfunc``: weights stay a state dict + JSON spec), one registered model per
scenario and load tier (``model_name``), the alias ``champion`` on the version in service, and the
way back from a URI to the bundle folder (``resolve_model``) and to the model's lineage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines._tracking import _setup, tracking_uri

__all__ = ["CHAMPION", "MODEL_NAME", "Champion", "Registered", "champion", "link_model", "log_forecaster",
           "model_lineage", "model_name", "resolve_model", "set_champion", "tag_version"]

MODEL_NAME = "greenllm-forecaster"
CHAMPION = "champion"
PYFUNC_CODE = Path(__file__).with_name("_tracking_pyfunc.py")
#: what a pyfunc model of the forecaster needs to load (pinned as in pyproject.toml)
PIP_REQUIREMENTS = ["torch==2.13.0", "mlflow==3.17.2", "pandas==3.1.1", "numpy==2.4.6"]


@dataclass(frozen=True)
class Registered:
    """A registered forecaster version: registry version, MLflow model id and URI."""

    name: str
    version: str
    model_id: str
    model_uri: str


@dataclass(frozen=True)
class Champion:
    """The version the alias ``champion`` marks, with its tags (e.g. ``train_end.<signal>``)."""

    name: str
    version: str
    run_id: str
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def model_name(scenario: str, load_tier: str) -> str:
    """The registered model of a scenario and load tier (``greenllm-forecaster-<scenario>-<tier>``)."""
    return f"{MODEL_NAME}-{scenario}-{load_tier}"


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "site"), ColSpec("datetime", "ts"), ColSpec("string", "signal"),
                       ColSpec("double", "value")]),
        outputs=Schema([ColSpec("string", "signal"), ColSpec("string", "site"), ColSpec("datetime", "ts"),
                        ColSpec("double", "quantile"), ColSpec("double", "value")]),
        params=ParamSchema([ParamSpec("t0", "string", ""), ParamSpec("horizon", "long", 24)]))


def log_forecaster(folder: Path, name: str, tags: dict[str, str], logged_name: str = "forecaster",
                   description: str = "") -> Registered:
    """Log the bundle ``folder`` as a pyfunc model (from code, with a signature) in the active run
    (as ``logged_name``), register it as a new version of ``name``, tag the version with ``tags``
    and describe it with ``description`` (e.g. a refresh's lineage). The alias ``champion`` is not
    moved here (``set_champion`` does that, after ``pipelines._champion`` decides)."""
    import mlflow

    info = mlflow.pyfunc.log_model(name=logged_name, python_model=str(PYFUNC_CODE), artifacts={"bundle": str(folder)},
                                   signature=_signature(), pip_requirements=PIP_REQUIREMENTS,
                                   registered_model_name=name)
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.update_registered_model(name, description="greenllm forecasters (pyfunc from code: state dict + JSON "
                                   "spec); alias champion = the version in service")
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if description:
        client.update_model_version(name, version, description=description)
    return Registered(name, version, str(info.model_id), f"models:/{name}/{version}")


def champion(name: str) -> Champion | None:
    """The version under the alias ``champion`` (None: the model or the alias does not exist yet)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    _setup()
    try:
        mv = mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    return Champion(name, str(mv.version), str(mv.run_id), dict(mv.tags))


def set_champion(name: str, version: str) -> None:
    """Move the alias ``champion`` to ``version``."""
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(name, CHAMPION, version)


def tag_version(name: str, version: str, key: str, value: str) -> None:
    import mlflow

    mlflow.MlflowClient().set_model_version_tag(name, version, key, value)


def resolve_model(uri: str) -> Path:
    """A local folder holding the model bundle for a ``models:/`` (``name/version``,
    ``name@alias``) or ``runs:/`` URI, or a path; a pyfunc model's bundle is its ``artifacts/*/``.

    Raises:
        FileNotFoundError: the model or run does not exist in the tracking store.
    """
    if "://" not in uri and ":/" not in uri:
        return Path(uri)
    import mlflow
    from mlflow.exceptions import MlflowException

    _setup()
    try:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except MlflowException as exc:
        raise FileNotFoundError(f"model {uri} not found in the MLflow store {tracking_uri()} "
                                f"(run `greenllm train CONFIG` first): {exc.message[:200]}") from None
    if (folder / "MLmodel").is_file():
        bundles = sorted(p.parent for p in (folder / "artifacts").glob("*/spec.json"))
        if bundles:
            return bundles[0]
    return folder


def link_model(lineage: dict[str, str]) -> None:
    """Link the active (control) run to the forecaster it used: tags with the registered name and
    version, the MLflow model id and the training run (from ``model_lineage``; a run's model inputs
    are Databricks-only in MLflow 3.17)."""
    import mlflow

    keys = ("forecaster_model_name", "forecaster_model_version", "forecaster_model_run_id", "forecaster_model_id")
    mlflow.set_tags({k: lineage[k] for k in keys if k in lineage})


def model_lineage(model_uri: str, folder: str) -> dict[str, str]:
    """The forecaster's URI, local folder, registry version, MLflow model id and training run id."""
    out = {"forecaster_model_uri": model_uri, "forecaster_model_path": folder}
    if model_uri.startswith("runs:/"):
        out["forecaster_model_run_id"] = model_uri[len("runs:/"):].split("/")[0]
    if model_uri.startswith("models:/"):
        try:
            out |= _registry_lineage(model_uri[len("models:/"):])
        except Exception:  # noqa: BLE001 — lineage is informative; the run still goes on
            pass
    return out


def _registry_lineage(ref: str) -> dict[str, str]:
    import mlflow

    client = mlflow.MlflowClient()
    name, alias = ref.split("@", 1) if "@" in ref else (ref.partition("/")[0], "")
    ver = "" if alias else ref.partition("/")[2]
    if alias:
        ver = str(client.get_model_version_by_alias(name, alias).version)
    elif ver == "latest":
        ver = str(max(int(v.version) for v in client.search_model_versions(f"name='{name}'")))
    mv = client.get_model_version(name, ver)
    out = {"forecaster_model_name": name, "forecaster_model_version": ver,
           "forecaster_model_run_id": str(mv.run_id)}
    source = str(mv.source or "")
    model_id = mv.model_id or (source[len("models:/"):] if source.startswith("models:/m-") else "")
    if model_id:   # the MLflow model the version was registered from (its source models:/m-…)
        out["forecaster_model_id"] = str(model_id)
    return out
