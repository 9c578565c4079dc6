"""Structural checks of incoming FHIR R4 resources: fast hand-written checks or full models."""

# Why `fast` is the default. Measured on the first 50 Synthea v2.4 transaction bundles of the public
# `R4_SYNTHEA_617_bundles.tar.xz` (14,836 resources, 9,489 of the types the pipeline reads), one
# core of the 2-vCPU dev container, Python 3.11, best of 3, parsing excluded:
#   all types:       fast ~117,000 resources/s   full (fhir.resources R4B) ~3,800 resources/s
#   pipeline types:  fast  ~84,000 resources/s   full                     ~7,500 resources/s
# `full` is 11-30x slower (a 1M-resource export: ~4 min instead of ~10 s on validation alone) and
# rejected nothing more on that sample; the pipeline reads only the elements `fast` checks.
# `full` stays available for auditing a new data source.
# Reasons name element paths only, never values: values may be PHI.

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cohort.source.r4_types import RESOURCE_TYPES

__all__ = ["MODES", "RESOURCE_TYPES", "check", "valid_codeable_concept"]

MODES = ("fast", "full", "none")

# FHIR R4 (4.0.1) primitive regexes, copied from the specification's datatypes page.
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TZ = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_DATE_RE = re.compile(rf"{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?")
_DATETIME_RE = re.compile(
    rf"{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T{_TIME}{_TZ})?)?)?"
)
_INSTANT_RE = re.compile(rf"{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T{_TIME}{_TZ}")
_ID_RE = re.compile(r"[A-Za-z0-9\-\.]{1,64}")
_CODE_RE = re.compile(r"[^\s]+( [^\s]+)*")


