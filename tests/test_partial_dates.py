"""Partial dates (YYYY, YYYY-MM) on records: pass/fail only when every day they can stand for
agrees, else unknown; eligible_from from the latest possible end; docs/rules.md."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from criteria_helpers import (
    LOINC,
    SNOMED,
    component,
    condition,
    facts,
    immunization,
    medication,
    observation,
    procedure,
    qty,
    run,
    settled,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohort.criteria.base import shown
from cohort.extract.elements import parse_date, parse_days

# as_of = 2026-11-25 (criteria_helpers.AS_OF). Windows before it:
#   sle_diagnosis 6 months -> 2026-05-25; washout_12wk 84 days -> ends after 2026-09-02 fail;
#   washout_24wk 168 days -> after 2026-06-10; b-cell 252 days -> after 2026-03-18;
#   live_vaccine 28 days -> after 2026-10-28.
HCQ, TACROLIMUS, RTX, PREDNISONE = "5521", "42316", "121191", "8640"
PLASMAPHERESIS = "20720000"


def stmt(code: str, **kw: Any) -> dict:
    return medication("MedicationStatement", code, **kw)


def given_on(code: str, when: str) -> dict:
    """A completed MedicationAdministration on `when` (start = end)."""
    return medication("MedicationAdministration", code, status="completed", when=when)


def cd19(value: float, when: str) -> dict:
    return observation("8116-6", when, valueQuantity=qty(value, "/uL", "/uL"))


# --- reading -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "first", "last", "as_recorded"),
    [
        ("2026", date(2026, 1, 1), date(2026, 12, 31), "2026"),
        ("2026-09", date(2026, 9, 1), date(2026, 9, 30), "2026-09"),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29), "2024-02"),  # leap year
        ("2025-02", date(2025, 2, 1), date(2025, 2, 28), "2025-02"),
        ("2026-09-14", date(2026, 9, 14), None, "2026-09-14"),
        ("2026-09-14T10:00:00Z", date(2026, 9, 14), None, "2026-09-14"),
    ],
)
def test_parse_days_gives_the_last_day_of_a_partial_date(
    text: str, first: date, last: date | None, as_recorded: str
) -> None:
    assert parse_days(text) == (first, last)
    assert parse_date(text) == first  # the first-day reading stays for ordering, last_seen
    assert shown(first, last) == as_recorded


def test_facts_keep_the_last_day_of_partial_dates() -> None:
    pf = facts(
        condition("M32.14", onset="2026", abatement="2026-02"),
        stmt(HCQ, status="completed", start="2026-01", end="2026-09"),
        immunization("03", "2024-02"),
        procedure(PLASMAPHERESIS, start="2026-05-03", end="2026-06"),
    )
    c, e, im, pr = pf.conditions[0], pf.exposures[0], pf.immunizations[0], pf.procedures[0]
    assert (c.onset, c.onset_last) == (date(2026, 1, 1), date(2026, 12, 31))
    assert (c.abatement, c.abatement_last) == (date(2026, 2, 1), date(2026, 2, 28))
    assert (e.start_last, e.end, e.end_last) == (
        date(2026, 1, 31),
        date(2026, 9, 1),
        date(2026, 9, 30),
    )
    assert (im.when, im.when_last) == (date(2024, 2, 1), date(2024, 2, 29))
    assert (pr.start_last, pr.end_last) == (None, date(2026, 6, 30))


# --- sle_diagnosis -----------------------------------------------------------------------------
def test_sle_year_only_onset_straddling_the_cutoff_is_unknown() -> None:
    r = run("sle_diagnosis", condition("M32.14", onset="2026"))
    assert r.status == "unknown"
    assert r.reason == "SLE onset recorded only as 2026, 6 months before 2026-11-25 is 2026-05-25"
    assert r.evidence[0].date == "2026"


@pytest.mark.parametrize(
    ("kw", "expected", "reason"),
    [
        ({"onset": "2026-04"}, "pass", "diagnosed 2026-04 (on or before 2026-05-25)"),
        ({"onset": "2025"}, "pass", "diagnosed 2025 (on or before 2026-05-25)"),
        (
            {"onset": "2026-11"},  # as_of month
            "fail",
            "diagnosed 2026-11, less than 6 months before the as-of date (needs on or before 2026-05-25)",
        ),
        ({"onset": "2026-05"}, "unknown", "SLE onset recorded only as 2026-05, "),
        ({"recorded": "2026-05"}, "unknown", "SLE recorded only as 2026-05 (recordedDate"),
    ],
)
def test_sle_partial_onset(kw: dict, expected: str, reason: str) -> None:
    r = run("sle_diagnosis", condition("M32.14", **kw))
    assert (r.status, r.reason[: len(reason)]) == (expected, reason)


def test_sle_partial_date_evidence_shows_it_as_recorded() -> None:
    r = run("sle_diagnosis", condition("M32.14", onset="2026-04"))
    assert [e.date for e in r.evidence] == ["2026-04"]


def test_sle_leap_february() -> None:
    # 6 months before 2024-08-29 is 2024-02-29, the last day "2024-02" can stand for
    sle = condition("M32.14", onset="2024-02")
    r = run("sle_diagnosis", sle, as_of=date(2024, 8, 29))
    assert (r.status, r.reason) == ("pass", "diagnosed 2024-02 (on or before 2024-02-29)")
    assert run("sle_diagnosis", sle, as_of=date(2024, 8, 28)).status == "unknown"


def test_sle_a_sure_date_beats_a_partial_one_and_a_partial_one_beats_undated() -> None:
    old = condition("M32.14", onset="2019-03-04")
    assert run("sle_diagnosis", condition("M32.9", onset="2026"), old).status == "pass"
    r = run("sle_diagnosis", condition("M32.9", onset="2026"), condition("M32.14"))
    assert (r.status, r.reason[:30]) == ("unknown", "SLE onset recorded only as 202")


# --- washouts ----------------------------------------------------------------------------------
def tacrolimus(start: str, end: str | None = None, status: str = "completed") -> dict:
    return stmt(TACROLIMUS, status=status, start=start, end=end)


@pytest.mark.parametrize(
    ("end", "expected", "eligible"),
    [
        ("2026-10", "fail", date(2026, 10, 31) + timedelta(84)),  # from the latest end
        ("2026-11", "fail", date(2026, 11, 30) + timedelta(84)),  # as_of month (end after as_of)
        ("2026-09", "unknown", None),  # Sep 1-2 out of the window, Sep 3-30 in
        ("2026", "unknown", None),
        ("2026-08", "pass", None),
        ("2025", "pass", None),
    ],
)
def test_washout_12wk_partial_end(end: str, expected: str, eligible: date | None) -> None:
    r = run("washout_12wk", tacrolimus("2025-06-01", end))
    assert (r.status, r.eligible_from) == (expected, eligible)
    assert [e.date for e in r.evidence + r.ignored] == [f"2025-06-01..{end}"]


def test_washout_12wk_ambiguous_reason_names_the_partial_date() -> None:
    r = run("washout_12wk", tacrolimus("2025-06-01", "2026-09"))
    assert r.reason == (
        "calcineurin inhibitor end recorded only as 2026-09: cannot tell if within 12 weeks"
        " before 2026-11-25 (ending after 2026-09-02)"
    )


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("2026-11", "unknown"),  # may have started after as_of (then not a record yet)
        ("2026", "unknown"),
        ("2026-10", "fail"),
    ],
)
def test_washout_12wk_ongoing_with_partial_start(start: str, expected: str) -> None:
    r = run("washout_12wk", tacrolimus(start, status="active"))
    assert (r.status, r.eligible_from) == (expected, None)
    assert [e.date for e in r.evidence] == [f"{start}..ongoing"]


def test_washout_leap_february_eligible_from_is_after_the_29th() -> None:
    r = run("washout_12wk", tacrolimus("2023-06-01", "2024-02"), as_of=date(2024, 3, 15))
    assert (r.status, r.eligible_from) == ("fail", date(2024, 2, 29) + timedelta(84))


def test_washout_fail_waits_for_an_ambiguous_record_too() -> None:
    # eligible_from: the first day on which it surely passes, so the "2026-09" one's Sep 30
    r = run(
        "washout_12wk",
        tacrolimus("2025-06-01", "2026-09-10"),
        stmt("3008", status="completed", start="2025-06-01", end="2026-09"),
    )
    assert (r.status, r.eligible_from) == ("fail", date(2026, 9, 30) + timedelta(84))


def pred(start: str, end: str, dose: float) -> dict:
    d = {"doseAndRate": [{"doseQuantity": qty(dose, "mg", "mg")}]}
    return stmt(PREDNISONE, status="completed", start=start, end=end, dosages=[d])


def test_high_dose_partial_end() -> None:
    r = run("washout_high_dose_cs", pred("2026-01-01", "2026-10", 60))
    assert (r.status, r.eligible_from) == ("fail", date(2026, 10, 31) + timedelta(84))
    r = run("washout_high_dose_cs", pred("2026-01-01", "2026-09", 60))
    assert (r.status, r.reason[:71]) == (
        "unknown",
        "prednisone 60 mg/day prednisone-equivalent end recorded only as 2026-09",
    )
    assert run("washout_high_dose_cs", pred("2026-01-01", "2026-09", 10)).status == "pass"
    assert run("washout_high_dose_cs", pred("2026-01-01", "2026-08", 60)).status == "pass"


@pytest.mark.parametrize(
    ("kw", "expected", "eligible"),
    [
        ({"when": "2026-07"}, "fail", date(2026, 7, 31) + timedelta(168)),
        ({"when": "2026-06"}, "unknown", None),  # Jun 1-10 out, Jun 11-30 in
        ({"when": "2026-05"}, "pass", None),
        ({"start": "2026-05-03", "end": "2026-06"}, "unknown", None),
        ({"when": "2026-11"}, "unknown", None),  # as_of month: may be after as_of
    ],
)
def test_plasmapheresis_partial_date(kw: dict, expected: str, eligible: date | None) -> None:
    r = run("washout_24wk", procedure(PLASMAPHERESIS, **kw))
    assert (r.status, r.eligible_from) == (expected, eligible)
    assert (r.evidence + r.ignored)[0].date == kw.get("when", kw.get("start"))


# --- live_vaccine ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("when", "as_of", "expected", "eligible"),
    [
        ("2026-10", date(2026, 11, 25), "unknown", None),  # Oct 1-28 out, Oct 29-31 in
        ("2026-11", date(2026, 11, 25), "unknown", None),  # as_of month: may be after as_of
        ("2026", date(2026, 11, 25), "unknown", None),
        ("2026-09", date(2026, 11, 25), "pass", None),
        ("2025", date(2026, 11, 25), "pass", None),
        ("2027-02", date(2027, 2, 28), "fail", date(2027, 2, 28) + timedelta(28)),
        ("2024-02", date(2024, 3, 1), "unknown", None),  # 29 days do not fit 4 weeks
        ("2024-02", date(2024, 3, 28), "pass", None),  # Feb 29 + 28 days = Mar 28
        ("2024-02", date(2024, 3, 27), "unknown", None),
    ],
)
def test_live_vaccine_partial_date(
    when: str, as_of: date, expected: str, eligible: date | None
) -> None:
    r = run("live_vaccine", immunization("03", when), as_of=as_of)
    assert (r.status, r.eligible_from) == (expected, eligible)
    assert (r.evidence + r.ignored)[0].date == when


def test_live_vaccine_ambiguous_reason() -> None:
    r = run("live_vaccine", immunization("03", "2026-10"))
    assert r.reason == (
        "CVX 03 recorded only as 2026-10: cannot tell if within 4 weeks before 2026-11-25"
        " (ending after 2026-10-28)"
    )


def test_uncertain_live_vaccine_partial_date() -> None:
    r = run("live_vaccine", immunization("188", "2026-10"))  # may be within 4 weeks
    assert (r.status, [e.date for e in r.evidence]) == ("unknown", ["2026-10"])
    assert run("live_vaccine", immunization("188", "2026-09")).status == "pass"


# --- washout_b_cell_depletion ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("when", "expected", "eligible"),
    [
        ("2026-05", "fail", date(2026, 5, 31) + timedelta(252)),
        ("2026-03", "unknown", None),  # Mar 1-18 out, Mar 19-31 in
        ("2026-02", "pass", None),
    ],
)
def test_b_cell_partial_dose_date(when: str, expected: str, eligible: date | None) -> None:
    r = run("washout_b_cell_depletion", given_on(RTX, when))
    assert (r.status, r.eligible_from) == (expected, eligible)
    assert [e.date for e in r.evidence + r.ignored] == [f"{when}..{when}"]


def test_b_cell_count_since_a_partial_last_dose() -> None:
    def status_with_count_on(day: str) -> str:
        return run("washout_b_cell_depletion", given_on(RTX, "2025-12"), cd19(20, day)).status

    assert status_with_count_on("2026-01-10") == "fail"  # after every day the dose may be
    assert status_with_count_on("2025-11-20") == "pass"  # before the dose
    # after Dec 1-14, before Dec 15-31: it may predate the dose
    r = run("washout_b_cell_depletion", given_on(RTX, "2025-12"), cd19(20, "2025-12-15"))
    assert r.status == "unknown"
    assert r.reason.startswith("last dose recorded only as 2025-12: cannot tell if the count")


def test_b_cell_in_window_eligible_from_ignores_a_count_that_may_predate_the_dose() -> None:
    # a low count that may predate the dose would leave the criterion unknown, not failing,
    # after the window: eligible_from stands (docs/rules.md)
    r = run("washout_b_cell_depletion", given_on(RTX, "2026-05"), cd19(20, "2026-05-20"))
    assert (r.status, r.eligible_from) == ("fail", date(2026, 5, 31) + timedelta(252))
    r = run("washout_b_cell_depletion", given_on(RTX, "2026-05"), cd19(20, "2026-06-20"))
    assert (r.status, r.eligible_from) == ("fail", None)


# --- background_therapy ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"status": "completed", "start": "2026-01-01", "end": "2026-12"}, "pass"),
        ({"status": "completed", "start": "2026-01-01", "end": "2026-11"}, "unknown"),  # as_of
        ({"status": "completed", "start": "2026-01-01", "end": "2026-10"}, "fail"),
        ({"status": "completed", "start": "2026-01-01", "end": "2026"}, "unknown"),
        ({"status": "active", "start": "2026-10"}, "pass"),
        ({"status": "active", "start": "2026-11"}, "unknown"),  # may start after as_of
        ({"status": "active", "start": "2026"}, "unknown"),
        ({"status": "completed", "when": "2026-11"}, "unknown"),  # a day in Nov: end = start
        ({"status": "completed", "when": "2026-10"}, "fail"),
    ],
)
def test_background_partial_dates(kw: dict, expected: str) -> None:
    r = run("background_therapy", stmt(HCQ, **kw))
    assert r.status == expected
    dates = [e.date for e in r.evidence + r.ignored]
    assert dates == [f"{kw.get('start') or kw['when']}..{kw.get('end', '') or 'ongoing'}"] or (
        "when" in kw and dates == [f"{kw['when']}..{kw['when']}"]
    )


def test_background_partial_reason_and_a_sure_one_wins() -> None:
    maybe = stmt(HCQ, status="completed", start="2026-01-01", end="2026-11")
    r = run("background_therapy", maybe)
    assert r.reason == (
        "antimalarial end recorded only as 2026-11: cannot tell if current on 2026-11-25"
    )
    sure = stmt("6851", status="active", start="2026-01-01")  # methotrexate
    assert run("background_therapy", maybe, sure).status == "pass"


def test_background_leap_february() -> None:
    hcq = stmt(HCQ, status="completed", start="2024-01-01", end="2024-02")
    assert run("background_therapy", hcq, as_of=date(2024, 2, 29)).status == "unknown"
    assert run("background_therapy", hcq, as_of=date(2024, 3, 1)).status == "fail"
    assert run("background_therapy", hcq, as_of=date(2024, 1, 31)).status == "pass"


# --- conditions abated in a partial month (checks, hemoglobin) ---------------------------------
def test_hbv_condition_abated_in_a_partial_month() -> None:
    def hbv(abatement: str) -> str:
        return run("hbv", condition("B18.1", abatement=abatement)).status

    assert (hbv("2026-10"), hbv("2026-12")) == ("pass", "fail")  # before / after as_of
    assert (hbv("2026-11"), hbv("2026")) == ("unknown", "unknown")  # the as_of month, year
    r = run("hbv", condition("B18.1", abatement="2026-11"))
    assert (
        r.reason
        == "chronic hepatitis B condition abated 2026-11: cannot tell if still active on 2026-11-25"
    )


def test_hemoglobin_aiha_abated_in_the_as_of_month() -> None:
    def hb(v: float) -> dict:
        return observation("718-7", "2026-11-15", valueQuantity=qty(v, "g/dL", "g/dL"))

    aiha = condition("413603009", SNOMED, abatement="2026-11")
    loose = {"use_unverified": True}  # aiha SNOMED 413603009 is verified=N (single source)
    assert run("hemoglobin", hb(7.5), aiha, **loose).status == "unknown"  # limit 7.0 or 8.0
    assert run("hemoglobin", hb(6.5), aiha, **loose).status == "fail"
    assert run("hemoglobin", hb(8.5), aiha, **loose).status == "pass"


# --- the principle, on random partial dates ----------------------------------------------------
BUILDERS = {
    "sle_diagnosis": lambda d: [condition("M32.14", onset=d)],
    "live_vaccine": lambda d: [immunization("03", d)],
    "washout_24wk": lambda d: [procedure(PLASMAPHERESIS, when=d)],
    "washout_12wk": lambda d: [tacrolimus("2024-01-01", d)],
    "background_therapy": lambda d: [stmt(HCQ, status="active", start=d)],
    "washout_b_cell_depletion": lambda d: [given_on(RTX, d), cd19(20, "2026-01-10")],
    "washout_high_dose_cs": lambda d: [pred("2024-01-01", d, 60)],
    "hbv": lambda d: [condition("B18.1", abatement=d)],
}


def _days(year: int, month: int | None) -> list[date]:
    first = date(year, month or 1, 1)
    end = date(year + (month or 12) // 12, (month or 12) % 12 + 1, 1)
    return [first + timedelta(i) for i in range((end - first).days)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(BUILDERS)),
    st.integers(2024, 2027),
    st.one_of(st.none(), st.integers(1, 12)),
    st.dates(date(2024, 6, 1), date(2027, 6, 30)),
)
def test_a_partial_date_decides_only_when_every_day_it_covers_agrees(
    cid: str, year: int, month: int | None, as_of: date
) -> None:
    partial = f"{year}" if month is None else f"{year}-{month:02d}"
    got = run(cid, *BUILDERS[cid](partial), as_of=as_of)
    days = {run(cid, *BUILDERS[cid](d.isoformat()), as_of=as_of).status for d in _days(year, month)}
    assert got.status == (next(iter(days)) if len(days) == 1 else "unknown"), days
    if got.status == "fail":
        each = [run(cid, *BUILDERS[cid](d.isoformat()), as_of=as_of) for d in _days(year, month)]
        known = [r.eligible_from for r in each if r.eligible_from is not None]
        if len(known) == len(each):
            # the first day on which the evaluation on every day it may stand for passes
            assert got.eligible_from == max(known)
        elif not known:
            assert got.eligible_from is None


# --- a condition whose partial date may stand for a day after as_of (review fixes) ------------
@pytest.mark.parametrize(
    ("cid", "code", "field"),
    [
        ("hbv", "B18.1", "onset"),
        ("hbv", "B18.1", "recorded"),
        ("malignancy", "C50.911", "onset"),
        ("immunodeficiency", "B20", "onset"),
    ],
)
def test_condition_dated_in_the_as_of_month_may_not_be_on_record_yet(
    cid: str, code: str, field: str
) -> None:
    # "2026-11" with as_of 2026-11-25: on Nov 26-30 the record is after as_of (ignored: pass),
    # on Nov 1-25 it fails, so the data cannot tell (docs/rules.md "Reading records")
    for partial in ("2026-11", "2026"):
        r = run(cid, condition(code, **{field: partial}))
        assert r.status == "unknown", (partial, r.reason)
        assert r.reason.endswith(f"recorded only as {partial}: may be after 2026-11-25")
    assert run(cid, condition(code, **{field: "2026-10"})).status == "fail"
    # a sure one still decides
    both = (condition(code, **{field: "2026-11"}), condition(code, **{field: "2026-10-02"}))
    assert run(cid, *both).status == "fail"


@pytest.mark.parametrize(
    ("cid", "code", "recorded", "expected"),
    [
        # a condition's onset cannot be later than its recordedDate: onset "2026" recorded
        # 2026-03-01 is 2026-01-01..2026-03-01, surely on record on 2026-11-25 (condaudit)
        ("hbv", "B18.1", "2026-03-01", "fail"),
        ("hbv", "B18.1", "2026-03", "fail"),  # a partial recordedDate: at its last day
        ("hbv", "B18.1", "2026-11-26", "unknown"),  # no bound before as_of
        # ... and before the 6-month cutoff 2026-05-25
        ("sle_diagnosis", "M32.9", "2026-03-01", "pass"),
        ("sle_diagnosis", "M32.9", "2026-05", "unknown"),  # May 26-31 are after the cutoff
        ("sle_diagnosis", "M32.9", "2026-04", "pass"),
    ],
)
def test_a_partial_onset_is_no_later_than_its_recorded_date(
    cid: str, code: str, recorded: str, expected: str
) -> None:
    r = run(cid, condition(code, onset="2026", recorded=recorded))
    assert r.status == expected, r.reason
    assert r.evidence[0].date == "2026"  # shown as recorded


def test_a_recorded_date_bounding_a_partial_onset_is_named_in_the_reason() -> None:
    r = run("sle_diagnosis", condition("M32.9", onset="2026", recorded="2026-03-01"))
    assert r.reason == "diagnosed 2026 (recorded 2026-03-01) (on or before 2026-05-25)"


def test_hemoglobin_aiha_dated_in_the_as_of_month() -> None:
    hb = observation("718-7", "2026-11-15", valueQuantity=qty(7.5, "g/dL", "g/dL"))
    loose = {"use_unverified": True}  # aiha SNOMED 413603009 is verified=N (single source)
    r = run("hemoglobin", hb, condition("413603009", SNOMED, onset="2026-11"), **loose)
    assert r.status == "unknown"
    assert r.reason == "hemoglobin 7.5 g/dL: limit 7 or 8, as autoimmune hemolytic anemia may be dated after 2026-11-25"
    aiha = condition("413603009", SNOMED, onset="2026-10")
    assert run("hemoglobin", hb, aiha, **loose).status == "pass"


def test_b_cell_partial_dose_maybe_in_window_with_a_low_count_after_its_out_of_window_days() -> None:
    # dose "2025", as_of 2026-01-01 (window after 2025-04-24): on Apr 25-Dec 31 it is within
    # the window (fail); on Jan 1-Apr 24 it is not, and the count of 2025-12-15 is after it
    # and low (fail): every day fails
    r = run(
        "washout_b_cell_depletion",
        given_on(RTX, "2025"),
        cd19(20, "2025-12-15"),
        as_of=date(2026, 1, 1),
    )
    assert (r.status, r.eligible_from) == ("fail", None)


def test_b_cell_partial_dose_that_may_be_after_as_of_leaves_the_older_dose_last() -> None:
    # dose "2026-06", as_of 2026-06-15: on Jun 1-15 it is within the window (fail); on Jun
    # 16-30 it is not a record yet, and the count since the 2025-06-01 dose is low (fail)
    r = run(
        "washout_b_cell_depletion",
        given_on(RTX, "2026-06"),
        given_on(RTX, "2025-06-01"),
        cd19(20, "2025-12-15"),
        as_of=date(2026, 6, 15),
    )
    assert (r.status, r.eligible_from) == ("fail", None)


def test_live_vaccine_in_the_as_of_month_holds_eligible_from_back_to_as_of_only() -> None:
    # "2026-11" with as_of 2026-11-25: given on Nov 26-30 it is not a record yet (a new
    # exposure); given on or before Nov 25, it washes out by Nov 25 + 28 days
    sure = immunization("03", "2026-11-10")
    r = run("live_vaccine", immunization("03", "2026-11"), sure)
    assert (r.status, r.eligible_from) == ("fail", date(2026, 11, 25) + timedelta(28))
    r = run("live_vaccine", immunization("03", "2026"), sure)
    assert (r.status, r.eligible_from) == ("fail", date(2026, 11, 25) + timedelta(28))


def eligible(*resources: dict) -> tuple[date | None, dict[str, Any]]:
    """The eligible_from the run gives a patient with SLE (since 2020) and these records,
    and the results by criterion."""
    from criteria_helpers import context, trial

    from cohort.evaluate import evaluate
    from cohort.rank import eligible_from

    sle = condition("M32.9", onset="2020-01-01")
    results = evaluate(trial(), context(sle, *resources))
    limited = {c.id for c in trial().criteria if c.time_limited}
    return eligible_from(results, limited), {r.criterion: r for r in results}


def test_eligible_from_is_held_back_by_a_washout_that_would_fail_on_that_date() -> None:
    """docs/rules.md: eligible_from is the first date on which no fail remains; one that would
    still fail then leaves it empty. A record started "2026-11" (as_of 2026-11-25) may not be on
    record yet (unknown now), but on any later date it is, and it is in the window then: an
    eligible_from of the other washout's end promised a date the patient still failed on."""
    hcq = stmt(HCQ, status="active", start="2020-01-01")
    tacrolimus = stmt(TACROLIMUS, status="completed", start="2026-01-01", end="2026-11-01")
    ongoing = stmt("1092437", status="active", start="2026-11")  # belimumab, no end
    day, by_id = eligible(hcq, tacrolimus, ongoing)
    assert by_id["washout_belimumab"].status == "unknown"
    assert day is None
    assert by_id["washout_12wk"].reason == (
        "tacrolimus (calcineurin inhibitor) last 2026-11-01, within 12 weeks (until 2027-01-24,"
        " when washout_belimumab would fail with no known end)"
    )
    # a dose given in that month fails from then on until its own (latest) end + 36 weeks
    cyclophosphamide = medication(
        "MedicationRequest", "3002", status="stopped", authored="2026-06-23"
    )
    day, by_id = eligible(hcq, cyclophosphamide, given_on(RTX, "2026-11"))
    assert day == date(2026, 11, 30) + timedelta(weeks=36)
    assert by_id["washout_24wk"].reason == (
        "cyclophosphamide on 2026-06-23, within 24 weeks (until 2026-12-08, when"
        " washout_b_cell_depletion would fail until 2027-08-09)"
    )
    # one that would then be unknown, or pass, does not hold it back: a belimumab end
    # "2026-09" (unknown now) is out of the window by 2027-01-24
    ended = stmt("1092437", status="completed", start="2026-01-01", end="2026-09")
    day, by_id = eligible(hcq, tacrolimus, ended)
    assert by_id["washout_belimumab"].status == "unknown"
    assert day == date(2027, 1, 24)
    assert by_id["washout_12wk"].reason == (
        "tacrolimus (calcineurin inhibitor) last 2026-11-01, within 12 weeks (until 2027-01-24)"
    )


