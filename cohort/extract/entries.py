"""A Dosage's doseAndRate entries: the one dose they give, in one form or in several."""

from __future__ import annotations

from typing import Any

from cohort.extract.elements import quantity_of
from cohort.extract.limits import none_to
from cohort.model import Quantity

__all__ = ["Form", "amount", "forms_of", "needed"]

# one entry's dose: its least, its most (None: no range) and whether it may be any more (a
# doseRange's low alone)
Form = tuple[Quantity, Quantity | None, bool]


def amount(q: Any) -> Quantity | None:
    """A dose Quantity, None when it does not read or is below nothing (no dose is)."""
    value = quantity_of(q)
    return value if value is not None and value.value >= 0 else None


def forms_of(doses: Any) -> list[Form]:
    """The dose of each doseAndRate entry whose dose reads, its doseQuantity entries first.
    FHIR R4 types the entries (ordered, calculated, as-administered: dose-rate-type) but each
    is the one dose the line gives, in another form (Epic's "ordered" 1 mg/kg beside its
    "calculated" 60 mg): the criteria read every form they can convert (criteria.dose_forms);
    the type does not choose. An entry whose dose does not read (a doseQuantity without a
    value, a doseRange with neither end) gives none; a rate alone gives none either."""
    if not isinstance(doses, list):
        return []
    quantities: list[Form] = []
    ranges: list[Form] = []
    for dr in doses:
        if not isinstance(dr, dict):
            continue
        if (q := amount(dr.get("doseQuantity"))) is not None:
            quantities.append((q, None, False))
        elif (form := _range(dr.get("doseRange"))) is not None:
            ranges.append(form)
    return quantities + ranges


def needed(form: Form, least: bool) -> Form:
    """`form` taken as needed: none up to what it gives, as a doseRange's high alone (a dose
    that is only a least, the line's `least`, stays one: no most)."""
    low, high, above = form
    high = high if high is not None or least else low
    return none_to(high or low), high, above


def _range(rng: Any) -> Form | None:
    """A doseRange's low and high, and whether its low is only a least (no high: the dose may
    be any more); None when it is none or reads as neither end. An end left out or that is no
    Quantity may be anything on its side: without a low, the least is none (0 in the high's
    unit)."""
    if not isinstance(rng, dict):
        return None
    low, high = amount(rng.get("low")), amount(rng.get("high"))
    if high is None:
        return (low, None, True) if low is not None else None
    if low is None:
        low = Quantity(0.0, high.unit, high.code, "", high.system)
    return low, high, False
