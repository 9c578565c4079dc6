"""Resuming a Bulk export's downloads (docs/scheduling.md, "Bulk"): found by a crash campaign
against sekmet behind a fault-injecting proxy. A 206 whose Content-Range did not start where the
.part file ends was appended to it (records repeated or lost at the seam); a file the server's
body ended early, without a Content-Length to tell, passed as whole though the manifest's
`count` said it held more records, and the bulk mark moved past the ones it lacked; and a
connection dropped mid-file failed the run (exit 6), resumed only by the next one."""

from __future__ import annotations

import io
from http.client import IncompleteRead

import pytest
import responses
from fhir_fakes import SLE, TOKENS
from test_fhir_bulk import (
    FILES,
    STATUS,
    _interrupted_job,
    _manifest,
    ndjson,
    nosleep,
    obs,
    settings,
    setup_server,
)

from cohort.errors import ServerError
from cohort.source.fhir import pull


def _serve_range(full: bytes, answer_from: int):
    """A server that answers a Range request 206 from `answer_from` (its Content-Range says
    so), and a request without Range 200 with the whole file; the Range headers it was asked."""
    asked: list[str | None] = []

    def obs_cb(req):
        asked.append(req.headers.get("Range"))
        if req.headers.get("Range"):
            end = len(full) - 1
            return 206, {"Content-Range": f"bytes {answer_from}-{end}/{len(full)}"}, full[answer_from:]
        return 200, {}, full

    responses.remove(responses.GET, f"{FILES}/Observation.ndjson")
    responses.add_callback(responses.GET, f"{FILES}/Observation.ndjson", callback=obs_cb)
    return asked


@responses.activate
def test_bulk_resume_answered_from_another_offset_fetches_the_file_whole(tmp_path, store):
    full = ndjson([obs(1, "p1"), obs(2, "p1"), obs(3, "p1")])
    cut = len(full) // 2
    kick, s = _interrupted_job(tmp_path, store)
    spool = tmp_path / "spool" / "uci"
    (spool / "0002.Observation.ndjson.part").write_bytes(full[:cut])
    # 206 from 10 bytes before the .part's end: appended, 10 bytes were doubled at the seam
    asked = _serve_range(full, cut - 10)
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert len(kick) == 1 and any("resumed" in w for w in rep.warnings)
    assert asked == [f"bytes={cut}-", None]
    assert not any("unreadable" in w or "not read whole" in w for w in rep.warnings)
    for oid in ("o1", "o2", "o3"):
        assert store.get("uci", "Observation", oid) is not None
    assert store.get_mark("uci", "fhir:bulk") is not None


@responses.activate
def test_bulk_resume_answered_from_a_later_offset_fetches_the_file_whole(tmp_path, store):
    full = ndjson([obs(1, "p1"), obs(2, "p1"), obs(3, "p1")])
    cut = len(full) // 3
    kick, s = _interrupted_job(tmp_path, store)
    (tmp_path / "spool" / "uci" / "0002.Observation.ndjson.part").write_bytes(full[:cut])
    asked = _serve_range(full, cut + 5)  # (5 bytes skipped: a line cut in two)
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert asked == [f"bytes={cut}-", None]
    assert not any("unreadable" in w or "not read whole" in w for w in rep.warnings)
    assert store.get("uci", "Observation", "o2") is not None


@responses.activate
def test_bulk_resume_answered_206_with_no_content_range_fetches_the_file_whole(tmp_path, store):
    full = ndjson([obs(1, "p1"), obs(2, "p1")])
    cut = len(full) // 2
    kick, s = _interrupted_job(tmp_path, store)
    (tmp_path / "spool" / "uci" / "0002.Observation.ndjson.part").write_bytes(full[:cut])
    asked: list[str | None] = []

    def obs_cb(req):
        asked.append(req.headers.get("Range"))
        return (206, {}, full[cut:]) if req.headers.get("Range") else (200, {}, full)

    responses.remove(responses.GET, f"{FILES}/Observation.ndjson")
    responses.add_callback(responses.GET, f"{FILES}/Observation.ndjson", callback=obs_cb)
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert asked == [f"bytes={cut}-", None]
    assert store.get("uci", "Observation", "o2") is not None


def _counted(tmp_path, store, body: bytes, count):
    """An export whose Observation file is `body` and whose manifest item says `count`."""
    kick, since = [], []
    setup_server(body, {}, kick, since)
    item = {"type": "Observation", "url": f"{FILES}/Observation.ndjson", "count": count}
    responses.replace(responses.GET, STATUS, json=_manifest(output=[
        {"type": "Condition", "url": f"{FILES}/Condition.ndjson"},
        {"type": "Patient", "url": f"{FILES}/Patient.ndjson"}, item]))
    s = settings(tmp_path, bulk_group="g1")
    return pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))


