"""Turn stored FHIR resources of one patient into tidy facts, applying the reading rules."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from cohort.errors import MappingError
from cohort.model import (
    Code,
    ConditionFact,
    Dose,
    ExposureFact,
    ImmunizationFact,
    ObservationFact,
    ObsValue,
    Patient,
    PatientFacts,
    ProcedureFact,
    Quantity,
)
from cohort.source.validate import valid_codeable_concept

MEDICATION_TYPES = ("MedicationStatement", "MedicationRequest", "MedicationAdministration")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}
_TIMING_CODES = {"QD": 1, "BID": 2, "TID": 3, "QID": 4, "QOD": 0.5, "AM": 1, "PM": 1, "QAM": 1}
_MR = ("MR", "MRN")


@dataclass(frozen=True)
class ReadingRules:
    """Statuses to drop, what counts as active/ongoing; loaded from mappings/rules.toml."""

    drop_status: dict[str, frozenset[str]]
    drop_verification: dict[str, frozenset[str]]
    active_clinical: frozenset[str]
    missing_status_is_active: bool
    ongoing: frozenset[str]
    non_systemic: re.Pattern[str] = field(default=re.compile(r"(?!x)x"))

    @classmethod
    def load(cls, path: Path) -> ReadingRules:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise MappingError(f"{path}: cannot read reading rules: {exc}") from exc

        def table(key: str) -> dict[str, frozenset[str]]:
            raw = data.get(key, {})
            if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
                raise MappingError(f"{path}: [{key}] must map resource types to lists of codes")
            return {k: frozenset(str(x) for x in v) for k, v in raw.items()}

        cond = data.get("condition", {})
        expo = data.get("exposure", {})
        words = [re.escape(str(w)) for w in expo.get("non_systemic_words", [])]
        pattern = re.compile(r"\b(?:" + "|".join(words) + ")", re.I) if words else cls.non_systemic
        return cls(
            drop_status=table("drop_status"),
            drop_verification=table("drop_verification"),
            active_clinical=frozenset(cond.get("active", ["active", "recurrence", "relapse"])),
            missing_status_is_active=bool(cond.get("missing_status_is_active", True)),
            ongoing=frozenset(expo.get("ongoing", ["active", "on-hold", "intended"])),
            non_systemic=pattern,
        )

    def status_dropped(self, rtype: str, status: Any) -> bool:
        return status in self.drop_status.get("*", ()) or status in self.drop_status.get(rtype, ())

    def drop_reason(self, res: dict[str, Any]) -> str | None:
        rtype = res.get("resourceType", "")
        status = res.get("status", "")
        if self.status_dropped(rtype, status):
            return f"status {status}"
        if rtype == "Condition":
            vs = _first_code(res.get("verificationStatus"))
            if vs in self.drop_verification.get("Condition", ()):
                return f"verificationStatus {vs}"
        return None


_DAYS: dict[str, date | None] = {}  # parse_date by the first 10 characters (all it reads)


def parse_date(value: Any) -> date | None:
    """FHIR date/dateTime/instant -> date; partial dates take the first day; junk -> None."""
    if not isinstance(value, str):
        return None
    head = value[:10]
    if head in _DAYS:
        return _DAYS[head]
    m = _DATE.match(head)
    day = None
    if m:
        try:
            day = date(int(m[1]), int(m[2] or 1), int(m[3] or 1))
        except ValueError:
            day = None
    if len(_DAYS) < 100_000:
        _DAYS[head] = day
    return day


def ref_id(ref: Any) -> str:
    """'Patient/1', 'https://x/Patient/1/_history/2' -> '1'; '' when not a reference."""
    if not isinstance(ref, dict):
        return ""
    parts = str(ref.get("reference", "")).split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-1] if len(parts) >= 2 else ""


def _codings(cc: dict[str, Any]) -> list[Any]:
    """CodeableConcept.coding when it is an array (anything else is for validation to name)."""
    codings = cc.get("coding")
    return codings if isinstance(codings, list) else []


def codes_of(cc: Any) -> tuple[Code, ...]:
    if not isinstance(cc, dict):
        return ()
    out = []
    for c in _codings(cc):
        if isinstance(c, dict) and c.get("code") is not None:
            out.append(Code(str(c.get("system", "")), str(c["code"]), str(c.get("display", ""))))
    return tuple(out)


def text_of(cc: Any) -> str:
    if not isinstance(cc, dict):
        return ""
    names = [str(cc.get("text", ""))] + [
        str(c.get("display", "")) for c in _codings(cc) if isinstance(c, dict)
    ]
    return " | ".join(n for n in names if n)


def _first_code(cc: Any) -> str:
    codes = codes_of(cc)
    return codes[0].code if codes else ""


def _quantity(q: Any) -> Quantity | None:
    if not isinstance(q, dict) or not isinstance(q.get("value"), int | float):
        return None
    if isinstance(q.get("value"), bool):
        return None
    return Quantity(
        float(q["value"]), str(q.get("unit", "")), str(q.get("code", "")), q.get("comparator", "")
    )


def obs_value(res: dict[str, Any]) -> ObsValue:
    if "valueQuantity" in res:
        return ObsValue(quantity=_quantity(res["valueQuantity"]))
    if isinstance(res.get("valueInteger"), int):
        return ObsValue(quantity=Quantity(float(res["valueInteger"])))
    if isinstance(res.get("valueString"), str):
        return ObsValue(string=res["valueString"].strip())
    if "valueCodeableConcept" in res:
        cc = res["valueCodeableConcept"]
        text = str(cc.get("text", "")) if isinstance(cc, dict) else ""
        return ObsValue(codes=codes_of(cc), text=text)
    if isinstance(res.get("valueRatio"), dict):
        num = _quantity(res["valueRatio"].get("numerator"))
        den = _quantity(res["valueRatio"].get("denominator"))
        return ObsValue(ratio=(num, den) if num and den else None)
    if isinstance(res.get("valueBoolean"), bool):
        return ObsValue(boolean=res["valueBoolean"])
    return ObsValue()


def condition_onset(res: dict[str, Any]) -> date | None:
    """Condition.onsetDateTime, else onsetPeriod.start (AttributeError if that is no object)."""
    return parse_date(res.get("onsetDateTime")) or parse_date(
        (res.get("onsetPeriod") or {}).get("start")
    )


def _obs_date(res: dict[str, Any]) -> date | None:
    period = res.get("effectivePeriod") or {}
    return (
        parse_date(res.get("effectiveDateTime"))
        or parse_date(period.get("start") if isinstance(period, dict) else None)
        or parse_date(res.get("effectiveInstant"))
        or parse_date(res.get("issued"))
    )


def _doses(items: Iterable[Any]) -> tuple[Dose, ...]:
    out = []
    for d in items:
        if not isinstance(d, dict):
            continue
        qty = None
        for dr in d.get("doseAndRate") or ():
            qty = qty or _quantity(dr.get("doseQuantity") if isinstance(dr, dict) else None)
        qty = qty or _quantity(d.get("dose"))
        out.append(Dose(quantity=qty, per_day=_per_day(d.get("timing"))))
    return tuple(out)


def _per_day(timing: Any) -> float | None:
    if not isinstance(timing, dict):
        return None
    rep = timing.get("repeat") or {}
    freq, period, unit = rep.get("frequency"), rep.get("period"), rep.get("periodUnit")
    if isinstance(freq, int | float) and isinstance(period, int | float) and unit in _PERIOD_DAYS:
        days = period * _PERIOD_DAYS[unit]
        return float(freq) / days if days > 0 else None
    code = _first_code(timing.get("code")).upper()
    return float(_TIMING_CODES[code]) if code in _TIMING_CODES else None


def _strength_mg(med: dict[str, Any]) -> float | None:
    for ing in med.get("ingredient") or ():
        num = (
            _quantity((ing.get("strength") or {}).get("numerator"))
            if isinstance(ing, dict)
            else None
        )
        if num and (num.code or num.unit).lower() == "mg":
            return num.value
    return None


# (codes, text, maps to a concept, well-formed) of one code element
Coded = tuple[tuple[Code, ...], str, bool, bool]


class CodeElements:
    """What a code element says, memoised by its JSON text: the same elements recur on every
    chart. `relevant(codes, text)` says whether it maps to any concept (None: always)."""

    def __init__(self, relevant: Callable[[tuple[Code, ...], str], bool] | None) -> None:
        self._relevant = relevant
        self._memo: dict[bytes, Coded] = {}

    def read(self, cc: Any) -> tuple[bytes | None, Coded]:
        """(the memo key, or None when the element cannot be serialised; what it says)."""
        try:
            key = orjson.dumps(cc)
        except (orjson.JSONEncodeError, TypeError):
            key = None
        hit = self._memo.get(key) if key is not None else None
        if hit is None:
            codes, text = codes_of(cc), text_of(cc)
            relevant = self._relevant(codes, text) if self._relevant else True
            hit = (codes, text, relevant, valid_codeable_concept(cc))
            if key is not None and len(self._memo) < 200_000:
                self._memo[key] = hit
        return key, hit


class Extractor:
    """Builds PatientFacts; `medication` resolves a Medication reference id to its resource.

    `relevant(codes, text)`, when given, says whether an Observation can matter to any criterion;
    the others (most of a chart: vitals, routine panels) keep only their date, for `last_seen`.
    """

    def __init__(
        self,
        rules: ReadingRules,
        medication: Callable[[str], dict[str, Any] | None],
        relevant: Callable[[tuple[Code, ...], str], bool] | None = None,
    ):
        self.rules = rules
        self._medication = medication
        self._relevant = relevant
        self._elements = CodeElements(relevant)

    def facts(self, patient_id: str, resources: Iterable[dict[str, Any]]) -> PatientFacts:
        pf = PatientFacts(patient=Patient(id=patient_id))
        for res in resources:
            rtype = res.get("resourceType", "")
            ref = f"{rtype}/{res.get('id', '')}"
            why = self.rules.drop_reason(res)
            if why:
                pf.dropped.append((ref, why))
                continue
            try:
                self._add(pf, rtype, ref, res)
            except (AttributeError, TypeError, ValueError) as exc:
                # a malformed element of one record must not lose the patient
                pf.dropped.append((ref, f"unreadable: {type(exc).__name__}"))
        return pf

    def _add(self, pf: PatientFacts, rtype: str, ref: str, res: dict[str, Any]) -> None:
        if rtype == "Patient":
            pf.patient = _patient(res)
        elif rtype == "Condition":
            pf.conditions.append(
                ConditionFact(
                    ref=ref,
                    codes=(coded := self._elements.read(res.get("code"))[1])[0],
                    text=coded[1],
                    clinical_status=_first_code(res.get("clinicalStatus")),
                    verification_status=_first_code(res.get("verificationStatus")),
                    onset=condition_onset(res),
                    recorded=parse_date(res.get("recordedDate")),
                    abatement=parse_date(res.get("abatementDateTime"))
                    or parse_date((res.get("abatementPeriod") or {}).get("end")),
                )
            )
        elif rtype == "Observation":
            coded = self._elements.read(res.get("code"))[1]
            if self._relevant and not coded[2]:
                if when := _obs_date(res):
                    pf.other_dates.append(when)
                return
            pf.observations.append(self._observation(ref, res, coded))
        elif rtype in MEDICATION_TYPES:
            pf.exposures.append(self._exposure(ref, res))
        elif rtype == "Immunization":
            pf.immunizations.append(
                ImmunizationFact(
                    ref=ref,
                    codes=codes_of(res.get("vaccineCode")),
                    status=str(res.get("status", "")),
                    when=parse_date(res.get("occurrenceDateTime"))
                    or parse_date(res.get("recorded")),
                    text=text_of(res.get("vaccineCode")),
                )
            )
        elif rtype == "Procedure":
            period = res.get("performedPeriod") or {}
            start = parse_date(res.get("performedDateTime")) or parse_date(period.get("start"))
            pf.procedures.append(
                ProcedureFact(
                    ref=ref,
                    codes=codes_of(res.get("code")),
                    status=str(res.get("status", "")),
                    start=start,
                    end=parse_date(period.get("end")) or start,
                    text=text_of(res.get("code")),
                )
            )

    def _observation(self, ref: str, res: dict[str, Any], coded: Coded) -> ObservationFact:
        low = None
        for rr in res.get("referenceRange") or ():
            low = low or _quantity(rr.get("low") if isinstance(rr, dict) else None)
        components = tuple(
            (codes_of(c.get("code")), obs_value(c))
            for c in res.get("component") or ()
            if isinstance(c, dict)
        )
        interp: tuple[Code, ...] = ()
        for cc in res.get("interpretation") or ():
            interp += codes_of(cc)
        return ObservationFact(
            ref=ref,
            codes=coded[0],
            status=str(res.get("status", "")),
            when=_obs_date(res),
            value=obs_value(res),
            interpretation=interp,
            ref_low=low,
            text=coded[1],
            components=components,
        )

    def _exposure(self, ref: str, res: dict[str, Any]) -> ExposureFact:
        codes = codes_of(res.get("medicationCodeableConcept"))
        names = [text_of(res.get("medicationCodeableConcept"))]
        strength = None
        form = ""
        med = self._resolve_medication(res)
        if med:
            codes += codes_of(med.get("code"))
            names.append(text_of(med.get("code")))
            for ing in med.get("ingredient") or ():
                if isinstance(ing, dict):
                    codes += codes_of(ing.get("itemCodeableConcept"))
                    names.append(text_of(ing.get("itemCodeableConcept")))
            strength = _strength_mg(med)
            form = text_of(med.get("form"))
        period = res.get("effectivePeriod") or {}
        start = (
            parse_date(period.get("start"))
            or parse_date(res.get("effectiveDateTime"))
            or parse_date(res.get("authoredOn"))
        )
        status = str(res.get("status", ""))
        end = parse_date(period.get("end"))
        ongoing = end is None and status in self.rules.ongoing
        if end is None and not ongoing:
            end = start
        dosage = res.get("dosage")
        dosages = res.get("dosageInstruction") or (
            dosage if isinstance(dosage, list) else [dosage] if dosage else []
        )
        routes = [form] + [text_of(d.get("route")) for d in dosages if isinstance(d, dict)]
        return ExposureFact(
            ref=ref,
            codes=codes,
            text=" | ".join(n for n in names if n),
            status=status,
            start=start,
            end=end,
            ongoing=ongoing,
            route=" | ".join(r for r in routes if r).lower(),
            doses=_doses(dosages),
            strength_mg=strength,
        )

    def _resolve_medication(self, res: dict[str, Any]) -> dict[str, Any] | None:
        ref = (res.get("medicationReference") or {}).get("reference", "")
        if not ref:
            return None
        if ref.startswith("#"):
            for c in res.get("contained") or ():
                if isinstance(c, dict) and c.get("id") == ref[1:]:
                    return c
            return None
        return self._medication(ref_id({"reference": ref}))


def _patient(res: dict[str, Any]) -> Patient:
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
        if isinstance(ident, dict) and _first_code(ident.get("type")) in _MR:
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
        deceased=bool(res.get("deceasedBoolean")) or "deceasedDateTime" in res,
        name=name,
        mrn=mrn,
        phone=phone,
        postal_code=postal,
    )
