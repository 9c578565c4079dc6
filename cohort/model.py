"""Shared vocabulary of the pipeline: tidy facts about a patient and criterion results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from cohort.results import CriterionInfo as CriterionInfo  # (importers take them from here too)
from cohort.results import Evidence as Evidence
from cohort.results import NoValue as NoValue
from cohort.results import Result as Result
from cohort.results import Status as Status
from cohort.valuetype import value

# The FHIR resource types the pipeline reads; everything else is counted and skipped.
PIPELINE_TYPES = frozenset(
    (
        "Patient",
        "Condition",
        "Observation",
        "MedicationStatement",
        "MedicationRequest",
        "MedicationAdministration",
        "Medication",
        "Immunization",
        "Procedure",
    )
)
# the medication record types, each read as an exposure (extract.facts) with its own statuses
MEDICATION_TYPES = ("MedicationStatement", "MedicationRequest", "MedicationAdministration")


@value
class Code:
    """One coding; `system` is already canonicalised by the terminology layer when compared."""

    system: str
    code: str
    display: str = ""


@value
class Quantity:
    """A numeric value as it arrived (unit text and UCUM code kept apart)."""

    value: float
    unit: str = ""  # Quantity.unit (free text, may be non-UCUM)
    code: str = ""  # Quantity.code (UCUM when system is unitsofmeasure.org or absent)
    comparator: str = ""  # "<", "<=", ">=", ">" or ""
    system: str = ""  # Quantity.system as written (canonicalised when compared)


@value
class ObsValue:
    """An Observation's value in every shape FHIR allows that the criteria read."""

    quantity: Quantity | None = None
    string: str = ""
    codes: tuple[Code, ...] = ()  # valueCodeableConcept codings
    text: str = ""  # valueCodeableConcept.text
    ratio: tuple[Quantity, Quantity] | None = None  # numerator, denominator
    boolean: bool | None = None


@value
class Patient:
    id: str
    birth_date: str = ""  # as recorded: YYYY, YYYY-MM or YYYY-MM-DD
    sex: str = ""
    deceased: bool = False
    deceased_on: str = ""  # deceasedDateTime as recorded ("" for deceasedBoolean or none)
    # deceased[x] given with no value (its `_name` extension alone): whether or when not known
    deceased_unknown: bool = False
    active: bool = True  # Patient.active (absent: true, no statement that it is not in use)
    replaced_by: str = ""  # the id its first Patient.link of type replaced-by names, if any
    replaced_loop: bool = False  # those links lead back to it (a merge loop: cohort/merged.py)
    # identifying columns: written only to PHI-bearing outputs, never logged
    name: str = ""
    mrn: str = ""
    phone: str = ""
    postal_code: str = ""


@value
class ConditionFact:
    ref: str  # "Condition/123"
    codes: tuple[Code, ...]
    text: str = ""
    clinical_status: str = ""  # "" when absent
    verification_status: str = ""
    onset: date | None = None
    recorded: date | None = None
    abatement: date | None = None
    # The last day a partial date (YYYY, YYYY-MM) can stand for; None for a full date (then
    # the date above is exact). Criteria read both through criteria.base.latest/shown. An onset
    # known only as on or before a day starts at date.min; one with no last day ends at date.max.
    onset_last: date | None = None
    recorded_last: date | None = None
    abatement_last: date | None = None
    # An onset the record gives but that cannot be dated (onsetString, an Age without a birth
    # date): no onset to decide on, and not the recordedDate either (docs/rules.md).
    onset_undated: bool = False
    # An abatement the record gives but that cannot be dated (`_abatementDateTime` sent alone,
    # abatementString, an Age or Range no birth date dates): over at a time not known.
    abatement_undated: bool = False


@value
class ObservationFact:
    ref: str
    codes: tuple[Code, ...]
    status: str
    # effectiveDateTime / effectivePeriod.start (its end when it has no start) / effectiveTiming
    # (its earliest event, else its boundsPeriod as effectivePeriod) / effectiveInstant / issued
    when: date | None
    value: ObsValue
    interpretation: tuple[Code, ...] = ()
    ref_low: Quantity | None = None  # referenceRange[0].low
    text: str = ""
    # (code, its text and displays, value) of each component
    components: tuple[tuple[tuple[Code, ...], str, ObsValue], ...] = ()
    when_last: date | None = None  # last day of a partial date (see ConditionFact)
    # the date element as recorded when it has a time of day, else "": orders the results of
    # one day, read (extract.obs_dates.instant_of) only when two share a day
    # (criteria.ordering.newest_first)
    stamp: str = ""
    # no value, interpretation or component, only a dataAbsentReason: no result at all
    absent: bool = False
    # a panel header: no value, interpretation or dataAbsentReason of its own, but members
    # (hasMember) or components, which carry its results; no criterion reads it as a result
    # (Context.observations leaves it out), the `grades` kind reads its components
    panel: bool = False
    # a component read as a result of its own (ref "<parent ref>#component[i]"): its parent's ref
    part_of: str = ""


