"""Builders of FHIR R4 resource dicts, run through the real Extractor, Terminology and trial file.

Tests describe a patient as FHIR dicts, so every criterion test also exercises extraction,
reading rules and the terminology. Dates are written relative to AS_OF (`ago(10)` = 10 days
before the as-of date).
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from cohort.criteria.base import Context, Criterion
from cohort.criteria.loading import load_trial
from cohort.criteria.registry import KINDS
from cohort.criteria.trial import Trial
from cohort.evaluate import evaluate, is_screened, make_context
from cohort.extract import Extractor, ReadingRules
from cohort.model import PatientFacts, Result
from cohort.terminology import Terminology

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"
TRIAL_FILE = MAPPINGS / "trials" / "sirius-sle-2.toml"
AS_OF = date(2026, 11, 25)

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
FLOWSHEET = "http://example.org/fhir/uci/flowsheet"
CPT = "http://www.ama-assn.org/go/cpt"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

_ids = itertools.count(1)


@lru_cache(maxsize=2)
def terminology(use_unverified: bool = False) -> Terminology:
    """The shipped mappings; `use_unverified` as a run's `[trial] use_unverified = true` (for
    rules whose only codes are verified=N, e.g. aiha)."""
    return Terminology.load(MAPPINGS, use_unverified=use_unverified)


@lru_cache(maxsize=1)
def rules() -> ReadingRules:
    """The shipped reading rules, naming bare route codes by routes.csv as a run's do."""
    return ReadingRules.load(MAPPINGS / "rules.toml").with_routes(terminology().route_name)


@lru_cache(maxsize=1)
def trial() -> Trial:
    return load_trial(TRIAL_FILE)


def criterion(cid: str) -> Criterion:
    return next(c for c in trial().criteria if c.id == cid)


def ago(days: int) -> str:
    """ISO date `days` before AS_OF (negative: after)."""
    return (AS_OF - timedelta(days=days)).isoformat()


def days_before(days: int) -> date:
    return AS_OF - timedelta(days=days)


