"""Referenced Medications a search answer did not carry: read by id, or said in run.json."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from cohort.errors import AuthError, ServerError
from cohort.store import reference_id

from .answer import earliest, server_time
from .fallback import refusal
from .plan import MED_TYPES, chunk_values, minus_overlap
from .unsupported import said, unsupported

if TYPE_CHECKING:
    from .puller import Items, Puller

# a Medication read by id that the server will not give: the record that references it is kept
# (failing would fail every night while it is referenced), and run.json says so
UNREADABLE = (403, 404, 410)


# what a warning of Medications refused adds: the marks that would pass them stay (search.py,
# bulk.py), so the next night reads those records, and their Medications, again
HELD = "; the marks of the records referencing them were not advanced"
# the server's clock when the stored Medications were last checked for changes (the earliest
# answer of that check): the next check starts from it when it is earlier than the medication
# types' marks (the Bulk mark), which move to clocks read later the same night
CHECKED = "medications"


def _unread(p: Puller, records: list[dict], ids: set[str]) -> None:
    """Note the types of the `records` that reference a Medication of `ids` not read."""
    for res in records:
        ref = res.get("medicationReference")
        if isinstance(ref, dict) and reference_id(ref.get("reference"), "Medication") in ids:
            p.meds_unread.add(str(res.get("resourceType")))


def medications_of(items: Items) -> tuple[list[dict], set[str]]:
    """(the records of a search answer, ids of the Medications the answer itself carried)."""
    carried = {
        res["id"] for res, _ in items if res.get("resourceType") == "Medication" and "id" in res
    }
    return [res for res, _ in items], carried


def fetch_medications(
    p: Puller, records: list[dict], carried: set[str] | frozenset = frozenset()
) -> None:
    """Read the Medications `records` reference that are neither in `carried` (the answer's
    own, via _include) nor stored: whether _include is unsupported, refused, or accepted by a
    server that leaves some out. One the server does not return is a run.json warning."""
    refs = {
        mid
        for res in records
        if isinstance(ref := res.get("medicationReference"), dict)
        and (mid := reference_id(ref.get("reference"), "Medication"))
    }
    refs -= carried
    if p.full_refresh:
        # a full refresh reads every referenced Medication again (once): a stored one may have
        # changed on the server since (its code corrected), and a fresh pull reads it as it is
        ids = sorted(refs - p.meds_put)
    else:
        stored = {m for m in refs if p.store.get(p.site, "Medication", m) is not None}
        if p.resweep:  # still referenced: not to be swept
            p.seen.update(("Medication", m) for m in stored)
        ids = sorted(refs - stored)
    if not ids:
        return
    if "Medication" in p.unsupported:  # (said once: each further read would fail the same way)
        _unread(p, records, set(ids))
        return
    if p.cap.has_param("Medication", "_id"):
        prefix = len(p.s.base_url) + 40
        got: set[str] = set()
        for group in chunk_values(prefix, ids, p.url_limit):
            try:
                items, _ = p.search_all("Medication", [("_id", ",".join(group))])
            except ServerError as e:
                # the records are kept without it, and read again (marks held) until it reads
                why = _not_searchable(p, e)
                _unread(p, records, set(ids))
                p.report.warn(why + f"; referenced Medications not read{HELD}")
                return
            p.put(items)
            got |= {str(r.get("id")) for r, _ in items if r.get("resourceType") == "Medication"}
        missing = len(set(ids) - got)
        if missing:
            p.report.warn(
                f"Medication: {missing} referenced Medication(s) not returned by the server"
            )
        return
    for mid in ids:
        try:
            body, _ = p.client.get_json(f"Medication/{mid}", key="Medication")
        except ServerError as e:
            status = getattr(e, "status", 0)
            if status in (405, 501):  # (404: this one gone, as the server says of a read)
                p.unsupported.setdefault("Medication", e)
                _unread(p, records, set(ids))
                p.report.warn(
                    f"Medication: the server does not support reading Medications (HTTP {status});"
                    f" referenced Medications not read{HELD}"
                )
                return
            if status not in UNREADABLE:
                raise
            if status == 403:  # (not gone: refused, as a search of them would be)
                _unread(p, records, {mid})
                p.report.warn(
                    f"Medication: a referenced Medication could not be read (HTTP 403){HELD}"
                )
                continue
            p.report.warn(f"Medication: a referenced Medication is gone (HTTP {status})")
            continue
        p.put([(body, "GET Medication/{id}")])


def medication_since(p: Puller, marks: list[str | None]) -> str | None:
    """The `_lastUpdated` from which stored Medications are read again tonight: the earliest
    of the last pull's `marks` (the clocks of the medication types' searches, or of the Bulk
    export) and of the last check (CHECKED), overlap subtracted; None when there is no mark
    (a first pull, a full refresh)."""
    clocks = [m.split("|")[0] for m in marks if m]
    checked = p.mark(CHECKED)
    if not clocks:
        return None
    # (a Medication changed between tonight's check and those clocks: not checked again
    # from them; the last check's clock, when earlier, covers it)
    clocks += [checked] if checked else []
    return minus_overlap(earliest(clocks) or clocks[0], timedelta(seconds=p.s.sync_overlap))


def refresh_medications(p: Puller, since: str | None) -> None:
    """Read again the stored Medications the server changed since `since`.

    A Medication comes with the medication records that reference it (`_include`, or read by
    id when not stored), and an incremental search returns only changed records: a Medication
    corrected on the server (its code, its ingredients) while the records referencing it did
    not change was never read again, nor was it in a Patient-level Bulk export (Medication is
    outside the Patient compartment), so the store kept the old code where a fresh pull reads
    the new one. One `_summary=count` probe of the Medications changed since (before the
    stored ids are listed: a quiet night lists none); when there are any, the stored ones are
    searched by `_id` with `_lastUpdated` (in full where the server lists no `_lastUpdated`
    for Medication, or refused it: quirks.py). Refused (403): the medication types' marks
    (the Bulk mark) stay, so the next night reads them again."""
    if since is None or not p.store.has_rows(p.site, "Medication"):
        p.clear_mark(CHECKED)  # (none to check: tonight's are read after the types' marks)
        return
    if not p.cap.has_param("Medication", "_id"):
        p.report.warn(
            "Medication: the server lists no _id search for Medication; stored Medications are"
            " not read again for changes on the server (a --full-refresh reads them)"
        )
        return
    changed: list[tuple[str, str]] = []
    clocks: list[str | None] = []
    if p.cap.has_param("Medication", "_lastUpdated") and "Medication" not in p.no_since:
        changed = [("_lastUpdated", f"gt{since}")]
        query = urlencode([*changed, ("_summary", "count")])
        try:
            body, r = p.client.get_json(f"Medication?{query}", key="Medication")
            clocks.append(server_time(body, r))
            total = body.get("total")
            if total == 0 and isinstance(total, int) and not isinstance(total, bool):
                _checked(p, clocks)
                return  # (no total, or an error: searched as below)
        except AuthError as e:
            if getattr(e, "status", 0) != 403:
                raise
        except ServerError:
            pass
    # (listed only now: a night with no Medication changed ends at the probe above)
    ids = p.store.ids(p.site, "Medication")
    prefix = len(p.s.base_url) + 60 + len(since)
    try:
        for group in chunk_values(prefix, ids, p.url_limit):
            items, clock = p.search_all("Medication", [("_id", ",".join(group)), *changed])
            clocks.append(clock)
            p.put([(r, o) for r, o in items if r.get("resourceType") == "Medication"])
    except ServerError as e:
        why = _not_searchable(p, e)
        p.meds_unread.update(MED_TYPES)
        p.report.warn(why + f"; stored Medications not read again{HELD}")
        return
    _checked(p, clocks)


def _not_searchable(p: Puller, e: ServerError) -> str:
    """A Medication search's error `e` as a warning's start when the token's scope leaves
    Medication out (403) or the server has no search of it (unsupported.py, then remembered
    for the night); any other error is raised again."""
    refused = isinstance(e, AuthError) and getattr(e, "status", 0) == 403
    if not (refused or unsupported(e, "Medication")):
        raise e
    if refused:
        return refusal(p, "Medication")
    p.unsupported.setdefault("Medication", e)
    return said(e, "Medication")


def _checked(p: Puller, clocks: list[str | None]) -> None:
    """The stored Medications were checked: the earliest clock of the check's answers is
    where the next check starts at the latest (CHECKED); none read, the last one is kept."""
    if known := earliest(clocks):
        p.set_mark(CHECKED, known)
