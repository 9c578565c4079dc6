"""washout_high_dose_cs over what a Dosage line gives: a rate beside (or instead of) its dose, a
doseRange with one end, and days of the week (docs/rules.md `washout_high_dose_cs`). SPEC:
> 40 mg/day prednisone-equivalent within 12 weeks fails, a corticosteroid in the window without
a usable dose is unknown; a wrong pass of an exclusion is the worst outcome."""

from __future__ import annotations

from typing import Any

import pytest
from criteria_helpers import ago, dosage, medication, mg, qty, run, status

PREDNISONE = "8640"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
RATE_QUANTITY = {"rateQuantity": qty(10, "mg/h", "mg/h")}
RATE_RATIO = {"rateRatio": {"numerator": mg(10), "denominator": qty(1, "h", "h")}}
RATE_RANGE = {"rateRange": {"low": qty(5, "mg/h", "mg/h"), "high": qty(10, "mg/h", "mg/h")}}


def taking(*dosages: dict[str, Any]) -> dict[str, Any]:
    """An active prednisone MedicationRequest authored 10 days ago with these lines."""
    return medication(
        "MedicationRequest", PREDNISONE, status="active", authored=ago(10), dosages=list(dosages)
    )


def high_dose(*dosages: dict[str, Any]) -> str:
    return status("washout_high_dose_cs", taking(*dosages))


def amounts(*entries: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """A once-a-day line whose doseAndRate holds these entries as they are."""
    return {**dosage(frequency=1, **kw), "doseAndRate": list(entries)}


# --- 1. a rate that gives the amount, not read ------------------------------------------------
@pytest.mark.parametrize("rate", [RATE_QUANTITY, RATE_RATIO, RATE_RANGE])
def test_a_rate_beside_a_low_dose_is_no_usable_dose(rate: dict[str, Any]) -> None:
    """It was skipped: 5 mg/day, pass. The rate may be more than the 5 mg (an infusion)."""
    assert high_dose(amounts({"doseQuantity": mg(5)}, rate)) == "unknown"
    # ... as a line of its own beside a 5 mg line (it was taken for an instruction)
    assert high_dose(amounts(rate), dosage(mg(5), frequency=1)) == "unknown"


@pytest.mark.parametrize("rate", [RATE_QUANTITY, RATE_RATIO, RATE_RANGE])
def test_a_rate_beside_a_dose_over_the_limit_still_fails(rate: dict[str, Any]) -> None:
    assert high_dose(amounts({"doseQuantity": mg(60)}, rate)) == "fail"
    assert high_dose(amounts(rate), dosage(mg(60), frequency=1)) == "fail"


def test_a_rate_of_the_dose_itself_is_its_speed() -> None:
    """One doseAndRate entry with both: the dose, given at that rate (1000 mL/h)."""
    line = amounts({"doseQuantity": mg(5), "rateQuantity": qty(1000, "mL/h", "mL/h")})
    assert high_dose(line) == "pass"


def test_a_dose_quantity_without_a_value_is_no_usable_dose() -> None:
    """A dose given whose value is left out: not an instruction without a dose."""
    assert high_dose(amounts({"doseQuantity": {"unit": "mg"}}), dosage(mg(5))) == "unknown"


@pytest.mark.parametrize(
    ("unread", "expected"),
    [
        # concurrent lines add up: the lines read alone are over the limit (was unknown)
        (dosage(mg(5), timing_text="2 times daily", sequence=1), "fail"),
        (amounts(RATE_QUANTITY, sequence=1), "fail"),
    ],
)
def test_a_concurrent_set_read_in_part_fails_when_that_part_is_over(
    unread: dict[str, Any], expected: str
) -> None:
    assert high_dose(dosage(mg(50), frequency=1, sequence=1), unread) == expected
    # ... and within the limit, no usable dose
    assert high_dose(dosage(mg(30), frequency=1, sequence=1), unread) == "unknown"


def test_a_rate_given_on_a_medication_administration_alone_is_no_usable_dose() -> None:
    admin = medication("MedicationAdministration", PREDNISONE, status="completed", when=ago(5))
    admin["dosage"] = {"rateQuantity": qty(10, "mg/h", "mg/h")}
    r = run("washout_high_dose_cs", admin)
    assert r.status == "unknown"
    assert "without a usable dose" in r.reason, r.reason


# --- 2. a doseRange with one end --------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # its low alone over the limit: at least that (was unknown)
        (dosage(dose_range=(mg(50), None), frequency=1), "fail"),
        (dosage(dose_range=(mg(25), None), frequency=2), "fail"),  # at least 50 a day
        (dosage(dose_range=(mg(30), None), frequency=1), "unknown"),
        (dosage(dose_range=(mg(40), None), frequency=1), "unknown"),  # 40 or more
        (dosage(dose_range=(mg(25), None), frequency=1, frequencyMax=2), "unknown"),  # 25 ...
        # its high alone at or within the limit: at most that (was unknown)
        (dosage(dose_range=(None, mg(20)), frequency=1), "pass"),
        (dosage(dose_range=(None, mg(40)), frequency=1), "pass"),
        (dosage(dose_range=(None, mg(20)), frequency=1, frequencyMax=2), "pass"),  # 0 to 40
        (dosage(dose_range=(None, mg(30)), frequency=1, frequencyMax=2), "unknown"),  # to 60
        (dosage(dose_range=(None, mg(60)), frequency=1), "unknown"),
        (dosage(dose_range=(None, qty(20000, "ug", "ug")), frequency=1), "pass"),  # 20 mg
        (dosage(dose_range=(None, qty(60000, "ug", "ug")), frequency=1), "unknown"),
        # an end that is no Quantity is as good as left out
        (dosage(dose_range=({"unit": "mg"}, mg(20)), frequency=1), "pass"),
        (dosage(dose_range=(mg(50), {"unit": "mg"}), frequency=1), "fail"),
        (dosage(dose_range=({"unit": "mg"}, {"unit": "mg"}), frequency=1), "unknown"),
        # with neither end: no usable dose
        (dosage(dose_range=(None, None), frequency=1), "unknown"),
    ],
)
def test_a_dose_range_with_one_end(line: dict[str, Any], expected: str) -> None:
    assert high_dose(line) == expected


