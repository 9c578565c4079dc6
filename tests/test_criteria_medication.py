"""Medication criteria: background_therapy (`current_medication`), prior_ianalumab (`any_record`),
washout_high_dose_cs (`high_dose`), washouts and live_vaccine (`washout`); docs/rules.md."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

import pytest
from criteria_helpers import (
    AS_OF,
    CPT,
    KINDS,
    RXNORM,
    SNOMED,
    ago,
    context,
    criterion,
    days_before,
    dosage,
    immunization,
    medication,
    medication_resource,
    mg,
    observation,
    procedure,
    qty,
    run,
    status,
    trial,
)

W12, W24, W36, W4 = (timedelta(weeks=n) for n in (12, 24, 36, 4))
PREDNISONE, HCQ, METHYLPRED = "8640", "5521", "6902"


def stmt(code: str | None = PREDNISONE, **kw: Any) -> dict:
    return medication("MedicationStatement", code, **kw)


def req(code: str | None = PREDNISONE, **kw: Any) -> dict:
    return medication("MedicationRequest", code, **kw)


def admin(code: str | None = None, days: int = 10, **kw: Any) -> dict:
    kw.setdefault("status", "completed")
    return medication("MedicationAdministration", code, when=ago(days), **kw)


# --- background_therapy ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (stmt(status="active", start=ago(200)), "pass"),  # ongoing
        (stmt(status="active", when=ago(200)), "pass"),
        (stmt(status="on-hold", start=ago(200)), "pass"),
        (stmt(status="intended", start=ago(5)), "pass"),
        (stmt(status="completed", start=ago(200), end=ago(100)), "fail"),  # past
        (stmt(status="completed", start=ago(200), end=ago(-30)), "pass"),  # end after as_of
        (stmt(status="completed", start=ago(200), end=ago(0)), "pass"),  # end == as_of
        (stmt(status="completed", start=ago(200), end=ago(1)), "fail"),
        (stmt(status="completed", when=ago(10)), "fail"),  # end = start
        (stmt(status="stopped", start=ago(200)), "fail"),  # not ongoing: end = start
        (stmt(status="active", start=ago(-5)), "unknown"),  # after as_of: no record yet
        (req(status="active", authored=ago(30)), "pass"),
        (req(status="completed", authored=ago(30)), "fail"),
        (req(status="on-hold", authored=ago(30)), "pass"),
    ],
)
def test_background_exposure_intervals(resource: dict, expected: str) -> None:
    assert status("background_therapy", resource) == expected


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"code": HCQ}, "pass"),
        ({"code": "198145"}, "pass"),  # product RxCUI: prednisone 10 MG Oral Tablet
        ({"code": "979092"}, "pass"),  # hydroxychloroquine sulfate 200 MG Oral Tablet
        ({"code": None, "text": "Plaquenil 200 mg tablet"}, "pass"),
        ({"code": None, "text": "PLAQUENIL"}, "pass"),
        ({"code": None, "text": "hydroxychloroquine sulfate"}, "pass"),
        ({"code": "6851"}, "pass"),  # methotrexate
        ({"code": "1256"}, "pass"),  # azathioprine
        ({"code": "68149"}, "pass"),  # mycophenolate mofetil
        ({"code": "27169"}, "pass"),  # leflunomide
        ({"code": None, "text": "mizoribine"}, "pass"),
        ({"code": None, "text": "CellCept 500 mg"}, "pass"),
        # systemic corticosteroids named only by a US brand (openFDA NDC brand_name)
        ({"code": None, "text": "Cortef 10 mg tablet"}, "pass"),  # hydrocortisone
        ({"code": None, "text": "Orapred ODT 15 mg"}, "pass"),  # prednisolone
        ({"code": None, "text": "Emflaza 36 mg"}, "pass"),  # deflazacort
        ({"code": "H02AB07", "system": "http://www.whocc.no/atc"}, "pass"),  # ATC prednisone
        ({"code": PREDNISONE, "system": "urn:oid:2.16.840.1.113883.6.88"}, "pass"),
        ({"code": "42316"}, "fail"),  # tacrolimus: not a background therapy
        ({"code": "19831"}, "fail"),  # budesonide: corticosteroid_other
        ({"code": None, "text": "lisinopril 10 mg"}, "fail"),
    ],
)
def test_background_codes_and_names(kw: dict, expected: str) -> None:
    kw.setdefault("system", RXNORM)
    r = medication("MedicationStatement", status="active", start=ago(60), **kw)
    assert status("background_therapy", r) == expected


def test_background_contained_medication() -> None:
    med = medication_resource(HCQ, mid="hcq")
    r = req(None, status="active", authored=ago(30), med_ref="#hcq", contained=[med])
    assert status("background_therapy", r) == "pass"


def test_background_referenced_medication() -> None:
    med = medication_resource("198145", mid="m42")
    r = req(None, status="active", authored=ago(30), med_ref="Medication/m42")
    assert status("background_therapy", r, medications={"m42": med}) == "pass"


def test_background_referenced_medication_ingredient_code() -> None:
    med = medication_resource(None, text="house tablet", ingredient=HCQ, mid="m43")
    r = req(None, status="active", authored=ago(30), med_ref="Medication/m43")
    assert status("background_therapy", r, medications={"m43": med}) == "pass"


def test_background_unresolved_reference_is_a_record_but_not_a_therapy() -> None:
    r = req(None, status="active", authored=ago(30), med_ref="Medication/missing")
    assert status("background_therapy", r) == "fail"


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"code": "5492", "dosages": [dosage(mg(10), route="Topical route")]}, "fail"),
        ({"code": "8638", "dosages": [dosage(route="Ophthalmic route")]}, "fail"),
        ({"code": None, "text": "hydrocortisone 1% cream"}, "fail"),
        ({"code": None, "text": "prednisolone acetate 1% eye drops"}, "fail"),
        ({"code": "5492", "dosages": [dosage(route="Rectal")]}, "fail"),
        ({"code": PREDNISONE, "dosages": [dosage(mg(5), route="Oral route")]}, "pass"),
        ({"code": "8638", "dosages": [dosage(mg(5), route="oral")]}, "pass"),
    ],
)
def test_background_route_excludes_non_systemic(kw: dict, expected: str) -> None:
    r = medication("MedicationStatement", status="active", start=ago(60), **kw)
    assert status("background_therapy", r) == expected


def test_background_medication_form_ophthalmic_excluded() -> None:
    med = medication_resource(None, text="prednisolone", form="Ophthalmic suspension", mid="eye")
    r = req(None, status="active", authored=ago(30), med_ref="#eye", contained=[med])
    assert status("background_therapy", r) == "fail"


def test_background_no_medication_records_is_unknown() -> None:
    assert status("background_therapy") == "unknown"


@pytest.mark.parametrize(
    "dropped",
    [
        stmt(status="entered-in-error", start=ago(30)),
        stmt(status="not-taken", start=ago(30)),
        req(status="cancelled", authored=ago(30)),
        req(status="draft", authored=ago(30)),
        medication("MedicationAdministration", PREDNISONE, status="not-done", when=ago(0)),
    ],
)
def test_background_dropped_records_do_not_count(dropped: dict) -> None:
    assert status("background_therapy", dropped) == "unknown"
    past = stmt(status="completed", start=ago(300), end=ago(200))
    assert status("background_therapy", dropped, past) == "fail"


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        # only effectivePeriod.end: it may have started on any day up to its end (audit 2)
        (stmt(HCQ, status="active", end=ago(-30)), "unknown"),
        (stmt(HCQ, status="completed", end=ago(-30)), "unknown"),
        (stmt(HCQ, status="completed", end="2026-11"), "unknown"),  # may end before as_of
        (stmt(HCQ, status="completed", end=ago(0)), "pass"),  # started by its end, as_of
        (stmt(HCQ, status="active", end=ago(1)), "fail"),  # over before as_of
        (stmt(HCQ, status="completed", end="2026-10"), "fail"),
    ],
)
def test_background_exposure_without_start(resource: dict, expected: str) -> None:
    r = run("background_therapy", resource)
    assert r.status == expected
    if expected == "unknown":
        assert r.reason.startswith("antimalarial ending 2026-")
        assert r.reason.endswith("without a start date: confirm it is current")
        assert [e.note for e in r.evidence] == ["no start date: may be current"]


def test_background_exposure_without_start_beside_a_current_one_passes() -> None:
    undated = stmt(HCQ, status="active", end=ago(-30))
    assert status("background_therapy", undated, stmt(status="active", start=ago(10))) == "pass"


def test_background_one_current_among_past_passes() -> None:
    assert (
        status(
            "background_therapy",
            stmt(status="completed", start=ago(300), end=ago(200)),
            stmt(HCQ, status="active", start=ago(100)),
        )
        == "pass"
    )


# --- prior_ianalumab ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["VAY736", "VAY-736", "VAY 736", "ianalumab", "Ianalumab 300 mg s.c.", "study drug VAY736 (blinded)"],
)
def test_prior_ianalumab_by_name_fails_any_time(name: str) -> None:
    r = run(
        "prior_ianalumab",
        stmt(None, text=name, status="completed", start="2019-01-01", end="2019-06-01"),
    )
    assert r.status == "fail"
    assert r.eligible_from is None
    assert criterion("prior_ianalumab").time_limited is False


def test_prior_ianalumab_in_contained_medication() -> None:
    med = medication_resource(None, text="VAY736 150 mg/mL", mid="v")
    r = req(None, status="completed", authored=ago(400), med_ref="#v", contained=[med])
    assert status("prior_ianalumab", r) == "fail"


@pytest.mark.parametrize(
    "resources",
    [
        [],
        [stmt(status="active", start=ago(30))],
        [stmt(None, text="VAY736", status="entered-in-error", start=ago(30))],
        [stmt(None, text="VAY7360X", status="completed", start=ago(30))],  # not a whole word
    ],
)
def test_prior_ianalumab_pass(resources: list[dict]) -> None:
    assert status("prior_ianalumab", *resources) == "pass"


# --- washout_high_dose_cs ----------------------------------------------------------------------
def pred(
    dose: dict | None,
    *,
    end_days: int | None = 30,
    start_days: int = 100,
    code: str = PREDNISONE,
    **dkw: Any,
) -> dict:
    """A prednisone MedicationStatement, completed (end known) or active (ongoing)."""
    d = [dosage(dose, **dkw)]
    if end_days is None:
        return stmt(code, status="active", start=ago(start_days), dosages=d)
    return stmt(code, status="completed", start=ago(start_days), end=ago(end_days), dosages=d)


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (pred(mg(60)), "fail"),
        (pred(mg(41)), "fail"),
        (pred(mg(40)), "pass"),  # > 40 fails
        (pred(mg(10)), "pass"),
        (pred(mg(25), timing_code="BID"), "fail"),  # 50 mg/day
        (pred(mg(25), frequency=2, period=1, period_unit="d"), "fail"),
        (pred(mg(25), frequency=1, period=12, period_unit="h"), "fail"),
        (pred(mg(15), timing_code="TID"), "fail"),  # 45 mg/day
        (pred(mg(20), timing_code="BID"), "pass"),  # 40 mg/day
        (pred(mg(60), frequency=1, period=1, period_unit="wk"), "pass"),  # ~8.6 mg/day
        (pred(mg(25), timing_code="QD"), "pass"),
        (pred(qty(0.06, "g", "g")), "fail"),
        (pred(mg(8), code="3264"), "fail"),  # dexamethasone x 6.67 = 53.4
        (pred(mg(5), code="3264"), "pass"),  # 33.4
        (pred(mg(100), code="5492"), "pass"),  # hydrocortisone x 0.25 = 25
        (pred(mg(200), code="5492"), "fail"),  # 50
        (pred(mg(40), code="6902"), "fail"),  # methylprednisolone x 1.25 = 50
        (pred(mg(32), code="6902"), "pass"),  # 40
        (pred(None), "unknown"),  # no usable dose
        (pred(qty(5, "mL", "mL")), "unknown"),  # volume without strength
        (pred(mg(30), code="22396"), "unknown"),  # deflazacort: factor unknown
        # a dose unit coded in another system than UCUM: its unit text is read
        (pred({"value": 60, "unit": "mg", "system": "urn:local:units", "code": "MG1"}), "fail"),
    ],
)
def test_high_dose_daily_dose(resource: dict, expected: str) -> None:
    assert status("washout_high_dose_cs", resource) == expected


@pytest.mark.parametrize(
    ("dose", "code", "expected"),
    [
        (10, "Q4H", "fail"),  # 6 a day: 60 mg/day
        (15, "Q6H", "fail"),  # 4 a day: 60 mg/day
        (15, "Q8H", "fail"),  # 3 a day: 45 mg/day
        (10, "Q6H", "pass"),  # 40 mg/day
        (70, "WK", "pass"),  # 10 mg/day, as a weekly repeat is read
        (60, "XYZ", "unknown"),  # a timing code not known: how many a day is not known
    ],
)
def test_high_dose_reads_every_timing_abbreviation(dose: float, code: str, expected: str) -> None:
    """SPEC: "above 40 mg/day ... → fail; corticosteroid in window with no usable dose →
    unknown". Every-N-hours codes were once read as once a day (15 mg Q6H passed)."""
    assert status("washout_high_dose_cs", pred(mg(dose), timing_code=code)) == expected


