"""greenllm control: the plant, the allocation MPC, baselines, the closed loop and the hindsight optimum."""

__all__ = ["controllers", "forecast_adapter", "inputs", "mpc", "params", "plant", "realised", "shares", "simulate",
           "sizing", "state"]
