"""washout_high_dose_cs on corticosteroid records taken over the same days: when no record alone
is over 40 mg/day prednisone-equivalent but records overlapping on a day in the 12-week window
add up to more, the result is unknown (one may have replaced the other), never a fail; a
drug's records (a duplicate, a renewal, a dose change) count once, at the larger dose. Values reasoned by hand from
docs/rules.md (methylprednisolone x 1.25, dexamethasone x 6.67; window 2026-09-03..2026-11-25
as of 2026-11-25)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from criteria_helpers import AS_OF, ago, days_before, dosage, medication, mg, run, settled

from cohort.model import Candidate, Patient, SiteResult
from cohort.report.csv import evidence_csv
from cohort.tools.explain import _evidence_line

PREDNISONE, METHYLPRED, DEXAMETHASONE = "8640", "6902", "3264"
W12 = timedelta(weeks=12)
CID = "washout_high_dose_cs"


def order(code: str, dose: float, authored: str, **kw: Any) -> dict[str, Any]:
    """An active MedicationRequest of `dose` mg once a day, authored on `authored` (ongoing)."""
    kw.setdefault("status", "active")
    return medication(
        "MedicationRequest", code, authored=authored, dosages=[dosage(mg(dose), frequency=1)], **kw
    )


def statement(code: str, dose: float | None, start: str, end: str | None = None) -> dict[str, Any]:
    """A MedicationStatement of `dose` mg once a day (None: no dose), ongoing without `end`."""
    lines = [dosage(mg(dose), frequency=1)] if dose is not None else [dosage(frequency=1)]
    status = "active" if end is None else "completed"
    return medication(
        "MedicationStatement", code, status=status, start=start, end=end, dosages=lines
    )


def given(code: str, when: str, dose: float) -> dict[str, Any]:
    return medication(
        "MedicationAdministration", code, status="completed", when=when,
        admin_dose=mg(dose), admin_route="Oral",
    )  # fmt: skip


def test_two_concurrent_orders_adding_up_over_the_limit_are_unknown() -> None:
    # prednisone 30 mg from 2026-10-01 and methylprednisolone 16 mg (x 1.25 = 20) from
    # 2026-10-05, both ongoing: 50 mg/day from 2026-10-05 if both are taken; each alone passed
    pred = order(PREDNISONE, 30, ago(55), rid="pred")
    methyl = order(METHYLPRED, 16, ago(51), rid="methyl")
    assert ago(51) == "2026-10-05"
    r = run(CID, pred, methyl)
    assert r.status == "unknown"
    assert r.reason == (
        "prednisone 30 mg/day and methylprednisolone 20 mg/day prednisone-equivalent overlap"
        " on 2026-10-05: 50 mg/day together if both were taken (> 40); check whether one"
        " replaced the other"
    )
    assert r.eligible_from is None
    rows = {e.ref: e for e in r.evidence}
    assert (rows["MedicationRequest/pred"].value, rows["MedicationRequest/methyl"].value) == (
        "30",
        "20",
    )
    assert rows["MedicationRequest/pred"].note == (
        "prednisone 30 mg/day = 30 mg/day prednisone-equivalent; overlaps methylprednisolone"
        " 20 mg/day prednisone-equivalent on 2026-10-05: 50 mg/day together"
    )
    assert rows["MedicationRequest/methyl"].note == (
        "methylprednisolone 16 mg/day = 20 mg/day prednisone-equivalent; overlaps prednisone"
        " 30 mg/day prednisone-equivalent on 2026-10-05: 50 mg/day together"
    )


def test_concurrent_orders_within_the_limit_together_pass() -> None:
    # prednisone 30 + methylprednisolone 4 mg (5): 35 mg/day together, within 40
    r = run(CID, order(PREDNISONE, 30, ago(55)), order(METHYLPRED, 4, ago(51)))
    assert (r.status, sorted(e.value for e in r.evidence)) == ("pass", ["30", "5"])


def test_exactly_the_limit_together_passes() -> None:
    # prednisone 20 + methylprednisolone 16 (20): 40 mg/day, not above 40
    r = run(CID, order(PREDNISONE, 20, ago(55)), order(METHYLPRED, 16, ago(51)))
    assert r.status == "pass", r.reason


def test_a_renewal_of_the_same_drug_and_dose_is_counted_once() -> None:
    # prednisone 30 mg 2026-09-06..2026-10-26, renewed 30 mg from 2026-10-23 (3 days before the
    # old one ends): 30 mg/day, not 60
    r = run(CID, statement(PREDNISONE, 30, ago(80), ago(30)), statement(PREDNISONE, 30, ago(33)))
    assert (r.status, [e.value for e in r.evidence]) == ("pass", ["30", "30"])


def test_one_therapy_as_a_statement_and_an_order_is_counted_once() -> None:
    # prednisone 30 mg daily recorded as a MedicationStatement and as a MedicationRequest
    r = run(CID, statement(PREDNISONE, 30, ago(80)), order(PREDNISONE, 30, ago(10)))
    assert r.status == "pass", r.reason


def test_a_duplicate_beside_another_drug_is_still_counted_once() -> None:
    # prednisone 30 twice (counted once) and dexamethasone 1.5 mg (x 6.67 = 10): 40, passes
    r = run(
        CID,
        statement(PREDNISONE, 30, ago(80)),
        order(PREDNISONE, 30, ago(10)),
        order(DEXAMETHASONE, 1.5, ago(10)),
    )
    assert r.status == "pass", r.reason


def test_a_renewal_with_another_dose_is_counted_once_at_the_larger() -> None:
    # prednisone 30 mg to 2026-10-26, then 20 mg from 2026-10-23: a dose changed by a new order
    # while the old one runs, one drug, read as its larger dose (30), not 50
    r = run(CID, statement(PREDNISONE, 30, ago(80), ago(30)), statement(PREDNISONE, 20, ago(33)))
    assert (r.status, [e.value for e in r.evidence]) == ("pass", ["30", "20"])
    assert not any("together" in e.note for e in r.evidence)


def test_one_drug_at_two_doses_beside_another_adds_its_larger_dose() -> None:
    # prednisone 30 and 20 (one drug: 30) beside methylprednisolone 16 (20): 50 from 2026-10-05
    r = run(
        CID,
        order(PREDNISONE, 30, ago(55)),
        order(PREDNISONE, 20, ago(53)),
        order(METHYLPRED, 16, ago(51)),
    )
    assert r.status == "unknown"
    assert r.reason == (
        "prednisone 30 mg/day and methylprednisolone 20 mg/day prednisone-equivalent overlap"
        " on 2026-10-05: 50 mg/day together if both were taken (> 40); check whether one"
        " replaced the other"
    )


def test_records_that_do_not_overlap_pass() -> None:
    # prednisone 30 mg 2026-09-06..2026-10-06, methylprednisolone 16 mg from 2026-10-16
    r = run(CID, statement(PREDNISONE, 30, ago(80), ago(50)), order(METHYLPRED, 16, ago(40)))
    assert r.status == "pass", r.reason


def test_an_overlap_from_before_the_window_is_dated_on_its_first_day() -> None:
    # both ongoing from before the window (2026-09-02 is 84 days before as_of): the first day of
    # the window they are taken together is 2026-09-03
    r = run(CID, statement(PREDNISONE, 30, ago(150)), statement(METHYLPRED, 16, ago(120)))
    assert r.status == "unknown"
    assert "overlap on 2026-09-03: 50 mg/day together" in r.reason


def test_three_records_overlapping_name_each() -> None:
    # prednisone 20 from 2026-10-01 and methylprednisolone 8 (x 1.25 = 10) from 2026-10-05:
    # 30 together; dexamethasone 2.25 mg (x 6.67 = 15.0) from 2026-10-10 makes it 45
    r = run(
        CID,
        order(PREDNISONE, 20, ago(55)),
        order(METHYLPRED, 8, ago(51)),
        order(DEXAMETHASONE, 2.25, ago(46)),
    )
    assert ago(46) == "2026-10-10"
    assert r.status == "unknown"
    assert r.reason == (
        "prednisone 20 mg/day, methylprednisolone 10 mg/day and dexamethasone 15 mg/day"
        " prednisone-equivalent overlap on 2026-10-10: 45 mg/day together if all were taken"
        " (> 40); check whether one replaced another"
    )


def test_one_orders_lines_over_overlapping_days_stand_apart() -> None:
    # one order, two lines without a sequence (each stands alone, the largest counts) whose
    # bounds overlap: 30 mg 2026-10-01..2026-10-16 and 20 mg 2026-10-11..2026-10-26: its steps
    # are not added to each other (30 mg/day at most), it passes
    lines = [
        dosage(mg(30), frequency=1, boundsPeriod={"start": ago(55), "end": ago(40)}),
        dosage(mg(20), frequency=1, boundsPeriod={"start": ago(45), "end": ago(30)}),
    ]
    taper = medication("MedicationRequest", PREDNISONE, status="completed", authored=ago(55),
                       dosages=lines)  # fmt: skip
    r = run(CID, taper)
    assert (r.status, sorted(e.value for e in r.evidence)) == ("pass", ["20", "30"])


def test_a_record_alone_over_the_limit_still_fails_with_its_date() -> None:
    # prednisone 60 mg 2026-09-06..2026-11-05 fails alone; methylprednisolone 16 beside it does
    # not change the fail nor its date: 84 days after 2026-11-05 (then 20 mg/day alone passes)
    r = settled(CID, statement(PREDNISONE, 60, ago(80), ago(20)), order(METHYLPRED, 16, ago(51)))
    assert r.status == "fail"
    assert r.reason.startswith("prednisone 60 mg/day prednisone-equivalent > 40 within 12 weeks")
    assert r.eligible_from == days_before(20) + W12


def test_a_record_without_a_usable_dose_stays_unknown_for_it() -> None:
    # prednisone with no dose from 2026-10-01 beside prednisone 30 and methylprednisolone 20:
    # unknown as before, for the record without a dose (it takes no part in the sum); the
    # overlap is noted on the rows it rests on
    r = run(
        CID,
        statement(PREDNISONE, None, ago(55)),
        order(PREDNISONE, 30, ago(55)),
        order(METHYLPRED, 16, ago(51)),
    )
    assert r.status == "unknown"
    assert r.reason == "prednisone from 2026-10-01 in window without a usable dose"
    notes = [e.note for e in r.evidence]
    assert "no usable dose" in notes
    assert sum("50 mg/day together" in n for n in notes) == 2


def test_a_record_without_a_usable_dose_alone_is_unknown() -> None:
    # the undosed record and methylprednisolone 20: nothing to add up, unknown as before
    r = run(CID, statement(PREDNISONE, None, ago(55)), order(METHYLPRED, 16, ago(51)))
    assert r.status == "unknown"
    assert r.reason == "prednisone from 2026-10-01 in window without a usable dose"
    assert not any("together" in e.note for e in r.evidence)


def test_a_days_administrations_count_once_beside_an_order() -> None:
    # prednisone 10 mg given twice on 2026-10-20 (the day's 20, each row showing it) beside
    # methylprednisolone 16 mg (20) ongoing: 40 together, passes (each administration counted
    # apart would be 60)
    day = ago(36)
    mas = [given(PREDNISONE, f"{day}T{h}:00:00Z", 10) for h in ("08", "20")]
    r = run(CID, *mas, order(METHYLPRED, 16, ago(51)))
    assert (r.status, sorted(e.value for e in r.evidence)) == ("pass", ["20", "20", "20"])


def test_a_days_administrations_over_the_limit_with_an_order_are_unknown() -> None:
    # three prednisone 10 mg on 2026-10-20 (30) beside methylprednisolone 20: 50 on that day
    day = ago(36)
    mas = [given(PREDNISONE, f"{day}T{h}:00:00Z", 10) for h in ("08", "14", "20")]
    r = run(CID, *mas, order(METHYLPRED, 16, ago(51)))
    assert r.status == "unknown"
    # (named in the order they started: the order first)
    assert r.reason == (
        "methylprednisolone 20 mg/day and prednisone 30 mg/day prednisone-equivalent overlap"
        f" on {day}: 50 mg/day together if both were taken (> 40); check whether one replaced"
        " the other"
    )


def test_evidence_csv_and_explain_show_the_overlapping_rows() -> None:
    pred = order(PREDNISONE, 30, ago(55), rid="pred")
    methyl = order(METHYLPRED, 16, ago(51), rid="methyl")
    r = settled(CID, pred, methyl)
    site = SiteResult("s", "Site", AS_OF, [], [], [Candidate(Patient("p1"), [r])])
    for phi in (True, False):
        text = evidence_csv(site, phi=phi).removeprefix("\ufeff")
        rows = [row[5:] for row in csv.reader(io.StringIO(text, newline=""))][1:]
        assert rows == [
            ["corticosteroid_systemic", "30", "mg/day", "2026-10-01..ongoing",
             "prednisone 30 mg/day = 30 mg/day prednisone-equivalent; overlaps"
             " methylprednisolone 20 mg/day prednisone-equivalent on 2026-10-05: 50 mg/day"
             " together"],
            ["corticosteroid_systemic", "20", "mg/day", "2026-10-05..ongoing",
             "methylprednisolone 16 mg/day = 20 mg/day prednisone-equivalent; overlaps"
             " prednisone 30 mg/day prednisone-equivalent on 2026-10-05: 50 mg/day together"],
        ]  # fmt: skip
    assert _evidence_line(r.evidence[0]) == (
        "MedicationRequest/pred  corticosteroid_systemic  30 mg/day  2026-10-01..ongoing  --"
        " prednisone 30 mg/day = 30 mg/day prednisone-equivalent; overlaps methylprednisolone"
        " 20 mg/day prednisone-equivalent on 2026-10-05: 50 mg/day together"
    )


def test_the_missing_column_asks_which_order_stands_not_for_a_dose() -> None:
    # both doses are on file: candidates.csv's `missing` asked for the criterion's hint
    # ("corticosteroid dose"), which the chart already has; what resolves it is whether one
    # record replaced the other. A record without a usable dose still asks for a dose.
    from cohort.model import CriterionInfo
    from cohort.report import rows

    info = CriterionInfo(CID, "exclusion", "Corticosteroid", missing_hint="corticosteroid dose")

    def missing(r: Any) -> list[str]:
        c = Candidate(Patient("p1", "1990-01-01", "female"), [r], tier="possible")
        return rows.missing_items(SiteResult("s", "Site", AS_OF, [info], [], [c]), c)

    both = run(CID, order(PREDNISONE, 30, ago(55)), order(METHYLPRED, 16, ago(51)))
    assert missing(both) == ["corticosteroid records overlapping: whether one replaced the other"]
    undosed = run(CID, statement(PREDNISONE, None, ago(55)), order(METHYLPRED, 16, ago(51)))
    assert missing(undosed) == ["corticosteroid dose"]


def test_a_switch_on_the_day_one_record_ends_is_no_overlap() -> None:
    # prednisone 30 mg 2026-09-06..2026-10-06, methylprednisolone 16 mg (20) from 2026-10-06:
    # charted as a switch on that day (the end day is the day the other took over), passes
    r = run(CID, statement(PREDNISONE, 30, ago(80), ago(50)), order(METHYLPRED, 16, ago(50)))
    assert r.status == "pass", r.reason
    # a day earlier they run together for a day: 50 mg/day on 2026-10-05, unknown
    r = run(CID, statement(PREDNISONE, 30, ago(80), ago(50)), order(METHYLPRED, 16, ago(51)))
    assert r.status == "unknown"
    assert "overlap on 2026-10-05: 50 mg/day" in r.reason


def test_a_one_day_record_counts_on_its_day() -> None:
    # prednisone 30 mg given once on 2026-10-20 beside methylprednisolone 16 mg (20) ongoing:
    # its one day is its end day too, and counts (50 mg/day that day)
    r = run(CID, given(PREDNISONE, "2026-10-20T08:00:00Z", 30), order(METHYLPRED, 16, ago(51)))
    assert r.status == "unknown"
    assert "overlap on 2026-10-20: 50 mg/day" in r.reason


def test_an_order_written_ahead_of_its_first_dose_counts_from_that_dose() -> None:
    # prednisone 30 mg 2026-09-06..2026-10-19; methylprednisolone 16 mg ordered on 2026-10-01
    # to start on 2026-10-20 (its dosage's boundsPeriod), the day after: never taken together.
    # (The order is an exposure from 2026-10-01, SPEC's start, for a fail; an overlap counts
    # only days it is surely taken.) Found in review: read as 50 mg/day from 2026-10-01.
    methyl = medication(
        "MedicationRequest", METHYLPRED, status="active", authored=ago(55),
        dosages=[dosage(mg(16), frequency=1, boundsPeriod={"start": ago(36)})],
    )  # fmt: skip
    assert (ago(55), ago(36)) == ("2026-10-01", "2026-10-20")
    r = run(CID, statement(PREDNISONE, 30, ago(80), ago(37)), methyl)
    assert r.status == "pass", r.reason
    # started on 2026-10-15 instead, it runs beside prednisone for 5 days: unknown from then
    methyl["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["start"] = ago(41)
    r = run(CID, statement(PREDNISONE, 30, ago(80), ago(37)), methyl)
    assert r.status == "unknown"
    assert f"overlap on {ago(41)}: 50 mg/day" in r.reason


def test_a_taper_stepping_up_counts_each_step_from_its_own_start() -> None:
    # one prednisone order: 10 mg 2026-10-01..10-10, then 30 mg 2026-10-21..10-30; beside it
    # methylprednisolone 16 mg (20) 2026-10-05..10-12: at most 30 mg/day together, passes
    lines = [
        dosage(mg(10), frequency=1, boundsPeriod={"start": ago(55), "end": ago(46)}),
        dosage(mg(30), frequency=1, boundsPeriod={"start": ago(35), "end": ago(26)}),
    ]
    pred = medication(
        "MedicationRequest", PREDNISONE, status="completed", authored=ago(55), dosages=lines
    )
    r = run(CID, pred, statement(METHYLPRED, 16, ago(51), ago(44)))
    assert r.status == "pass", r.reason


def test_a_taper_of_durations_stepping_up_counts_each_step_from_its_start() -> None:
    # one prednisone order of 2026-10-01: 10 mg for 10 days (sequence 1), then 30 mg for 10
    # days (sequence 2, from 2026-10-11); methylprednisolone 16 mg (20) 2026-10-03..10-08:
    # 30 mg/day together at most, passes (step 2 read from 2026-10-01 made it 50)
    lines = [
        dosage(mg(10), frequency=1, sequence=1, boundsDuration={"value": 10, "unit": "d",
               "system": "http://unitsofmeasure.org", "code": "d"}),
        dosage(mg(30), frequency=1, sequence=2, boundsDuration={"value": 10, "unit": "d",
               "system": "http://unitsofmeasure.org", "code": "d"}),
    ]  # fmt: skip
    pred = medication(
        "MedicationRequest", PREDNISONE, status="completed", authored=ago(55), dosages=lines
    )
    r = run(CID, pred, statement(METHYLPRED, 16, ago(53), ago(48)))
    assert r.status == "pass", r.reason
    # methylprednisolone 2026-10-12..10-16 instead: beside the 30 mg step, 50 mg/day
    r = run(CID, pred, statement(METHYLPRED, 16, ago(44), ago(40)))
    assert r.status == "unknown"
    assert f"overlap on {ago(44)}: 50 mg/day" in r.reason