@pytest.mark.parametrize(
    ("range_line", "expected"),
    [
        (dosage(dose_range=(None, mg(20)), frequency=1), "pass"),
        (dosage(dose_range=(mg(50), None), frequency=1), "fail"),
        (dosage(dose_range=(mg(30), None), frequency=1), "unknown"),
    ],
)
def test_a_dose_range_with_one_end_beside_a_low_line(
    range_line: dict[str, Any], expected: str
) -> None:
    assert high_dose(range_line, dosage(mg(5), frequency=1)) == expected


def test_a_dose_range_with_its_high_only_passes_on_that_high() -> None:
    r = run("washout_high_dose_cs", taking(dosage(dose_range=(None, mg(20)), frequency=2)))
    assert r.status == "pass", r.reason
    [ev] = r.evidence
    assert (ev.value, ev.unit) == ("40", "mg/day")  # 20 mg twice a day at most


def test_a_dose_range_with_its_low_only_fails_on_that_low() -> None:
    r = run("washout_high_dose_cs", taking(dosage(dose_range=(mg(50), None), frequency=1)))
    assert r.status == "fail", r.reason
    assert "prednisone 50 mg/day prednisone-equivalent > 40" in r.reason, r.reason


# --- 3. days of the week ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # a weekly dose on one day: averaged over the week, as a weekly dose is (60/7)
        (dosage(mg(60), frequency=1, period_unit="wk", dayOfWeek=["mon"]), "pass"),
        (dosage(mg(300), frequency=1, period_unit="wk", dayOfWeek=["mon"]), "fail"),  # 42.9
        # once a day on three days a week: 3 a week, averaged (was read as 60 mg/day: fail)
        (dosage(mg(60), frequency=1, dayOfWeek=["mon", "wed", "fri"]), "pass"),  # 25.7
        (dosage(mg(100), frequency=1, dayOfWeek=["mon", "wed", "fri"]), "fail"),  # 42.9
        (dosage(mg(30), frequency=2, dayOfWeek=["mon", "wed", "fri"]), "pass"),  # 25.7
        (dosage(mg(60), frequency=2, dayOfWeek=["mon", "wed", "fri"]), "fail"),  # 51.4
        (dosage(mg(60), dayOfWeek=["mon", "wed", "fri"]), "pass"),  # no rate: once each day
        (dosage(mg(60), dayOfWeek=["mon", "mon"]), "pass"),  # one day listed twice
        (dosage(mg(45), frequency=1, dayOfWeek=["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
         "fail"),  # fmt: skip
        (dosage(mg(60), timing_code="QD", dayOfWeek=["mon", "wed", "fri"]), "pass"),
        (dosage(mg(60), timing_code="BID", dayOfWeek=["mon", "wed", "fri"]), "fail"),
        (dosage(mg(60), when=["MORN", "EVE"], dayOfWeek=["mon", "wed", "fri"]), "fail"),
        (dosage(mg(60), when=["MORN"], dayOfWeek=["mon", "wed", "fri"]), "pass"),
        # once a week on two days: one on each may be meant, 1 to 2 a week (as `when`)
        (dosage(mg(210), frequency=1, period_unit="wk", dayOfWeek=["mon", "thu"]), "unknown"),
        (dosage(mg(140), frequency=1, period_unit="wk", dayOfWeek=["mon", "thu"]), "pass"),
        (dosage(mg(350), frequency=1, period_unit="wk", dayOfWeek=["mon", "thu"]), "fail"),
        (dosage(mg(210), frequency=2, period_unit="wk", dayOfWeek=["mon", "thu"]), "fail"),
        # every other day on three days: FHIR's reading (the days of both: 3 in 2 weeks) to
        # one on each day or every other day, 60 mg is 12.9 to 30 mg/day, 100 mg 21.4 to 50
        (dosage(mg(60), frequency=1, period=2, dayOfWeek=["mon", "wed", "fri"]), "pass"),
        (dosage(mg(100), frequency=1, period=2, dayOfWeek=["mon", "wed", "fri"]), "unknown"),
        (dosage(mg(200), frequency=1, period=2, dayOfWeek=["mon", "wed", "fri"]), "fail"),
        # days that do not read: not read (no usable dose), never every day
        (dosage(mg(5), frequency=1, dayOfWeek=["monday"]), "unknown"),
        (dosage(mg(5), frequency=1, dayOfWeek="mon"), "unknown"),
        (dosage(mg(5), frequency=1, dayOfWeek=[1]), "unknown"),
        (dosage(mg(60), frequency=1, dayOfWeek=["mon", "xyz"]), "unknown"),
        (dosage(mg(30), frequency=1, dayOfWeek=[]), "pass"),  # none listed: every day
    ],
)
def test_days_of_the_week_average_over_the_week(line: dict[str, Any], expected: str) -> None:
    assert high_dose(line) == expected


