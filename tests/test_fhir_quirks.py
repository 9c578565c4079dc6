"""Server quirks (a refused _count, Observation categories, a Bulk kick-off's Medication or
_typeFilter) learned one night and used from the start on later ones; and parallel searches
refused before the shared _count switch flips."""

from __future__ import annotations

import threading
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from fhir_fakes import SLE, TOKENS, oo, population
from test_fhir_pull import PageFake, settings

from cohort.source.fhir import pull
from cohort.store import Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s.db") as s:
        yield s


def _query(req) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(req.url).query))


def _path(req) -> str:
    return urlsplit(req.url).path.rsplit("/", 1)[1]


def test_two_parallel_searches_refused_for_count_each_retry_without_it(store):
    """Reviewer's suspicion: with concurrency > 1, a search sent with _count before another
    search's refusal switched _count off, and refused after it, falls back wrongly (no retry
    without _count: the run fails, or _lastUpdated / _include is dropped). Refuted: each
    refusal is judged by what its own request carried (62d2f7a). Here on the search path: two
    Immunization searches run concurrently (a per-type _count maximum), both are in flight with
    _count before either is answered, and each is asked once more without it."""
    both_sent = threading.Barrier(2, timeout=10)
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            if _path(req) == "Immunization" and "_count" in _query(req):
                both_sent.wait()  # neither is answered before both were sent with _count
                return 400, oo("_count exceeds the maximum page size (500)")
            return status, body

        fake.edit = edit
        rep = pull("uci", settings(concurrency=2, patient_batch=1), store, TOKENS,
                   screen_tokens=[SLE])
    imm = [q for q in fake.log if q.startswith("Immunization")]
    # the first two ids in parallel, each refused with _count and retried without; the third
    # patient's search goes without _count from the start
    assert imm == ["Immunization?_count&patient"] * 2 + ["Immunization?patient"] * 3, imm
    assert store.count_by_type("uci")["Immunization"] == 3
    assert rep.warnings == [
        "server rejected _count; searched without _count, with the server's own page size, "
        "from then on"
    ]
