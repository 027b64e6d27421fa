"""A real MLflow tracking server on 127.0.0.1 (SQLite backend, temporary artefact root),
one per test module; nothing here reaches beyond this machine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP_S = 300  # a loaded 2-core CI machine needs a minute or more (database migrations)


@dataclass
class Server:
    uri: str
    root: Path
    process: subprocess.Popen

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("mlflow", reason="mlflow is not installed")
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = open(root / "server.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=root,  # whatever the server writes beside its stores stays in the temporary directory
    )
    served = Server(f"http://127.0.0.1:{port}", root, process)
    deadline = time.monotonic() + STARTUP_S
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited ({process.returncode}): {(root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{served.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not up after {STARTUP_S} s: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield served
    finally:
        served.kill()
        log.close()


@pytest.fixture(autouse=True)
def fail_fast(monkeypatch, tmp_path):
    """A dead server fails a request at once instead of retrying for minutes; MLflow's
    defaults (./mlruns, ./mlflow.db) would land in a temporary directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
