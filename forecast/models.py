"""Learned forecasters (global, multi-horizon, quantile) and the suite that bundles them.

``LearnedForecaster`` — one global model per signal, trained across all its series (series
identity as an embedding, per-series scaling, calendar features at the issue time), output
``H`` steps × quantiles (p10/p50/p90). For load it trains on the per-client series *and* the
(region, class) streams (their sums), and forecasts the streams: per-client history exists on the
recorded days only, so the product forecasts the aggregated streams with the model that learnt
from every client. The load model reads the 10-min history (``forecast.load_input_step_min``; the
last ``load_fine_h`` hours at 10 min, the older ones as hourly means, ``forecast.nets``) and
forecasts hourly means (``forecast.windows``); ``predict`` reads ``history[LOAD_10MIN]`` for it.

Two refinements sit on top of the nets, both stored in the JSON spec (a saved → loaded model
predicts identically): ``ensemble_size`` nets trained with consecutive seeds, their quantiles
averaged (``MemberMean``), and a split-conformal calibration of the quantile spread, fitted on the
validation period only (``forecast.calibration``: per horizon step, each quantile's distance from
the median is rescaled so that validation forecasts reach their nominal levels; the median is
unchanged and the quantiles stay ordered).

``ForecasterSuite`` — one forecaster per signal plus the derived wet bulb: ``wetbulb_c`` is
computed from the temperature quantiles with each site's climatological vapour pressure
(month × UTC hour, ``forecast.sources.humidity``) so the controller can compute water use. Its
``predict(history, t0, horizon)`` returns one ``Forecast`` with every signal (see
``forecast.output`` for how to read it). ``save``/``load`` write and read a bundle directory:
``state_dict.pt`` (tensors only, loaded with ``torch.load(..., weights_only=True)``) and
``spec.json`` (architecture, scaling, series, time zones, features, vapour-pressure tables).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch

from forecast.calibration import apply_spread_factors, fit_spread_factors
from forecast.features import CALENDAR_FEATURES, LOAD_10MIN, Scaling, as_history, calendar_features
from forecast.interface import STEP, Forecaster
from forecast.nets import ForecastNet, MemberMean, NetSpec
from forecast.outages import clock_groups, fill_outages, outage_mask
from forecast.output import DEFAULT_QUANTILES, Forecast
from forecast.settings import PROCESS_KEYS, ForecastSettings
from forecast.sources.humidity import saturation_vp_hpa, wetbulb_c
from forecast.training import train_net
from forecast.windows import SubStepWindows, complete_windows, rolling_mean, substep_ratio

__all__ = ["ForecasterSuite", "LearnedForecaster", "SPEC_VERSION"]

SPEC_VERSION = 1


def _tz_table(times: pd.DatetimeIndex, tzs: tuple[str, ...]) -> np.ndarray:
    return np.stack([calendar_features(times, tz) for tz in tzs])


class LearnedForecaster(Forecaster):
    """A global quantile net for one signal (architecture from ``ForecastSettings``).

    Args:
        signal: the signal it forecasts.
        settings: architecture, look-back, training settings.
        tz: series -> IANA time zone of its calendar (default UTC).
        step: time step.
        lookback_steps: override of the settings' look-back (e.g. for 5-min data).
        horizon_steps: override of the settings' horizon.
    """

    def __init__(self, signal: str, settings: ForecastSettings, tz: Mapping[str, str] | None = None,
                 step: pd.Timedelta = STEP, lookback_steps: int | None = None,
                 horizon_steps: int | None = None, level_steps: int | None = None) -> None:
        super().__init__(signal, step=step, quantiles=DEFAULT_QUANTILES)
        self.settings = settings
        self.name = f"learned_{settings.architecture_of(signal)}"
        self.tz = dict(tz or {})
        if signal == "load_req_per_s" and step == STEP and settings.load_input_step_min < 60:
            self.input_step = pd.Timedelta(minutes=settings.load_input_step_min)
            self.input_key = LOAD_10MIN
        self.ratio = substep_ratio(step, self.input_step)
        hours = settings.lookback_h(signal)
        self.lookback_steps = lookback_steps or int(pd.Timedelta(hours=hours) / self.input_step)
        self.horizon_steps = horizon_steps or settings.horizon_steps
        self.level_steps = level_steps or int(pd.Timedelta(hours=settings.level_h) / self.input_step)
        self.all_series: tuple[str, ...] = ()
        self.net: ForecastNet | MemberMean | None = None
        self.scaling: Scaling | None = None
        self.fit_report: dict[str, float] = {}
        # (H, Q) factors on each quantile's distance from the median, fitted on validation
        # forecasts (``forecast.calibration``); None = the net's raw quantiles.
        self.calibration: np.ndarray | None = None

    # --- training -------------------------------------------------------------------------
    def _tz_index(self, series: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
        zones = tuple(sorted({self.tz.get(s, "UTC") for s in series}))
        return zones, np.array([zones.index(self.tz.get(s, "UTC")) for s in series])

    def _batches(self, frame: pd.DataFrame, target_ok: np.ndarray, stride: int,
                 seed: int | None) -> SubStepWindows:
        """Windows of ``frame`` (at the input step): complete look-back, every target sub-step wanted
        (``target_ok``) and known; origins every ``stride`` input steps from the first whole step."""
        assert self.scaling is not None
        raw = frame.to_numpy(dtype=np.float64)
        z = self.scaling.forward(raw).T
        L_, H, r = self.lookback_steps, self.horizon_steps, self.ratio
        y = self.scaling.forward(rolling_mean(np.where(target_ok, raw.T, np.nan), r).T).T  # of the step means
        sid, org = complete_windows(z, y, L_, H, r, stride)
        if len(sid) == 0:
            raise ValueError(f"{self.signal}: no complete windows (look-back {L_} + horizon {H} × {r} steps) "
                             f"in {frame.index[0]} … {frame.index[-1]}")
        zones, tz_idx = self._tz_index(self.all_series)
        cal = _tz_table(frame.index, zones)
        return SubStepWindows(np.nan_to_num(z).astype(np.float32), y.astype(np.float32), r, cal, tz_idx, sid,
                              org, L_, H, self.settings.batch_size, seed)

    def _train_stride(self) -> int:
        """Training origins every this many input steps (load: ``load_origin_stride_min``)."""
        if self.ratio > 1:
            return int(pd.Timedelta(minutes=self.settings.load_origin_stride_min) / self.input_step)
        return self.settings.window_stride_h if self.step >= STEP else 1

    def fit(self, history: pd.DataFrame, validation: pd.DataFrame | None = None,
            outputs: tuple[str, ...] | None = None, logger: Any = None,
            progress: bool = True) -> LearnedForecaster:
        """Train on ``history`` (train period, NaN elsewhere); early-stop on ``validation``.

        Args:
            history: wide frame of training data at ``input_step`` (load: 10 min when
                ``forecast.load_input_step_min`` is 10); every column is a training series.
            validation: wide frame with the training data plus validation targets; windows
                whose targets are all validation values (non-NaN here, NaN/absent in
                ``history``) are the validation set. Default: the last 10 % of ``history``.
            outputs: series that ``predict`` forecasts (default: all columns).
            logger: a Lightning logger (e.g. MLflow's), or None.
            progress: show Lightning's progress bar.
        """
        s = self.settings
        torch.set_num_threads(s.num_threads)
        self.all_series = tuple(str(c) for c in history.columns)
        self.series = tuple(outputs) if outputs else self.all_series
        unknown = [o for o in self.series if o not in self.all_series]
        if unknown:
            raise ValueError(f"{self.signal}: outputs {unknown} are not training series")
        self.scaling = Scaling.fit(history.to_numpy(dtype=np.float64),
                                   log=self.signal == "load_req_per_s" and s.load_log_scale)
        history, validation, target_ok_v = self._validation_split(history, validation)
        train_b = self._batches(history, np.ones((len(self.all_series), len(history)), bool),
                                self._train_stride(), s.seed)
        valid_b = self._batches(validation, target_ok_v, self.ratio, None)
        nets = self._train_members(train_b, valid_b, logger, progress)
        self.net = nets[0] if len(nets) == 1 else MemberMean(nets)
        self.net.eval()
        self.fit_report.update(train_windows=float(len(train_b.origins)),
                               valid_windows=float(len(valid_b.origins)))
        self.calibration = None
        if s.calibrate_intervals:
            self._calibrate(valid_b)
        return self

    def _validation_split(self, history: pd.DataFrame, validation: pd.DataFrame | None
                          ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
        """Training rows, validation frame and its ``(series, T)`` mask of validation targets
        (values absent from ``history``; default: the last 10 % of ``history``)."""
        if validation is None:
            cut = history.index[int(0.9 * len(history))]
            validation, history = history, history[history.index < cut]
            target_ok_v = (validation.index >= cut)[None, :].repeat(len(self.all_series), 0)
        else:
            validation = validation.reindex(columns=list(self.all_series))
            seen = history.reindex(validation.index).notna().to_numpy()
            target_ok_v = (validation.notna().to_numpy() & ~seen).T
        return history, validation, target_ok_v

    def _train_members(self, train_b: SubStepWindows, valid_b: SubStepWindows, logger: Any,
                       progress: bool) -> list[ForecastNet]:
        """The ensemble's nets, trained in turn; member k's report is merged into ``fit_report``."""
        s = self.settings
        nets = []
        for k in range(s.ensemble_of(self.signal)):  # member k: seed + k (weights, batch order, dropout)
            L.seed_everything(s.seed + k, workers=True, verbose=False)
            net = ForecastNet(self.net_spec())
            report = train_net(
                net, train_b, valid_b, quantiles=self.quantiles, learning_rate=s.learning_rate,
                max_epochs=s.max_epochs, patience=s.patience, batches_per_epoch=s.batches_per_epoch,
                seed=s.seed + k, prefix=f"{self.signal}." if k == 0 else f"{self.signal}.member{k}.",
                logger=logger, progress=progress, strategy=s.strategy, devices=s.devices,
                num_nodes=s.num_nodes, num_threads=s.num_threads)
            if k == 0:
                self.fit_report = report
            else:
                self.fit_report[f"member{k}_best_val_loss"] = report["best_val_loss"]
                self.fit_report[f"member{k}_epochs"] = report["epochs"]
            nets.append(net)
        return nets

    def _calibrate(self, valid: SubStepWindows) -> None:
        """Fit the spread factors on the validation windows of the output series only."""
        assert self.net is not None
        outputs = np.array([self.all_series.index(o) for o in self.series])
        keep = np.isin(valid.series_idx, outputs)
        sid, org = valid.series_idx[keep], valid.origins[keep]
        if len(sid) == 0:
            return
        x, cal, y = valid.arrays(sid, org)
        self.net.eval()
        with torch.no_grad():
            pred = np.concatenate([self.net(torch.from_numpy(x[b].astype(np.float32)),
                                            torch.from_numpy(sid[b].astype(np.int64)),
                                            torch.from_numpy(cal[b].astype(np.float32))).numpy()
                                   for b in (slice(a, a + 8192) for a in range(0, len(sid), 8192))])
        mid = len(self.quantiles) // 2
        lo, hi = pred[..., 0], pred[..., -1]
        before = float(((y >= lo) & (y <= hi)).mean())
        self.calibration = fit_spread_factors(pred, y, self.quantiles)
        adj = apply_spread_factors(pred[:, :, None, :], self.calibration, self.quantiles)[:, :, 0]
        after = float(((y >= adj[..., 0]) & (y <= adj[..., -1])).mean())
        self.fit_report.update(valid_coverage_raw=before, valid_coverage_calibrated=after,
                               calibration_windows=float(len(sid)),
                               calibration_factor_mean=float(np.delete(self.calibration, mid, axis=1).mean()))

    def net_spec(self) -> NetSpec:
        s = self.settings
        fine = int(pd.Timedelta(hours=s.load_fine_h) / self.input_step) if self.ratio > 1 else 0
        return NetSpec(s.architecture_of(self.signal), self.lookback_steps, self.horizon_steps, len(self.all_series),
                       len(CALENDAR_FEATURES), len(self.quantiles), self.level_steps, s.hidden,
                       s.embedding_dim, s.dropout, self.ratio, min(fine, self.lookback_steps))

    # --- prediction -----------------------------------------------------------------------
    def _windows(self, values: np.ndarray, times: pd.DatetimeIndex, origins: np.ndarray,
                 horizon: int) -> np.ndarray:
        assert self.scaling is not None
        if horizon > self.horizon_steps:
            raise ValueError(f"{self.signal}: horizon {horizon} exceeds the trained {self.horizon_steps} steps")
        cols = np.array([self.all_series.index(s) for s in self.series])
        if self.signal == "load_req_per_s" and self.settings.load_outage_fill:
            values = fill_outages(values, outage_mask(values, clock_groups(self.series, self.tz)))
        z = self.scaling.forward(values, cols).T.astype(np.float32)  # (n, T)
        pred = self._scaled(z, times, origins)[:, :horizon]  # (N, H, n, Q), scaled
        if self.calibration is not None:   # fitted on scaled forecasts: applied before unscaling
            factors = self._rolling_factors(z, times, origins)
            for i, f in enumerate(factors):
                pred[i] = apply_spread_factors(pred[i], self.calibration if f is None else f, self.quantiles)
        return self.scaling.inverse(pred.transpose(0, 1, 3, 2), cols).transpose(0, 1, 3, 2)

    def _scaled(self, z: np.ndarray, times: pd.DatetimeIndex, origins: np.ndarray) -> np.ndarray:
        """The net's raw quantiles ``(N, horizon_steps, n, Q)`` in scaled units from scaled inputs ``z (n, T)``."""
        assert self.net is not None
        cols = np.array([self.all_series.index(s) for s in self.series])
        n, n_o = len(cols), len(origins)
        t0 = times[0] + pd.to_timedelta(origins * self.input_step.total_seconds(), unit="s")
        zones, tz_idx = self._tz_index(self.series)
        cal = _tz_table(pd.DatetimeIndex(t0), zones)  # (n_tz, N, F)
        sid = np.tile(np.arange(n), n_o)
        org = np.repeat(origins, n)
        x = z[sid[:, None], org[:, None] + np.arange(-self.lookback_steps, 0)[None, :]]
        c = cal[tz_idx[sid], np.repeat(np.arange(n_o), n)]
        out = []
        if self.net.training:
            self.net.eval()
        with torch.no_grad():
            for a in range(0, len(sid), 8192):
                b = slice(a, a + 8192)
                out.append(self.net(torch.from_numpy(x[b]), torch.from_numpy(cols[sid[b]]),
                                    torch.from_numpy(c[b])).numpy())
        pred = np.concatenate(out).reshape(n_o, n, self.horizon_steps, -1)
        return pred.transpose(0, 2, 1, 3)

    @property
    def calibration_window(self) -> int:
        """Past origins (forecast steps) the rolling calibration reads; 0 when it is off (only the
        load model with ``forecast.load_calibration_window_h`` > 0 and calibrated intervals)."""
        s = self.settings
        if self.signal != "load_req_per_s" or not s.calibrate_intervals:
            return 0
        return int(pd.Timedelta(hours=s.load_calibration_window_h) / self.step)

    @property
    def history_steps(self) -> int:
        """Input rows ``predict`` reads: the look-back, plus the rolling calibration's past origins."""
        return self.lookback_steps + self.ratio * self.calibration_window

    def _rolling_factors(self, z: np.ndarray, times: pd.DatetimeIndex,
                         origins: np.ndarray) -> list[np.ndarray | None]:
        """Per origin, spread factors ``(H, Q)`` whose quantiles below the median are refitted on the
        forecasts issued at the last ``calibration_window`` origins before it, scored on their
        targets that end before it (``forecast.calibration``); the median and the quantiles above it
        keep the validation factors. None (the validation factors) where the history is shorter.
        Reads ``z`` strictly before each origin."""
        k_max, r = self.calibration_window, self.ratio
        out: list[np.ndarray | None] = [None] * len(origins)
        if k_max == 0 or self.calibration is None:
            return out
        past = origins[:, None] - r * np.arange(k_max, 0, -1)[None, :]  # (N, K), oldest first
        ok = (past >= self.lookback_steps).all(axis=1)
        if not ok.any():
            return out
        uniq = np.unique(past[ok])
        raw = self._scaled(z, times, uniq)  # (M, H, n, Q)
        targets = rolling_mean(z.astype(np.float64), r)  # target of (o, h): targets[:, o + r·h]
        h = np.arange(self.horizon_steps)
        below = len(self.quantiles) // 2   # quantile columns below the median
        lower = slice(0, below + 1)         # those and the median: the only ones refitted
        for i in np.flatnonzero(ok):
            at = np.searchsorted(uniq, past[i])
            ends = past[i][:, None] + r * h[None, :] + r  # (K, H): first input step after each target
            pos = np.minimum(past[i][:, None] + r * h[None, :], z.shape[1] - 1)
            y = np.where((ends <= origins[i])[:, :, None], targets[:, pos].transpose(1, 2, 0), np.nan)  # (K, H, n)
            pred = raw[at][..., lower].transpose(0, 2, 1, 3).reshape(-1, self.horizon_steps, below + 1)
            fitted = fit_spread_factors(pred, y.transpose(0, 2, 1).reshape(-1, self.horizon_steps),
                                        self.quantiles[lower])
            f = self.calibration[np.minimum(h, len(self.calibration) - 1)].copy()
            f[:, :below] = fitted[:, :below]
            out[i] = f
        return out

    # --- persistence ----------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        assert self.net is not None and self.scaling is not None
        members = len(self.net.members) if isinstance(self.net, MemberMean) else 1
        return {"signal": self.signal, "name": self.name, "net": self.net.spec.to_json(), "members": members,
                "series": list(self.all_series), "outputs": list(self.series),
                "tz": {s: self.tz.get(s, "UTC") for s in self.all_series},
                "scaling": self.scaling.to_json(), "features": list(CALENDAR_FEATURES),
                "quantiles": list(self.quantiles), "step_s": self.step.total_seconds(),
                "input": self.input_key, "input_step_s": self.input_step.total_seconds(),
                "settings": {k: (list(v) if isinstance(v, tuple) else v)
                             for k, v in self.settings.__dict__.items() if k not in PROCESS_KEYS},
                "fit_report": self.fit_report,
                "calibration": None if self.calibration is None else {
                    "method": "split-conformal scaling of each quantile's distance from the median, "
                              "per horizon step (±2 steps pooled), fitted on the validation period"
                              + (f"; the quantiles below the median refitted at every forecast on the last "
                                 f"{self.calibration_window} origins whose targets are known (these factors while "
                                 "the history is shorter)"
                                 if self.calibration_window else ""),
                    "factors": self.calibration.tolist()}}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], state: dict[str, torch.Tensor]) -> LearnedForecaster:
        settings = dict(spec["settings"])
        settings["signals"] = tuple(settings["signals"])
        settings["tcn_signals"] = tuple(settings.get("tcn_signals", ()))
        settings.setdefault("load_input_step_min", 60)   # bundles from before the 10-min inputs
        settings.setdefault("load_log_scale", False)
        settings.setdefault("load_calibration_window_h", 0)   # bundles from before the rolling calibration
        settings.setdefault("load_outage_fill", False)        # bundles from before the outage fill
        net = NetSpec(**spec["net"])
        self = cls(spec["signal"], ForecastSettings(**settings), spec["tz"],
                   pd.Timedelta(seconds=spec["step_s"]), net.lookback, net.horizon, net.level_steps)
        self.all_series, self.series = tuple(spec["series"]), tuple(spec["outputs"])
        self.scaling = Scaling.from_json(spec["scaling"])
        self.fit_report = dict(spec.get("fit_report", {}))
        calib = spec.get("calibration")
        self.calibration = None if calib is None else np.asarray(calib["factors"], dtype=np.float64)
        members = int(spec.get("members", 1))
        self.net = ForecastNet(net) if members == 1 else MemberMean([ForecastNet(net) for _ in range(members)])
        self.net.load_state_dict(state)
        self.net.eval()
        return self


