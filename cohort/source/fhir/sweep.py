"""After a full refresh: drop stored records the server no longer has (deleted there, or of
patients no longer screened), with the guard file snapshots have against a partial answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohort.errors import ServerError
from cohort.model import PIPELINE_TYPES

from .ndjson import has_mapped_code
from .plan import BY_CODE, MED_TYPES

if TYPE_CHECKING:
    from .puller import Puller


def sweep(p: Puller, limit: float) -> int:
    """Delete the site's records from this server, of the types this full refresh fetched in
    full (`p.swept`), that it did not see (`p.seen`); returns how many. Medications only when
    every medication type was fetched (a record of a type not fetched may reference one).
    Without a full refresh, the types pulled in full because what their searches ask for
    changed (`p.resweep`: a mapping edit) are swept alike, as a fresh pull would lack what
    they no longer find. Nothing when tonight's answer is not whole (`p.partial`: a Bulk file
    with a damaged line, which held a record unknown). ServerError, nothing removed, when a
    type would lose more than `limit` of the records stored before this pull (those it added
    do not make up for those it lacks); those whose code no mapping has any more (expected to
    go) do not count."""
    if not p.swept or not (p.full_refresh or p.resweep) or p.partial:
        return 0
    types = set(p.swept) if p.full_refresh else p.swept & p.resweep
    if all(t in types for t in MED_TYPES):
        types.add("Medication")
    stale = [(t, i) for t, i in p.store.stale(p.site, p.seen) if t in types]
    if not stale:
        return 0
    counted = [k for k in stale if not _unmapped(p, k)]
    over = p.store.over_removal(p.site, counted, limit, added=p.added)
    if over is not None:
        rtype, n, stored = over
        what = "the full refresh" if p.full_refresh else "tonight's full pull (mappings changed)"
        raise ServerError(
            f"{rtype}: {what} no longer found {n} of the {stored} records"
            f" stored from this server before it (over [run] max_snapshot_removal = {limit:g}):"
            " a partial answer? Nothing was removed; set it higher for one run if expected"
        )
    p.store.drop(p.site, stale)
    p.report.removed += len(stale)
    p.log.info("fhir %s: removed %d records the server no longer has", p.site, len(stale))
    return len(stale)


def _unmapped(p: Puller, key: tuple[str, str]) -> bool:
    """Whether a stored record of a type searched by code has no code the searches ask for now
    (its own or, an Observation, a component's): no search would fetch it again."""
    if key[0] not in BY_CODE:
        return False
    res = p.store.get(p.site, *key)
    return res is not None and not has_mapped_code(res, p.pairs.get(key[0], set()))


def drop_unread_types(p: Puller) -> None:
    """Drop the site's stored records of types cohort does not read (the Bulk loads of earlier
    versions stored an export's Encounters, Claims ...: no export asks for them since, and no
    sweep covers them); counted under `dropped_types`. Every type it reads stays, Medication
    (referenced by medication records) among them, whether or not tonight read it."""
    dropped = p.store.drop_other_types(p.site, PIPELINE_TYPES)
    p.report.dropped_types = dropped
    if dropped:
        p.log.info(
            "fhir %s: removed %d stored records of types not read (%s)",
            p.site,
            sum(dropped.values()),
            ", ".join(sorted(dropped)),
        )
