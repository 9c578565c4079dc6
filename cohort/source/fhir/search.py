"""Search-based pull: screen by Condition code, then batched patient searches per type."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from cohort.errors import AuthError, ServerError
from cohort.merged import LINKED, family, merge_links
from cohort.store import patient_of

from .answer import earliest, server_time
from .codeparams import COVERS, covered, mark_hash, since_param
from .fallback import refusal
from .medications import medication_since, refresh_medications
from .plan import (
    BY_CODE,
    COMBO_CODE,
    COMPONENT_CODE,
    DEFAULT_CATEGORIES,
    MED_TYPES,
    PULL_TYPES,
    chunk_values,
    minus_overlap,
    token_hash,
)
from .unsupported import said, unsupported

if TYPE_CHECKING:
    from .puller import Params, Puller

FIRST_BATCH = 100  # ids per search while a type's records per patient are not yet known
PAGE_FILL = 0.9  # later searches aim at this share of a page (a spill costs one more request)


def pull_ids(p: Puller, rtype: str, ids: list[str], since: str | None) -> tuple[int, str | None]:
    """Search `rtype` for patients `ids`: first `concurrency` searches of FIRST_BATCH ids,
    then the rest in searches sized by what a patient yielded so that one fills about a
    page. Types with few records per patient (Immunization, Procedure) thus need a few
    searches where a fixed batch needs one per 100 patients; a page-filling type keeps
    FIRST_BATCH. Never more than `patient_batch` ids (what the server tolerates)."""
    most = 1 if p.patient_each else p.s.patient_batch  # (a server taking one: quirks.py)
    first = min(most, FIRST_BATCH)
    head, rest = ids[: first * p.s.concurrency], ids[first * p.s.concurrency :]
    n, clock = p.run_split(rtype, lambda: queries(p, rtype, head, since, first))
    if rest:
        per_patient = n / len(head)
        most = 1 if p.patient_each else most  # (learned by the head's searches)
        size = most
        if per_patient > 0:
            size = int(PAGE_FILL * p.s.page_size / per_patient)
            size = max(min(first, most), min(most, size))
        m, later = p.run_split(rtype, lambda: queries(p, rtype, rest, since, size))
        n, clock = n + m, _earliest(clock, later)
    return n, clock


def _earliest(*clocks: str | None) -> str | None:
    """The earliest server clock given."""
    return earliest(clocks)


def queries(p: Puller, rtype: str, ids: list[str], since: str | None, batch: int) -> list[Params]:
    """Requests for `rtype` over patients `ids` (`batch` per search, URL-length split)."""
    limit = p.url_limit
    base_len = len(p.s.base_url) + len(rtype) + 60
    codes = p.tokens.get(rtype, []) if rtype in BY_CODE else []
    id_room = limit - base_len if not codes else (limit - base_len) // 2
    out: list[Params] = []
    # each URL filled with ids up to the length limit or `batch`, whichever comes first:
    # slicing by batch and then by length left a short remainder request per batch
    # whenever long ids (UUIDs) did not fit a whole batch into one URL
    for group in chunk_values(base_len, ids, base_len + id_room, batch):
        fixed: Params = [("_id" if rtype == "Patient" else "patient", ",".join(group))]
        if rtype == "Observation" and p.obs_category:
            fixed.append(("category", ",".join(p.obs_category)))
        if rtype in MED_TYPES and rtype not in p.no_include:
            fixed.append(("_include", f"{rtype}:medication"))
        if not codes:
            out.append([*fixed, *([("_lastUpdated", f"gt{since}")] if since else [])])
            continue
        names = p.code_params(rtype)  # (each a search: code and component-code are ANDed)
        # (each with its _lastUpdated: the mark may cover a search by code, not by combo-code)
        asked = {name: since_param(p, name, since) for name in names}
        used = base_len + sum(len(k) + len(v) + 2 for k, v in fixed) + max(map(len, names))
        used += max((len(k) + len(v) + 2 for kvs in asked.values() for k, v in kvs), default=0)
        for cg in chunk_values(used, codes, limit):
            out += [[*fixed, *asked[name], (name, ",".join(cg))] for name in names]
    return out


def said_components(p: Puller) -> None:
    """A run.json warning when the server lists neither parameter that searches components, or
    refused them on an earlier night (the quirk observation-code-only)."""
    if not any(p.cap.lists_param("Observation", n) for n in (COMBO_CODE, COMPONENT_CODE)):
        p.report.warn(
            "Observation: the server lists neither combo-code nor component-code in its"
            " CapabilityStatement; Observations whose only mapped code is a component's (a"
            " platelet count inside a CBC panel) cannot be searched and are not pulled"
        )
    elif p.quirks.on("observation-code-only"):
        p.report.warn(
            "Observation: the server refused combo-code or component-code on an earlier night;"
            " searched by code: Observations whose only mapped code is a component's are not"
            " pulled"
        )


def said_categories(p: Puller) -> None:
    """A run.json warning naming the configured categories, the only ones searched."""
    cats = p.s.observation_category
    rest = [c for c in DEFAULT_CATEGORIES if c not in cats]
    p.report.warn(
        f"Observation: searched category={','.join(cats)} only (observation_category); mapped "
        "Observations under another category"
        + (f" ({', '.join(rest)})" if rest else "")
        + " are not pulled"
    )


def since_for(p: Puller, rtype: str, mark: str | None) -> str | None:
    if not mark:
        return None
    if p.quirks.on(f"no-lastupdated:{rtype}"):
        p.report.warn(
            f"{rtype}: the server refused _lastUpdated on an earlier night; known patients"
            " re-pulled in full"
        )
        return None
    if not p.cap.has_param(rtype, "_lastUpdated") or rtype in p.no_since:
        p.report.warn(f"{rtype}: server lacks _lastUpdated; known patients re-pulled in full")
        return None
    return minus_overlap(mark, timedelta(seconds=p.s.sync_overlap))


def unchanged_since(p: Puller, rtype: str, since: str) -> tuple[bool, str | None]:
    """One cheap server-wide count of `rtype` changed since the mark (mapped codes only);
    (True, server clock) when nothing changed, so the batched patient searches are skipped.
    Any doubt (no `total`, an error, a change anywhere) -> (False, None): search as usual."""
    codes = p.tokens.get(rtype, []) if rtype in BY_CODE else []
    base: Params = [("_lastUpdated", f"gt{since}"), ("_summary", "count")]
    # a server taking one category per search is probed category by category (up to a change)
    cats = [",".join(p.obs_category)] if rtype == "Observation" and p.obs_category else []
    cats = list(p.obs_category) if cats and p.category_each else cats
    prefix = len(p.s.base_url) + len(rtype) + 80
    groups: list[list[str]] = chunk_values(prefix, codes, p.url_limit) if codes else [[]]
    clock: str | None = None
    names = p.code_params(rtype)
    for cat, group, name in ((c, g, n) for c in cats or [""] for g in groups for n in names):
        params = base + ([("category", cat)] if cat else [])
        params += [(name, ",".join(group))] if group else []
        try:
            body, r = p.client.get_json(f"{rtype}?{urlencode(params, safe=',|:/')}", key=rtype)
        except ServerError:
            return False, None
        total = body.get("total")
        if not isinstance(total, int) or isinstance(total, bool) or total != 0:
            return False, None
        clock = clock or server_time(body, r)
    return clock is not None, clock


def screen(p: Puller) -> set[str]:
    """Patients with a screening Condition (incrementally: only changed ones since the mark)."""
    mark = p.mark("screen")
    since = since_for(p, "Condition", mark.split("|")[0] if mark else None)
    if mark and mark.split("|")[1:] != [token_hash(p.screen_tokens)]:
        since = None
    prefix = len(p.s.base_url) + 100
    found: set[str] = set()
    clocks: list[str] = []
    groups = chunk_values(prefix, sorted(p.screen_tokens), p.url_limit)
    while groups:
        params: Params = [("code", ",".join(groups[0]))]
        if since:
            params.append(("_lastUpdated", f"gt{since}"))
        try:
            items, clock = p.search_all("Condition", params)
        except ServerError as e:
            if not p.shorter_urls(e, "Condition"):
                raise
            rest = [t for g in groups for t in g]
            groups = chunk_values(prefix, rest, p.url_limit)
            continue
        groups = groups[1:]
        p.put(items)
        found |= {pid for res, _ in items if (pid := patient_of(res))}
        if clock:
            clocks.append(clock)
    screened = found | p.id_set("screened")
    p.set_mark("screened", json.dumps(sorted(screened)))
    if clocks:
        p.set_mark("screen", f"{earliest(clocks)}|{token_hash(p.screen_tokens)}")
    return screened


def pull_types(p: Puller, new: list[str], known: list[str], *, advance: bool = True) -> None:
    """Every type for `new` patients in full and `known` ones since the type's mark; the marks
    move only with `advance` (a later pass's clocks would skip changes made meanwhile to the
    patients of the first)."""
    for rtype in PULL_TYPES:
        if not p.cap.pulls(rtype):
            p.report.warn(f"{rtype}: not in the server's CapabilityStatement; not pulled")
            # tonight's new patients count as complete without this type: when it is back,
            # it is pulled in full for every patient, not only changes since the old mark
            p.clear_mark(rtype)
            continue
        if rtype in BY_CODE and not p.tokens.get(rtype):
            continue
        raw = p.mark(rtype)
        if rtype == "Observation" and p.s.observation_category:
            said_categories(p)
        if rtype == "Observation":
            said_components(p)
        # the code parameters whose searches the mark covers (codeparams.py): tonight's may
        # ask by combo-code where the mark's asked by code (a remembered quirk tried again)
        covers = covered(p, rtype, raw)
        resweep = bool(raw and known and advance and not covers & set(p.code_params(rtype)))
        resweep = resweep and rtype not in p.resweep
        if resweep:
            # every screened patient's records of the type pulled in full, by other codes than
            # the last night's: what it no longer finds goes (not so for a Bulk night's new
            # patients, whose marks may be older than the export's)
            p.resweep.add(rtype)
        if rtype in MED_TYPES and not p.cap.has_include(rtype, f"{rtype}:medication"):
            p.no_include.add(rtype)
            p.report.warn(f"{rtype}: no _include of Medication; read separately")
        try:
            with p.phase(rtype):
                mark = since_for(p, rtype, raw.split("|")[0]) if raw and covers else None
                sinces = {name: mark if name in covers else None for name in COVERS}
                # (the change probe: only when every search of tonight's is covered)
                since = mark if covers >= set(p.code_params(rtype)) else None
                quiet, quiet_clock = (
                    unchanged_since(p, rtype, since) if since and known else (False, None)
                )
                n, clock = pull_ids(p, rtype, new, None)
                if not quiet:
                    p.since_by = sinces
                    try:
                        m, changed_clock = pull_ids(p, rtype, known, since)
                    finally:
                        p.since_by = None
                    n, clock = n + m, _earliest(clock, changed_clock)
                # the mark may only move to a clock read before any search of this pull
                clock = _earliest(clock, quiet_clock)
        except AuthError as e:
            if getattr(e, "status", 0) != 403:
                raise
            # a type the token's scope leaves out: the others are pulled, run.json says so;
            # its mark goes (as for a type missing from the CapabilityStatement)
            p.refused.setdefault(rtype, e)
            p.report.warn(refusal(p, rtype) + "; not pulled")
            p.clear_mark(rtype)
            continue
        except ServerError as e:
            # a type the server has no search of (no MedicationAdministration endpoint): as
            # one missing from its CapabilityStatement. Not Patient: charts without it would
            # read as unknown everywhere
            if rtype == "Patient" or not unsupported(e, rtype):
                raise
            p.unsupported.setdefault(rtype, e)
            p.report.warn(said(e, rtype) + "; not pulled")
            p.clear_mark(rtype)
            continue
        if resweep and covers & set(p.code_params(rtype)):
            # a search by combo-code refused, by code since the mark: not pulled in full
            p.resweep.discard(rtype)
        p.swept.add(rtype)  # every search of the type completed
        p.log.info("fhir %s: %s: %d resources", p.site, rtype, n)
        if clock and advance and rtype not in p.meds_unread:
            # (the hash of the parameters used: a refused combo-code fell back to code)
            p.set_mark(rtype, f"{clock}|{mark_hash(p, rtype)}")


def search_path(p: Puller) -> None:
    """Screen, then pull every type for new patients in full and known ones incrementally
    (first, the stored Medications changed since the medication types' marks)."""
    with p.phase("Medication"):
        refresh_medications(p, medication_since(p, [p.mark(t) for t in MED_TYPES]))
    with p.phase("screen"):
        screened = screen(p)
    complete = p.id_set("complete")
    known = sorted(screened & complete)
    new = sorted(screened - complete)
    p.report.incremental = bool(known)
    p.report.patients_screened, p.report.patients_new = len(screened), len(new)
    p.log.info("fhir %s: screened %d patients (%d new)", p.site, len(screened), len(new))
    pull_types(p, new, known)
    if not p.swept - {"Patient"} and (p.refused or p.unsupported):
        # every clinical type refused (credentials or scope: exit 7) or unsupported (exit 6):
        # pulling no chart (Patients alone at most) would mark every screened patient complete
        raise next(iter([*p.refused.values(), *p.unsupported.values()]))
    screened |= pull_replacing(p, screened, complete)
    p.set_mark("complete", json.dumps(sorted(screened)))


# Chains of merges longer than this are left at their last fetched chart.
MAX_MERGE_ROUNDS = 5


def pull_replacing(p: Puller, screened: set[str], complete: set[str]) -> set[str]:
    """The patients merged with screened ones (Patient.link replaced-by or replaces, either way,
    chains followed) and not screened themselves, pulled like screened patients; they join the
    screened set, so later nights pull them with it. (A merge may leave the screening Condition
    on the old chart and the newer records on the one that replaced it, or the reverse; cohort
    reads the charts as one patient, cohort/merged.py.) An old chart is found from the link of
    the Patient that replaced it, with no search of the server's Patients by link."""
    added: set[str] = set()
    for _ in range(MAX_MERGE_ROUNDS):
        links = merge_links(p.store.iter_type(p.site, "Patient", containing=LINKED))
        extra = family(links, screened | added)
        if not extra:
            break
        added |= extra
        p.log.info("fhir %s: %d patient(s) merged with screened ones", p.site, len(extra))
        pull_types(p, sorted(extra - complete), sorted(extra & complete), advance=False)
    if added:
        p.set_mark("screened", json.dumps(sorted(screened | added)))
        p.report.patients_screened += len(added)
        p.report.patients_new += len(added - complete)
    return added
