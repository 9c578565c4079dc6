"""The few elements the triage reads, decoded straight from an NDJSON line (msgspec)."""

# Most of a Bulk export is Observations whose code maps to no concept. Building a whole dict
# for each (orjson) and walking it costs ~6.5 us a line; decoding only these elements into
# typed structs, skipping the rest in C, costs ~1 us (bench/RESULTS.md). The structs are
# strict: an element of an unexpected JSON type fails the decode, and the caller then reads the
# line the ordinary way, so the answer for such lines is exactly the ordinary one. They hold
# only strings and other such structs, so they are not tracked by the cycle collector (gc=False:
# ~7% cheaper to build).
#
# One known difference, kept on purpose: a number beyond a double's range (1e999, a 309-digit
# integer) in an element not decoded here. JSON and FHIR's decimal allow it; orjson refuses the
# line as invalid JSON, msgspec skips it, so such a line of a record no criterion reads is
# summarised where the ordinary path would reject it. Looking for one in every line costs 5-17
# us (measured regexes), more than the line's whole handling (~3 us), to reject a record nothing
# reads; a kept record still goes through orjson and is rejected.

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import msgspec
import orjson
from msgspec import UNSET, Raw, UnsetType

from cohort.extract.elements import parse_date

__all__ = ["LINE_TYPES", "KEY_DECODER", "KeyLine", "Line", "ObservationLine", "decoder"]

_NO_RAW = Raw(b"")


class _Ref(msgspec.Struct, gc=False):
    reference: str | UnsetType = UNSET


class _Period(msgspec.Struct, gc=False):
    start: str | UnsetType = UNSET
    end: str | UnsetType = UNSET


class _Repeat(msgspec.Struct, gc=False):
    boundsPeriod: _Period | UnsetType = UNSET


class _Timing(msgspec.Struct, gc=False):
    """An effectiveTiming: its events must be strings (a number or null fails the decode)."""

    event: list[str] | UnsetType = UNSET
    repeat: _Repeat | UnsetType = UNSET

    def date(self) -> date | None:
        """The first day `obs_dates.timing_when` dates it by: its earliest event's, none when an
        event does not read; with no event, its bounds' start, their end when they have none."""
        if self.event:
            days = [parse_date(value) for value in self.event]
            read = [day for day in days if day is not None]
            return min(read) if len(read) == len(days) else None
        bounds = self.repeat.boundsPeriod if self.repeat else UNSET
        if not bounds:
            return None
        return parse_date(bounds.end if bounds.start is UNSET else bounds.start)


class _Quantity(msgspec.Struct, gc=False):
    code: str | UnsetType = UNSET
    unit: str | UnsetType = UNSET


class _Component(msgspec.Struct, gc=False):
    code: Raw = _NO_RAW


class Line(msgspec.Struct, gc=False):
    """A line's type, status, code element (as raw JSON text) and subject."""

    resourceType: str
    status: str | UnsetType = UNSET
    code: Raw = _NO_RAW
    subject: _Ref | UnsetType = UNSET

    def day(self) -> str | None:
        """The record's date as the census writes it (ISO; None: none read)."""
        return None


class _Procedure(Line):
    """A Procedure: also its date (`Triage.offer` reads the same)."""

    performedDateTime: str | UnsetType = UNSET
    performedPeriod: _Period | UnsetType = UNSET

    def day(self) -> str | None:
        period = self.performedPeriod
        return _iso_day(self.performedDateTime) or (_iso_day(period.start) if period else None)


class _Immunization(Line):
    """The same elements under Immunization's names, and its date."""

    code: Raw = msgspec.field(default=_NO_RAW, name="vaccineCode")
    subject: _Ref | UnsetType = msgspec.field(default=UNSET, name="patient")
    occurrenceDateTime: str | UnsetType = UNSET

    def day(self) -> str | None:
        return _iso_day(self.occurrenceDateTime)


class _ConditionLine(Line):
    """Also what drop_reason and last_seen read of a Condition."""

    verificationStatus: Raw = _NO_RAW
    recordedDate: str | UnsetType = UNSET
    onsetDateTime: str | UnsetType = UNSET
    onsetPeriod: _Period | UnsetType = UNSET