class ForecasterSuite:
    """One forecaster per signal, plus ``wetbulb_c`` derived from the ``temp_c`` forecast.

    Args:
        models: signal -> fitted forecaster.
        vapour_pressure_hpa: site -> ``(12, 24)`` climatological vapour pressure (month × UTC
            hour, hPa); with a temperature model, the wet bulb is derived for these sites.
    """

    def __init__(self, models: Mapping[str, Forecaster],
                 vapour_pressure_hpa: Mapping[str, np.ndarray] | None = None) -> None:
        self.models = dict(models)
        self.vapour_pressure_hpa = {k: np.asarray(v, float) for k, v in (vapour_pressure_hpa or {}).items()}

    def check_covers(self, horizon_steps: int, load_quantile: float) -> None:
        """Raise ``ValueError`` naming the model and the setting when a model forecasts fewer steps
        than the controller plans (``control.horizon_steps``) or the load model lacks the
        provisioning quantile (``control.load_quantile``)."""
        for signal, model in self.models.items():
            trained = getattr(model, "horizon_steps", horizon_steps)
            if trained < horizon_steps:
                raise ValueError(f"forecaster {signal}: trained for {trained} steps, but control.horizon_steps is "
                                 f"{horizon_steps} (valid with this model: 1 … {trained}; retrain with "
                                 f"forecast.horizon_steps ≥ {horizon_steps})")
            if signal == "load_req_per_s" and not any(abs(q - load_quantile) < 1e-9 for q in model.quantiles):
                raise ValueError(f"forecaster {signal}: control.load_quantile {load_quantile} is not one of its "
                                 f"quantiles {model.quantiles}")

    def predict(self, history: object, t0: pd.Timestamp | str, horizon: int) -> Forecast:
        """Every signal's forecast from ``t0`` (UTC) over ``horizon`` steps, from rows before t0."""
        hist = as_history(history)
        out: Forecast | None = None
        for model in self.models.values():
            fc = model.predict(hist, t0, horizon)
            out = fc if out is None else out.merged(fc)
        if out is None:
            raise ValueError("ForecasterSuite: no models")
        if "temp_c" in out.values and self.vapour_pressure_hpa:
            out = out.merged(self._wetbulb(out))
        return out

    def _wetbulb(self, fc: Forecast) -> Forecast:
        sites = tuple(s for s in fc.series["temp_c"] if s in self.vapour_pressure_hpa)
        ts = fc.timestamps
        temp = fc.values["temp_c"][:, [fc.series["temp_c"].index(s) for s in sites]]
        vp = np.stack([self.vapour_pressure_hpa[s][ts.month - 1, ts.hour] for s in sites], axis=1)
        rh = 100.0 * vp[:, :, None] / saturation_vp_hpa(temp)
        return Forecast(fc.t0, fc.step, fc.quantiles, {"wetbulb_c": sites}, {"wetbulb_c": wetbulb_c(temp, rh)})

    def save(self, folder: Path | str) -> Path:
        """Write ``state_dict.pt`` and ``spec.json`` (learned models only) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state: dict[str, torch.Tensor] = {}
        specs = []
        for sig, model in self.models.items():
            if not isinstance(model, LearnedForecaster) or model.net is None:
                raise TypeError(f"ForecasterSuite.save: {sig} is not a fitted learned model")
            specs.append(model.spec())
            state.update({f"{sig}::{k}": v.detach().clone() for k, v in model.net.state_dict().items()})
        torch.save(state, folder / "state_dict.pt")
        spec = {"format": "greenllm-forecaster", "version": SPEC_VERSION, "models": specs,
                "derived": {"wetbulb_c": "Stull 2011 from temp_c quantiles and climatological vapour pressure"},
                "vapour_pressure_hpa": {k: v.tolist() for k, v in self.vapour_pressure_hpa.items()}}
        (folder / "spec.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> ForecasterSuite:
        """Read a bundle written by ``save`` (tensors with ``weights_only=True``)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"forecaster {folder}: no such folder (give perfect, seasonal-naive, "
                                    "a models:/ URI or a folder written by the forecaster's save)")
        for name in ("spec.json", "state_dict.pt"):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"forecaster bundle {folder}: {name} missing")
        try:
            spec = json.loads((folder / "spec.json").read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{folder}/spec.json: not valid JSON ({exc})") from None
        if (not isinstance(spec, dict) or spec.get("format") != "greenllm-forecaster"
                or spec.get("version") != SPEC_VERSION):
            raise ValueError(f"{folder}/spec.json: not a greenllm-forecaster v{SPEC_VERSION} bundle")
        try:
            state = torch.load(folder / "state_dict.pt", map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises several types for a damaged file
            raise ValueError(f"{folder}/state_dict.pt: not a readable tensor file (truncated or "
                             f"damaged?): {type(exc).__name__}") from None
        models = {}
        for m in spec["models"]:
            pre = f"{m['signal']}::"
            sub = {k[len(pre):]: v for k, v in state.items() if k.startswith(pre)}
            models[m["signal"]] = LearnedForecaster.from_spec(m, sub)
        return cls(models, spec.get("vapour_pressure_hpa"))
