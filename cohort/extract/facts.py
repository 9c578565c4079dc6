"""Turn stored FHIR resources of one patient into tidy facts, applying the reading rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date
from typing import Any

from cohort.extract.dosage import doses_of, widest
from cohort.extract.doubtful import Doubts
from cohort.extract.dropped import dropped
from cohort.extract.elements import (
    CodeElements,
    DayRange,
    clinical_status,
    codes_of,
    exposure_start_days,
    parse_days,
    text_of,
    verification_status,
)
from cohort.extract.ingredients import ingredients_of
from cohort.extract.medref import name_from_reference, resolve_medication
from cohort.extract.obs_dates import obs_date, obs_when
from cohort.extract.observations import components_of, observation_of
from cohort.extract.onset import (
    UNDATED,
    abatement_by_age,
    abatement_days,
    birth_days,
    needs_birth,
    onset_by_age,
    onset_days,
)
from cohort.extract.patient import patient_of
from cohort.extract.routes import route_text
from cohort.extract.rules import PROCEDURE_STATUS, ReadingRules
from cohort.extract.unreadable import (
    MARK,
    failed,
    kept_copy,
    medication_refused,
    refused,
    undated_result,
    unread_date,
)
from cohort.model import (
    MEDICATION_TYPES,
    Bounds,
    Code,
    ConditionFact,
    ExposureFact,
    ImmunizationFact,
    Ingredient,
    Patient,
    PatientFacts,
    ProcedureFact,
)


def _first(days: DayRange | None) -> date | None:
    return days[0] if days else None


def _last(days: DayRange | None) -> date | None:
    """A partial date's last day (None for a full date or none)."""
    return days[1] if days else None


def _on_or_before(value: Any) -> DayRange | None:
    """An Immunization given on some day up to its `recorded` date (no occurrenceDateTime:
    occurrenceString "last spring"): "first captured in the record - potentially significantly
    after the occurrence" (FHIR R4), so never that date itself (docs/rules.md); a
    MedicationStatement without effective[x] so up to its `dateAsserted`."""
    days = parse_days(value)
    return (date.min, days[1] or days[0]) if days else None


def _effective(res: dict[str, Any]) -> bool:
    """The record has days of its own (effective[x]: SPEC §2's effectivePeriod)."""
    return "effectivePeriod" in res or "effectiveDateTime" in res


def _bounded(e: ExposureFact, res: dict[str, Any]) -> ExposureFact:
    """An exposure whose dosage lines have bounds: their days together are its days, unless
    the record has its own (effective[x]), which its lines' days do not change; each line
    then keeps its days inside the record's (`_inside`: a taper's steps, docs/rules.md
    "Exposure interval")."""
    if _effective(res):
        return replace(e, doses=tuple(replace(d, bounds=_inside(d.bounds, e)) for d in e.doses))
    b = widest(d.bounds for d in e.doses if d.bounds is not None)
    return replace(
        e,
        start=b.start,
        end=b.end,
        ongoing=b.ongoing,
        start_last=b.start_last,
        end_last=b.end_last,
    )


def _inside(b: Bounds | None, e: ExposureFact) -> Bounds | None:
    """A line's days on a record with effective[x]: from the record's start (bounds never
    start a record later) to the line's end or the record's, whichever is earlier; a line
    without an end (read as open: `doses_of`), or one ending before the record starts (the
    two disagree: not a shorter exposure), has the record's days."""
    if b is None or b.ongoing or b.end is None or (e.start and (b.end_last or b.end) < e.start):
        return Bounds(e.start, e.end, e.ongoing, e.start_last, e.end_last)
    end, end_last = b.end, b.end_last or b.end
    if not e.ongoing and e.end is not None:
        end, end_last = min(end, e.end), min(end_last, e.end_last or e.end)
    if e.start is not None:  # (a partial end that may be before the record's start)
        end, end_last = max(end, e.start), max(end_last, e.start_last or e.start)
    return Bounds(e.start, end, False, e.start_last, end_last if end_last != end else None)


