"""Screen one site: every patient with a screening condition, evaluated from the store, ranked."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

import msgspec

from cohort.config import SiteConfig
from cohort.evaluate import evaluate, is_screened, make_context
from cohort.forks import map_chunks, workers_for
from cohort.ingest import Loaded
from cohort.merged import merges_of
from cohort.model import Candidate, PatientFacts
from cohort.rank import rank
from cohort.report.medgaps import gaps_of
from cohort.store import Store
from cohort.store.census import Side
from cohort.terminology.units import warm as warm_units

if TYPE_CHECKING:
    from cohort.extract import Extractor

__all__ = [
    "CHUNK_PATIENTS",
    "EVAL_FORK_MIN",
    "add_side",
    "last_seen",
    "screen",
    "screened_ids",
    "site_extractor",
    "warn_unscreened",
]

CHUNK_PATIENTS = 1000  # patients evaluated per store query
EVAL_FORK_MIN = 200  # screened patients from which evaluation forks (see screen)

log = logging.getLogger("cohort")


def last_seen(facts: PatientFacts, as_of: date) -> date | None:
    found = [o.when for o in facts.observations]
    found += [e.start for e in facts.exposures]
    found += [c.recorded or c.onset for c in facts.conditions]
    found += facts.other_dates
    # (None: no date; date.min: an onset known only as "on or before" its end, docs/rules.md)
    low = date.min
    dates = [d for d in found if d is not None and low < d <= as_of]
    return max(dates) if dates else None


def add_side(facts: PatientFacts, side: Side | None) -> PatientFacts:
    """`facts` with what the patient's summarised records contribute (Store.side_facts)."""
    if side is not None:
        facts.other_dates += side[0]
        facts.other_medications += side[1]
        facts.other_counts = side[2]
        facts.other_latest = side[3]
    return facts


def screened_ids(site: str, store: Store, loaded: Loaded) -> list[str]:
    """Patients with a screening-concept Condition (cheap pre-filter; evaluation re-checks)."""
    want = set(loaded.trial.screen_concepts)
    from cohort.extract import codes_of, text_of

    ids = set()
    # the patient as the store keys the patient's records (an identifier-only subject included)
    for pid, res in store.iter_type_patients(site, "Condition"):
        if not pid:
            continue
        cc = res.get("code")
        if want & loaded.term.concepts_for(
            codes_of(cc), text_of(cc)
        ) and not loaded.rules.drop_reason(res):
            ids.add(pid)
    return sorted(ids)


def warn_unscreened(
    site: str, screened: int, store: Store, loaded: Loaded, report: dict[str, Any]
) -> None:
    """A warning in run.json's `report` and the log for a site whose patients were read but
    none screened: unmapped site codes for SLE and a cohort with no SLE patient both look like
    an empty list, exit 0. A site with no patient read is warned of by its read already."""
    if screened:
        return
    patients = store.count_by_type(site).get("Patient", 0)
    if not patients:
        return
    concepts = [f"'{c}'" for c in loaded.trial.screen_concepts]
    which = (
        f"the screening concept {concepts[0]}"
        if len(concepts) == 1
        else f"a screening concept ({', '.join(concepts)})"
    )
    said = (
        f"{patients} patient(s) read, none screened: no patient has a Condition mapped to "
        f"{which}: a site's own codes count only once mapped (`cohort mappings coverage --site "
        f"{site}` lists the stored codes no concept maps)"
    )
    # a second trial's codes taken from the data are verified=N: mapped, yet not read
    read = loaded.term.concept_names()
    unread = {r.concept for r in loaded.term.rows()} & (set(loaded.trial.screen_concepts) - read)
    if unread:
        named = ", ".join(f"'{c}'" for c in sorted(unread))
        has = "has" if len(unread) == 1 else "have"
        said += (
            f"; {named} {has} only unverified rows (verified=N), which a run reads only with "
            "use_unverified = true in [trial]"
        )
    log.warning("site %s: %s", site, said)
    report["sites"][site].setdefault("warnings", []).append(said)
    report["warnings"].append(f"{site}: {said}")


def site_params(site: SiteConfig) -> dict[str, Any]:
    """What the criteria read of the site (Context.site): its `min_age`, and `pulled` for a
    FHIR server source, which is asked only for the results and procedures of mapped codes."""
    params: dict[str, Any] = {"min_age": site.min_age} if site.min_age is not None else {}
    if site.is_url:
        params["pulled"] = True
    return params


