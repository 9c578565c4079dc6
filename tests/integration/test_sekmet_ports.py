"""start_sekmet when the port free_port found is taken before sekmet binds it (this machine's
other test runs pick ports alike): another port, never the other process's server."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
import requests
import server

pytestmark = pytest.mark.integration


class _Foreign(http.server.BaseHTTPRequestHandler):
    """Another process's server: answers every GET (a /metadata poll included) with 200."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
        body = b'{"resourceType": "CapabilityStatement", "publisher": "someone else"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_port_taken_before_sekmet_binds_it_is_not_taken_for_sekmet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sekmet failed to bind (exit 3, some 5 s after its start) while /metadata at its port was
    answered by the process holding it: that server was taken for the test's own."""
    foreign = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Foreign)
    threading.Thread(target=foreign.serve_forever, daemon=True).start()
    taken = [foreign.server_port]
    real_free_port = server.free_port
    monkeypatch.setattr(server, "free_port", lambda: taken.pop() if taken else real_free_port())
    try:
        started = server.start_sekmet(tmp_path / "sekmet")
        try:
            assert started.port != foreign.server_port
            meta = requests.get(f"{started.base_url}/metadata", timeout=10).json()
            assert meta["resourceType"] == "CapabilityStatement"
            assert meta.get("publisher") != "someone else"
            assert started.proc.poll() is None
        finally:
            started.stop()
    finally:
        foreign.shutdown()
        foreign.server_close()
