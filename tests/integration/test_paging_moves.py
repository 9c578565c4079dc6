"""Integration: sekmet pages by `_offset` over its write order, so a record updated or deleted
on the server while a search's pages are read moves the ones after it back: the record that
slides past the next page's offset is never returned. A full refresh removed it as deleted."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from loader import load_dir
from server import start_sekmet

from cohort.config import default_config
from cohort.runner import Loaded
from cohort.source.fhir import ServerSettings, pull
from cohort.source.fhir.client import FhirClient
from cohort.store import Store

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).resolve().parents[2] / "sample_bundles"


class _ChangeWhilePaging(requests.adapters.HTTPAdapter):
    """Before the second page of the first Observation search, `change` (PUT it unchanged, or
    DELETE) the first record of its first page on the server; `skipped` is the id then at the
    second page's offset, which slides back onto the first page unseen."""

    def __init__(self, base: str, change: str) -> None:
        super().__init__()
        self.base, self.change = base, change
        self.first: dict | None = None
        self.skipped: str | None = None

    def send(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        url = urlsplit(request.url)
        q = parse_qsl(url.query)
        if url.path.endswith("/Observation") and self.skipped is None:
            if "_offset" not in dict(q) and self.first is None and any(k == "patient" for k, _ in q):
                r = super().send(request, *args, **kwargs)
                self.first = json.loads(r.content)["entry"][0]["resource"]
                return r
            if dict(q).get("_offset") and self.first is not None:
                at = [(k, v) for k, v in q if k not in ("_offset", "_count")]
                at += [("_offset", dict(q)["_offset"]), ("_count", "1")]
                probe = requests.get(f"{self.base}/Observation?{urlencode(at)}", timeout=30).json()
                self.skipped = probe["entry"][0]["resource"]["id"]
                target = f"{self.base}/Observation/{self.first['id']}"
                if self.change == "delete":
                    requests.delete(target, timeout=30).raise_for_status()
                else:
                    body = {k: v for k, v in self.first.items() if k != "meta"}
                    requests.put(target, json=body, timeout=30).raise_for_status()
        return super().send(request, *args, **kwargs)


@pytest.mark.parametrize("change", ["update", "delete"])
def test_a_record_changed_while_a_search_is_paged_loses_no_other(tmp_path, change):
    loaded = Loaded.from_config(default_config())
    term, trial = loaded.term, loaded.trial
    screen = [t for ts in term.search_tokens(trial.screen_concepts).values() for t in ts]
    tokens = term.search_tokens(trial.concepts())
    srv = start_sekmet(tmp_path / "srv")
    try:
        load_dir(requests.Session(), srv.base_url, SAMPLES / "uci")
        s = ServerSettings.from_dict({"base_url": srv.base_url, "page_size": 5}, "test")
        with Store(tmp_path / "a.db") as store:
            pull("uci", s, store, tokens, screen_tokens=screen)
            transport = _ChangeWhilePaging(srv.base_url, change)
            session = requests.Session()
            session.mount(srv.base_url, transport)
            rep = pull("uci", s, store, tokens, screen_tokens=screen, full_refresh=True,
                       client=FhirClient(s, session=session))
            assert transport.skipped and transport.first
            # (the record that slid back is still on the server, and so in the store)
            assert store.get("uci", "Observation", transport.skipped) is not None, rep.to_dict()
            assert any("moved while its pages were read" in w for w in rep.warnings), rep.warnings
            gone = store.get("uci", "Observation", transport.first["id"]) is None
            assert gone is (change == "delete")
    finally:
        srv.stop()
