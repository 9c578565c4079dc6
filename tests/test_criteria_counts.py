"""`diagnosis` with `min_count` and a window: at least N conditions of its concepts dated in the
window, one a day ("at least 2 exacerbations in 12 months"; docs/criteria-kinds.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from criteria_helpers import ICD, ago, condition, context, criterion
from researcher_helpers import check_all, copy_mappings, edit

from cohort.criteria.registry import KINDS
from cohort.criteria.titles import title_problems
from cohort.model import Result

# as_of = 2026-11-25; 12 calendar months before = 2025-11-25 (in the window, inclusive)
COUNTED = {"concepts": ["sle"], "label": "SLE", "min_months": 0, "min_count": 2}


def counted(*resources: dict[str, Any], **params: Any) -> Result:
    """The shipped `diagnosis` criterion with a count rule instead of its own parameters."""
    crit = dataclasses.replace(
        criterion("sle_diagnosis"), params={**COUNTED, "window_months": 12, **params}
    )
    return KINDS["diagnosis"].fn(crit, context(*resources))


def sle(when: str | None, **kw: Any) -> dict[str, Any]:
    return condition("M32.14", ICD, onset=when, **kw)


def test_two_conditions_on_two_days_in_the_window_pass() -> None:
    r = counted(sle("2026-10-01"), sle("2026-03-15"))
    assert str(r.status) == "pass"
    assert r.reason == "SLE on 2 dates within 12 months (2026-10-01, 2026-03-15)"
    assert [e.note for e in r.evidence] == ["counted", "counted"]


def test_one_in_the_window_fails_and_an_older_one_is_ignored() -> None:
    # 2025-11-24 is the day before the window's first day, 2025-11-25
    r = counted(sle("2026-10-01"), sle("2025-11-24"))
    assert str(r.status) == "fail"
    assert r.reason == "SLE on 1 date within 12 months (2026-10-01), needs at least 2"
    assert [e.date for e in r.ignored] == ["2025-11-24"]
    assert r.ignored[0].note == "outside the window (12 months, from 2025-11-25)"


def test_the_first_day_of_the_window_counts() -> None:
    assert str(counted(sle("2026-10-01"), sle("2025-11-25")).status) == "pass"


def test_two_records_of_one_day_are_one() -> None:
    # one episode recorded twice (an encounter diagnosis and the problem list)
    r = counted(sle("2026-10-01"), sle("2026-10-01T15:30:00Z"))
    assert str(r.status) == "fail"
    assert r.reason == "SLE on 1 date within 12 months (2026-10-01), needs at least 2"


def test_none_fails() -> None:
    r = counted()
    assert (str(r.status), r.reason) == ("fail", "no SLE within 12 months, needs at least 2")


def test_a_partial_date_across_the_window_start_or_an_undated_one_is_unknown() -> None:
    # 2025-11 stands for days before 2025-11-25 and after it: in the window or not
    r = counted(sle("2026-10-01"), sle("2025-11"))
    assert str(r.status) == "unknown"
    assert r.reason == (
        "SLE on 1 date within 12 months (2026-10-01) and 1 more that may be (2025-11): "
        "cannot tell if at least 2"
    )
    undated = counted(sle("2026-10-01"), sle(None))
    assert str(undated.status) == "unknown"
    assert "1 more that may be (no date)" in undated.reason


def test_a_partial_date_inside_the_window_counts() -> None:
    assert str(counted(sle("2026-10-01"), sle("2026-03")).status) == "pass"


def test_more_that_may_be_cannot_reach_the_count_fails() -> None:
    r = counted(sle("2025-11"), min_count=3)
    assert str(r.status) == "fail"
    assert r.reason == (
        "no SLE within 12 months and 1 that may be (2025-11), needs at least 3"
    )


def test_a_count_that_rests_on_an_unconfirmed_condition_is_unknown() -> None:
    r = counted(
        sle("2026-10-01"),
        sle("2026-03-15", verification="provisional"),
        unconfirmed_verification=["provisional"],
    )
    assert str(r.status) == "unknown"
    assert r.reason == (
        "SLE on 2 dates within 12 months (2026-10-01, 2026-03-15), "
        "1 of them recorded as provisional: confirm the diagnosis"
    )


def test_any_clinical_status_counts_and_the_recorded_date_dates_one_without_onset() -> None:
    # an exacerbation is over soon: resolved ones are episodes of the past year all the same
    r = counted(sle("2026-10-01", clinical="resolved"), sle(None, recorded=ago(30)))
    assert str(r.status) == "pass"


def test_without_a_window_every_dated_one_on_or_before_the_cutoff_counts() -> None:
    crit = dataclasses.replace(criterion("sle_diagnosis"), params={**COUNTED, "min_months": 6})
    # 2026-10-01 is after 2026-05-25 (as_of - 6 months): not counted
    r = KINDS["diagnosis"].fn(crit, context(sle("2019-01-01"), sle("2026-10-01")))
    assert (str(r.status), r.reason) == (
        "fail",
        "SLE on 1 date on or before 2026-05-25 (2019-01-01), needs at least 2",
    )
    r = KINDS["diagnosis"].fn(crit, context(sle("2019-01-01"), sle("2020-02-02")))
    assert str(r.status) == "pass"


@pytest.mark.parametrize(
    ("count", "message"),
    [
        ("min_count = 0", "criterion 'sle_diagnosis': key 'min_count': 0 is below 1"),
        (
            "min_count = 2",
            "criterion 'sle_diagnosis': key 'uncertain_concepts': not read with min_count or a"
            " window: remove it, or the count",
        ),
    ],
)
def test_check_refuses_a_count_below_one_and_uncertain_concepts_beside_a_count(
    tmp_path: Path, count: str, message: str
) -> None:
    m = copy_mappings(tmp_path)
    edit(m / "trials" / "sirius-sle-2.toml", "min_months = 6\n", f"min_months = 6\n{count}\n", "m")
    code, lines = check_all(m)
    assert code == 4
    assert any(line.endswith(message) for line in lines), lines


def test_a_count_title_quotes_the_count_and_the_window_not_a_zero_delay() -> None:
    """`min_months = 0` (any date up to as-of) is no threshold a title has to quote ("At least 2
    exacerbations in 12 months" was warned of for not mentioning it); the count is one."""
    rule = {"kind": "diagnosis", "min_months": 0, "min_count": 2, "window_months": 12}
    assert title_problems({**rule, "title": "At least 2 exacerbations in 12 months"}) == []
    (stale,) = title_problems({**rule, "min_count": 3, "title": "At least 2 in 12 months"})
    assert stale.startswith("'At least 2 in 12 months' does not mention min_count = 3 ")


def test_the_evidence_lists_the_conditions_newest_first_undated_last() -> None:
    r = counted(sle("2026-03-15"), sle(None), sle("2026-10-01"), sle("2026-06"))
    assert [e.date for e in r.evidence] == ["2026-10-01", "2026-06", "2026-03-15", ""]


def test_each_undated_condition_may_be_an_episode_of_its_own() -> None:
    r = counted(sle(None), sle(None))
    assert str(r.status) == "unknown"
    assert r.reason == (
        "no SLE within 12 months and 2 that may be (no date, no date): "
        "cannot tell if at least 2"
    )


def test_a_partial_date_that_may_be_the_day_of_another_may_be_one_episode() -> None:
    # 2026-03 may be 2026-03-15: one episode, or two
    r = counted(sle("2026-03"), sle("2026-03-15"))
    assert str(r.status) == "unknown"
    assert r.reason == (
        "SLE on 2 dates within 12 months (2026-03-15, 2026-03), which may be one day: "
        "cannot tell if at least 2"
    )
    # 2026-03 may be either day, but those two are two days
    assert str(counted(sle("2026-03"), sle("2026-03-15"), sle("2026-03-20")).status) == "pass"


def test_two_conditions_of_one_partial_month_may_be_two_days() -> None:
    """Two SLE conditions dated only 2026-03 (in the window) may be one day or two: with 2
    needed that is unknown, not a fail on 1 date (two dated 2026-03-15 are one day: a fail)."""
    r = counted(sle("2026-03"), sle("2026-03"))
    assert str(r.status) == "unknown"
    assert r.reason == (
        "SLE on 2 dates within 12 months (2026-03, 2026-03), which may be one day: "
        "cannot tell if at least 2"
    )
    # across the window's start (2025-11-25): each may be in it, on a day of its own
    across = counted(sle("2026-10-01"), sle("2025-11"), sle("2025-11"), min_count=3)
    assert str(across.status) == "unknown"
    assert across.reason == (
        "SLE on 1 date within 12 months (2026-10-01) and 2 more that may be (2025-11, 2025-11): "
        "cannot tell if at least 3"
    )
