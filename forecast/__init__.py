"""greenllm forecasting: the data layer (scenario, contract, sources, dataset) and, next, forecasters."""

__all__ = ["dataset", "scenario", "schema", "sources"]