def site_extractor(site: SiteConfig, store: Store, loaded: Loaded, as_of: date) -> Extractor:
    """The Extractor a site's patients are read with: `screen` and `cohort explain` alike, so
    that explain's evidence is the run's (summarised Observations read as the run reads them)."""
    from cohort.extract import Extractor

    return Extractor(
        loaded.rules,
        lambda mid: store.get(site.id, "Medication", mid),
        loaded.relevant,
        mrn_systems=site.mrn_systems,
        as_of=as_of,
    )


def screen(
    site: SiteConfig,
    store: Store,
    loaded: Loaded,
    as_of: date,
    workers: int = 0,
    *,
    phi: bool = True,
) -> list[Candidate]:
    """Evaluate every screened patient of `site`; `workers` as `[run] workers` (0: per core).

    Without `phi` (`--no-phi`) the evidence rows are rendered, and the reasons kept, without
    free text (`report.nophi`): both are made here, where the evidence objects still are."""
    from cohort.report.csv import criterion_order, evidence_text
    from cohort.report.nophi import public_result, reason_wording

    params = site_params(site)
    merges = merges_of(store, site.id)
    if merges:
        log.info(
            "site %s: %d merged chart(s) (Patient.link replaced-by or replaces) read with the"
            " patient that replaced them",
            site.id,
            len(merges),
        )
    ids = merges.survivors(screened_ids(site.id, store, loaded))
    order = criterion_order(loaded.trial.infos)
    # (labels are the reasons' fixed words: a value quoted is withheld, not a label holding it)
    wording = frozenset() if phi else reason_wording(loaded.term, loaded.trial.criteria)

    def extractor_for(st: Store) -> Extractor:
        # one per process: its memo of code elements serves every chunk that process takes
        return site_extractor(site, st, loaded, as_of)

    def run_ids(st: Store, part: list[str], extractor: Extractor) -> list[Candidate]:
        found: list[Candidate] = []
        for start in range(0, len(part), CHUNK_PATIENTS):
            chunk = part[start : start + CHUNK_PATIENTS]
            for pid, resources, extra in merges.records(st, site.id, chunk):
                facts = merges.mark(add_side(extractor.facts(pid, resources), extra))
                ctx = make_context(facts, loaded.term, as_of, loaded.rules, params)
                if not is_screened(loaded.trial, ctx):
                    continue
                cand = Candidate(
                    patient=facts.patient,
                    results=evaluate(loaded.trial, ctx),
                    last_seen=last_seen(facts, as_of),
                    medication_gaps=gaps_of(facts),
                )
                # evidence.csv rows are rendered here, in parallel, and the evidence objects
                # dropped: the rest of the report needs only statuses and reasons, and the
                # candidates travel back from the forks and stay in memory until the report
                cand.evidence_text = evidence_text(cand, order, phi=phi)
                cand.results = [
                    r.with_rows((), ())
                    for r in (
                        cand.results if phi else (public_result(x, wording) for x in cand.results)
                    )
                ]
                found.append(cand)
        return found

    # Evaluation is CPU-bound and per patient: above a couple of hundred screened patients,
    # forked workers (own read connection each; WAL allows concurrent readers) take chunks of
    # the patients, whichever is free the next. rank() orders by (tier, score, patient id), so
    # the result is identical to the serial loop. bench/RESULTS.md has the numbers (2k
    # patients: 2.5 -> 1.55 s on 2 cores; forking pays from ~100). Any worker failure -> the
    # serial loop (same errors).
    nproc = min(workers_for(len(ids), EVAL_FORK_MIN, workers), max(1, len(ids) // 2))
    out: list[Candidate] | None = None
    if nproc > 1:
        warm_units()  # build the UCUM registry once, before the forks copy this process

        me = os.getpid()

        def in_worker(parts: Iterator[list[str]]) -> Iterator[list[Candidate]]:
            with Store(store.path) as mine:
                if os.getpid() != me:  # (in the fork: beside this process's first chunks)
                    mine.backfill()
                extractor = extractor_for(mine)
                for part in parts:
                    yield run_ids(mine, part, extractor)

        # msgpack through msgspec, straight from and into the dataclasses: ~0.2 s for 5k
        # candidates where pickle took ~0.5 s (bench/RESULTS.md, sixth pass)
        encoder, decoder = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(list[Candidate])
        out = map_chunks(in_worker, ids, nproc, encoder.encode, decoder.decode)
    if out is None:
        out = run_ids(store, ids, extractor_for(store))
    time_limited = {c.id for c in loaded.trial.criteria if c.time_limited}
    return rank(out, as_of, time_limited)
