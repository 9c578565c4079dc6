"""What `--no-phi` outputs may show of an evidence value, a unit and a reason.

Evidence values are often free text as a clinician or a system wrote it: a condition's or a
medication's text, an Observation's `valueString`, a CodeableConcept's text. Free text may quote
a patient ("HCQ per Dr Lee for J. Smith, MRN 123456"), so outputs meant for sharing outside the
care team keep only values that cannot: numbers (with a comparator), ratios and titers, two
ages (`11 or 12`, the `age` criterion's for a partial birth date), true or false, and the
qualitative result words. Anything else is written as `WITHHELD`, also where a
reason quotes it, or one of its names (a text and displays joined by " | "): a whole token run
outside the run's fixed wording (a concept's label).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cohort.model import Candidate, Evidence, Result
from cohort.results import with_recorded

if TYPE_CHECKING:
    from cohort.criteria.base import Criterion
    from cohort.terminology import Terminology

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


def reason_wording(term: Terminology, criteria: Iterable[Criterion]) -> frozenset[str]:
    """The run's fixed wording a reason may name a concept or a record by: every concept's
    label (and name: a concept without a label reads as its name), every ingredient's name as
    the mappings give it (a washout's drug: "tacrolimus" of a record of "Prograf") and each
    string of the criteria's parameters (concept lists, a criterion's own `label`, its words)."""
    names = set(term.labels) | term.concept_names() | term.ingredient_names()
    stack: list[Any] = [c.params for c in criteria]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return frozenset(names | {term.label(n) for n in names})


def _spans(text: str, reason: str) -> list[tuple[int, int]]:
    """Where `text` stands in `reason` as a whole token run: a word character at its own edge
    may not touch another ("mab" is not in "ianalumab"); overlapping ones too ("--" in "---")."""
    before = r"(?<!\w)" if re.match(r"\w", text[0]) else ""
    after = r"(?!\w)" if re.match(r"\w", text[-1]) else ""
    found = re.finditer(f"{before}(?={re.escape(text)}{after})", reason)
    return [(m.start(), m.start() + len(text)) for m in found]


def public_result(r: Result, wording: Collection[str] = ()) -> Result:
    """`r` with every withheld evidence value or unit that its reason quotes replaced there by
    WITHHELD ("prior ianalumab: <medication text>"); its evidence is kept as it was.

    An occurrence inside a longer word, or inside an occurrence of the run's fixed `wording`
    (`reason_wording`: "24-h urine protein" beside a value "urine"), is not the value quoted
    and stays; free text holding a label ("ianalumab per Dr Lee") is withheld whole."""
    if not r.reason:
        return r
    quoted = {
        part
        for e in (*r.evidence, *r.ignored)
        for text, shown in (
            (e.value, shown_value(e.value)),
            (e.unit, shown_unit(e.unit)),
            (e.recorded_unit, shown_unit(e.recorded_unit)),
        )
        if shown is WITHHELD and text
        # a value of several names (a text and displays, joined by " | ") may be quoted by one
        for part in {text, *text.split(" | ")}
        if part and part in r.reason
    }
    if not quoted:
        return r
    reason = r.reason
    # only the wording that holds a quoted text can shield an occurrence of it
    fixed = [
        span
        for w in wording
        if w in reason and any(t in w for t in quoted)
        for span in _spans(w, reason)
    ]
    hidden = sorted(
        (start, end)
        for text in quoted
        for start, end in _spans(text, reason)
        if not any(a <= start and end <= b for a, b in fixed)
    )
    if not hidden:
        return r
    # overlapping or touching occurrences (two values, one holding the other) read as one
    merged: list[list[int]] = []
    for start, end in hidden:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts, at = [], 0
    for start, end in merged:
        parts += [reason[at:start], WITHHELD]
        at = end
    return replace(r, reason="".join(parts) + reason[at:])


def public_candidate(c: Candidate, wording: Collection[str] = ()) -> Candidate:
    """`c` with `public_result` reasons (the same object when none quotes free text)."""
    results = [public_result(r, wording) for r in c.results]
    if all(a is b for a, b in zip(results, c.results, strict=True)):
        return c
    return replace(c, results=results)
