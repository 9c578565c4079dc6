"""What a Dosage says of how much is taken beside its schedule: as needed, and a most per period."""

from __future__ import annotations

from typing import Any

from cohort.extract.elements import quantity_of
from cohort.model import Quantity

__all__ = ["as_needed", "caps_of", "none_to"]

# a unit of time written as a word, its UCUM code (UCUM parses none of these words)
_TIME_WORDS = {
    "second": "s", "seconds": "s", "minute": "min", "minutes": "min", "hour": "h",
    "hours": "h", "hr": "h", "hrs": "h", "day": "d", "days": "d", "week": "wk", "weeks": "wk",
    "month": "mo", "months": "mo", "year": "a", "years": "a",
}  # fmt: skip


def as_needed(d: dict[str, Any]) -> bool:
    """Whether a Dosage line is taken only when needed (PRN): asNeededBoolean true or an
    asNeededCodeableConcept (FHIR R4), asNeeded true or an asNeededFor (R5). A reason given
    as anything (even of the wrong shape) says it is as needed: what the schedule gives is
    then only the most (docs/rules.md), which is never read as more than it was."""
    if d.get("asNeededBoolean") is True or d.get("asNeeded") is True:
        return True
    reason = d.get("asNeededCodeableConcept")
    reasons = d.get("asNeededFor")
    return (reason is not None and reason is not False) or bool(reasons)


def none_to(q: Quantity) -> Quantity:
    """No dose in `q`'s unit: the least of a dose as needed (as of a doseRange's high alone)."""
    return Quantity(0.0, q.unit, q.code, "", q.system)


def caps_of(limit: Any) -> tuple[tuple[Quantity, Quantity], ...]:
    """Dosage.maxDosePerPeriod's Ratios (R4: one, R4B/R5 may give a list) as (numerator,
    denominator), those whose numerator is an amount (not below nothing) and denominator a
    quantity above nothing; whether each is of a unit of time is read with the dose's units
    (criteria.dose). Any that does not read caps nothing."""
    ratios = limit if isinstance(limit, list) else [limit]
    out = []
    for r in ratios:
        if not isinstance(r, dict):
            continue
        num, den = quantity_of(r.get("numerator")), quantity_of(r.get("denominator"))
        if num is not None and den is not None and num.value >= 0 and den.value > 0:
            if not den.code and (code := _TIME_WORDS.get(den.unit.strip().lower())):
                den = Quantity(den.value, den.unit, code)
            out.append((num, den))
    return tuple(out)