class ObservationLine(Line):
    """Also the dates `last_seen` reads and whether a value can carry a unit."""

    effectiveDateTime: str | UnsetType = UNSET
    effectivePeriod: _Period | UnsetType = UNSET
    effectiveInstant: str | UnsetType = UNSET
    issued: str | UnsetType = UNSET
    valueQuantity: _Quantity | UnsetType = UNSET
    valueInteger: Raw = _NO_RAW  # only whether it is there: it makes a quantity
    # the other elements `elements.obs_value` reads, as their JSON text (see other_values)
    valueString: Raw = _NO_RAW
    valueCodeableConcept: Raw = _NO_RAW
    valueRatio: Raw = _NO_RAW
    valueBoolean: Raw = _NO_RAW
    # each component's code element (as raw JSON text): one that maps keeps the record
    component: list[_Component] | UnsetType = UNSET
    # (last: msgspec looks a key up from the field after the one last matched, so a rare
    # element declared between effectiveDateTime and issued would cost most lines a compare)
    effectiveTiming: _Timing | UnsetType = UNSET

    def other_values(self) -> dict[str, Any] | None:
        """The value elements other than a quantity, parsed: what `obs_value` reads of a record
        with neither valueQuantity nor valueInteger (empty for a panel of components only;
        None if one is no JSON orjson reads)."""
        out: dict[str, Any] = {}
        for name, raw in (
            ("valueString", self.valueString),
            ("valueCodeableConcept", self.valueCodeableConcept),
            ("valueRatio", self.valueRatio),
            ("valueBoolean", self.valueBoolean),
        ):
            if raw:
                try:
                    out[name] = orjson.loads(bytes(raw))
                except orjson.JSONDecodeError:
                    return None
        return out

    def date(self) -> date | None:
        """The date `obs_dates.obs_date` reads from the same record."""
        period, timing = self.effectivePeriod, self.effectiveTiming
        return (
            parse_date(self.effectiveDateTime)
            or parse_date(period.start if period else None)
            or parse_date(period.end if period and period.start is UNSET else None)
            or (timing.date() if timing else None)
            or parse_date(self.effectiveInstant)
            or parse_date(self.issued)
        )

    def day(self) -> str | None:
        """`date()` as the census writes it (ISO), memoised by the text it reads."""
        first = self.effectiveDateTime
        if first.__class__ is str:
            hit = _ISO_DAYS.get(first[:10])  # (inline: most lines, one lookup)
            if hit is not None:
                return hit
            iso = _iso_day(first)
            if iso is not None:
                return iso
        when = self.date()
        return None if when is None else when.isoformat()


class _Meta(msgspec.Struct, gc=False):
    versionId: str | UnsetType = UNSET
    lastUpdated: str | UnsetType = UNSET


class KeyLine(msgspec.Struct, gc=False):
    """A summarised line's id and versions, for its tombstone: decoded (a second, separate
    decode) only in a `snapshot = false` read, so the structs above stay as they are."""

    id: str | UnsetType = UNSET
    meta: _Meta | UnsetType = UNSET


KEY_DECODER = msgspec.json.Decoder(KeyLine)

# a date element's first 10 characters -> the ISO day it reads as (see _iso_day)
_ISO_DAYS: dict[str, str] = {}


def _iso_day(value: str | UnsetType) -> str | None:
    """`parse_date(value)` as the census writes it (ISO), memoised by the text it reads."""
    if value.__class__ is not str:
        return None
    head = value[:10]  # all that parse_date reads of it
    hit = _ISO_DAYS.get(head)
    if hit is not None:
        return hit
    when = parse_date(head)
    if when is None:
        return None
    iso = when.isoformat()
    if len(_ISO_DAYS) < 100_000:
        _ISO_DAYS[head] = iso
    return iso


_DECODERS: dict[str, msgspec.json.Decoder[Line]] = {
    "Observation": msgspec.json.Decoder(ObservationLine),
    "Procedure": msgspec.json.Decoder(_Procedure),
    "Immunization": msgspec.json.Decoder(_Immunization),
    "Condition": msgspec.json.Decoder(_ConditionLine),
}
LINE_TYPES = frozenset(_DECODERS)


def decoder(rtype: str) -> Callable[[bytes], Line | None]:
    """The elements of an NDJSON line of `rtype` (one of LINE_TYPES); None when the line must
    be read whole.

    Non-ASCII lines are left to orjson: msgspec does not check the UTF-8 of strings it skips,
    which orjson rejects as invalid JSON.
    """
    dec = _DECODERS[rtype].decode

    def decode_line(line: bytes) -> Line | None:
        if not line.isascii():
            return None
        try:
            rec = dec(line)
        except (msgspec.DecodeError, RecursionError):
            # ValidationError (a DecodeError): an element of an unexpected type;
            # RecursionError: nesting deeper than msgspec follows (orjson's limit decides)
            return None
        return rec if rec.resourceType == rtype else None

    return decode_line