def _sequenced(dose: float, sequence: int | None, **timing: Any) -> dict[str, Any]:
    d = dosage(mg(dose))
    if sequence is not None:
        d["sequence"] = sequence
    if timing:
        d["timing"] = {"repeat": timing}
    return d


@pytest.mark.parametrize(
    ("dosages", "expected"),
    [
        # FHIR Dosage.sequence: the same number is "treated as concurrent": 30 + 20 mg a day
        ([_sequenced(30, 1, when=["MORN"]), _sequenced(20, 1, when=["EVE"])], "fail"),
        ([_sequenced(20, 1), _sequenced(20, 1)], "pass"),  # 40 mg/day
        # different numbers are sequential (a taper): the largest step
        ([_sequenced(60, 1), _sequenced(30, 2)], "fail"),
        ([_sequenced(30, 1), _sequenced(20, 2)], "pass"),
        # no sequence: each line on its own, as before
        ([_sequenced(30, None), _sequenced(20, None)], "pass"),
        # a concurrent line without a usable dose: the day's total is not known
        ([_sequenced(30, 1), {**dosage(), "sequence": 1}], "unknown"),
        # ... unless another step is usable on its own
        ([_sequenced(50, 2), _sequenced(30, 1), {**dosage(), "sequence": 1}], "fail"),
        # a usable step within the limit does not tell: the unknown day may be above it
        ([_sequenced(5, 2), _sequenced(30, 1), {**dosage(), "sequence": 1}], "unknown"),
    ],
)
def test_high_dose_adds_concurrent_dosage_lines(
    dosages: list[dict[str, Any]], expected: str
) -> None:
    r = stmt(code="8640", status="active", start=ago(10), dosages=dosages)
    assert status("washout_high_dose_cs", r) == expected


@pytest.mark.parametrize(
    ("unread", "expected"),
    [
        (dosage(mg(50), timing_code="XYZ"), "unknown"),  # how many a day is not known
        (dosage(mg(50), frequency=2, period=1, period_unit="mo2"), "unknown"),
        (dosage(qty(50, "mL", "mL")), "unknown"),  # a volume without strength
        (dosage(mg(60), timing_code="XYZ"), "unknown"),
        (dosage(), "pass"),  # a line with no dose at all says nothing of one
        # a timing given as text only is not read (docs: the unread line "may be the largest")
        (dosage(mg(30), timing_text="2 times daily"), "unknown"),
        # a doseRange line was taken for an instruction (no dose): the 5 mg line passed
        (dosage(dose_range=(mg(30), mg(60))), "unknown"),
    ],
)
def test_high_dose_a_line_not_read_beside_a_low_one_is_unknown(
    unread: dict[str, Any], expected: str
) -> None:
    """A line whose dose cannot be read may be the one above the limit: a 5 mg line beside
    it does not pass the exposure (50 mg with an unknown timing code was read once a day,
    a fail, before unknown codes were made unusable; then it passed on the 5 mg line)."""
    low = dosage(mg(5), timing_code="QD")
    r = stmt(code="8640", status="active", start=ago(10), dosages=[unread, low])
    assert status("washout_high_dose_cs", r) == expected
    over = dosage(mg(45), timing_code="QD")  # a usable line over the limit still fails
    r = stmt(code="8640", status="active", start=ago(10), dosages=[unread, over])
    assert status("washout_high_dose_cs", r) == "fail"


def test_high_dose_times_of_day_count_as_administrations() -> None:
    """timing.repeat.timeOfDay without a frequency: one administration at each time."""
    twice = _sequenced(25, None, timeOfDay=["08:00:00", "20:00:00"])
    assert status("washout_high_dose_cs", stmt(code="8640", start=ago(10), dosages=[twice])) == (
        "fail"
    )
    once = _sequenced(25, None, timeOfDay=["08:00:00"])
    assert status("washout_high_dose_cs", stmt(code="8640", start=ago(10), dosages=[once])) == (
        "pass"
    )


def test_high_dose_no_dosage_element_is_unknown() -> None:
    r = stmt(status="completed", start=ago(60), end=ago(20))
    assert status("washout_high_dose_cs", r) == "unknown"


def test_high_dose_eligible_from_is_end_plus_84_days() -> None:
    r = run("washout_high_dose_cs", pred(mg(60), end_days=30))
    assert r.status == "fail"
    assert r.eligible_from == days_before(30) + timedelta(days=84)
    # the reason says until when, as the other washouts' do
    assert r.reason.endswith(f"within 12 weeks (until {r.eligible_from})"), r.reason


def test_high_dose_ongoing_has_no_eligible_from() -> None:
    r = run("washout_high_dose_cs", pred(mg(60), end_days=None))
    assert (r.status, r.eligible_from) == ("fail", None)
    assert r.reason.endswith("(ongoing or no known end)"), r.reason


def test_high_dose_methylprednisolone_pulse_administration() -> None:
    r = run(
        "washout_high_dose_cs",
        admin(METHYLPRED, days=20, admin_dose=mg(1000), admin_route="Intravenous"),
    )
    assert r.status == "fail"
    assert r.eligible_from == days_before(20) + W12


