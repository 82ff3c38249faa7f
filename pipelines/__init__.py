"""greenllm entry points: the `greenllm` CLI and its pipelines (config, data, plots, tracking)."""

__all__ = ["cli"]
