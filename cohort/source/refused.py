"""What becomes of a record the validator refuses: read anyway when its only problem is a date
the criteria read (`dates_only`), else stored as a stub (`stub_of`) that names it, so that no
criterion reading its concept passes as if it were not there (docs/rules.md "Reading records")."""

from __future__ import annotations

import re
from typing import Any

import orjson

from cohort.model import PIPELINE_TYPES
from cohort.source.checkers import ID_RE, Invalid
from cohort.source.names import FileNames
from cohort.source.validate import _META, check, valid_codeable_concept

__all__ = [
    "MARK",
    "RESULT_DATES",
    "RESULT_PERIODS",
    "RESULT_TIMINGS",
    "STUB",
    "dates_only",
    "kept_copy",
    "over_readable",
    "stored_for",
    "stub_of",
    "stub_why",
]

# The date elements the criteria read as dates, per type (periods: start and end), and the
# required choices of them (R4 1..1). A record `check` refuses for these only is read as a
# server's records are (not validated): a date as far as its start spells one (`2026/11/01` as
# 2026), else undated, which the criteria take conservatively (docs/rules.md "Reading records").
# Not the abatement: an unreadable one cannot say the condition is over (the record is refused).
_READ_DATES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "Patient": (("birthDate",), (), ()),
    "Condition": (("onsetDateTime", "recordedDate"), ("onsetPeriod",), ()),
    "Observation": (("effectiveDateTime", "effectiveInstant", "issued"), ("effectivePeriod",), ()),
    "MedicationStatement": (("effectiveDateTime", "dateAsserted"), ("effectivePeriod",), ()),
    "MedicationRequest": (("authoredOn",), (), ()),
    "MedicationAdministration": (
        ("effectiveDateTime",),
        ("effectivePeriod",),
        ("effectiveDateTime", "effectivePeriod"),
    ),
    "Immunization": (
        ("occurrenceDateTime", "recorded"),
        (),
        ("occurrenceDateTime", "occurrenceString"),
    ),
    "Procedure": (("performedDateTime",), ("performedPeriod",), ()),
}
# Timings whose dates the criteria read: each `event` and `repeat.boundsPeriod` (start and end)
_READ_TIMINGS: dict[str, tuple[str, ...]] = {"Observation": ("effectiveTiming",)}
# a result's date elements (the Period read by its start, the Timing by its earliest event):
# also what extract.unreadable asks of a result whose date does not read, and what
# extract.obs_dates.obs_when reads
RESULT_DATES, RESULT_PERIODS, _ = _READ_DATES["Observation"]
RESULT_TIMINGS = _READ_TIMINGS["Observation"]
_INSTANTS = frozenset({"effectiveInstant", "issued"})
_DAY, _INSTANT = "2000-01-01", "2000-01-01T00:00:00Z"


def dates_only(resource: dict[str, Any], mode: str = "fast") -> bool:
    """Whether `resource`, which `check` refused, would pass with each date element the
    criteria read (`_READ_DATES`, `_READ_TIMINGS`) a valid date: its only problems are such a
    date that is no FHIR date (a string), or a required one left out. Asked only of refused
    records."""
    spec = _READ_DATES.get(resource.get("resourceType"))  # type: ignore[arg-type]
    if spec is None:
        return False
    names, periods, required = spec
    fixed = dict(resource)
    for name in names:
        if isinstance(fixed.get(name), str):
            fixed[name] = _INSTANT if name in _INSTANTS else _DAY
    for name in periods:
        period = fixed.get(name)
        if isinstance(period, dict):
            fixed[name] = _fixed_period(period)
    for name in _READ_TIMINGS.get(resource["resourceType"], ()):
        timing = fixed.get(name)
        if isinstance(timing, dict):
            fixed[name] = _fixed_timing(timing)
    if required and not any(name in fixed for name in required):
        fixed[required[0]] = _DAY
    return fixed != resource and check(fixed, mode) is None


def _fixed_period(period: dict[str, Any]) -> dict[str, Any]:
    """`period` with a valid date for each string start and end."""
    return {k: _DAY if isinstance(v, str) and k in ("start", "end") else v
            for k, v in period.items()}  # fmt: skip


