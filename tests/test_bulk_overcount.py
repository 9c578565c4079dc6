"""Bulk $export: a manifest `count` is optional (the Bulk Data IG: "the number of resources in
the file") and servers get it wrong (IBM FHIR #2673: counts that were not the files'). A server
whose `count` overcounts a file made every night take the file for one not served whole, so the
bulk mark never advanced (warned nightly, forever). A file whose download matched the
Content-Length the server sent and that ends at a line's end after a complete last line is
whole whatever `count` says (one warning, the first night); a body with no Content-Length to
tell, or one that does not end at a line's end, is still short of its count."""

from __future__ import annotations

import gzip

import pytest
import responses
from fhir_fakes import SLE, TOKENS
from test_bulk_resume import _counted
from test_fhir_bulk import FILES, STATUS, _manifest, ndjson, nosleep, obs, settings, setup_server

from cohort.errors import ServerError
from cohort.source.fhir import pull

BODY = ndjson([obs(1, "p1"), obs(2, "p1")])  # 2 records; the manifest counts 3


def _sized(body: bytes, length: int | None = None, **headers: str) -> None:
    """The Observation file answered with `body` and a Content-Length (default: its own)."""
    size = len(body) if length is None else length
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson", body=body,
                      headers={"Content-Length": str(size), **headers})


def _overcounted(tmp_path, store, body: bytes, length: int | None = None, **headers: str):
    kick, since = [], []
    setup_server(b"", {}, kick, since)
    item = {"type": "Observation", "url": f"{FILES}/Observation.ndjson", "count": 3}
    responses.replace(responses.GET, STATUS, json=_manifest(output=[
                          {"type": "Condition", "url": f"{FILES}/Condition.ndjson"},
                          {"type": "Patient", "url": f"{FILES}/Patient.ndjson"}, item]))
    _sized(body, length, **headers)
    s = settings(tmp_path, bulk_group="g1", max_retries=0)
    return s, pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))


@responses.activate
def test_a_file_served_whole_with_an_overcounting_count_advances_the_mark(tmp_path, store):
    s, rep = _overcounted(tmp_path, store, BODY)
    assert store.get("uci", "Observation", "o2") is not None
    assert store.get_mark("uci", "fhir:bulk") is not None
    warned = [w for w in rep.warnings if "0002.Observation.ndjson" in w]
    assert len(warned) == 1 and "2 record(s)" in warned[0] and "counts 3" in warned[0]
    assert "taken as whole" in warned[0] and "not advanced" not in warned[0]
    # the next night: the same server, the same overcount; the mark moves, no warning again
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert not any("0002.Observation.ndjson" in w for w in rep.warnings)
    assert rep.marks.get("bulk")


@responses.activate
def test_a_gzipped_file_served_whole_with_an_overcounting_count_advances_the_mark(tmp_path, store):
    # (the Content-Length counts the bytes sent, gzipped)
    _, rep = _overcounted(tmp_path, store, gzip.compress(BODY), **{"Content-Encoding": "gzip"})
    assert store.get("uci", "Observation", "o2") is not None
    assert store.get_mark("uci", "fhir:bulk") is not None


@responses.activate
def test_a_file_without_a_last_line_end_is_still_short_of_its_count(tmp_path, store):
    # Content-Length matched, but the body stops after a record without its line's end
    _, rep = _overcounted(tmp_path, store, BODY.rstrip(b"\n"))
    w = [w for w in rep.warnings if "0002.Observation.ndjson" in w]
    assert w and "2 record(s) of the 3" in w[0] and "not advanced" in w[0]
    assert store.get_mark("uci", "fhir:bulk") is None


@responses.activate
def test_a_file_without_content_length_is_still_short_of_its_count(tmp_path, store):
    # the protection the crash campaign added: a body that ended early between two lines
    rep = _counted(tmp_path, store, BODY, 3)
    w = [w for w in rep.warnings if "0002.Observation.ndjson" in w]
    assert w and "2 record(s) of the 3" in w[0] and "not advanced" in w[0]
    assert store.get_mark("uci", "fhir:bulk") is None


@responses.activate
def test_a_body_shorter_than_its_content_length_is_not_whole(tmp_path, store):
    # a connection that closed before the Content-Length's bytes came: not taken as whole
    with pytest.raises(ServerError, match="interrupted"):
        _overcounted(tmp_path, store, BODY, length=len(BODY) + 200)
    assert store.get_mark("uci", "fhir:bulk") is None
