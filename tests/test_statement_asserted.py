"""A MedicationStatement without effective[x] was taken on or before its dateAsserted."""

from __future__ import annotations

from typing import Any

from criteria_helpers import ago, days_before, medication, settled, status

from cohort.criteria.base import Status

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
