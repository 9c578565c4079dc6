"""Read one FHIR element into model values: dates, references, codings, quantities (pure)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import orjson

from cohort.codesystems import system_key
from cohort.model import Code, ObsValue, Quantity
from cohort.source.validate import valid_codeable_concept

__all__ = [
    "CodeElements",
    "Coded",
    "DayRange",
    "codes_of",
    "clinical_status",
    "condition_onset",
    "condition_onset_days",
    "R4_CLINICAL_STATUS",
    "R4_VERIFICATION_STATUS",
    "exposure_start",
    "exposure_start_days",
    "first_code",
    "obs_value",
    "parse_date",
    "parse_days",
    "quantity_of",
    "readable_cc",
    "text_of",
    "verification_status",
]

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
# A date's first day, and its last day when it is partial (YYYY or YYYY-MM: the last day it can
# stand for) or None when it names one day: most dates do, and None costs them nothing.
DayRange = tuple[date, date | None]
_DAYS: dict[str, date | None] = {}  # parse_date by the first 10 characters (all it reads)
_RANGES: dict[str, DayRange | None] = {}  # parse_days, likewise
_UNREAD: Any = object()  # not in _RANGES (None there is a date that is no date)


def _read_days(head: str) -> DayRange | None:
    m = _DATE.match(head)
    if not m:
        return None
    try:
        y = int(m[1])
        if m[3]:
            return date(y, int(m[2]), int(m[3])), None
        if m[2]:
            mo = int(m[2])
            return date(y, mo, 1), date(y, mo, calendar.monthrange(y, mo)[1])
        return date(y, 1, 1), date(y, 12, 31)
    except ValueError:
        return None


def parse_date(value: Any) -> date | None:
    """FHIR date/dateTime/instant -> date; partial dates take the first day; junk -> None.

    The first day is what ordering and `last_seen` use; criteria that decide on a date read
    `parse_days`, which also gives a partial date's last day."""
    if not isinstance(value, str):
        return None
    head = value[:10]
    if head in _DAYS:
        return _DAYS[head]
    days = _read_days(head)
    day = days[0] if days else None
    if len(_DAYS) < 100_000:
        _DAYS[head] = day
    return day


def parse_days(value: Any) -> DayRange | None:
    """FHIR date/dateTime/instant -> (first day, last day if partial else None); junk -> None."""
    if not isinstance(value, str):
        return None
    head = value[:10]
    days = _RANGES.get(head, _UNREAD)
    if days is not _UNREAD:
        return days
    days = _read_days(head)
    if len(_RANGES) < 100_000:
        _RANGES[head] = days
    return days


def _codings(cc: dict[str, Any]) -> list[Any]:
    """CodeableConcept.coding when it is an array (anything else is for validation to name)."""
    codings = cc.get("coding")
    return codings if isinstance(codings, list) else []


def _text(v: Any) -> str:
    """A text element as text; null, or an object or array where text belongs, reads as "".

    Records the triage summarises are read before validation, and str() of an array nested
    ~1000 deep (orjson parses 1024 levels) recurses past Python's limit (found by fuzzing).
    Such an element is invalid anyway: the record is kept, and validation names it.
    """
    return v if v.__class__ is str else "" if v is None or isinstance(v, dict | list) else str(v)


def codes_of(cc: Any) -> tuple[Code, ...]:
    if not isinstance(cc, dict):
        return ()
    out = []
    for c in _codings(cc):
        if isinstance(c, dict) and c.get("code") is not None:
            system, code, display = c.get("system", ""), c["code"], c.get("display", "")
            # (strings, nearly always, without a call: this runs for every code read)
            out.append(
                Code(
                    system if system.__class__ is str else _text(system),
                    code if code.__class__ is str else _text(code),
                    display if display.__class__ is str else _text(display),
                )
            )
    return tuple(out)


