"""Server fault injection, end to end: `cohort.runner.run` against a FHIR server faked with
`responses` (search and Bulk $export), serving the shipped `amr` sample population.

Every scenario: a run with a fault injected (it may fail or survive), then a clean run into the
same OUT/store. The outputs must equal an undisturbed run's (the first run of a fresh folder when
the disturbed run failed, the second when it survived), and the store must be consistent.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
import pytest
import requests
import responses
from test_reliability_support import (
    AS_OF,
    SAMPLES,
    Scenarios,
    differing,
    outputs,
    report_at_end,
    store_problems,
    write_config,
)

from cohort.config import load_config
from cohort.errors import CohortError
from cohort.runner import run

BASE = "https://fhir.reliability.invalid/r4"
TOKEN_ENV = "COHORT_RELIABILITY_TOKEN"
SITES = ("amr",)
RUNS = Scenarios("server fault injection")
CRASHES: list[str] = []  # non-CohortError escapes (a run exiting 1 instead of 6/7)

# A fault sees (request number, request) and returns None (serve normally), a response tuple, an
# exception to raise, or "truncate" (serve the real answer cut in half).
Fault = Callable[[int, Any], Any]


def _load_population() -> dict[tuple[str, str], dict[str, Any]]:
    db: dict[tuple[str, str], dict[str, Any]] = {}
    for f in sorted((SAMPLES / "amr").iterdir()):
        raw = gzip.decompress(f.read_bytes()) if f.name.endswith(".gz") else f.read_bytes()
        for line in raw.splitlines():
            if line.strip():
                res = orjson.loads(line)
                res["meta"] = {"versionId": "1", "lastUpdated": "2026-11-01T00:00:00Z"}
                for c in (res.get("code") or {}).get("coding") or []:
                    # one spelling of each system, as a server that normalises codes would serve
                    c["system"] = str(c.get("system")).replace("https://", "http://").rstrip("/")
                db[(res["resourceType"], res["id"])] = res
    return db


POPULATION = _load_population()


def _tokens(res: dict[str, Any]) -> set[str]:
    cc = res.get("code") or {}
    codings = cc.get("coding") or []
    # FHIR token search: "system|code" or a bare "code" (any system)
    return {f"{c.get('system')}|{c.get('code')}" for c in codings} | {
        str(c.get("code")) for c in codings
    }


def _patient_ref(res: dict[str, Any]) -> str:
    ref = (res.get("subject") or res.get("patient") or {}).get("reference", "")
    return str(ref).split("/")[-1]


class FakeServer:
    """Search (paged, _include, _lastUpdated) and Bulk $export over POPULATION; faults injectable."""

    clock = "2026-11-25T10:00:00Z"

    def __init__(self, rsps: responses.RequestsMock, fault: Fault | None = None) -> None:
        self.fault = fault
        self.requests = 0
        self.page = 25
        self.token = "tok-one"
        self.next_link: Callable[[str, str], str] | None = None  # (type, honest url) -> url
        rsps.add_callback(responses.GET, re.compile(re.escape(BASE) + r"/.*"), callback=self._cb)
        rsps.add_callback(responses.DELETE, re.compile(re.escape(BASE) + r"/.*"), callback=self._cb)

    def _cb(self, req: Any) -> Any:
        self.requests += 1
        if self.fault is not None:
            hit = self.fault(self.requests, req)
            if isinstance(hit, BaseException | tuple):
                return hit
            if hit == "truncate":
                status, hdr, body = self._serve(req)
                return status, hdr, body[: len(body) // 2]
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, json.dumps(_oo("token expired or invalid", "login"))
        return self._serve(req)

    def _serve(self, req: Any) -> tuple[int, dict[str, str], Any]:
        p = urlsplit(req.url)
        path = p.path[len(urlsplit(BASE).path) :].strip("/")
        q = parse_qsl(p.query)
        hdr = {"Content-Type": "application/fhir+json"}
        if req.method == "DELETE":
            return 202, {}, ""
        if path == "metadata":
            return 200, hdr, json.dumps(_capability())
        if path.endswith("$export"):
            return 202, {"Content-Location": f"{BASE}/bulkstatus/1"}, ""
        if path == "bulkstatus/1":
            types = sorted({t for t, _ in POPULATION})
            manifest = {
                "transactionTime": self.clock,
                "requiresAccessToken": True,
                "output": [{"type": t, "url": f"{BASE}/bulkfiles/{t}.ndjson"} for t in types],
            }
            return 200, {"Content-Type": "application/json"}, json.dumps(manifest)
        if path.startswith("bulkfiles/"):
            rtype = path.split("/")[1].split(".")[0]
            lines = [json.dumps(r) for (t, _), r in sorted(POPULATION.items()) if t == rtype]
            return 200, {"Content-Type": "application/fhir+ndjson"}, "\n".join(lines) + "\n"
        if "/" in path:
            res = POPULATION.get(tuple(path.split("/", 1)))  # type: ignore[arg-type]
            return (200, hdr, json.dumps(res)) if res else (404, hdr, json.dumps(_oo("gone")))
        return 200, hdr, json.dumps(self._search(path, q))

    def _search(self, rtype: str, q: list[tuple[str, str]]) -> dict[str, Any]:
        # "_summary" is ignored, as by servers without it: no `total`, so the client falls back
        skip = ("_count", "_page", "_include", "category", "_summary")
        crit = [(k, v) for k, v in q if k not in skip]
        hits = [r for (t, _), r in sorted(POPULATION.items()) if t == rtype]
        for k, v in crit:
            vals = set(v.split(","))
            if k == "_id":
                hits = [r for r in hits if r["id"] in vals]
            elif k == "patient":
                hits = [r for r in hits if _patient_ref(r) in vals]
            elif k == "code":
                hits = [r for r in hits if _tokens(r) & vals]
            elif k == "_lastUpdated":
                hits = [r for r in hits if r["meta"]["lastUpdated"] > v[2:]]
            else:
                raise AssertionError(f"unexpected search parameter {k}")
        page = int(dict(q).get("_page", 0))
        chunk = hits[page * self.page : (page + 1) * self.page]
        entries = [{"resource": r, "search": {"mode": "match"}} for r in chunk]
        if "_include" in dict(q):
            for r in chunk:
                mid = (r.get("medicationReference") or {}).get("reference", "").split("/")[-1]
                if ("Medication", mid) in POPULATION:
                    entries.append({"resource": POPULATION[("Medication", mid)]})
        links = []
        if (page + 1) * self.page < len(hits):
            rest = [(k, v) for k, v in q if k != "_page"] + [("_page", str(page + 1))]
            url = f"{BASE}/{rtype}?{urlencode(rest, safe=',|:/')}"
            if self.next_link is not None:
                url = self.next_link(rtype, url)
            links.append({"relation": "next", "url": url})
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "meta": {"lastUpdated": self.clock},
            "entry": entries,
            "link": links,
        }


def _oo(text: str, code: str = "invalid") -> dict[str, Any]:
    issue = {"severity": "error", "code": code, "diagnostics": text}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _capability() -> dict[str, Any]:
    types = sorted({t for t, _ in POPULATION} | {"Procedure", "MedicationStatement"})
    res = []
    for t in types:
        entry: dict[str, Any] = {
            "type": t,
            "searchParam": [{"name": n} for n in ("_id", "_lastUpdated", "patient", "code")],
        }
        if t.startswith("Medication") and t != "Medication":
            entry["searchInclude"] = [f"{t}:medication"]
        res.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "resource": res, "operation": [{"name": "export"}]}],
    }


# ---- harness -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def _summary(request: pytest.FixtureRequest) -> None:
    report_at_end(request, RUNS)


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "tok-one")


def _config(folder: Path, *, bulk: bool = False, retries: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    server = {
        "auth": "bearer",
        "token_env": TOKEN_ENV,
        "max_wait": 0.001,
        "max_retries": retries,
        "concurrency": 1,
        "page_size": 25,
        "timeout": 5.0,
        "bulk": bulk,
        "spool_dir": str(folder / "spool"),
    }
    return write_config(folder, {"amr": BASE}, server={"amr": server})


def _run(
    folder: Path, fault: Fault | None = None, **kw: Any
) -> tuple[dict[str, Any], Exception | None]:
    """One run into folder/out; returns (run.json, the CohortError it failed with or None)."""
    cfg = load_config(_config(folder, bulk=kw.pop("bulk", False), retries=kw.pop("retries", 4)))
    setup: Callable[[FakeServer], None] | None = kw.pop("setup", None)
    full_refresh: bool = kw.pop("full_refresh", False)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeServer(rsps, fault)
        if setup is not None:
            setup(fake)
        err: Exception | None = None
        try:
            run(cfg, date.fromisoformat(AS_OF), folder / "out", full_refresh=full_refresh)
        except CohortError as e:
            err = e
        except Exception as e:  # an unwrapped error: the CLI would exit 1 (see `crashes`)
            CRASHES.append(type(e).__name__)
            err = e
    report = json.loads((folder / "out" / "run.json").read_text(encoding="utf-8"))
    return report, err


_BASELINES: dict[bool, list[dict[str, bytes]]] = {}


def baseline(tmp_root: Path, bulk: bool) -> list[dict[str, bytes]]:
    """Outputs of an undisturbed first and second run (the second sees the first's tiers)."""
    if bulk not in _BASELINES:
        folder = tmp_root / f"baseline-{'bulk' if bulk else 'search'}"
        first, err = _run(folder, bulk=bulk)
        assert err is None and first["status"] == "success"
        one = outputs(folder / "out", SITES)
        second, err = _run(folder, bulk=bulk)
        assert err is None and second["status"] == "success"
        _BASELINES[bulk] = [one, outputs(folder / "out", SITES)]
        assert one["amr/candidates.csv"].count(b"\n") > 20  # a real population was screened
    return _BASELINES[bulk]


def check_recovery(
    name: str,
    tmp: Path,
    fault: Fault,
    *,
    bulk: bool = False,
    expect_fail: bool | None = None,
    setup: Callable[[FakeServer], None] | None = None,
    between: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The scenario contract; returns the disturbed run's run.json."""
    with RUNS.scenario(name):
        base = baseline(tmp.parent / "_baselines", bulk)
        folder = tmp / name
        disturbed, err = _run(folder, fault, bulk=bulk, setup=setup)
        if expect_fail is not None:
            assert (err is not None) == expect_fail, (name, err, disturbed.get("status"))
        if isinstance(err, CohortError):
            assert disturbed["status"] == "failed" and disturbed["error"] == str(err)
        if err is not None:
            assert disturbed["status"] == "failed" and disturbed["error"]
            # (a first run into a fresh OUT: there were no lists to keep)
            assert disturbed["previous_outputs_kept"] is False
            assert not (folder / "out" / SITES[0] / "candidates.csv").exists()
            expected_after = base[0]  # the failed run wrote no candidates: next is a "first" run
        else:
            assert disturbed["status"] == "success"
            assert not differing(outputs(folder / "out", SITES), base[0]), name
            expected_after = base[1]
        assert not store_problems(folder / "out" / ".cohort" / "store.sqlite")
        if between is not None:
            between()
        clean, err2 = _run(folder, bulk=bulk)
        assert err2 is None and clean["status"] == "success", err2
        assert not differing(outputs(folder / "out", SITES), expected_after), name
        assert not store_problems(folder / "out" / ".cohort" / "store.sqlite")
        return disturbed


def _searches(req: Any) -> bool:
    return req.method == "GET" and "?" in req.url and "metadata" not in req.url


# ---- scenarios ---------------------------------------------------------------------------------


def test_429_storm_is_ridden_out(tmp_path: Path) -> None:
    """Every search request is answered 429 (Retry-After: 0) three times before it is served."""
    tries: dict[str, int] = {}

    def storm(n: int, req: Any) -> Any:
        if not _searches(req):
            return None
        tries[req.url] = tries.get(req.url, 0) + 1
        return (429, {"Retry-After": "0"}, "") if tries[req.url] <= 3 else None

    rep = check_recovery("429 storm", tmp_path, storm, expect_fail=False)
    assert sum(rep["sites"]["amr"]["retries"].values()) >= 3 * 5


def test_429_storm_beyond_retries_fails_cleanly(tmp_path: Path) -> None:
    def storm(n: int, req: Any) -> Any:
        return (429, {"Retry-After": "0"}, "") if _searches(req) and n > 6 else None

    check_recovery("429 storm beyond retries", tmp_path, storm, expect_fail=True)


def test_5xx_burst_mid_run(tmp_path: Path) -> None:
    def burst(n: int, req: Any) -> Any:
        return (503, {}, "unavailable") if 8 <= n < 11 else None  # 3 in a row: retried

    check_recovery("5xx burst (retried)", tmp_path, burst, expect_fail=False)


def test_5xx_outage_mid_run(tmp_path: Path) -> None:
    """The server goes down for good mid-run: the run fails, the next run completes the pull."""

    def outage(n: int, req: Any) -> Any:
        return (502, {}, "bad gateway") if n >= 12 else None

    rep = check_recovery("5xx outage (server stopped)", tmp_path, outage, expect_fail=True)
    assert "HTTP 502" in rep["error"]


def test_read_timeouts(tmp_path: Path) -> None:
    seen: set[str] = set()

    def slow(n: int, req: Any) -> Any:
        if _searches(req) and req.url not in seen:
            seen.add(req.url)
            return requests.ReadTimeout("read timed out")
        return None

    check_recovery("read timeouts", tmp_path, slow, expect_fail=False)


def test_connection_resets(tmp_path: Path) -> None:
    def reset(n: int, req: Any) -> Any:
        if n % 4 == 0:
            return requests.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
        return None

    check_recovery("connection resets", tmp_path, reset, expect_fail=False)


def test_connection_refused_server_stopped(tmp_path: Path) -> None:
    def down(n: int, req: Any) -> Any:
        return requests.ConnectionError("connection refused") if n >= 5 else None

    rep = check_recovery("server stopped (refused)", tmp_path, down, expect_fail=True)
    assert "ConnectionError" in rep["error"]


def test_truncated_json_body(tmp_path: Path) -> None:
    def cut(n: int, req: Any) -> Any:
        return "truncate" if n == 9 else None

    check_recovery("truncated JSON body", tmp_path, cut)


def test_expired_token_rotated_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token expires mid-run and the new one is already in the environment: re-read, go on."""
    state: dict[str, FakeServer] = {}

    def expire(n: int, req: Any) -> Any:
        if n == 10:
            state["fake"].token = "tok-two"
            monkeypatch.setenv(TOKEN_ENV, "tok-two")
        return None

    def setup(fake: FakeServer) -> None:
        state["fake"] = fake

    def restore() -> None:
        monkeypatch.setenv(TOKEN_ENV, "tok-one")

    check_recovery(
        "expired token (rotated)",
        tmp_path,
        expire,
        expect_fail=False,
        setup=setup,
        between=restore,
    )


def test_expired_token_not_renewed(tmp_path: Path) -> None:
    """The token expires mid-run and nobody renews it: the run fails with a server/auth error."""
    state: dict[str, FakeServer] = {}

    def expire(n: int, req: Any) -> Any:
        if n == 10:
            state["fake"].token = "tok-new"
        return None

    rep = check_recovery(
        "expired token (not renewed)",
        tmp_path,
        expire,
        expect_fail=True,
        setup=lambda f: state.__setitem__("fake", f),
    )
    assert "401" in rep["error"] and "tok-one" not in json.dumps(rep)


def _loop(rtype: str, url: str) -> str:
    """Page 2 of every Observation search links back to page 0."""
    if rtype == "Observation" and "_page=2" in url:
        return url.replace("_page=2", "_page=0")
    return url


def test_next_link_loop_never_passes_as_complete(tmp_path: Path) -> None:
    rep, err = _run(tmp_path / "loop", setup=lambda f: setattr(f, "next_link", _loop))
    base = baseline(tmp_path.parent / "_baselines", False)
    assert err is not None or not differing(outputs(tmp_path / "loop" / "out", SITES), base[0])


def _looped(tmp_path: Path) -> Path:
    folder = tmp_path / "loop"
    rep, err = _run(folder, setup=lambda f: setattr(f, "next_link", _loop))
    # an incomplete search fails the run (never passes as complete) and names the loop
    assert err is not None and "next link" in str(err)
    assert rep["status"] == "failed"
    assert not store_problems(folder / "out" / ".cohort" / "store.sqlite")
    return folder


def test_next_link_loop_terminates_and_full_refresh_recovers(tmp_path: Path) -> None:
    """The loop is detected (no hang; the run fails and says why); `--full-refresh` recovers."""
    with RUNS.scenario("next-link loop (+ full refresh)"):
        folder = _looped(tmp_path)
        rep, err = _run(folder, full_refresh=True)
        assert err is None
        base = baseline(tmp_path.parent / "_baselines", False)
        # change column aside (the looped run wrote outputs), the same patients, tiers, reasons
        assert _tiers(outputs(folder / "out", SITES)) == _tiers(base[0])
        assert not store_problems(folder / "out" / ".cohort" / "store.sqlite")


def test_next_link_loop_then_plain_run_recovers(tmp_path: Path) -> None:
    folder = _looped(tmp_path)
    _run(folder)
    base = baseline(tmp_path.parent / "_baselines", False)
    assert _tiers(outputs(folder / "out", SITES)) == _tiers(base[0])


def _tiers(outs: dict[str, bytes]) -> list[tuple[str, str, str]]:
    import csv

    text = outs["amr/candidates.csv"].decode("utf-8-sig")
    return sorted(
        (r["patient_id"], r["tier"], r["reasons"]) for r in csv.DictReader(io.StringIO(text))
    )


class _Reset(io.RawIOBase):
    """A body that delivers `good` bytes, then fails like a dropped connection."""

    def __init__(self, good: bytes) -> None:
        self.data, self.pos = good, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.pos >= len(self.data):
            raise ConnectionResetError(104, "Connection reset by peer")
        n = min(len(b), len(self.data) - self.pos, 4096)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def test_bulk_export_fails_mid_download(tmp_path: Path) -> None:
    """The Observation file breaks off half way (connection reset while streaming)."""
    done: set[str] = set()

    def drop(n: int, req: Any) -> Any:
        if "bulkfiles/Observation" in req.url and "obs" not in done:
            done.add("obs")
            body = "\n".join(
                json.dumps(r) for (t, _), r in sorted(POPULATION.items()) if t == "Observation"
            ).encode()
            return 200, {}, io.BufferedReader(_Reset(body[: len(body) // 2]))
        return None

    check_recovery("bulk download broken mid-file", tmp_path, drop, bulk=True)


def test_bulk_broken_download_is_a_server_error(tmp_path: Path) -> None:
    body = b"\n".join(
        orjson.dumps(r) for (t, _), r in sorted(POPULATION.items()) if t == "Observation"
    )

    def drop(n: int, req: Any) -> Any:
        if "bulkfiles/Observation" in req.url:
            return 200, {}, io.BufferedReader(_Reset(body[: len(body) // 2]))
        return None

    rep, err = _run(tmp_path / "b", drop, bulk=True)
    assert rep["status"] == "failed"
    assert isinstance(err, CohortError)


def test_bulk_export_status_fails(tmp_path: Path) -> None:
    """The export job itself fails (status URL answers 500 with an OperationOutcome)."""

    def fail(n: int, req: Any) -> Any:
        if "bulkstatus" in req.url and req.method == "GET":
            return 500, {}, json.dumps(_oo("export job failed", "exception"))
        return None

    check_recovery("bulk export job failed", tmp_path, fail, bulk=True, expect_fail=True)


def test_bulk_file_gone(tmp_path: Path) -> None:
    """An output file link has expired (404) half way through the downloads."""

    def gone(n: int, req: Any) -> Any:
        if "bulkfiles/MedicationRequest" in req.url:
            return 404, {}, json.dumps(_oo("expired"))
        return None

    check_recovery("bulk file expired", tmp_path, gone, bulk=True, expect_fail=True)
