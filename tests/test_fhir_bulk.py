"""Bulk $export: kick-off, polling with Retry-After/X-Progress, gzip NDJSON, resume, delete."""

from __future__ import annotations

import gzip
import json
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
from fhir_fakes import BASE, SLE, TOKENS, capability, oo

from cohort.source.fhir import ServerSettings, pull

STATUS = f"{BASE}/bulk-status/job1"
FILES = "https://files.example.invalid/job1"


def ndjson(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def cond(i, pid, code="55464009"):
    return {"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
            "meta": {"versionId": "1", "lastUpdated": "2026-11-01T00:00:00Z"}}


def obs(i, pid, code="718-7"):
    return {"resourceType": "Observation", "id": f"o{i}", "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "meta": {"versionId": "1", "lastUpdated": "2026-11-01T00:00:00Z"}}


def nosleep(s):
    from cohort.source.fhir.client import FhirClient
    return FhirClient(s, sleep=lambda _: None)


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
    assert rep.marks["bulk"].split("|")[0] == "2026-11-25T10:00:00Z"


@pytest.mark.parametrize("url", ["http://[x/Observation.ndjson", "file:///etc/passwd",
                                 "//[x/Observation.ndjson"])
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


def _second_export_with_new_sle(tmp_path, store, since, patients=None):
    """A first bulk pull, then a changes-only export in which p2 newly has SLE; the searches
    that fetch new patients' history answer `patients` (id -> Patient) to a Patient search
    naming them, else nothing. Returns the second pull's report and the searched URLs."""
    setup_server(ndjson([obs(1, "p1")]), {}, [], since)
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    responses.replace(responses.GET, f"{FILES}/Condition.ndjson", body=ndjson([cond(3, "p2")]))
    seen: list[str] = []
    for t in ("Patient", "Condition", "Observation", "MedicationRequest", "MedicationStatement",
              "MedicationAdministration", "Immunization", "Procedure"):
        def cb(req, t=t):
            seen.append(req.url)
            hits = [c for pid, c in (patients or {}).items() if t == "Patient" and pid in req.url]
            return 200, {}, json.dumps({"resourceType": "Bundle", "type": "searchset",
                                        "entry": [{"resource": r} for r in hits]})
        responses.add_callback(responses.GET, f"{BASE}/{t}", callback=cb)
    return pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s)), seen


@responses.activate
def test_bulk_incremental_uses_since_and_fetches_new_patients(tmp_path, store, monkeypatch):
    since: list = []
    rep, seen = _second_export_with_new_sle(tmp_path, store, since)
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


def _manifest(**kw):
    return {"transactionTime": "2026-11-25T10:00:00Z", "requiresAccessToken": False,
            "output": [{"type": "Condition", "url": f"{FILES}/Condition.ndjson"},
                       {"type": "Patient", "url": f"{FILES}/Patient.ndjson"},
                       {"type": "Observation", "url": f"{FILES}/Observation.ndjson"}],
            "error": [], **kw}


@responses.activate
def test_bulk_mark_is_only_used_while_the_mapped_codes_are_unchanged(tmp_path, store):
    """The bulk mark was a bare transactionTime: after a mapping update (a new Observation
    code, a new screening code) the next export asked only for changes since it, so older
    records with the newly mapped code were never fetched. The mark now carries what was
    exported; when that differs the export is a full one."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    more = {**TOKENS, "Observation": [*TOKENS["Observation"], "http://loinc.org|2160-0"]}
    rep = pull("uci", s, store, more, screen_tokens=[SLE], client=nosleep(s))
    assert since == [None, "2026-11-25T09:55:00Z", None]
    assert any("mapped codes changed" in w for w in rep.warnings)


@responses.activate
def test_bulk_error_files_are_reported_and_hold_the_mark(tmp_path, store):
    """The manifest's `error` files (OperationOutcomes for records the server could not
    export) were ignored: the export passed as complete and the mark moved past the missing
    records. They are now read: a warning with severity and code counts (no diagnostics), and
    with an error among them the bulk mark stays where it was."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    issue = {"severity": "error", "code": "processing", "diagnostics": "Observation/o9 of MRN 77"}
    responses.replace(responses.GET, STATUS, json=_manifest(
        error=[{"type": "OperationOutcome", "url": f"{FILES}/err.ndjson"}]))
    responses.get(f"{FILES}/err.ndjson",
                  body=ndjson([{"resourceType": "OperationOutcome", "issue": [issue, issue]}]))
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Observation", "o1") is not None
    w = [w for w in rep.warnings if w.startswith("bulk export:")]
    assert w and "2 issue(s) (error processing x2)" in w[0] and "not advanced" in w[0]
    assert "MRN" not in json.dumps(rep.to_dict())
    assert "bulk" not in rep.marks and store.get_mark("uci", "fhir:bulk") is None


def _interrupted_job(tmp_path, store):
    """A run whose Observation download failed: its job is left in the spool to resume."""
    kick, since = [], []
    setup_server(b"", {}, kick, since)
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson",
                      body=requests.ConnectionError("reset"))
    s = settings(tmp_path, bulk_group="g1", max_retries=0)
    from cohort.errors import ServerError
    with pytest.raises(ServerError, match="interrupted|ConnectionError"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    return kick, s


@responses.activate
def test_bulk_resumed_job_that_is_gone_starts_a_new_one(tmp_path, store):
    """A run that failed mid-download left its job for the next run to resume; by then the
    server had dropped the job (404 on its status URL and files), and every later night failed
    the same way until someone deleted the spool. A resumed job that is gone is now replaced
    by a new one in the same run."""
    kick, s = _interrupted_job(tmp_path, store)
    assert (tmp_path / "spool" / "uci" / "job.json").exists()
    served = {"n": 0}

    def files(req):  # the old job's files are gone; the new job's are served
        served["n"] += 1
        return (404, {}, "") if len(kick) == 1 else (200, {}, ndjson([obs(1, "p1")]))

    for name in ("Condition", "Patient", "Observation"):
        responses.remove(responses.GET, f"{FILES}/{name}.ndjson")
    responses.add_callback(responses.GET, f"{FILES}/Observation.ndjson", callback=files)
    responses.get(f"{FILES}/Condition.ndjson", body=ndjson([cond(1, "p1")]))
    responses.get(f"{FILES}/Patient.ndjson", body=ndjson([{"resourceType": "Patient", "id": "p1"}]))
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert len(kick) == 2 and any("is gone" in w and "HTTP 404" in w for w in rep.warnings)
    assert store.get("uci", "Observation", "o1") is not None


@pytest.mark.parametrize("refused", ["files", "status"])
@responses.activate
def test_bulk_resumed_job_refused_with_the_token_starts_a_new_one(tmp_path, store, monkeypatch,
                                                                  refused):
    """A resumed job whose file links (the manifest asking for the token) or status URL the
    server refuses with 403 by the next night (links expired, a job of the credentials
    before a rotation) failed as an authentication error (exit 7) every night, the job kept
    for the next; the credentials were fine. A resumed job refused so is replaced by a new
    one in the same run; a new job refused the same way is still exit 7."""
    monkeypatch.setenv("TOK", "secret-token")
    kick, since = [], []
    setup_server(b"", {}, kick, since)
    m = _manifest(requiresAccessToken=True)
    responses.replace(responses.GET, STATUS, json=m)
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson",
                      body=requests.ConnectionError("reset"))
    s = settings(tmp_path, bulk_group="g1", max_retries=0, auth="bearer", token_env="TOK")
    from cohort.errors import AuthError, ServerError
    with pytest.raises(ServerError, match="interrupted|ConnectionError"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    job = tmp_path / "spool" / "uci" / "job.json"
    assert job.exists()
    if refused == "status":  # (a job whose manifest the killed run had not yet read)
        state = json.loads(job.read_text())
        del state["manifest"]
        job.write_text(json.dumps(state))
    served = {"old": True}

    def answer(ok_body):
        def cb(req):
            assert req.headers["Authorization"] == "Bearer secret-token"
            return (403, {}, "") if served["old"] else (200, {}, ok_body)
        return cb

    def kicked(req):
        kick.append(parse_qsl(urlsplit(req.url).query))
        served["old"] = False
        return 202, {"Content-Location": STATUS}, ""

    responses.remove(responses.GET, f"{BASE}/Group/g1/$export")
    responses.add_callback(responses.GET, f"{BASE}/Group/g1/$export", callback=kicked)
    for name in ("Condition", "Patient", "Observation"):
        responses.remove(responses.GET, f"{FILES}/{name}.ndjson")
    responses.add_callback(responses.GET, f"{FILES}/Condition.ndjson",
                           callback=answer(ndjson([cond(1, "p1")])))
    responses.add_callback(responses.GET, f"{FILES}/Patient.ndjson",
                           callback=answer(ndjson([{"resourceType": "Patient", "id": "p1"}])))
    responses.add_callback(responses.GET, f"{FILES}/Observation.ndjson",
                           callback=answer(ndjson([obs(1, "p1")])))
    responses.remove(responses.GET, STATUS)
    responses.add_callback(responses.GET, STATUS, callback=lambda req: (
        (403, {}, "") if served["old"] else (200, {}, json.dumps(m))))
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert len(kick) == 2
    assert any("earlier run" in w and "HTTP 403" in w and "new job" in w for w in rep.warnings)
    assert store.get("uci", "Observation", "o1") is not None
    assert not job.exists()  # (finished: the spool goes)
    # a new job refused the same way: the credentials' (exit 7), not one more new job
    served["old"] = True
    responses.remove(responses.GET, f"{BASE}/Group/g1/$export")
    responses.get(f"{BASE}/Group/g1/$export", status=202, headers={"Content-Location": STATUS})
    with pytest.raises(AuthError, match="HTTP 403"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))