@value
class Dose:
    """One dosage line: amount per administration and administrations per day."""

    quantity: Quantity | None = None  # doseQuantity, or a doseRange's low (0 if it has none)
    # administrations a day (the fewest, when a range) from the timing; None when it gives none
    per_day: float | None = None
    # Dosage.sequence: lines with the same number are taken together (FHIR: "concurrent")
    sequence: int | None = None
    # a dose is given, but it or its timing cannot be read (a timing code not known, a
    # doseRange with one end): no usable dose
    unread: bool = False
    quantity_max: Quantity | None = None  # a doseRange's high (None: no range)
    # the most administrations a day (frequencyMax, periodMax ...; None: as per_day)
    per_day_max: float | None = None
    # its own days (Timing.repeat.bounds[x]; on a record with effective[x], inside the
    # record's); None: the record's (no line of it has bounds)
    bounds: Bounds | None = None
    # its dose is only the least it may be: beside it the line gives an amount not read (a
    # rate alone), or it is a doseRange's low without a high
    least: bool = False
    # Dosage.maxDosePerPeriod: each Ratio (numerator, denominator) whose ends read; the least a
    # day of those in a unit of time caps the line's daily dose (criteria.dose)
    caps: tuple[tuple[Quantity, Quantity], ...] = ()
    # the same dose in its other doseAndRate entries' forms (Epic's "calculated" 60 mg beside
    # its "ordered" 1 mg/kg), each (least, most: None when no range); criteria.dose_forms
    forms: tuple[tuple[Quantity, Quantity | None], ...] = ()
    # the latest day its own start may be (its boundsPeriod.start; a taper's step of a
    # boundsDuration: the end of the steps before it), where that is after the record's start
    # its `bounds` begin on (an order written ahead of its first dose: an exposure from when it
    # was written, SPEC's start; taken from this day); None: as its bounds
    starts: date | None = None


@value
class Bounds:
    """A dosage line's days, as an exposure's: each first day, and the last a partial date
    stands for (None for a full date); no end and `ongoing`: open."""

    start: date | None
    end: date | None
    ongoing: bool = False
    start_last: date | None = None
    end_last: date | None = None


@value
class Ingredient:
    """One Medication.ingredient: its item's codes and name, and its strength (a Ratio) as it
    arrived; which ingredient a criterion's drug is, and the strength's units, are read by the
    criteria through the terminology (cohort/criteria/strength.py)."""

    codes: tuple[Code, ...] = ()  # itemCodeableConcept
    text: str = ""  # itemCodeableConcept text or display
    numerator: Quantity | None = None  # strength.numerator (20 mg)
    denominator: Quantity | None = None  # strength.denominator (1 tablet, 5 mL)
    active: bool | None = None  # isActive as recorded (False: an excipient)


@value
class ExposureFact:
    """A medication record as an interval; `end is None` means ongoing."""

    ref: str  # "MedicationRequest/7"
    codes: tuple[Code, ...]  # from medicationCodeableConcept or Medication.code + ingredients
    text: str  # all names seen (CodeableConcept.text, displays, Medication.code.text)
    status: str
    start: date | None
    end: date | None
    ongoing: bool = False
    route: str = ""  # dose form and every dosage's route text/display, lower-case, " | "-joined
    routes: tuple[str, ...] = ()  # each dosage's route apart (those recorded), lower-case
    doses: tuple[Dose, ...] = ()
    ingredients: tuple[Ingredient, ...] = ()  # of its Medication, when it references one
    start_last: date | None = None  # last day of a partial start/end (see ConditionFact)
    end_last: date | None = None


@value
class ImmunizationFact:
    ref: str
    codes: tuple[Code, ...]
    status: str
    when: date | None
    text: str = ""
    when_last: date | None = None  # last day of a partial date (see ConditionFact)


@value
class ProcedureFact:
    ref: str
    codes: tuple[Code, ...]
    status: str
    start: date | None
    end: date | None
    text: str = ""
    start_last: date | None = None  # last day of a partial start/end (see ConditionFact)
    end_last: date | None = None
    ongoing: bool = False  # no end, and a status that leaves it open (as ExposureFact's)