def test_high_dose_evidence_names_the_drug_and_its_prednisone_equivalent() -> None:
    """Output audit: the row was `,,1250,,` (no concept, no unit) and the reason "corticosteroid
    1250 mg/day > 40" named neither the drug nor the prednisone equivalent."""
    r = run("washout_high_dose_cs", admin(METHYLPRED, days=20, admin_dose=mg(1000)))
    [ev] = r.evidence
    assert (ev.concept, ev.value, ev.unit, ev.note) == (
        "corticosteroid_systemic",
        "1250",
        "mg/day",
        "methylprednisolone 1000 mg/day = 1250 mg/day prednisone-equivalent",
    )
    assert r.reason == (
        "methylprednisolone 1250 mg/day prednisone-equivalent > 40 within 12 weeks"
        f" (until {days_before(20) + W12})"
    )


def test_high_dose_evidence_within_the_limit_and_undosed_say_what_they_are() -> None:
    r = run("washout_high_dose_cs", pred(mg(10)), pred(None, code=METHYLPRED))
    assert r.status == "unknown"
    assert [(e.concept, e.value, e.unit, e.note) for e in r.evidence] == [
        ("corticosteroid_systemic", "", "", "no usable dose"),
        ("corticosteroid_systemic", "10", "mg/day", "prednisone 10 mg/day = 10 mg/day "
         "prednisone-equivalent"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        # SPEC §2: units are converted with UCUM semantics, so any UCUM mass unit is a dose
        (pred(qty(60000, "ug", "ug")), "fail"),  # 60 mg
        (pred(qty(40000, "ug", "ug")), "pass"),  # 40 mg: not above the limit
        (pred(qty(8000, "ug", "ug"), code="3264"), "fail"),  # dexamethasone 8 mg = 53.4
        (pred(qty(0.00006, "kg", "kg")), "fail"),  # 60 mg
        (pred(qty(60_000_000, "ng", "ng")), "fail"),  # 60 mg
        (admin(None, days=20, text="Solu-Medrol", admin_dose=qty(500_000, "ug", "ug")), "fail"),
        (pred(qty(60, "mg/kg", "mg/kg")), "unknown"),  # per body weight: not a mass
    ],
)
def test_high_dose_dose_in_any_ucum_mass_unit(resource: dict, expected: str) -> None:
    assert status("washout_high_dose_cs", resource) == expected


@pytest.mark.parametrize("unit", ["mcg", "MCG", "\u00b5g", "\u03bcg"])
def test_high_dose_in_micrograms_as_ehrs_spell_them(unit: str) -> None:
    # "mcg" (the spelling US prescribers are told to use) and micro signs are ug: a dose
    # sent with the unit text alone (no UCUM code) is as usable as one coded "ug"
    assert status("washout_high_dose_cs", pred(qty(60000, unit))) == "fail"  # 60 mg
    assert status("washout_high_dose_cs", pred(qty(40000, unit))) == "pass"  # 40 mg
    r = run("washout_high_dose_cs", pred(qty(8000, unit), code="3264"))  # dexamethasone 8 mg
    assert (r.status, r.evidence[0].value) == ("fail", "53.4")


def test_high_dose_methylprednisolone_pulse_by_name_in_grams() -> None:
    r = admin(None, days=20, text="Solu-Medrol", admin_dose=qty(1, "g", "g"))
    assert status("washout_high_dose_cs", r) == "fail"


@pytest.mark.parametrize(
    ("tablets", "strength", "expected"),
    [(1, 50, "fail"), (2, 10, "pass"), (5, 10, "fail"), (4, 10, "pass")],
)
def test_high_dose_tablets_times_contained_product_strength(
    tablets: int, strength: int, expected: str
) -> None:
    med = medication_resource(
        "198148" if strength == 50 else "198145",
        strength_mg=strength,
        ingredient=PREDNISONE,
        mid="tab",
    )
    r = req(
        None,
        status="completed",
        authored=ago(10),
        med_ref="#tab",
        contained=[med],
        dosages=[dosage(qty(tablets, "TAB", "{tbl}"))],
    )
    assert status("washout_high_dose_cs", r) == expected


def test_high_dose_tablets_times_referenced_product_strength() -> None:
    med = medication_resource("312615", strength_mg=20, mid="p20")  # prednisone 20 MG tablet
    r = req(
        None,
        status="active",
        authored=ago(10),
        med_ref="Medication/p20",
        dosages=[dosage(qty(3, "tablet"))],
    )
    assert status("washout_high_dose_cs", r, medications={"p20": med}) == "fail"


@pytest.mark.parametrize(
    ("rxcui", "tablets", "expected"),
    [
        ("312615", 3, "fail"),  # prednisone 20 MG Oral Tablet: 60 mg/day
        ("312615", 2, "pass"),  # 40 mg/day
        ("198142", 10, "fail"),  # prednisolone 5 MG Oral Tablet: 50 mg/day
        ("762675", 12, "fail"),  # {21 (methylprednisolone 4 MG Oral Tablet) } Pack: 48 mg x 1.25
    ],
)
def test_high_dose_tablets_of_a_product_code_without_display(
    rxcui: str, tablets: int, expected: str
) -> None:
    # SPEC §2: a product-level RxNorm code names its product, so its tablet strength is known
    # even when the record carries the code alone (no display, no Medication resource)
    r = stmt(rxcui, status="active", start=ago(10), dosages=[dosage(qty(tablets, "TAB", "{tbl}"))])
    assert r["medicationCodeableConcept"] == {"coding": [{"system": RXNORM, "code": rxcui}]}
    assert status("washout_high_dose_cs", r) == expected


@pytest.mark.parametrize(
    ("name", "tablets", "expected"),
    [
        # RxNorm names a combination "A 5 MG / B 20 MG Oral Tablet": each strength is its own
        # ingredient's, so prednisone's is 5 mg whichever ingredient comes first
        ("prednisone 5 MG / omeprazole 20 MG Oral Tablet", 3, "pass"),  # 15 mg/day, not 60
        ("omeprazole 20 MG / prednisone 5 MG Oral Tablet", 3, "pass"),  # 15 mg/day
        ("prednisone 5 MG / omeprazole 20 MG Oral Tablet", 10, "fail"),  # 50 mg/day
        # a kit's other part in mg/mL is no tablet strength
        ("{1 (lidocaine 10 MG/ML Injectable Solution) / 3 (prednisone 20 MG Oral Tablet) } Kit",
         3, "fail"),  # 60 mg/day
        # two strengths of the drug itself: which tablet is taken cannot be told
        ("{10 (prednisone 10 MG Oral Tablet) / 11 (prednisone 5 MG Oral Tablet) } Pack", 3,
         "unknown"),
        # a concentration is no tablet strength, written with spaces too
        ("prednisolone 15 mg / 5 mL oral solution", 3, "unknown"),
    ],
)  # fmt: skip
def test_high_dose_tablet_strength_of_a_product_name_with_several_strengths(
    name: str, tablets: int, expected: str
) -> None:
    r = stmt(
        PREDNISONE,
        text=name,
        status="active",
        start=ago(10),
        dosages=[dosage(qty(tablets, "TAB", "{tbl}"))],
    )
    assert status("washout_high_dose_cs", r) == expected


def test_high_dose_tablets_without_strength_is_unknown() -> None:
    r = stmt(PREDNISONE, status="active", start=ago(10), dosages=[dosage(qty(3, "tablet"))])
    assert status("washout_high_dose_cs", r) == "unknown"


@pytest.mark.parametrize(
    ("end_days", "expected"),
    [(84, "pass"), (83, "fail"), (85, "pass"), (0, "fail")],
)
def test_high_dose_window_boundary(end_days: int, expected: str) -> None:
    r = run("washout_high_dose_cs", pred(mg(60), end_days=end_days, start_days=200))
    assert r.status == expected
    if expected == "fail":
        assert r.eligible_from == days_before(end_days) + W12


def test_high_dose_boundary_eligible_from_is_tomorrow() -> None:
    r = run("washout_high_dose_cs", pred(mg(60), end_days=83, start_days=200))
    assert r.eligible_from == AS_OF + timedelta(days=1)


def test_high_dose_eligible_from_is_latest_end() -> None:
    r = run(
        "washout_high_dose_cs",
        pred(mg(60), end_days=50, start_days=70),
        pred(mg(80), end_days=20, start_days=40),
    )
    assert r.eligible_from == days_before(20) + W12


def test_high_dose_reason_quotes_the_dose_that_sets_its_until_date() -> None:
    """Output audit: a 1000 mg methylprednisolone pulse 60 days ago and prednisone 60 mg/day
    ending 5 days ago gave "corticosteroid 1250 mg/day > 40 within 84 days (until <the
    prednisone's end + 84 days>)": one exposure's dose with the other's date."""
    r = run(
        "washout_high_dose_cs",
        admin(METHYLPRED, days=60, admin_dose=mg(1000)),
        pred(mg(60), end_days=5, start_days=30),
    )
    assert r.eligible_from == days_before(5) + W12
    assert " 60 mg/day" in r.reason and "1250" not in r.reason, r.reason
    assert r.reason.endswith(f"within 12 weeks (until {r.eligible_from})"), r.reason


