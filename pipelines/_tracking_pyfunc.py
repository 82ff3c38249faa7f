"""The forecaster as an MLflow pyfunc model, from code: MLflow stores this file as the model's code
and the bundle (``state_dict.pt`` + ``spec.json``, ``forecast.models.ForecasterSuite.save``) as its
artifact ``bundle``; nothing is pickled. ``pipelines._tracking.log_forecaster`` logs it.

``mlflow.pyfunc.load_model("models:/<name>@champion").predict(history, params={...})``:

* ``history`` — the long table ``site | ts | signal | value`` (``ts`` in UTC without a zone:
  MLflow's datetime type; the product series of every signal, ``forecast.features.long_history``,
  with the 10-min load as signal ``load_req_per_s@10min``), rows before ``t0`` only are read;
* ``params`` — ``t0`` (ISO time with a zone; default: one hour after the last row) and
  ``horizon`` (steps, default 24);
* returns the quantile forecasts as the long table ``signal | site | ts | quantile | value``
  (``forecast.output.Forecast.long``, ``ts`` in UTC without a zone), the same numbers
  ``ForecasterSuite.predict`` gives.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

DEFAULT_HORIZON = 24


class ForecasterModel(PythonModel):
    """Loads the bundle once; each ``predict`` is one ``ForecasterSuite.predict``."""

    def load_context(self, context: Any) -> None:
        from forecast.models import ForecasterSuite

        self.suite = ForecasterSuite.load(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = params or {}
        history = model_input.copy()
        history["ts"] = pd.to_datetime(history["ts"], utc=True)
        if params.get("t0"):
            t0 = pd.Timestamp(params["t0"])
        else:  # one hour after the last hourly row (the 10-min load rows run on within that hour)
            from forecast.features import LOAD_10MIN

            t0 = history.loc[history["signal"] != LOAD_10MIN, "ts"].max() + pd.Timedelta(hours=1)
        t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0
        horizon = int(params.get("horizon") or DEFAULT_HORIZON)
        out = self.suite.predict(history, t0, horizon).long()
        out["ts"] = out["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
        return out


mlflow.models.set_model(ForecasterModel())
