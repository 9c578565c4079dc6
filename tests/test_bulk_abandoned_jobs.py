"""Bulk $export: a job abandoned for its expired files (404/410 on a file) is DELETEd on the
server, as the Bulk Data IG asks of a client done with a job (the server may then free its
files); best effort: a DELETE that fails is a warning without the token, never the night's end."""

from __future__ import annotations

import json

import pytest
import requests
import responses
from fhir_fakes import BASE, SLE, TOKENS, capability
from test_fhir_bulk import FILES, cond, ndjson, nosleep, obs, settings

from cohort.errors import ServerError
from cohort.source.fhir import pull

OLD = f"{BASE}/bulk-status/job-old"
NEW = f"{BASE}/bulk-status/job-new"


def _manifest() -> dict:
    return {"transactionTime": "2026-11-25T10:00:00Z", "requiresAccessToken": False,
            "output": [{"type": "Condition", "url": f"{FILES}/Condition.ndjson"},
                       {"type": "Patient", "url": f"{FILES}/Patient.ndjson"},
                       {"type": "Observation", "url": f"{FILES}/Observation.ndjson"}],
            "error": []}


def _server(jobs: list[str], observation) -> None:
    """Each kick-off starts the next job of `jobs` (its status URL answers the manifest); the
    Observation file answers `observation(job)`, job the one this run kicked off last (None:
    none yet, the file is a resumed job's)."""
    responses.get(f"{BASE}/metadata", json=capability())
    kicked: list[str] = []

    def kickoff(req):
        kicked.append(jobs[len(kicked)])
        return 202, {"Content-Location": kicked[-1]}, ""

    responses.add_callback(responses.GET, f"{BASE}/Group/g1/$export", callback=kickoff)
    for job in jobs:
        responses.get(job, json=_manifest())
    responses.get(f"{FILES}/Condition.ndjson", body=ndjson([cond(1, "p1")]))
    responses.get(f"{FILES}/Patient.ndjson", body=ndjson([{"resourceType": "Patient", "id": "p1"}]))
    responses.add_callback(responses.GET, f"{FILES}/Observation.ndjson",
                           callback=lambda req: observation(kicked[-1] if kicked else None))


def _deletes() -> list[str]:
    return [c.request.url for c in responses.calls if c.request.method == "DELETE"]


def _interrupt(tmp_path, store, s) -> None:
    """A first run whose Observation download is cut: the OLD job is left to resume."""
    _server([OLD], lambda job: requests.ConnectionError("reset"))
    with pytest.raises(ServerError, match="interrupted|ConnectionError"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert json.loads((tmp_path / "spool" / "uci" / "job.json").read_text())["status_url"] == OLD
    responses.reset()


def _expired(status: int):
    """The resumed job's Observation link has expired; the new job's is served."""
    return lambda job: (status, {}, "") if job is None else (200, {}, ndjson([obs(1, "p1")]))


@pytest.mark.parametrize("status", [404, 410])
@responses.activate
def test_a_resumed_job_whose_files_expired_is_deleted_before_the_new_one(tmp_path, store, status):
    s = settings(tmp_path, bulk_group="g1", max_retries=0)
    _interrupt(tmp_path, store, s)
    _server([NEW], _expired(status))
    responses.delete(OLD, status=202)
    responses.delete(NEW, status=202)
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Observation", "o1") is not None
    # the abandoned job first (before the new one is kicked off), the finished one at the end
    calls = [(c.request.method, c.request.url) for c in responses.calls]
    assert _deletes() == [OLD, NEW]
    assert calls.index(("DELETE", OLD)) < next(i for i, (m, u) in enumerate(calls) if "$export" in u)
    assert any("is gone" in w and f"HTTP {status}" in w for w in rep.warnings)


@responses.activate
def test_a_new_job_whose_files_expire_is_deleted_before_the_run_fails(tmp_path, store):
    """Tonight's own job whose file answers 410 mid-run: the run fails (the next one starts a
    new export, its spool emptied) and the job is deleted, not left for nobody to end."""
    s = settings(tmp_path, bulk_group="g1", max_retries=0)
    _server([NEW], lambda job: (410, {}, ""))
    responses.delete(NEW, status=202)
    with pytest.raises(ServerError, match="next run starts a new export"):
        pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert _deletes() == [NEW]
    assert not (tmp_path / "spool" / "uci" / "job.json").exists()


@responses.activate
def test_a_delete_that_fails_warns_without_the_token_and_the_night_goes_on(
    tmp_path, store, monkeypatch
):
    monkeypatch.setenv("TOK", "secret-token")
    s = settings(tmp_path, bulk_group="g1", max_retries=0, auth="bearer", token_env="TOK")
    _interrupt(tmp_path, store, s)
    _server([NEW], _expired(404))
    responses.delete(OLD, status=500)
    responses.delete(NEW, body=requests.ConnectionError("reset"))
    rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=nosleep(s))
    assert store.get("uci", "Observation", "o1") is not None
    assert _deletes() == [OLD, NEW]
    failed = [w for w in rep.warnings if "could not delete" in w]
    assert len(failed) == 2 and "abandoned" in failed[0] and "HTTP 500" in failed[0]
    assert not any("secret-token" in w for w in rep.warnings)
