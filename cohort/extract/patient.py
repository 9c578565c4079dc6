"""The Patient record as the criteria and the report read it: demographics, death, whether the
record is in use, and the identifying columns."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from datetime import date
from typing import Any

from cohort.extract.elements import first_code, parse_days
from cohort.merged import linked
from cohort.model import Patient
from cohort.source.checkers import present

__all__ = ["mrn_of", "patient_of"]

_MR = ("MR", "MRN")
# type.text that names a medical record number (many systems send no coding): "MRN", "MR",
# "Medical Record Number", "Medical record no.", "medical record #" (spaces folded, any case)
_MR_TEXT = re.compile(r"mrn?|medical record(?: number| num\.?| no\.?| ?#)?", re.IGNORECASE)


def patient_of(
    res: dict[str, Any], mrn_systems: Collection[str] = (), as_of: date | None = None
) -> Patient:
    """The Patient as the criteria read it. TypeError / ValueError (a record that could not be
    read: the criteria reading the Patient are unknown) when `active` or `deceasedBoolean` is
    no boolean, or `deceasedDateTime` no date: from a server (not validated), or the models of
    `validate = "full"`, which take "false" for false; read as given they said in use, alive.
    `mrn_systems`: the site's `mrn_system` setting (`mrn_of`). Name, phone and postal code
    are the patient's current ones (`_current`) as of `as_of` (the run's day; None: any
    period with an end has ended). A deceased[x] given with no value (its `_name` extension
    alone) is `deceased_unknown`: whether or when the patient died is not known."""
    for flag in ("active", "deceasedBoolean"):
        if flag in res and not isinstance(res[flag], bool):
            raise TypeError(f"Patient.{flag}: not a boolean")
    died = res.get("deceasedDateTime")
    if "deceasedDateTime" in res and (not isinstance(died, str) or parse_days(died) is None):
        raise ValueError("Patient.deceasedDateTime: not a date")
    telecom = res.get("telecom")
    telecom = telecom if isinstance(telecom, list) else []
    phones = [t for t in telecom if isinstance(t, dict) and t.get("system") == "phone"]
    deceased = res.get("deceasedBoolean") is True or "deceasedDateTime" in res
    return Patient(
        id=str(res.get("id", "")),
        birth_date=str(res.get("birthDate", "")),
        sex=str(res.get("gender", "")),
        deceased=deceased,
        deceased_on=died if isinstance(died, str) else "",
        # deceased[x] sent as its `_name` extension alone (e.g. a data-absent-reason)
        deceased_unknown=not deceased
        and "deceasedBoolean" not in res
        and (present(res, "deceasedBoolean") or present(res, "deceasedDateTime")),
        active=res.get("active") is not False,
        replaced_by=_replaced_by(res),
        name=_current(res.get("name"), _NAME_USE, as_of, _name_text),
        mrn=mrn_of(res.get("identifier"), mrn_systems),
        phone=_current(phones, _PHONE_USE, as_of, lambda t: str(t.get("value") or "")),
        postal_code=_current(
            res.get("address"), _ADDRESS_USE, as_of, lambda a: str(a.get("postalCode") or "")
        ),
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


# Preference by `use` (lower first; a use not listed: 1). `old` is no current entry at all.
_NAME_USE = {"official": 0, "usual": 0, "maiden": 2, "nickname": 3, "anonymous": 3}
_PHONE_USE = {"home": 0, "mobile": 0, "work": 0, "temp": 2}
_ADDRESS_USE = {"home": 0, "work": 2, "temp": 2, "billing": 3}
_NO_RANK = 1 << 31  # (ContactPoint.rank is a positive int)


def _current(
    entries: Any, uses: dict[str, int], as_of: date | None, value: Callable[[Any], str]
) -> str:
    """The value of the patient's current entry among HumanNames, ContactPoints or Addresses
    ("" when none gives one). The coordinator's CSV showed a name and a ZIP the patient no
    longer had: the first listed was read, and US Core's example lists the old ones first.
    Preferred: an entry not retired (`use` `old`, or a `period` that ended before `as_of`),
    then the lower ContactPoint `rank`, then the preferred `use`, then the first listed. A
    retired one is read only when no other gives a value: a name is better than none."""
    if isinstance(entries, list) and len(entries) == 1:
        # (nearly every chart: one name, one phone, one address, read whatever it says)
        return value(entries[0]) if isinstance(entries[0], dict) else ""
    ranked = []
    for i, e in enumerate(entries if isinstance(entries, list) else ()):
        if not isinstance(e, dict):
            continue
        use, rank = e.get("use"), e.get("rank")
        use = use if isinstance(use, str) else ""
        ranked.append(
            (
                use == "old" or _ended(e.get("period"), as_of),
                rank if isinstance(rank, int) and not isinstance(rank, bool) else _NO_RANK,
                uses.get(use, 1),
                i,
                e,
            )
        )
    # (a value is read in that order until one is found, as the first listed was before)
    return next((v for *_, e in sorted(ranked, key=lambda r: r[:4]) if (v := value(e))), "")


def _ended(period: Any, as_of: date | None) -> bool:
    """Whether a Period's end (a partial one: its last day) is before `as_of`; without a day,
    whether it has an end. An end that is no date reads as none."""
    days = parse_days(period.get("end")) if isinstance(period, dict) else None
    return days is not None and (as_of is None or (days[1] or days[0]) < as_of)


def _name_text(n: dict[str, Any]) -> str:
    """A HumanName's text, else its given names and family. A part that is no string is passed
    over: a null given name with its `_given` extension (valid FHIR: the name is not known),
    or, from a server, a part of another type."""
    text = n.get("text")
    if isinstance(text, str) and text:
        return text
    given = n.get("given")
    parts = [given] if isinstance(given, str) else given if isinstance(given, list) else []
    family = n.get("family")
    parts = [p for p in (*parts, family) if isinstance(p, str) and p]
    return " ".join(parts).strip()


def _is_mr_text(text: Any) -> bool:
    return isinstance(text, str) and _MR_TEXT.fullmatch(" ".join(text.split())) is not None


def _replaced_by(res: dict[str, Any]) -> str:
    """The id the Patient's first link of type `replaced-by` names ("" when none): a chart
    read as a patient of its own only when that one is not in the data (cohort/merged.py)."""
    return next(iter(linked(res, "replaced-by")), "")