def text_of(cc: Any) -> str:
    """A CodeableConcept's text and its codings' displays, each once ("MMR | MMR" said one
    name twice in evidence): of those alike in any case the first, in their order. Name
    matching reads the text (any case) and sees what it saw with the repeats."""
    if not isinstance(cc, dict):
        return ""
    names = [_text(cc.get("text", ""))] + [
        _text(c.get("display", "")) for c in _codings(cc) if isinstance(c, dict)
    ]
    seen: dict[str, str] = {}
    for n in names:
        if n:
            seen.setdefault(n.casefold(), n)
    return " | ".join(seen.values())


def readable_cc(cc: Any) -> dict[str, Any] | None:
    """A CodeableConcept of strings that `codes_of` and `text_of` read as they read `cc` (a
    display that is a number as its digits, a text that is an object as none); None when `cc`
    is no object. What a refused record's stub keeps of a malformed one (source.refused)."""
    if not isinstance(cc, dict):
        return None
    coding = []
    for c in _codings(cc):
        if isinstance(c, dict):
            item = {"display": _text(c.get("display", ""))}
            if c.get("code") is not None:
                item |= {"system": _text(c.get("system", "")), "code": _text(c["code"])}
            coding.append({k: v for k, v in item.items() if v or k == "code"})
    text = _text(cc.get("text", ""))
    return {"coding": coding, "text": text} if text else {"coding": coding}


def first_code(cc: Any) -> str:
    codes = codes_of(cc)
    return codes[0].code if codes else ""


# A Condition's status elements: their code system's key (`system_key`) and the codes of
# FHIR R4's value set (required binding) for each.
R4_CLINICAL_STATUS = ("active", "recurrence", "relapse", "inactive", "remission", "resolved")
R4_VERIFICATION_STATUS = (
    "unconfirmed",
    "provisional",
    "differential",
    "confirmed",
    "refuted",
    "entered-in-error",
)
_CLINICAL = (
    system_key("http://terminology.hl7.org/CodeSystem/condition-clinical"),
    frozenset(R4_CLINICAL_STATUS),
)
_VERIFICATION = (
    system_key("http://terminology.hl7.org/CodeSystem/condition-ver-status"),
    frozenset(R4_VERIFICATION_STATUS),
)


def _status_code(cc: Any, system: tuple[str, frozenset[str]]) -> str:
    """The code of a status element: its coding of the status's own code system (compared as
    `system_key`s: any scheme, `www.`, trailing slash or case), else the first coding with one
    of that value set's codes, else the first coding's ("" when none). An EHR may put a local
    coding first (audit 2: "A" before condition-clinical "active")."""
    codes = codes_of(cc)
    if len(codes) < 2:  # (nearly always: one coding, or none)
        return codes[0].code if codes else ""
    key, known = system
    for c in codes:
        if c.system and system_key(c.system) == key:
            return c.code
    return next((c.code for c in codes if c.code in known), codes[0].code)


def clinical_status(cc: Any) -> str:
    """Condition.clinicalStatus's code (`_status_code`)."""
    return _status_code(cc, _CLINICAL)


def verification_status(cc: Any) -> str:
    """Condition.verificationStatus's code (`_status_code`): what drop_reason, the triage's
    line handler and the facts read alike."""
    return _status_code(cc, _VERIFICATION)


def quantity_of(q: Any) -> Quantity | None:
    if not isinstance(q, dict):
        return None
    value = q.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    # (texts, nearly always, without a call: this runs for every value and range read)
    unit, code, comparator = q.get("unit", ""), q.get("code", ""), q.get("comparator", "")
    system = q.get("system", "")
    return Quantity(
        float(value),
        unit if unit.__class__ is str else _text(unit),
        code if code.__class__ is str else _text(code),
        comparator if comparator.__class__ is str else _text(comparator),
        system if system.__class__ is str else _text(system),
    )


