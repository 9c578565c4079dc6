"""A screened patient whose only diagnosis is dated after the as-of date (screening counts a
condition whatever its date, docs/rules.md) failed `diagnosis` with "no qualifying diagnosis" and
a searched row saying none was on record, the condition that listed the patient unshown; it is
now named in the reason and listed as ignored evidence."""

from __future__ import annotations

from criteria_helpers import ago, condition, run


def test_a_diagnosis_dated_after_as_of_is_named_and_set_aside() -> None:
    r = run("sle_diagnosis", condition("M32.14", onset=ago(-6)))
    assert (str(r.status), r.reason) == (
        "fail",
        f"no qualifying diagnosis (SLE dated {ago(-6)}, after the as-of date)",
    )
    assert [(e.date, e.note) for e in r.ignored] == [(ago(-6), "after the as-of date")]


def test_the_earliest_later_one_is_named() -> None:
    r = run("sle_diagnosis", condition("M32.14", onset=ago(-30)), condition("M32.9", onset=ago(-2)))
    assert r.reason == f"no qualifying diagnosis (SLE dated {ago(-2)}, after the as-of date)"
    assert len(r.ignored) == 2


def test_with_no_condition_at_all_the_reason_is_unchanged() -> None:
    r = run("sle_diagnosis")
    assert (str(r.status), r.reason, r.ignored) == ("fail", "no qualifying diagnosis", ())