@value
class UnreadableFact:
    """A record of the patient's that could not be read: refused by validation (its stub), an
    element the extractor could not read, or a result whose date does not read. A criterion
    reading one of its concepts does not pass on the others (criteria.unreadable)."""

    ref: str
    codes: tuple[Code, ...]
    text: str = ""
    why: str = ""  # PHI-free: where it was read and the validator's reason, or the problem


@value
class DroppedFact:
    """A record the reading rules dropped (`why`: "status cancelled"), or one whose reading
    failed (`by_rule` False): read by no criterion, but ignored evidence of those reading its
    concepts (criteria.dropped), with `fact`, what it reads as, for its date and value."""

    ref: str
    why: str
    codes: tuple[Code, ...] = ()
    text: str = ""
    fact: (
        ConditionFact | ObservationFact | ExposureFact | ImmunizationFact | ProcedureFact | None
    ) = None
    by_rule: bool = True


@value
class DoubtFact:
    """A record read as given (its facts among the patient's) whose status, intent or
    doNotPerform is sent without a value (`why`, PHI-free): it may be one the reading rules drop,
    or (`ongoing`: its reading so; None when no status changes it) one that stays open."""

    ref: str
    why: str
    ongoing: ExposureFact | ProcedureFact | None = None


@dataclass(slots=True)
class PatientFacts:
    """Everything the criteria may read about one patient (valid records only)."""

    patient: Patient
    conditions: list[ConditionFact] = field(default_factory=list)
    observations: list[ObservationFact] = field(default_factory=list)
    exposures: list[ExposureFact] = field(default_factory=list)
    immunizations: list[ImmunizationFact] = field(default_factory=list)
    procedures: list[ProcedureFact] = field(default_factory=list)
    dropped: list[DroppedFact] = field(default_factory=list)
    # dates of valid records no criterion reads (kept for `last_seen` only)
    other_dates: list[date] = field(default_factory=list)
    # starts (None: undated) of valid medication records no criterion reads: they still show
    # that the patient has medication records (`current_medication`)
    other_medications: list[date | None] = field(default_factory=list)
    # summarised records per type (Store.side_facts): what a criterion that finds nothing says
    # is on file besides (criteria.searched); a store read before counts were kept has none
    other_counts: dict[str, int] = field(default_factory=dict)
    # ... and the date of the latest of each type (not medication records: every start is in
    # other_medications); a store read before these were kept has none
    other_latest: dict[str, date] = field(default_factory=dict)
    unreadable: list[UnreadableFact] = field(default_factory=list)
    # medication records whose referenced Medication is not in the data (refs), and those that
    # name no drug at all: what a medication criterion they could change cannot pass on
    # (extract.medref, criteria.unnamed)
    unresolved: list[str] = field(default_factory=list)
    unnamed: list[UnreadableFact] = field(default_factory=list)
    # records whose status (intent, doNotPerform) is sent without a value: they may not count,
    # or stay open (extract.facts, criteria.doubtful)
    doubtful: list[DoubtFact] = field(default_factory=list)


@dataclass(slots=True)
class Candidate:
    """One screened patient with results, tier and rank."""

    patient: Patient
    results: list[Result]
    tier: str = ""  # likely / possible / excluded
    score: float = 0.0
    eligible_from: date | None = None
    rank: int = 0
    last_seen: date | None = None
    change: str = ""  # new / tier changed (a -> b) / criteria changed / ""
    # (type, Medication not in the data, named by its reference's display) of each medication
    # record whose Medication is not in the data or that names no drug: run.json counts them
    medication_gaps: tuple[tuple[str, bool, bool], ...] = ()
    # evidence.csv rows of this candidate, rendered where it was evaluated (report.csv
    # evidence_text); its results then carry no evidence objects. None: render from results.
    evidence_text: str | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class SiteResult:
    """Everything the report writes for one site."""

    site_id: str
    site_name: str
    as_of: date
    criteria: list[CriterionInfo]
    manual_items: list[str]  # manual-only checks, e.g. "contraception (WOCBP)"
    candidates: list[Candidate]  # ranked
    mapping_version: str = ""
    data_freshness: str = ""  # ISO timestamp of the newest record/sync for the site
    previous_tiers: dict[str, str] = field(default_factory=dict)  # patient_id -> tier last run
    trial_id: str = ""  # the page names its trial (a site may screen for two)
    trial_title: str = ""
    # old chart id -> the chart it was merged into (Patient.link): a chart that left the list
    # by a merge is named so, not taken for a refuted diagnosis
    merged_into: dict[str, str] = field(default_factory=dict)
    produced: str = ""  # the run's start (UTC ISO): a printed or left-over page says its age
