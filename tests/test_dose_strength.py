"""washout_high_dose_cs: the strength a Medication's `ingredient[].strength` gives a dose in
tablets or in mL (docs/rules.md, dose section); SPEC's limit is > 40 mg/day."""

from __future__ import annotations

from typing import Any

import pytest
from criteria_helpers import RXNORM, ago, cc, dosage, medication, qty, run, status

PREDNISONE, PREDNISOLONE, DEXAMETHASONE, HCQ = "8640", "8638", "3264", "5521"
LOCAL = "http://example.org/fhir/local-drug-codes"  # a site's own codes (none invented in RxNorm)


def ingredient(
    item: dict[str, Any] | None,
    numerator: dict[str, Any] | None,
    denominator: dict[str, Any] | None = None,
    active: bool | None = None,
) -> dict[str, Any]:
    ing: dict[str, Any] = {}
    if item is not None:
        ing["itemCodeableConcept"] = item
    if numerator is not None:
        ing["strength"] = {"numerator": numerator}
        if denominator is not None:
            ing["strength"]["denominator"] = denominator
    if active is not None:
        ing["isActive"] = active
    return ing


def tab(mg: float, item: dict[str, Any] | None, **kw: Any) -> dict[str, Any]:
    """An ingredient of `mg` per tablet."""
    return ingredient(item, qty(mg, "mg", "mg"), qty(1, "TAB", "{tbl}"), **kw)


def rx(code: str) -> dict[str, Any]:
    return cc(code, RXNORM)


def taking(
    dose: dict[str, Any],
    *ingredients: dict[str, Any],
    code: dict[str, Any] | None = None,
    **dkw: Any,
) -> dict[str, Any]:
    """An active MedicationRequest of a contained Medication with these ingredients."""
    med: dict[str, Any] = {"resourceType": "Medication", "id": "m", "ingredient": list(ingredients)}
    if code is not None:
        med["code"] = code
    return medication(
        "MedicationRequest",
        None,
        status="active",
        authored=ago(10),
        med_ref="#m",
        contained=[med],
        dosages=[dosage(dose, **dkw)],
    )


def tablets(n: float) -> dict[str, Any]:
    return qty(n, "TAB", "{tbl}")


def ml(n: float, unit: str = "mL", code: str | None = "mL") -> dict[str, Any]:
    return qty(n, unit, code)


MG20 = qty(20, "mg", "mg")
OMEPRAZOLE_TEXT = cc(text="omeprazole")
OMEPRAZOLE_LOCAL = cc("OMEP20", LOCAL, text="omeprazole")


# --- several ingredients: the corticosteroid's strength, never another drug's -----------------
@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        # omeprazole 20 mg listed first, prednisone 5 mg second: 3 tablets are 15 mg/day (not 60)
        (taking(tablets(3), tab(20, OMEPRAZOLE_TEXT), tab(5, rx(PREDNISONE))), "pass"),
        (taking(tablets(3), tab(20, OMEPRAZOLE_LOCAL), tab(5, rx(PREDNISONE))), "pass"),
        (taking(tablets(3), tab(5, rx(PREDNISONE)), tab(20, OMEPRAZOLE_TEXT)), "pass"),
        # 10 tablets: 50 mg/day
        (taking(tablets(10), tab(20, OMEPRAZOLE_TEXT), tab(5, rx(PREDNISONE))), "fail"),
        # the corticosteroid named by its ingredient's text alone
        (taking(tablets(3), tab(20, OMEPRAZOLE_TEXT), tab(5, cc(text="prednisone"))), "pass"),
        (taking(tablets(9), tab(20, OMEPRAZOLE_TEXT), tab(5, cc(text="Prednisone"))), "fail"),
    ],
)
def test_strength_is_the_corticosteroid_ingredients(resource: dict, expected: str) -> None:
    assert status("washout_high_dose_cs", resource) == expected


def test_strength_of_the_corticosteroid_gives_the_dose_in_evidence() -> None:
    r = run(
        "washout_high_dose_cs",
        taking(tablets(10), tab(20, OMEPRAZOLE_TEXT), tab(5, rx(PREDNISONE))),
    )
    assert (r.status, r.evidence[0].value) == ("fail", "50")


