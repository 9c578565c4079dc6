"""`cohort mappings coverage`: unmapped codes in the stored data, unseen mapped codes, bad units."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohort.atomic import write_atomic
from cohort.config import Config
from cohort.extract import Extractor
from cohort.extract.census import CensusEntry, value_summary
from cohort.extract.unreadable import own_codes
from cohort.merged import merges_of
from cohort.model import Code, ObservationFact, PatientFacts, Quantity
from cohort.report.csv import render_chunks
from cohort.runner import Loaded
from cohort.screening import screened_ids
from cohort.store import Store
from cohort.terminology import Terminology
from cohort.terminology.codes import TEXT, ConceptIndex
from cohort.tools.common import open_store, table
from cohort.tools.sites import chosen_sites
from cohort.tools.suggest import Suggester

COLUMNS = (
    "section",
    "site",
    "resource_type",
    "system",
    "code",
    "display",
    "screened_patients",
    "patients",
    "records",
    "example_values",
    "units",
    "suggestion",
    "why",
    "mapping_version",
)
# a medication record that names no drug (extract.medref), listed under this name
NO_DRUG = "(names no drug)"
NO_DRUG_WHY = (
    "names no drug: its referenced Medication is not in the data (or is dropped) and the"
    " reference has no display; export the Medications with the records"
)


@dataclass
class Unmapped:
    """One code (or free text) present in the data that no concept maps."""

    site: str
    rtype: str
    system: str
    code: str
    display: str = ""
    screened: set[str] = field(default_factory=set)
    patients: set[str] = field(default_factory=set)
    records: int = 0
    values: list[str] = field(default_factory=list)
    units: set[str] = field(default_factory=set)
    quantities: list[Quantity] = field(default_factory=list)
    suggestion: str = ""
    why: str = ""
    unverified_at: str = ""  # file:line of a verified=N row that maps it


@dataclass
class CoverageReport:
    version: str
    unmapped: list[Unmapped] = field(default_factory=list)
    never_seen: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    # (site, concept, unit as written, example value, screened patients)
    unit_failures: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    trial: str = ""
    # mapped rows of concepts the trial does not read, not listed in never_seen: (rows, concepts)
    left_out: tuple[int, int] = (0, 0)


def _record_entry(
    rtype: str, codes: tuple[Code, ...], text: str, pid: str, o: ObservationFact | None
) -> CensusEntry:
    """One stored record as a census entry of its own (with its value, for an Observation)."""
    entry = CensusEntry(rtype, codes, text, records=1, patients={pid})
    if o is not None:
        value, unit, q = value_summary(o.value)
        entry.values = [value] if value else []
        entry.units = {unit} if unit else set()
        entry.quantities = [q] if q is not None else []
    return entry


def _add(found: dict, site: str, entry: CensusEntry, screened: set[str], term: Terminology) -> None:
    """Count a census entry (one stored record, or many summarised ones) under its codes."""
    keys = [(term.canonical_system(c.system), c.code, c.display) for c in entry.codes]
    if not keys:
        keys = [(TEXT, entry.text.split(" | ")[0], entry.text)]
    for system, code, display in keys:
        u = found.setdefault(
            (site, entry.rtype, system, code), Unmapped(site, entry.rtype, system, code)
        )
        u.display = u.display or display or entry.text
        u.records += entry.records
        u.patients |= entry.patients
        u.screened |= entry.patients & screened
        for value in entry.values:
            if value not in u.values and len(u.values) < 3:
                u.values.append(value)
        u.units |= entry.units
        u.quantities += entry.quantities[: 3 - len(u.quantities)]


def _unread(
    facts: PatientFacts, resources: list[dict[str, Any]]
) -> list[tuple[str, tuple[Code, ...], str, None]]:
    """The records of a patient's that could not be read (a refused record's stub, a record
    with an element that does not read), once each, with the codes they keep: codes in the
    data as much as a read record's. Not those read all the same (a stub through the readable
    copy it was stored over, a result whose date does not read: counted as read). A panel's
    own code only, as a kept panel's: its components' codes are seen, not listed (the caller)."""
    read = {c.ref for c in facts.conditions} | {o.ref for o in facts.observations}
    read |= {e.ref for e in facts.exposures} | {i.ref for i in facts.immunizations}
    read |= {p.ref for p in facts.procedures}
    out: dict[str, tuple[str, tuple[Code, ...], str, None]] = {}
    raw: dict[str, dict[str, Any]] | None = None
    for u in facts.unreadable:
        if u.ref in read or u.ref in out or not (u.codes or u.text):
            continue
        if raw is None:
            raw = {f"{r.get('resourceType', '')}/{r.get('id', '')}": r for r in resources}
        res = raw.get(u.ref)
        codes, text = own_codes(res) if res and res.get("component") else (u.codes, u.text)
        if codes or text:  # (a panel whose own code does not read: its components only)
            out[u.ref] = (u.ref.split("/")[0], codes, text, None)
    return list(out.values())


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
                records += _unread(facts, resources)
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
                        entry = _record_entry(rtype, codes, text, pid, o)
                        _add(found, site.id, entry, screened, term)
                    elif o is not None and o.value.quantity is not None:
                        _unit_check(failures, site.id, pid in screened, o, concepts, term)
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
                    _add(found, site.id, entry, screened, term)
    sug = Suggester(term)
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
    report.unmapped = sorted(
        found.values(), key=lambda u: (-len(u.screened), -len(u.patients), u.rtype, u.code)
    )
    report.never_seen, report.left_out = _never_seen(
        term, seen_codes, seen_text, loaded.trial.concepts()
    )
    report.unit_failures = sorted(
        ((s, c, unit, v[0], len(v[1])) for (s, c, unit), v in failures.items()),
        key=lambda t: -t[4],
    )
    return report


def _unit_check(
    failures: dict,
    site: str,
    screened: bool,
    o: ObservationFact,
    concepts: frozenset[str],
    term: Terminology,
) -> None:
    q = o.value.quantity
    assert q is not None
    for concept in sorted(concepts):
        unit = term.canonical_unit(concept)
        if not unit or unit.startswith("{"):
            continue
        if term.convert(q, concept) is None:
            read = term.ucum_only(q)  # the unit conversion read: a non-UCUM code is not
            written = read.code or read.unit or "(no unit)"
            entry = failures.setdefault((site, concept, written), [f"{q.value:g}", set()])
            if screened:
                entry[1].add(o.ref)


def _never_seen(
    term: Terminology, seen_codes: dict[str, set[str]], seen_text: set[str], read: set[str]
) -> tuple[list[tuple[str, str, str, str, str]], tuple[int, int]]:
    """The rows of the concepts the trial reads (`read`) that no code or text in the data
    matches; (rows, concepts) of the other concepts, left out: a folder holding several
    trials' concepts listed thousands of rows of the trials not screened for."""
    out = []
    other: list[str] = []
    for row in term.rows():
        if row.verified == "N":
            continue
        if row.concept not in read:
            other.append(row.concept)
            continue
        index = ConceptIndex([row], term.systems)
        if row.system == TEXT:
            hit = any(index.text_hits(t) for t in seen_text)
        else:
            system = term.canonical_system(row.system)
            hit = any(index.code_hits(system, c) for c in seen_codes.get(system, ()))
        if not hit:
            out.append((row.concept, row.system, row.code, row.display, f"{row.file}:{row.line}"))
    return out, (len(other), len(set(other)))


