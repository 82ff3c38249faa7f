"""Forecasting settings: the ``forecast:`` section of a config, as a frozen dataclass.

Filled by ``pipelines.config`` (unknown keys, wrong types and out-of-range values are errors that
name the key). Field metadata ``range=(lo, hi)`` is the closed valid interval of a number. Dates are
UTC ISO dates; step counts are hours (the scenario's 1-h step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from forecast.schema import SIGNALS, ConfigError, rng

__all__ = ["ForecastSettings", "LEARNED_SIGNALS", "LOAD_INPUT_STEPS_MIN", "PROCESS_KEYS", "STRATEGIES"]

# Signals with a learned model; ``wetbulb_c`` is derived from the temperature forecast.
LEARNED_SIGNALS = ("load_req_per_s", "price_eur_per_mwh", "carbon_g_per_kwh", "ewif_l_per_kwh",
                   "solar_cf", "wind_cf", "temp_c")

# Lightning strategies a training can run under (``auto``: one process unless devices/nodes say more).
STRATEGIES = ("auto", "ddp", "ddp_spawn")
# Steps of the load model's inputs, minutes: the trace's 10-min windows, or hourly means.
LOAD_INPUT_STEPS_MIN = (10, 60)
# How a training is spread over processes: not part of the model (kept out of its saved spec).
PROCESS_KEYS = ("strategy", "devices", "num_nodes")


@dataclass(frozen=True)
class ForecastSettings:
    """How the forecasters are built, trained and evaluated (DESIGN.md §4).

    Args:
        architecture: ``mlp`` (N-HiTS-style multi-rate MLP) or ``tcn`` (dilated causal convolution).
        tcn_signals: signals whose model uses the ``tcn`` core whatever ``architecture`` says
            (chosen per signal on the validation period).
        signals: signals that get a learned model (``wetbulb_c`` is derived from ``temp_c``).
        horizon_steps: forecast steps H (1 h each).
        lookback_grid_h: look-back of grid and weather signals, hours.
        lookback_load_h: look-back of load, hours.
        load_input_step_min: step of the load model's inputs, minutes: 10 reads the 10-min history
            (``forecast.features.LOAD_10MIN``; the latest windows say most about the next hour),
            60 the hourly one. The forecast stays hourly (means of the hour) either way.
        load_ensemble_size: nets of the load model (``ensemble_size`` is the other signals'); 0
            takes ``ensemble_size``. The load trains fastest and gains most from averaging.
        load_log_scale: the load model works on ``log(1 + load / series mean)`` (``features.Scaling``):
            its level subtraction removes a ratio, so a change of level scales the daily shape.
        load_fine_h: with 10-min inputs, the last ``load_fine_h`` hours of the look-back enter the
            net at 10 min, the earlier hours as hourly means (``forecast.nets``); ≤ lookback_load_h.
        load_origin_stride_min: training windows of the load model start every this many
            minutes (a multiple of ``load_input_step_min`` dividing 60; below 60 adds windows
            issued between the hours, whose targets are the hour-long means from there).
        level_h: the input window's last ``level_h`` hours set the level the net forecasts around.
        hidden: hidden width of the nets.
        embedding_dim: size of the series-identity embedding.
        dropout: dropout rate in the hidden layers.
        batch_size: windows per training batch.
        learning_rate: Adam learning rate.
        max_epochs: upper limit on epochs per signal (early stopping usually ends sooner).
        patience: epochs without validation improvement before stopping.
        batches_per_epoch: at most this many training batches per epoch.
        window_stride_h: training windows start every ``window_stride_h`` hours (grid signals).
        ensemble_size: nets per signal, trained with seeds ``seed … seed + n − 1``; the forecast is
            the mean of their quantiles.
        calibrate_intervals: rescale each quantile's distance from the median per horizon step
            so that validation forecasts reach their nominal levels (split-conformal,
            ``forecast.calibration``); the median is unchanged.
        load_calibration_window_h: > 0: the load model refits the factors of its quantiles below
            the median at every forecast, on its own forecasts of the last this many origins whose
            targets are known before the issue time (rolling split-conformal; the validation
            factors while the history is shorter). The median and the quantiles above it (the
            controller's provisioning quantile) keep the validation factors. 0: off.
        load_outage_fill: when it forecasts, the load model reads a service outage in its inputs
            (every stream on one clock at exactly 0, ``forecast.outages``) as the last value before
            it; training reads the history as recorded.
        seed: seed of weights, batch order and dropout (same seed, same model).
        num_threads: torch CPU threads (per training process).
        strategy: Lightning's training strategy: ``auto`` (one process when ``devices`` and
            ``num_nodes`` are 1, the default; ``ddp`` otherwise), ``ddp`` (one process per device, started by
            Lightning or by an external launcher such as ``torchrun``; rank 0 tracks) or
            ``ddp_spawn`` (processes spawned for each fit, results back in the calling process).
        devices: training processes per node (CPU processes; gloo backend).
        num_nodes: machines taking part. ``batch_size`` is the global batch: each of the
            ``devices × num_nodes`` processes trains on ``batch_size ÷ (devices × num_nodes)``
            windows of every batch, so it must divide evenly.
        grid_train_end: first UTC date of grid validation (training is before it).
        grid_valid_end: first UTC date of the grid test period.
        load_train_days: recorded load days used for training (days 0 … n−1).
        load_valid_days: recorded days after them used for validation; the rest are the test.
        eval_stride_h: test forecasts are issued every ``eval_stride_h`` hours.
        fan_chart_sites: series per signal shown in the fan charts.
        fan_chart_start: first UTC day of the fan-chart week (grid signals; load uses its test days).
    """

    architecture: Literal["mlp", "tcn"] = "mlp"
    tcn_signals: tuple[str, ...] = ()
    signals: tuple[str, ...] = LEARNED_SIGNALS
    horizon_steps: int = field(default=24, metadata=rng(1, 168))
    lookback_grid_h: int = field(default=168, metadata=rng(24, 720))
    lookback_load_h: int = field(default=48, metadata=rng(24, 168))
    load_input_step_min: int = field(default=10, metadata=rng(10, 60))
    load_origin_stride_min: int = field(default=60, metadata=rng(10, 60))
    load_fine_h: int = field(default=3, metadata=rng(0, 168))
    load_log_scale: bool = False
    load_ensemble_size: int = field(default=1, metadata=rng(0, 16))
    level_h: int = field(default=24, metadata=rng(1, 168))
    hidden: int = field(default=128, metadata=rng(8, 4096))
    embedding_dim: int = field(default=8, metadata=rng(1, 256))
    dropout: float = field(default=0.1, metadata=rng(0.0, 0.9))
    batch_size: int = field(default=512, metadata=rng(8, 65536))
    learning_rate: float = field(default=1e-3, metadata=rng(1e-6, 1.0))
    max_epochs: int = field(default=30, metadata=rng(1, 1000))
    patience: int = field(default=4, metadata=rng(1, 100))
    batches_per_epoch: int = field(default=60, metadata=rng(1, 100000))
    window_stride_h: int = field(default=1, metadata=rng(1, 168))
    ensemble_size: int = field(default=1, metadata=rng(1, 16))
    calibrate_intervals: bool = True
    load_calibration_window_h: int = field(default=48, metadata=rng(0, 720))
    load_outage_fill: bool = True
    seed: int = field(default=0, metadata=rng(0, 2**31 - 1))
    num_threads: int = field(default=2, metadata=rng(1, 256))
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    devices: int = field(default=1, metadata=rng(1, 1024))
    num_nodes: int = field(default=1, metadata=rng(1, 1024))
    grid_train_end: str = "2018-10-01"
    grid_valid_end: str = "2018-11-01"
    load_train_days: int = field(default=9, metadata=rng(1, 13))
    load_valid_days: int = field(default=2, metadata=rng(1, 12))
    eval_stride_h: int = field(default=1, metadata=rng(1, 168))
    fan_chart_sites: int = field(default=3, metadata=rng(1, 50))
    fan_chart_start: str = "2018-12-03"

    def __post_init__(self) -> None:
        bad = [s for s in self.signals if s not in LEARNED_SIGNALS]
        if bad or not self.signals:
            raise ConfigError(f"forecast.signals: {bad or 'empty'}; valid: {list(LEARNED_SIGNALS)} "
                              f"(wetbulb_c is derived from temp_c)")
        bad = [s for s in self.tcn_signals if s not in LEARNED_SIGNALS]
        if bad:
            raise ConfigError(f"forecast.tcn_signals: {bad}; valid: {list(LEARNED_SIGNALS)}")
        if len(set(self.signals)) != len(self.signals):
            raise ConfigError(f"forecast.signals: duplicates in {list(self.signals)}")
        if self.level_h > min(self.lookback_grid_h, self.lookback_load_h):
            raise ConfigError(f"forecast.level_h: {self.level_h} exceeds a look-back "
                              f"({self.lookback_grid_h} / {self.lookback_load_h} h)")
        try:
            import pandas as pd

            a, b = pd.Timestamp(self.grid_train_end), pd.Timestamp(self.grid_valid_end)
        except ValueError as exc:
            raise ConfigError(f"forecast.grid_train_end / grid_valid_end: not ISO dates ({exc})") from None
        if not a < b:
            raise ConfigError(f"forecast.grid_valid_end: {self.grid_valid_end} must be after "
                              f"grid_train_end {self.grid_train_end}")
        self._check_processes()
        self._check_load_steps()

    @property
    def processes(self) -> int:
        """Training processes in all: ``devices × num_nodes``."""
        return self.devices * self.num_nodes

    def _check_processes(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"forecast.strategy: {self.strategy!r} is not one of {list(STRATEGIES)}")
        n = self.processes
        if self.batch_size % n:
            below = self.batch_size // n * n
            near = " or ".join(str(k) for k in (below, below + n) if k >= 8)
            raise ConfigError(
                f"forecast.batch_size: {self.batch_size} windows do not split evenly over "
                f"forecast.devices × forecast.num_nodes = {self.devices} × {self.num_nodes} = {n} "
                f"processes (batch_size is the global batch, shared out); valid: a multiple of {n} "
                f"(e.g. {near}), or devices × num_nodes dividing {self.batch_size}")

    def _check_load_steps(self) -> None:
        if self.load_fine_h > self.lookback_load_h:
            raise ConfigError(f"forecast.load_fine_h: {self.load_fine_h} h exceeds the load look-back "
                              f"forecast.lookback_load_h = {self.lookback_load_h} h; valid: 0 … {self.lookback_load_h}")
        if self.load_input_step_min not in LOAD_INPUT_STEPS_MIN:
            raise ConfigError(f"forecast.load_input_step_min: {self.load_input_step_min}; valid: "
                              f"{list(LOAD_INPUT_STEPS_MIN)} (minutes: the trace's 10-min windows or hours)")
        valid = [m for m in range(self.load_input_step_min, 61, self.load_input_step_min) if 60 % m == 0]
        if self.load_origin_stride_min not in valid:
            raise ConfigError(f"forecast.load_origin_stride_min: {self.load_origin_stride_min}; valid with "
                              f"load_input_step_min {self.load_input_step_min}: {valid} (a multiple of the "
                              "input step that divides 60 minutes)")

    def architecture_of(self, signal: str) -> str:
        """The core architecture of a signal's model (``tcn_signals`` override ``architecture``)."""
        return "tcn" if signal in self.tcn_signals else self.architecture

    def ensemble_of(self, signal: str) -> int:
        """Nets in a signal's ensemble (``load_ensemble_size`` for load unless 0)."""
        if signal == "load_req_per_s" and self.load_ensemble_size:
            return self.load_ensemble_size
        return self.ensemble_size

    def lookback_h(self, signal: str) -> int:
        """Look-back of a signal's model, hours."""
        if signal not in SIGNALS:
            raise KeyError(f"unknown signal {signal!r}")
        return self.lookback_load_h if signal == "load_req_per_s" else self.lookback_grid_h
