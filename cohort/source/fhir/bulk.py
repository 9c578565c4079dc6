"""Bulk Data $export: kick-off, polling, resumable NDJSON download to a spool dir, load, delete."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import orjson
import requests

from cohort.atomic import ensure_dir, write_atomic
from cohort.errors import AuthError, ServerError
from cohort.merged import family
from cohort.source.structure import loads

from .answer import content_length, retry_after
from .client import url_host
from .ndjson import export_links, load, read_ndjson, screened_in
from .outcome import outcome_issues
from .plan import BY_CODE, PULL_TYPES, minus_overlap, token_hash
from .pull import Puller
from .search import pull_replacing, pull_types, search_path

MIN_POLL = 1.0  # seconds between two status polls at the least (see poll)


class JobGone(ServerError):
    """The export job cannot be finished: the server says it failed or no longer has it (or its
    files), or its manifest is unusable. Resuming it would fail every night: a new one is due."""


def spool_dir(p: Puller) -> Path:
    """The site's spool folder, 0700 whatever the umask and whoever made it before (its files
    are PHI, and a killed run leaves them to be resumed)."""
    root = Path(p.s.spool_dir) if p.s.spool_dir else None
    if root is None:
        store_path = getattr(p.store, "path", None)
        base = Path(store_path).parent if store_path else Path(tempfile.gettempdir())
        root = base / "bulk-spool"
    d = root / p.site
    try:
        ensure_dir(d)  # missing folders 0700
        os.chmod(d, 0o700)  # (one that was there before)
    except OSError as e:
        raise ServerError(f"cannot use the bulk spool folder {d}: {e.strerror}") from None
    return d


def _private(path: Path, mode: str = "wb") -> IO[bytes]:
    """`path` opened for writing ("wb" or "ab"), 0600 whatever the umask: spooled NDJSON is
    PHI (job.json, which names the job's status URL, is written 0600 by write_atomic)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, mode)


def export_types(p: Puller) -> list[str]:
    return [t for t in PULL_TYPES if p.cap.has_type(t) and (t not in BY_CODE or p.tokens.get(t))]


def export_key(p: Puller, types: list[str]) -> str:
    """What an export holds: its types, mapped codes, screening codes and group. The bulk mark
    carries it, so that an export since the mark is only asked for while it is unchanged (a
    code mapped since, or a type back in the CapabilityStatement, needs the full history)."""
    parts = [f"type:{t}" for t in types] + [f"group:{p.s.bulk_group}"]
    parts += [f"{t}:{v}" for t in types if t in BY_CODE for v in p.tokens.get(t, [])]
    parts += [f"screen:{c}" for c in p.screen_codes]
    return token_hash(parts)


def kickoff(p: Puller, since: str | None) -> str:
    """Start an export job; returns the status (Content-Location) URL."""
    types = export_types(p)
    missing = [t for t in PULL_TYPES if not p.cap.has_type(t)]
    for t in missing:
        p.report.warn(f"{t}: not in the server's CapabilityStatement; not exported")
    params: list[tuple[str, str]] = [("_type", ",".join([*types, "Medication"]))]
    for t in types:
        if t in BY_CODE:
            # the value is itself a URL-encoded query: commas inside it are %2C
            params.append(("_typeFilter", f"{t}?{urlencode([('code', ','.join(p.tokens[t]))])}"))
    if since:
        params.append(("_since", since))
    path = f"Group/{p.s.bulk_group}/$export" if p.s.bulk_group else "Patient/$export"
    headers = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
    refused = ""
    while True:
        try:
            r = p.client.request("GET", path, key="bulk", params=params, headers=headers, ok=(202,))
            break
        except ServerError as e:
            status = getattr(e, "status", 0)
            fewer = _fewer(params) if status in (400, 422) else None
            if fewer is None:
                raise
            # a server may refuse what it does not export (HAPI FHIR, IBM FHIR: Medication, not
            # in the Patient compartment) or _typeFilter (optional); the spec's way: refuse, for
            # the client to ask again without. Nothing is remembered: each night asks again
            params, dropped = fewer
            p.report.warn(
                f"bulk: server refused the export kick-off{refused} (HTTP {status}); "
                f"asked again without {dropped}"
            )
            refused = " " + _REFUSED_TOO[dropped]
    loc = r.headers.get("Content-Location")
    if not loc:
        raise ServerError(f"GET {path}: 202 without Content-Location")
    # checked now (another host, not http(s)), before the job is saved to be resumed: a
    # status URL that cannot be polled made every later run resume it and fail
    return p.client.url(loc)


# what a refused kick-off is asked again without, in this order (the warning's words)
_NO_MEDICATION = "Medication in _type (referenced Medications are read by id)"
_NO_TYPE_FILTER = (
    "_typeFilter: exported unfiltered (records whose code no mapping has are counted under"
    " not_stored, not stored)"
)
_REFUSED_TOO = {_NO_MEDICATION: "without Medication too", _NO_TYPE_FILTER: "without _typeFilter"}


def _fewer(params: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], str] | None:
    """`params` less the next thing a refused kick-off is asked again without, and its words;
    None when nothing is left to drop."""
    types = dict(params)["_type"].split(",")
    if "Medication" in types:
        rest = ",".join(t for t in types if t != "Medication")
        return [(k, rest if k == "_type" else v) for k, v in params], _NO_MEDICATION
    if any(k == "_typeFilter" for k, _ in params):
        return [(k, v) for k, v in params if k != "_typeFilter"], _NO_TYPE_FILTER
    return None


