"""Readers of the packaged data (archives in the cache, the shared load files) and of user files."""

from forecast.sources._archive import ARCHIVES, cache_dir, file_sha256

__all__ = ["ARCHIVES", "caiso", "cache_dir", "entsoe", "file_sha256", "humidity", "llm_load", "smard", "solar", "user",
           "weather"]
