"""A MedicationStatement without effective[x] was taken on or before its dateAsserted."""

from __future__ import annotations

import csv
import io
from typing import Any

from criteria_helpers import AS_OF, ago, days_before, medication, run, settled, status

from cohort.criteria.base import Status
from cohort.model import Candidate, Patient, SiteResult
from cohort.report.csv import evidence_csv

BELIMUMAB, HCQ, RITUXIMAB = "1092437", "5521", "121191"


def statement(code: str, state: str, asserted: str | None) -> dict[str, Any]:
    """A statement with no effective[x] (R4: 0..1), dated by its dateAsserted alone."""
    res = medication(code=code, status=state)
    if asserted is not None:
        res["dateAsserted"] = asserted
    return res


def test_a_completed_statement_asserted_before_the_window_is_outside_it() -> None:
    # rituximab "completed", asserted 400 days ago: taken on some day up to then, so before
    # the 36-week (252-day) window; it read as undated: unknown for good
    assert status("washout_b_cell_depletion", statement(RITUXIMAB, "completed", ago(400))) == (
        "pass"
    )


def test_a_completed_statement_asserted_in_the_window_may_be_in_it() -> None:
    # asserted 100 days ago: taken on some day up to then, maybe within 252 days: cannot tell
    r = settled("washout_b_cell_depletion", statement(RITUXIMAB, "completed", ago(100)))
    assert (r.status, r.eligible_from) == (Status.UNKNOWN, None)


def test_an_active_statement_asserted_by_as_of_is_current() -> None:
    # SPEC §2: open while active; started on or before its assertion 30 days ago, so current
    assert status("background_therapy", statement(HCQ, "active", ago(30))) == "pass"
    # no date at all: still cannot be placed
    assert status("background_therapy", statement(HCQ, "active", None)) == "unknown"


def test_an_active_statement_asserted_by_as_of_fails_a_washout_with_no_known_end() -> None:
    r = settled("washout_belimumab", statement(BELIMUMAB, "active", ago(30)))
    assert (r.status, r.eligible_from) == (Status.FAIL, None)
    # asserted after as_of: it may have started after as_of too (no record yet)
    late = settled("washout_belimumab", statement(BELIMUMAB, "active", ago(-5)))
    assert late.status is Status.UNKNOWN


def test_the_assertion_bounds_a_statement_with_no_start_only() -> None:
    # effective[x] decides where given: a start 20 days ago is in the window whatever the
    # assertion (400 days ago, a slip) says
    res = statement(BELIMUMAB, "completed", ago(400))
    res["effectiveDateTime"] = ago(20)
    r = settled("washout_belimumab", res)
    assert (r.status, r.eligible_from) == (Status.FAIL, days_before(20 - 84))


def _dates(cid: str, *records: dict[str, Any]) -> list[str]:
    r = settled(cid, *records)
    return [e.date for e in r.evidence + r.ignored if e.ref]


def test_evidence_dates_a_statement_on_or_before_its_assertion_once() -> None:
    """A completed statement dated by its dateAsserted alone starts and ends on some day up to
    it: evidence showed `../2025-10-21..../2025-10-21` (start..end, each "on or before"); it
    now shows `../2025-10-21`, on or before that day."""
    done = statement(RITUXIMAB, "completed", ago(400))
    assert _dates("washout_b_cell_depletion", done) == [f"../{ago(400)}"]
    assert _dates("washout_b_cell_depletion", statement(RITUXIMAB, "stopped", ago(100))) == [
        f"../{ago(100)}"
    ]
    # open while active: its start on or before the assertion, no end (as before)
    active = statement(BELIMUMAB, "active", ago(30))
    assert _dates("washout_belimumab", active) == [f"../{ago(30)}..ongoing"]


def test_other_exposure_date_formats_are_unchanged() -> None:
    # one full day, one partial month, a start and an end: as before
    one_day = medication(code=BELIMUMAB, status="completed", when=ago(20))
    assert _dates("washout_belimumab", one_day) == [f"{ago(20)}..{ago(20)}"]
    month = medication(code=BELIMUMAB, status="completed", when="2026-10")
    assert _dates("washout_belimumab", month) == ["2026-10..2026-10"]
    # an assertion with an effective date: dated by that, as a one-day record
    dated = statement(BELIMUMAB, "completed", ago(400))
    dated["effectiveDateTime"] = ago(20)
    assert _dates("washout_belimumab", dated) == [f"{ago(20)}..{ago(20)}"]


def test_evidence_csv_shows_the_on_or_before_day_once() -> None:
    results = [run("washout_b_cell_depletion", statement(RITUXIMAB, "completed", ago(400)))]
    site = SiteResult("s", "Site", AS_OF, [], [], [Candidate(Patient("p1"), results)])
    rows = list(csv.DictReader(io.StringIO(evidence_csv(site).removeprefix("\ufeff"))))
    assert [row["date"] for row in rows if row["ref"]] == [f"../{ago(400)}"]