def test_high_dose_reason_names_a_dose_maybe_in_the_window_that_sets_its_date() -> None:
    # lo is 2026-09-02: an end in 2026-09 may be on either side of it
    maybe = stmt(status="completed", start="2026-08-01", end="2026-09", dosages=[dosage(mg(50))])
    r = run("washout_high_dose_cs", pred(mg(60), end_days=80), maybe)
    assert r.eligible_from == date(2026, 9, 30) + W12
    assert r.reason == (
        f"prednisone 60 mg/day prednisone-equivalent > 40 within 12 weeks (until {r.eligible_from}:"
        " prednisone 50 mg/day prednisone-equivalent end recorded only as 2026-09 may be within"
        " it)"
    )


def test_high_dose_ongoing_and_ended_has_no_eligible_from() -> None:
    r = run(
        "washout_high_dose_cs",
        pred(mg(60), end_days=50),
        pred(mg(60), end_days=None, start_days=10),
    )
    assert (r.status, r.eligible_from) == ("fail", None)


def test_high_dose_fail_beats_unknown() -> None:
    assert status("washout_high_dose_cs", pred(None), pred(mg(60))) == "fail"


def test_high_dose_low_and_undosed_is_unknown() -> None:
    assert status("washout_high_dose_cs", pred(mg(5)), pred(None)) == "unknown"


@pytest.mark.parametrize(
    "resource",
    [
        stmt(status="entered-in-error", start=ago(20), dosages=[dosage(mg(60))]),
        stmt(status="not-taken", start=ago(20), dosages=[dosage(mg(60))]),
        stmt("5492", status="active", start=ago(20), dosages=[dosage(mg(500), route="Topical")]),
        stmt(
            None,
            text="triamcinolone 0.1% ointment",
            status="active",
            start=ago(20),
            dosages=[dosage(mg(100))],
        ),
        pred(mg(60), end_days=100, start_days=200),  # outside window
        stmt(status="active", start=ago(-10), dosages=[dosage(mg(60))]),  # after as_of
    ],
)
def test_high_dose_ignored_records_pass(resource: dict) -> None:
    assert status("washout_high_dose_cs", resource) == "pass"


@pytest.mark.parametrize(
    ("end", "expected"),
    [(ago(-30), "unknown"), ("2026-11", "unknown"), (ago(0), "fail"), (ago(20), "fail"),
     (ago(100), "pass")],
)  # fmt: skip
def test_high_dose_without_start_date(end: str, expected: str) -> None:
    """Only effectivePeriod.end: the dose may have started on any day up to its end, so one
    ending after as_of may not be on record yet (unknown); one ending in the window is in it."""
    r = run("washout_high_dose_cs", stmt(status="completed", end=end, dosages=[dosage(mg(60))]))
    assert r.status == expected
    if expected == "unknown":
        assert r.reason.startswith(
            "prednisone 60 mg/day prednisone-equivalent without a start date"
        ), r.reason
        assert "cannot tell if within 12 weeks before 2026-11-25" in r.reason


def test_high_dose_no_corticosteroid_passes() -> None:
    assert status("washout_high_dose_cs") == "pass"


# --- washout_12wk / washout_belimumab ----------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"code": "42316"}, "fail"),  # tacrolimus
        ({"code": "3008"}, "fail"),  # cyclosporine
        ({"code": None, "text": "Neoral 100 mg"}, "fail"),
        ({"code": None, "text": "voclosporin"}, "fail"),
        ({"code": "1357536"}, "fail"),  # tofacitinib
        ({"code": "2047232"}, "fail"),  # baricitinib
        ({"code": None, "text": "Rinvoq 15 mg"}, "fail"),  # upadacitinib
        ({"code": "9524"}, "fail"),  # sulfasalazine
        ({"code": "6851"}, "pass"),  # methotrexate: background DMARD, allowed
        ({"code": HCQ}, "pass"),
    ],
)
def test_washout_12wk_groups(kw: dict, expected: str) -> None:
    kw.setdefault("system", RXNORM)
    r = run(
        "washout_12wk",
        medication("MedicationStatement", status="completed", start=ago(200), end=ago(30), **kw),
    )
    assert r.status == expected
    if expected == "fail":
        assert r.eligible_from == days_before(30) + W12


@pytest.mark.parametrize(
    ("end_days", "expected"),
    [(84, "pass"), (83, "fail"), (200, "pass"), (1, "fail")],
)
def test_washout_12wk_boundary(end_days: int, expected: str) -> None:
    r = run("washout_12wk", stmt("42316", status="completed", start=ago(300), end=ago(end_days)))
    assert r.status == expected
    assert r.eligible_from == (days_before(end_days) + W12 if expected == "fail" else None)


def test_washout_12wk_ongoing_has_no_eligible_from() -> None:
    r = run("washout_12wk", stmt("42316", status="active", start=ago(300)))
    assert (r.status, r.eligible_from) == ("fail", None)


@pytest.mark.parametrize(
    ("end_days", "expected"),
    [(-30, "unknown"), (0, "fail"), (30, "fail"), (200, "pass")],
)
def test_washout_12wk_without_start_date(end_days: int, expected: str) -> None:
    """Only effectivePeriod.end, as background_therapy reads it: ending after as_of, it may
    start after as_of too (not on record yet), so the data cannot tell."""
    r = run("washout_12wk", stmt("42316", status="completed", end=ago(end_days)))
    assert r.status == expected
    assert r.eligible_from == (days_before(end_days) + W12 if expected == "fail" else None)
    if expected == "unknown":
        assert r.reason.startswith("calcineurin inhibitor without a start date: cannot tell")
        assert [e.note for e in r.evidence] == ["no start date: may be within window"]


def test_washout_12wk_request_authored_only() -> None:
    r = run("washout_12wk", req("42316", status="completed", authored=ago(10)))
    assert r.status == "fail"
    assert r.eligible_from == days_before(10) + W12


@pytest.mark.parametrize(
    "resource",
    [
        stmt("42316", status="entered-in-error", start=ago(10)),
        req("42316", status="cancelled", authored=ago(10)),
        stmt("42316", status="active", start=ago(-10)),  # starts after as_of
    ],
)
def test_washout_12wk_ignored(resource: dict) -> None:
    assert status("washout_12wk", resource) == "pass"


@pytest.mark.parametrize(
    ("resource", "days", "expected"),
    [
        (admin("1092437", days=40), 40, "fail"),
        (admin(None, days=40, text="Benlysta 200 mg/mL autoinjector"), 40, "fail"),
        (admin(None, days=83, text="belimumab"), 83, "fail"),
        (admin(None, days=84, text="belimumab"), 84, "pass"),
        (admin(None, days=300, text="belimumab"), 300, "pass"),
        (admin(None, days=5, text="rituximab"), 5, "pass"),  # other washout
    ],
)
def test_washout_belimumab(resource: dict, days: int, expected: str) -> None:
    r = run("washout_belimumab", resource)
    assert r.status == expected
    assert r.eligible_from == (days_before(days) + W12 if expected == "fail" else None)


# --- washout_24wk ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "days", "expected"),
    [
        ({"code": "3002", "system": RXNORM}, 100, "fail"),  # cyclophosphamide
        ({"text": "Cytoxan 500 mg IV"}, 167, "fail"),
        ({"text": "cyclophosphamide"}, 168, "pass"),  # boundary
        ({"text": "Privigen 10% IVIG"}, 60, "fail"),
        ({"text": "Hizentra (SCIG)"}, 60, "fail"),
        ({"code": "J06BA02", "system": "http://www.whocc.no/atc"}, 60, "fail"),
        ({"text": "tetanus immune globulin"}, 10, "pass"),  # hyperimmune, not IVIG
        ({"text": "Saphnelo (anifrolumab)"}, 60, "fail"),
        ({"text": "dapirolizumab pegol"}, 60, "fail"),
        ({"text": "Orencia"}, 60, "fail"),  # abatacept
        ({"text": "atacicept"}, 60, "fail"),
        ({"text": "telitacicept"}, 60, "fail"),
        ({"text": "belimumab"}, 60, "pass"),  # its own washout
    ],
)
def test_washout_24wk_medications(kw: dict, days: int, expected: str) -> None:
    r = run("washout_24wk", admin(days=days, **kw))
    assert r.status == expected
    assert r.eligible_from == (days_before(days) + W24 if expected == "fail" else None)


@pytest.mark.parametrize(
    ("resource", "end_days", "expected"),
    [
        (procedure("20720000", when=ago(30)), 30, "fail"),
        (procedure("36514", CPT, when=ago(30)), 30, "fail"),
        (
            procedure("6A550Z3", "http://www.cms.gov/Medicare/Coding/ICD10", when=ago(30)),
            30,
            "fail",
        ),
        (procedure("20720000", start=ago(40), end=ago(35)), 35, "fail"),
        (procedure("20720000", when=ago(167)), 167, "fail"),
        (procedure("20720000", when=ago(168)), 168, "pass"),
        (procedure("20720000", when=ago(300)), 300, "pass"),
        (procedure("20720000", when=ago(30), status="not-done"), 30, "pass"),
        (procedure("20720000", when=ago(30), status="entered-in-error"), 30, "pass"),
        (procedure("127788007", when=ago(30)), 30, "pass"),  # apheresis, not plasmapheresis
    ],
)
def test_washout_24wk_plasmapheresis(resource: dict, end_days: int, expected: str) -> None:
    r = run("washout_24wk", resource)
    assert r.status == expected
    assert r.eligible_from == (days_before(end_days) + W24 if expected == "fail" else None)