@responses.activate
def test_bulk_job_the_server_failed_is_not_resumed(tmp_path, store):
    """A job whose status URL answers 500 with an OperationOutcome (the spec's "job failed")
    stayed in the spool and was resumed, failing, every night. Now the job is forgotten and
    the error says the next run starts a new export."""
    kick, since = [], []
    setup_server(b"", {}, kick, since)
    responses.remove(responses.GET, STATUS)
    responses.remove(responses.GET, STATUS)
    responses.get(STATUS, status=500, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "exception", "diagnostics": "export failed"}]})
    s = settings(tmp_path, bulk_group="g1")
    from cohort.errors import ServerError
    with pytest.raises(ServerError, match="job failed.*HTTP 500.*next run starts a new export"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert not (tmp_path / "spool" / "uci" / "job.json").exists()


@pytest.mark.parametrize("manifest", [
    b"<html>Sign in</html>",
    json.dumps(_manifest(output=[{"type": "Observation"}])).encode(),
    json.dumps(_manifest(output=["Observation.ndjson"])).encode(),
    json.dumps(_manifest(output={"type": "Observation"})).encode(),
])
@responses.activate
def test_bulk_unusable_manifest_is_a_server_error(tmp_path, store, manifest):
    """A status answer 200 that is not JSON crashed the run (JSONDecodeError, exit 1); an
    output entry without a url was skipped without a word and the mark moved past its
    records; a non-object entry crashed (AttributeError)."""
    kick, since = [], []
    setup_server(b"", {}, kick, since)
    responses.replace(responses.GET, STATUS, body=manifest)
    s = settings(tmp_path, bulk_group="g1")
    from cohort.errors import ServerError
    with pytest.raises(ServerError, match="manifest"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get_mark("uci", "fhir:bulk") is None


@responses.activate
def test_bulk_files_on_another_host_get_no_token_unless_the_manifest_asks(tmp_path, store,
                                                                          monkeypatch):
    """A manifest without `requiresAccessToken` (the key is required) sent the bearer token to
    the files' other host; only an explicit true does now."""
    monkeypatch.setenv("TOK", "secret-token")
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    m = _manifest()
    del m["requiresAccessToken"]
    responses.replace(responses.GET, STATUS, json=m)
    s = settings(tmp_path, bulk_group="g1", auth="bearer", token_env="TOK")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    to_files = [c for c in responses.calls if c.request.url.startswith(FILES)]
    assert to_files and all("Authorization" not in c.request.headers for c in to_files)
    assert responses.calls[0].request.headers["Authorization"] == "Bearer secret-token"


@pytest.mark.parametrize("url", ["/r4/bulk-files/Observation.ndjson", "../bulk-files/Observation.ndjson"])
@responses.activate
def test_bulk_relative_manifest_urls_are_resolved_against_the_status_url(tmp_path, store,
                                                                         monkeypatch, url):
    """IBM FHIR Server writes relative file URLs into its manifest (the IG requires absolute
    ones): the job counted as gone and every night failed. They are resolved against the
    status URL, on the server's own host here so with its credentials, and one warning per
    export says so (the output and the error file both relative)."""
    monkeypatch.setenv("TOK", "secret-token")
    kick, since = [], []
    setup_server(b"", {}, kick, since)
    err = url.replace("Observation.ndjson", "err.ndjson")
    responses.replace(responses.GET, STATUS, json=_manifest(
        output=[{"type": t, "url": url.replace("Observation", t)} for t in ("Condition", "Observation")],
        error=[{"type": "OperationOutcome", "url": err}]))
    here = f"{BASE}/bulk-files"  # STATUS is BASE/bulk-status/job1
    responses.get(f"{here}/Condition.ndjson", body=ndjson([cond(1, "p1")]))
    responses.get(f"{here}/Observation.ndjson", body=ndjson([obs(1, "p1")]))
    issue = {"severity": "information", "code": "informational"}
    responses.get(f"{here}/err.ndjson",
                  body=ndjson([{"resourceType": "OperationOutcome", "issue": [issue]}]))
    s = settings(tmp_path, bulk_group="g1", auth="bearer", token_env="TOK")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Observation", "o1") is not None
    to_files = [c for c in responses.calls if c.request.url.startswith(here)]
    assert len(to_files) == 3
    assert all(c.request.headers["Authorization"] == "Bearer secret-token" for c in to_files)
    said = [w for w in rep.warnings if "relative" in w]
    assert len(said) == 1 and "status URL" in said[0]
    assert rep.marks["bulk"].split("|")[0] == "2026-11-25T10:00:00Z"


@pytest.mark.parametrize("asks", [False, True])
@responses.activate
def test_bulk_relative_manifest_url_to_another_host_gets_the_token_only_when_asked(
        tmp_path, store, monkeypatch, asks):
    """A scheme-relative file URL ("//host/...") resolved against the status URL names
    another host: it gets the credentials only when the manifest says requiresAccessToken,
    as an absolute URL to that host does."""
    monkeypatch.setenv("TOK", "secret-token")
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    m = _manifest(requiresAccessToken=asks)
    m["output"] = [{**o, "url": o["url"].removeprefix("https:")} for o in m["output"]]
    responses.replace(responses.GET, STATUS, json=m)
    s = settings(tmp_path, bulk_group="g1", auth="bearer", token_env="TOK")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Observation", "o1") is not None
    to_files = [c for c in responses.calls if c.request.url.startswith(FILES)]
    assert len(to_files) == 3
    sent = ["Authorization" in c.request.headers for c in to_files]
    assert sent == [asks] * 3
    assert len([w for w in rep.warnings if "relative" in w]) == 1


@responses.activate
def test_bulk_full_refresh_removes_what_the_export_no_longer_holds(tmp_path, store):
    """A full refresh by Bulk export drops stored records the export no longer holds; not when
    the export's error files say it lacks some."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1"), obs(3, "p1")]), {}, kick, since)
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson", body=ndjson([obs(1, "p1")]))
    issue = {"severity": "error", "code": "processing"}
    responses.get(f"{FILES}/err.ndjson",
                  body=ndjson([{"resourceType": "OperationOutcome", "issue": [issue]}]))
    responses.replace(responses.GET, STATUS, json=_manifest(
        error=[{"type": "OperationOutcome", "url": f"{FILES}/err.ndjson"}]))
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s), full_refresh=True)
    assert rep.removed == 0 and store.get("uci", "Observation", "o3") is not None
    responses.replace(responses.GET, STATUS, json=_manifest())
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s), full_refresh=True)
    assert rep.removed == 1 and store.get("uci", "Observation", "o3") is None
    assert store.get("uci", "Observation", "o1") is not None


@responses.activate
def test_bulk_status_down_behind_a_proxy_keeps_the_job(tmp_path, store):
    """A status URL answering a bare 502 (a proxy, the server restarting) is no failed job: the
    job stays in the spool and the next run resumes it (only 4xx, or 5xx with an
    OperationOutcome, end a job)."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    responses.remove(responses.GET, STATUS)
    responses.remove(responses.GET, STATUS)
    responses.get(STATUS, status=502, body="<html>Bad Gateway</html>")
    s = settings(tmp_path, bulk_group="g1")
    from cohort.errors import ServerError
    with pytest.raises(ServerError, match="HTTP 502"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert (tmp_path / "spool" / "uci" / "job.json").exists()
    responses.replace(responses.GET, STATUS, json=_manifest())
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert len(kick) == 1 and any("resumed" in w for w in rep.warnings)


@responses.activate
def test_bulk_status_url_on_another_host_is_refused_before_it_is_saved(tmp_path, store):
    """A kick-off whose Content-Location names another host was saved as the job to resume, so
    every later run resumed it and failed the same way; it is now refused at kick-off."""
    kick, since = [], []
    setup_server(b"", {}, kick, since)
    responses.remove(responses.GET, f"{BASE}/Group/g1/$export")
    responses.get(f"{BASE}/Group/g1/$export", status=202,
                  headers={"Content-Location": "https://other.invalid/status/1"})
    s = settings(tmp_path, bulk_group="g1")
    from cohort.errors import ServerError
    with pytest.raises(ServerError, match="another host"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert not (tmp_path / "spool" / "uci" / "job.json").exists()


@responses.activate
def test_bulk_cut_job_state_starts_a_new_job(tmp_path, store):
    """job.json was written in place: a run killed while writing it left a cut file, and every
    later night stopped with an internal error reading it. The state is now written atomically,
    and a state file that cannot be read is reported and replaced by a new export job."""
    kick, s = _interrupted_job(tmp_path, store)
    state = tmp_path / "spool" / "uci" / "job.json"
    whole = state.read_bytes()
    assert json.loads(whole)["status_url"] == STATUS and state.stat().st_mode & 0o777 == 0o600
    state.write_bytes(whole[: len(whole) // 2])  # what a kill mid-write left before
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson", body=ndjson([obs(1, "p1")]))
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert len(kick) == 2
    assert any("job.json of an earlier run is unreadable" in w for w in rep.warnings)
    assert store.get("uci", "Observation", "o1") is not None


def test_bulk_job_state_write_keeps_the_old_state_when_it_fails(tmp_path, monkeypatch):
    """A failed write of the job state leaves the previous state whole (was truncated first)."""
    import os

    from cohort.errors import OutputError
    from cohort.source.fhir import bulk

    path = tmp_path / "job.json"
    bulk._write_state(path, {"status_url": "https://x/status/1"})

    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OutputError, match="No space left"):
        bulk._write_state(path, {"status_url": "https://x/status/2", "manifest": {}})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"status_url": "https://x/status/1"}
    assert [p.name for p in tmp_path.iterdir()] == ["job.json"]


def _poll(tmp_path, now: float) -> tuple[dict, list[float]]:
    """bulk.poll of STATUS by a Puller whose clock reads `now`: (its final answer, the waits)."""
    import logging

    from cohort.source.fhir.bulk import poll
    from cohort.source.fhir.client import FhirClient
    from cohort.source.fhir.pull import Puller

    waits: list[float] = []
    s = settings(tmp_path)
    c = FhirClient(s, sleep=waits.append, clock=lambda: now)
    p = Puller("uci", s, None, {}, [], False, c, logging.getLogger("t"))
    return poll(p, STATUS), waits


@responses.activate
def test_bulk_poll_reads_a_retry_after_date_on_the_servers_clock(tmp_path):
    """A 202 whose Retry-After is an HTTP-date, polled from a machine whose clock is ahead of
    the server's, was re-polled at once (a wait of 0) until the job finished or bulk_timeout
    ran out; the wait is now counted from the answer's Date header."""
    dated = {
        "Retry-After": "Tue, 14 Nov 2023 22:15:00 GMT",
        "Date": "Tue, 14 Nov 2023 22:13:00 GMT",
    }
    responses.get(STATUS, status=202, headers=dated)
    responses.get(STATUS, json={"transactionTime": "2023-11-14T22:13:00Z", "output": []})
    answer, waits = _poll(tmp_path, 1_700_000_000.0 + 300)
    assert answer["output"] == [] and waits == [120.0]


@responses.activate
def test_bulk_file_with_a_repeated_content_length_is_loaded(tmp_path, store):
    """A file served with "Content-Length: 302, 302" (a proxy that repeats the header; urllib3
    reads it) crashed the pull with ValueError (exit 1) on every run that resumed the job."""
    body = ndjson([obs(1, "p1"), obs(2, "p2")])
    setup_server(body, {"Content-Length": f"{len(body)}, {len(body)}"}, [], [])
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Observation", "o1") is not None
    assert rep.bytes["Observation"] == len(body)


@responses.activate
def test_bulk_status_answering_a_transient_outcome_keeps_the_job(tmp_path, store):
    """The Bulk Data spec has a server that cannot answer a status poll, though the job is fine,
    say so with an OperationOutcome coded `transient`; that was read as "the job failed": the
    job (hours of export work) was forgotten and the next night started a new one. It now
    stays in the spool, and the next run resumes it."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    responses.remove(responses.GET, STATUS)
    responses.remove(responses.GET, STATUS)
    busy = {"severity": "error", "code": "transient", "diagnostics": "database busy"}
    responses.get(STATUS, status=503, json={"resourceType": "OperationOutcome", "issue": [busy]})
    s = settings(tmp_path, bulk_group="g1")
    from cohort.errors import ServerError

    with pytest.raises(ServerError, match="HTTP 503: error transient") as e:
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert "job failed" not in str(e.value)
    assert (tmp_path / "spool" / "uci" / "job.json").exists()
    responses.replace(responses.GET, STATUS, json=_manifest())
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert len(kick) == 1 and any("resumed" in w for w in rep.warnings)
    assert store.get("uci", "Observation", "o1") is not None


@responses.activate
def test_bulk_server_without_type_filter_exports_unfiltered(tmp_path, store):
    """_typeFilter is optional for a Bulk server, and the spec has one that lacks it refuse it
    (400 and an OperationOutcome) for the client to ask again without; the kick-off failed
    every night (exit 6) instead. It is asked again without _typeFilter (after once without
    Medication, which such a server refuses too), with a warning."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)

    def kickoff(req):
        q = parse_qsl(urlsplit(req.url).query)
        kick.append(q)
        if any(k == "_typeFilter" for k, _ in q):
            return 400, {}, json.dumps(oo("_typeFilter is not supported", "not-supported"))
        return 202, {"Content-Location": STATUS}, ""

    responses.remove(responses.GET, f"{BASE}/Group/g1/$export")
    responses.add_callback(responses.GET, f"{BASE}/Group/g1/$export", callback=kickoff)
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert len(kick) == 3 and "_typeFilter" not in dict(kick[2]) and "_type" in dict(kick[2])
    assert any("without Medication too (HTTP 400); asked again without _typeFilter" in w
               for w in rep.warnings)
    assert store.get("uci", "Observation", "o1") is not None and "bulk" in rep.marks


@responses.activate
def test_bulk_part_file_holding_the_whole_file_is_fetched_again(tmp_path, store):
    """A download cut after its last byte (before the end of the chunked body) left a .part
    file as long as the file: the resume asked for the bytes after it, the server answered 416
    Range Not Satisfiable, and every later run failed the same way (exit 6) until the job
    expired. A 416 to a resume now fetches the file whole."""
    full = ndjson([obs(1, "p1"), obs(3, "p1")])
    kick, s = _interrupted_job(tmp_path, store)
    part = tmp_path / "spool" / "uci" / "0002.Observation.ndjson.part"
    part.write_bytes(full)
    asked: list[str | None] = []

    def obs_cb(req):
        asked.append(req.headers.get("Range"))
        if req.headers.get("Range"):
            return 416, {"Content-Range": f"bytes */{len(full)}"}, b""
        return 200, {}, full

    responses.remove(responses.GET, f"{FILES}/Observation.ndjson")
    responses.add_callback(responses.GET, f"{FILES}/Observation.ndjson", callback=obs_cb)
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert len(kick) == 1 and any("resumed" in w for w in rep.warnings)
    assert asked == [f"bytes={len(full)}-", None]
    assert store.get("uci", "Observation", "o3") is not None


@responses.activate
def test_bulk_records_of_the_wrong_shape_do_not_crash_the_pull(tmp_path, store):
    """A Condition whose `code` is a list, and a MedicationRequest whose medicationReference
    is a bare string, in an export's files crashed the pull with AttributeError (exit 1), and
    every later run resumed the job and crashed the same way. They are now passed over like
    any record that names no code or no Medication; the other records load."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    odd_cond = {**cond(9, "p1"), "code": ["55464009"]}
    responses.replace(responses.GET, f"{FILES}/Condition.ndjson",
                      body=ndjson([cond(1, "p1"), odd_cond]))
    med = {"resourceType": "MedicationRequest", "id": "mr1", "status": "active",
           "intent": "order", "subject": {"reference": "Patient/p1"},
           "medicationReference": "Medication/m1"}
    responses.get(f"{FILES}/MedicationRequest.ndjson", body=ndjson([med]))
    responses.replace(responses.GET, STATUS, json=_manifest(output=[
        *_manifest()["output"],
        {"type": "MedicationRequest", "url": f"{FILES}/MedicationRequest.ndjson"}]))
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Observation", "o1") is not None


@responses.activate
def test_bulk_poll_waits_at_least_a_second_when_told_to_retry_at_once(tmp_path):
    """A 202 with "Retry-After: 0" was re-polled with no pause: a loop of requests (and of log
    lines) until the job finished or bulk_timeout ran out."""
    from cohort.source.fhir.bulk import MIN_POLL

    for _ in range(3):
        responses.get(STATUS, status=202, headers={"Retry-After": "0"})
    responses.get(STATUS, json={"transactionTime": "2023-11-14T22:13:00Z", "output": []})
    answer, waits = _poll(tmp_path, 1_700_000_000.0)
    assert answer["output"] == []
    assert waits == [MIN_POLL] * 3 and MIN_POLL >= 1.0


@responses.activate
def test_bulk_job_replaced_by_a_full_refresh_is_deleted(tmp_path, store):
    """An earlier run's unfinished job that a --full-refresh does not resume was left on the
    server (still exporting, its files kept); the Bulk Data way to end it is a DELETE."""
    kick, s = _interrupted_job(tmp_path, store)
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson", body=ndjson([obs(1, "p1")]))
    deletes_before = [c for c in responses.calls if c.request.method == "DELETE"]
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s), full_refresh=True)
    calls = [(c.request.method, c.request.url) for c in responses.calls]
    deletes = [i for i, (m, u) in enumerate(calls) if m == "DELETE" and u == STATUS]
    kickoffs = [i for i, (m, u) in enumerate(calls) if "$export" in u]
    assert not deletes_before and len(kick) == 2
    # the old job is deleted before the new one starts, the new one once it is loaded
    assert len(deletes) == 2 and deletes[0] < kickoffs[-1] < deletes[1]


def _merge_patient(pid, kind=None, other=None):
    link = [{"type": kind, "other": {"reference": f"Patient/{other}"}}] if kind else []
    return {"resourceType": "Patient", "id": pid, **({"link": link} if link else {})}


@pytest.mark.parametrize(
    "links, merged",
    [
        # p1 (screened) says p3 replaced it, and p3 says p4 did
        ([("p1", "replaced-by", "p3"), ("p3", "replaced-by", "p4")], {"p3", "p4"}),
        # the reverse: p1 says it replaced p3 (p3's Patient says nothing), p2 says p1 replaced it
        ([("p1", "replaces", "p3"), ("p2", "replaced-by", "p1")], {"p2", "p3"}),
    ],
)
@responses.activate
def test_bulk_keeps_the_charts_merged_with_a_screened_one(tmp_path, store, links, merged):
    """The export's charts merged with screened p1, either way and down a chain, are kept with
    p1's records (cohort reads them as one patient); the others' still are not."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1"), obs(2, "p2"), obs(3, "p3"), obs(4, "p4")]), {}, kick, since)
    linked = {pid: (kind, other) for pid, kind, other in links}
    responses.replace(responses.GET, f"{FILES}/Patient.ndjson", body=ndjson(
        [_merge_patient(pid, *linked.get(pid, ())) for pid in ("p1", "p2", "p3", "p4")]))
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    kept = {"p1"} | merged
    assert {pid for pid in ("p1", "p2", "p3", "p4") if store.get("uci", "Patient", pid)} == kept
    for n in (1, 2, 3, 4):
        assert (store.get("uci", "Observation", f"o{n}") is not None) == (f"p{n}" in kept)
    assert rep.patients_screened == 3