@pytest.mark.parametrize(
    "resource",
    [
        # two ingredients, neither identifiable, strengths 20 and 5: which is prednisone?
        taking(
            tablets(3),
            tab(20, cc(text="ingredient one")),
            tab(5, cc(text="ingredient two")),
            code=rx(PREDNISONE),
        ),
        # the drug itself listed with two strengths
        taking(tablets(3), tab(20, rx(PREDNISONE)), tab(5, cc(text="prednisone"))),
        # the only ingredient is another drug (hydroxychloroquine 200 mg): not prednisone's
        taking(tablets(3), tab(200, rx(HCQ)), code=cc(text="prednisone")),
    ],
)
def test_strength_that_cannot_be_told_is_no_usable_dose(resource: dict) -> None:
    # 3 tablets read at 20 (or 200) mg each would fail; at 5 mg pass: neither can be said
    assert status("washout_high_dose_cs", resource) == "unknown"


@pytest.mark.parametrize(("n", "expected"), [(3, "fail"), (2, "pass")])
def test_one_active_ingredient_not_identified_is_the_drugs(n: int, expected: str) -> None:
    # a prednisone Medication with one active ingredient (20 mg, named by nothing mapped) and
    # an excipient (isActive false): the strength is the active one's
    r = taking(
        tablets(n),
        tab(20, cc(text="active substance")),
        tab(80, cc(text="lactose monohydrate"), active=False),
        code=rx(PREDNISONE),
    )
    assert status("washout_high_dose_cs", r) == expected


# --- a strength in micrograms or grams ---------------------------------------------------------
def strength_in(value: float, unit: str, code: str | None) -> dict[str, Any]:
    return ingredient(rx(PREDNISONE), qty(value, unit, code), qty(1, "TAB", "{tbl}"))


@pytest.mark.parametrize(
    ("strength", "n", "expected"),
    [
        (strength_in(5000, "ug", "ug"), 10, "fail"),  # 5 mg x 10 = 50 mg/day
        (strength_in(5000, "ug", "ug"), 8, "pass"),  # 40 mg/day
        (strength_in(5000, "mcg", None), 10, "fail"),  # unit text alone (unit_aliases.csv)
        (strength_in(5000, "MCG", None), 8, "pass"),
        (strength_in(5000, "\u00b5g", None), 10, "fail"),
        (strength_in(0.02, "g", "g"), 3, "fail"),  # 20 mg x 3 = 60 mg/day
        (strength_in(0.02, "g", "g"), 2, "pass"),  # 40 mg/day
        (strength_in(20, "MG", None), 3, "fail"),  # mg as unit text, upper case
        # a unit coded in another system than UCUM: its unit text is read, as a dose's is
        (
            ingredient(
                rx(PREDNISONE),
                {"value": 20, "unit": "mg", "system": "urn:local:units", "code": "MG1"},
                qty(1, "TAB", "{tbl}"),
            ),
            3,
            "fail",
        ),
        (strength_in(20, "[iU]", "[iU]"), 1, "unknown"),  # no mass: no strength in mg
    ],
)
def test_strength_in_another_mass_unit_is_converted(strength: dict, n: int, expected: str) -> None:
    assert status("washout_high_dose_cs", taking(tablets(n), strength)) == expected


@pytest.mark.parametrize(("n", "value"), [(12, "40"), (14, "46.7")])
def test_dexamethasone_strength_in_micrograms(n: int, value: str) -> None:
    # 500 ug = 0.5 mg a tablet: 12 tablets are 6 mg (x 6.67 = 40, within), 14 are 7 mg (46.7)
    ing = ingredient(rx(DEXAMETHASONE), qty(500, "ug", "ug"), qty(1, "TAB", "{tbl}"))
    r = run("washout_high_dose_cs", taking(tablets(n), ing))
    assert r.evidence[0].value == value
    assert r.status == ("pass" if value == "40" else "fail")


