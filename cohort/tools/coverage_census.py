"""`cohort mappings coverage`'s census: each record counted under its codes, the units that do
not convert, and the trial's mapped rows no code or text in the data matches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cohort.extract.census_data import SAMPLES, CensusEntry, value_summary
from cohort.extract.unreadable import own_codes
from cohort.model import Code, ObservationFact, PatientFacts, Quantity
from cohort.terminology import Terminology
from cohort.terminology.codes import TEXT, ConceptIndex


@dataclass
class Unmapped:
    """One code (or free text) present in the data that no concept maps."""

    site: str
    rtype: str
    system: str
    code: str
    display: str = ""
    # display -> records carrying it: the most carried names the code, so that the name does
    # not depend on the order the records were read in (a file format's order)
    displays: dict[str, int] = field(default_factory=dict)
    screened: set[str] = field(default_factory=set)
    patients: set[str] = field(default_factory=set)
    records: int = 0
    values: list[str] = field(default_factory=list)
    units: set[str] = field(default_factory=set)
    quantities: list[Quantity] = field(default_factory=list)
    suggestion: str = ""
    why: str = ""
    unverified_at: str = ""  # file:line of a verified=N row that maps it
    # its values' units UCUM cannot read, to add to unit_aliases.csv for the suggested concept
    unread_units: list[str] = field(default_factory=list)


def record_entry(
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


def count_entry(
    found: dict, site: str, entry: CensusEntry, screened: set[str], term: Terminology
) -> None:
    """Count a census entry (one stored record, or many summarised ones) under its codes."""
    keys = [(term.canonical_system(c.system), c.code, c.display) for c in entry.codes]
    if not keys:
        keys = [(TEXT, entry.text.split(" | ")[0], entry.text)]
    for system, code, display in keys:
        u = found.setdefault(
            (site, entry.rtype, system, code), Unmapped(site, entry.rtype, system, code)
        )
        label = display or entry.text
        if label:
            u.displays[label] = u.displays.get(label, 0) + entry.records
            u.display = min(u.displays, key=lambda d: (-u.displays[d], d))
        u.records += entry.records
        u.patients |= entry.patients
        u.screened |= entry.patients & screened
        for value in entry.values:
            if value not in u.values and len(u.values) < SAMPLES:
                u.values.append(value)
        u.units |= entry.units
        u.quantities += entry.quantities[: SAMPLES - len(u.quantities)]


def unread(
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


def unit_check(
    failures: dict,
    site: str,
    pid: str,
    screened: bool,
    o: ObservationFact,
    concepts: frozenset[str],
    term: Terminology,
) -> None:
    """Count a mapped result whose unit does not convert to a concept's: under (site, concept,
    unit as written), [first value, screened patients, patients, records]."""
    q = o.value.quantity
    assert q is not None
    for concept in sorted(concepts):
        unit = term.canonical_unit(concept)
        if not unit or unit.startswith("{"):
            continue
        if term.convert(q, concept) is None:
            read = term.ucum_only(q)  # the unit conversion read: a non-UCUM code is not
            written = read.code or read.unit or "(no unit)"
            entry = failures.setdefault(
                (site, concept, written), [f"{q.value:g}", set(), set(), set()]
            )
            if screened:
                entry[1].add(pid)
            entry[2].add(pid)
            entry[3].add(o.ref)


def never_seen(
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
