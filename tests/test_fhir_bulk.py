"""Bulk $export: kick-off, polling with Retry-After/X-Progress, gzip NDJSON, resume, delete."""

from __future__ import annotations

import gzip
import json
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
from fhir_fakes import BASE, SLE, TOKENS, capability

from cohort.source.fhir import ServerSettings, pull
from cohort.store import Store

STATUS = f"{BASE}/bulk-status/job1"
FILES = "https://files.example.invalid/job1"


def ndjson(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def cond(i, pid, code="55464009"):
    return {"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
            "meta": {"versionId": "1", "lastUpdated": "2026-11-01T00:00:00Z"}}


def obs(i, pid):
    return {"resourceType": "Observation", "id": f"o{i}", "subject": {"reference": f"Patient/{pid}"},
            "meta": {"versionId": "1", "lastUpdated": "2026-11-01T00:00:00Z"}}


def nosleep(s):
    from cohort.source.fhir.client import FhirClient
    return FhirClient(s, sleep=lambda _: None)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s.db") as s:
        yield s


def settings(tmp_path, **kw):
    return ServerSettings.from_dict({"base_url": BASE, "bulk": True, "spool_dir": str(tmp_path / "spool"),
                                     "max_retries": 1, **kw}, "w")


def setup_server(obs_body: bytes, obs_headers: dict, kick: list, since_seen: list):
    responses.get(f"{BASE}/metadata", json=capability())

    def kickoff(req):
        q = parse_qsl(urlsplit(req.url).query)
        kick.append(q)
        assert req.headers["Prefer"] == "respond-async"
        since_seen.append(dict(q).get("_since"))
        return 202, {"Content-Location": STATUS}, ""

    responses.add_callback(responses.GET, f"{BASE}/Group/g1/$export", callback=kickoff)
    responses.get(STATUS, status=202, headers={"X-Progress": "collecting", "Retry-After": "3"})
    responses.get(STATUS, json={
        "transactionTime": "2026-11-25T10:00:00Z", "requiresAccessToken": False,
        "output": [{"type": "Condition", "url": f"{FILES}/Condition.ndjson"},
                   {"type": "Patient", "url": f"{FILES}/Patient.ndjson"},
                   {"type": "Observation", "url": f"{FILES}/Observation.ndjson"}],
        "error": []})
    responses.get(f"{FILES}/Condition.ndjson",
                  body=ndjson([cond(1, "p1"), cond(2, "p2", code="38341003")]))
    responses.get(f"{FILES}/Patient.ndjson",
                  body=ndjson([{"resourceType": "Patient", "id": "p1"}, {"resourceType": "Patient", "id": "p2"}]))
    responses.get(f"{FILES}/Observation.ndjson", body=obs_body, headers=obs_headers)
    responses.delete(STATUS, status=202)


@responses.activate
def test_bulk_export_gzip_and_delete(tmp_path, store):
    waits: list[float] = []
    kick, since = [], []
    body = gzip.compress(ndjson([obs(1, "p1"), obs(2, "p2")]))
    setup_server(body, {"Content-Encoding": "gzip"}, kick, since)
    from cohort.source.fhir.client import FhirClient
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=FhirClient(s, sleep=waits.append))
    assert rep.mode == "bulk" and waits == [3.0]
    q = dict(kick[0])
    assert "Observation" in q["_type"] and "Medication" in q["_type"]
    assert ("_typeFilter", "Observation?code=718-7") in kick[0]
    assert since == [None]
    assert store.get("uci", "Observation", "o1") is not None
    assert store.get("uci", "Observation", "o2") is None  # p2 not screened
    assert store.get("uci", "Patient", "p2") is None
    assert responses.calls[-1].request.method == "DELETE"
    assert not (tmp_path / "spool" / "uci").exists()
    assert "Authorization" not in responses.calls[-2].request.headers
    assert rep.marks["bulk"] == "2026-11-25T10:00:00Z"