# --- a solution: mg per mL is no tablet strength ----------------------------------------------
def solution(mg: float = 15, per_ml: float = 5, unit: str = "mL", code: str | None = "mL") -> dict:
    """Prednisolone oral solution, `mg` per `per_ml` mL."""
    return ingredient(rx(PREDNISOLONE), qty(mg, "mg", "mg"), qty(per_ml, unit, code))


@pytest.mark.parametrize(
    "dose",
    [
        qty(2, "1", "1"),  # 2 x 15 mg read as tablets: 30 mg/day, pass; but 2 what?
        qty(2, None, "1"),
        tablets(2),
        {"value": 2},  # no unit at all
    ],
)
def test_solution_strength_does_not_apply_to_units_or_tablets(dose: dict) -> None:
    assert status("washout_high_dose_cs", taking(dose, solution())) == "unknown"


@pytest.mark.parametrize(
    ("resource", "value"),
    [
        (taking(ml(20), solution()), "60"),  # 20 mL x 15 mg / 5 mL = 60 mg/day
        (taking(ml(10), solution()), "30"),  # 30 mg/day
        (taking(ml(10), solution(), frequency=2), "60"),  # 10 mL twice a day
        (taking(ml(20, "ml", None), solution()), "60"),  # unit text only
        (taking(ml(0.02, "L", "L"), solution()), "60"),  # 20 mL in litres
        (taking(ml(20), solution(15, 0.005, "L", "L")), "60"),  # 15 mg per 0.005 L
        (taking(ml(8), solution(5, 1)), "40"),  # 5 mg/mL x 8 mL: 40, within
    ],
)
def test_volume_times_concentration(resource: dict, value: str) -> None:
    r = run("washout_high_dose_cs", resource)
    assert r.evidence[0].value == value
    assert r.status == ("fail" if float(value) > 40 else "pass")


def test_volume_with_a_tablet_strength_is_no_usable_dose() -> None:
    assert status("washout_high_dose_cs", taking(ml(20), tab(5, rx(PREDNISONE)))) == "unknown"


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        # 10 mg per 2 tablets: 5 mg a tablet, 8 tablets are 40 mg/day (not 80)
        (taking(tablets(8), ingredient(rx(PREDNISONE), qty(10, "mg", "mg"), tablets(2))), "pass"),
        (taking(tablets(10), ingredient(rx(PREDNISONE), qty(10, "mg", "mg"), tablets(2))), "fail"),
        # no denominator: per tablet, as before
        (taking(tablets(3), ingredient(rx(PREDNISONE), qty(20, "mg", "mg"))), "fail"),
        (taking(tablets(2), ingredient(rx(PREDNISONE), qty(20, "mg", "mg"))), "pass"),
        # ... but no concentration for a dose in mL
        (taking(ml(20), ingredient(rx(PREDNISONE), qty(20, "mg", "mg"))), "unknown"),
        # per gram (a cream or powder), per actuation: neither per tablet nor per mL
        (taking(tablets(3), ingredient(rx(PREDNISONE), MG20, qty(1, "g", "g"))),
         "unknown"),
        (taking(qty(1, "1", "1"), ingredient(rx(PREDNISONE), MG20, qty(1, "{actuat}", "{actuat}"))),
         "unknown"),
        # the drug given per tablet and per mL: which product it is cannot be told
        (taking(tablets(2), tab(5, rx(PREDNISONE)),
                ingredient(rx(PREDNISONE), MG20, qty(1, "mL", "mL"))), "unknown"),
    ],
)  # fmt: skip
def test_strength_denominator(resource: dict, expected: str) -> None:
    assert status("washout_high_dose_cs", resource) == expected


# --- a dose with no unit: tablets of a tablet or capsule product of known strength -----------
# Synthea writes `doseQuantity: {"value": 1}`, no unit, for "predniSONE 5 MG Oral Tablet": read
# as that many tablets (capsules) only where the product is one and its strength is known
def unitless(n: float, name: str | None, code: str | None = None, **dkw: Any) -> dict[str, Any]:
    """An active MedicationRequest of `n` with no unit of an RxNorm product (`code`, `name`
    its display and text), as Synthea writes one; `dkw` as criteria_helpers.dosage."""
    return medication(
        "MedicationRequest",
        code,
        text=name,
        display=name if code else None,
        status="active",
        authored=ago(10),
        dosages=[dosage({"value": n}, **dkw)],
    )