def _serve_p3_by_search() -> list[str]:
    """The server answers searches for p3 (an old chart: its Patient and one Observation) and
    nothing else; the URLs asked go to the list returned."""
    server = {"Patient": {"resourceType": "Patient", "id": "p3", "active": False},
              "Observation": obs(3, "p3")}
    seen: list[str] = []
    for t in ("Patient", "Condition", "Observation", "MedicationRequest", "MedicationStatement",
              "MedicationAdministration", "Immunization", "Procedure"):
        def cb(req, t=t):
            seen.append(req.url)
            hits = [server[t]] if t in server and "p3" in req.url else []
            return 200, {}, json.dumps({"resourceType": "Bundle", "type": "searchset",
                                        "entry": [{"resource": r} for r in hits]})
        responses.add_callback(responses.GET, f"{BASE}/{t}", callback=cb)
    return seen


def _fetched_p3_by_search(store, seen: list[str], rep) -> None:
    """p3's records came by searches for p3 alone, in full, as a new screened patient's."""
    assert store.get("uci", "Observation", "o3") is not None
    assert seen and all("p3" in u and "_lastUpdated" not in u for u in seen)
    assert rep.patients_screened == 2 and rep.patients_new == 1
    assert json.loads(store.get_mark("uci", "fhir:complete")) == ["p1", "p3"]