def test_days_of_the_week_give_the_averaged_dose() -> None:
    line = dosage(mg(70), frequency=1, dayOfWeek=["mon", "thu"])
    r = run("washout_high_dose_cs", taking(line))
    assert r.status == "pass", r.reason
    [ev] = r.evidence
    assert (ev.value, ev.unit) == ("20", "mg/day")  # 140 mg a week


# --- 4. values no dosage can have ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # FHIR: frequency and frequencyMax are positiveInt; 0 or less a day passed at 0 mg/day
        (dosage(mg(60), frequency=0), "unknown"),
        (dosage(mg(60), frequency=-1), "unknown"),
        (dosage(mg(30), frequency=1, frequencyMax=0), "unknown"),
        # a dose below nothing is none read (it passed, as below the limit)
        (dosage(mg(-60), frequency=1), "unknown"),
        (dosage(dose_range=(mg(-60), mg(60)), frequency=1), "unknown"),  # 0 to 60
        (dosage(dose_range=(None, mg(-5)), frequency=1), "unknown"),
        (dosage(mg(0), frequency=1), "pass"),  # none given (a dose held)
    ],
)
def test_a_count_or_dose_below_nothing_is_not_read(line: dict[str, Any], expected: str) -> None:
    assert high_dose(line) == expected


