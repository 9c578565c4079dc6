"""What becomes of a record the validator refuses: read anyway when its only problem is a date
the criteria read (`dates_only`), as a server's records are (docs/rules.md "Reading records")."""

from __future__ import annotations

from typing import Any

from cohort.source.validate import check

__all__ = ["dates_only"]

# The date elements the criteria read as dates, per type (periods: start and end), and the
# required choices of them (R4 1..1). A record `check` refuses for these only is read as a
# server's records are (not validated): a date as far as its start spells one (`2026/11/01` as
# 2026), else undated, which the criteria take conservatively (docs/rules.md "Reading records").
# Not the abatement: an unreadable one cannot say the condition is over (the record is refused).
_READ_DATES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "Patient": (("birthDate",), (), ()),
    "Condition": (("onsetDateTime", "recordedDate"), ("onsetPeriod",), ()),
    "Observation": (("effectiveDateTime", "effectiveInstant", "issued"), ("effectivePeriod",), ()),
    "MedicationStatement": (("effectiveDateTime",), ("effectivePeriod",), ()),
    "MedicationRequest": (("authoredOn",), (), ()),
    "MedicationAdministration": (
        ("effectiveDateTime",),
        ("effectivePeriod",),
        ("effectiveDateTime", "effectivePeriod"),
    ),
    "Immunization": (
        ("occurrenceDateTime", "recorded"),
        (),
        ("occurrenceDateTime", "occurrenceString"),
    ),
    "Procedure": (("performedDateTime",), ("performedPeriod",), ()),
}
_INSTANTS = frozenset({"effectiveInstant", "issued"})
_DAY, _INSTANT = "2000-01-01", "2000-01-01T00:00:00Z"


def dates_only(resource: dict[str, Any], mode: str = "fast") -> bool:
    """Whether `resource`, which `check` refused, would pass with each date element the
    criteria read (`_READ_DATES`) a valid date: its only problems are such a date that is no
    FHIR date (a string), or a required one left out. Asked only of refused records."""
    spec = _READ_DATES.get(resource.get("resourceType"))  # type: ignore[arg-type]
    if spec is None:
        return False
    names, periods, required = spec
    fixed = dict(resource)
    for name in names:
        if isinstance(fixed.get(name), str):
            fixed[name] = _INSTANT if name in _INSTANTS else _DAY
    for name in periods:
        period = fixed.get(name)
        if isinstance(period, dict):
            fixed[name] = {k: _DAY if isinstance(v, str) and k in ("start", "end") else v
                           for k, v in period.items()}  # fmt: skip
    if required and not any(name in fixed for name in required):
        fixed[required[0]] = _DAY
    return fixed != resource and check(fixed, mode) is None
