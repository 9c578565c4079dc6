"""What a Dosage's timing, dose range and bounds say, as washout_high_dose_cs and the washouts
read them, and Procedures that stay ongoing (docs/rules.md "Reading records", "Exposure
interval" and `washout_high_dose_cs`). SPEC: > 40 mg/day prednisone-equivalent within 12 weeks
fails, a corticosteroid without a usable dose is unknown; a wrong pass of an exclusion is the
worst outcome, so a timing that is given but cannot be read, or a dose that may be on either
side of the limit, is unknown, never once a day."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from criteria_helpers import (
    ago,
    days_before,
    dosage,
    facts,
    medication,
    mg,
    procedure,
    run,
    status,
)

PREDNISONE, CYCLOPHOSPHAMIDE, RITUXIMAB, PLASMAPHERESIS = "8640", "3002", "121191", "20720000"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
W12, W24 = timedelta(weeks=12), timedelta(weeks=24)


def taking(*dosages: dict[str, Any], code: str = PREDNISONE, **kw: Any) -> dict[str, Any]:
    """A MedicationRequest (prednisone, active, authored 10 days ago) with these lines."""
    kw.setdefault("status", "active")
    kw.setdefault("authored", ago(10))
    return medication("MedicationRequest", code, dosages=list(dosages), **kw)


def timed(dose: dict[str, Any], timing: Any) -> dict[str, Any]:
    """A dosage line of `dose` with this `timing` element as it is (any shape)."""
    return {**dosage(dose), "timing": timing}


def high_dose(*dosages: dict[str, Any]) -> str:
    return status("washout_high_dose_cs", taking(*dosages))


def period(start: int | None, end: int | None) -> dict[str, str]:
    """A boundsPeriod from `start` to `end` days before as_of."""
    return {k: ago(v) for k, v in (("start", start), ("end", end)) if v is not None}


# --- 1. a timing given that cannot be read is no usable dose ---------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # a timing code of text only was read as no timing: once a day, 30 mg/day, pass
        (dosage(mg(30), timing_text="2 times daily"), "unknown"),
        (dosage(mg(30), timing_text="once daily"), "unknown"),  # text is not read either way
        (timed(mg(30), "BID"), "unknown"),  # a timing that is no object
        (timed(mg(30), {"repeat": "twice daily"}), "unknown"),
        (
            timed(mg(30), {"code": {"coding": [{"system": "urn:local", "code": "200023"}]}}),
            "unknown",
        ),
        # a frequency is read first: the code's text only renders it
        (dosage(mg(25), frequency=2, timing_text="2 times daily"), "fail"),
        # a TimingAbbreviation coding beside a local one is read wherever it is
        (
            timed(
                mg(25), {"code": {"coding": [{"code": "200023"}, {"system": GTS, "code": "BID"}]}}
            ),
            "fail",
        ),
        # a period without a frequency: once each period (every 8 hours, 3 a day)
        (dosage(mg(15), period=8, period_unit="h"), "fail"),
        (dosage(mg(10), period=8, period_unit="h"), "pass"),
        (dosage(mg(15), period=8, period_unit="hours"), "unknown"),  # no unit of time
        # timing.event: the most administrations on one day
        (timed(mg(25), {"event": [f"{ago(5)}T08:00:00Z", f"{ago(5)}T20:00:00Z"]}), "fail"),
        (timed(mg(25), {"event": [ago(5), ago(4)]}), "pass"),
        (timed(mg(25), {"event": ["next week"]}), "unknown"),
        # elements that say nothing of a rate leave it as no timing: once a day
        (dosage(mg(30), count=10), "pass"),
        (dosage(mg(45), count=10), "fail"),
        (timed(mg(30), {}), "pass"),
    ],
)
def test_a_timing_given_that_does_not_read_is_no_usable_dose(
    line: dict[str, Any], expected: str
) -> None:
    assert high_dose(line) == expected


# --- 2. timing.repeat.when: each event a time of day ------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (dosage(mg(30), when=["MORN", "EVE"]), "fail"),  # 60 mg/day; was read once a day
        (dosage(mg(20), when=["MORN", "EVE"]), "pass"),  # 40
        (dosage(mg(15), when=["CM", "CD", "CV"]), "fail"),  # with each meal: 45
        (dosage(mg(25), when=["ACM", "HS"], offset=30), "fail"),  # an offset moves, not adds
        (dosage(mg(25), when=["MORN.early", "MORN.late"]), "fail"),  # two times of one morning
        (dosage(mg(30), when=["MORN"]), "pass"),
        (dosage(mg(30), when=["MORN", "MORN"]), "pass"),  # one event listed twice
        # how many meals "before meals" is, is not said
        (dosage(mg(15), when=["AC"]), "unknown"),
        (dosage(mg(15), when=["C"]), "unknown"),
        (dosage(mg(15), when=["PC", "HS"]), "unknown"),
        # a period with a part of it: one event (their union) or two
        (dosage(mg(25), when=["MORN", "MORN.early"]), "unknown"),
        (dosage(mg(15), when=["XYZ"]), "unknown"),  # no EventTiming code
        (dosage(mg(15), when="MORN"), "unknown"),  # not a list
        # with a frequency, the frequency counts (FHIR: its events fall at the union of them)
        (dosage(mg(30), frequency=1, when=["AC"]), "pass"),
        (dosage(mg(30), frequency=2, when=["MORN", "EVE"]), "fail"),
        # ... but an EHR may mean one at each event: 1 to 2 a day
        (dosage(mg(30), frequency=1, when=["MORN", "EVE"]), "unknown"),
        (dosage(mg(15), frequency=1, when=["MORN", "EVE"]), "pass"),
        (dosage(mg(45), frequency=1, when=["MORN", "EVE"]), "fail"),
        # weekly at two times of day: 1 to 2 a week
        (dosage(mg(210), frequency=1, period_unit="wk", when=["MORN", "EVE"]), "unknown"),
        (dosage(mg(140), frequency=1, period_unit="wk", when=["MORN", "EVE"]), "pass"),
    ],
)
def test_when_events_count_as_administrations(line: dict[str, Any], expected: str) -> None:
    assert high_dose(line) == expected


# --- 3. ranges: frequencyMax, periodMax, doseRange --------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # 1 to 2 a day: 30 to 60 mg/day, on both sides of 40 (was read 30 mg/day, pass)
        (dosage(mg(30), frequency=1, frequencyMax=2), "unknown"),
        (dosage(mg(20), frequency=1, frequencyMax=2), "pass"),  # 20 to 40
        (dosage(mg(45), frequency=1, frequencyMax=2), "fail"),  # 45 to 90
        # every 4 to 6 hours: 4 to 6 a day
        (dosage(mg(10), frequency=1, period=4, period_unit="h", periodMax=6), "unknown"),
        (dosage(mg(5), frequency=1, period=4, period_unit="h", periodMax=6), "pass"),
        (dosage(mg(60), frequency=1, period=1, periodMax=2), "unknown"),  # every 1-2 days
        (dosage(mg(30), frequency=1, frequencyMax="2"), "unknown"),  # no number
        # doseRange, read the same way (was no usable dose, whatever its ends)
        (dosage(dose_range=(mg(30), mg(60)), frequency=1), "unknown"),
        (dosage(dose_range=(mg(10), mg(20)), frequency=1), "pass"),
        (dosage(dose_range=(mg(45), mg(60)), frequency=1), "fail"),
        (dosage(dose_range=(mg(10), mg(20)), frequency=1, frequencyMax=2), "pass"),  # 10 to 40
        (dosage(dose_range=(mg(15), mg(25)), frequency=1, frequencyMax=2), "unknown"),
        (dosage(dose_range=(mg(20), None)), "unknown"),  # one end only: at least 20
        (dosage(dose_range=(None, mg(20))), "pass"),  # at most 20 (test_dose_lines.py)
    ],
)
def test_a_range_decides_only_when_both_ends_agree(line: dict[str, Any], expected: str) -> None:
    assert high_dose(line) == expected


def test_a_range_across_the_limit_says_so() -> None:
    r = run("washout_high_dose_cs", taking(dosage(mg(30), frequency=1, frequencyMax=2)))
    assert r.status == "unknown"
    assert "prednisone 30 to 60 mg/day prednisone-equivalent" in r.reason, r.reason
    assert "40" in r.reason
    [ev] = r.evidence
    assert "30 to 60 mg/day" in ev.note, ev.note
    r = run("washout_high_dose_cs", taking(dosage(mg(10), frequency=1, frequencyMax=2)))
    assert r.status == "pass"
    [ev] = r.evidence
    assert (ev.value, ev.unit) == ("20", "mg/day")  # the high end: what the pass rests on


# --- 4. timing.repeat.bounds[x]: a line's own interval ----------------------------------------
def bounded(dose: float, start: int | None, end: int | None, **kw: Any) -> dict[str, Any]:
    """A once-a-day line of `dose` mg over a boundsPeriod."""
    return dosage(mg(dose), frequency=1, boundsPeriod=period(start, end), **kw)


def test_bounds_period_is_the_requests_interval() -> None:
    """The audit's order: authored 2026-08-01, 60 mg a day to 2026-09-30, completed. It was
    read as the day it was authored, outside the 84 days: pass."""
    r = run(
        "washout_high_dose_cs", taking(bounded(60, 116, 56), status="completed", authored=ago(116))
    )
    assert r.status == "fail"
    assert r.eligible_from == days_before(56) + W12 == date(2026, 12, 23)


@pytest.mark.parametrize(
    ("duration", "eligible"),
    [
        ({"value": 60, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}, 56),
        ({"value": 10, "unit": "weeks"}, 46),  # a unit of time as the unit's text
        ({"value": 2, "code": "mo"}, 116 - 61),  # calendar months: 2026-08-01 to 2026-10-01
    ],
)
def test_bounds_duration_runs_from_the_start(duration: dict[str, Any], eligible: int) -> None:
    line = dosage(mg(60), frequency=1, boundsDuration=duration)
    r = run("washout_high_dose_cs", taking(line, status="completed", authored=ago(116)))
    assert (r.status, r.eligible_from) == ("fail", days_before(eligible) + W12)


def test_bounds_that_do_not_read_leave_the_interval_as_it_was() -> None:
    line = dosage(mg(60), frequency=1, boundsDuration={"value": 2, "unit": "fortnights"})
    [e] = facts(taking(line, status="completed", authored=ago(116))).exposures
    assert (e.start, e.end, e.ongoing) == (days_before(116), days_before(116), False)


@pytest.mark.parametrize(
    ("kw", "start", "end", "ongoing"),
    [
        # a bounds start after the order was written: from the order (SPEC's start), ended
        # no earlier than the bounds' start
        ({"status": "completed", "authored": ago(30), "lines": [(20, None)]}, 30, 20, False),
        # a bounds start before it (an order written afterwards): from then
        ({"status": "completed", "authored": ago(30), "lines": [(40, 35)]}, 40, 35, False),
        # an active order whose bounds end: ended then
        ({"status": "active", "authored": ago(30), "lines": [(30, 15)]}, 30, 15, False),
        # one line without an end on an active order: ongoing
        (
            {"status": "active", "authored": ago(30), "lines": [(30, 15), (14, None)]},
            30,
            None,
            True,
        ),
        # several lines: from the first start to the last end
        (
            {"status": "completed", "authored": ago(90), "lines": [(90, 60), (59, 20)]},
            90,
            20,
            False,
        ),
        # a line without bounds is the order's own interval (authoredOn, then its status)
        ({"status": "completed", "authored": ago(90), "lines": [(60, 20), None]}, 90, 20, False),
    ],
)
def test_request_interval_from_bounds(
    kw: dict[str, Any], start: int, end: int | None, ongoing: bool
) -> None:
    lines = [dosage(mg(5)) if ln is None else bounded(5, *ln) for ln in kw.pop("lines")]
    [e] = facts(taking(*lines, **kw)).exposures
    want_end = days_before(end) if end is not None else None
    assert (e.start, e.end, e.ongoing) == (days_before(start), want_end, ongoing)


def test_a_statements_effective_period_comes_before_bounds() -> None:
    """SPEC §2 names effectivePeriod for a MedicationStatement."""
    s = medication(
        "MedicationStatement",
        PREDNISONE,
        status="completed",
        start=ago(100),
        end=ago(50),
        dosages=[bounded(5, 120, 10)],
    )
    [e] = facts(s).exposures
    assert (e.start, e.end) == (days_before(100), days_before(50))


@pytest.mark.parametrize(
    ("record", "lines", "expected", "eligible"),
    [
        # an ongoing statement: 60 mg to 30 days ago, 10 mg since; it fails until 84 days
        # after the 60 mg step's end (read as one 60 mg exposure with no end, it failed for
        # as long as the statement stays active)
        ({"status": "active"}, [(60, 120, 30), (10, 29, None)], "fail", 30),
        # the 60 mg step ended before the window: the 10 mg step in it decides
        ({"status": "active"}, [(60, 200, 100), (10, 99, None)], "pass", None),
        # a step without an end runs to the record's end (its effectivePeriod.end) ...
        ({"status": "completed", "end": ago(40)}, [(60, 120, None)], "fail", 40),
        # ... and one whose bounds outlast the record ends with the record (effective[x]
        # comes first)
        ({"status": "completed", "end": ago(40)}, [(60, 120, 10), (5, 9, None)], "fail", 40),
        # bounds ending before the record starts disagree with it: the record's days, never
        # a shorter exposure
        ({"status": "active"}, [(60, 400, 380), (5, 379, None)], "fail", None),
    ],
)
def test_a_statements_taper_steps_are_read_inside_its_effective_period(
    record: dict[str, Any],
    lines: list[tuple[float, int, int | None]],
    expected: str,
    eligible: int | None,
) -> None:
    """docs/rules.md: washout_high_dose_cs reads each dosage line over its own days, also on a
    MedicationStatement, whose effectivePeriod stays the record's interval."""
    s = medication(
        "MedicationStatement",
        PREDNISONE,
        start=ago(120),
        dosages=[bounded(dose, a, b) for dose, a, b in lines],
        **record,
    )
    r = run("washout_high_dose_cs", s)
    assert r.status == expected, r.reason
    assert r.eligible_from == (days_before(eligible) + W12 if eligible is not None else None)
    [e] = facts(s).exposures  # the record's own interval is unchanged
    assert (e.start, e.end) == (
        days_before(120),
        days_before(40) if "end" in record else None,
    )


