"""The Patient record as the criteria and the report read it: demographics, death, whether the
record is in use, and the identifying columns."""

from __future__ import annotations

from typing import Any

from cohort.extract.elements import first_code
from cohort.merged import linked
from cohort.model import Patient

__all__ = ["patient_of"]

_MR = ("MR", "MRN")


def patient_of(res: dict[str, Any]) -> Patient:
    names = res.get("name") or []
    name = ""
    for n in names:
        if isinstance(n, dict):
            name = (
                n.get("text")
                or " ".join([*(n.get("given") or []), str(n.get("family", ""))]).strip()
            )
            if name:
                break
    mrn = ""
    for ident in res.get("identifier") or ():
        if isinstance(ident, dict) and first_code(ident.get("type")) in _MR:
            mrn = str(ident.get("value", ""))
    phone = next(
        (str(t.get("value", "")) for t in res.get("telecom") or () if t.get("system") == "phone"),
        "",
    )
    postal = next((str(a.get("postalCode", "")) for a in res.get("address") or () if a), "")
    return Patient(
        id=str(res.get("id", "")),
        birth_date=str(res.get("birthDate", "")),
        sex=str(res.get("gender", "")),
        deceased=res.get("deceasedBoolean") is True or "deceasedDateTime" in res,
        deceased_on=died if isinstance(died := res.get("deceasedDateTime"), str) else "",
        active=res.get("active") is not False,
        replaced_by=_replaced_by(res),
        name=name,
        mrn=mrn,
        phone=phone,
        postal_code=postal,
    )


def _replaced_by(res: dict[str, Any]) -> str:
    """The id the Patient's first link of type `replaced-by` names ("" when none): a chart
    read as a patient of its own only when that one is not in the data (cohort/merged.py)."""
    return next(iter(linked(res, "replaced-by")), "")