@pytest.mark.parametrize(("end_days", "expected"), [(-10, "unknown"), (30, "fail"), (200, "pass")])
def test_washout_24wk_plasmapheresis_without_start(end_days: int, expected: str) -> None:
    """Only performedPeriod.end: read as a medication record without a start is."""
    assert status("washout_24wk", procedure("20720000", end=ago(end_days))) == expected


def test_washout_24wk_eligible_from_max_over_exposures() -> None:
    r = run(
        "washout_24wk",
        procedure("20720000", when=ago(30)),
        admin(days=100, text="cyclophosphamide"),
    )
    assert r.eligible_from == days_before(30) + W24


CYC_150 = stmt(None, text="cyclophosphamide", status="completed", start=ago(160), end=ago(150))
ORENCIA_10 = stmt(None, text="Orencia", status="completed", start=ago(20), end=ago(10))


@pytest.mark.parametrize("records", [(CYC_150, ORENCIA_10), (ORENCIA_10, CYC_150)])
def test_washout_reason_names_the_exposure_that_sets_its_until_date(records: tuple) -> None:
    """Output audit: the reason named the first exposure in the window with the date of the one
    ending last ("cyclophosphamide within 168 days (until <abatacept's end + 24 weeks>)")."""
    r = run("washout_24wk", *records)
    assert r.eligible_from == days_before(10) + W24
    # (the label names the ingredient already: not said twice)
    assert r.reason == (
        f"CTLA4-Fc (abatacept) last {ago(10)}, within 24 weeks (until {r.eligible_from})"
    )


def test_washout_reason_names_a_record_maybe_in_the_window_that_sets_its_date() -> None:
    # lo is 2026-06-10: an end in 2026-06 may be on either side of it
    r = run(
        "washout_24wk",
        stmt(None, text="cyclophosphamide", status="completed", start=ago(170), end=ago(165)),
        stmt(None, text="Orencia", status="completed", start="2026-05-01", end="2026-06"),
    )
    assert r.eligible_from == date(2026, 6, 30) + W24
    assert r.reason == (
        f"cyclophosphamide last {ago(165)}, within 24 weeks (until {r.eligible_from}: CTLA4-Fc"
        " (abatacept) end recorded only as 2026-06 may be within it)"
    )


def test_washout_ongoing_reason_names_the_exposure_without_an_end() -> None:
    r = run("washout_24wk", ORENCIA_10, stmt(None, text="cyclophosphamide", start=ago(30)))
    assert (r.status, r.eligible_from) == ("fail", None)
    assert r.reason == f"cyclophosphamide since {ago(30)}, within 24 weeks (ongoing or no known end)"


IG = "immune globulin"
IG_IM = stmt(
    None, text=IG, status="completed", when=ago(10), dosages=[dosage(route="Intramuscular")]
)


@pytest.mark.parametrize(
    ("resource", "expected", "route"),
    [
        (IG_IM, "pass", "intramuscular"),
        (admin(text=IG, admin_route="Intramuscular route"), "pass", "intramuscular"),
        (admin(text=IG, admin_route="IM"), "pass", "im"),
        (admin(text=IG, admin_route="Intravenous route"), "fail", ""),
        (admin(text=IG, admin_route="Subcutaneous"), "fail", ""),
        (admin(text=IG), "fail", ""),  # no route recorded: most IG records are IVIG
        (admin(text="cyclophosphamide", admin_route="Intramuscular"), "fail", ""),  # per concept
    ],
)
def test_washout_24wk_counts_iv_or_sc_immunoglobulin_only(
    resource: dict, expected: str, route: str
) -> None:
    """SPEC washout_24wk: "cyclophosphamide, immunoglobulins (IV or s.c.), plasmapheresis (...)
    within 24 weeks -> fail". An immune globulin given intramuscularly (hepatitis A / measles
    prophylaxis; ATC J06BA01 covers IM and s.c. products) excluded the patient."""
    r = run("washout_24wk", resource)
    assert r.status == expected
    assert r.eligible_from == (days_before(10) + W24 if expected == "fail" else None)
    if route:
        assert [(i.concept, i.note) for i in r.ignored] == [
            ("immunoglobulin", f"route {route}: not counted for immunoglobulin")
        ]


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        (["Intravenous", "Intramuscular"], "fail"),  # one dosage IV: counted
        (["Intramuscular", "Intravenous"], "fail"),
        (["Intramuscular", "IM"], "pass"),  # every dosage route excluded
        (["Intramuscular"], "pass"),
        ([None], "fail"),  # a dosage with no route: none recorded (most IG records are IVIG)
    ],
)
def test_washout_24wk_excludes_a_record_only_when_every_dosage_route_is_excluded(
    routes: list[str | None], expected: str
) -> None:
    """A record with an intravenous and an intramuscular dosage was read as one route string
    naming "intramuscular", so the IV immune globulin on it was not counted (a false pass)."""
    ig = stmt(
        None,
        text=IG,
        status="completed",
        when=ago(10),
        dosages=[dosage(route=r) for r in routes],
    )
    assert run("washout_24wk", ig).status == expected


# --- washout_b_cell_depletion ------------------------------------------------------------------
def cd19(value: float, days: int, low: float | None = None, unit: str = "/uL") -> dict:
    return observation(
        "8116-6",
        ago(days),
        valueQuantity=qty(value, unit, unit),
        ref_low=qty(low, unit, unit) if low is not None else None,
    )


RTX = "121191"


@pytest.mark.parametrize(
    ("kw", "days", "expected"),
    [
        ({"code": RTX, "system": RXNORM}, 100, "fail"),
        ({"code": "1657862", "system": RXNORM}, 100, "fail"),  # rituximab product
        ({"text": "Truxima"}, 251, "fail"),
        ({"text": "rituximab-abbs"}, 251, "fail"),
        ({"text": "Ocrevus"}, 100, "fail"),
        ({"text": "obinutuzumab"}, 100, "fail"),
        ({"text": "Uplizna (inebilizumab)"}, 100, "fail"),
        ({"text": "Briumvi 150 mg IV"}, 100, "fail"),  # ublituximab: SPEC's "..."
        ({"text": "rituximab"}, 252, "pass"),  # boundary, no CD19 since
    ],
)
def test_b_cell_depletion_in_window(kw: dict, days: int, expected: str) -> None:
    r = run("washout_b_cell_depletion", admin(days=days, **kw))
    assert r.status == expected
    assert r.eligible_from == (days_before(days) + W36 if expected == "fail" else None)


def test_b_cell_depletion_boundary_eligible_tomorrow() -> None:
    r = run("washout_b_cell_depletion", admin(RTX, days=251))
    assert r.eligible_from == AS_OF + timedelta(days=1)


@pytest.mark.parametrize(
    ("labs", "expected"),
    [
        ([], "pass"),
        ([cd19(20, 10, low=100)], "fail"),  # below own LLN
        ([cd19(150, 10, low=100)], "pass"),
        ([cd19(100, 10, low=100)], "pass"),  # not below
        ([cd19(50, 10)], "fail"),  # default LLN 80
        ([cd19(90, 10)], "pass"),
        ([cd19(80, 10)], "pass"),
        ([cd19(90, 10, low=110)], "fail"),  # own range beats the default
        ([cd19(70, 10, low=60)], "pass"),
        ([cd19(20, 310)], "pass"),  # before the last dose: not counted
        ([cd19(20, 300)], "pass"),  # on the dose date: not after it
        ([cd19(20, 200), cd19(150, 10)], "pass"),  # most recent decides
        ([cd19(150, 200), cd19(20, 10)], "fail"),
        ([cd19(0.02, 10, unit="10*9/L")], "fail"),  # 20 /uL
        ([cd19(0.15, 10, unit="10*9/L")], "pass"),  # 150 /uL
        ([cd19(50, 10, unit="%")], "unknown"),  # unconvertible
    ],
)
def test_b_cell_depletion_after_window_cd19(labs: list[dict], expected: str) -> None:
    r = run("washout_b_cell_depletion", admin(RTX, days=300), *labs)
    assert r.status == expected
    assert r.eligible_from is None  # a low CD19 count is not time-limited


def test_b_cell_low_cd19_reason_carries_the_count_and_the_dose_dates() -> None:
    """Output audit: "cd19_count 5 /uL below lower limit 80 since last dose" gave neither date,
    where the other lab fails say "... on 2026-11-13"."""
    r = run("washout_b_cell_depletion", admin(RTX, days=300), cd19(10, 5))
    assert (r.status, r.reason) == (
        "fail",
        f"CD19 B-cell count 10 /uL below lower limit 80 on {ago(5)} since last dose {ago(300)}",
    )
    r = run("washout_b_cell_depletion", admin(RTX, days=100), cd19(10, 5))
    assert r.reason == (
        f"rituximab (B-cell depleting therapy) on {ago(100)}, within 36 weeks (then CD19 B-cell"
        f" count 10 /uL below lower limit 80 on {ago(5)} since last dose {ago(100)})"
    )
    below_100 = observation("8116-6", ago(5), valueQuantity=qty(100, "/uL", "/uL", "<"))
    r = run("washout_b_cell_depletion", admin(RTX, days=300), below_100)
    assert (r.status, r.reason) == (
        "unknown",
        f"CD19 B-cell count <100 /uL on {ago(5)} since last dose {ago(300)}: cannot tell vs lower limit"
        " 80",
    )
    # a dose recorded only as a month: the reason shows it as recorded, not a day of it
    month = medication("MedicationAdministration", RTX, status="completed", when="2026-01")
    r = run("washout_b_cell_depletion", month, cd19(10, 5))
    assert (r.status, r.reason) == (
        "fail",
        f"CD19 B-cell count 10 /uL below lower limit 80 on {ago(5)} since last dose 2026-01",
    )