def _fixed_timing(timing: dict[str, Any]) -> dict[str, Any]:
    """`timing` with a valid date for each string event and its bounds' string start and end."""
    fixed = dict(timing)
    events = fixed.get("event")
    if isinstance(events, list):
        fixed["event"] = [_DAY if isinstance(e, str) else e for e in events]
    repeat = fixed.get("repeat")
    if isinstance(repeat, dict) and isinstance(repeat.get("boundsPeriod"), dict):
        fixed["repeat"] = {**repeat, "boundsPeriod": _fixed_period(repeat["boundsPeriod"])}
    return fixed


# The key of a stub's note (why and where the record was refused): no FHIR element is named so
# (a `_` key holds a primitive element's extension, and there is no element `cohortRejected`).
MARK = "_cohortRejected"
# what a stub keeps: the elements naming the patient, the record's codes (a Medication's
# ingredients' too), what the reading rules drop a record for (status, verificationStatus,
# intent, doNotPerform) and a Patient's links (the merges it states: cohort/merged.py), when
# well-formed; its code elements (and verificationStatus) as far as the extractor reads them
# (`_as_read`)
_CODES = ("code", "vaccineCode", "medicationCodeableConcept", "verificationStatus")
_REFS = ("subject", "patient", "medicationReference")
_WORDS = ("status", "intent")


def stub_of(res: dict[str, Any], origin: str, reason: str) -> dict[str, Any] | None:
    """A stub of the refused record `res` to store in its place: its type, id, version, patient,
    codes and statuses as far as they read, and `MARK` {reason, origin}; None when it has no id
    to be stored under or is of a type the criteria do not read."""
    rtype, rid = res.get("resourceType"), res.get("id")
    if rtype not in PIPELINE_TYPES or not isinstance(rid, str) or not ID_RE.fullmatch(rid):
        return None
    stub: dict[str, Any] = {"resourceType": rtype, "id": rid}
    meta = res.get("meta")
    try:
        _META(meta)
    except Invalid:
        meta = None  # (none, or malformed: stored as a record without a version)
    if isinstance(meta, dict):
        stub["meta"] = {k: meta[k] for k in ("versionId", "lastUpdated") if k in meta}
    for key in _REFS:
        ref = res.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            stub[key] = {"reference": ref["reference"]}
    for key in _CODES:
        if key in res and (cc := _as_read(res[key])) is not None:
            stub[key] = cc
    for key in _WORDS:
        if isinstance(res.get(key), str):
            stub[key] = res[key]
    if res.get("doNotPerform") is True:
        stub["doNotPerform"] = True
    links = res.get("link") if rtype == "Patient" else None  # the merges it states
    kept = [
        {"other": {"reference": ln["other"]["reference"]}, "type": ln["type"]}
        for ln in (links if isinstance(links, list) else ())
        if isinstance(ln, dict) and isinstance(ln.get("type"), str)
        and isinstance(ln.get("other"), dict) and isinstance(ln["other"].get("reference"), str)
    ]  # fmt: skip
    if kept:
        stub["link"] = kept
    parts = res.get("component")
    if isinstance(parts, list):
        coded = [_as_read(p.get("code")) for p in parts if isinstance(p, dict)]
        if any(coded):
            stub["component"] = [{"code": c} for c in coded if c is not None]
    items = res.get("ingredient")  # a Medication's: its drug may be coded there only
    if rtype == "Medication" and isinstance(items, list):
        drugs = [_as_read(i.get("itemCodeableConcept")) for i in items if isinstance(i, dict)]
        if any(drugs):
            stub["ingredient"] = [{"itemCodeableConcept": c} for c in drugs if c is not None]
    held = res.get("contained")  # a Medication it names by "#id": its code
    meds = [
        {"resourceType": "Medication", "id": m["id"], "code": code}
        for m in (held if isinstance(held, list) else ())
        if isinstance(m, dict) and m.get("resourceType") == "Medication"
        and isinstance(m.get("id"), str) and (code := _as_read(m.get("code"))) is not None
    ]  # fmt: skip
    if meds:
        stub["contained"] = meds
    stub[MARK] = {"reason": reason, "origin": origin}
    return stub