def _cut(text: str, width: int, keep_end: bool = False) -> str:
    """`text` in at most `width` characters, a cut marked by "…" (the whole is in coverage.csv):
    `system|code` keeps its end, the code ("…tp://example.org/lab|PLT", not "ttp://...")."""
    if len(text) <= width:
        return text
    return "…" + text[-(width - 1) :] if keep_end else text[: width - 1] + "…"


def render_terminal(r: CoverageReport, limit: int) -> str:
    """Tables for the terminal (the first `limit` rows of each)."""
    lines = [f"unmapped codes in the data ({len(r.unmapped)}), by screened patients:"]
    body = [
        (
            u.site,
            u.rtype,
            _cut(f"{u.system}|{u.code}", 48, keep_end=True),
            _cut(u.display, 28),
            str(len(u.screened)),
            _cut(" ".join(u.values), 20),
            _cut(" ".join(sorted(u.units)), 12),
            u.suggestion + (f" (verified=N row {u.unverified_at})" if u.unverified_at else ""),
        )
        for u in r.unmapped[:limit]
    ]
    lines += table(
        ("site", "type", "system|code", "display", "screened", "values", "units", "suggest"), body
    )
    lines += ["", f"unit failures ({len(r.unit_failures)}):"]
    lines += table(
        ("site", "concept", "unit", "example", "records"),
        [(s, c, u, v, str(n)) for s, c, u, v, n in r.unit_failures[:limit]],
    )
    per: dict[str, int] = defaultdict(int)
    for concept, *_ in r.never_seen:
        per[concept] += 1
    lines += [
        "",
        f"mapped rows never seen in the data: {len(r.never_seen)} "
        f"(in {len(per)} concepts; listed in coverage.csv)",
    ]
    if r.left_out[0]:
        lines.append(
            f"left out: {r.left_out[0]} mapped row(s) of {r.left_out[1]} concept(s) the trial "
            f"{r.trial} does not read"
        )
    return "\n".join(lines)


def write_csv(r: CoverageReport, path: Path) -> Path:
    """coverage.csv (0600, atomic): one row per unmapped code, unseen row and unit failure.

    Written like candidates.csv (BOM, CRLF, Excel-safe cells): its codes, displays, example
    values and units are taken from the data as they were recorded."""
    rows: list[list[object]] = []
    for u in r.unmapped:
        rows.append(
            [
                "unmapped",
                u.site,
                u.rtype,
                u.system,
                u.code,
                u.display,
                len(u.screened),
                len(u.patients),
                u.records,
                "; ".join(u.values),
                "; ".join(sorted(u.units)),
                u.suggestion,
                u.why,
                r.version,
            ]
        )
    for s, concept, unit, value, n in r.unit_failures:
        rows.append(
            [
                "unit_not_converted",
                s,
                "Observation",
                "",
                "",
                "",
                n,
                "",
                "",
                value,
                unit,
                concept,
                "",
                r.version,
            ]
        )
    for concept, system, code, display, where in r.never_seen:
        rows.append(
            [
                "mapped_never_seen",
                "",
                "",
                system,
                code,
                display,
                0,
                0,
                0,
                "",
                "",
                concept,
                where,
                r.version,
            ]
        )
    write_atomic(path, render_chunks(COLUMNS, ([str(x) for x in row] for row in rows)))
    return path