def test_a_dose_below_nothing_beside_a_low_line_is_unknown() -> None:
    assert high_dose(dosage(mg(-60), frequency=1), dosage(mg(5), frequency=1)) == "unknown"


# --- 5. times of day ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (["08:00:00", "08:00:00"], "pass"),  # one time listed twice (as `when`): 30 mg/day
        (["08:00:00", "20:00:00"], "fail"),
        (["08:00:00", 8], "unknown"),  # a time that is no time: of the wrong shape
    ],
)
def test_each_time_of_day_counts_once(times: list[Any], expected: str) -> None:
    assert high_dose(dosage(mg(30), timeOfDay=times)) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # a period alone is once each period, but two times of day beside it may mean one at
        # each (an EHR's "daily at 08:00 and 20:00"): 30 to 60 mg/day, not 30 (a wrong pass)
        (dosage(mg(30), period=1, timeOfDay=["08:00:00", "20:00:00"]), "unknown"),
        (dosage(mg(30), frequency=1, timeOfDay=["08:00:00", "20:00:00"]), "unknown"),
        (dosage(mg(15), period=1, timeOfDay=["08:00:00", "20:00:00"]), "pass"),  # 15 to 30
        (dosage(mg(25), frequency=2, timeOfDay=["08:00:00", "20:00:00"]), "fail"),  # 50: agree
        (dosage(mg(30), period=1, timeOfDay=["08:00:00"]), "pass"),  # one time, once a day
        # a weekly dose at two times: at most twice on its day (60 mg a week: under the limit)
        (dosage(mg(30), period=1, period_unit="wk", timeOfDay=["08:00:00", "20:00:00"]),
         "pass"),
        (dosage(mg(30), period=1, timeOfDay=["08:00:00", 8]), "unknown"),  # no time: unread
        (dosage(mg(30), timing_code="QD", timeOfDay=["08:00:00", "20:00:00"]), "unknown"),
        # times and `when` events beside a weekly count: the most is the more of the two, not
        # their product (80 mg a week at 2 times or 2 events: up to 160 mg/week, 22.9 mg/day)
        (dosage(mg(80), frequency=1, period_unit="wk", timeOfDay=["08:00:00", "20:00:00"],
                when=["MORN", "EVE"]), "pass"),
    ],
)  # fmt: skip
def test_times_of_day_beside_a_count_may_each_be_one(line: dict[str, Any], expected: str) -> None:
    """timing.repeat.timeOfDay beside a frequency, period or code: the count stands (FHIR),
    but each time may be an administration of its own (as `when`'s events beside a count):
    the most a day is then the number of times, where that is more."""
    assert high_dose(line) == expected


# --- 6. as needed (PRN) and a most per period -----------------------------------------------------
def prn(line: dict[str, Any], **as_needed: Any) -> dict[str, Any]:
    """`line` taken as needed (asNeededBoolean true unless another asNeeded[x] is given)."""
    return {**line, **(as_needed or {"asNeededBoolean": True})}


def capped(line: dict[str, Any], *caps: tuple[float, float, str]) -> dict[str, Any]:
    """`line` with maxDosePerPeriod: one Ratio (FHIR R4) of mg per period, or a list (R5)."""
    ratios = [{"numerator": mg(n), "denominator": qty(p, unit, unit)} for n, p, unit in caps]
    # (each cap is (mg, period, UCUM unit of time))
    return {**line, "maxDosePerPeriod": ratios[0] if len(ratios) == 1 else ratios}