@responses.activate
def test_bulk_fetches_by_search_a_replaced_chart_the_group_export_does_not_hold(tmp_path, store):
    """A Group export holds its members' records only: screened p1 says it replaced p3, a chart
    no longer in the group, so nothing of p3 is in the export. p3 is fetched by search like a
    newly screened patient (was: marked complete, never fetched)."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    link = [{"type": "replaces", "other": {"reference": "Patient/p3"}}]
    responses.replace(responses.GET, f"{FILES}/Patient.ndjson", body=ndjson(
        [{"resourceType": "Patient", "id": "p1", "link": link}, {"resourceType": "Patient", "id": "p2"}]))
    seen = _serve_p3_by_search()
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Patient", "p3") is not None
    _fetched_p3_by_search(store, seen, rep)


@responses.activate
def test_bulk_incremental_follows_the_merge_links_already_stored(tmp_path, store):
    """A changes-only export with no newly screened patient: screened p1's stored Patient says
    it replaced p3 (stored by a version that did not read replaces links; or a chain longer
    than one night's MAX_MERGE_ROUNDS), and tonight's export holds nothing of either. p3 is
    fetched by search, as a search pull does (was: only on a night someone was newly screened)."""
    setup_server(ndjson([obs(1, "p1")]), {}, [], [])
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    link = [{"type": "replaces", "other": {"reference": "Patient/p3"}}]
    store.put_resources("uci", [({"resourceType": "Patient", "id": "p1", "link": link}, "old")],
                        source=BASE)
    for name in ("Condition", "Patient", "Observation"):
        responses.replace(responses.GET, f"{FILES}/{name}.ndjson", body=b"")
    seen = _serve_p3_by_search()
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert rep.incremental
    _fetched_p3_by_search(store, seen, rep)


@responses.activate
def test_bulk_incremental_fetches_the_chart_that_replaced_a_newly_screened_one(tmp_path, store):
    """A patient newly screened on a changes-only export is fetched by search; its Patient says
    p5 replaced it (a merge of an earlier night, not in tonight's export): p5 is fetched too."""
    charts = {"p2": {"resourceType": "Patient", "id": "p2", "link": [
        {"type": "replaced-by", "other": {"reference": "Patient/p5"}}]},
        "p5": {"resourceType": "Patient", "id": "p5"}}
    rep, seen = _second_export_with_new_sle(tmp_path, store, [], charts)
    assert store.get("uci", "Patient", "p5") is not None
    assert {u.split("?")[0].rsplit("/", 1)[1] for u in seen if "p5" in u} >= {"Observation", "Condition"}
    assert rep.patients_new == 2 and rep.patients_screened == 3


HAPI_512 = ("HAPI-0512: Resource types [Medication] are invalid for this type of export, as they do "
            "not contain search parameters that refer to patients.")


def _refusing_kickoff(kick: list, refuse):
    """The Group kick-off answers 400 (an OperationOutcome) to the queries `refuse` names."""
    def kickoff(req):
        q = parse_qsl(urlsplit(req.url).query)
        kick.append(q)
        if refuse(q):
            return 400, {}, json.dumps(oo(HAPI_512, "processing"))
        return 202, {"Content-Location": STATUS}, ""

    responses.remove(responses.GET, f"{BASE}/Group/g1/$export")
    responses.add_callback(responses.GET, f"{BASE}/Group/g1/$export", callback=kickoff)


@responses.activate
def test_bulk_group_export_refusing_medication_in_type_is_asked_again_without(tmp_path, store):
    """HAPI FHIR and IBM FHIR refuse Medication (outside the Patient compartment) in a Group or
    Patient export with 400; the only fallback dropped _typeFilter, blamed it in a warning and
    failed again: exit 6 every night. The kick-off is now asked again without Medication (the
    _typeFilter kept), and the Medications the records reference are read by id."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    _refusing_kickoff(kick, lambda q: "Medication" in dict(q)["_type"].split(","))
    med = {"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
           "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": "Medication/m1"}}
    responses.get(f"{FILES}/MedicationRequest.ndjson", body=ndjson([med]))
    responses.replace(responses.GET, STATUS, json=_manifest(output=[
        *_manifest()["output"], {"type": "MedicationRequest", "url": f"{FILES}/MedicationRequest.ndjson"}]))
    responses.get(f"{BASE}/Medication", json={"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "Medication", "id": "m1"}}]})
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert rep.mode == "bulk" and len(kick) == 2
    assert "Medication" not in dict(kick[1])["_type"].split(",")
    assert ("_typeFilter", "Observation?code=718-7") in kick[1]  # not the problem: kept
    assert store.get("uci", "Observation", "o1") is not None
    assert store.get("uci", "Medication", "m1") is not None  # read by id
    said = [w for w in rep.warnings if w.startswith("bulk: server refused")]
    assert said == ["bulk: server refused the export kick-off (HTTP 400); asked again without "
                    "Medication in _type (referenced Medications are read by id)"]


@responses.activate
def test_bulk_kickoff_refused_with_and_without_medication_drops_type_filter_too(tmp_path, store):
    """A server that refuses both Medication and _typeFilter is asked without each on its own
    (each refused), then without either; each warning names what was dropped."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    _refusing_kickoff(kick, lambda q: any(k == "_typeFilter" for k, _ in q)
                      or "Medication" in dict(q)["_type"].split(","))
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert len(kick) == 4 and "_typeFilter" not in dict(kick[3])
    assert "Medication" not in dict(kick[3])["_type"].split(",")
    assert "_typeFilter" not in dict(kick[2]) and "Medication" in dict(kick[2])["_type"]
    said = [w for w in rep.warnings if w.startswith("bulk: server refused")]
    assert len(said) == 3 and "without Medication in _type" in said[0]
    assert "kick-off without Medication too" in said[1] and "without _typeFilter" in said[1]
    assert said[2].startswith("bulk: server refused the export kick-off without _typeFilter too"
                              " (HTTP 400); asked again without Medication in _type")
    assert said[2].endswith("; and without _typeFilter: exported unfiltered (records whose code"
                            " no mapping has are counted under not_stored, not stored)")
    assert set(rep.quirks) == {"bulk-no-medication", "bulk-no-typefilter"}
    assert store.get("uci", "Observation", "o1") is not None and "bulk" in rep.marks


def _slow_job(monkeypatch, ready_at: float):
    """A status URL that asks for 15 minutes between polls (202, Retry-After: 900), answers an
    earlier poll 429 with the seconds left, and the manifest from `ready_at`; the clock only
    moves by the client's sleeps. Returns (poll of it with `settings`, the poll times)."""
    import logging

    from cohort.source.fhir import bulk
    from cohort.source.fhir.client import FhirClient
    from cohort.source.fhir.pull import Puller

    now, polls = [0.0], []
    monkeypatch.setattr(bulk.time, "monotonic", lambda: now[0])

    def status(req):
        polls.append(now[0])
        if len(polls) == 1:
            return 202, {"Retry-After": "900"}, ""
        if now[0] < ready_at:
            return 429, {"Retry-After": str(int(ready_at - now[0]))}, ""
        return 200, {}, json.dumps({"transactionTime": "2026-11-25T10:00:00Z", "output": []})

    responses.add_callback(responses.GET, STATUS, callback=status)

    def run(s):
        c = FhirClient(s, sleep=lambda w: now.__setitem__(0, now[0] + w),
                       clock=lambda: 1_700_000_000 + now[0])
        return bulk.poll(Puller("uci", s, None, {}, [], False, c, logging.getLogger("t")), STATUS)

    return run, polls


@responses.activate
def test_bulk_status_poll_honours_a_retry_after_longer_than_max_wait(tmp_path, monkeypatch):
    """Every status wait was capped at max_wait (120 s): a server asking for 900 s was polled
    early, answered 429, and the client's generic retries (max_retries) ran out: the run failed
    with HTTP 429 after minutes although bulk_timeout (3600 s) was far off. Retry-After is now
    honoured up to bulk_timeout, and a 429 on the status URL means "poll later", as a 202."""
    run, polls = _slow_job(monkeypatch, ready_at=900.0)
    assert run(settings(tmp_path, max_retries=5))["output"] == []  # bulk_timeout 3600, max_wait 120
    assert polls == [0.0, 900.0]
    run, polls = _slow_job(monkeypatch, ready_at=1000.0)  # a 429 before it is ready
    assert run(settings(tmp_path, max_retries=0))["output"] == []
    assert polls == [0.0, 900.0, 1000.0]


@responses.activate
def test_bulk_status_poll_waits_no_longer_than_bulk_timeout(tmp_path, monkeypatch):
    """A Retry-After beyond bulk_timeout is waited only to the deadline, polled once more, and
    the run then fails saying the export is not complete (not after sleeping past it)."""
    from cohort.errors import ServerError

    run, polls = _slow_job(monkeypatch, ready_at=5000.0)
    with pytest.raises(ServerError, match="not complete after 600s"):
        run(settings(tmp_path, bulk_timeout=600))
    assert polls == [0.0, 600.0]


@responses.activate
def test_bulk_unfiltered_export_does_not_store_records_no_mapping_reads(tmp_path, store):
    """After a kick-off refused with _typeFilter, the unfiltered export's every Observation and
    Procedure of a screened patient was stored, whatever its code: vital signs and unrelated
    labs, PHI the search path (which asks by mapped code) never pulls. Only records whose code
    is a mapped one are stored now; run.json counts the others under `not_stored`."""
    kick, since = [], []
    heart_rate, other_proc = obs(9, "p1", code="8867-4"), {
        "resourceType": "Procedure", "id": "pr9", "status": "completed", "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "80146002"}]}}
    plasma = {**other_proc, "id": "pr1",
              "code": {"coding": [{"system": "http://snomed.info/sct", "code": "127788007"}]}}
    setup_server(ndjson([obs(1, "p1"), heart_rate, obs(8, "p2", code="8867-4")]), {}, kick, since)
    responses.get(f"{FILES}/Procedure.ndjson", body=ndjson([plasma, other_proc]))
    responses.replace(responses.GET, STATUS, json=_manifest(output=[
        *_manifest()["output"], {"type": "Procedure", "url": f"{FILES}/Procedure.ndjson"}]))
    _refusing_kickoff(kick, lambda q: any(k == "_typeFilter" for k, _ in q))
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert "_typeFilter" not in dict(kick[-1])
    assert store.get("uci", "Observation", "o1") is not None
    assert store.get("uci", "Procedure", "pr1") is not None
    assert store.get("uci", "Observation", "o9") is None and store.get("uci", "Procedure", "pr9") is None
    assert rep.to_dict()["not_stored"] == {"Observation": 1, "Procedure": 1}  # (p2 is not screened)
    assert store.get("uci", "Condition", "c1") is not None  # other types: every record, as searched


@pytest.mark.parametrize("match_system, tokens, coding, kept", [
    (False, ["http://loinc.org|718-7"], {"system": "urn:oid:2.16.840.1.113883.6.1", "code": "718-7"}, True),
    (True, ["http://loinc.org|718-7"], {"system": "urn:oid:2.16.840.1.113883.6.1", "code": "718-7"}, False),
    (True, ["http://loinc.org|718-7"], {"system": "http://loinc.org", "code": "718-7"}, True),
    (False, ["http://x.org|a,b$c"], {"system": "http://y.org", "code": "a,b$c"}, True),
    (False, ["http://loinc.org|718-7"], {"system": "http://loinc.org", "code": "8867-4"}, False),
])
def test_bulk_record_is_kept_as_a_search_by_code_would_match_it(match_system, tokens, coding, kept):
    """A bare code (the default) matches in any system; with match_system only in its own;
    codes holding the characters a search value escapes are matched as written."""
    import logging

    from cohort.source.fhir.client import FhirClient
    from cohort.source.fhir.ndjson import has_mapped_code, mapped_codes
    from cohort.source.fhir.pull import Puller

    s = ServerSettings.from_dict({"base_url": BASE, "match_system": match_system}, "w")
    p = Puller("uci", s, None, {"Observation": tokens}, [], False, FhirClient(s), logging.getLogger("t"))
    res = {"resourceType": "Observation", "code": {"coding": [coding]}}
    assert has_mapped_code(res, mapped_codes(p)["Observation"]) is kept


@responses.activate
def test_bulk_export_file_of_a_type_not_asked_for_is_not_downloaded(tmp_path, store):
    """A manifest listing a type the kick-off's `_type` did not name (Encounter) was downloaded
    and its screened patients' records stored, silently, and never removed by --full-refresh
    (Encounter is never swept). Such a file is now skipped with a warning, not downloaded; a
    record of another type inside a file of an asked type is left out and counted."""
    kick, since = [], []
    stray = {"resourceType": "Encounter", "id": "e2", "subject": {"reference": "Patient/p1"}}
    setup_server(ndjson([obs(1, "p1"), stray]), {}, kick, since)
    m = _manifest()
    m["output"] += [{"type": "Encounter", "url": f"{FILES}/Encounter.ndjson"},
                    {"type": "Encounter", "url": f"{FILES}/Encounter-2.ndjson"}]
    responses.replace(responses.GET, STATUS, json=m)
    enc = {"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/p1"}}
    responses.get(f"{FILES}/Encounter.ndjson", body=ndjson([enc]))
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Encounter", "e1") is None and store.get("uci", "Encounter", "e2") is None
    assert not [c for c in responses.calls if "Encounter" in c.request.url]
    assert "bulk: the export listed 2 file(s) of Encounter, a type not asked for; not downloaded" in rep.warnings
    assert rep.to_dict()["skipped_types"] == {"Encounter": 1}
    assert store.get("uci", "Observation", "o1") is not None


@responses.activate
def test_bulk_unreadable_lines_in_two_files_of_one_type_are_all_counted(tmp_path, store):
    """A type split over two files, each with one unreadable line, was reported as 1 unreadable
    line: the warning named the type, not the file, and a repeated warning is dropped (records
    of both files also shared the origin "bulk Observation.ndjson:N"). The spool file is named."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]) + b"{cut\n", {}, kick, since)
    m = _manifest()
    m["output"].append({"type": "Observation", "url": f"{FILES}/Observation-2.ndjson"})
    responses.replace(responses.GET, STATUS, json=m)
    responses.get(f"{FILES}/Observation-2.ndjson", body=ndjson([obs(7, "p1")]) + b"{cut\n")
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Observation", "o7") is not None
    said = [w for w in rep.warnings if "unreadable line" in w]
    assert said == ["bulk 0002.Observation.ndjson: 1 unreadable line(s), first at line 2",
                    "bulk 0003.Observation.ndjson: 1 unreadable line(s), first at line 2"]
    import sqlite3

    db = sqlite3.connect(tmp_path / "s.db")
    origin = db.execute("SELECT origin FROM resources WHERE type='Observation' AND id='o7'").fetchone()
    db.close()
    assert origin == ("bulk 0003.Observation.ndjson:1",)


@responses.activate
def test_bulk_file_ending_mid_record_holds_the_mark(tmp_path, store):
    """An export file whose last line breaks off mid-record (served cut short: a body closed
    early without a length, a file the server did not finish writing) was one more
    "unreadable line": the bulk mark moved past the record it held, which no later export
    (since the mark) carries again unless it changes. The records read are stored; the mark
    stays, so the next export repeats the window, and a full refresh removes nothing.

    An invalid line that is whole (a bad record, not a cut file) moved the mark: that was wrong
    for the same reason. Which record the line held is unknown, and an export since the new
    mark holds it again only if it changes once more, so its stale stored version stayed for
    good (tests/test_bulk_damaged_lines.py). It holds the mark too; a whole export moves it."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1"), obs(3, "p1")]), {}, kick, since)
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    mark = store.get_mark("uci", "fhir:bulk")
    responses.replace(responses.GET, STATUS, json=_manifest(transactionTime="2026-11-26T10:00:00Z"))
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson",
                      body=ndjson([obs(1, "p1"), obs(2, "p1")])[:-20])
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s), full_refresh=True)
    assert store.get("uci", "Observation", "o1") is not None
    assert store.get("uci", "Observation", "o3") is not None and rep.removed == 0
    assert store.get_mark("uci", "fhir:bulk") == mark
    assert any("0002.Observation.ndjson" in w and "breaks off" in w and "not advanced" in w
               for w in rep.warnings)
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson",
                      body=ndjson([obs(1, "p1")]) + b"{bad record}\n")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get_mark("uci", "fhir:bulk") == mark
    assert any("0002.Observation.ndjson" in w and "not read whole" in w and "not advanced" in w
               for w in rep.warnings)
    responses.replace(responses.GET, f"{FILES}/Observation.ndjson", body=ndjson([obs(1, "p1")]))
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get_mark("uci", "fhir:bulk").startswith("2026-11-26T10:00:00Z|")