@pytest.mark.parametrize(("count", "expected"), [(10, "fail"), (150, "pass")])
def test_b_cell_the_last_dose_a_count_is_read_from_is_used(count: float, expected: str) -> None:
    """README: used `yes` is a record the outcome rests on. After the window the outcome
    rests on the last dose (counts since it) as on the count; it was listed as ignored,
    "outside window or undated", beside a reason naming it."""
    last, earlier = admin(RTX, days=300), admin(RTX, days=500)
    r = run("washout_b_cell_depletion", earlier, last, cd19(count, 5))
    assert r.status == expected
    by_ref = {e.ref: (e.note, used) for used in ("yes", "ignored") for e in
              (r.evidence if used == "yes" else r.ignored)}
    assert by_ref[f"MedicationAdministration/{last['id']}"] == (
        "last dose, outside window: the CD19 B-cell count after it decides",
        "yes",
    )
    assert by_ref[f"MedicationAdministration/{earlier['id']}"] == ("outside window", "ignored")


def test_b_cell_low_cd19_without_b_cell_therapy_passes() -> None:
    assert status("washout_b_cell_depletion", cd19(5, 10, low=100)) == "pass"


def test_b_cell_cd19_after_last_of_several_doses() -> None:
    r = run(
        "washout_b_cell_depletion",
        admin(RTX, days=500),
        admin(RTX, days=300),
        cd19(20, 400, low=100),
        cd19(150, 10, low=100),
    )
    assert r.status == "pass"
    r = run(
        "washout_b_cell_depletion",
        admin(RTX, days=500),
        admin(RTX, days=300),
        cd19(150, 400, low=100),
    )
    assert r.status == "pass"  # the only count predates the last dose


def test_b_cell_entered_in_error_dose_ignored() -> None:
    bad = admin(RTX, days=30, status="entered-in-error")
    assert status("washout_b_cell_depletion", bad) == "pass"


# --- live_vaccine ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cvx", "days", "expected"),
    [
        ("03", 10, "fail"),
        ("3", 10, "fail"),
        ("003", 10, "fail"),
        ("21", 10, "fail"),  # varicella
        ("121", 10, "fail"),  # zoster live
        ("37", 10, "fail"),  # yellow fever
        ("03", 27, "fail"),
        ("03", 28, "pass"),  # boundary
        ("03", 60, "pass"),
        ("03", -2, "pass"),  # after as_of
        ("187", 10, "pass"),  # recombinant zoster
        ("188", 10, "unknown"),  # zoster, unspecified
        ("188", 28, "pass"),
        ("188", 60, "pass"),
        ("140", 10, "pass"),  # influenza, injectable
    ],
)
def test_live_vaccine(cvx: str, days: int, expected: str) -> None:
    r = run("live_vaccine", immunization(cvx, ago(days)))
    assert r.status == expected
    assert r.eligible_from == (days_before(days) + W4 if expected == "fail" else None)


def test_live_vaccine_oid_system() -> None:
    im = immunization("03", ago(5))
    im["vaccineCode"]["coding"][0]["system"] = "urn:oid:2.16.840.1.113883.12.292"
    assert status("live_vaccine", im) == "fail"


def test_live_vaccine_boundary_eligible_tomorrow() -> None:
    assert run("live_vaccine", immunization("03", ago(27))).eligible_from == AS_OF + timedelta(1)


def test_live_vaccine_fail_beats_uncertain() -> None:
    r = run("live_vaccine", immunization("188", ago(5)), immunization("03", ago(20)))
    assert r.status == "fail"
    assert r.eligible_from == days_before(20) + W4


def test_live_vaccine_eligible_from_latest() -> None:
    r = run("live_vaccine", immunization("03", ago(20)), immunization("21", ago(3)))
    assert r.eligible_from == days_before(3) + W4


@pytest.mark.parametrize("im_status", ["not-done", "entered-in-error"])
def test_live_vaccine_dropped(im_status: str) -> None:
    assert status("live_vaccine", immunization("03", ago(5), status=im_status)) == "pass"


def test_no_vaccine_passes() -> None:
    assert status("live_vaccine") == "pass"


def test_time_limited_kinds_of_the_trial() -> None:
    assert {c.id for c in trial().criteria if c.time_limited} == {
        "washout_high_dose_cs",
        "washout_12wk",
        "washout_belimumab",
        "washout_24wk",
        "washout_b_cell_depletion",
        "live_vaccine",
    }


# --- systemic vs non-systemic: more route wordings and products ---------------------------------
@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("Nasal route", "fail"),
        ("Inhalation", "fail"),
        ("Respiratory tract route (inhaled)", "fail"),
        ("Otic route", "fail"),
        ("Transdermal patch", "fail"),
        ("Cutaneous", "fail"),
        ("Vaginal", "fail"),
        ("Per rectum (rectal)", "fail"),
        ("Subcutaneous", "pass"),  # systemic: not 'cutaneous'
        ("Intravenous", "pass"),
        ("Intramuscular", "pass"),
        ("By mouth (oral)", "pass"),
        ("Intranasal", "fail"),
        ("Intravaginal", "fail"),
    ],
)
def test_background_route_wordings(route: str, expected: str) -> None:
    r = stmt("10759", status="active", start=ago(60), dosages=[dosage(mg(4), route=route)])
    assert status("background_therapy", r) == expected


def test_non_systemic_product_rxcui_is_not_background_nor_high_dose() -> None:
    # 465397 Ciprofloxacin / Dexamethasone (otic): products.csv systemic = N
    r = stmt(
        "465397",
        display="Ciprofloxacin / Dexamethasone",
        status="active",
        start=ago(30),
        dosages=[dosage(mg(100))],
    )
    assert status("background_therapy", r) == "fail"
    assert status("washout_high_dose_cs", r) == "pass"


def test_high_dose_tablets_with_strength_in_product_display() -> None:
    r = req(
        "198148",
        display="prednisone 50 MG Oral Tablet",
        status="active",
        authored=ago(10),
        dosages=[dosage(qty(1, "TAB", "{tbl}"))],
    )
    assert status("washout_high_dose_cs", r) == "fail"


def test_b_cell_cd19_reference_range_in_other_unit() -> None:
    lab = observation(
        "8116-6",
        ago(10),
        valueQuantity=qty(0.05, "10*9/L", "10*9/L"),
        ref_low=qty(0.1, "10*9/L", "10*9/L"),
    )
    assert status("washout_b_cell_depletion", admin(RTX, days=300), lab) == "fail"


def test_b_cell_entered_in_error_cd19_ignored() -> None:
    bad = observation(
        "8116-6", ago(5), valueQuantity=qty(5, "/uL", "/uL"), status="entered-in-error"
    )
    assert (
        status("washout_b_cell_depletion", admin(RTX, days=300), bad, cd19(150, 20, low=100))
        == "pass"
    )


def test_belimumab_entered_in_error_ignored() -> None:
    assert (
        status("washout_belimumab", admin("1092437", days=10, status="entered-in-error")) == "pass"
    )


def test_background_only_future_record_counts_as_no_record() -> None:
    assert status("background_therapy", req(status="active", authored=ago(-10))) == "unknown"


@pytest.mark.parametrize(
    ("tablets", "expected"),
    [(10, "fail"), (8, "pass")],  # 4 mg x n x 1.25: 50 / 40 mg prednisone-equivalent
)
def test_high_dose_brand_text_with_strength(tablets: int, expected: str) -> None:
    r = stmt(
        None,
        text="Medrol 4 MG Oral Tablet",
        status="active",
        start=ago(10),
        dosages=[dosage(qty(tablets, "tablet"))],
    )
    assert status("washout_high_dose_cs", r) == expected


# --- ends at the calendar's edge (found by fuzzing) ----------------------------------------------
def test_an_exposure_ending_9999_12_31_fails_with_no_eligible_from() -> None:
    """A washout window added to an end of 9999-12-31 is past the calendar: no date on which
    the patient washes out (eligible_from None), not an OverflowError."""
    r = run(
        "washout_belimumab", stmt("1092437", status="completed", start=ago(20), end="9999-12-31")
    )
    assert (r.status, r.eligible_from) == ("fail", None)
    r = run("washout_high_dose_cs", stmt(status="completed", start=ago(20), end="9999-12-31",
                                         dosages=[dosage(mg(60))]))  # fmt: skip
    assert (r.status, r.eligible_from) == ("fail", None)


def test_a_procedure_after_as_of_ending_9999_12_31_reads_no_lab_past_it() -> None:
    """A washout with procedures and a lab check (a trial could write one): a procedure that
    starts after the as-of date is outside the window but has the latest end of all, and the
    counts 'since the last dose' would start the day after 9999-12-31, i.e. none are read."""
    from dataclasses import replace

    from criteria_helpers import context

    from cohort.criteria.registry import KINDS

    base = criterion("washout_b_cell_depletion")
    crit = replace(base, params={**base.params, "procedures": ["plasmapheresis"]})
    pheresis = procedure("20720000", start=ago(-10), end="9999-12-31")
    r = KINDS[crit.kind].fn(crit, context(pheresis, cd19(20, 5)))
    assert r.status == "pass"


