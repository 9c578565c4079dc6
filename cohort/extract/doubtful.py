"""Records whose status (intent, doNotPerform) is sent without a value: their other readings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from cohort.extract.rules import PROCEDURE_STATUS, R4_STATUS, STATUS_NOT_GIVEN, ReadingRules
from cohort.model import (
    MEDICATION_TYPES,
    DoubtFact,
    ExposureFact,
    ImmunizationFact,
    ObservationFact,
    Patient,
    PatientFacts,
    ProcedureFact,
)

__all__ = ["Doubts"]

Add = Callable[[PatientFacts, str, str, dict[str, Any]], None]
Read = ExposureFact | ObservationFact | ImmunizationFact | ProcedureFact
_OPENED = frozenset({*MEDICATION_TYPES, "Procedure"})  # the types a status keeps open


class Doubts:
    """Notes the records `ReadingRules.doubt` names (`PatientFacts.doubtful`, read by
    criteria.doubtful), each read as given by the Extractor, with its reading as open."""

    def __init__(self, rules: ReadingRules) -> None:
        self.rules = rules
        self._open: dict[str, str | None] = {}  # see open_status

    def note(
        self, add: Add, pf: PatientFacts, rtype: str, ref: str, res: dict[str, Any], why: str
    ) -> None:
        """Note `ref`, read by `add` into `pf` as given, whose `why` (status, intent,
        doNotPerform) is not known: with its reading as open when a status of its type keeps a
        record open and that changes its reading (it has no end)."""
        found = _read_as(pf, rtype, ref)
        if found is None:
            return  # (a result whose own code and components map to nothing: read by none)
        ongoing = None
        word = self.open_status(rtype) if why == STATUS_NOT_GIVEN else None
        if word is not None and isinstance(found, ExposureFact | ProcedureFact):
            scratch = PatientFacts(patient=Patient(id=""))
            add(scratch, rtype, ref, {**res, "status": word})
            alt = _read_as(scratch, rtype, ref)
            if isinstance(alt, ExposureFact | ProcedureFact):
                alt = replace(alt, status=found.status)
                ongoing = alt if alt != found else None
        pf.doubtful.append(DoubtFact(ref, why, ongoing))

    def open_status(self, rtype: str) -> str | None:
        """A status of `rtype` that keeps a record without an end open (`[exposure] ongoing`;
        a Procedure's through PROCEDURE_STATUS), if any."""
        if rtype not in self._open:
            ongoing = self.rules.ongoing
            if rtype == "Procedure":
                words = [k for k, v in PROCEDURE_STATUS.items() if v in ongoing]
            else:
                words = [w for w in R4_STATUS.get(rtype, ()) if w in ongoing]
            self._open[rtype] = words[0] if words and rtype in _OPENED else None
        return self._open[rtype]


def _read_as(pf: PatientFacts, rtype: str, ref: str) -> Read | None:
    """The last fact `ref` was read as (an Observation's: its own or a component's), if any."""
    facts: Sequence[Read]
    if rtype == "Observation":
        facts = pf.observations
    elif rtype == "Immunization":
        facts = pf.immunizations
    elif rtype == "Procedure":
        facts = pf.procedures
    else:
        facts = pf.exposures
    part = ref + "#"
    for fact in facts[::-1]:
        if fact.ref == ref or fact.ref.startswith(part):
            return fact
    return None
