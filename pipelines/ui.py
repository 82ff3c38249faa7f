"""``greenllm ui``: the MLflow UI over the project's tracking store, on 127.0.0.1 only."""

from __future__ import annotations

import subprocess
import sys

from pipelines._tracking import tracking_uri

__all__ = ["ui_command", "run_ui"]


def ui_command(port: int) -> list[str]:
    """The ``mlflow ui`` command line for the configured store (artifacts served by the server)."""
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri(),
            "--host", "127.0.0.1", "--port", str(port)]


def run_ui(port: int = 5000) -> int:
    """Start the UI, print its URL, and stop it on Ctrl-C."""
    if not 1 <= port <= 65535:
        print(f"greenllm ui: error: --port {port} is outside 1..65535", file=sys.stderr)
        return 2
    print(f"greenllm ui: MLflow UI for {tracking_uri()} at http://127.0.0.1:{port} (Ctrl-C stops it)", flush=True)
    proc = subprocess.Popen(ui_command(port))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        print("greenllm ui: stopped")
        return 0