def test_washout_procedure_after_as_of_is_not_the_last_dose() -> None:
    """Procedures and immunizations dated after as_of were not dropped as other records are:
    a washout counting lab results since the last dose took a future procedure as that dose,
    and a low count after the real last dose no longer failed."""
    base = criterion("washout_b_cell_depletion")
    crit = dataclasses.replace(base, params={**base.params, "procedures": ["plasmapheresis"]})
    records = [procedure("20720000", when=ago(300)), cd19(20, 10, low=100)]
    assert KINDS[crit.kind].fn(crit, context(*records)).status == "fail"
    future = procedure("20720000", when=ago(-10))
    r = KINDS[crit.kind].fn(crit, context(*records, future))
    assert r.status == "fail"
    assert all(e.ref != future["resourceType"] + "/" + future["id"] for e in r.evidence + r.ignored)


@pytest.mark.parametrize(
    ("value", "comparator", "expected"),
    [
        (20, "<", "fail"),  # below 20: below the default limit 80
        (80, "<", "fail"),
        (100, "<", "unknown"),  # may be 90 or 30
        (50, ">", "unknown"),  # may be 60 or 200
        (80, ">=", "pass"),
    ],
)
def test_b_cell_cd19_comparator(value: float, comparator: str, expected: str) -> None:
    o = observation(
        "8116-6", ago(10), valueQuantity=qty(value, "/uL", "/uL", comparator=comparator)
    )
    assert status("washout_b_cell_depletion", admin(RTX, days=300), o) == expected


def test_b_cell_cd19_comparator_shown_when_its_reference_low_cannot_be_converted() -> None:
    # "<50" is not 50: the evidence shows the count as reported on every path (docs/rules.md)
    o = observation(
        "8116-6",
        ago(10),
        valueQuantity=qty(50, "/uL", "/uL", comparator="<"),
        ref_low=qty(5, "%", "%"),
    )
    r = run("washout_b_cell_depletion", admin(RTX, days=300), o)
    assert r.status == "unknown"
    assert [e.value for e in r.evidence if e.concept == "cd19_count"] == ["<50"]
    assert "<50" in r.reason


@pytest.mark.parametrize(
    ("dose_mg", "code", "expected"),
    [
        # the factors are rounded (6.67 for 0.75 mg dexamethasone = 5 mg prednisone, i.e. 20/3):
        # dexamethasone 6 mg/day is 40 mg prednisone-equivalent, not above 40
        (6, "3264", "pass"),
        (6.5, "3264", "fail"),  # 43.3
        (32, "6902", "pass"),  # methylprednisolone 40
        (160, "5492", "pass"),  # hydrocortisone 40
        (161, "5492", "fail"),  # 40.25
    ],
)
def test_high_dose_rounded_factor_at_the_limit(dose_mg: float, code: str, expected: str) -> None:
    assert status("washout_high_dose_cs", pred(mg(dose_mg), code=code)) == expected


def test_live_vaccine_coded_without_text_is_named_in_the_reason() -> None:
    r = run("live_vaccine", immunization("03", ago(10)))  # CVX code only, no text or display
    assert r.reason == f"CVX 03 on {ago(10)}, within 4 weeks (until 2026-12-13)"


def test_live_vaccine_evidence_names_its_concept_and_the_vaccine() -> None:
    """Output audit: the row had no concept, and no value for a vaccine coded without text
    (docs/security.md: with --no-phi "the concept, date and note columns still say what each
    row is")."""
    [ev] = run("live_vaccine", immunization("03", ago(10))).evidence
    assert (ev.concept, ev.value, ev.note) == ("live_vaccine", "CVX 03", "within window")
    shown = immunization("21", ago(10))
    shown["vaccineCode"]["coding"][0]["display"] = "varicella virus vaccine"
    [ev] = run("live_vaccine", shown).evidence
    assert (ev.concept, ev.value) == ("live_vaccine", "varicella virus vaccine")
    maybe = immunization("21", ago(10))
    maybe["vaccineCode"] = {"coding": [{"system": SNOMED, "code": "836389008"}]}  # vaccinia
    r = run("live_vaccine", maybe)
    assert [(e.concept, e.value, e.note) for e in r.evidence] == [
        ("live_vaccine_uncertain", "code 836389008", "may be live")
    ], r


# CVX codes of live vaccines beyond the terminology reference (public CVX value set, see
# mappings/concepts/vaccines.csv): Ebola Zaire live, chikungunya live, rotavirus unspecified
# (every rotavirus vaccine is live); the mpox/smallpox and Ebola/dengue codes that may or may
# not be a replicating live vaccine are only a doubt
@pytest.mark.parametrize(
    ("cvx", "expected"),
    [
        ("204", "fail"),  # Ebola Zaire vaccine, live, recombinant (Ervebo)
        ("317", "fail"),  # chikungunya live attenuated (Ixchiq)
        ("122", "fail"),  # rotavirus, unspecified formulation
        ("206", "unknown"),  # JYNNEOS (MVA: live, non-replicating)
        ("325", "unknown"),  # vaccinia (smallpox, mpox), unspecified
        ("214", "unknown"),  # Ebola, unspecified
        ("330", "unknown"),  # dengue fever, unspecified
        ("329", "pass"),  # chikungunya VLP, recombinant
    ],
)
def test_live_vaccine_codes_beyond_the_reference(cvx: str, expected: str) -> None:
    assert status("live_vaccine", immunization(cvx, ago(10))) == expected


# An Immunization without occurrenceDateTime (occurrenceString "last spring") was given on some
# day on or before its `recorded` date (FHIR R4: "first captured in the record - potentially
# significantly after the occurrence"), not on it
def _recorded_only(days: int | None, occurrence: str | None = "last spring") -> dict:
    im = immunization("03", None)
    if occurrence is not None:
        im["occurrenceString"] = occurrence
    if days is not None:
        im["recorded"] = ago(days)
    return im


def test_live_vaccine_recorded_recently_but_given_undated_is_unknown_not_fail() -> None:
    r = run("live_vaccine", _recorded_only(2))
    assert r.status == "unknown"
    assert r.eligible_from is None


def test_live_vaccine_recorded_before_the_window_passes() -> None:
    assert status("live_vaccine", _recorded_only(40)) == "pass"
    assert status("live_vaccine", _recorded_only(28, None)) == "pass"


def test_live_vaccine_undated_without_recorded_is_unknown() -> None:
    assert status("live_vaccine", _recorded_only(None)) == "unknown"


def test_live_vaccine_recorded_only_holds_eligible_from_back_to_its_recorded_date() -> None:
    r = run("live_vaccine", immunization("21", ago(20)), _recorded_only(5))
    assert r.status == "fail"
    assert r.eligible_from == days_before(5) + W4


def test_uncertain_vaccine_recorded_only() -> None:
    im = _recorded_only(2)
    im["vaccineCode"]["coding"][0]["code"] = "188"
    assert status("live_vaccine", im) == "unknown"
    im["recorded"] = ago(40)
    assert status("live_vaccine", im) == "pass"


def test_uncertain_vaccine_undated_is_unknown_unless_a_live_one_fails() -> None:
    """A live vaccine with no date at all is unknown; a may-be-live one with none passed."""
    im = _recorded_only(None)
    im["vaccineCode"]["coding"][0]["code"] = "188"
    r = run("live_vaccine", im)
    assert r.status == "unknown"
    assert [(e.concept, e.note) for e in r.evidence] == [
        ("live_vaccine_uncertain", "may be live, undated")
    ]
    assert "may be live, undated" in r.reason
    r = run("live_vaccine", im, immunization("03", ago(10)))
    assert (r.status, r.eligible_from) == ("fail", days_before(10) + W4)


def test_live_vaccine_coded_under_cdc_cvx_page_address() -> None:
    im = immunization("03", ago(10))
    im["vaccineCode"]["coding"][0]["system"] = (
        "http://www2a.cdc.gov/vaccines/iis/iisstandards/vaccines.asp?rpt=cvx"
    )
    r = run("live_vaccine", im)
    assert r.status == "fail"
    assert r.reason.startswith(f"CVX 03 on {ago(10)}, within 4 weeks")


def test_live_vaccine_reason_trims_a_spaced_cvx_code() -> None:
    r = run("live_vaccine", immunization(" 03 ", ago(10)))
    assert r.status == "fail"
    assert r.reason.startswith(f"CVX 03 on {ago(10)}, within 4 weeks")
    assert [e.value for e in r.evidence] == ["CVX 03"]


def test_live_vaccine_historical_record_still_counts() -> None:
    im = immunization("03", ago(5))
    im["primarySource"] = False
    im["reportOrigin"] = {"coding": [{"code": "record"}]}
    assert status("live_vaccine", im) == "fail"


# --- records that are no exposure: doNotPerform, non-order intents, a Medication in error -----
def _not_given(res: dict) -> dict:
    return {**res, "doNotPerform": True}