@responses.activate
def test_bulk_mark_from_a_transaction_time_with_an_offset_is_utc(tmp_path, store):
    """A transactionTime in the server's own offset (HAPI writes its time zone's, e.g.
    05:00:00-05:00) became the bulk mark as written, while the other clocks the marks are
    compared with (the Medication check's) are UTC, and the earliest is taken by comparing
    the text: 05:00-05:00 (10:00Z) sorted before 09:00Z. The mark is now UTC, and the next
    export's _since is the same instant less the overlap."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    responses.replace(responses.GET, STATUS,
                      json=_manifest(transactionTime="2026-11-25T05:00:00-05:00"))
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get_mark("uci", "fhir:bulk").startswith("2026-11-25T10:00:00Z|")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert since == [None, "2026-11-25T09:55:00Z"]


@responses.activate
def test_bulk_unfiltered_export_keeps_a_panel_whose_component_is_mapped(tmp_path, store):
    """A component whose code maps is a result of its own (docs/rules.md, "Panels and
    components"), and a record with one is kept on every reading path; the unfiltered export's
    filter looked at `code` only, so a CBC panel (58410-2) carrying the mapped hemoglobin as a
    component was counted under not_stored and never reached the criteria (review)."""
    kick, since = [], []
    cbc = {**obs(5, "p1", code="58410-2"), "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
         "valueQuantity": {"value": 9.1, "unit": "g/dL"}}]}
    bp = {**obs(6, "p1", code="85354-9"), "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}}]}
    setup_server(ndjson([obs(1, "p1"), cbc, bp]), {}, kick, since)
    _refusing_kickoff(kick, lambda q: any(k == "_typeFilter" for k, _ in q))
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert "_typeFilter" not in dict(kick[-1])
    assert store.get("uci", "Observation", "o5") is not None
    assert store.get("uci", "Observation", "o6") is None
    assert rep.to_dict()["not_stored"] == {"Observation": 1}


def _night_with_new_patients(tmp_path, store, answer, **cfg):
    """A first bulk pull, then a changes-only export in which p2 and p3 newly have SLE: their
    history is fetched by search, each request answered by `answer(req, type)` -> (status,
    body). Returns the second pull (a callable: it may raise) and the settings."""
    setup_server(ndjson([obs(1, "p1")]), {}, [], [])
    s = settings(tmp_path, bulk_group="g1", **cfg)
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    responses.replace(responses.GET, f"{FILES}/Condition.ndjson",
                      body=ndjson([cond(3, "p2"), cond(4, "p3")]))
    responses.replace(responses.GET, STATUS, json={
        "transactionTime": "2026-11-26T10:00:00Z", "requiresAccessToken": False,
        "output": [{"type": "Condition", "url": f"{FILES}/Condition.ndjson"}], "error": []})
    for t in ("Patient", "Condition", "Observation", "MedicationRequest", "MedicationStatement",
              "MedicationAdministration", "Immunization", "Procedure"):
        def cb(req, t=t):
            status, body = answer(req, t)
            return status, {}, json.dumps(body)
        responses.add_callback(responses.GET, f"{BASE}/{t}", callback=cb)
    return lambda: pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))


EMPTY = {"resourceType": "Bundle", "type": "searchset", "entry": []}


@responses.activate
def test_bulk_parallel_searches_refused_for_count_each_retry_without_it(tmp_path, store):
    """concurrency 2 and a server refusing every request with _count (a bare 400): two
    searches of newly screened patients were sent with _count in parallel; the first refused
    switched _count off, and the second, refused after that, no longer tried without it: it
    failed the run (exit 6), or dropped _lastUpdated (a full pull and a false warning)."""
    import threading

    second_sent, retried = threading.Event(), threading.Event()
    counted: list[str] = []
    lock = threading.Lock()

    def answer(req, t):
        if "_count" not in dict(parse_qsl(urlsplit(req.url).query)):
            retried.set()
            return 200, EMPTY
        with lock:
            counted.append(req.url)
            n = len(counted)
        if n == 1:  # answered once the second is in flight with _count too
            second_sent.wait(5)
        elif n == 2:  # answered after the first was retried without _count (switch off)
            second_sent.set()
            retried.wait(5)
        return 400, oo("Bad request")

    rep = _night_with_new_patients(tmp_path, store, answer, concurrency=2, patient_batch=1)()
    assert len(counted) == 2 and second_sent.is_set() and retried.is_set(), counted
    assert not any("_lastUpdated" in w for w in rep.warnings), rep.warnings
    assert json.loads(store.get_mark("uci", "fhir:complete")) == ["p1", "p2", "p3"]


@responses.activate
def test_bulk_type_refused_on_new_patients_is_fetched_for_them_once_granted(tmp_path, store):
    """A Bulk night fetching newly screened p2 and p3 by search, Observation refused (403, outside
    the token's scope): the type was left unpulled with a warning, but p2 and p3 were marked
    complete, so once Observation was granted their older Observations (before the export's
    _since) were never fetched: later exports hold changes only, and searches only new patients."""
    refuse = {"Observation"}

    def answer(req, t):
        if t in refuse:
            return 403, oo("Insufficient scope", "forbidden")
        hits = [obs(5, "p2")] if t == "Observation" and "p2" in req.url else []
        return 200, {**EMPTY, "entry": [{"resource": r} for r in hits]}

    night = _night_with_new_patients(tmp_path, store, answer)
    rep = night()
    assert any(w.startswith("Observation: the server refused its search") for w in rep.warnings)
    assert store.get("uci", "Condition", "c3") is not None
    assert json.loads(store.get_mark("uci", "fhir:complete")) == ["p1"]
    assert any(w.startswith("bulk: 2 patient(s) fetched by search with Observation refused")
               for w in rep.warnings), rep.warnings
    refuse.clear()  # the scope now grants Observation
    night()
    assert store.get("uci", "Observation", "o5") is not None
    assert json.loads(store.get_mark("uci", "fhir:complete")) == ["p1", "p2", "p3"]


def _cbc(i, pid):
    """A CBC panel (58410-2, no mapping) whose mapped hemoglobin is a component."""
    return {**obs(i, pid, code="58410-2"), "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
         "valueQuantity": {"value": 9.1, "unit": "g/dL"}}]}


COMBO_CAP = capability(more_params={"Observation": ["combo-code"]})


@responses.activate
def test_bulk_type_filter_asks_by_combo_code_where_the_server_lists_it(tmp_path, store):
    """The export's Observation _typeFilter asked by code: a server filtering so left out a CBC
    panel whose only mapped code is a component's. Where the CapabilityStatement lists
    combo-code the filter asks by it; the first such export is a full one (the mark's key)."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1"), _cbc(5, "p1")]), {}, kick, since)
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert ("_typeFilter", "Observation?code=718-7") in kick[0]
    responses.replace(responses.GET, f"{BASE}/metadata", json=COMBO_CAP)
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert ("_typeFilter", "Observation?combo-code=718-7") in kick[1]
    assert since == [None, None]
    assert [w for w in rep.warnings if "combo-code" in w] == [
        "bulk: the Observation _typeFilter asks by combo-code now: full, once"]
    assert store.get("uci", "Observation", "o5") is not None
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert ("_typeFilter", "Observation?combo-code=718-7") in kick[2]
    assert since[2] == "2026-11-25T09:55:00Z"


@responses.activate
def test_bulk_type_filter_by_code_says_component_results_are_not_exported(tmp_path, store):
    """A server listing no combo-code: the filter asks by code, and run.json says so."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert ("_typeFilter", "Observation?code=718-7") in kick[0]
    assert ("bulk: the server lists no combo-code for Observation; the export's _typeFilter asks"
            " by code: Observations whose only mapped code is a component's (a platelet count"
            " inside a CBC panel) are not exported") in rep.warnings


@responses.activate
def test_bulk_kickoff_refusing_combo_code_asks_by_code_from_the_mark(tmp_path, store):
    """A server that lists combo-code (for searches) but refuses it in _typeFilter: the kick-off
    is asked again without Medication (the first thing dropped), then by code with Medication
    back, with the _since the mark gives an export by code (no full export every night); the
    mark stays one of an export by code. Only the refusal of combo-code is remembered
    (quirks.py; Medication was not refused): the next night asks by code, with Medication, at
    once, and run.json still says component-only results are not exported."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))  # by code
    responses.replace(responses.GET, f"{BASE}/metadata", json=COMBO_CAP)
    _refusing_kickoff(kick, lambda q: "combo-code" in str(q))
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    asked = kick[-3:]
    assert [("_typeFilter", "Observation?combo-code=718-7") in q for q in asked] == [True, True, False]
    assert [dict(q).get("_since") for q in asked] == [None, None, "2026-11-25T09:55:00Z"]
    assert ("_typeFilter", "Observation?code=718-7") in asked[2]
    said = [w for w in rep.warnings if w.startswith("bulk: server refused")]
    assert said == ["bulk: server refused the export kick-off (HTTP 400); asked again without"
                    " Medication in _type (referenced Medications are read by id)",
                    "bulk: server refused the export kick-off without Medication too (HTTP 400);"
                    " asked again without combo-code in _typeFilter (by code: Observations whose"
                    " only mapped code is a component's are not exported)"]
    assert not any("full" in w for w in rep.warnings), rep.warnings
    assert "Medication" in dict(asked[2])["_type"].split(",")
    assert set(rep.quirks) == {"bulk-no-combo-code"}
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))  # next night
    assert len(kick) == 5
    assert ("_typeFilter", "Observation?code=718-7") in kick[-1]
    assert "Medication" in dict(kick[-1])["_type"].split(",")
    assert dict(kick[-1]).get("_since") == "2026-11-25T09:55:00Z"
    assert not [w for w in rep.warnings if w.startswith("bulk: server refused")]
    assert ("bulk: the server refused combo-code in _typeFilter on an earlier night; the export"
            " asks by code: Observations whose only mapped code is a component's are not"
            " exported") in rep.warnings
    assert not any("full" in w for w in rep.warnings), rep.warnings


def _kickoff_sinces() -> list:
    return [dict(parse_qsl(urlsplit(c.request.url).query)).get("_since")
            for c in responses.calls if "/Group/g1/" in c.request.url]


@responses.activate
def test_bulk_mark_holds_while_a_type_refused_on_search_is_missing_from_the_export(tmp_path, store):
    """A token without Observation scope: the Bulk IG has a server limit an export to what the
    client may read, so the night's export held no Observation file (no error file either),
    and the searches of newly screened patients answered 403. The bulk mark moved on anyway,
    so the known patients' Observations changed in that window were never exported once
    Observation was granted (the next export asked only for changes since). The mark now
    stays while a type refused on search is missing from the export."""
    refuse = {"Observation"}

    def answer(req, t):
        if t in refuse:
            return 403, oo("Insufficient scope", "forbidden")
        return 200, EMPTY

    night = _night_with_new_patients(tmp_path, store, answer)
    rep = night()
    assert store.get_mark("uci", "fhir:bulk").split("|")[0] == "2026-11-25T10:00:00Z"  # night 1's
    assert "bulk" not in rep.marks
    assert ("bulk: Observation refused (HTTP 403) on search, and none in the export: the bulk mark"
            " was not advanced, the next export repeats this window") in rep.warnings
    refuse.clear()  # the scope now grants Observation
    rep = night()
    assert _kickoff_sinces() == [None, "2026-11-25T09:55:00Z", "2026-11-25T09:55:00Z"]
    assert store.get_mark("uci", "fhir:bulk").split("|")[0] == "2026-11-26T10:00:00Z"


@responses.activate
def test_bulk_mark_moves_when_the_export_held_the_type_refused_on_search(tmp_path, store):
    """The export held Observations (the scope of the export allowed them): a 403 on the
    searches of new patients does not hold the mark (those patients are searched again)."""
    def answer(req, t):
        return (403, oo("Insufficient scope", "forbidden")) if t == "Observation" else (200, EMPTY)

    night = _night_with_new_patients(tmp_path, store, answer)
    responses.replace(responses.GET, STATUS, json={
        "transactionTime": "2026-11-26T10:00:00Z", "requiresAccessToken": False,
        "output": [{"type": "Condition", "url": f"{FILES}/Condition.ndjson"},
                   {"type": "Observation", "url": f"{FILES}/Observation.ndjson"}], "error": []})
    rep = night()
    assert store.get_mark("uci", "fhir:bulk").split("|")[0] == "2026-11-26T10:00:00Z"
    assert not any("bulk mark was not advanced" in w for w in rep.warnings), rep.warnings
    assert json.loads(store.get_mark("uci", "fhir:complete")) == ["p1"]


@responses.activate
def test_bulk_full_refresh_keeps_a_type_refused_on_search_and_missing_from_the_export(tmp_path, store):
    """A full refresh whose export held no Observation (a token without its scope) and whose
    search of a merged chart was refused Observation (403): the type counted as read in full,
    so the sweep dropped every stored Observation. It is not swept now."""
    setup_server(ndjson([obs(1, "p1")]), {}, [], [])
    s = settings(tmp_path, bulk_group="g1")
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    link = [{"type": "replaces", "other": {"reference": "Patient/p3"}}]
    responses.replace(responses.GET, f"{FILES}/Patient.ndjson", body=ndjson(
        [{"resourceType": "Patient", "id": "p1", "link": link}]))
    responses.replace(responses.GET, STATUS, json=_manifest(output=_manifest()["output"][:2]))
    for t in ("Patient", "Condition", "Observation", "MedicationRequest", "MedicationStatement",
              "MedicationAdministration", "Immunization", "Procedure"):
        refused = (403, {}, json.dumps(oo("Insufficient scope", "forbidden")))
        responses.add_callback(responses.GET, f"{BASE}/{t}", callback=lambda req, t=t, refused=refused:
                               refused if t == "Observation" else (200, {}, json.dumps(EMPTY)))
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s), full_refresh=True)
    assert store.get("uci", "Observation", "o1") is not None
    assert rep.removed == 0
    assert any(w.startswith("bulk: Observation refused (HTTP 403) on search") for w in rep.warnings)


