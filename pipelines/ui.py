"""``greenllm ui``: the MLflow UI over the project's tracking store, on 127.0.0.1 only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from pipelines._tracking import tracking_uri

__all__ = ["ui_command", "run_ui"]


def ui_command(port: int) -> list[str]:
    """The ``mlflow ui`` command line for the configured store (artifacts served by the server)."""
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri(),
            "--host", "127.0.0.1", "--port", str(port)]


def port_taken(port: int, host: str = "127.0.0.1") -> str | None:
    """Why ``host:port`` cannot be listened on (None when it can): checked before the server starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def run_ui(port: int = 5000) -> int:
    """Start the UI, print its URL, and stop it on Ctrl-C."""
    if not 1 <= port <= 65535:
        print(f"greenllm ui: error: --port {port} is outside 1..65535", file=sys.stderr)
        return 2
    taken = port_taken(port)
    if taken:
        print(f"greenllm ui: error: --port {port}: 127.0.0.1:{port} is not free ({taken}); another "
              "greenllm ui or server holds it: stop it or choose another --port", file=sys.stderr)
        return 2
    print(f"greenllm ui: MLflow UI for {tracking_uri()} at http://127.0.0.1:{port} (Ctrl-C stops it)\n"
          f"  runs and charts: http://127.0.0.1:{port}/#/experiments?workflowType=machine_learning "
          "(MLflow 3 opens on its GenAI view otherwise)", flush=True)
    # The server and its workers run in a process group of their own, stopped as a whole on
    # Ctrl-C or SIGTERM: no server is left behind.
    proc = subprocess.Popen(ui_command(port), start_new_session=True)

    def _stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        code = proc.wait()
        if code != 0:
            print(f"greenllm ui: error: the MLflow server stopped with exit status {code} (its messages "
                  "are above)", file=sys.stderr)
            return 2
        return 0
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        print("greenllm ui: stopped")
        return 0
