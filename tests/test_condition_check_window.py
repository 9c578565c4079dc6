"""A condition check's window: only a condition whose date (onset, else recorded) falls within
it counts ("no acute myocardial infarction within 90 days": an MI of 2015, still marked active,
is no exclusion); docs/criteria-kinds.md, docs/rules.md."""

from __future__ import annotations

from datetime import date, timedelta

from criteria_helpers import SNOMED, ago, condition, days_before, run

# a pregnancy check standing in for any condition check with a window (the shipped concept's
# ICD-10-CM Z33.1 and SNOMED 72892002 rows are verified)
WINDOWED = {"checks": [{"condition": ["pregnancy"], "window_days": 90}]}


def _run(*resources: dict) -> tuple[str, str]:
    r = run("pregnancy_lactation", *resources, params=WINDOWED)
    return str(r.status), r.reason


def test_a_condition_with_its_onset_in_the_window_fails() -> None:
    assert _run(condition("Z33.1", onset=ago(30))) == ("fail", f"pregnancy, onset {ago(30)}")


def test_the_window_is_inclusive_as_a_results_is() -> None:
    # on as_of - 90 days: within 90 days; the day before: not
    assert _run(condition("Z33.1", onset=ago(90)))[0] == "fail"
    assert _run(condition("Z33.1", onset=ago(91))) == ("pass", "no exclusionary finding")


def test_an_old_condition_still_active_is_set_aside_as_outside_the_window() -> None:
    r = run("pregnancy_lactation", condition("72892002", SNOMED, onset="2015-04-01"), params=WINDOWED)
    assert str(r.status) == "pass"
    assert [e.note for e in r.ignored] == [f"outside window (before {ago(90)})"]


def test_without_an_onset_the_recorded_date_decides() -> None:
    assert _run(condition("Z33.1", recorded=ago(10)))[0] == "fail"
    assert _run(condition("Z33.1", recorded=ago(200)))[0] == "pass"


def test_a_partial_date_on_both_sides_of_the_window_start_is_unknown() -> None:
    # as of 2026-11-25, 90 days before is 2026-08-27: "2026-08" stands for days in and out
    status, why = _run(condition("Z33.1", onset="2026-08"))
    assert (status, why) == (
        "unknown",
        "pregnancy condition recorded only as 2026-08: cannot tell if within 90 days",
    )
    # a month wholly inside the window is in it on every day
    assert _run(condition("Z33.1", onset="2026-10"))[0] == "fail"


def test_an_undated_condition_cannot_be_placed_in_the_window() -> None:
    status, why = _run(condition("Z33.1"))
    assert (status, why) == ("unknown", "pregnancy condition undated: cannot tell if within 90 days")


def test_a_recent_one_beside_an_old_one_fails_on_the_recent_one() -> None:
    old, new = condition("Z33.1", onset="2015-04-01"), condition("Z33.1", onset=ago(5))
    assert _run(old, new) == ("fail", f"pregnancy, onset {ago(5)}")


def test_a_window_in_months_reads_calendar_months() -> None:
    params = {"checks": [{"condition": ["pregnancy"], "window_months": 3}]}
    # 3 months before 2026-11-25 is 2026-08-25
    in_it = run("pregnancy_lactation", condition("Z33.1", onset="2026-08-25"), params=params)
    out = run("pregnancy_lactation", condition("Z33.1", onset="2026-08-24"), params=params)
    assert (str(in_it.status), str(out.status)) == ("fail", "pass")


# --- eligible_from: a condition in the window leaves it on a known day -------------------------
def test_a_fail_gives_the_first_day_the_condition_is_out_of_the_window() -> None:
    # in a 90-day window while as_of <= onset + 90: passes from onset + 91 days
    r = run("pregnancy_lactation", condition("Z33.1", onset=ago(30)), params=WINDOWED)
    assert r.eligible_from == days_before(30 - 91)
    # of two, the later one sets it
    two = run(
        "pregnancy_lactation",
        condition("Z33.1", onset=ago(30)),
        condition("Z33.1", onset=ago(5)),
        params=WINDOWED,
    )
    assert two.eligible_from == days_before(5 - 91)


def test_a_partial_date_counts_from_its_last_day() -> None:
    r = run("pregnancy_lactation", condition("Z33.1", onset="2026-10"), params=WINDOWED)
    assert r.eligible_from == date(2026, 10, 31) + timedelta(days=91)


def test_a_window_in_months_counts_calendar_months() -> None:
    params = {"checks": [{"condition": ["pregnancy"], "window_months": 3}]}
    r = run("pregnancy_lactation", condition("Z33.1", onset="2026-10-15"), params=params)
    # 3 months before 2027-01-15 is 2026-10-15 (still in); before 2027-01-16, 2026-10-16
    assert r.eligible_from == date(2027, 1, 16)


def test_no_date_when_another_finding_fails_with_no_end() -> None:
    params = {
        "checks": [
            {"condition": ["pregnancy"], "window_days": 90},
            {"condition": ["lactation"]},
        ]
    }
    r = run(
        "pregnancy_lactation",
        condition("Z33.1", onset=ago(30)),
        condition("Z39.1", onset=ago(30)),
        params=params,
    )
    assert (str(r.status), r.eligible_from) == ("fail", None)


def test_a_criterion_with_a_windowed_condition_check_is_time_limited(tmp_path) -> None:
    from cohort.criteria.loading import load_trial

    trial = tmp_path / "t.toml"
    trial.write_text(
        '[trial]\nid = "t"\ntitle = "t"\nscreen_concepts = ["sle"]\n\n'
        '[[criteria]]\nid = "recent"\ntype = "exclusion"\nkind = "checks"\n'
        'checks = [{ condition = ["pregnancy"], window_days = 90 }]\n\n'
        '[[criteria]]\nid = "ever"\ntype = "exclusion"\nkind = "checks"\n'
        'checks = [{ condition = ["pregnancy"] }]\n',
        encoding="utf-8",
    )
    limited = {c.id: c.time_limited for c in load_trial(trial).criteria}
    assert limited == {"recent": True, "ever": False}