def obs_value(res: dict[str, Any]) -> ObsValue:
    # (a quantity, most results, as the first field positionally: keywords cost ~1.5x)
    if "valueQuantity" in res:
        return ObsValue(quantity_of(res["valueQuantity"]))
    if isinstance(res.get("valueInteger"), int):
        return ObsValue(Quantity(float(res["valueInteger"])))
    if isinstance(res.get("valueString"), str):
        return ObsValue(string=res["valueString"].strip())
    if "valueCodeableConcept" in res:
        cc = res["valueCodeableConcept"]
        text = _text(cc.get("text", "")) if isinstance(cc, dict) else ""
        return ObsValue(codes=codes_of(cc), text=text)
    if isinstance(res.get("valueRatio"), dict):
        num = quantity_of(res["valueRatio"].get("numerator"))
        den = quantity_of(res["valueRatio"].get("denominator"))
        return ObsValue(ratio=(num, den) if num and den else None)
    if isinstance(res.get("valueBoolean"), bool):
        return ObsValue(boolean=res["valueBoolean"])
    return ObsValue()


def condition_onset_days(res: dict[str, Any]) -> DayRange | None:
    """Condition.onsetDateTime, else onsetPeriod.start (AttributeError if that is no object)."""
    # (`or`, not a loop: onsetPeriod is read only when onsetDateTime is no date, as before)
    return parse_days(res.get("onsetDateTime")) or parse_days(
        (res.get("onsetPeriod") or {}).get("start")
    )


def condition_onset(res: dict[str, Any]) -> date | None:
    """The first day of `condition_onset_days`."""
    days = condition_onset_days(res)
    return days[0] if days else None


def exposure_start_days(res: dict[str, Any]) -> DayRange | None:
    """A medication record's start: effectivePeriod.start, effectiveDateTime or authoredOn
    (AttributeError if effectivePeriod is no object)."""
    return (
        parse_days((res.get("effectivePeriod") or {}).get("start"))
        or parse_days(res.get("effectiveDateTime"))
        or parse_days(res.get("authoredOn"))
    )


def exposure_start(res: dict[str, Any]) -> date | None:
    """The first day of `exposure_start_days`."""
    days = exposure_start_days(res)
    return days[0] if days else None


# (codes, text, maps to a concept, well-formed) of one code element
_MEMO_MAX = 200_000  # distinct code elements remembered (a population has a few thousand)
Coded = tuple[tuple[Code, ...], str, bool, bool]


class CodeElements:
    """What a code element says, memoised by its JSON text: the same elements recur on every
    chart. `relevant(codes, text)` says whether it maps to any concept (None: always)."""

    def __init__(self, relevant: Callable[[tuple[Code, ...], str], bool] | None) -> None:
        self._relevant = relevant
        self._memo: dict[bytes, Coded] = {}
        self._as_read: dict[bytes, tuple[bytes | None, Coded]] = {}  # by the text as read

    def read(self, cc: Any) -> tuple[bytes | None, Coded]:
        """(the memo key, or None when the element cannot be serialised; what it says)."""
        try:
            key = orjson.dumps(cc)
        except (orjson.JSONEncodeError, TypeError):
            key = None
        hit = self._memo.get(key) if key is not None else None
        if hit is None:
            codes, text = codes_of(cc), text_of(cc)
            relevant = self._relevant(codes, text) if self._relevant else True
            hit = (codes, text, relevant, valid_codeable_concept(cc))
            if key is not None and len(self._memo) < _MEMO_MAX:
                self._memo[key] = hit
        return key, hit

    def read_text(self, text: bytes) -> tuple[bytes | None, Coded] | None:
        """`read` of an element given as its JSON text as read (None: not JSON orjson reads)."""
        hit = self._as_read.get(text)
        if hit is None:
            try:
                cc = orjson.loads(text)
            except orjson.JSONDecodeError:
                return None
            hit = self.read(cc)
            if len(self._as_read) < _MEMO_MAX:
                self._as_read[text] = hit
        return hit
