"""A record the extractor does not read (dropped by the reading rules, or failing to read),
kept with what it would read as: the criteria reading its concepts list it as ignored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cohort.extract.unreadable import own_codes
from cohort.model import (
    ConditionFact,
    DroppedFact,
    ExposureFact,
    ImmunizationFact,
    ObservationFact,
    Patient,
    PatientFacts,
    ProcedureFact,
)

Fact = ConditionFact | ObservationFact | ExposureFact | ImmunizationFact | ProcedureFact


def dropped(
    read: Callable[[PatientFacts, str, str, dict[str, Any]], None],
    rtype: str,
    ref: str,
    res: dict[str, Any],
    why: str | Exception,
) -> DroppedFact:
    """`res` (`ref`), dropped by the reading rules because `why`, or failing to read (`why`
    the error), with the fact `read` (the extractor's reading of one record) makes of it in a
    scratch chart: its date and value as a kept record's (a medication record's drug through
    its Medication); none when it makes none (a code no concept maps, a malformed element),
    the record's own code element then naming it."""
    if isinstance(why, Exception):
        return _named(ref, f"unreadable: {type(why).__name__}", res, by_rule=False)
    scratch = PatientFacts(patient=Patient(id=""))
    try:
        read(scratch, rtype, ref, res)
    except (AttributeError, TypeError, ValueError):
        return _named(ref, why, res)  # (an entered-in-error record may hold anything)
    facts: tuple[Fact, ...] = (
        *scratch.conditions,
        *scratch.observations,
        *scratch.exposures,
        *scratch.immunizations,
        *scratch.procedures,
    )
    fact = next((f for f in facts if f.ref == ref), None)
    if fact is None:
        return _named(ref, why, res)
    return DroppedFact(ref, why, fact.codes, fact.text, fact)


def _named(ref: str, why: str, res: dict[str, Any], by_rule: bool = True) -> DroppedFact:
    """A dropped record that reads as no fact, with the codes of its own code element."""
    codes, text = own_codes(res)
    return DroppedFact(ref, why, codes, text, by_rule=by_rule)