def _stored_by_an_earlier_version(store):
    """What a version that stored every type of an export left: Encounters and a Claim, with a
    Medication a stored MedicationRequest references (Medication is read by id when a server
    refuses it in _type: not in every export)."""
    old = [{"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/p1"}},
           {"resourceType": "Encounter", "id": "e2", "subject": {"reference": "Patient/p1"}},
           {"resourceType": "Claim", "id": "cl1", "patient": {"reference": "Patient/p1"}},
           {"resourceType": "Medication", "id": "m1", "code": {"text": "VAY736"}},
           {"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": "Medication/m1"}}]
    store.put_resources("uci", [(r, "bulk 0009.Encounter.ndjson:1") for r in old], source=BASE)


@responses.activate
def test_bulk_drops_stored_records_of_types_no_longer_read(tmp_path, store):
    """Records of types cohort does not read (Encounter, Claim), stored by earlier versions'
    Bulk loads, stayed in the store for good: no export asks for them, no sweep covers them.
    The next pull that completes drops them, counted under `dropped_types`; the Medication a
    medication record references, and every type cohort reads, stay."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    _stored_by_an_earlier_version(store)
    _refusing_kickoff(kick, lambda q: "Medication" in dict(q)["_type"].split(","))
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert "Medication" not in dict(kick[-1])["_type"].split(",")
    assert rep.to_dict()["dropped_types"] == {"Claim": 1, "Encounter": 2}
    counts = store.count_by_type("uci")
    assert "Encounter" not in counts and "Claim" not in counts
    assert store.get("uci", "Medication", "m1") is not None
    assert store.get("uci", "MedicationRequest", "mr1") is not None
    assert store.get("uci", "Observation", "o1") is not None
    # (the next night's probe for Medications changed since: none)
    responses.get(f"{BASE}/Medication", json={"resourceType": "Bundle", "type": "searchset",
                                              "total": 0})
    again = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert again.to_dict()["dropped_types"] == {}


@responses.activate
def test_bulk_pull_that_fails_drops_nothing(tmp_path, store):
    """A pull that fails (every kick-off refused) leaves the stored records of other types be."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    _stored_by_an_earlier_version(store)
    _refusing_kickoff(kick, lambda q: True)
    s = settings(tmp_path, bulk_group="g1")
    from cohort.errors import ServerError
    with pytest.raises(ServerError):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.count_by_type("uci")["Encounter"] == 2