def poll(p: Puller, status_url: str) -> dict[str, Any]:
    """Poll the status URL until the manifest is ready or bulk_timeout has passed: at the
    server's pace (Retry-After, however long, up to the deadline), logging X-Progress. A 429
    ("polled too often") is an answer like 202, not an error for the client's retries."""
    deadline = time.monotonic() + p.s.bulk_timeout
    attempt = 0
    while True:
        try:
            r = p.client.request(
                "GET",
                status_url,
                key="bulk",
                ok=(200, 202, 429),
                headers={"Accept": "application/json"},
            )
        except AuthError:
            raise
        except ServerError as e:
            # the spec's answer for a failed job: 4xx/5xx with an OperationOutcome; 404/410: gone;
            # but one whose issues are all `transient` (or `throttled`) says "poll again later"
            status, outcome = getattr(e, "status", 0), getattr(e, "is_outcome", False)
            codes = {code for _, code in getattr(e, "issues", [])}
            if codes and codes <= {"transient", "throttled"}:
                raise
            if (400 <= status < 500 and status != 429) or (status >= 500 and outcome):
                raise JobGone(f"bulk export job failed: {e}") from None
            raise  # down, busy, a proxy's 502: the job may be fine, resumed next run
        if r.status_code == 200:
            try:
                manifest = loads(r.content)
            except orjson.JSONDecodeError:
                manifest = None
            if not isinstance(manifest, dict):
                raise JobGone("bulk status: the manifest is not a JSON object")
            return manifest
        left = deadline - time.monotonic()
        if left <= 0:
            raise ServerError(f"bulk export not complete after {p.s.bulk_timeout:.0f}s")
        hinted = retry_after(r.headers.get("Retry-After"), p.client.clock(), r.headers.get("Date"))
        # the server's Retry-After whole (capped at max_wait, a server asking for 15 minutes was
        # polled early, answered 429 and the run failed when the client's retries ran out) up
        # to the deadline; at least MIN_POLL: "Retry-After: 0" (or a date already past)
        # re-polled at once, in a loop of requests and log lines until bulk_timeout ran out
        wait = hinted if hinted is not None else min(p.s.max_wait, p.client.backoff(attempt))
        wait = min(max(wait, min(MIN_POLL, p.s.max_wait)), left)
        attempt += 1
        p.log.info(
            "fhir %s: bulk export in progress (%s)",
            p.site,
            (r.headers.get("X-Progress") or "?")[:40],
        )
        p.client.stats.add("bulk", waits=wait)
        p.client.sleep(wait)