def test_background_only_record_starting_in_the_as_of_month_is_not_a_sure_fail() -> None:
    # ibuprofen (no qualifying concept) started "2026-11": on Nov 1-25 the patient has a
    # medication record and no therapy (fail); on Nov 26-30 no record at all (unknown)
    ibuprofen = stmt("5640", status="active", start="2026-11")
    r = run("background_therapy", ibuprofen)
    assert r.status == "unknown"
    assert r.reason == (
        "no current qualifying therapy, the only medication records start 2026-11: "
        "cannot tell if on record by 2026-11-25"
    )
    assert run("background_therapy", ibuprofen, as_of=date(2026, 12, 1)).status == "fail"
    # a record surely on file by as_of decides it as before
    earlier = stmt("5640", status="completed", start="2026-10-01", end="2026-10-05")
    assert run("background_therapy", ibuprofen, earlier).status == "fail"


# --- results (Observations) with a partial date: every day is tried (criteria.obsdays) -------------
def hb(value: float, when: str) -> dict:
    return observation("718-7", when, valueQuantity=qty(value, "g/dL", "g/dL"))


def weight(kg: float, when: str) -> dict:
    return observation("29463-7", when, valueQuantity=qty(kg, "kg", "kg"))


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # window from 2026-08-27: August's last days are in it, its first ones not
        ("2026-08", "unknown"),
        ("2026-10", "fail"),  # within 90 days whichever day: above the limit fails
        ("2026-07", "pass"),  # before the window whichever day
    ],
)
def test_a_partially_dated_creatinine_above_the_limit_beside_a_newer_normal_one(
    when: str, expected: str
) -> None:
    high = observation("2160-0", when, valueQuantity=qty(3.0, "mg/dL", "mg/dL"))
    normal = observation("2160-0", "2026-11-15", valueQuantity=qty(1.0, "mg/dL", "mg/dL"))
    r = settled("severe_lupus_nephritis", high, normal)
    assert r.status == expected, r.reason


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        # Nov 1-25: a low result inside the window fails; Nov 26-30: after as_of, no result
        ((hb(7.0, "2026-11"),), "unknown"),
        ((hb(7.0, "2026-10"),), "fail"),  # every day of October is inside the 90 days
        ((hb(12.0, "2026-11"),), "unknown"),  # pass on Nov 1-25, no result after
        ((hb(12.0, "2026-10"),), "pass"),
        ((hb(7.0, "2026"),), "unknown"),
        ((hb(7.0, "2025"),), "unknown"),  # no day inside the window: no result either way
        # the window (90 days) starts 2026-08-27: August straddles it
        ((hb(7.0, "2026-08"), hb(12.0, "2026-06-01")), "unknown"),
        # a full-date result in the same month: which is the most recent depends on the day
        ((hb(7.0, "2026-10"), hb(12.0, "2026-10-15")), "unknown"),
        ((hb(7.0, "2026-10"), hb(6.0, "2026-10-15")), "fail"),  # low either way
    ],
)
def test_lab_result_with_a_partial_date(resources: tuple, expected: str) -> None:
    assert settled("hemoglobin", *resources).status == expected


