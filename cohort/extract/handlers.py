"""The triage's NDJSON line handlers: `Triage.offer` answered from a line's bytes (msgspec)."""

# A Bulk export is mostly records no criterion reads; each handler decodes only the elements
# `offer` looks at (cohort.extract.lines) and gives the answer `offer` would give the parsed
# record, or None where it cannot tell (the reader then parses the line and asks `offer`).
# tests/test_line_triage.py holds the two answers equal on generated and broken lines.

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import orjson
from msgspec import UNSET

from cohort.extract.census import Triage
from cohort.extract.census_data import SAMPLES, CensusEntry, add_sample
from cohort.extract.elements import parse_date, verification_status
from cohort.extract.lines import KEY_DECODER, decoder
from cohort.store import Tomb, tomb_of

__all__ = ["Handler", "bind"]

Handler = Callable[[bytes], bool | None]


def bind(triage: Triage, rtype: str) -> Handler:
    """The handler of `rtype` (one of lines.LINE_TYPES), writing to `triage`'s census (and,
    when the triage collects them, a summarised line's tombstone to its `tombs`)."""
    handle = _condition(triage) if rtype == "Condition" else _coded(triage, rtype)
    return handle if triage.tombs is None else _leaving_tombs(handle, rtype, triage.tombs)


def _leaving_tombs(handle: Handler, rtype: str, tombs: list[Tomb]) -> Handler:
    """`handle`, and for each line it summarises, its tombstone: the id and meta decoded from
    the line on their own (the handlers' structs do not decode them), or where that decode
    refuses an element (an id that is no string, a meta that is no object ...), read as
    `Triage.offer` reads the parsed record."""
    decode = KEY_DECODER.decode

    def handle_and_tomb(line: bytes) -> bool | None:
        took = handle(line)
        if took:
            tomb: Tomb | None
            try:
                key = decode(line)
            except (msgspec.DecodeError, RecursionError):
                tomb = _parsed_tomb(rtype, line)
            else:
                rid, meta = key.id, key.meta
                if rid is UNSET:
                    tomb = None
                elif meta is UNSET:
                    tomb = (rtype, rid, None, None)
                else:
                    version, updated = meta.versionId, meta.lastUpdated
                    tomb = (
                        rtype,
                        rid,
                        None if version is UNSET else version,
                        None if updated is UNSET else updated,
                    )
            if tomb is not None:
                tombs.append(tomb)
        return took

    return handle_and_tomb


def _parsed_tomb(rtype: str, line: bytes) -> Tomb | None:
    try:
        return tomb_of(rtype, orjson.loads(line))
    except orjson.JSONDecodeError:
        return None  # (a number msgspec skips and orjson refuses: see lines.py)


def _coded(triage: Triage, rtype: str) -> Handler:
    """Observation, Procedure, Immunization: the code, status, subject, date (and an
    Observation's value samples)."""
    decode_line = decoder(rtype)
    read_text = triage._elements.read_text
    dropped = triage.rules.dropped_statuses(rtype)
    census = triage.census
    # this type's entries: an order and its administration often carry the same element
    entries, dates = census.entries.setdefault(rtype, {}), census.dates
    # (`take` drops this handler with the census)
    counted = census.counts.setdefault(rtype, {})
    latest = census.latest.setdefault(rtype, {})
    patient = triage._line_patient
    dated = rtype == "Observation"  # (one without a date is kept; last_seen reads its date)

    # `offer` for one line, with `_count` inlined: this runs for most lines of a Bulk
    # export, and the calls it saves were ~1 us of ~4 (bench/RESULTS.md, eighth pass)
    def handle(line: bytes) -> bool | None:
        rec: Any = decode_line(line)  # an ObservationLine when `dated`
        if rec is None:
            return None
        hit = read_text(bytes(rec.code))
        if hit is None:
            return None  # no code element, or text only orjson refuses: read it whole
        key, (codes, text, relevant, valid) = hit
        if key is None or relevant or not valid:
            return False
        if dated and rec.component:  # (UNSET is false) `offer`'s Triage._parts_read
            for part in rec.component:
                hit = read_text(bytes(part.code))
                if hit is None:
                    return None
                if hit[0] is None or hit[1][2] or not hit[1][3]:
                    return False  # a component read as a result of its own, or malformed
        if ("" if rec.status is UNSET else rec.status) in dropped:
            return False
        entry = entries.get(key)
        unit, sample = None, None
        day = rec.day()
        if dated:
            if day is None:
                return False
            vq = rec.valueQuantity
            quantity = bool(vq or rec.valueInteger)
            if entry is None or (
                len(entry.values) < SAMPLES or (quantity and len(entry.quantities) < SAMPLES)
            ):  # (entry.sampling(quantity))
                if quantity:
                    return None  # the census samples this quantity: add_sample decides
                # What add_sample reads of this record, without parsing it whole: most such
                # records are panels of components (no value: nothing to sample) or
                # codes with fewer than 3 distinct values, which sample every record.
                sample = rec.other_values()
                if sample is None:
                    return None
            if vq:
                unit = vq.code or vq.unit or None  # what add_sample adds once samples are full
        pid = patient(rec.subject)
        if pid is None:
            return False
        census.records += 1
        counted[pid] = counted.get(pid, 0) + 1
        if day is not None:
            if day > latest.get(pid, ""):
                latest[pid] = day
            if dated:
                days = dates.get(pid)
                if days is None:
                    dates[pid] = {day}
                else:
                    days.add(day)
        if entry is None:
            entry = entries[key] = CensusEntry(rtype, codes, text)
        entry.records += 1
        entry.patients.add(pid)
        if unit:
            entry.units.add(unit)
        if sample:
            add_sample(entry, sample)
        return True

    return handle


def _condition(triage: Triage) -> Handler:
    """A Condition: its code, verification status, dates (recorded, else onset) and subject."""
    decode_line = decoder("Condition")
    read_text = triage._elements.read_text
    dropped = triage.rules.dropped_statuses("Condition")
    refuted = triage.rules.drop_verification.get("Condition", frozenset())
    patient = triage._line_patient
    count = triage._count
    verification: dict[bytes, str] = {}  # the element's text -> its code (drop_reason)

    def handle(line: bytes) -> bool | None:
        rec: Any = decode_line(line)
        if rec is None:
            return None
        hit = read_text(bytes(rec.code))
        if hit is None:
            return None
        key, (codes, text, relevant, valid) = hit
        if key is None or relevant or not valid:
            return False
        if ("" if rec.status is UNSET else rec.status) in dropped:
            return False
        raw = bytes(rec.verificationStatus)
        vs = verification.get(raw)
        if vs is None:
            try:
                vs = verification_status(orjson.loads(raw) if raw else None)
            except orjson.JSONDecodeError:
                return None
            if len(verification) < 10_000 and len(raw) <= 1024:
                verification[raw] = vs
        if vs in refuted:
            return False  # kept whole, so explain can show it
        period = rec.onsetPeriod
        when = (
            parse_date(rec.recordedDate)
            or parse_date(rec.onsetDateTime)
            or parse_date(period.start if period else None)
        )
        if when is None:
            return False
        pid = patient(rec.subject)
        if pid is None:
            return False
        count("Condition", key, codes, text, pid, when, when)
        return True

    return handle