def download(
    p: Puller, manifest: dict[str, Any], spool: Path, kind: str = "output"
) -> list[tuple[str, Path]]:
    """Download every `kind` ("output" or "error") file; completed files are skipped and partial
    ones resumed (Range). Credentials go to another host only if the manifest says
    `requiresAccessToken: true`."""
    use_token = manifest.get("requiresAccessToken") is True
    items = manifest.get(kind) or []
    if not isinstance(items, list):
        raise JobGone(f"bulk manifest: '{kind}' is not a list")
    files: list[tuple[str, Path]] = []
    for i, out in enumerate(items):
        rtype = str(out.get("type", "")) if isinstance(out, dict) else ""
        url = out.get("url") if isinstance(out, dict) else None
        if not rtype.isalpha() or not isinstance(url, str) or not url:
            # (skipping it let the mark pass records never downloaded)
            raise JobGone(f"bulk manifest: {kind} {i} has no type or no url")
        final = spool / f"{'error-' if kind == 'error' else ''}{i:04d}.{rtype}.ndjson"
        files.append((rtype, final))
        if final.exists():
            continue
        part = final.with_name(final.name + ".part")
        have = part.stat().st_size if part.exists() else 0
        host = url_host(url)
        if host is None:
            raise JobGone(f"bulk manifest: {kind} {i} ({rtype}) has no http(s) URL")
        same_host = p.client.same_host(url)
        if same_host:
            url = p.client.url(url)  # (an http:// link of ours is followed over https)
        while True:
            headers = {"Accept": "application/fhir+ndjson", "Accept-Encoding": "gzip"}
            if have:
                headers.update({"Range": f"bytes={have}-", "Accept-Encoding": "identity"})
            try:
                r = p.client.request(
                    "GET",
                    url,
                    key=rtype,
                    headers=headers,
                    stream=True,
                    ok=(200, 206),
                    auth=use_token or same_host,
                    foreign=True,
                )
                break
            except ServerError as e:
                status = getattr(e, "status", 0)
                if status == 416 and have:
                    # nothing left after the .part (cut after its last byte), or the file
                    # changed: fetched whole (was refused, the same way, every later night)
                    part.unlink()
                    have = 0
                    continue
                if status in (404, 410) or (status in (401, 403) and not (use_token or same_host)):
                    # an expired file link (a signed URL answers 403): the job's files are gone
                    raise JobGone(
                        f"bulk {kind} file {i} ({rtype}): HTTP {status} (expired?)"
                    ) from None
                raise
        mode = "ab" if r.status_code == 206 and have else "wb"
        n = 0
        try:
            with _private(part, mode) as f:
                for chunk in r.iter_content(1 << 16):
                    f.write(chunk)
                    n += len(chunk)
        except (requests.RequestException, OSError) as e:
            # the .part file stays: the next run resumes it with a Range request
            raise ServerError(f"bulk download of {rtype} interrupted: {type(e).__name__}") from None
        finally:
            r.close()
        p.client.stats.add(rtype, nbytes=n if content_length(r) is None else 0)
        part.rename(final)
    return files


def _fresh(spool: Path) -> None:
    """Forget an export job: its state and files (a new job starts from nothing)."""
    for old in spool.glob("*.ndjson*"):
        old.unlink()
    (spool / "job.json").unlink(missing_ok=True)


def _export(
    p: Puller, spool: Path, state: dict[str, Any], since: str | None, key: str
) -> tuple[dict[str, Any], list[tuple[str, Path]], list[tuple[str, Path]]]:
    """Run (or resume, given `state`) an export job to its downloaded output and error files."""
    state_file = spool / "job.json"
    with p.phase("bulk-export"):
        if not state:
            _fresh(spool)
            state = {"status_url": kickoff(p, since), "since": since, "key": key}
            _write_state(state_file, state)
        if not state.get("manifest"):  # (a resumed job may have it already)
            state["manifest"] = poll(p, state["status_url"])
            _write_state(state_file, state)
    with p.phase("bulk-download"):
        files = download(p, state["manifest"], spool)
        errors = download(p, state["manifest"], spool, "error")
    return state, files, errors


def _write_state(path: Path, state: dict[str, Any]) -> None:
    # atomic: a run killed mid-write must leave the previous state, not a cut file
    write_atomic(path, json.dumps(state))


def _read_state(p: Puller, path: Path) -> dict[str, Any]:
    """The unfinished job an earlier run left, or {} when there is none or it is unreadable."""
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_bytes())
    except (OSError, ValueError):
        state = None
    if not isinstance(state, dict):
        p.report.warn(f"bulk: {path.name} of an earlier run is unreadable; a new export job")
        return {}
    return state