@responses.activate
def test_bulk_file_with_fewer_records_than_its_count_holds_the_mark(tmp_path, store):
    # the body ended after its first whole line: no line is cut, yet one record of 2 is missing
    rep = _counted(tmp_path, store, ndjson([obs(1, "p1")]), 2)
    assert store.get("uci", "Observation", "o1") is not None
    w = [w for w in rep.warnings if "0002.Observation.ndjson" in w]
    assert w and "1 record(s) of the 2" in w[0] and "not advanced" in w[0]
    assert "bulk" not in rep.marks and store.get_mark("uci", "fhir:bulk") is None


@responses.activate
def test_bulk_file_holding_its_count_advances_the_mark(tmp_path, store):
    # (a blank line is no record; count is the number of resources)
    rep = _counted(tmp_path, store, ndjson([obs(1, "p1")]) + b"\n" + ndjson([obs(2, "p1")]), 2)
    assert not any("0002.Observation" in w for w in rep.warnings)
    assert store.get_mark("uci", "fhir:bulk") is not None


class _Cut(io.RawIOBase):
    """A connection that drops after `upto` bytes of `data` (http.client's IncompleteRead)."""

    def __init__(self, data: bytes, upto: int):
        self.data, self.upto, self.at = data, upto, 0

    def readable(self):
        return True

    def readinto(self, b):
        if self.at >= self.upto:
            raise IncompleteRead(b"", len(self.data) - self.at)
        n = min(len(b), self.upto - self.at)
        b[:n] = self.data[self.at : self.at + n]
        self.at += n
        return n


class _CutReader(io.BufferedReader):
    """As a socket's: the bytes that came before the drop are read, the next read raises."""

    def read(self, size=-1):
        buf = bytearray(size if size and size > 0 else 1 << 20)
        return bytes(buf[: self.raw.readinto(buf)])

    read1 = read


def _cut_body(data: bytes, upto: int) -> io.BufferedReader:
    return _CutReader(_Cut(data, upto))


def _cut_then_whole(full: bytes, cuts: list[int]):
    """A file served cut at each of `cuts` in turn (each answer from the Range asked), then
    served to its end; the Range headers it was asked."""
    asked: list[str | None] = []

    def obs_cb(req):
        rng = req.headers.get("Range")
        asked.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = full[start:]
        head = {"Content-Range": f"bytes {start}-{len(full) - 1}/{len(full)}"} if rng else {}
        if len(asked) <= len(cuts):
            return 206 if rng else 200, head, _cut_body(body, cuts[len(asked) - 1] - start)
        return 206 if rng else 200, head, body

    responses.remove(responses.GET, f"{FILES}/Observation.ndjson")
    responses.add_callback(responses.GET, f"{FILES}/Observation.ndjson", callback=obs_cb)
    return asked


@responses.activate
def test_bulk_download_cut_mid_file_is_resumed_in_the_same_run(tmp_path, store):
    # a connection lost mid-file failed the night (exit 6), resumed only by the next run
    # (over 300 kB: what came before a drop is kept in whole chunks, the rest asked again)
    full = ndjson([obs(i, "p1") for i in range(1, 1501)])
    kick, since = [], []
    setup_server(b"", {}, kick, since)
    first, second = len(full) // 3, 2 * len(full) // 3
    asked = _cut_then_whole(full, [first, second])
    s = settings(tmp_path, bulk_group="g1", max_retries=2)
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert len(asked) == 3 and asked[0] is None
    starts = [int(a.split("=")[1].rstrip("-")) for a in asked[1:]]
    assert 0 < starts[0] <= first < starts[1] <= second
    assert all(store.get("uci", "Observation", f"o{i}") is not None for i in range(1, 1501))
    assert not any("not read whole" in w or "unreadable" in w for w in rep.warnings)
    assert len(kick) == 1 and store.get_mark("uci", "fhir:bulk") is not None


@responses.activate
def test_bulk_download_cut_without_progress_fails_after_the_retries(tmp_path, store):
    # cut before its first byte every time: max_retries more attempts, then the run fails and
    # the job stays in the spool for the next run
    full = ndjson([obs(i, "p1") for i in range(1, 4)])
    kick, since = [], []
    setup_server(b"", {}, kick, since)
    asked = _cut_then_whole(full, [0, 0, 0, 0])
    s = settings(tmp_path, bulk_group="g1", max_retries=2)
    with pytest.raises(ServerError, match="interrupted"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert asked == [None, None, None]
    assert (tmp_path / "spool" / "uci" / "job.json").exists()
