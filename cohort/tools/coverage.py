"""`cohort mappings coverage`: unmapped codes in the stored data, unseen mapped codes, bad units."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.config import Config
from cohort.extract import Extractor
from cohort.extract.census_data import CensusEntry
from cohort.merged import merges_of
from cohort.model import Code, ObservationFact
from cohort.runner import Loaded
from cohort.screening import screened_ids
from cohort.store import Store
from cohort.terminology.codes import TEXT
from cohort.tools.common import open_store
from cohort.tools.coverage_census import (
    Unmapped,
    count_entry,
    never_seen,
    record_entry,
    unit_check,
    unread,
)
from cohort.tools.coverage_output import COLUMNS, render_terminal, write_csv
from cohort.tools.sites import chosen_sites
from cohort.tools.suggest import Suggester

# (the census's and the output's names, imported from here by the CLI and tests)
__all__ = [
    "COLUMNS",
    "CoverageReport",
    "Unmapped",
    "coverage_report",
    "render_terminal",
    "write_csv",
]

# a medication record that names no drug (extract.medref), listed under this name
NO_DRUG = "(names no drug)"
NO_DRUG_WHY = (
    "names no drug: its referenced Medication is not in the data (or is dropped) and the"
    " reference has no display; export the Medications with the records"
)


@dataclass
class CoverageReport:
    version: str
    unmapped: list[Unmapped] = field(default_factory=list)
    never_seen: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    # (site, concept, unit as written, example value, screened patients, patients, records)
    unit_failures: list[tuple[str, str, str, str, int, int, int]] = field(default_factory=list)
    trial: str = ""
    # mapped rows of concepts the trial does not read, not listed in never_seen: (rows, concepts)
    left_out: tuple[int, int] = (0, 0)


def _medications(store: Store, site: str) -> Callable[[str], dict[str, Any] | None]:
    return lambda mid: store.get(site, "Medication", mid)


def coverage_report(cfg: Config, out: Path, site_id: str | None = None) -> CoverageReport:
    """Scan every stored patient of the site(s); rank unmapped codes by screened patients."""
    sites = chosen_sites(cfg, site_id, out)
    loaded = Loaded.from_config(cfg)
    term = loaded.term
    report = CoverageReport(term.version, trial=loaded.trial.id)
    found: dict[tuple[str, str, str, str], Unmapped] = {}
    seen_codes: dict[str, set[str]] = defaultdict(set)
    seen_text: set[str] = set()
    failures: dict[tuple[str, str, str], list] = {}
    with open_store(cfg, out) as store:
        for site in sites:
            # a merged chart's records are the person's who replaced it, as screening reads
            # them (cohort/merged.py): one patient, screened when either chart is
            merges = merges_of(store, site.id)
            screened = set(merges.survivors(screened_ids(site.id, store, loaded)))
            ex = Extractor(loaded.rules, _medications(store, site.id))
            for chart, resources in store.iter_by_patient(site.id):
                pid = merges.into.get(chart, chart)
                facts = ex.facts(pid, resources)
                records: list[tuple[str, tuple[Code, ...], str, ObservationFact | None]] = []
                records += [("Condition", c.codes, c.text, None) for c in facts.conditions]
                records += [("Observation", o.codes, o.text, o) for o in facts.observations]
                records += [
                    (e.ref.split("/")[0], e.codes, e.text if e.codes or e.text else NO_DRUG, None)
                    for e in facts.exposures
                ]
                records += [("Immunization", i.codes, i.text, None) for i in facts.immunizations]
                records += [("Procedure", p.codes, p.text, None) for p in facts.procedures]
                records += unread(facts, resources)
                for gone in facts.unreadable:  # (every code a stub keeps is in the data)
                    for c in gone.codes:
                        seen_codes[term.canonical_system(c.system)].add(c.code)
                    if gone.text:
                        seen_text.add(gone.text)
                for rtype, codes, text, o in records:
                    for c in codes:
                        seen_codes[term.canonical_system(c.system)].add(c.code)
                    if text:
                        seen_text.add(text)
                    concepts = term.concepts_for(codes, text)
                    if not concepts:
                        if o is not None and o.part_of:
                            # a component that maps to nothing: not listed, as the census of
                            # summarised panels keeps no component codes (partial counts)
                            continue
                        entry = record_entry(rtype, codes, text, pid, o)
                        count_entry(found, site.id, entry, screened, term)
                    elif o is not None and o.value.quantity is not None:
                        unit_check(failures, site.id, pid, pid in screened, o, concepts, term)
            for row in store.census_rows(site.id):
                # records summarised at ingest (no concept when read): counted here as they
                # would be had they been stored, unless a mapping edit has since mapped them
                entry = CensusEntry.from_row(row)
                entry.patients = {merges.into.get(p, p) for p in entry.patients}
                for c in entry.codes:
                    seen_codes[term.canonical_system(c.system)].add(c.code)
                if entry.text:
                    seen_text.add(entry.text)
                if not term.concepts_for(entry.codes, entry.text):
                    count_entry(found, site.id, entry, screened, term)
    sug = Suggester(term, loaded.trial.concepts())
    for u in found.values():
        waiting = sug.unverified_row(u)
        if waiting is not None:
            u.suggestion, u.unverified_at = waiting
            u.why = (
                f"only a verified=N row maps it ({u.unverified_at}): set verified to Y or local "
                "once checked, or use_unverified = true"
            )
        elif u.system == TEXT and u.code == NO_DRUG:
            u.why = NO_DRUG_WHY  # (no name to suggest a concept for: the data's gap)
        else:
            u.suggestion, u.why = sug.suggest(u)
            if u.suggestion:
                u.unread_units = sug.unread_units(u, u.suggestion)
    report.unmapped = sorted(
        found.values(), key=lambda u: (-len(u.screened), -len(u.patients), u.rtype, u.code)
    )
    report.never_seen, report.left_out = never_seen(
        term, seen_codes, seen_text, loaded.trial.concepts()
    )
    report.unit_failures = sorted(
        (
            (s, c, unit, v[0], len(v[1]), len(v[2]), len(v[3]))
            for (s, c, unit), v in failures.items()
        ),
        key=lambda t: (-t[4], -t[5], -t[6]),
    )
    return report
