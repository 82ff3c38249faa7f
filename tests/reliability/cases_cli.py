"""Hostile command lines: flags, times, output folders, configs and ``--set``, the UI's port, and a
damaged forecaster bundle. Each must end as one clear error (exit 2) naming the flag or key and
what is accepted, before any long work starts."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from tests.reliability._case import Case, Invocation

SMOKE = "configs/smoke.yaml"
_HELD: list[socket.socket] = []  # sockets kept open while a case runs (busy port)


def _argv(*args: str) -> Callable[[Path], Invocation]:
    return lambda tmp: Invocation(list(args))


def _existing_file_as_out(tmp: Path) -> Invocation:
    (tmp / "result.txt").write_text("keep me\n")
    return Invocation(["simulate", SMOKE, "--forecaster", "perfect", "--steps", "2", "--out", "{tmp}/result.txt"])


def _existing_file_as_plots(tmp: Path) -> Invocation:
    (tmp / "plots").write_text("keep me\n")
    return Invocation(["data", "summary", SMOKE, "--plots", "{tmp}/plots"])


def _busy_port(tmp: Path) -> Invocation:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    _HELD.append(sock)
    return Invocation(["ui", "--port", str(sock.getsockname()[1])])


def _config_not_yaml(tmp: Path) -> Invocation:
    (tmp / "bad.yaml").write_text("sites: [unclosed\n  - name: DE\n")
    return Invocation(["data", "summary", "{tmp}/bad.yaml", "--plots", "{tmp}/plots"])


def _config_unknown_key(tmp: Path) -> Invocation:
    (tmp / "typo.yaml").write_text(f"extends: {Path(SMOKE).resolve()}\ncontrol:\n  horizon_step: 12\n")
    return Invocation(["data", "summary", "{tmp}/typo.yaml", "--plots", "{tmp}/plots"])


def _damaged_bundle(tmp: Path) -> Invocation:
    bundle = tmp / "bundle"
    bundle.mkdir()
    (bundle / "spec.json").write_text('{"format": "greenllm-forecaster", "version": 1}')
    (bundle / "state_dict.pt").write_bytes(b"PK\x03\x04 not really a zip")
    return Invocation(["simulate", SMOKE, "--forecaster", "{tmp}/bundle", "--steps", "2", "--out", "{tmp}/sim"])


def _garbled_spec(tmp: Path) -> Invocation:
    bundle = tmp / "bundle"
    bundle.mkdir()
    (bundle / "spec.json").write_text('{"format": "greenllm-forec')
    (bundle / "state_dict.pt").write_bytes(b"")
    return Invocation(["plan", SMOKE, "--at", "2018-12-14T08:00Z", "--forecaster", "{tmp}/bundle"])


CASES = [
    Case("steps-zero", "CLI flag", _argv("simulate", SMOKE, "--steps", "0"), "clear error",
         ("--steps", "0", "≥ 1")),
    Case("steps-not-a-number", "CLI flag", _argv("compare", SMOKE, "--steps", "three"), "clear error",
         ("--steps", "three", "whole number")),
    Case("checkpoint-every-negative", "CLI flag", _argv("simulate", SMOKE, "--checkpoint-every", "-2"),
         "clear error", ("--checkpoint-every", "-2", "≥ 0")),
    Case("plan-at-half-past", "CLI flag", _argv("plan", SMOKE, "--at", "2018-12-14T08:30Z"), "clear error",
         ("--at", "08:30", "start of an hour")),
    Case("plan-at-no-zone", "CLI flag", _argv("plan", SMOKE, "--at", "2018-12-14T08:00"), "clear error",
         ("--at", "no time zone")),
    Case("forecast-at-not-a-time", "CLI flag", _argv("forecast", SMOKE, "--at", "tomorrow"), "clear error",
         ("--at", "tomorrow", "not a time")),
    Case("window-unknown-name", "CLI flag", _argv("simulate", SMOKE, "--window", "dec-24"), "clear error",
         ("--window", "dec-24", "primary", "nov-26")),
    Case("window-not-on-the-hour", "CLI flag", _argv("compare", SMOKE, "--window", "2018-12-14T00:10Z"),
         "clear error", ("--window", "start of an hour")),
    Case("window-outside-the-data", "CLI flag",
         _argv("simulate", SMOKE, "--forecaster", "perfect", "--window", "2019-06-01T00:00Z", "--out", "{tmp}/sim"),
         "clear error", ("2019-06-01", "outside the data", "2018-01-01")),
    Case("plan-outside-the-data", "CLI flag",
         _argv("plan", SMOKE, "--forecaster", "perfect", "--at", "2017-12-31T23:00Z"),
         "clear error", ("2017-12-31", "outside the data")),
    Case("week-outside-the-data", "CLI flag",
         _argv("data", "summary", SMOKE, "--week", "2019-05-01", "--plots", "{tmp}/plots"), "clear error",
         ("--week", "2019-05-01", "2018-01-01", "2018-12-25")),
    Case("week-not-a-date", "CLI flag",
         _argv("data", "summary", SMOKE, "--week", "monday", "--plots", "{tmp}/plots"), "clear error",
         ("--week", "monday", "not a date")),
    Case("out-is-an-existing-file", "CLI flag", _existing_file_as_out, "clear error",
         ("--out", "result.txt", "existing file")),
    Case("plots-is-an-existing-file", "CLI flag", _existing_file_as_plots, "clear error",
         ("--plots", "existing file")),
    Case("unknown-controller", "CLI flag",
         _argv("simulate", SMOKE, "--controller", "round-robin", "--forecaster", "perfect", "--out", "{tmp}/sim"),
         "clear error", ("round-robin", "capacity-proportional")),
    Case("forecaster-folder-missing", "CLI flag",
         _argv("simulate", SMOKE, "--forecaster", "{tmp}/no-such-model", "--out", "{tmp}/sim"), "clear error",
         ("no-such-model", "no such folder", "seasonal-naive")),
    Case("forecaster-bundle-damaged", "forecaster bundle", _damaged_bundle, "clear error",
         ("state_dict.pt", "not a readable")),
    Case("forecaster-spec-garbled", "forecaster bundle", _garbled_spec, "clear error",
         ("spec.json", "not valid JSON")),
    Case("ui-port-busy", "UI", _busy_port, "clear error", ("--port", "not free", "another")),
    Case("ui-port-out-of-range", "UI", _argv("ui", "--port", "0"), "clear error", ("--port", "≥ 1")),
    Case("config-missing", "config", _argv("data", "summary", "{tmp}/nope.yaml"), "clear error",
         ("nope.yaml", "not found")),
    Case("config-not-yaml", "config", _config_not_yaml, "clear error", ("bad.yaml", "not valid YAML")),
    Case("config-unknown-key", "config", _config_unknown_key, "clear error",
         ("control", "horizon_step", "valid keys", "horizon_steps")),
    Case("set-without-equals", "config", _argv("data", "summary", SMOKE, "--set", "control.rho_max"),
         "clear error", ("--set", "control.rho_max", "key.path=value")),
    Case("set-out-of-range", "config", _argv("data", "summary", SMOKE, "--set", "control.rho_max=1.5"),
         "clear error", ("control.rho_max", "1.5", "[0.05, 1]")),
    Case("set-unknown-site", "config",
         _argv("data", "summary", SMOKE, "--set", "sites.XX.water_budget_l_per_day=5e4"), "clear error",
         ("sites.XX", "DE", "FR")),
]

CASES += [
    Case("tracking-uri-unknown-scheme", "MLflow store",
         lambda tmp: Invocation(["simulate", SMOKE, "--forecaster", "perfect", "--steps", "2", "--out", "{tmp}/sim"],
                                {"MLFLOW_TRACKING_URI": "foo://bar"}),
         "clear error", ("MLFLOW_TRACKING_URI", "foo://bar", "sqlite")),
    Case("tracking-uri-plain-folder", "MLflow store",
         lambda tmp: Invocation(["train", SMOKE], {"MLFLOW_TRACKING_URI": "{tmp}/mlruns"}),
         "clear error", ("MLFLOW_TRACKING_URI", "plain folder")),
]

CASES += [
    Case("compare-forecaster-folder-missing", "CLI flag",
         _argv("compare", SMOKE, "--forecaster", "{tmp}/no-such-model", "--steps", "2", "--out", "{tmp}/cmp"),
         "clear error", ("no-such-model", "no such folder")),
]

CASES += [
    Case("sweep-grid-without-equals", "CLI flag", _argv("sweep", SMOKE, "--grid", "control.epsilon"),
         "clear error", ("--grid", "control.epsilon", "key.path=v1,v2")),
    Case("sweep-unknown-controller", "CLI flag", _argv("sweep", SMOKE, "--controllers", "mpc,round-robin"),
         "clear error", ("--controllers", "round-robin", "capacity-proportional")),
    Case("sweep-forecaster-folder-missing", "CLI flag",
         _argv("sweep", SMOKE, "--forecaster", "{tmp}/no-such-model", "--out", "{tmp}/sweep"), "clear error",
         ("no-such-model", "no such folder")),
]
