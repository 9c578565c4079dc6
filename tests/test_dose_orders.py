"""washout_high_dose_cs on corticosteroid orders as EHRs write them in FHIR R4 (tablets with the
strength only in the product code, timing codes, IV pulses, tapers, routes, administrations):
the mg/day each gives, reasoned from SPEC (> 40 mg/day prednisone-equivalent within 12 weeks
fails; in window without a usable dose is unknown) and docs/rules.md before running. The other
dose test files (test_dose_lines, test_dose_strength, test_dose_timing) are near 400 lines."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from criteria_helpers import (
    RXNORM,
    SNOMED,
    UCUM,
    ago,
    cc,
    days_before,
    dosage,
    medication,
    mg,
    run,
)

PREDNISONE, METHYLPRED, DEXAMETHASONE, HYDROCORTISONE = "8640", "6902", "3264", "5492"
PREDNISONE_20_TAB = "312615"  # RxNorm SCD "prednisone 20 MG Oral Tablet" (products.csv)
BUDESONIDE_9_ER = "1366550"  # "24 HR budesonide 9 MG Extended Release Oral Tablet"
W12 = timedelta(weeks=12)


def order(*dosages: dict[str, Any], code: str | None = PREDNISONE, **kw: Any) -> dict[str, Any]:
    """A MedicationRequest (active, authored 10 days ago) with these dosage lines."""
    kw.setdefault("status", "active")
    kw.setdefault("authored", ago(10))
    return medication("MedicationRequest", code, dosages=list(dosages), **kw)


def given(code: str, when: str, dose: dict[str, Any], route: str = "Intravenous") -> dict[str, Any]:
    """A completed MedicationAdministration of `dose` at `when`."""
    return medication(
        "MedicationAdministration",
        code,
        status="completed",
        when=when,
        admin_dose=dose,
        admin_route=route,
    )


def days(n: float) -> dict[str, Any]:
    return {"value": n, "unit": "days", "system": UCUM, "code": "d"}


def tablets(n: float, code: str = "{tbl}", system: str = UCUM) -> dict[str, Any]:
    return {"value": n, "unit": "tablet", "system": system, "code": code}


def outcome(*resources: dict[str, Any]) -> tuple[str, str]:
    """The status and the mg/day prednisone-equivalent of the first evidence row ("" if none)."""
    r = run("washout_high_dose_cs", *resources)
    return str(r.status), (r.evidence[0].value if r.evidence else "")


# --- guards: what cohort reads right ----------------------------------------------------------
@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        # 3 tablets of RxNorm 312615 with no display or text: the strength (20 mg) comes from
        # products.csv's name of the code; 3 x 20 = 60 > 40
        (order(dosage(tablets(3), frequency=1), code=PREDNISONE_20_TAB), ("fail", "60")),
        # tablets coded in SNOMED (732936001 "Tablet (unit of presentation)"): the code is no
        # UCUM unit, the unit text "tablet" is read: 60 again
        (
            order(dosage(tablets(3, "732936001", SNOMED), frequency=1), code=PREDNISONE_20_TAB),
            ("fail", "60"),
        ),
        # the name in medicationCodeableConcept.text only, Epic style: 3 x 20 = 60
        (
            order(
                dosage({"value": 3, "unit": "tablet"}, frequency=1),
                code=None,
                text="predniSONE (DELTASONE) 20 MG tablet",
            ),
            ("fail", "60"),
        ),
        # mg coded in SNOMED (258684004 milligram): the unit text "mg", 60
        (
            order(dosage({"value": 60, "unit": "mg", "system": SNOMED, "code": "258684004"})),
            ("fail", "60"),
        ),
        # a weight-based dose (1 mg/kg) without a weight is no mass: no usable dose
        (
            order(dosage({"value": 1, "unit": "mg/kg", "system": UCUM, "code": "mg/kg"})),
            ("unknown", ""),
        ),
        # a BID timing code beside frequency 2: 2 a day, not 4; 20 x 2 = 40, not above 40
        (order(dosage(mg(20), frequency=2, timing_code="BID")), ("pass", "40")),
        # dexamethasone 4 mg Q6H: 16 mg/day x 6.67 = 106.7
        (order(dosage(mg(4), timing_code="Q6H"), code=DEXAMETHASONE), ("fail", "106.7")),
        # hydrocortisone 100 mg every 8 hours (stress dose): 300 mg x 0.25 = 75
        (
            order(dosage(mg(100), period=8, period_unit="h"), code=HYDROCORTISONE),
            ("fail", "75"),
        ),
        # hydrocortisone 20 mg twice a day (replacement): 40 mg x 0.25 = 10
        (order(dosage(mg(20), frequency=2), code=HYDROCORTISONE), ("pass", "10")),
        # every other day (frequency 1, period 2 d) is averaged (docs/rules.md): 80 / 2 = 40
        (order(dosage(mg(80), frequency=1, period=2)), ("pass", "40")),
        # a weekly methylprednisolone 500 mg pulse: 500 / 7 = 71.4 mg x 1.25 = 89.3
        (
            order(dosage(mg(500), frequency=1, period=1, period_unit="wk"), code=METHYLPRED),
            ("fail", "89.3"),
        ),
        # dexamethasone 6 mg a day (10 days): 6 x 6.67 (ingredients.csv) = 40.02, which the
        # rounding to 0.1 mg makes 40: not above 40
        (
            order(dosage(mg(6), frequency=1, boundsDuration=days(10)), code=DEXAMETHASONE),
            ("pass", "40"),
        ),
        # 1 g methylprednisolone in the dose's own entry with its infusion rate: the rate is the
        # dose's speed, 1000 mg x 1.25 = 1250
        (
            order(
                {
                    "doseAndRate": [
                        {
                            "doseQuantity": mg(1000),
                            "rateQuantity": {"value": 250, "unit": "mL/h", "code": "mL/h"},
                        }
                    ]
                },
                code=METHYLPRED,
            ),
            ("fail", "1250"),
        ),
        # Depo-Medrol 80 mg IM (a brand in the mappings, text only): 80 x 1.25 = 100
        (
            order(dosage(mg(80), route="Intramuscular"), code=None, text="Depo-Medrol 80 mg/mL"),
            ("fail", "100"),
        ),
        # Solu-Cortef (hydrocortisone sodium succinate, openFDA NDC 0009-0011) 100 mg IV every
        # 8 hours, named only by its brand: 300 mg x 0.25 = 75
        (
            order(
                dosage(mg(100), period=8, period_unit="h", route="Intravenous"),
                code=None,
                text="Solu-Cortef 100 mg IV every 8 hours",
            ),
            ("fail", "75"),
        ),
        # Hemady (dexamethasone 20 mg tablet, openFDA NDC 82111-955) once a day: 20 x 6.67
        (order(dosage(mg(20), frequency=1), code=None, text="HEMADY 20 mg"), ("fail", "133.4")),
        # Celestone Soluspan (betamethasone injectable suspension) 12 mg IM: 12 x 6.67 = 80.04
        (
            order(
                dosage(mg(12), route="Intramuscular"),
                code=None,
                text="Celestone Soluspan 6 mg/mL",
            ),
            ("fail", "80"),
        ),
        # a single 1 g methylprednisolone administration: 1250
        (given(METHYLPRED, f"{ago(5)}T10:00:00Z", mg(1000)), ("fail", "1250")),
    ],
)
def test_orders_as_ehrs_write_them(resource: dict[str, Any], expected: tuple[str, str]) -> None:
    assert outcome(resource) == expected


def test_a_three_day_pulse_fails_until_84_days_after_it() -> None:
    # 1 g a day for 3 days from 2026-11-15: ends 2026-11-18 (a part of a day counts whole,
    # docs/rules.md), eligible 84 days later
    line = dosage(mg(1000), frequency=1, count=3, boundsDuration=days(3))
    r = run("washout_high_dose_cs", order(line, code=METHYLPRED))
    assert (r.status, r.evidence[0].value) == ("fail", "1250")
    assert r.eligible_from == days_before(10 - 3) + W12 == date(2027, 2, 10)


def test_a_volume_of_a_vial_reads_through_its_strength_per_ml() -> None:
    # Solu-Medrol 1 g in 16 mL, 8 mL given: 500 mg x 1.25 = 625
    med = {
        "resourceType": "Medication",
        "id": "m",
        "code": cc(text="methylprednisolone sodium succinate 1000 MG Injection"),
        "ingredient": [
            {
                "itemCodeableConcept": cc(METHYLPRED, RXNORM),
                "strength": {
                    "numerator": mg(1000),
                    "denominator": {"value": 16, "unit": "mL", "system": UCUM, "code": "mL"},
                },
            }
        ],
    }
    ma = medication(
        "MedicationAdministration",
        None,
        status="completed",
        when=ago(5),
        med_ref="#m",
        contained=[med],
        admin_dose={"value": 8, "unit": "mL", "system": UCUM, "code": "mL"},
    )
    assert outcome(ma) == ("fail", "625")


@pytest.mark.parametrize(
    "resource",
    [
        # dexamethasone eye drops: the route's display says ophthalmic, not systemic
        order(
            {**dosage(mg(6), timing_code="QID"), "route": cc("54485002", SNOMED, None, "Ophthalmic route")},
            code=DEXAMETHASONE,
        ),
        # the same eye drops with the route as a bare code, as some EHRs send it: its display
        # comes from mappings/routes.csv ("Ophthalmic use", FHIR R4 route-codes)
        order(
            {**dosage(mg(6), timing_code="QID"), "route": cc("54485002", SNOMED)},
            code=DEXAMETHASONE,
        ),
        # an inhaled dose by SNOMED's "Respiratory tract route"
        order(
            {**dosage(mg(8)), "route": cc("447694001", SNOMED, None, "Respiratory tract route")},
            code=DEXAMETHASONE,
        ),
        # a topical cream by its name
        order(
            dosage({"value": 1, "unit": "application"}, frequency=2),
            code=None,
            text="hydrocortisone 2.5 % Topical Cream",
        ),
        # a Kenalog (triamcinolone) cream: no systemic brand name, and "cream" is non-systemic
        order(
            dosage({"value": 1, "unit": "application"}, frequency=2),
            code=None,
            text="Kenalog 0.1 % cream",
        ),
        # the same ointment by the generic name: non-systemic by its form word
        order(
            dosage({"value": 1, "unit": "application"}, frequency=2),
            code=None,
            text="triamcinolone acetonide 0.1 % ointment",
        ),
        # oral budesonide (9 mg, largely first-pass metabolised) is not a systemic
        # corticosteroid of the trial's concept
        order(dosage(mg(9), frequency=1), code=BUDESONIDE_9_ER),
    ],
)
def test_non_systemic_corticosteroids_pass(resource: dict[str, Any]) -> None:
    assert outcome(resource)[0] == "pass"


def test_a_bare_oral_route_code_stays_systemic() -> None:
    """Dexamethasone 6 mg QID by route code 26643006 (Oral, no display): 24 mg x 6.67 = 160.08
    mg/day prednisone-equivalent (shown to one decimal), > 40: fails (SPEC), as with no route."""
    d = {**dosage(mg(6), timing_code="QID"), "route": cc("26643006", SNOMED)}
    assert outcome(order(d, code=DEXAMETHASONE)) == ("fail", "160.1")


# --- administrations on one day add up ---------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "hours", "dose", "route", "expected"),
    [
        # dexamethasone 4 mg IV every 6 hours, one MedicationAdministration each: 16 mg that
        # day x 6.67 = 106.7 (each record alone, 26.7, passed)
        (DEXAMETHASONE, (0, 6, 12, 18), 4, "Intravenous", "106.7"),
        # hydrocortisone 100 mg every 8 hours: 300 mg x 0.25 = 75 (each alone 25 passed)
        (HYDROCORTISONE, (0, 8, 16), 100, "Intravenous", "75"),
        # prednisone 30 mg twice a day on the ward: 60 (each alone 30 passed)
        (PREDNISONE, (8, 20), 30, "Oral", "60"),
    ],
)
def test_administrations_of_one_day_add_up(
    code: str, hours: tuple[int, ...], dose: float, route: str, expected: str
) -> None:
    day = ago(5)
    mas = [given(code, f"{day}T{h:02d}:00:00Z", mg(dose), route) for h in hours]
    r = run("washout_high_dose_cs", *mas)
    assert r.status == "fail", r.reason
    # each record shows the day's total; eligible 84 days after that day
    assert {e.value for e in r.evidence} == {expected}
    assert r.eligible_from == days_before(5) + W12


def test_administrations_on_different_days_do_not_add_up() -> None:
    # 30 mg on each of two days: 30 mg/day, within the limit
    mas = [given(PREDNISONE, f"{ago(n)}T08:00:00Z", mg(30), "Oral") for n in (5, 4)]
    r = run("washout_high_dose_cs", *mas)
    assert (r.status, {e.value for e in r.evidence}) == ("pass", {"30"})


def test_administrations_of_other_drugs_on_one_day_stay_apart() -> None:
    # dexamethasone 4 mg (26.7) and prednisone 10 mg on one day: each read as its own drug, as
    # before (the sum over drugs, 36.7, is within the limit anyway)
    day = ago(5)
    mas = [given(DEXAMETHASONE, f"{day}T08:00:00Z", mg(4)), given(PREDNISONE, f"{day}T09:00:00Z", mg(10), "Oral")]
    r = run("washout_high_dose_cs", *mas)
    assert (r.status, sorted(e.value for e in r.evidence)) == ("pass", ["10", "26.7"])


# --- a taper's steps follow one another --------------------------------------------------------
def test_a_tapers_later_step_ends_after_the_steps_before_it() -> None:
    # authored 2026-11-15: 80 mg for 3 days, then 60 mg for 7 days, then 30 mg for 7 days. The
    # 60 mg step runs after the 80 mg one, to 2026-11-25 (3 + 7 days), so the exposure over
    # 40 mg/day ends then: eligible 84 days later (read from the order's date for its own 7 days,
    # it ended 2026-11-22 and was eligible 3 days early)
    lines = [
        dosage(mg(80), frequency=1, sequence=1, boundsDuration=days(3)),
        dosage(mg(60), frequency=1, sequence=2, boundsDuration=days(7)),
        dosage(mg(30), frequency=1, sequence=3, boundsDuration=days(7)),
    ]
    r = run("washout_high_dose_cs", order(*lines))
    assert r.status == "fail"
    assert r.eligible_from == days_before(0) + W12 == date(2027, 2, 17)


def test_a_tapers_high_step_after_a_low_one_is_in_the_window() -> None:
    # authored 100 days ago: 20 mg for 7 days, then 60 mg for 14 days, which ends 79 days ago,
    # inside the 84-day window: fail until 5 days after as_of (read from the order's date, it
    # ended 86 days ago and passed)
    lines = [
        dosage(mg(20), frequency=1, sequence=1, boundsDuration=days(7)),
        dosage(mg(60), frequency=1, sequence=2, boundsDuration=days(14)),
    ]
    r = run("washout_high_dose_cs", order(*lines, status="completed", authored=ago(100)))
    assert r.status == "fail", r.reason
    assert r.eligible_from == days_before(79) + W12 == date(2026, 11, 30)


def test_concurrent_lines_of_a_taper_step_share_its_days() -> None:
    # step 1: 30 mg morning and 20 mg evening (one sequence: concurrent, 50 mg/day) for 7
    # days from 100 days ago; step 2: 10 mg for 7 days. The 50 mg step ends 93 days ago,
    # before the window: the concurrent line's 7 days are not added to step 1's
    lines = [
        dosage(mg(30), frequency=1, sequence=1, when=["MORN"], boundsDuration=days(7)),
        dosage(mg(20), frequency=1, sequence=1, when=["EVE"], boundsDuration=days(7)),
        dosage(mg(10), frequency=1, sequence=2, boundsDuration=days(7)),
    ]
    r = run("washout_high_dose_cs", order(*lines, status="completed", authored=ago(100)))
    assert r.status == "pass", r.reason
