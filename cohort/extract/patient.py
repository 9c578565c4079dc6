"""The Patient record as the criteria and the report read it: demographics, death, whether the
record is in use, and the identifying columns."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from cohort.extract.elements import first_code, parse_days
from cohort.merged import linked
from cohort.model import Patient

__all__ = ["mrn_of", "patient_of"]

_MR = ("MR", "MRN")
# type.text that names a medical record number (many systems send no coding): "MRN", "MR",
# "Medical Record Number", "Medical record no.", "medical record #" (spaces folded, any case)
_MR_TEXT = re.compile(r"mrn?|medical record(?: number| num\.?| no\.?| ?#)?", re.IGNORECASE)


def patient_of(res: dict[str, Any], mrn_systems: Collection[str] = ()) -> Patient:
    """The Patient as the criteria read it. TypeError / ValueError (a record that could not be
    read: the criteria reading the Patient are unknown) when `active` or `deceasedBoolean` is
    no boolean, or `deceasedDateTime` no date: from a server (not validated), or the models of
    `validate = "full"`, which take "false" for false; read as given they said in use, alive.
    `mrn_systems`: the site's `mrn_system` setting (`mrn_of`)."""
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
    mrn = mrn_of(res.get("identifier"), mrn_systems)
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


def mrn_of(identifiers: Any, systems: Collection[str] = ()) -> str:
    """The MRN among a Patient's identifiers ("" when none): one of the site's `systems`
    (`mrn_system`, whatever its type says), else one whose type is coded MR, else one whose
    type.text names a medical record number; at each level an identifier whose `use` is `old`
    (a retired MRN, kept after a merge) only when no other is there; of several alike, the last
    listed (as the coded-MR reading always took). An identifier without a value is none."""
    found = [""] * 6  # (level, retired) in order of preference
    for ident in identifiers if isinstance(identifiers, list) else ():
        if not isinstance(ident, dict) or ident.get("value") in (None, ""):
            continue
        system, kind = ident.get("system"), ident.get("type")
        if isinstance(system, str) and system.strip() in systems:
            level = 0
        elif first_code(kind) in _MR:
            level = 2
        elif isinstance(kind, dict) and _is_mr_text(kind.get("text")):
            level = 4
        else:
            continue
        found[level + (ident.get("use") == "old")] = str(ident["value"])
    return next((v for v in found if v), "")


def _is_mr_text(text: Any) -> bool:
    return isinstance(text, str) and _MR_TEXT.fullmatch(" ".join(text.split())) is not None


def _replaced_by(res: dict[str, Any]) -> str:
    """The id the Patient's first link of type `replaced-by` names ("" when none): a chart
    read as a patient of its own only when that one is not in the data (cohort/merged.py)."""
    return next(iter(linked(res, "replaced-by")), "")
