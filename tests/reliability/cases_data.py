"""Hostile data inputs: damaged, foreign or empty load files, unknown SMARD columns and weather
cities, user series with unit slips, rows outside the year, and DST / gap repairs.

Load-file cases copy the packaged files (``../shared/data/llm_load/``, or ``GREENLLM_LOAD_DIR``) into
the case's folder, damage one and point ``GREENLLM_LOAD_DIR`` there; user-series cases write a long
CSV made from the packaged series of ``configs/smoke.yaml`` and pass it with ``--set
data.user_data=...``.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from tests.reliability._case import Case, Invocation

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
SERVEGEN = "servegen_m_large_clients.csv.gz"
AZURE_CONV = "azure_llm_inference_2023_conv.csv.gz"
AZURE_CODE = "azure_llm_inference_2023_code.csv.gz"
LOAD_FILES = (SERVEGEN, AZURE_CONV, AZURE_CODE)
LOAD_ENV = {"GREENLLM_LOAD_DIR": "{tmp}/load"}


def _summary(*extra: str, env: dict[str, str] | None = None) -> Invocation:
    return Invocation(["data", "summary", SMOKE, "--plots", "{tmp}/plots", *extra], env or {})


def _packaged_load_dir() -> Path:
    from forecast.scenario import DataSettings

    return Path(os.environ.get("GREENLLM_LOAD_DIR", str(ROOT / DataSettings().load_dir)))


def _copy_load(tmp: Path) -> Path:
    """The packaged load files, copied (writable) into ``tmp/load``."""
    dest = tmp / "load"
    dest.mkdir(parents=True, exist_ok=True)
    for name in LOAD_FILES:
        shutil.copyfile(_packaged_load_dir() / name, dest / name)
    return dest


def _rewrite(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], Invocation]:
    """A case that rewrites one load file through ``change`` (read and written as gzip CSV)."""
    def build(tmp: Path) -> Invocation:
        path = _copy_load(tmp) / name
        change(pd.read_csv(path)).to_csv(path, index=False, compression="gzip")
        return _summary(env=LOAD_ENV)
    return build


def _truncated_gz(tmp: Path) -> Invocation:
    path = _copy_load(tmp) / SERVEGEN
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return _summary(env=LOAD_ENV)


def _garbled_gz(tmp: Path) -> Invocation:
    path = _copy_load(tmp) / SERVEGEN
    path.write_bytes(b"client;t_seconds;rate\n" + bytes(range(256)) * 64)  # not gzip at all
    return _summary(env=LOAD_ENV)


def _time_as_text(raw: pd.DataFrame) -> pd.DataFrame:
    ts = pd.Timestamp("2018-12-03") + pd.to_timedelta(raw["t_seconds"], unit="s")
    return raw.assign(t_seconds=ts.dt.strftime("%Y-%m-%d %H:%M"))


def _header_only(name: str) -> Callable[[Path], Invocation]:
    def build(tmp: Path) -> Invocation:
        path = _copy_load(tmp) / name
        with gzip.open(path, "rt") as fh:
            header = fh.readline()
        with gzip.open(path, "wt") as fh:
            fh.write(header)
        return _summary(env=LOAD_ENV)
    return build


# --- user series ---------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _smoke_signals() -> pd.DataFrame:
    from forecast.dataset import build_dataset
    from pipelines.config import load_config

    return build_dataset(load_config(SMOKE).scenario).signals


def _series(site: str, signal: str) -> pd.Series:
    sig = _smoke_signals()
    sel = sig[(sig["site"] == site) & (sig["signal"] == signal)]
    return pd.Series(sel["value"].to_numpy(), index=pd.DatetimeIndex(sel["ts"]))


def _long(site: str, signal: str, values: pd.Series, ts_text: pd.Index | None = None) -> pd.DataFrame:
    text = values.index.strftime("%Y-%m-%dT%H:%M:%S+00:00") if ts_text is None else ts_text
    return pd.DataFrame({"site": site, "ts": text, "signal": signal, "value": values.to_numpy()})


def _user(make: Callable[[], pd.DataFrame]) -> Callable[[Path], Invocation]:
    def build(tmp: Path) -> Invocation:
        make().to_csv(tmp / "user.csv", index=False)
        return _summary("--set", "data.user_data={tmp}/user.csv")
    return build


def _outside_year() -> pd.DataFrame:
    price = _series("FR", "price_eur_per_mwh")["2018-12-01":]
    extra = pd.Series(price.to_numpy()[:48], index=price.index[-1] + pd.Timedelta(hours=1) * np.arange(1, 49))
    return _long("FR", "price_eur_per_mwh", pd.concat([price, extra]))


def _dst_duplicate() -> pd.DataFrame:
    """DE price in Berlin local time; the second 02:00 of 28 Oct written as summer time (+02:00)."""
    price = _series("DE", "price_eur_per_mwh")
    local = price.index.tz_convert("Europe/Berlin")
    text = pd.Index(local.strftime("%Y-%m-%dT%H:%M:%S%z"))
    second = local.get_loc(pd.Timestamp("2018-10-28T01:00Z").tz_convert("Europe/Berlin"))
    text = text.where(np.arange(len(text)) != second, "2018-10-28T02:00:00+0200")
    return _long("DE", "price_eur_per_mwh", price, text)


def _gap() -> pd.DataFrame:
    price = _series("FR", "price_eur_per_mwh")
    return _long("FR", "price_eur_per_mwh", price.drop(price.index[4000:4003]))


CASES: list[Case] = [
    Case("load-truncated-gz", "load file", _truncated_gz, "clear error",
         (SERVEGEN, "truncated", "client, t_seconds")),
    Case("load-garbled-gz", "load file", _garbled_gz, "clear error",
         (SERVEGEN, "not a gzip CSV", "rate_req_per_s")),
    Case("load-time-not-numeric", "load file", _rewrite(SERVEGEN, _time_as_text), "clear error",
         (SERVEGEN, "'t_seconds'", "seconds since day 0", "line 2")),
    Case("load-header-only", "load file", _header_only(SERVEGEN), "clear error",
         (SERVEGEN, "no data rows", "t_seconds")),
    Case("load-rate-x1000", "load file",
         _rewrite(SERVEGEN, lambda r: r.assign(rate_req_per_s=r["rate_req_per_s"] * 1000)), "clear error",
         (SERVEGEN, "rate_req_per_s", "median", "req/s", "50000")),
    Case("azure-missing-column", "load file",
         _rewrite(AZURE_CONV, lambda r: r.drop(columns="GeneratedTokens")), "clear error",
         (AZURE_CONV, "missing column", "GeneratedTokens")),
    Case("azure-header-only", "load file", _header_only(AZURE_CODE), "clear error",
         (AZURE_CODE, "no data rows", "ContextTokens")),
    Case("azure-tokens-div1000", "load file",
         _rewrite(AZURE_CONV, lambda r: r.assign(ContextTokens=r["ContextTokens"] / 1000,
                                                 GeneratedTokens=r["GeneratedTokens"] / 1000)), "clear error",
         (AZURE_CONV, "ContextTokens", "median", "tokens")),
    Case("smard-unknown-column", "config",
         lambda tmp: _summary("--set", "sites.FR.price_columns.0.column=Atlantis"), "clear error",
         ("sites.FR.price_columns[0].column", "Atlantis", "SMARD", "valid columns", "'France'")),
    Case("smard-empty-column", "config",
         lambda tmp: _summary("--set", "sites.FR.price_columns.0.column=Poland"), "clear error",
         ("sites.FR.price_columns[0].column", "Poland", "no prices", "valid columns", "'France'")),
    Case("weather-unknown-city", "config",
         lambda tmp: _summary("--set", "sites.FR.weather_city=Atlantis"), "clear error",
         ("sites.FR.weather_city", "Atlantis", "available cities", "Paris")),
    Case("user-price-x1000", "user series",
         _user(lambda: _long("FR", "price_eur_per_mwh", _series("FR", "price_eur_per_mwh") * 1000)),
         "clear error", ("user.csv", "site FR", "price_eur_per_mwh", "EUR/MWh", "median", "EUR/kWh")),
    Case("user-carbon-div1000", "user series",
         _user(lambda: _long("DE", "carbon_g_per_kwh", _series("DE", "carbon_g_per_kwh") / 1000)),
         "clear error", ("user.csv", "site DE", "carbon_g_per_kwh", "gCO2/kWh", "median", "kg/kWh")),
    Case("user-temp-kelvin", "user series",
         _user(lambda: _long("SI", "temp_c", _series("SI", "temp_c") + 273.15)),
         "clear error", ("user.csv", "site SI", "temp_c", "degC", "median", "kelvin")),
    Case("user-load-x1000", "user series",
         _user(lambda: _long("Paris/chat", "load_req_per_s", _series("Paris/chat", "load_req_per_s") * 1000)),
         "clear error", ("user.csv", "Paris/chat", "load_req_per_s", "req/s", "median")),
    Case("user-rows-outside-year", "user series", _user(_outside_year), "clear error",
         ("user.csv", "site FR", "price_eur_per_mwh", "48 row(s) outside", "2018", "2019-01-01 00:00 UTC")),
    Case("user-header-only", "user series",
         _user(lambda: _long("FR", "temp_c", pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float))),
         "clear error", ("user.csv", "no data rows")),
    Case("user-dst-duplicate", "user series", _user(_dst_duplicate), "repair counted",
         ("DE price_eur_per_mwh: DST duplicate 1", "(user data)")),
    Case("user-gap-filled", "user series", _user(_gap), "repair counted",
         ("FR price_eur_per_mwh: gap filled 3 (user data)",)),
]