@pytest.mark.parametrize("url", ["Observation.ndjson", "http://[x/Observation.ndjson", "file:///etc/passwd"])
@responses.activate
def test_bulk_manifest_url_that_is_not_http_is_a_server_error(tmp_path, store, url):
    """A manifest whose output URL is no http(s) URL fails the pull with a ServerError naming
    the output, not an IndexError or a request to somewhere else."""
    kick, since = [], []
    setup_server(b"", {}, kick, since)
    responses.replace(responses.GET, STATUS, json={
        "transactionTime": "2026-11-25T10:00:00Z", "requiresAccessToken": False,
        "output": [{"type": "Observation", "url": url}], "error": []})
    s = settings(tmp_path, bulk_group="g1")
    from cohort.errors import ServerError
    with pytest.raises(ServerError, match="output 0 .Observation. has no http"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))


@responses.activate
def test_bulk_damaged_gzip_download_is_a_server_error_and_is_fetched_again(tmp_path, store):
    """A downloaded file whose gzip body is damaged (zlib.error, no OSError) fails the pull with
    a ServerError, not an internal error, and leaves the spool so the next run downloads it."""
    kick, since = [], []
    setup_server(bytes.fromhex("1f8b0800000000000003ffffffff"), {}, kick, since)
    s = settings(tmp_path, bulk_group="g1")
    from cohort.errors import ServerError
    with pytest.raises(ServerError, match=r"Observation.ndjson: downloaded file cannot be read \(zlib.error\)"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    spool = tmp_path / "spool" / "uci"
    assert not list(spool.glob("*Observation*"))  # gone: fetched again next time
    assert (spool / "0000.Condition.ndjson").exists()  # the good files stay for the resume


@responses.activate
def test_bulk_download_resumes_with_range(tmp_path, store):
    kick, since = [], []
    full = ndjson([obs(1, "p1"), obs(3, "p1")])
    cut = len(full) // 2
    calls = {"n": 0}

    def obs_cb(req):
        calls["n"] += 1
        if calls["n"] == 1:  # first run dies mid-file
            raise requests.ConnectionError("reset")
        assert req.headers.get("Range") == f"bytes={cut}-"
        return 206, {"Content-Range": f"bytes {cut}-{len(full) - 1}/{len(full)}"}, full[cut:]

    setup_server(b"", {}, kick, since)
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson", body=b"")
    responses.remove(responses.GET, f"{FILES}/Observation.ndjson")
    responses.add_callback(responses.GET, f"{FILES}/Observation.ndjson", callback=obs_cb)
    s = settings(tmp_path, bulk_group="g1", max_retries=0)
    spool = tmp_path / "spool" / "uci"
    from cohort.errors import ServerError
    with pytest.raises(ServerError):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    # simulate the half-written file a killed download leaves behind
    assert (spool / "0000.Condition.ndjson").exists()  # completed files are kept for the resume
    (spool / "0002.Observation.ndjson.part").write_bytes(full[:cut])
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert len(kick) == 1  # same job resumed, no new kick-off
    assert any("resumed" in w for w in rep.warnings)
    assert store.get("uci", "Observation", "o3") is not None


@responses.activate
def test_bulk_incremental_uses_since_and_fetches_new_patients(tmp_path, store, monkeypatch):
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    # second run: a changed-only export in which p2 newly has SLE
    responses.replace(responses.GET, f"{FILES}/Condition.ndjson", body=ndjson([cond(3, "p2")]))
    seen: list[str] = []
    for t in ("Patient", "Condition", "Observation", "MedicationRequest", "MedicationStatement",
              "MedicationAdministration", "Immunization", "Procedure"):
        def cb(req, t=t):
            seen.append(req.url)
            return 200, {}, json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []})
        responses.add_callback(responses.GET, f"{BASE}/{t}", callback=cb)
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert since[1] == "2026-11-25T09:55:00Z"
    assert rep.incremental and rep.patients_new == 1
    assert seen and all("p2" in u and "_lastUpdated" not in u for u in seen)


def test_export_file_opening_with_a_byte_order_mark(tmp_path):
    """A downloaded NDJSON file that opens with a BOM loses no line (the first was unreadable)."""
    from cohort.source.fhir.bulk import read_ndjson

    path = tmp_path / "Patient.ndjson"
    lines = [json.dumps({"resourceType": "Patient", "id": i}) for i in ("a", "b")]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    bad: list[int] = []
    assert [r["id"] for _, r in read_ndjson(path, bad)] == ["a", "b"]
    assert bad == []