class _Invalid(Exception):
    """Raised inside the checkers; carries a PHI-free reason (element path + problem).

    The path is built only on failure, while the exception unwinds: valid data (nearly all of
    it) never pays for path strings (bench/RESULTS.md: fast validation 10.8 -> ~4 us/resource).
    """

    def __init__(self, problem: str, path: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


# A checker takes a value and raises _Invalid (path relative to that value) on a problem.
_Checker = Callable[[Any], None]


def _string(v: Any) -> None:
    if not isinstance(v, str):
        raise _Invalid("not a string")


_GOOD_CODES: set[str] = set()  # codes repeat endlessly; remember valid ones (bounded)


def _code(v: Any) -> None:
    if not isinstance(v, str):
        raise _Invalid("not a valid code")
    if v in _GOOD_CODES:
        return
    if not _CODE_RE.fullmatch(v):
        raise _Invalid("not a valid code")
    if len(_GOOD_CODES) < 100_000:
        _GOOD_CODES.add(v)


def _boolean(v: Any) -> None:
    if not isinstance(v, bool):
        raise _Invalid("not a boolean")


def _integer(v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Invalid("not an integer")


def _decimal(v: Any) -> None:
    # bool is an int subclass in Python but never a FHIR decimal
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Invalid("not a number")


def _date(v: Any) -> None:
    if not isinstance(v, str) or not _DATE_RE.fullmatch(v):
        raise _Invalid("not a valid FHIR date")


def _datetime(v: Any) -> None:
    if not isinstance(v, str) or not _DATETIME_RE.fullmatch(v):
        raise _Invalid("not a valid FHIR dateTime")


def _instant(v: Any) -> None:
    if not isinstance(v, str) or not _INSTANT_RE.fullmatch(v):
        raise _Invalid("not a valid FHIR instant")


def _obj(fields: dict[str, _Checker], required: tuple[str, ...] = ()) -> _Checker:
    """A checker for a JSON object whose listed elements have the given checkers."""
    get = fields.get

    def run(v: Any) -> None:
        if not isinstance(v, dict):
            raise _Invalid("not an object")
        for name in required:
            if name not in v:
                raise _Invalid("missing", f".{name}")
        # Walk the object's own keys (fewer than the spec's): the first bad element in document
        # order is the one reported.
        name = ""
        try:
            for name, value in v.items():
                checker = get(name)
                if checker is not None:
                    checker(value)
        except _Invalid as e:
            e.path = f".{name}{e.path}"
            raise

    return run


def _list(item: _Checker) -> _Checker:
    def run(v: Any) -> None:
        if not isinstance(v, list):
            raise _Invalid("not an array")
        x = None
        try:
            for x in v:
                item(x)
        except _Invalid as e:
            i = next(j for j, y in enumerate(v) if y is x)
            e.path = f"[{i}]{e.path}"
            raise

    return run


_coding = _obj({"system": _string, "version": _string, "code": _code, "display": _string,
                "userSelected": _boolean})  # fmt: skip
_cc = _obj({"coding": _list(_coding), "text": _string})
_quantity = _obj(
    {"value": _decimal, "unit": _string, "system": _string, "code": _code, "comparator": _code}
)
_reference = _obj({"reference": _string, "type": _string, "display": _string})
_period = _obj({"start": _datetime, "end": _datetime})
_ratio = _obj({"numerator": _quantity, "denominator": _quantity})
_range = _obj({"low": _quantity, "high": _quantity})
_timing = _obj(
    {
        "event": _list(_datetime),
        "repeat": _obj(
            {
                "boundsPeriod": _period,
                "frequency": _integer,
                "frequencyMax": _integer,
                "period": _decimal,
                "periodMax": _decimal,
                "periodUnit": _code,
            }
        ),  # fmt: skip
        "code": _cc,
    }
)
_dosage = _obj(
    {
        "text": _string,
        "timing": _timing,
        "asNeededBoolean": _boolean,
        "route": _cc,
        "doseAndRate": _list(
            _obj(
                {
                    "doseQuantity": _quantity,
                    "doseRange": _range,
                    "rateQuantity": _quantity,
                    "rateRatio": _ratio,
                }
            )  # fmt: skip
        ),
        "maxDosePerPeriod": _ratio,
    }
)
_obs_value: dict[str, _Checker] = {
    "valueQuantity": _quantity,
    "valueCodeableConcept": _cc,
    "valueString": _string,
    "valueBoolean": _boolean,
    "valueInteger": _integer,
    "valueRange": _range,
    "valueRatio": _ratio,
    "valueDateTime": _datetime,
    "valuePeriod": _period,
}

# Per type: element checkers, required elements, and choice groups of which one must be present.
_Spec = tuple[dict[str, _Checker], tuple[str, ...], tuple[tuple[str, ...], ...]]
_MED = ("medicationCodeableConcept", "medicationReference")

_SPECS: dict[str, _Spec] = {
    "Patient": (
        {
            "active": _boolean,
            "gender": _code,
            "birthDate": _date,
            "deceasedBoolean": _boolean,
            "deceasedDateTime": _datetime,
            "identifier": _list(_obj({"system": _string, "value": _string, "type": _cc})),
            "name": _list(_obj({"family": _string, "given": _list(_string), "text": _string})),
            "telecom": _list(_obj({"system": _code, "value": _string, "use": _code})),
            "address": _list(_obj({"postalCode": _string, "line": _list(_string)})),
        },
        (),
        (),
    ),
    "Condition": (
        {
            "clinicalStatus": _cc,
            "verificationStatus": _cc,
            "code": _cc,
            "subject": _reference,
            "onsetDateTime": _datetime,
            "onsetPeriod": _period,
            "onsetString": _string,
            "abatementDateTime": _datetime,
            "abatementPeriod": _period,
            "recordedDate": _datetime,
        },
        ("subject",),
        (),
    ),
    "Observation": (
        {
            "status": _code,
            "code": _cc,
            "subject": _reference,
            "effectiveDateTime": _datetime,
            "effectivePeriod": _period,
            "effectiveInstant": _instant,
            "issued": _instant,
            **_obs_value,
            "interpretation": _list(_cc),
            "referenceRange": _list(_obj({"low": _quantity, "high": _quantity, "text": _string})),
            "component": _list(_obj({"code": _cc, **_obs_value}, ("code",))),
        },
        ("status", "code"),
        (),
    ),
    "MedicationStatement": (
        {
            "status": _code,
            "medicationCodeableConcept": _cc,
            "medicationReference": _reference,
            "subject": _reference,
            "effectiveDateTime": _datetime,
            "effectivePeriod": _period,
            "dateAsserted": _datetime,
            "dosage": _list(_dosage),
        },
        ("status", "subject"),
        (_MED,),
    ),
    "MedicationRequest": (
        {
            "status": _code,
            "intent": _code,
            "medicationCodeableConcept": _cc,
            "medicationReference": _reference,
            "subject": _reference,
            "authoredOn": _datetime,
            "dosageInstruction": _list(_dosage),
        },
        ("status", "intent", "subject"),
        (_MED,),
    ),
    "MedicationAdministration": (
        {
            "status": _code,
            "medicationCodeableConcept": _cc,
            "medicationReference": _reference,
            "subject": _reference,
            "effectiveDateTime": _datetime,
            "effectivePeriod": _period,
            "dosage": _obj(
                {
                    "text": _string,
                    "route": _cc,
                    "dose": _quantity,
                    "rateQuantity": _quantity,
                    "rateRatio": _ratio,
                }
            ),  # fmt: skip
        },
        ("status", "subject"),
        (
            _MED,
            ("effectiveDateTime", "effectivePeriod"),
        ),
    ),
    "Medication": (
        {
            "code": _cc,
            "status": _code,
            "form": _cc,
            "ingredient": _list(
                _obj(
                    {
                        "itemCodeableConcept": _cc,
                        "itemReference": _reference,
                        "isActive": _boolean,
                        "strength": _ratio,
                    }
                )  # fmt: skip
            ),
        },
        (),
        (),
    ),
    "Immunization": (
        {
            "status": _code,
            "vaccineCode": _cc,
            "patient": _reference,
            "occurrenceDateTime": _datetime,
            "occurrenceString": _string,
            "recorded": _datetime,
        },
        ("status", "vaccineCode", "patient"),
        (("occurrenceDateTime", "occurrenceString"),),
    ),
    "Procedure": (
        {
            "status": _code,
            "code": _cc,
            "subject": _reference,
            "performedDateTime": _datetime,
            "performedPeriod": _period,
            "performedString": _string,
        },
        ("status", "subject"),
        (),
    ),
}


_META = _obj({"versionId": _string, "lastUpdated": _instant})
_RESOURCE_CHECKS = {
    rtype: _obj(fields, required) for rtype, (fields, required, _) in _SPECS.items()
}


def _under(prefix: str, checker: _Checker, value: Any) -> None:
    """`checker(value)`, with `prefix` put in front of the path of any problem."""
    try:
        checker(value)
    except _Invalid as e:
        e.path = prefix + e.path
        raise


def _check_fast(resource: dict[str, Any]) -> None:
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        raise _Invalid("missing or not a string", "resourceType")
    if rtype not in RESOURCE_TYPES:
        raise _Invalid("not a FHIR R4 resource type", "resourceType")
    if "id" in resource:
        rid = resource["id"]
        if not isinstance(rid, str) or not _ID_RE.fullmatch(rid):
            raise _Invalid("not a valid FHIR id", f"{rtype}.id")
    meta = resource.get("meta")
    if meta is not None:
        _under(f"{rtype}.meta", _META, meta)
    checker = _RESOURCE_CHECKS.get(rtype)
    if checker is not None:
        _under(rtype, checker, resource)
        for group in _SPECS[rtype][2]:
            if not any(name in resource for name in group):
                # the choice's base name, e.g. "medication[x]" (names start lowercase, then a type)
                base = re.sub(r"[A-Z].*$", "", group[0])
                raise _Invalid("missing", f"{rtype}.{base}[x]")
    contained = resource.get("contained")
    if contained is not None:
        if not isinstance(contained, list):
            raise _Invalid("not an array", f"{rtype}.contained")
        for i, c in enumerate(contained):
            if not isinstance(c, dict):
                raise _Invalid("not an object", f"{rtype}.contained[{i}]")
            try:
                _check_fast(c)
            except _Invalid as e:
                raise _Invalid(e.problem, f"{rtype}.contained[{i}]/{e.path}") from None


def valid_codeable_concept(v: Any) -> bool:
    """Whether `v` is a well-formed CodeableConcept, as far as the fast checks go."""
    try:
        _cc(v)
    except _Invalid:
        return False
    return True


def _check_full(resource: dict[str, Any]) -> str | None:
    # Imported lazily: loading the pydantic models costs ~1 s and is only needed in this mode.
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return "resourceType: missing or not a string"
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError, AttributeError, ImportError):
        return "resourceType: not a FHIR R4B resource type"
    try:
        model.model_validate(resource)
    except ValidationError as e:
        # Only element locations and error kinds: pydantic messages may echo input values.
        errs = e.errors(include_input=False, include_url=False)
        parts = [
            f"{rtype}.{'.'.join(str(x) for x in err['loc'])}: {err['type']}" for err in errs[:3]
        ]
        more = f" (+{len(errs) - 3} more)" if len(errs) > 3 else ""
        return "; ".join(parts) + more
    except (ValueError, TypeError) as e:
        return f"{rtype}: model validation failed ({type(e).__name__})"
    return None


def check(resource: dict[str, Any], mode: str = "fast") -> str | None:
    """Return a PHI-free reason when `resource` is invalid under `mode`, else None."""
    if mode == "none":
        return None
    if not isinstance(resource, dict):
        return "resource: not a JSON object"
    if mode == "full":
        return _check_full(resource)
    if mode != "fast":
        raise ValueError(f"unknown validation mode {mode!r}; expected one of {MODES}")
    try:
        _check_fast(resource)
    except _Invalid as e:
        return str(e)
    return None