class Extractor:
    """Builds PatientFacts; `medication` resolves a Medication reference id to its resource.

    `relevant(codes, text)`, when given, says whether an Observation can matter to any criterion;
    the others (most of a chart: vitals, routine panels) keep only their date, for `last_seen`.
    `mrn_systems`: the site's `mrn_system` setting, given as data (extract/patient.py `mrn_of`).
    `as_of`: the run's day, which says whether a name, phone or address has ended
    (extract/patient.py `patient_of`).
    """

    def __init__(
        self,
        rules: ReadingRules,
        medication: Callable[[str], dict[str, Any] | None],
        relevant: Callable[[tuple[Code, ...], str], bool] | None = None,
        *,
        mrn_systems: Iterable[str] = (),
        as_of: date | None = None,
    ):
        self.rules = rules
        self._mrn_systems = frozenset(mrn_systems)
        self._as_of = as_of
        self._medication = medication
        self._relevant = relevant
        self._elements = CodeElements(relevant)
        self._doubts = Doubts(rules)

    def facts(self, patient_id: str, resources: Iterable[dict[str, Any]]) -> PatientFacts:
        pf = PatientFacts(patient=Patient(id=patient_id))
        by_age: list[tuple[int, dict[str, Any]]] = []  # conditions with an onset age, and where
        for res in resources:
            rtype = res.get("resourceType", "")
            ref = f"{rtype}/{res.get('id', '')}"
            if why := self.rules.drop_reason(res):
                pf.dropped.append(dropped(self._add, rtype, ref, res, why))
                continue
            if MARK in res:  # a stub of a record refused on reading (source.refused)
                pf.unreadable.append(refused(ref, res))
                kept = kept_copy(res)  # the readable copy it was stored over: the record
                if kept is None:
                    continue
                res = kept
                if why := self.rules.drop_reason(res):
                    pf.dropped.append(dropped(self._add, rtype, ref, res, why))
                    continue
            try:
                self._add(pf, rtype, ref, res)
            except (AttributeError, TypeError, ValueError) as exc:
                # a malformed element of one record must not lose the patient, nor be lost
                pf.dropped.append(dropped(self._add, rtype, ref, res, exc))
                pf.unreadable.append(failed(ref, res, exc))
            else:
                if rtype == "Condition" and needs_birth(res):
                    by_age.append((len(pf.conditions) - 1, res))
                elif (why := self.rules.doubt(res)) is not None:
                    self._doubts.note(self._add, pf, rtype, ref, res, why)
        if by_age:  # (once every record is read: the Patient may come after its Conditions)
            birth = birth_days(pf.patient.birth_date)
            for i, res in by_age:
                c = pf.conditions[i]
                if (days := onset_by_age(res, birth)) is not None:
                    c = replace(c, onset=days[0], onset_last=days[1], onset_undated=False)
                if c.abatement_undated and (days := abatement_by_age(res, birth)) is not None:
                    c = replace(
                        c, abatement=days[0], abatement_last=days[1], abatement_undated=False
                    )
                pf.conditions[i] = c
        return pf

    def _add(self, pf: PatientFacts, rtype: str, ref: str, res: dict[str, Any]) -> None:
        if rtype == "Observation":  # (first: most of a chart)
            coded = self._elements.read(res.get("code"))[1]
            parts = res.get("component")
            found = components_of(self._elements, ref, res, parts) if parts else None
            if self._relevant and not coded[2]:
                # its own code maps to nothing: its date counts for last_seen, as a summarised
                # record's does, and the components that map are results of their own
                if when := obs_date(res):
                    pf.other_dates.append(when)
                elif not found:
                    # undated, so kept whole (extract.census.Triage) and in no census: still a
                    # record on file that a criterion finding nothing counts (criteria.searched)
                    pf.observations.append(observation_of(ref, res, coded, obs_when(res)))
                elif unread_date(res):
                    pf.unreadable.append(undated_result(ref, res))
                if found:
                    pf.observations += found
                return
            dated = obs_when(res)
            if dated[1] is None and unread_date(res):  # a date given that does not read
                pf.unreadable.append(undated_result(ref, res))
            pf.observations.append(observation_of(ref, res, coded, dated))
            if found:
                pf.observations += found
        elif rtype == "Patient":
            pf.patient = patient_of(res, self._mrn_systems, self._as_of)
        elif rtype == "Condition":
            onset = onset_days(res)
            undated = onset is UNDATED
            if undated:
                onset = None
            recorded = parse_days(res.get("recordedDate"))
            abatement, abated_undated = abatement_days(res)
            pf.conditions.append(
                ConditionFact(
                    ref=ref,
                    codes=(coded := self._elements.read(res.get("code"))[1])[0],
                    text=coded[1],
                    clinical_status=clinical_status(res.get("clinicalStatus")),
                    verification_status=verification_status(res.get("verificationStatus")),
                    onset=_first(onset),
                    recorded=_first(recorded),
                    abatement=_first(abatement),
                    onset_last=_last(onset),
                    recorded_last=_last(recorded),
                    abatement_last=_last(abatement),
                    onset_undated=undated,
                    abatement_undated=abated_undated,
                )
            )
        elif rtype in MEDICATION_TYPES:
            pf.exposures.append(self._exposure(ref, res, pf))
        elif rtype == "Immunization":
            given = parse_days(res.get("occurrenceDateTime")) or _on_or_before(res.get("recorded"))
            pf.immunizations.append(
                ImmunizationFact(
                    ref=ref,
                    codes=codes_of(res.get("vaccineCode")),
                    status=str(res.get("status", "")),
                    when=_first(given),
                    text=text_of(res.get("vaccineCode")),
                    when_last=_last(given),
                )
            )
        elif rtype == "Procedure":
            period = res.get("performedPeriod") or {}
            start = parse_days(res.get("performedDateTime")) or parse_days(period.get("start"))
            end = parse_days(period.get("end"))
            status = str(res.get("status", ""))
            # without an end, open while its status is one SPEC §2 leaves open (as a record's)
            ongoing = end is None and PROCEDURE_STATUS.get(status) in self.rules.ongoing
            if end is None and not ongoing:
                end = start
            pf.procedures.append(
                ProcedureFact(
                    ref=ref,
                    codes=codes_of(res.get("code")),
                    status=status,
                    start=_first(start),
                    end=_first(end),
                    text=text_of(res.get("code")),
                    start_last=_last(start),
                    end_last=_last(end),
                    ongoing=ongoing,
                )
            )

    def _exposure(self, ref: str, res: dict[str, Any], pf: PatientFacts) -> ExposureFact:
        codes = codes_of(res.get("medicationCodeableConcept"))
        names = [text_of(res.get("medicationCodeableConcept"))]
        ingredients: tuple[Ingredient, ...] = ()
        form = ""
        med = resolve_medication(res, self._medication)
        stub = med if med and MARK in med else None
        if stub is not None and not self.rules.drop_reason(stub):
            # a refused Medication's stub: the readable copy it was stored over, if any, is
            # the Medication (its ingredients and form too), as for any other record
            med = kept_copy(stub) or stub
        dropped = self.rules.drop_reason(med) if med else None
        if med and not dropped:  # (one entered in error names no drug)
            codes += codes_of(med.get("code"))
            names.append(text_of(med.get("code")))
            ingredients = ingredients_of(med)
            for ing in ingredients:
                codes += ing.codes
                names.append(ing.text)
            form = text_of(med.get("form"))
            if stub is not None:
                pf.unreadable.append(medication_refused(ref, stub, codes))
        if "medicationReference" in res and not (codes or any(names)):
            names.append(name_from_reference(pf, ref, res, med, dropped or ""))
        start = exposure_start_days(res)
        statement = res.get("resourceType") == "MedicationStatement"
        if start is None and statement and not _effective(res):
            # no effective[x] (R4: 0..1): taken on some day up to its assertion, as an
            # Immunization up to its `recorded` date, not undated (docs/rules.md)
            start = _on_or_before(res.get("dateAsserted"))
        status = str(res.get("status", ""))
        end = parse_days((res.get("effectivePeriod") or {}).get("end"))
        ongoing = end is None and status in self.rules.ongoing
        if end is None and not ongoing:
            end = start
        dosage = res.get("dosage")
        dosages = res.get("dosageInstruction") or (
            dosage if isinstance(dosage, list) else [dosage] if dosage else []
        )
        name = self.rules.route_name
        said = [route_text(d.get("route"), name).lower() for d in dosages if isinstance(d, dict)]
        # a line without an end on a record with days of its own runs to the record's end
        # (`_inside`), whatever its status: read it as open here
        doses = doses_of(dosages, start, ongoing or _effective(res))
        fact = ExposureFact(
            ref=ref,
            codes=codes,
            text=" | ".join(n for n in names if n),
            status=status,
            start=_first(start),
            end=_first(end),
            ongoing=ongoing,
            route=" | ".join(r for r in [form.lower(), *said] if r),
            routes=tuple(r for r in said if r),
            doses=doses,
            ingredients=ingredients,
            start_last=_last(start),
            end_last=_last(end),
        )
        return _bounded(fact, res) if doses and doses[0].bounds is not None else fact
