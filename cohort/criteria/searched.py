"""The evidence row of a criterion that fails or is unknown on no record: what it searched."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from operator import attrgetter
from typing import Any, NamedTuple

from cohort.criteria.base import Context, Criterion, window_span
from cohort.criteria.registry import (
    CONDITIONS,
    KINDS,
    LAB_CHECK,
    LABS,
    MEASURE,
    MEDICATIONS,
    PROCEDURES,
    RECORDS,
    VACCINES,
    tables_of,
)
from cohort.model import (
    MEDICATION_TYPES,
    Evidence,
    Result,
    Status,
)

__all__ = ["with_searched"]

# QA: "no current qualifying therapy" with no evidence row at all read as nothing looked at,
# and could not tell a chart without medication records from one whose records map to no
# concept (summarised at read time, never stored). Such a result gets one row, with no record
# reference, naming what was searched and what else of those records is on file.

# the types of the records each sort of concept list is matched against (registry.RECORDS)
_TYPES: dict[str, tuple[str, ...]] = {
    MEDICATIONS: MEDICATION_TYPES,
    LABS: ("Observation",),
    CONDITIONS: ("Condition",),
    PROCEDURES: ("Procedure",),
    VACCINES: ("Immunization",),
}
# the PatientFacts list each sort's records are extracted into
_FACTS = {
    MEDICATIONS: "exposures",
    LABS: "observations",
    CONDITIONS: "conditions",
    PROCEDURES: "procedures",
    VACCINES: "immunizations",
}
_COVERAGE = "see cohort mappings coverage"
# the sorts a FHIR server is searched by code for (its Conditions, medication records and
# Immunizations are pulled whole): of these, records of no mapped code were never fetched, and
# a bare "no Observation records on file" read as a chart without any
_BY_CODE = frozenset({LABS, PROCEDURES})
_PULLED = " (from a FHIR server only those of mapped codes are pulled)"
# the date a stored record of each sort is dated by (as screening.last_seen and the census read
# it; None: undated, date.min: only known as on or before some day)
_DATED: dict[str, Callable[[Any], date | None]] = {
    MEDICATIONS: attrgetter("start"),
    LABS: attrgetter("when"),
    CONDITIONS: lambda c: c.recorded or c.onset,
    PROCEDURES: attrgetter("start"),
    VACCINES: attrgetter("when"),
}


def with_searched(crit: Criterion, ctx: Context, r: Result) -> Result:
    """`r`, and when it fails or is unknown with no evidence row at all, of a kind that
    searches records, with the one row saying what was searched and found (docs/rules.md).

    A result with rows already shows what it rests on: the records it set aside (a qualifying
    therapy that ended, a result before the window, one whose partial date may be in it). One
    whose only rows are such records set aside gets the row too when records no concept maps
    are on file: one of them may be the recent result under a local code (QA: "no platelets
    result since ..." beside an older count read the same as no recent count)."""
    if r.status is Status.PASS or r.evidence:
        return r
    sought = _sought(crit)
    if not sought:
        return r  # (age, deceased, active_record: the Patient record, not a search)
    counts = {sort: _count(ctx, sort, names) for sort, names in sought.items()}
    if r.ignored and not any(c.unmapped for c in counts.values()):
        return r  # (before any text is made: the usual case of records set aside)
    searched = ", ".join(f"{_noun(sort)} of {', '.join(names)}" for sort, names in sought.items())
    others = "; ".join(_others(ctx, sort, c) for sort, c in counts.items())
    found = "none usable" if r.ignored else "none"
    note = f"searched: {searched} {_when(crit, ctx.as_of)}: {found}; {others}"
    concepts = ",".join(dict.fromkeys(n for names in sought.values() for n in names))
    return r.with_rows((Evidence(ref="", concept=concepts, note=note),), r.ignored)


def _sought(crit: Criterion) -> dict[str, list[str]]:
    """The concepts a criterion searches, by the sort of records they are matched against."""
    spec = KINDS.get(crit.kind)
    if spec is None:
        return {}
    out: dict[str, list[str]] = {}
    lists = [(sort, crit.params.get(key)) for key, sort in spec.reads.items()]
    # (an `alt` only lowers a limit and a check concludes from a finding: neither is searched
    # for; a measure is, and a lab check that is `required`)
    for _, table, entry in tables_of(crit.kind, crit.params):
        if table is MEASURE and isinstance(entry, dict):
            lists += [(sort, entry.get(key)) for key, sort in table.reads.items()]
        elif table is LAB_CHECK and isinstance(entry, dict) and entry.get("required"):
            lists.append((LABS, entry.get("lab")))
    for sort, names in lists:
        for name in names if isinstance(names, list) else ():
            if isinstance(name, str) and name not in out.get(sort, ()):
                out.setdefault(sort, []).append(name)
    return out


def _noun(sort: str, n: int = 2) -> str:
    return f"{RECORDS[sort]} record" + ("s" if n != 1 else "")


def _when(crit: Criterion, as_of: date) -> str:
    """The search's time frame, as the kind reads it."""
    if crit.kind == "current_medication":
        return f"current on {as_of}"
    params = crit.params
    if crit.kind == "checks":  # (a required lab check's own window)
        checks = params.get("checks") or ()
        params = next((c for c in checks if isinstance(c, dict) and c.get("required")), params)
    try:
        return f"in the {window_span(params)} before {as_of}"
    except KeyError:  # (no window)
        return f"on record by {as_of}"


# a record's concepts and the day it is dated on or before as_of (None: undated or after it)
Record = tuple[frozenset[str], date | None]


def _records(ctx: Context, sort: str) -> dict[str, Record]:
    """Per record of `sort` on file (a component is part of its Observation): the concepts of
    its facts and the latest day of theirs on or before as_of; built once per patient (several
    criteria may each search the same sort: a rescan each time showed in the profile)."""
    key = f"searched:{sort}"
    found: dict[str, Record] | None = ctx._memo.get(key)
    if found is None:
        found = ctx._memo[key] = {}
        dated, as_of = _DATED[sort], ctx.as_of
        for fact in getattr(ctx.facts, _FACTS[sort]):
            record = fact.ref.partition("#")[0]
            concepts = ctx.concepts(fact.ref, fact.codes, fact.text)
            day = dated(fact)
            # (None: undated; date.min: only known as on or before some day)
            if day is not None and not date.min < day <= as_of:
                day = None
            had = found.get(record)
            if had is not None:
                concepts = had[0] | concepts
                day = had[1] if day is None or (had[1] is not None and had[1] > day) else day
            found[record] = (concepts, day)
    return found


class _Counted(NamedTuple):
    """The records of a sort on file besides those a criterion found: stored ones (`known`,
    of them `mapped` to other concepts), `unmapped` (stored or summarised), and the latest
    day of the stored ones."""

    known: int
    mapped: int
    unmapped: int
    latest: date | None


def _count(ctx: Context, sort: str, names: Sequence[str]) -> _Counted:
    """What else of the records of `sort` is on file: stored ones of other concepts or of none,
    and summarised ones (of no concept: counted at read time, Store.side_facts)."""
    f = ctx.facts
    records = _records(ctx, sort)
    want = frozenset(names)
    sought = mapped = 0
    latest: date | None = None  # of the stored records besides those found
    for concepts, day in records.values():
        if not want.isdisjoint(concepts):
            sought += 1
            continue
        if concepts:
            mapped += 1
        if day is not None and (latest is None or day > latest):
            latest = day
    known = len(records)
    unmapped = known - sought - mapped
    unmapped += sum(f.other_counts.get(t, 0) for t in _TYPES[sort])
    if sort == MEDICATIONS:
        # (a store read before counts were kept has the distinct starts only: at least those)
        unmapped = max(unmapped, known - sought - mapped + len(f.other_medications))
    return _Counted(known, mapped, unmapped, latest)


def _others(ctx: Context, sort: str, c: _Counted) -> str:
    """What else of the records of `sort` is on file, with the date of the latest on or before
    as_of of both; on a site pulled from a FHIR server (`ctx.site["pulled"]`), of a sort it is
    searched by code for, saying so."""
    said = _on_file(ctx, sort, c)
    return said + _PULLED if sort in _BY_CODE and ctx.site.get("pulled") else said


def _on_file(ctx: Context, sort: str, c: _Counted) -> str:
    """`c` as the evidence note says it."""
    n = c.mapped + c.unmapped
    if not n:
        return f"no {'other ' if c.known else ''}{_noun(sort)} on file"
    said = f"{n} other {_noun(sort, 1)}(s) on file"
    latest = _latest(ctx, sort, c.latest)
    if latest is not None:
        said += f", latest {latest}"
    if c.mapped and c.unmapped:
        return (
            f"{said} ({c.mapped} mapped to other concepts, {c.unmapped} not mapped to any"
            f" concept: {_COVERAGE})"
        )
    if c.unmapped:
        return f"{said}, not mapped to any concept ({_COVERAGE})"
    return f"{said}, mapped to other concepts"


def _latest(ctx: Context, sort: str, stored: date | None) -> date | None:
    """The date of the latest on or before as_of of the records of `sort` on file besides those
    found: `stored` (of the stored ones) and the summarised ones, which keep every start of a
    medication record and, of the other types, the latest per type. None when there is none,
    or it cannot be told: a type summarised after as_of (of those only the latest is kept, so
    one on or before as_of later than the others may be hidden), or counted with no date (a
    store read before these dates were kept, or records that all had none)."""
    f = ctx.facts
    days: list[date | None] = [stored]
    if sort == MEDICATIONS:
        days += f.other_medications
    else:
        for t in _TYPES[sort]:
            if f.other_counts.get(t):
                day = f.other_latest.get(t)
                if day is None or day > ctx.as_of:
                    return None
                days.append(day)
    # (None: undated; date.min: only known as on or before some day)
    on_file = [d for d in days if d is not None and date.min < d <= ctx.as_of]
    return max(on_file) if on_file else None
