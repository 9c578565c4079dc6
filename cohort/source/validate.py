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
from typing import Any

from cohort.source.checkers import (
    ID_RE,
    LEAVES,
    SHAPES,
    Checker,
    Invalid,
    array,
    boolean,
    code,
    date,
    datetime,
    decimal,
    instant,
    integer,
    obj,
    one_or_array,
    present,
    string,
)
from cohort.source.precheck import compile_prechecks
from cohort.source.r4_types import RESOURCE_TYPES
from cohort.source.structure import element_name

__all__ = ["MODES", "RESOURCE_TYPES", "check", "valid_codeable_concept"]

MODES = ("fast", "full", "none")

_coding = obj({"system": string, "version": string, "code": code, "display": string,
                "userSelected": boolean})  # fmt: skip
_cc = obj({"coding": array(_coding), "text": string})
_quantity = obj(
    {"value": decimal, "unit": string, "system": string, "code": code, "comparator": code}
)
_reference = obj({"reference": string, "type": string, "display": string})
_period = obj({"start": datetime, "end": datetime})
_ratio = obj({"numerator": _quantity, "denominator": _quantity})
_range = obj({"low": _quantity, "high": _quantity})
_timing = obj(
    {
        "event": array(datetime),
        "repeat": obj(
            {
                "boundsPeriod": _period,
                "frequency": integer,
                "frequencyMax": integer,
                "period": decimal,
                "periodMax": decimal,
                "periodUnit": code,
            }
        ),  # fmt: skip
        "code": _cc,
    }
)
# a result's effectiveTiming: only the dates that date it (obs_dates.timing_date), as for the
# other elements a result is read by; the rest of a Timing is not read for a result
_result_timing = obj({"event": array(datetime), "repeat": obj({"boundsPeriod": _period})})
_dosage = obj(
    {
        "text": string,
        "timing": _timing,
        "asNeededBoolean": boolean,
        "route": _cc,
        "doseAndRate": array(
            obj(
                {
                    "doseQuantity": _quantity,
                    "doseRange": _range,
                    "rateQuantity": _quantity,
                    "rateRatio": _ratio,
                }
            )  # fmt: skip
        ),
        "maxDosePerPeriod": one_or_array(_ratio),  # (R5: a list)
    }
)
_obs_value: dict[str, Checker] = {
    "valueQuantity": _quantity,
    "valueCodeableConcept": _cc,
    "valueString": string,
    "valueBoolean": boolean,
    "valueInteger": integer,
    "valueRange": _range,
    "valueRatio": _ratio,
    "valueDateTime": datetime,
    "valuePeriod": _period,
}

# Per type: element checkers, required elements, and choice groups of which one must be present.
_Spec = tuple[dict[str, Checker], tuple[str, ...], tuple[tuple[str, ...], ...]]
_MED = ("medicationCodeableConcept", "medicationReference")

