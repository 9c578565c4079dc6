"""pytest fixtures that run the sekmet-fhir test server (from .venv-sekmet/) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
SEKMET = ROOT / ".venv-sekmet" / "bin" / "sekmet"
SKIP_REASON = "sekmet-fhir test server not installed: run scripts/fhir-test-server.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SekmetServer:
    base_url: str
    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_sekmet(workdir: Path, *, server_auth: dict[str, Any] | None = None,
                 timeout: float = 60.0) -> SekmetServer:
    """Start sekmet on a free loopback port with a fresh data_dir; wait for /metadata."""
    if not SEKMET.exists():
        pytest.skip(SKIP_REASON)
    for _ in range(5):  # (a port found free can be taken before sekmet binds it: another one)
        server = _start_on(free_port(), workdir, server_auth, timeout)
        if server is not None:
            return server
    raise RuntimeError(f"sekmet found its port taken 5 times; see {workdir / 'sekmet.log'}")


# uvicorn's line once it listens: until then an answer at the port is another process's
_LISTENING = "Uvicorn running on"


def _start_on(port: int, workdir: Path, server_auth: dict[str, Any] | None,
              timeout: float) -> SekmetServer | None:
    """sekmet on `port`, answering /metadata; None if another process holds the port."""
    base = f"http://127.0.0.1:{port}/fhir"
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    cfg: dict[str, Any] = {
        "host": "127.0.0.1", "port": port, "base_url": base, "data_dir": str(data),
        "simulator": {"enabled": False}, "validation": {"inbound": "off"}, "log_inbound": False,
    }
    if server_auth:
        cfg["server_auth"] = server_auth
    settings = workdir / "settings.yaml"
    settings.write_text(json.dumps(cfg))  # JSON is valid YAML
    log = workdir / "sekmet.log"
    env = {**os.environ, "SEKMET_CONFIG": str(settings)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(SEKMET), "serve", "--config", str(settings), "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = SekmetServer(base, port, data, proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        said = log.read_text(errors="replace")
        if proc.poll() is not None:
            if "address already in use" in said:
                return None
            raise RuntimeError(f"sekmet exited ({proc.returncode}); see {log}:\n{said[-2000:]}")
        if _LISTENING in said:
            try:
                r = requests.get(f"{base}/metadata", timeout=2)
                if r.status_code in (200, 401):
                    return server
            except requests.RequestException:
                pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"sekmet did not answer /metadata within {timeout:.0f}s; see {log}")


@pytest.fixture(scope="session")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SekmetServer]:
    """A sekmet-fhir server for the test session (no auth)."""
    server = start_sekmet(tmp_path_factory.mktemp("sekmet"))
    try:
        yield server
    finally:
        server.stop()