HEADACHE = {"text": "headache"}


@pytest.mark.parametrize(
    ("line", "scheduled", "expected"),
    [
        # 0 to 60 a day: may be over the limit, not that it is (was a fail)
        (dosage(mg(60), frequency=1), "fail", "unknown"),
        (dosage(mg(10), frequency=2), "pass", "pass"),  # 0 to 20
        (dosage(mg(20), frequency=2), "pass", "pass"),  # 0 to 40: at the limit
        (dosage(mg(25), frequency=2), "fail", "unknown"),  # 0 to 50
        (dosage(mg(20), frequency=1, frequencyMax=3), "unknown", "unknown"),  # 0 to 60
        (dosage(dose_range=(mg(50), mg(60)), frequency=1), "fail", "unknown"),  # 0 to 60
        (dosage(dose_range=(mg(50), None), frequency=1), "fail", "unknown"),  # 0 or more
        (dosage(mg(60), timing_text="as directed"), "unknown", "unknown"),  # not read
    ],
)
def test_a_dose_as_needed_is_none_up_to_its_schedule(
    line: dict[str, Any], scheduled: str, expected: str
) -> None:
    assert high_dose(line) == scheduled
    assert high_dose(prn(line)) == expected
    assert high_dose(prn(line, asNeededCodeableConcept=HEADACHE)) == expected
    # FHIR R5's asNeeded and asNeededFor
    assert high_dose(prn(line, asNeeded=True)) == expected
    assert high_dose(prn(line, asNeededFor=[HEADACHE])) == expected


@pytest.mark.parametrize("line", [dosage(mg(60), frequency=1), dosage(mg(10), frequency=2)])
def test_a_dose_not_as_needed_is_as_scheduled(line: dict[str, Any]) -> None:
    for flag in ({"asNeededBoolean": False}, {"asNeeded": False}, {"asNeededFor": []}):
        assert high_dose(prn(line, **flag)) == high_dose(line)


def test_a_dose_as_needed_passes_on_its_most() -> None:
    r = run("washout_high_dose_cs", taking(prn(dosage(mg(10), frequency=2))))
    assert r.status == "pass", r.reason
    [ev] = r.evidence
    assert (ev.value, ev.unit) == ("20", "mg/day")
    assert "0 to 20 mg/day" in ev.note, ev.note
    # over the limit at most: why it is unknown names the range
    r = run("washout_high_dose_cs", taking(prn(dosage(mg(60), frequency=1))))
    assert r.status == "unknown"
    assert "0 to 60 mg/day prednisone-equivalent" in r.reason, r.reason


@pytest.mark.parametrize(
    ("line", "expected", "most"),
    [
        # 80 a day, at most 40 a day: at most 40 (was a fail)
        (capped(dosage(mg(20), frequency=4), (40, 1, "d")), "pass", "40"),
        (capped(dosage(mg(20), frequency=4), (40, 24, "h")), "pass", "40"),
        (capped(dosage(mg(20), frequency=4), (20, 12, "h")), "pass", "40"),
        (capped(dosage(mg(20), frequency=4), (40, 1, "h")), "fail", None),  # 960 a day
        (capped(dosage(mg(20), frequency=4), (280, 1, "wk")), "pass", "40"),  # 280/7
        (capped(dosage(mg(20), frequency=4), (350, 1, "wk")), "fail", None),  # 50
        (capped(dosage(mg(60), frequency=1), (100, 1, "d")), "fail", None),  # 60: no lower
        (capped(dosage(mg(10), frequency=2), (100, 1, "d")), "pass", "20"),  # never raised
        # R4B/R5: a list, the smallest a day
        (capped(dosage(mg(20), frequency=4), (100, 1, "d"), (210, 1, "wk")), "pass", "30"),
        (capped(dosage(mg(20), frequency=4), (210, 1, "wk"), (100, 1, "d")), "pass", "30"),
        # a range: its most lowered, its least too when above it
        (capped(dosage(mg(20), frequency=1, frequencyMax=4), (40, 1, "d")), "pass", "40"),
        (capped(prn(dosage(mg(60), frequency=1)), (40, 1, "d")), "pass", "40"),
    ],
)
def test_a_most_per_period_caps_the_daily_dose(
    line: dict[str, Any], expected: str, most: str | None
) -> None:
    r = run("washout_high_dose_cs", taking(line))
    assert r.status == expected, r.reason
    if most is not None:
        [ev] = r.evidence
        assert (ev.value, ev.unit) == (most, "mg/day")