def test_partial_result_reason_evidence_and_first_day_reading() -> None:
    r = settled("hemoglobin", hb(7.0, "2026-11"))
    assert r.reason.startswith("a result dated only 2026-11 (Observation/")
    assert "fail on some of its days, unknown on others (hemoglobin 7 g/dL < 8 on 2026-11)" in (
        r.reason
    )
    assert [e.date for e in r.evidence] == ["2026-11"]  # as recorded, not 2026-11-01
    # the criterion alone (no day tried) still reads the first day, as the rest of the
    # pipeline does (ordering, last_seen)
    assert run("hemoglobin", hb(7.0, "2026-11")).status == "fail"


def test_weight_partial_month_at_the_window_start() -> None:
    # 12 months before 2026-11-25 is 2025-11-25: November 2025 straddles it
    assert settled("weight", weight(60, "2025-11")).status == "unknown"
    assert settled("weight", weight(60, "2025-12")).status == "pass"
    # a full-date result inside the window decides whatever day the partial one is
    assert settled("weight", weight(60, "2025-11"), weight(61, "2026-11-01")).status == "pass"


def test_a_partial_results_evidence_row_agrees_with_the_reason() -> None:
    """The row of the result whose days disagree says so: read alone, "outside window
    (before 2025-11-25)" contradicted the reason's "pass on others" (README: evidence.csv
    notes say why)."""
    r = settled("weight", weight(60, "2025-11"))
    [e] = [*r.evidence, *r.ignored]
    assert e.note == (
        "outside window (before 2025-11-25); dated only 2025-11: unknown on its first day,"
        " pass on others"
    )
    low = settled("hemoglobin", hb(7.0, "2026-11"))
    assert [e.note for e in low.evidence] == [
        "most recent; dated only 2026-11: fail on its first day, unknown on others"
    ]
    # a result whose every day agrees keeps its note
    assert [e.note for e in settled("hemoglobin", hb(7.0, "2026-10")).evidence] == [
        "most recent"
    ]