def _id(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


# --- datatypes ---------------------------------------------------------------------------------
def cc(
    code: str | None = None,
    system: str | None = None,
    text: str | None = None,
    display: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if code is not None:
        coding: dict[str, Any] = {"code": code}
        if system is not None:
            coding["system"] = system
        if display is not None:
            coding["display"] = display
        out["coding"] = [coding]
    if text is not None:
        out["text"] = text
    return out


def qty(
    value: float,
    unit: str | None = None,
    code: str | None = None,
    comparator: str | None = None,
    ucum: bool = False,
) -> dict[str, Any]:
    """A Quantity; `unit` is the free text, `code` the UCUM code (system set when given)."""
    out: dict[str, Any] = {"value": value}
    if unit is not None:
        out["unit"] = unit
    if code is not None:
        out["code"] = code
        out["system"] = UCUM
    elif ucum and unit is not None:
        out["code"] = unit
        out["system"] = UCUM
    if comparator is not None:
        out["comparator"] = comparator
    return out


# --- resources ---------------------------------------------------------------------------------
def patient(birth_date: str | None = None, pid: str = "p1", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Patient", "id": pid, **extra}
    if birth_date is not None:
        res["birthDate"] = birth_date
    return res


def condition(
    code: str,
    system: str = ICD,
    *,
    onset: str | None = None,
    recorded: str | None = None,
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    abatement: str | None = None,
    text: str | None = None,
    onset_period: str | None = None,
    rid: str | None = None,
    display: str | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid or _id("c"),
        "subject": {"reference": "Patient/p1"},
        "code": cc(code, system, text, display),
    }
    if clinical is not None:
        res["clinicalStatus"] = cc(clinical, CLINICAL)
    if verification is not None:
        res["verificationStatus"] = cc(verification, VERIFICATION)
    if onset is not None:
        res["onsetDateTime"] = onset
    if onset_period is not None:
        res["onsetPeriod"] = {"start": onset_period}
    if recorded is not None:
        res["recordedDate"] = recorded
    if abatement is not None:
        res["abatementDateTime"] = abatement
    return res


def observation(
    code: str,
    when: str | None,
    system: str = LOINC,
    *,
    status: str = "final",
    date_field: str = "effectiveDateTime",
    interpretation: str | None = None,
    ref_low: dict[str, Any] | None = None,
    components: list[dict] | None = None,
    rid: str | None = None,
    **value: Any,
) -> dict[str, Any]:
    """An Observation; pass the value as FHIR keys (valueQuantity=qty(...), valueString=...)."""
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid or _id("o"),
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "code": cc(code, system),
        **value,
    }
    if when is not None:
        if date_field == "effectivePeriod":
            res["effectivePeriod"] = {"start": when}
        else:
            res[date_field] = when
    if interpretation is not None:
        res["interpretation"] = [cc(interpretation, INTERP)]
    if ref_low is not None:
        res["referenceRange"] = [{"low": ref_low}]
    if components is not None:
        res["component"] = components
    return res


def component(code: str, system: str = FLOWSHEET, **value: Any) -> dict[str, Any]:
    return {"code": cc(code, system), **value}


def mg(value: float) -> dict[str, Any]:
    """A dose Quantity in milligrams (UCUM)."""
    return qty(value, "mg", "mg")


def dosage(
    dose: dict[str, Any] | None = None,
    *,
    frequency: int | None = None,
    period: float | None = None,
    period_unit: str = "d",
    timing_code: str | None = None,
    route: str | None = None,
    timing_text: str | None = None,
    dose_range: tuple[dict[str, Any] | None, dict[str, Any] | None] | None = None,
    sequence: int | None = None,
    **repeat: Any,
) -> dict[str, Any]:
    """A Dosage (MedicationStatement.dosage / MedicationRequest.dosageInstruction); `repeat`
    gives further Timing.repeat elements as FHIR names them (`when`, `frequencyMax`,
    `boundsPeriod` ...), `timing_text` a timing code of text only, `dose_range` a doseRange's
    (low, high)."""
    out: dict[str, Any] = {}
    if dose is not None:
        out["doseAndRate"] = [{"doseQuantity": dose}]
    if dose_range is not None:
        low, high = dose_range
        out["doseAndRate"] = [
            {"doseRange": {k: v for k, v in (("low", low), ("high", high)) if v is not None}}
        ]
    timing: dict[str, Any] = {}
    if frequency is not None:
        repeat = {
            "frequency": frequency,
            "period": period or 1,
            "periodUnit": period_unit,
            **repeat,
        }
    elif period is not None:  # a period without a frequency
        repeat = {"period": period, "periodUnit": period_unit, **repeat}
    if repeat:
        timing["repeat"] = repeat
    if timing_code is not None:
        timing["code"] = cc(timing_code, "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation")
    if timing_text is not None:
        timing["code"] = cc(text=timing_text)
    if timing:
        out["timing"] = timing
    if route is not None:
        out["route"] = cc(text=route)
    if sequence is not None:
        out["sequence"] = sequence
    return out


def medication(
    rtype: str = "MedicationStatement",
    code: str | None = None,
    system: str = RXNORM,
    *,
    text: str | None = None,
    display: str | None = None,
    status: str = "active",
    start: str | None = None,
    end: str | None = None,
    when: str | None = None,
    authored: str | None = None,
    dosages: list[dict[str, Any]] | None = None,
    med_ref: str | None = None,
    contained: list[dict[str, Any]] | None = None,
    admin_dose: dict[str, Any] | None = None,
    admin_route: str | None = None,
    rid: str | None = None,
) -> dict[str, Any]:
    """MedicationStatement / MedicationRequest / MedicationAdministration."""
    res: dict[str, Any] = {
        "resourceType": rtype,
        "id": rid or _id("m"),
        "status": status,
        "subject": {"reference": "Patient/p1"},
    }
    if med_ref is not None:
        res["medicationReference"] = {"reference": med_ref}
    else:
        res["medicationCodeableConcept"] = cc(code, system if code else None, text, display)
    if contained is not None:
        res["contained"] = contained
    if start is not None or end is not None:
        res["effectivePeriod"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    if when is not None:
        res["effectiveDateTime"] = when
    if authored is not None:
        res["authoredOn"] = authored
    if dosages is not None:
        res["dosageInstruction" if rtype == "MedicationRequest" else "dosage"] = dosages
    if admin_dose is not None or admin_route is not None:
        d: dict[str, Any] = {}
        if admin_dose is not None:
            d["dose"] = admin_dose
        if admin_route is not None:
            d["route"] = cc(text=admin_route)
        res["dosage"] = d
    return res


def medication_resource(
    code: str | None = None,
    *,
    display: str | None = None,
    text: str | None = None,
    strength_mg: float | None = None,
    ingredient: str | None = None,
    form: str | None = None,
    mid: str = "med1",
) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Medication", "id": mid}
    if code is not None or text is not None:
        res["code"] = cc(code, RXNORM if code else None, text, display)
    if strength_mg is not None or ingredient is not None:
        ing: dict[str, Any] = {}
        if ingredient is not None:
            ing["itemCodeableConcept"] = cc(ingredient, RXNORM)
        if strength_mg is not None:
            ing["strength"] = {
                "numerator": qty(strength_mg, "mg", "mg"),
                "denominator": qty(1, "TAB", "{tbl}"),
            }
        res["ingredient"] = [ing]
    if form is not None:
        res["form"] = cc(text=form)
    return res


def immunization(
    cvx: str, when: str | None, *, status: str = "completed", rid: str | None = None
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Immunization",
        "id": rid or _id("i"),
        "status": status,
        "patient": {"reference": "Patient/p1"},
        "vaccineCode": cc(cvx, CVX),
    }
    if when is not None:
        res["occurrenceDateTime"] = when
    return res


def procedure(
    code: str,
    system: str = SNOMED,
    *,
    when: str | None = None,
    start: str | None = None,
    end: str | None = None,
    status: str = "completed",
    rid: str | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": rid or _id("pr"),
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "code": cc(code, system),
    }
    if when is not None:
        res["performedDateTime"] = when
    if start is not None or end is not None:
        res["performedPeriod"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    return res


# --- running -----------------------------------------------------------------------------------
def facts(
    *resources: dict[str, Any],
    medications: dict[str, dict[str, Any]] | None = None,
    pid: str = "p1",
) -> PatientFacts:
    meds = medications or {}
    return Extractor(rules(), meds.get).facts(pid, list(resources))


def context(
    *resources: dict[str, Any],
    site: dict[str, Any] | None = None,
    medications: dict[str, dict[str, Any]] | None = None,
    as_of: date = AS_OF,
    use_unverified: bool = False,
) -> Context:
    return make_context(
        facts(*resources, medications=medications),
        terminology(use_unverified),
        as_of,
        rules(),
        site,
    )


def run(
    cid: str,
    *resources: dict[str, Any],
    site: dict[str, Any] | None = None,
    medications: dict[str, dict[str, Any]] | None = None,
    as_of: date = AS_OF,
    use_unverified: bool = False,
    params: dict[str, Any] | None = None,
) -> Result:
    """Evaluate one criterion of the real trial file on the given resources; `params` replace
    some of its parameters (an option the shipped file does not set)."""
    crit = criterion(cid)
    if params:
        crit = dataclasses.replace(crit, params={**crit.params, **params})
    ctx = context(
        *resources, site=site, medications=medications, as_of=as_of, use_unverified=use_unverified
    )
    return KINDS[crit.kind].fn(crit, ctx)


def settled(
    cid: str,
    *resources: dict[str, Any],
    as_of: date = AS_OF,
    params: dict[str, Any] | None = None,
) -> Result:
    """`cid`'s result as a run gives it: through `evaluate`, which unties same-day results and
    tries every day of a partially dated one; `params` replace some of its parameters."""
    t = trial()
    if params:
        crit = criterion(cid)
        crit = dataclasses.replace(crit, params={**crit.params, **params})
        t = dataclasses.replace(t, criteria=[crit])
    return next(r for r in evaluate(t, context(*resources, as_of=as_of)) if r.criterion == cid)


def screened(*resources: dict[str, Any]) -> bool:
    return is_screened(trial(), context(*resources))


def status(cid: str, *resources: dict[str, Any], **kw: Any) -> str:
    return str(run(cid, *resources, **kw).status)