@pytest.mark.parametrize(
    ("resource", "value", "read"),
    [
        # Synthea's record: 1 a day of prednisone 5 mg tablets is 5 mg/day
        (unitless(1, "predniSONE 5 MG Oral Tablet", "312617", frequency=1), "5",
         "1 (no unit; read as tablet) × 5 mg"),
        (unitless(1, "predniSONE 5 MG Oral Tablet", "312617", frequency=3), "15",
         "1 (no unit; read as tablet) × 5 mg"),
        # the name from products.csv where the record gives only the code: 2 x 20 mg
        (unitless(2, None, "312615"), "40", "2 (no unit; read as tablets) × 20 mg"),
        # a capsule; the strength from the record's text
        (unitless(3, "prednisone 10 MG Oral Capsule", frequency=1), "30",
         "3 (no unit; read as capsules) × 10 mg"),
    ],
)  # fmt: skip
def test_a_dose_with_no_unit_of_a_tablet_counts_tablets(
    resource: dict[str, Any], value: str, read: str
) -> None:
    r = run("washout_high_dose_cs", resource)
    assert (r.status, [e.value for e in r.evidence]) == ("pass", [value])
    assert r.evidence[0].unit == "mg/day"
    assert r.evidence[0].note == (
        f"prednisone {value} mg/day = {value} mg/day prednisone-equivalent; dose {read}"
    )


def test_a_dose_with_no_unit_over_the_limit_says_how_it_was_read() -> None:
    r = run("washout_high_dose_cs", unitless(3, "predniSONE 20 MG Oral Tablet", "312615"))
    assert r.status == "fail"
    assert r.reason == (
        "prednisone 60 mg/day prednisone-equivalent (dose 3 (no unit; read as tablets) × 20 mg)"
        " > 40 within 12 weeks (ongoing or no known end)"
    )


def test_a_dose_with_no_unit_of_a_medication_strength_per_tablet() -> None:
    # the Medication's ingredient, 5 mg per {tbl}: its strength says it is a tablet
    assert run("washout_high_dose_cs", taking({"value": 2}, tab(5, rx(PREDNISONE)))).evidence[
        0
    ].value == "10"
    assert status("washout_high_dose_cs", taking({"value": 9}, tab(5, rx(PREDNISONE)))) == "fail"


@pytest.mark.parametrize(
    "resource",
    [
        # no strength: how much a tablet is cannot be told
        unitless(1, "prednisone Oral Tablet"),
        # a solution: 1 of what (mL, a spoonful)? (its strength per mL is no tablet's either)
        unitless(1, "prednisone 5 MG/ML Oral Solution", "205301"),
        taking({"value": 1}, solution(5, 1), code=cc(text="prednisolone 5 MG/ML Oral Solution")),
        # a strength, but no tablet or capsule: an injection's vial, a pack of tablets
        unitless(1, "methylprednisolone sodium succinate 40 MG Injection"),
        unitless(1, "{21 (prednisone 5 MG Oral Tablet) } Pack", "763181"),
        # a Medication strength per unit, of no form said: a tablet or a vial?
        taking({"value": 1}, ingredient(rx(PREDNISONE), qty(5, "mg", "mg"))),
        # a tablet, and a Medication.form that says otherwise
        medication(
            "MedicationRequest",
            med_ref="#m",
            status="active",
            authored=ago(10),
            contained=[
                {"resourceType": "Medication", "id": "m", "form": cc(text="Oral suspension"),
                 "code": cc("312617", RXNORM, "predniSONE 5 MG Oral Tablet")}
            ],
            dosages=[dosage({"value": 1})],
        ),
    ],
)  # fmt: skip
def test_a_dose_with_no_unit_of_another_product_is_no_usable_dose(resource: dict) -> None:
    r = run("washout_high_dose_cs", resource)
    assert r.status == "unknown"
    assert r.reason.endswith("in window without a usable dose"), r.reason
    assert [e.note for e in r.evidence] == ["no usable dose"]