_SPECS: dict[str, _Spec] = {
    "Patient": (
        {
            "active": boolean,
            "gender": code,
            "birthDate": date,
            "deceasedBoolean": boolean,
            "deceasedDateTime": datetime,
            "identifier": array(obj({"system": string, "value": string, "type": _cc})),
            "name": array(obj({"family": string, "given": array(string), "text": string})),
            "telecom": array(obj({"system": code, "value": string, "use": code})),
            "address": array(obj({"postalCode": string, "line": array(string)})),
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
            "onsetDateTime": datetime,
            "onsetPeriod": _period,
            "onsetString": string,
            "abatementDateTime": datetime,
            "abatementPeriod": _period,
            "recordedDate": datetime,
        },
        ("subject",),
        (),
    ),
    "Observation": (
        {
            "status": code,
            "code": _cc,
            "subject": _reference,
            "effectiveDateTime": datetime,
            "effectivePeriod": _period,
            "effectiveTiming": _result_timing,
            "effectiveInstant": instant,
            "issued": instant,
            **_obs_value,
            "interpretation": array(_cc),
            "referenceRange": array(obj({"low": _quantity, "high": _quantity, "text": string})),
            "component": array(obj({"code": _cc, **_obs_value}, ("code",))),
        },
        ("status", "code"),
        (),
    ),
    "MedicationStatement": (
        {
            "status": code,
            "medicationCodeableConcept": _cc,
            "medicationReference": _reference,
            "subject": _reference,
            "effectiveDateTime": datetime,
            "effectivePeriod": _period,
            "dateAsserted": datetime,
            "dosage": array(_dosage),
        },
        ("status", "subject"),
        (_MED,),
    ),
    "MedicationRequest": (
        {
            "status": code,
            "intent": code,
            "medicationCodeableConcept": _cc,
            "medicationReference": _reference,
            "subject": _reference,
            "authoredOn": datetime,
            "dosageInstruction": array(_dosage),
        },
        ("status", "intent", "subject"),
        (_MED,),
    ),
    "MedicationAdministration": (
        {
            "status": code,
            "medicationCodeableConcept": _cc,
            "medicationReference": _reference,
            "subject": _reference,
            "effectiveDateTime": datetime,
            "effectivePeriod": _period,
            "dosage": obj(
                {
                    "text": string,
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
            "status": code,
            "form": _cc,
            "ingredient": array(
                obj(
                    {
                        "itemCodeableConcept": _cc,
                        "itemReference": _reference,
                        "isActive": boolean,
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
            "status": code,
            "vaccineCode": _cc,
            "patient": _reference,
            "occurrenceDateTime": datetime,
            "occurrenceString": string,
            "recorded": datetime,
        },
        ("status", "vaccineCode", "patient"),
        (("occurrenceDateTime", "occurrenceString"),),
    ),
    "Procedure": (
        {
            "status": code,
            "code": _cc,
            "subject": _reference,
            "performedDateTime": datetime,
            "performedPeriod": _period,
            "performedString": string,
        },
        ("status", "subject"),
        (),
    ),
}


_META = obj({"versionId": string, "lastUpdated": instant})
_RESOURCE_CHECKS = {rtype: obj(fields, required) for rtype, (fields, required, _) in _SPECS.items()}


# resourceType -> true only for a resource `_check_fast` accepts (the fast path of `check`)
_PRECHECKS = compile_prechecks(_SPECS, RESOURCE_TYPES, _META, ID_RE.fullmatch, LEAVES, SHAPES)


def _under(prefix: str, checker: Checker, value: Any) -> None:
    """`checker(value)`, with `prefix` put in front of the path of any problem."""
    try:
        checker(value)
    except Invalid as e:
        e.path = prefix + e.path
        raise


def _check_fast(resource: dict[str, Any]) -> None:
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        raise Invalid("missing or not a string", "resourceType")
    if rtype not in RESOURCE_TYPES:
        raise Invalid("not a FHIR R4 resource type", "resourceType")
    if "id" in resource:
        rid = resource["id"]
        if not isinstance(rid, str) or not ID_RE.fullmatch(rid):
            raise Invalid("not a valid FHIR id", f"{rtype}.id")
    meta = resource.get("meta")
    if meta is not None:
        _under(f"{rtype}.meta", _META, meta)
    checker = _RESOURCE_CHECKS.get(rtype)
    if checker is not None:
        _under(rtype, checker, resource)
        for group in _SPECS[rtype][2]:
            # (the element itself nearly always: `present` reads a `_name` extension too)
            if not any(n in resource for n in group) and not any(
                present(resource, name) for name in group
            ):
                # the choice's base name, e.g. "medication[x]" (names start lowercase, then a type)
                base = re.sub(r"[A-Z].*$", "", group[0])
                raise Invalid("missing", f"{rtype}.{base}[x]")
    contained = resource.get("contained")
    if contained is not None:
        if not isinstance(contained, list):
            raise Invalid("not an array", f"{rtype}.contained")
        for i, c in enumerate(contained):
            if not isinstance(c, dict):
                raise Invalid("not an object", f"{rtype}.contained[{i}]")
            try:
                _check_fast(c)
            except Invalid as e:
                raise Invalid(e.problem, f"{rtype}.contained[{i}]/{e.path}") from None


def valid_codeable_concept(v: Any) -> bool:
    """Whether `v` is a well-formed CodeableConcept, as far as the fast checks go."""
    try:
        _cc(v)
    except Invalid:
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
        # (a key of the data, e.g. one the model forbids, is named only when element-shaped)
        parts = [f"{rtype}.{_loc(err['loc'])}: {err['type']}" for err in errs[:3]]
        more = f" (+{len(errs) - 3} more)" if len(errs) > 3 else ""
        return "; ".join(parts) + more
    except (ValueError, TypeError) as e:
        return f"{rtype}: model validation failed ({type(e).__name__})"
    return None


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(x) if isinstance(x, int) else element_name(x) for x in loc)


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
    rtype = resource.get("resourceType")
    ok = _PRECHECKS.get(rtype) if rtype.__class__ is str else None
    if ok is not None and ok(resource):
        return None
    try:
        _check_fast(resource)
    except Invalid as e:
        return str(e)
    return None
