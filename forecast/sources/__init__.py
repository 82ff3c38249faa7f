"""Readers of the packaged data (archives in the cache, the shared load files) and of user files."""

__all__ = ["caiso", "entsoe", "humidity", "llm_load", "smard", "solar", "user", "weather"]
