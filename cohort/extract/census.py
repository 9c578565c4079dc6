"""Records no criterion reads: summarised as per-patient dates and a code census, not stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from msgspec import UNSET

from cohort.extract.census_data import Census, CensusEntry, add_sample
from cohort.extract.elements import (
    CodeElements,
    condition_onset,
    exposure_start,
    parse_date,
)
from cohort.extract.lines import LINE_TYPES
from cohort.extract.obs_dates import obs_date
from cohort.extract.rules import ReadingRules
from cohort.model import Code
from cohort.store import Tomb, reference_id, tomb_of
from cohort.store.schema import MEDICATION_MARK

__all__ = ["CODE_ELEMENT", "MEDICATION_ELEMENT", "Triage"]

# The types read through one coded element: a record whose element maps to no concept can
# matter only to `last_seen` (the date of an Observation or Condition), to the "searched"
# evidence rows (its type's count and latest date per patient: criteria.searched) and to
# `cohort mappings coverage` (its code). Medication records are always kept whole (a
# medication is known only once its Medication is resolved).
CODE_ELEMENT = {
    "Observation": "code",
    "Condition": "code",
    "Procedure": "code",
    "Immunization": "vaccineCode",
}
# Medication records named by an inline code (no Medication to resolve) that maps to no concept
# matter only to last_seen (their start) and to `current_medication`, which needs to know that
# the patient has medication records at all (bench: 98% of Synthea's medication records).
# Offered only once validated, so no rejection is lost (see Reader.resource).
MEDICATION_ELEMENT = {
    "MedicationStatement": "medicationCodeableConcept",
    "MedicationRequest": "medicationCodeableConcept",
    "MedicationAdministration": "medicationCodeableConcept",
}
_PATIENT_ELEMENT = {"Immunization": "patient"}  # the others name theirs `subject`
_DATED = ("Observation", "Condition")  # the summarised types whose date last_seen reads


class Triage:
    """Decides, record by record, whether a record is kept whole or only summarised.

    `relevant(codes, text)` says whether a code element maps to any concept (the same test the
    Extractor applies to Observations). A summarised record is one of TYPES whose well-formed
    element maps to nothing (for an Observation, nor does any component's code: a component
    that maps is a result of its own, docs/rules.md "Panels and components"), which the reading
    rules do not drop (dropped records stay whole so `cohort explain` can show them), names its
    patient and, for the types `last_seen` reads, has a readable date. Anything else is kept
    whole and validated as usual.

    With `tombstones` (a `snapshot = false` read), each summarised record that has an id also
    leaves its (type, id, versionId, lastUpdated) in `tombs`, in read order: a stored copy it
    is not older than is not current any more (cohort.ingest). The caller empties that list in
    place (the line handlers append to it). Otherwise `tombs` is None and nothing more is read
    of a record.
    """

    TYPES = frozenset(CODE_ELEMENT)  # the types `offer` may summarise before validation
    CHECKED_TYPES = frozenset(MEDICATION_ELEMENT)  # ... and those it may summarise once valid
    LINE_TYPES = LINE_TYPES  # the types `offer_line` reads from an NDJSON line's bytes

    def __init__(
        self,
        rules: ReadingRules,
        relevant: Callable[[tuple[Code, ...], str], bool],
        *,
        tombstones: bool = False,
    ) -> None:
        self.rules = rules
        self.relevant = relevant
        self.census = Census()
        self.tombs: list[Tomb] | None = [] if tombstones else None
        self._elements = CodeElements(relevant)
        self._handlers: dict[str, Callable[[bytes], bool | None]] = {}  # see line_handler

    def take(self) -> Census:
        """The census so far, handing over a fresh one."""
        out, self.census = self.census, Census()
        self._handlers.clear()  # they write to the census handed over
        return out

    def offer(self, res: dict[str, Any]) -> bool:
        """True when `res` was summarised into the census (the caller does not keep it)."""
        rtype = res.get("resourceType")
        if not isinstance(rtype, str) or rtype not in CODE_ELEMENT:
            return False
        key, (codes, text, relevant, valid) = self._elements.read(res.get(CODE_ELEMENT[rtype]))
        # a malformed element (or status) is never summarised: the record is kept, so
        # validation rejects it with a located reason; dropped records stay whole for explain
        if key is None or relevant or not valid or not isinstance(res.get("status", ""), str):
            return False
        if rtype == "Observation" and "component" in res and self._parts_read(res["component"]):
            return False  # a component is a result of its own (or malformed: validation names it)
        if self.rules.drop_reason(res) is not None:
            return False
        # its date: the one last_seen takes from it (see screening.last_seen), and the latest a
        # criterion that finds nothing names (criteria.searched); Procedures and Immunizations
        # do not count for last_seen, and one without a date is summarised all the same
        when = None
        if rtype == "Observation":
            when = obs_date(res)
        elif rtype == "Condition":
            if not isinstance(res.get("onsetPeriod", {}), dict):
                return False  # malformed: kept whole, so validation rejects it
            when = parse_date(res.get("recordedDate")) or condition_onset(res)
        elif rtype == "Procedure":
            period = res.get("performedPeriod")
            when = parse_date(res.get("performedDateTime")) or parse_date(
                period.get("start") if isinstance(period, dict) else None
            )
        else:
            # (not `recorded`: an occurrence "on or before" it, never that date itself)
            when = parse_date(res.get("occurrenceDateTime"))
        dated = rtype in _DATED
        if when is None and dated:
            return False  # no readable date: kept whole, so validation looks at it
        pid = _patient_id(res.get(_PATIENT_ELEMENT.get(rtype, "subject")))
        if pid is None:
            return False
        entry = self._count(rtype, key, codes, text, pid, when, when if dated else None)
        if rtype == "Observation":
            add_sample(entry, res)
        if self.tombs is not None:
            self._tomb(rtype, res)
        return True

    def _parts_read(self, parts: Any) -> bool:
        """Whether an Observation's `component` keeps it whole: a component whose code maps to
        a concept (read as a result of its own), or an element of an unexpected shape."""
        if not isinstance(parts, list):
            return True
        for part in parts:
            if not isinstance(part, dict):
                return True
            key, (_, _, relevant, valid) = self._elements.read(part.get("code"))
            if key is None or relevant or not valid:
                return True
        return False

    def offer_checked(self, res: dict[str, Any]) -> bool:
        """`offer` for a record of CHECKED_TYPES, once validated: a medication record whose
        inline code maps to nothing (no Medication reference or contained resource)."""
        rtype = res.get("resourceType")
        if rtype not in MEDICATION_ELEMENT or "medicationReference" in res or "contained" in res:
            return False
        element = res.get(MEDICATION_ELEMENT[rtype])
        key, (codes, text, relevant, valid) = self._elements.read(element)
        if key is None or relevant or not valid or self.rules.drop_reason(res) is not None:
            return False
        if self.rules.doubt(res) is not None:
            return False  # it may not count: kept whole, read as the Extractor reads it
        pid = _patient_id(res.get("subject"))
        if pid is None or not isinstance(res.get("effectivePeriod") or {}, dict):
            return False  # (a malformed period: kept, the Extractor drops it with the reason)
        start = exposure_start(res)  # the start the Extractor gives its exposure
        # (no latest: every start is kept, below)
        self._count(rtype, key, codes, text, pid, None, start)
        mark = MEDICATION_MARK + (start.isoformat() if start else "")
        self.census.dates.setdefault(pid, set()).add(mark)
        if self.tombs is not None:
            self._tomb(rtype, res)
        return True

    def offer_line(self, line: bytes, rtype: str) -> bool | None:
        """`offer` for one NDJSON line of `rtype`, answered from its bytes where it can be.

        True: summarised; False: to be kept (`offer` would say the same); None: undecided, the
        line must be parsed and offered whole (an element of an unexpected type, the first
        records of a code, whose values the census samples, or a type not decoded here).
        """
        handle = self.line_handler(rtype)
        return None if handle is None else handle(line)

    def line_handler(self, rtype: str) -> Callable[[bytes], bool | None] | None:
        """`offer_line` for `rtype` as one function with its lookups bound (None: a type not
        decoded from lines). The reader calls it for most lines of a Bulk export: binding
        saves ~1 us of the ~4.4 us a summarised line cost (bench/RESULTS.md). Valid until
        `take` hands the census over."""
        handle = self._handlers.get(rtype)
        if handle is None and rtype in LINE_TYPES:
            from cohort.extract.handlers import bind  # (it builds on this module)

            handle = self._handlers[rtype] = bind(self, rtype)
        return handle

    def _tomb(self, rtype: str, res: dict[str, Any]) -> None:
        """Leave a summarised record's tombstone (none without an id) in `tombs`."""
        tomb = tomb_of(rtype, res)
        if tomb is not None and self.tombs is not None:
            self.tombs.append(tomb)

    def _line_patient(self, subject: Any) -> str | None:
        """The patient id a decoded line's subject names (reference_id memoises it)."""
        ref = subject.reference if subject else None
        return None if ref is None or ref is UNSET else reference_id(ref)

    def _count(
        self,
        rtype: str,
        key: bytes,
        codes: tuple[Code, ...],
        text: str,
        pid: str,
        when: date | None,
        seen: date | None,
    ) -> CensusEntry:
        """Count one summarised record dated `when` (None: undated, or no latest kept) and
        `seen` for last_seen (None: not read there)."""
        census = self.census
        census.records += 1
        counted = census.counts.get(rtype)
        if counted is None:
            counted = census.counts[rtype] = {}
        counted[pid] = counted.get(pid, 0) + 1
        day = ""
        if when is not None:
            day = when.isoformat()
            latest = census.latest.get(rtype)
            if latest is None:
                latest = census.latest[rtype] = {}
            if day > latest.get(pid, ""):
                latest[pid] = day
        if seen is not None:
            if seen is not when:
                day = seen.isoformat()
            ds = census.dates.get(pid)
            if ds is None:
                census.dates[pid] = {day}
            else:
                ds.add(day)
        by_code = census.entries.get(rtype)
        if by_code is None:
            by_code = census.entries[rtype] = {}
        entry = by_code.get(key)
        if entry is None:
            entry = by_code[key] = CensusEntry(rtype, codes, text)
        entry.records += 1
        entry.patients.add(pid)
        return entry


def _patient_id(subject: Any) -> str | None:
    if not isinstance(subject, dict):
        return None
    ref = subject.get("reference")
    return reference_id(ref) if isinstance(ref, str) else None