def test_bounds_with_a_partial_date() -> None:
    line = dosage(mg(60), frequency=1, boundsPeriod={"start": "2026-08-01", "end": "2026-10"})
    r = run("washout_high_dose_cs", taking(line, status="completed", authored="2026-08-01"))
    assert (r.status, r.eligible_from) == ("fail", date(2026, 10, 31) + W12)


@pytest.mark.parametrize(
    ("lines", "expected", "eligible"),
    [
        # a taper: 60 mg to 100 days ago, 10 mg since; only the 10 mg step is in the window
        ([bounded(60, 120, 100, sequence=1), bounded(10, 99, 10, sequence=2)], "pass", None),
        # the 60 mg step ended 30 days ago: it fails until 84 days after its own end, though
        # the order runs on at 10 mg
        ([bounded(60, 120, 30, sequence=1), bounded(10, 29, None, sequence=2)], "fail", 30),
        # concurrent lines (one sequence) add up over the days either runs
        ([bounded(30, 60, 10, sequence=1), bounded(20, 60, 40, sequence=1)], "fail", 10),
        # a step without a dose (an instruction) says nothing of one
        ([bounded(10, 99, 10, sequence=2), dosage(None, timing_text="with food")], "pass", None),
        # a step whose dose is not read, in the window: unknown
        ([bounded(5, 99, 10, sequence=2), bounded(30, 20, 5, frequencyMax="x")], "unknown", None),
        # ... out of it: the step in the window decides
        ([bounded(5, 99, 10, sequence=2), bounded(30, 200, 100, frequencyMax="x")], "pass", None),
    ],
)
def test_each_dosage_line_is_read_over_its_own_bounds(
    lines: list[dict[str, Any]], expected: str, eligible: int | None
) -> None:
    r = run("washout_high_dose_cs", taking(*lines, status="active", authored=ago(120)))
    assert r.status == expected, r.reason
    assert r.eligible_from == (days_before(eligible) + W12 if eligible is not None else None)