@responses.activate
@pytest.mark.parametrize("cap", [capability(), COMBO_CAP], ids=["by-code", "combo-listed"])
def test_bulk_export_without_type_filter_does_not_say_component_results_are_left_out(
        tmp_path, store, cap):
    """A server refusing _typeFilter: the export is unfiltered, so a CBC panel whose only mapped
    code is a component's is exported and stored; run.json said it was not (the server lists no
    combo-code ...; or, once bulk-no-combo-code was remembered with bulk-no-typefilter, that
    combo-code was refused and the export asked by code), on that night and every later one."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1"), _cbc(5, "p1")]), {}, kick, since)
    responses.replace(responses.GET, f"{BASE}/metadata", json=cap)
    _refusing_kickoff(kick, lambda q: any(k == "_typeFilter" for k, _ in q))
    s = settings(tmp_path, bulk_group="g1")
    for night in (1, 2):
        rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
        assert not any(k == "_typeFilter" for k, _ in kick[-1])
        assert store.get("uci", "Observation", "o5") is not None
        assert not any("are not exported" in w and w.startswith("bulk: the server") for w in rep.warnings), (
            night, rep.warnings)
    assert "bulk-no-typefilter" in rep.quirks


@pytest.mark.parametrize("when", [None, "2026-11-25T10:00:00", "yesterday"])
@responses.activate
def test_bulk_manifest_without_a_readable_transaction_time_warns(tmp_path, store, when):
    """A manifest with no transactionTime (the Bulk Data IG requires one) set no mark and said
    nothing: every night was a full export with no word why. One without a time zone or not a
    date at all became the mark as written, and the next export's _since was that text. Now
    neither sets a mark, a warning says why, and the next export is a full one."""
    kick, since = [], []
    setup_server(ndjson([obs(1, "p1")]), {}, kick, since)
    m = _manifest()
    if when is None:
        del m["transactionTime"]
    else:
        m["transactionTime"] = when
    responses.replace(responses.GET, STATUS, json=m)
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Observation", "o1") is not None
    assert store.get_mark("uci", "fhir:bulk") is None
    assert any("transactionTime" in w and "repeats this window" in w for w in rep.warnings)
    pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert since == [None, None]


@responses.activate
def test_bulk_lines_not_utf8_are_unreadable_and_the_warning_says_why(tmp_path, store):
    """A Bulk file must be UTF-8: a line in Windows-1252 (a name "José" as the byte 0xE9) is not
    guessed at; the warning counts it unreadable and says it is not UTF-8 (it said no why)."""
    latin = json.dumps({**obs(7, "p1"), "note": [{"text": "José"}]}, ensure_ascii=False)
    setup_server(ndjson([obs(1, "p1")]) + latin.encode("cp1252") + b"\n", {}, [], [])
    s = settings(tmp_path, bulk_group="g1")
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Observation", "o7") is None
    said = [w for w in rep.warnings if "unreadable line" in w]
    assert said == ["bulk 0002.Observation.ndjson: 1 unreadable line(s), first at line 2"
                    " (1 not UTF-8, which Bulk Data output must be)"]
    assert "Jos" not in " ".join(rep.warnings)
