"""Shared fixtures. The tests read the real data: the archives fetched by `make setup` into
$GREENLLM_CACHE/wheels and the LLM load files in ../shared/data/llm_load. A missing file fails a test
with the message of the product's own error (never a skip)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

# The relative load_dir in the configs is relative to the project root.
os.chdir(ROOT)


@pytest.fixture(scope="session")
def default_cfg() -> Config:
    return load_config(CONFIGS / "default.yaml")


@pytest.fixture(scope="session")
def smoke_cfg() -> Config:
    return load_config(CONFIGS / "smoke.yaml")


@pytest.fixture(scope="session")
def smoke_data(smoke_cfg):
    from forecast.dataset import build_dataset

    return build_dataset(smoke_cfg.scenario)


@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """An empty parsed-data cache that still sees the fetched archives."""
    from forecast.sources._archive import cache_dir

    wheels = cache_dir() / "wheels"
    (tmp_path / "wheels").symlink_to(wheels, target_is_directory=True)
    monkeypatch.setenv("GREENLLM_CACHE", str(tmp_path))
    return tmp_path
