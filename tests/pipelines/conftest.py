"""Fixtures of the pipeline tests."""

from __future__ import annotations

import pytest


@pytest.fixture()
def store(tmp_path, monkeypatch) -> str:
    """A temporary MLflow store for one test (``MLFLOW_TRACKING_URI``); its URI."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
