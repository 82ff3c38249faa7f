"""Hostile checkpoints: ``greenllm simulate --resume`` on a truncated, garbled or pickled
``checkpoint.npz``, on one made with another config, and with none there. Each must end as one
clear error (exit 2) naming the file and what is wrong — never a traceback, and never unpickling."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
from pathlib import Path

from tests.reliability._case import Case, Invocation

SMOKE = "configs/smoke.yaml"
RUN = ["simulate", SMOKE, "--forecaster", "perfect", "--steps", "4", "--out", "{tmp}/sim"]
_MADE: dict[str, bytes] = {}   # the good checkpoint, made once per process (every case makes the same)


def _greenllm(tmp: Path, store: str, *runs: list[str]) -> None:
    """Run ``greenllm`` in-process with the MLflow store ``{tmp}/store``; any failure is raised."""
    from pipelines.cli import main

    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/{store}"
    out = io.StringIO()
    try:
        for argv in runs:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                status = main([a.replace("{tmp}", str(tmp)) for a in argv])
            if status != 0:
                raise RuntimeError(f"building the case: greenllm {' '.join(argv)} exited {status}:\n"
                                   f"{out.getvalue()[-2000:]}")
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved


def _good_checkpoint(tmp: Path) -> Path:
    """``greenllm simulate … --checkpoint-every 2`` (in-process, temporary MLflow store) → its checkpoint."""
    path = tmp / "sim" / "checkpoint.npz"
    if "bytes" not in _MADE:
        _greenllm(tmp, "build-mlflow.db", [*RUN, "--checkpoint-every", "2"])
        _MADE["bytes"] = path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_MADE["bytes"])
    return path


def _after_retraining(tmp: Path) -> Invocation:
    """The issue's case: a learned run checkpointed, the forecaster retrained, then ``--resume``
    (accepted before, it logged 40,750 EUR where the uninterrupted run costs 19,806)."""
    train = ["train", SMOKE, "--no-progress"]
    latest = "models:/greenllm-forecaster-smoke-m-large/latest"   # not the champion: retraining moves latest
    learned = ["simulate", SMOKE, "--forecaster", latest, "--steps", "4", "--out", "{tmp}/sim"]
    _greenllm(tmp, "mlflow.db", train, [*learned, "--checkpoint-every", "2"], train)
    return Invocation([*learned, "--resume"])


def _resume(*extra: str) -> Invocation:
    return Invocation([*RUN, "--resume", *extra])


def _truncated(tmp: Path) -> Invocation:
    path = _good_checkpoint(tmp)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])   # a copy cut off mid-way
    return _resume()


def _garbled(tmp: Path) -> Invocation:
    path = _good_checkpoint(tmp)
    data = bytearray(path.read_bytes())
    mid = len(data) // 3
    data[mid:mid + 256] = bytes((b ^ 0x5A) for b in data[mid:mid + 256])   # a bad disk block
    path.write_bytes(bytes(data))
    return _resume()


class _Payload:
    """Unpickling it would create ``pwned`` beside the checkpoint."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(self.marker),))


def _pickle_renamed(tmp: Path) -> Invocation:
    path = tmp / "sim" / "checkpoint.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"t": 2, "state": _Payload(str(tmp / "pwned"))}))
    return _resume()


def _other_config(tmp: Path) -> Invocation:
    _good_checkpoint(tmp)
    return _resume("--set", "control.epsilon=0.002")


def _missing(tmp: Path) -> Invocation:
    return _resume()


_NOT_VALID = ("checkpoint.npz", "not a valid, complete")
CASES: list[Case] = [
    Case("checkpoint-truncated", "checkpoint", _truncated, "clear error", _NOT_VALID),
    Case("checkpoint-garbled", "checkpoint", _garbled, "clear error", _NOT_VALID),
    Case("checkpoint-pickle-renamed", "checkpoint", _pickle_renamed, "clear error", (*_NOT_VALID, "ZIP")),
    Case("checkpoint-other-config", "checkpoint", _other_config, "clear error",
         ("checkpoint.npz", "another run", "config.control.epsilon: 0.001 → 0.002")),
    Case("checkpoint-after-retraining", "checkpoint", _after_retraining, "clear error",
         ("checkpoint.npz", "another run", "forecaster.model_version: 1 → 2", "forecaster.model_run_id"),
         slow=True),
    Case("checkpoint-missing", "checkpoint", _missing, "clear error",
         ("--resume", "checkpoint.npz", "--checkpoint-every")),
]
