"""Bulk Data $export: kick-off, polling, download (spool.py), load (ndjson.py), delete."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from cohort.atomic import write_atomic
from cohort.errors import AuthError, ServerError
from cohort.merged import family
from cohort.source.structure import loads

from .answer import retry_after, utc_instant
from .kickoff import (
    STEPS,
    NoExport,
    by_combo,
    combo_asked,
    fallbacks,
    no_export,
    refused_words,
    said_by_code,
)
from .medications import medication_since, refresh_medications
from .ndjson import export_links, load, not_whole, read_ndjson, screened_in
from .outcome import outcome_issues
from .plan import BY_CODE, COMBO_CODE, PULL_TYPES, minus_overlap, token_hash
from .puller import Puller
from .quirks import kicked_off
from .search import pull_replacing, pull_types, search_path
from .spool import JobGone, absolute_urls, counts, delete_job, download, fresh, spool_dir

MIN_POLL = 1.0  # seconds between two status polls at the least (see poll)


def export_types(p: Puller) -> list[str]:
    return [t for t in PULL_TYPES if p.cap.pulls(t) and (t not in BY_CODE or p.tokens.get(t))]


def export_key(p: Puller, types: list[str], combo: bool = False) -> str:
    """What an export holds: its types, mapped codes, screening codes and group, and whether
    its Observation _typeFilter asks by combo-code (`combo`: components too). The bulk mark
    carries it, so that an export since the mark is only asked for while it is unchanged (a
    code mapped since, or a type back in the CapabilityStatement, needs the full history)."""
    parts = [f"type:{t}" for t in types] + [f"group:{p.s.bulk_group}"]
    parts += [f"{t}:{v}" for t in types if t in BY_CODE for v in p.tokens.get(t, [])]
    parts += [f"screen:{c}" for c in p.screen_codes]
    return token_hash(parts + ([f"param:{COMBO_CODE}"] if combo else []))


def kickoff(p: Puller, since_of: Callable[[bool], str | None]) -> tuple[str, str | None, bool]:
    """Start an export job: (status (Content-Location) URL, its _since, whether its Observation
    filter asked by combo-code). `since_of(combo)` is the _since of an export asked so."""
    types = export_types(p)
    missing = [t for t in PULL_TYPES if not p.cap.pulls(t)]
    for t in missing:
        p.report.warn(f"{t}: not in the server's CapabilityStatement; not exported")
    combo = by_combo(p, types)
    params: list[tuple[str, str]] = [("_type", ",".join([*types, "Medication"]))]
    for t in types:
        if t in BY_CODE:
            name = COMBO_CODE if t == "Observation" and combo else "code"
            # the value is itself a URL-encoded query: commas inside it are %2C
            params.append(("_typeFilter", f"{t}?{urlencode([(name, ','.join(p.tokens[t]))])}"))
    for quirk, drop, _ in STEPS:  # what the server refused on an earlier night (quirks.py)
        if p.quirks.on(quirk):
            params = drop(params) or params
    path = f"Group/{p.s.bulk_group}/$export" if p.s.bulk_group else "Patient/$export"
    headers = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
    tries, quirks = iter(fallbacks(params)), list[str]()
    while True:
        combo = combo_asked(params)
        since = since_of(combo)
        asked = params + ([("_since", since)] if since else [])
        try:
            r = p.client.request("GET", path, key="bulk", params=asked, headers=headers, ok=(202,))
            break
        except ServerError as e:
            status = getattr(e, "status", 0)
            if (gone := no_export(status, p.s.bulk_group)) is not None:
                raise gone from None
            less = next(tries, None) if status in (400, 422) else None
            if less is None:
                raise
            # a server may refuse what it does not export (HAPI FHIR, IBM FHIR: Medication, not
            # in the Patient compartment) or _typeFilter (optional); the spec's way: refuse, for
            # the client to ask again without. What the kick-off taken lacks is remembered
            # (quirks.py): one thing at a time first (kickoff.TRIES), so it is what was refused
            p.report.warn(refused_words(status, quirks, less[1]))
            params, quirks = less
    kicked_off(p, params, quirks)
    said_by_code(p, by_combo(p, types), params, quirks)
    loc = r.headers.get("Content-Location")
    if not loc:
        raise ServerError(f"GET {path}: 202 without Content-Location")
    # checked now (another host, not http(s)), before the job is saved to be resumed: a
    # status URL that cannot be polled made every later run resume it and fail (a proxy's
    # internal address under the base path, as in search links, is taken at the base URL)
    return p.client.url(loc, rebase=True), since, combo


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


def _export(
    p: Puller,
    spool: Path,
    state: dict[str, Any],
    since_of: Callable[[bool], str | None],
    asked: set[str],
) -> tuple[dict[str, Any], list[tuple[str, Path]], list[tuple[str, Path]]]:
    """Run (or resume, given `state`) an export job to its downloaded output and error files."""
    state_file = spool / "job.json"
    with p.phase("bulk-export"):
        if not state:
            fresh(spool)
            url, since, combo = kickoff(p, since_of)
            # (the key of what was asked: the bulk mark's once the job is read)
            key = export_key(p, export_types(p), combo)
            state = {"status_url": url, "since": since, "key": key}
            _write_state(state_file, state)
        if not state.get("manifest"):  # (a resumed job may have it already)
            state["manifest"] = poll(p, state["status_url"])
            _write_state(state_file, state)
    manifest, relative = absolute_urls(state["manifest"], state["status_url"])
    if relative:
        p.report.warn(
            "bulk: the manifest's file URLs are relative (the Bulk Data IG requires absolute"
            " ones); resolved against the status URL"
        )
    with p.phase("bulk-download"):
        files = download(p, manifest, spool, asked=asked)
        errors = download(p, manifest, spool, "error")
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


def _job(
    p: Puller,
    spool: Path,
    state: dict[str, Any],
    resumed: bool,
    since_of: Callable[[bool], str | None],
    asked: set[str],
) -> tuple[dict[str, Any], list[tuple[str, Path]], list[tuple[str, Path]]]:
    """_export the job `state` names when `resumed`, else a new one; a resumed job that is gone
    or refused now is replaced by a new one. A job given up is DELETEd (the Bulk Data IG's way
    to let the server free its files: one whose links expired keeps them until then)."""
    try:
        state, files, errors = _export(p, spool, state if resumed else {}, since_of, asked)
    except JobGone as e:
        abandoned = _read_state(p, spool / "job.json").get("status_url")
        if isinstance(abandoned, str) and abandoned:  # (none: a manifest refused before)
            delete_job(p, abandoned, "the abandoned")
        if not resumed:
            fresh(spool)
            raise ServerError(f"{e}; the next run starts a new export") from None
        p.report.warn(f"the unfinished bulk export job of an earlier run is gone ({e}); new job")
        state, files, errors = _export(p, spool, {}, since_of, asked)
    except AuthError as e:
        status = getattr(e, "status", 0)
        if not resumed or status not in (401, 403):  # (a token refused: the credentials')
            raise
        # an earlier night's job whose links expired, or a job of the credentials before a
        # rotation: refused though tonight's token is fine; resumed, it failed (exit 7) every
        # night. A new job refused the same way is the credentials' (exit 7)
        p.report.warn(
            f"the unfinished bulk export job of an earlier run is refused now (HTTP {status}:"
            " its links expired?); new job"
        )
        delete_job(p, str(state["status_url"]), "the abandoned")  # (refused too, most likely)
        state, files, errors = _export(p, spool, {}, since_of, asked)
    return state, files, errors


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
    # an export by code (the kick-off may fall back to it), and by combo-code where listed
    keys = {export_key(p, types, combo) for combo in {False, by_combo(p, types)}}
    asked = {*types, "Medication"}  # what the kick-off names (Medication: unless refused)
    mark, _, mark_key = (p.mark("bulk") or "").partition("|")

    def since_of(combo: bool) -> str | None:
        """The _since of an export asked by combo-code or not: the mark's, while it is the mark
        of an export that asked the same (a newly mapped code needs the full history)."""
        if not mark or mark_key != export_key(p, types, combo):
            return None
        return minus_overlap(mark, timedelta(seconds=p.s.sync_overlap))

    with p.phase("Medication"):  # (changed since the last export: not in a Patient-level one)
        refresh_medications(p, medication_since(p, [p.mark("bulk")]))
    resumed = bool(state.get("status_url")) and not p.full_refresh and state.get("key") in keys
    if resumed:
        p.report.warn("resumed an unfinished bulk export job")
    elif state.get("status_url"):
        # an earlier run's unfinished job that tonight replaces (--full-refresh, other types or
        # codes): left alone it kept the server exporting, and its files, for nothing
        delete_job(p, str(state["status_url"]), "the replaced earlier")
    try:
        state, files, errors = _job(p, spool, state, resumed, since_of, asked)
    except NoExport as e:
        # (advertised, yet not there: an export module switched off, a proxy not routing it)
        p.report.warn(f"bulk: {e}; used search instead")
        p.report.mode = "search"
        shutil.rmtree(spool, ignore_errors=True)
        search_path(p)
        return
    if mark and not state.get("since"):
        if mark_key == export_key(p, types) and state["key"] != mark_key:
            why = "the Observation _typeFilter asks by combo-code now: full, once"
        else:
            why = "exported types or mapped codes changed since the last export: full"
        p.report.warn(f"bulk: {why}")
        p.resweep.update(types)  # (a full export: what it no longer holds goes, sweep.py)
    manifest = state["manifest"]
    incomplete = export_errors(p, errors)
    with p.phase("bulk-load"):
        complete = p.id_set("complete")
        screened = p.id_set("screened") | screened_in(files, p.screen_codes)
        # the charts merged with screened ones are read with them (cohort/merged.py)
        merged = family(export_links(files), screened)
        screened |= merged
        p.set_mark("screened", json.dumps(sorted(screened)))
        held, *unwhole = load(p, files, screened, asked, bool(state.get("since")), counts(manifest))
    if not_whole(p, *unwhole):
        incomplete = True
    # an export that lacks records (error files, a file cut short or damaged): nothing of the
    # site is swept, not even the types searched for its new patients below (sweep.py)
    p.partial = incomplete
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
    added = pull_replacing(p, screened, set())
    screened |= added
    # a type refused (403) on tonight's searches of which the export held no file: the IG has
    # a server limit an export to what the client may read, without an error; moving the mark
    # would leave that type's changes of this window out of every later export
    exported = {t for t, _ in files}
    unexported = sorted(t for t in p.refused if t in types and t not in exported)
    if unexported:
        p.swept.difference_update(unexported)  # (nor is a full refresh's sweep of it due)
        p.report.warn(
            f"bulk: {', '.join(unexported)} refused (HTTP 403) on search, and none in the export:"
            " the bulk mark was not advanced, the next export repeats this window"
        )
    # in UTC: the Medication check's clock, in UTC, is compared with it as text
    when = utc_instant(manifest.get("transactionTime"))
    if when is None:
        p.report.warn(
            "bulk: the manifest has no transactionTime with a time zone (the Bulk Data IG"
            " requires one): the bulk mark was not advanced, the next export repeats this window"
        )
    elif not (incomplete or p.meds_unread or unexported):
        # (referenced Medications refused: the next export repeats this window, medications.py)
        p.set_mark("bulk", f"{when}|{state['key']}")
    searched = set(new) | added
    lacking = [f"{t} refused" for t in sorted(p.refused)]
    lacking += [f"{t} unsupported" for t in sorted(p.unsupported) if t in PULL_TYPES]
    if lacking and searched:
        # a type refused (403) or unsupported on the searches of patients the export did not
        # hold in full: complete, they would only have their changes exported, their older
        # records of the type never fetched once it is granted; left out, they are searched
        # again in full
        p.report.warn(
            f"bulk: {len(searched)} patient(s) fetched by search with {', '.join(lacking)}"
            " are not marked complete; searched again in full next run"
        )
        screened -= searched
    p.set_mark("complete", json.dumps(sorted(screened)))
    delete_job(p, state["status_url"], "the")
    shutil.rmtree(spool, ignore_errors=True)