@pytest.mark.parametrize(
    "period", [qty(1, "day"), qty(24, "hours"), qty(1, "d", "258703001"), qty(1, "Days")]
)
def test_a_most_per_period_of_a_day_in_words_or_another_system(period: dict[str, Any]) -> None:
    """Its unit text read where there is no UCUM code: as a word, or under SNOMED's code."""
    if period.get("system"):
        period["system"] = "http://snomed.info/sct"
    line = {**dosage(mg(20), frequency=4), "maxDosePerPeriod": {
        "numerator": mg(40), "denominator": period}}  # fmt: skip
    assert high_dose(line) == "pass"


def test_a_most_per_period_of_a_week_is_a_seventh_of_it_a_day() -> None:
    # 20 mg four times a day, at most 210 mg a week: 30 a day
    r = run("washout_high_dose_cs", taking(capped(dosage(mg(20), frequency=4), (210, 1, "wk"))))
    assert r.status == "pass", r.reason
    [ev] = r.evidence
    assert (ev.value, ev.unit) == ("30", "mg/day")


@pytest.mark.parametrize(
    "ratio",
    [
        {"numerator": mg(40), "denominator": qty(1, "{tab}", "{tab}")},  # not of time
        {"numerator": mg(40), "denominator": qty(1)},  # no unit
        {"numerator": mg(40), "denominator": qty(0, "d", "d")},  # no period
        {"numerator": qty(40, "mL", "mL"), "denominator": qty(1, "d", "d")},  # no strength
        {"numerator": qty(4, "{puff}", "{puff}"), "denominator": qty(1, "d", "d")},
        {"numerator": mg(-40), "denominator": qty(1, "d", "d")},
        {"numerator": mg(40)},
        {"denominator": qty(1, "d", "d")},
        "40 mg a day",
        [],
        [{"numerator": mg(40), "denominator": qty(1, "{tab}", "{tab}")}, "40 mg"],
    ],
)
def test_a_most_per_period_that_does_not_read_changes_nothing(ratio: Any) -> None:
    line = dosage(mg(20), frequency=4)
    assert high_dose({**line, "maxDosePerPeriod": ratio}) == "fail"
    line = dosage(mg(10), frequency=2)
    assert high_dose({**line, "maxDosePerPeriod": ratio}) == "pass"


def test_a_most_per_period_in_tablets_reads_through_the_strength() -> None:
    """A prednisone 5 mg tablet product, at most 8 tablets a day: 40 mg."""
    line = {**dosage(qty(4, "{tab}", "{tab}"), frequency=4)}
    line["maxDosePerPeriod"] = {
        "numerator": qty(8, "{tab}", "{tab}"), "denominator": qty(1, "d", "d")
    }  # fmt: skip
    res = medication(
        "MedicationRequest", PREDNISONE, text="prednisone 5 MG Oral Tablet", authored=ago(10),
        dosages=[line],
    )
    assert status("washout_high_dose_cs", res) == "pass"
    del line["maxDosePerPeriod"]
    assert status("washout_high_dose_cs", res) == "fail"  # 16 tablets: 80 mg