def test_full_dates_are_not_tried_and_other_criteria_keep_their_result() -> None:
    full = settled("hemoglobin", hb(7.0, "2026-11-20"))
    assert (full.status, full.reason) == ("fail", "hemoglobin 7 g/dL < 8 on 2026-11-20")
    # a partial hemoglobin leaves the weight criterion as it was
    assert settled("weight", weight(60, "2026-10-01"), hb(7.0, "2026-11")).status == "pass"


# each builder: a result dated `d` with a value chosen by the test, beside full-dated records
OBS_BUILDERS = {
    "hemoglobin": lambda d, v: [
        observation("718-7", d, valueQuantity=qty(v, "g/dL", "g/dL"), rid="a"),
        observation("718-7", "2026-10-15", valueQuantity=qty(10, "g/dL", "g/dL"), rid="b"),
    ],
    "weight": lambda d, v: [weight(v * 6, d)],
    "washout_b_cell_depletion": lambda d, v: [
        given_on(RTX, "2025-12-20"),
        observation("8116-6", d, valueQuantity=qty(v * 20, "/uL", "/uL"), rid="a"),
    ],
    "ana_titer": lambda d, v: [
        observation("5048-4", d, valueString=f"1:{v * 20}", rid="a"),
        observation("5048-4", "2026-03-10", valueString="1:160", rid="b"),
    ],
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(OBS_BUILDERS)),
    st.integers(2025, 2026),
    st.integers(1, 12),
    st.integers(1, 12),
    st.dates(date(2026, 1, 1), date(2026, 12, 31)),
)
def test_a_partial_result_date_decides_only_when_every_day_agrees(
    cid: str, year: int, month: int, v: int, as_of: date
) -> None:
    got = settled(cid, *OBS_BUILDERS[cid](f"{year}-{month:02d}", v), as_of=as_of)
    each = [
        settled(cid, *OBS_BUILDERS[cid](d.isoformat(), v), as_of=as_of) for d in _days(year, month)
    ]
    days = {r.status for r in each}
    assert got.status == (next(iter(days)) if len(days) == 1 else "unknown"), days
    if got.status == "fail":
        known = [r.eligible_from for r in each]
        expected = None if None in known else max(k for k in known if k is not None)
        assert got.eligible_from == expected


