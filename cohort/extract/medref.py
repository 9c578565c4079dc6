"""A medication record's Medication, by reference, and the drug the record names when that
Medication does not name it (docs/rules.md "Reading records").

A record whose `medicationReference` points to a Medication that is not in the data (another
export's, one a server did not return, a contained one left out) named no drug, silently: a
rituximab order then passed `washout_b_cell_depletion`. Its reference's `display` is the EHR's
name of the drug ("riTUXimab (RITUXAN) 10 mg/mL injection"), matched by the mappings' name rows
as any record's text is. A record left naming no drug at all is kept as `PatientFacts.unnamed`:
a medication criterion it could change is unknown (criteria.unnamed), and the run counts such
records (report.medgaps)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cohort.model import PatientFacts, UnreadableFact
from cohort.store import reference_id

__all__ = ["name_from_reference", "resolve_medication"]

_MISSING = "its Medication is not in the data"


def resolve_medication(
    res: dict[str, Any], lookup: Callable[[str], dict[str, Any] | None]
) -> dict[str, Any] | None:
    """The Medication `res` references: a contained one (`#id`), else `lookup` by id."""
    ref = (res.get("medicationReference") or {}).get("reference", "")
    if not ref:
        return None
    if ref.startswith("#"):
        for c in res.get("contained") or ():
            if isinstance(c, dict) and c.get("id") == ref[1:]:
                return c
        return None
    mid = reference_id(ref, "Medication")
    return lookup(mid) if mid is not None else None


def name_from_reference(
    pf: PatientFacts, ref: str, res: dict[str, Any], med: dict[str, Any] | None, dropped: str
) -> str:
    """The drug's name for a record `ref` that references a Medication and names none through
    it: `med` not found (None), `dropped` by the reading rules (why), or naming nothing itself.

    The reference's display, except for a dropped Medication (entered in error: a display
    rendered from it is not taken as the drug's name either). A record whose Medication is not
    in the data is noted (`unresolved`), and one left with no name (`unnamed`)."""
    if med is None:
        pf.unresolved.append(ref)
    elif dropped:
        pf.unnamed.append(UnreadableFact(ref, (), "", f"its Medication is dropped ({dropped})"))
        return ""
    element = res.get("medicationReference")
    display = element.get("display") if isinstance(element, dict) else None
    if isinstance(display, str) and display.strip():
        return display
    why = _MISSING if med is None else "its Medication names none"
    pf.unnamed.append(UnreadableFact(ref, (), "", f"{why}, and its reference has no display"))
    return ""