def export_errors(p: Puller, errors: list[tuple[str, Path]]) -> bool:
    """Report the issues of the manifest's error files (severity and code only: diagnostics
    may name patients); True when one is an error, i.e. the export lacks some records."""
    kinds: dict[tuple[str, str], int] = {}
    for _, path in errors:
        for _, res in read_ndjson(path):
            for issue in outcome_issues(res):
                kinds[issue] = kinds.get(issue, 0) + 1
    if not kinds:
        return False
    failed = any(sev in ("fatal", "error") for sev, _ in kinds)
    listed = ", ".join(f"{sev} {code} x{n}" for (sev, code), n in sorted(kinds.items())[:6])
    p.report.warn(
        f"bulk export: the server's error files hold {sum(kinds.values())} issue(s) ({listed})"
        + (
            "; the bulk mark was not advanced, the next export repeats this window"
            if failed
            else ""
        )
    )
    return failed


def bulk_pull(p: Puller) -> None:
    """Export (incrementally with _since), keep screened patients' records, then delete the job."""
    p.report.mode = "bulk"
    if "export" not in p.cap.operations:
        p.report.warn("server does not advertise $export; used search instead")
        p.report.mode = "search"
        search_path(p)
        return
    spool = spool_dir(p)
    state_file = spool / "job.json"
    state = _read_state(p, state_file)
    types = export_types(p)
    key = export_key(p, types)
    mark, _, mark_key = (p.mark("bulk") or "").partition("|")
    if mark and mark_key != key:
        p.report.warn("bulk: exported types or mapped codes changed since the last export: full")
        mark = ""
    since = minus_overlap(mark, timedelta(seconds=p.s.sync_overlap)) if mark else None
    resumed = bool(state.get("status_url")) and not p.full_refresh and state.get("key") == key
    if resumed:
        p.report.warn("resumed an unfinished bulk export job")
    elif state.get("status_url"):
        # an earlier run's unfinished job that tonight replaces (--full-refresh, other types or
        # codes): left alone it kept the server exporting, and its files, for nothing
        _delete_job(p, str(state["status_url"]), "the replaced earlier")
    try:
        state, files, errors = _export(p, spool, state if resumed else {}, since, key)
    except JobGone as e:
        if not resumed:
            _fresh(spool)
            raise ServerError(f"{e}; the next run starts a new export") from None
        p.report.warn(f"the unfinished bulk export job of an earlier run is gone ({e}); new job")
        state, files, errors = _export(p, spool, {}, since, key)
    manifest = state["manifest"]
    incomplete = export_errors(p, errors)
    with p.phase("bulk-load"):
        complete = p.id_set("complete")
        screened = p.id_set("screened") | screened_in(files, p.screen_codes)
        # the charts merged with screened ones are read with them (cohort/merged.py)
        merged = family(export_links(files), screened)
        screened |= merged
        p.set_mark("screened", json.dumps(sorted(screened)))
        held = load(p, files, screened)
    if not incomplete:
        p.swept.update(types)
    # a full export: the merged charts it does not hold (a Group's non-members) are new
    new = sorted(screened - complete if state.get("since") else merged - held)
    p.report.incremental = bool(state.get("since"))
    p.report.patients_screened, p.report.patients_new = len(screened), len(new)
    if new:  # the export held only changes, or not these charts: fetch their history by search
        pull_types(p, new, [])
    # a newly screened patient's chart may have been merged on an earlier night, and a link
    # stored on an earlier night may name a chart not fetched yet (as search_path does)
    screened |= pull_replacing(p, screened, set())
    if manifest.get("transactionTime") and not incomplete:
        p.set_mark("bulk", f"{manifest['transactionTime']}|{key}")
    p.set_mark("complete", json.dumps(sorted(screened)))
    _delete_job(p, state["status_url"], "the")
    shutil.rmtree(spool, ignore_errors=True)


def _delete_job(p: Puller, status_url: str, which: str) -> None:
    """DELETE an export job's status URL (the Bulk Data way to end a job); a failure only warns."""
    try:
        p.client.request("DELETE", status_url, key="bulk", ok=(200, 202, 204, 404))
    except ServerError as e:
        p.report.warn(f"could not delete {which} bulk export job: {e}")