def test_only_the_criteria_given_a_partial_result_are_tried_again() -> None:
    from criteria_helpers import context, trial

    from cohort.criteria.obsdays import settle
    from cohort.criteria.registry import KINDS

    calls: list[str] = []

    def counted(crit: Any, ctx: Any) -> Any:
        calls.append(crit.id)
        return KINDS[crit.kind].fn(crit, ctx)

    criteria = trial().criteria
    out = settle(criteria, context(weight(60, "2025-11"), hb(12.0, "2026-11-01")), counted)
    assert calls[: len(criteria)] == [c.id for c in criteria]  # the first-day reading
    tried = calls[len(criteria) :]
    assert tried and set(tried) == {"weight"}
    assert {r.criterion: r.status for r in out}["weight"] == "unknown"
    # no partial result: each criterion runs once
    calls.clear()
    settle(criteria, context(weight(60, "2025-12-01")), counted)
    assert calls == [c.id for c in criteria]


def test_components_of_one_partially_dated_record_move_together() -> None:
    # an HCV antibody and its RNA in one panel dated only 2026-10: whatever day it was, both
    # were on it (the RNA is not before the antibody on any day), so the antibody is followed
    # by its RNA, which is not detected: pass, not "unknown on some of its days"
    positive = {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "10828004"}]}}
    negative = {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "260385009"}]}}
    parts = [component("16128-1", LOINC, **positive), component("11259-9", LOINC, **negative)]
    p = observation("24363-4", "2026-10", components=parts)
    assert run("hcv", p).status == "pass"  # read at its first day
    r = settled("hcv", p)
    assert r.status == "pass", r.reason