@pytest.mark.parametrize(
    ("cid", "resource"),
    [
        ("background_therapy", req(HCQ, status="active", authored=ago(30))),
        ("washout_belimumab", req(None, text="belimumab", status="active", authored=ago(10))),
        ("prior_ianalumab", req(None, text="VAY736", status="active", authored=ago(400))),
    ],
)
def test_a_do_not_perform_order_is_no_exposure(cid: str, resource: dict) -> None:
    """MedicationRequest.doNotPerform = true: an order NOT to give the drug (FHIR R4); it
    counted as background therapy, a washout exposure and a prior ianalumab."""
    given = status(cid, resource)
    assert given == ("pass" if cid == "background_therapy" else "fail")
    r = run(cid, _not_given(resource))
    assert r.status == ("unknown" if cid == "background_therapy" else "pass")
    ctx = context(_not_given(resource))
    assert ctx.facts.exposures == [] and [(d.ref, d.why) for d in ctx.facts.dropped] == [(
        f"MedicationRequest/{resource['id']}", "doNotPerform"
    )]  # fmt: skip


def test_a_do_not_perform_order_is_not_a_medication_record_of_the_patient() -> None:
    past = stmt(status="completed", start=ago(300), end=ago(200))
    hcq = _not_given(req(HCQ, status="active", authored=ago(30)))
    assert status("background_therapy", hcq, past) == "fail"
    assert status("background_therapy", _not_given(req("748879", authored=ago(3)))) == "unknown"


@pytest.mark.parametrize(
    ("intent", "counts"),
    [
        ("proposal", False),
        ("option", False),
        ("plan", True),
        ("order", True),
        ("original-order", True),
        ("reflex-order", True),
        ("filler-order", True),
        ("instance-order", True),
    ],
)
def test_a_request_counts_by_its_intent(intent: str, counts: bool) -> None:
    """A proposal (a suggestion, no authorisation) or an option (an alternative within a
    RequestGroup) is no prescription (FHIR R4 MedicationRequest.intent); rules.toml
    [drop_intent]."""
    r = {**req(HCQ, status="active", authored=ago(30)), "intent": intent}
    assert status("background_therapy", r) == ("pass" if counts else "unknown")
    v = {**req(None, text="VAY736", status="completed", authored=ago(400)), "intent": intent}
    assert status("prior_ianalumab", v) == ("fail" if counts else "pass")


@pytest.mark.parametrize("mstatus", ["entered-in-error", "inactive", "active"])
def test_a_medication_entered_in_error_names_no_drug(mstatus: str) -> None:
    """A record referencing a Medication that is itself entered-in-error: which drug it was is
    not known (the record stays a medication record); an inactive Medication (no longer
    available, FHIR R4) still names the drug the patient had."""
    hcq = {**medication_resource(HCQ, mid="m9"), "status": mstatus}
    r = req(None, status="active", authored=ago(30), med_ref="Medication/m9")
    got = status("background_therapy", r, medications={"m9": hcq})
    assert got == ("fail" if mstatus == "entered-in-error" else "pass")
    vay = {**medication_resource(None, text="VAY736", mid="v9"), "status": mstatus}
    c = req(None, status="completed", authored=ago(400), med_ref="#v9", contained=[vay])
    got = status("prior_ianalumab", c)
    assert got == ("pass" if mstatus == "entered-in-error" else "fail")


# Route wordings as systems send them, not only "Topical"/"Inhalation": the SNOMED CT route
# displays (FHIR R4's route value set: "Respiratory tract route" is the inhaled route, with no
# "inhal" in it), EDQM standard terms ("Ocular use", "Auricular use", "Oromucosal use"), and EHR
# route names ("Both Eyes", "Left Ear", "Each Nostril", "Skin", "External"). A corticosteroid
# given so is not systemic (SPEC: systemic corticosteroid); before, each counted as systemic.
NOT_SYSTEMIC_ROUTES = [
    "Respiratory tract route",
    "Respiratory tract route (qualifier value)",
    "Ocular use",
    "Intravitreal",
    "Intraocular route",
    "Conjunctival route",
    "Both Eyes",
    "Left Eye",
    "Auricular use (ear)",
    "Both Ears",
    "Right Ear",
    "Each Nostril",
    "Oromucosal use",
    "Oropharyngeal route",
    "Gingival use",
    "Dental use",
    "Endotracheopulmonary use",
    "Nebulization",
    "Skin",
    "External",
    "Apply externally",
]
SYSTEMIC_ROUTES = [
    "Oral route",
    "Sublingual",
    "Buccal",
    "Intravenous route",
    "Intramuscular route",
    "Subcutaneous route",
    "Nasogastric tube",
    "Gastrostomy tube",
]


@pytest.mark.parametrize(
    ("route", "systemic"),
    [(r, False) for r in NOT_SYSTEMIC_ROUTES] + [(r, True) for r in SYSTEMIC_ROUTES],
)
def test_route_as_systems_word_it(route: str, systemic: bool) -> None:
    # prednisolone (8638) eye drops, triamcinolone (10759) cream: background therapy only when
    # systemic; a topical dose is not a high dose; topical tacrolimus (42316) is no washout
    pred = stmt("8638", status="active", start=ago(60), dosages=[dosage(mg(5), route=route)])
    assert status("background_therapy", pred) == ("pass" if systemic else "fail")
    big = stmt("10759", status="active", start=ago(20), dosages=[dosage(mg(60), route=route)])
    assert status("washout_high_dose_cs", big) == ("fail" if systemic else "pass")
    tac = stmt(
        "42316", status="completed", start=ago(30), end=ago(20), dosages=[dosage(route=route)]
    )
    assert status("washout_12wk", tac) == ("fail" if systemic else "pass")


def test_background_and_washout_12wk_concepts_are_spec_lists_and_do_not_overlap() -> None:
    """SPEC: background = systemic corticosteroid, antimalarial, methotrexate, azathioprine,
    mycophenolate, leflunomide, mizoribine; washout_12wk's "DMARD not allowed as background"
    must not hold any of them (a patient on methotrexate would pass one and fail the other)."""
    import csv

    from criteria_helpers import MAPPINGS, terminology

    by_concept: dict[str, set[str]] = {}
    with (MAPPINGS / "concepts" / "medications.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_concept.setdefault(row["concept"], set()).add(row["ingredient"])
    background = set(criterion("background_therapy").params["concepts"])
    washout = set(criterion("washout_12wk").params["concepts"])
    assert background == {"corticosteroid_systemic", "antimalarial", "dmard_background"}
    assert by_concept["dmard_background"] == {
        "methotrexate",
        "azathioprine",
        "mycophenolate mofetil",
        "mycophenolic acid",
        "leflunomide",
        "mizoribine",
    }
    allowed = set().union(*(by_concept[c] for c in background))
    for c in washout:
        assert not by_concept[c] & allowed, c
    # and by what the terminology makes of each allowed drug's name: no washout concept
    term = terminology()
    for ingredient in sorted(allowed):
        assert not term.concepts_for([], ingredient) & washout, ingredient


@pytest.mark.parametrize(
    ("unit", "code"),
    [
        ("{tab}", "{tab}"),  # UCUM annotations: {tab} is 1, a count of tablets
        ("{caps}", "{caps}"),
        ("{cap}", "{cap}"),
        ("{Tablets}", "{Tablets}"),
        ("tablets", None),  # free text, plural
        ("tabs", None),
        ("capsules", None),
        ("Tablet(s)", None),
    ],
)
def test_high_dose_tablets_in_any_tablet_or_capsule_spelling(unit: str, code: str | None) -> None:
    # docs/rules.md: "a dose in tablets (capsules, units `1`) uses the product's strength per
    # tablet"; `{tbl}`, `tab` and `tablet` were read as tablets but `{tab}` (UCUM: 1), `{caps}`,
    # `tablets` were no usable dose (unknown): prednisone 20 MG tablets x 3 a day is 60 mg, fail
    r = stmt("312615", status="active", start=ago(10), dosages=[dosage(qty(3, unit, code))])
    assert status("washout_high_dose_cs", r) == "fail"
    r = stmt("312615", status="active", start=ago(10), dosages=[dosage(qty(2, unit, code))])
    assert status("washout_high_dose_cs", r) == "pass"


@pytest.mark.parametrize("unit", ["tbls", "Tbls", "TBLS", "{tbls}"])
def test_high_dose_in_tablespoons_is_not_read_as_tablets(unit: str) -> None:
    # "tbls" is the pharmacy abbreviation for tablespoons, not a plural of "tbl" (tablet):
    # prednisone 20 MG tablets "3 tbls" a day is no usable dose (unknown), never 60 mg (fail)
    r = stmt("312615", status="active", start=ago(10), dosages=[dosage(qty(3, unit, None))])
    assert status("washout_high_dose_cs", r) == "unknown"


def test_prior_ianalumab_of_a_month_reaching_past_as_of_is_unknown() -> None:
    """Ianalumab dated "2026-11" as of 2026-11-25 may have been started on the 26th: unknown,
    as a partial date decides only when every day agrees; "2026-10" fails."""
    r = run("prior_ianalumab", stmt(None, text="ianalumab", status="completed", start="2026-11"))
    assert r.status == "unknown"
    assert r.reason == "prior ianalumab dated 2026-11, which may be after 2026-11-25"
    older = stmt(None, text="ianalumab", status="completed", start="2026-10")
    assert status("prior_ianalumab", older) == "fail"
