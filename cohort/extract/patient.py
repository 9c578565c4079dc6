"""The Patient record as the criteria and the report read it: demographics, death, whether the
record is in use, and the identifying columns."""

from __future__ import annotations

from typing import Any

from cohort.extract.elements import first_code, parse_days
from cohort.merged import linked
from cohort.model import Patient

__all__ = ["patient_of"]

_MR = ("MR", "MRN")


def patient_of(res: dict[str, Any]) -> Patient:
    """The Patient as the criteria read it. TypeError / ValueError (a record that could not be
    read: the criteria reading the Patient are unknown) when `active` or `deceasedBoolean` is
    no boolean, or `deceasedDateTime` no date: from a server (not validated), or the models of
    `validate = "full"`, which take "false" for false; read as given they said in use, alive."""
    for flag in ("active", "deceasedBoolean"):
        if flag in res and not isinstance(res[flag], bool):
            raise TypeError(f"Patient.{flag}: not a boolean")
    died = res.get("deceasedDateTime")
    if "deceasedDateTime" in res and (not isinstance(died, str) or parse_days(died) is None):
        raise ValueError("Patient.deceasedDateTime: not a date")
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
        deceased_on=died if isinstance(died, str) else "",
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