def _as_read(cc: Any) -> dict[str, Any] | None:
    """A code or status element of a refused record as the extractor reads it: as it is when
    well-formed, else rebuilt of what reads (`elements.readable_cc`: a display that is a number
    still names the code, a refuted verificationStatus still drops the record)."""
    if valid_codeable_concept(cc):
        return cc
    from cohort.extract.elements import readable_cc  # (refused records only; no import cycle)

    return readable_cc(cc)


def stored_for(
    res: dict[str, Any], origin: str, reason: str
) -> list[tuple[dict[str, Any], str, None]]:
    """What the reader yields for a refused record: its stub (none without an id), stored in
    its place, as (resource, origin, raw text) items."""
    stub = stub_of(res, origin, reason)
    return [] if stub is None else [(stub, origin, None)]


# bytes every stored stub holds (a record that merely quotes them is no stub: `over_readable`)
STUB = MARK.encode()
# what a stub stored over a readable copy of its record takes from it when it lacks them: the
# elements naming what the record is and whose (not its statuses: the stub's are the newer)
_NAMING = (*_CODES[:-1], *_REFS)


def over_readable(stub_text: bytes, stored: bytes) -> dict[str, Any] | None:
    """The stub `stub_text` to store in place of `stored`, a copy of the same record (an older
    version, or one of another file or night where versions do not decide): with the readable
    copy `stored` is (or, a stub, keeps) under MARK "kept", which the extractor reads as the
    record, and the naming elements it lacks taken from that copy; None when there is none.

    A later copy that cannot be read so never erases the readable one: an exclusion that copy
    fails still fails, and a criterion it would pass is unknown (criteria.unreadable). A
    readable copy read after the stub replaces it as any newer record does."""
    try:
        stub, old = orjson.loads(stub_text), orjson.loads(stored)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(stub, dict) or not isinstance(stub.get(MARK), dict):
        return None
    kept = (kept_copy(old) if MARK in old else old) if isinstance(old, dict) else None
    if kept is None:
        return None
    for key in _NAMING:
        if key not in stub and key in kept:
            stub[key] = kept[key]
    stub[MARK] = {**stub[MARK], "kept": kept}
    return stub


def kept_copy(stub: dict[str, Any]) -> dict[str, Any] | None:
    """The readable copy of its record a stored stub keeps (`over_readable`), if any."""
    mark = stub.get(MARK)
    kept = mark.get("kept") if isinstance(mark, dict) else None
    return kept if isinstance(kept, dict) and MARK not in kept else None


# A validator's reason as `validate` and `_check_full` write them: element paths (element-shaped
# keys only) and a problem of their words; an origin as the reader writes it (no spaces).
_PATH = (
    r"[A-Za-z?][A-Za-z0-9?]*"
    r"(?:\.[A-Za-z?][A-Za-z0-9?]*|\.\d+|\[\d+\]|\[x\]|/[A-Za-z][A-Za-z0-9?]*)*"
)
_PROBLEM = (
    r"(?:missing|not an? (?:string|boolean|integer|number|object|array)|not a valid "
    r"(?:code|FHIR (?:date|dateTime|instant))|[a-z]+(?:_[a-z]+)*|nested deeper than \d+ levels"
    r"|model validation failed \([A-Za-z]+\))"
)
_REASON = re.compile(rf"{_PATH}: {_PROBLEM}(?:; {_PATH}: {_PROBLEM})*(?: \(\+\d+ more\))?")
_ORIGIN = re.compile(r"[^\s\x00-\x1f\x7f]{1,300}")


def stub_why(mark: Any) -> str:
    """ "<origin>: <reason>" of a stub's `MARK`, each shown only when shaped as cohort writes
    it (a record of the input carrying the key quotes nothing of it)."""
    if not isinstance(mark, dict):
        return ""
    reason, origin = mark.get("reason"), mark.get("origin")
    reason = reason if isinstance(reason, str) and _REASON.fullmatch(reason) else ""
    origin = origin if isinstance(origin, str) and _ORIGIN.fullmatch(origin) else ""
    # (quoted in candidates.csv and evidence.csv, --no-phi ones too: a file named after its
    # patient is named by its pseudonym, as in run.json)
    origin = FileNames().show(origin) if origin else ""
    return ": ".join(x for x in (origin, reason) if x)
