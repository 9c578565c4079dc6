"""washout_high_dose_cs on a Dosage whose doseAndRate holds several entries: the same dose in
several forms, as Epic sends it ("ordered" 1 mg/kg beside "calculated" 60 mg; FHIR R4 types
them by http://terminology.hl7.org/CodeSystem/dose-rate-type). Every entry is read: those
whose dose reads (a mass, tablets of a known strength ...) count, and where they disagree the
dose is the range between them (docs/rules.md `washout_high_dose_cs`). SPEC §3: > 40 mg/day
prednisone-equivalent within 12 weeks fails; a wrong pass of an exclusion is the worst outcome,
so a range across the limit is unknown, never a guess."""

from __future__ import annotations

from typing import Any

import pytest
from criteria_helpers import UCUM, ago, dosage, medication, mg, qty, run

PREDNISONE = "8640"
PREDNISONE_20_TAB = "312615"  # RxNorm SCD "prednisone 20 MG Oral Tablet" (products.csv)
DOSE_RATE_TYPE = "http://terminology.hl7.org/CodeSystem/dose-rate-type"
PER_KG = qty(1, "mg/kg", "mg/kg")


def entry(dose: dict[str, Any], kind: str | None = None, **more: Any) -> dict[str, Any]:
    """A doseAndRate entry giving `dose` (a Quantity, or a doseRange as {"low":, "high":}),
    typed `kind` (ordered, calculated, as-administered) when given."""
    key = "doseRange" if "low" in dose or "high" in dose else "doseQuantity"
    out: dict[str, Any] = {key: dose, **more}
    if kind is not None:
        out["type"] = {"coding": [{"system": DOSE_RATE_TYPE, "code": kind}]}
    return out


def tablets(n: float) -> dict[str, Any]:
    return {"value": n, "unit": "tablet", "system": UCUM, "code": "{tbl}"}


def outcome(
    *entries: dict[str, Any], code: str = PREDNISONE, needed: bool = False, **kw: Any
) -> tuple[str, str, str]:
    """Status, first evidence value and reason of an active order (10 days ago) whose one line
    (once a day unless `kw` says otherwise; as needed if `needed`) holds these doseAndRate
    entries."""
    kw.setdefault("frequency", 1)
    line = {**dosage(**kw), "doseAndRate": list(entries)}
    if needed:
        line["asNeededBoolean"] = True
    order = medication(
        "MedicationRequest", code, status="active", authored=ago(10), dosages=[line]
    )
    r = run("washout_high_dose_cs", order)
    return str(r.status), (r.evidence[0].value if r.evidence else ""), r.reason


# --- an entry that does not read beside one that does -----------------------------------------
def test_a_weight_based_dose_beside_its_calculated_mg_reads_the_mg() -> None:
    """The QA audit's case: 1 mg/kg (no weight to convert it by) then 60 mg. Only the first
    entry was read: no usable dose, unknown instead of the fail 60 mg/day is."""
    status, value, _ = outcome(entry(PER_KG, "ordered"), entry(mg(60), "calculated"))
    assert (status, value) == ("fail", "60")
    # in either order, and untyped
    assert outcome(entry(mg(60)), entry(PER_KG))[:2] == ("fail", "60")
    # 10 mg read beside it passes on 10: the mg/kg one is that dose in another form
    assert outcome(entry(PER_KG, "ordered"), entry(mg(10), "calculated"))[:2] == ("pass", "10")


def test_tablets_of_a_known_strength_beside_a_weight_based_dose() -> None:
    """3 tablets of prednisone 20 mg (the strength from the product code's name) = 60 mg."""
    got = outcome(entry(PER_KG, "ordered"), entry(tablets(3), "calculated"), code=PREDNISONE_20_TAB)
    assert got[:2] == ("fail", "60")


def test_tablets_without_a_strength_beside_mg_read_the_mg() -> None:
    """Of plain prednisone (no strength anywhere) 3 tablets are no usable dose; 60 mg is."""
    assert outcome(entry(tablets(3)), entry(mg(60)))[:2] == ("fail", "60")
    assert outcome(entry(tablets(3)), entry(mg(10)))[:2] == ("pass", "10")


def test_no_entry_that_reads_is_no_usable_dose() -> None:
    status, _, reason = outcome(entry(PER_KG, "ordered"), entry(tablets(3), "calculated"))
    assert status == "unknown"
    assert "without a usable dose" in reason


def test_a_calculated_mg_entry_alone() -> None:
    assert outcome(entry(mg(60), "calculated"))[:2] == ("fail", "60")
    assert outcome(entry(mg(20), "calculated"))[:2] == ("pass", "20")


