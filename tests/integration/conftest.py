"""Integration suite: make tests/ importable and expose the sekmet server fixture."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
import requests  # noqa: E402
from loader import load_dir  # noqa: E402
from server import (  # noqa: E402
    SekmetServer,
    sekmet,  # noqa: E402,F401
    start_sekmet,
)

ROOT = HERE.parent.parent
SAMPLES = ROOT / "sample_bundles"


@pytest.fixture(scope="session")
def site_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """site id -> a sekmet server holding only that site's sample_bundles (started on first use)."""
    servers: dict[str, SekmetServer] = {}

    def get(site: str) -> SekmetServer:
        if site not in servers:
            if not (SAMPLES / site).is_dir():
                pytest.skip(f"sample_bundles/{site} not present")
            srv = start_sekmet(tmp_path_factory.mktemp(f"sekmet-{site}"))
            servers[site] = srv
            load_dir(requests.Session(), srv.base_url, SAMPLES / site)
        return servers[site]

    try:
        yield get
    finally:
        for srv in servers.values():
            srv.stop()
