"""What `--no-phi` outputs may show of an evidence value, a unit and a reason.

Evidence values are often free text as a clinician or a system wrote it: a condition's or a
medication's text, an Observation's `valueString`, a CodeableConcept's text. Free text may quote
a patient ("HCQ per Dr Lee for J. Smith, MRN 123456"), so outputs meant for sharing outside the
care team keep only values that cannot: numbers (with a comparator), ratios and titers, two
ages (`11 or 12`, the `age` criterion's for a partial birth date), true or false, and the
qualitative result words. Anything else is written as `WITHHELD`, also where a
reason quotes it.
"""

from __future__ import annotations

import re
from dataclasses import replace

from cohort.model import Candidate, Evidence, Result, with_recorded

WITHHELD = "(text withheld)"
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# 7.2, -3, <5, >=1e+06, 1:160, <1:40; "11 or 12" (years: the two ages a partial birth date gives)
_VALUE = re.compile(rf"(?:<=|>=|<|>)?{_NUMBER}(?::{_NUMBER})?|\d{{1,3}} or \d{{1,3}}")
# a unit as UCUM or a lab writes it (mg/dL, 10*3/uL, {titer}, %, [IU]/L): one short token
_UNIT = re.compile(r"[A-Za-z0-9%/*.^'\[\]{}()_-]{1,24}")
WORDS = frozenset(
    (
        "true", "false", "positive", "negative", "reactive", "non-reactive", "nonreactive",
        "non reactive", "detected", "not detected", "undetected", "indeterminate", "equivocal",
        "borderline", "normal", "abnormal", "high", "low", "deceased", "inactive",
    )
)  # fmt: skip


def shown_value(value: str) -> str:
    """`value` when it cannot quote a patient (a number, a ratio, a result word), else WITHHELD."""
    if not value or _VALUE.fullmatch(value) or value.strip().lower() in WORDS:
        return value
    return WITHHELD


def shown_unit(unit: str) -> str:
    """`unit` when it reads as a unit (one short token), else WITHHELD."""
    return unit if not unit or _UNIT.fullmatch(unit) else WITHHELD


def evidence_cells(e: Evidence) -> list[str]:
    """ref, concept, value, unit, date, note of an evidence.csv row without free text (the
    note's value and unit as recorded too)."""
    note = e.note
    if e.recorded_value:
        note = with_recorded(note, shown_value(e.recorded_value), shown_unit(e.recorded_unit))
    return [e.ref, e.concept, shown_value(e.value), shown_unit(e.unit), e.date, note]


def public_result(r: Result) -> Result:
    """`r` with every withheld evidence value or unit that its reason quotes replaced there by
    WITHHELD ("prior ianalumab: <medication text>"); its evidence is kept as it was."""
    if not r.reason:
        return r
    quoted = {
        text
        for e in (*r.evidence, *r.ignored)
        for text, shown in (
            (e.value, shown_value(e.value)),
            (e.unit, shown_unit(e.unit)),
            (e.recorded_unit, shown_unit(e.recorded_unit)),
        )
        if shown is WITHHELD and text and text in r.reason
    }
    if not quoted:
        return r
    reason = r.reason
    for text in sorted(quoted, key=len, reverse=True):
        reason = reason.replace(text, WITHHELD)
    return replace(r, reason=reason)


def public_candidate(c: Candidate) -> Candidate:
    """`c` with `public_result` reasons (the same object when none quotes free text)."""
    results = [public_result(r) for r in c.results]
    if all(a is b for a, b in zip(results, c.results, strict=True)):
        return c
    return replace(c, results=results)