# --- several entries that read -----------------------------------------------------------------
def test_agreeing_entries() -> None:
    assert outcome(entry(mg(60), "ordered"), entry(mg(60), "calculated"))[:2] == ("fail", "60")
    assert outcome(entry(mg(20), "ordered"), entry(mg(20), "calculated"))[:2] == ("pass", "20")
    # 3 tablets of 20 mg and 60 mg are one dose
    got = outcome(entry(tablets(3)), entry(mg(60)), code=PREDNISONE_20_TAB)
    assert got[:2] == ("fail", "60")
    # 0.06 g is 60 mg
    assert outcome(entry(mg(60)), entry(qty(0.06, "g", "g")))[:2] == ("fail", "60")


@pytest.mark.parametrize("order", [(10, 60), (60, 10)])
def test_entries_across_the_limit_are_unknown(order: tuple[int, int]) -> None:
    """10 mg then 60 mg read 10 and passed (a wrong pass); 60 then 10 read 60 and failed. The
    dose is 10 to 60 mg/day: it cannot tell if > 40."""
    status, _, reason = outcome(*(entry(mg(n)) for n in order))
    assert status == "unknown"
    assert "prednisone 10 to 60 mg/day prednisone-equivalent" in reason
    assert "cannot tell if > 40" in reason


def test_entries_both_above_the_limit_fail_on_the_least() -> None:
    status, value, reason = outcome(entry(mg(60), "ordered"), entry(mg(50), "calculated"))
    assert (status, value) == ("fail", "50")
    assert "prednisone 50 to 60 mg/day prednisone-equivalent > 40" in reason


def test_entries_both_within_the_limit_pass_on_the_most() -> None:
    """10 mg then 20 mg passed on 10: it passes, on the most it may be, 20."""
    assert outcome(entry(mg(10)), entry(mg(20)))[:2] == ("pass", "20")
    # at the limit is within it
    assert outcome(entry(mg(40)), entry(mg(30)))[:2] == ("pass", "40")


def test_a_dose_range_entry_beside_a_quantity_widens_the_range() -> None:
    """60 mg beside a doseRange of 30 to 50 mg: 30 to 60, unknown; beside 45 to 50: a fail."""
    assert outcome(entry(mg(60)), entry({"low": mg(30), "high": mg(50)}))[0] == "unknown"
    assert outcome(entry(mg(60)), entry({"low": mg(45), "high": mg(50)}))[:2] == ("fail", "45")


def test_a_dose_range_entry_with_its_low_alone_makes_the_dose_a_least() -> None:
    """60 mg beside "30 mg or more": at least 30, unknown; beside "50 mg or more": a fail."""
    assert outcome(entry(mg(60)), entry({"low": mg(30)}))[0] == "unknown"
    assert outcome(entry(mg(60)), entry({"low": mg(50)}))[:2] == ("fail", "50")


def test_entries_times_administrations_a_day() -> None:
    """15 or 30 mg twice a day: 30 to 60 mg/day, unknown; 25 or 30 mg twice a day fails."""
    assert outcome(entry(mg(15)), entry(mg(30)), frequency=2)[0] == "unknown"
    assert outcome(entry(mg(25)), entry(mg(30)), frequency=2)[:2] == ("fail", "50")


def test_entries_taken_as_needed_are_none_up_to_the_most() -> None:
    """As needed 10 or 20 mg once a day: 0 to 20, a pass; 10 or 60 mg: 0 to 60, unknown."""
    assert outcome(entry(mg(10)), entry(mg(20)), needed=True)[:2] == ("pass", "20")
    assert outcome(entry(mg(10)), entry(mg(60)), needed=True)[0] == "unknown"
    # and 50 or 60 mg as needed (0 to 60) no longer fails
    assert outcome(entry(mg(50)), entry(mg(60)), needed=True)[0] == "unknown"


def test_a_rate_entry_beside_several_dose_entries_still_makes_the_dose_a_least() -> None:
    """A rate in an entry of its own may add to the dose (docs/rules.md): 50 or 60 mg with it
    still fails, 10 or 20 mg with it is no usable dose."""
    rate = {"rateQuantity": qty(10, "mg/h", "mg/h")}
    assert outcome(entry(mg(50)), entry(mg(60)), rate)[0] == "fail"
    assert outcome(entry(mg(10)), entry(mg(20)), rate)[0] == "unknown"


# --- a single entry: as before -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("one", "expected"),
    [
        (entry(mg(60)), ("fail", "60")),
        (entry(mg(10)), ("pass", "10")),
        (entry(mg(40), "ordered"), ("pass", "40")),
        (entry({"low": mg(30), "high": mg(60)}), ("unknown", "")),
        (entry(PER_KG), ("unknown", "")),
    ],
)
def test_a_single_entry_is_read_as_before(one: dict[str, Any], expected: tuple[str, str]) -> None:
    status, value, _ = outcome(one)
    assert (status, value if status != "unknown" else "") == expected