def test_an_order_for_later_is_an_exposure_from_when_it_was_written() -> None:
    """Rituximab ordered 5 days ago for an infusion in a week: SPEC's start is authoredOn, and
    bounds that start later must not make it no record yet (a pass of the washout)."""
    line = dosage(mg(1000), frequency=1, boundsPeriod=period(-7, -7))
    order = taking(line, code=RITUXIMAB, authored=ago(5))
    assert status("washout_b_cell_depletion", order) == "fail"


def test_bounds_set_a_washout_of_any_drug() -> None:
    """A cyclophosphamide order written 200 days ago, given to 100 days ago: within 24 weeks
    (it was read as the day it was written, outside them: pass)."""
    line = dosage(mg(500), frequency=1, period=4, period_unit="wk", boundsPeriod=period(200, 100))
    order = taking(line, code=CYCLOPHOSPHAMIDE, status="completed", authored=ago(200))
    r = run("washout_24wk", order)
    assert (r.status, r.eligible_from) == ("fail", days_before(100) + W24)


# --- 5. a Procedure in progress or on hold without an end is ongoing --------------------------
@pytest.mark.parametrize(
    ("state", "kw", "expected", "eligible"),
    [
        ("in-progress", {"start": ago(700)}, "fail", None),  # was read as one day: pass
        ("on-hold", {"start": ago(700)}, "fail", None),
        ("in-progress", {"when": ago(700)}, "fail", None),
        ("in-progress", {"start": ago(30)}, "fail", None),
        ("in-progress", {"start": ago(700), "end": ago(300)}, "pass", None),  # its end stands
        ("in-progress", {"start": ago(700), "end": ago(30)}, "fail", 30),
        ("completed", {"start": ago(700)}, "pass", None),  # done: its start is its end
        ("stopped", {"start": ago(700)}, "pass", None),
        ("preparation", {"start": ago(700)}, "pass", None),
        ("in-progress", {"start": ago(-5)}, "pass", None),  # not started by as_of
    ],
)
def test_a_procedure_under_way_is_ongoing(
    state: str, kw: dict[str, Any], expected: str, eligible: int | None
) -> None:
    r = run("washout_24wk", procedure(PLASMAPHERESIS, status=state, **kw))
    assert r.status == expected, r.reason
    assert r.eligible_from == (days_before(eligible) + W24 if eligible is not None else None)
    if expected == "fail" and eligible is None:
        assert r.reason.endswith("(ongoing or no known end)"), r.reason


def test_a_procedure_under_way_is_ongoing_in_the_facts() -> None:
    [p] = facts(procedure(PLASMAPHERESIS, status="in-progress", start=ago(700))).procedures
    assert (p.start, p.end, p.ongoing) == (days_before(700), None, True)
    [p] = facts(procedure(PLASMAPHERESIS, status="completed", start=ago(700))).procedures
    assert (p.start, p.end, p.ongoing) == (days_before(700), days_before(700), False)
