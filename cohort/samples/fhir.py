"""FHIR R4 resource builders for the synthetic sample population (plain dicts, no I/O)."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from typing import Any

Res = dict[str, Any]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
CVX_SYS = "http://hl7.org/fhir/sid/cvx"
LOCAL_UCI = "http://example.org/fhir/uci/flowsheet"

_CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_OBSCAT = "http://terminology.hl7.org/CodeSystem/observation-category"


def coding(system: str, code: str, display: str = "") -> Res:
    c: Res = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def cc(system: str, code: str, display: str = "", text: str = "") -> Res:
    """A CodeableConcept with one coding (and optional text)."""
    out: Res = {"coding": [coding(system, code, display)]}
    if text:
        out["text"] = text
    return out


def qty(value: float, unit: str, code: str | None = "", comparator: str = "") -> Res:
    """A Quantity; code "" = UCUM code equal to the unit, None = unit text only (no system)."""
    q: Res = {"value": value}
    if comparator:
        q["comparator"] = comparator
    q["unit"] = unit
    if code is not None:
        q["system"] = UCUM
        q["code"] = code or unit
    return q


def rxmed(code: str, display: str, text: str = "") -> Res:
    return {"medicationCodeableConcept": cc(RXNORM, code, display, text)}


def vq(value: float, unit: str, code: str | None = "") -> Res:
    return {"valueQuantity": qty(value, unit, code)}


def vs(text: str) -> Res:
    return {"valueString": text}


class Builder:
    """Collects one patient's resources in named slots so scenario mods can replace or drop them."""

    def __init__(self, rng: random.Random, as_of: date, site: str, pid: str) -> None:
        self.rng = rng
        self.as_of = as_of
        self.site = site
        self.pid = pid
        self.patient: Res = {"resourceType": "Patient", "id": pid}
        self.slots: dict[str, list[Res]] = {}
        self.base: set[str] = set()
        self._n = 0

    # -- helpers ---------------------------------------------------------------------------------
    def d(self, offset_days: int) -> str:
        """ISO date `offset_days` from as_of (negative = past)."""
        return (self.as_of + timedelta(days=offset_days)).isoformat()

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def put(self, slot: str | None, res: Res) -> Res:
        """Store `res` under `slot` (replacing it) or under a fresh slot name when None."""
        if slot is None:
            self._n += 1
            slot = f"x{self._n}"
        res["id"] = self.new_id()
        self.slots[slot] = [res]
        self.base.discard(slot)
        return res

    def drop(self, *slots: str) -> None:
        for s in slots:
            self.slots.pop(s, None)
            self.base.discard(s)

    def first(self, slot: str) -> Res | None:
        items = self.slots.get(slot)
        return items[0] if items else None

    def resources(self) -> list[Res]:
        return [self.patient] + [r for items in self.slots.values() for r in items]

    @property
    def subject(self) -> Res:
        return {"reference": f"Patient/{self.pid}"}

    # -- resource makers -------------------------------------------------------------------------
    def condition(
        self,
        slot: str | None,
        code: Res,
        *,
        onset: int | None = None,
        recorded: int | None = None,
        clinical: str | None = "active",
        verification: str | None = "confirmed",
        abatement: int | None = None,
        status: str = "",
    ) -> Res:
        r: Res = {"resourceType": "Condition"}
        if clinical:
            r["clinicalStatus"] = cc(_CLIN, clinical)
        if verification:
            r["verificationStatus"] = cc(_VER, verification)
        r["category"] = [
            cc("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item")
        ]
        r["code"] = code
        r["subject"] = self.subject
        if onset is not None:
            r["onsetDateTime"] = self.d(onset)
        if abatement is not None:
            r["abatementDateTime"] = self.d(abatement)
        if recorded is not None:
            r["recordedDate"] = self.d(recorded)
        if status == "entered-in-error":
            r["verificationStatus"] = cc(_VER, "entered-in-error")
        return self.put(slot, r)

    def obs(
        self,
        slot: str | None,
        code: Res,
        when: int | None,
        value: Res | None,
        *,
        status: str = "final",
        category: str = "laboratory",
        low: Res | None = None,
        components: list[Res] | None = None,
    ) -> Res:
        r: Res = {
            "resourceType": "Observation",
            "status": status,
            "category": [cc(_OBSCAT, category)],
            "code": code,
            "subject": self.subject,
        }
        if when is not None:
            r["effectiveDateTime"] = self.d(when)
            r["issued"] = self.d(when) + "T12:00:00Z"
        if value:
            r.update(value)
        if low is not None:
            r["referenceRange"] = [{"low": low}]
        if components:
            r["component"] = components
        return self.put(slot, r)

    def lab(
        self, slot: str | None, loinc: str, display: str, when: int, value: Res, **kw: Any
    ) -> Res:
        return self.obs(slot, cc(LOINC, loinc, display), when, value, **kw)

    def dosage(
        self, mg: float | None, per_day: int = 1, route: str = "", text: str = ""
    ) -> list[Res]:
        dz: Res = {}
        if text:
            dz["text"] = text
        if mg is not None:
            dz["timing"] = {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}
        if route:
            dz["route"] = {"text": route}
        if mg is not None:
            dz["doseAndRate"] = [{"doseQuantity": qty(mg, "mg")}]
        return [dz] if dz else []

    def med_statement(
        self,
        slot: str | None,
        med: Res,
        *,
        status: str = "active",
        start: int | None = None,
        end: int | None = None,
        dosage: list[Res] | None = None,
    ) -> Res:
        r: Res = {"resourceType": "MedicationStatement", "status": status}
        r.update(med)
        r["subject"] = self.subject
        if start is not None:
            r["effectivePeriod"] = {"start": self.d(start)}
            if end is not None:
                r["effectivePeriod"]["end"] = self.d(end)
            r["dateAsserted"] = self.d(end if end is not None else start)
        if dosage:
            r["dosage"] = dosage
        return self.put(slot, r)

    def med_request(
        self,
        slot: str | None,
        med: Res,
        *,
        authored: int,
        status: str = "active",
        dosage: list[Res] | None = None,
        contained: list[Res] | None = None,
    ) -> Res:
        r: Res = {"resourceType": "MedicationRequest"}
        if contained:
            r["contained"] = contained
        r.update({"status": status, "intent": "order"})
        r.update(med)
        r["subject"] = self.subject
        r["authoredOn"] = self.d(authored)
        if dosage:
            r["dosageInstruction"] = dosage
        return self.put(slot, r)

    def med_admin(
        self,
        slot: str | None,
        med: Res,
        when: int,
        *,
        mg: float | None = None,
        route: str = "",
        status: str = "completed",
    ) -> Res:
        r: Res = {"resourceType": "MedicationAdministration", "status": status}
        r.update(med)
        r["subject"] = self.subject
        r["effectiveDateTime"] = self.d(when)
        dz: Res = {}
        if route:
            dz["route"] = {"text": route}
        if mg is not None:
            dz["dose"] = qty(mg, "mg")
        if dz:
            r["dosage"] = dz
        return self.put(slot, r)

    def medication(
        self, slot: str, code: Res, ingredient: Res | None = None, strength_mg: float | None = None
    ) -> Res:
        r: Res = {"resourceType": "Medication", "code": code}
        if ingredient is not None:
            ing: Res = {"itemCodeableConcept": ingredient, "isActive": True}
            if strength_mg is not None:
                ing["strength"] = {
                    "numerator": qty(strength_mg, "mg"),
                    "denominator": qty(1, "{tbl}"),
                }
            r["ingredient"] = [ing]
        return self.put(slot, r)

    def immunization(self, slot: str | None, cvx: str, display: str, when: int) -> Res:
        r: Res = {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": cc(CVX_SYS, cvx, display),
            "patient": self.subject,
            "occurrenceDateTime": self.d(when),
        }
        return self.put(slot, r)

    def procedure(self, slot: str | None, code: Res, when: int) -> Res:
        r: Res = {
            "resourceType": "Procedure",
            "status": "completed",
            "code": code,
            "subject": self.subject,
            "performedDateTime": self.d(when),
        }
        return self.put(slot, r)


def birth_date(as_of: date, years: int, days_before: int) -> str:
    """A birth date whose age at as_of is exactly `years` (birthday `days_before` days ago)."""
    last = as_of - timedelta(days=days_before)
    try:
        return last.replace(year=last.year - years).isoformat()
    except ValueError:  # 29 February
        return last.replace(year=last.year - years, day=28).isoformat()
