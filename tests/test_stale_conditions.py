"""A condition check's `stale_after_days`: a pregnancy or lactation Condition still marked active
long after its date (Synthea never closes them: a 1995 pregnancy excluded a patient for life) is
unknown, for review, not the check's `then`; docs/criteria-kinds.md, docs/rules.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from checks_helpers import HCG_QUAL, POSITIVE, lab
from criteria_helpers import SNOMED, ago, condition, criterion, run
from researcher_helpers import TRIAL, check_all, copy_mappings, edit

from cohort.criteria.loading import load_trial
from cohort.errors import MappingError


def test_the_shipped_file_gives_pregnancy_and_lactation_their_own_limits() -> None:
    checks = criterion("pregnancy_lactation").params["checks"]
    limits = {tuple(c["condition"]): c.get("stale_after_days") for c in checks if "condition" in c}
    assert limits == {("pregnancy",): 300, ("lactation",): 1095}


def test_a_recent_active_pregnancy_still_fails() -> None:
    r = run("pregnancy_lactation", condition("Z33.1", onset=ago(60)))
    assert (str(r.status), r.reason) == ("fail", f"pregnancy, onset {ago(60)}")


def test_a_1995_pregnancy_still_marked_active_is_unknown_for_review() -> None:
    r = run("pregnancy_lactation", condition("77386006", SNOMED, onset="1995-03-02"))
    assert (str(r.status), r.reason) == (
        "unknown",
        "pregnancy, onset 1995-03-02, still marked active: review",
    )
    assert [e.ref.split("/")[0] for e in r.evidence] == ["Condition"]
    assert "more than 300 days" in r.evidence[0].note


def test_a_stale_pregnancy_beside_a_positive_hcg_fails_on_the_hcg() -> None:
    old = condition("Z33.1", onset="1995-03-02")
    r = run("pregnancy_lactation", old, lab(HCG_QUAL, 10, POSITIVE))
    assert (str(r.status), r.reason) == ("fail", f"hCG positive on {ago(10)}")


def test_a_stale_pregnancy_beside_a_recent_one_fails_on_the_recent_one() -> None:
    old = condition("Z33.1", onset="1995-03-02")
    r = run("pregnancy_lactation", old, condition("Z33.1", onset=ago(30)))
    assert (str(r.status), r.reason) == ("fail", f"pregnancy, onset {ago(30)}")
    # the old one is set aside, saying why
    assert any("still marked active" in e.note for e in r.ignored)


def test_the_limit_is_the_rows_own_day_count() -> None:
    # 300 days: not more than the limit, still a pregnancy; 301: stale
    assert str(run("pregnancy_lactation", condition("Z33.1", onset=ago(300))).status) == "fail"
    assert str(run("pregnancy_lactation", condition("Z33.1", onset=ago(301))).status) == "unknown"
    # lactation lasts longer: 2 years is still a fail, 4 years is stale
    assert str(run("pregnancy_lactation", condition("Z39.1", onset=ago(730))).status) == "fail"
    r = run("pregnancy_lactation", condition("Z39.1", onset=ago(1461)))
    assert (str(r.status), r.reason) == (
        "unknown",
        f"lactation, onset {ago(1461)}, still marked active: review",
    )


def test_the_recorded_date_stands_in_for_a_missing_onset() -> None:
    r = run("pregnancy_lactation", condition("Z33.1", recorded="2001-05-06"))
    assert (str(r.status), r.reason) == (
        "unknown",
        "pregnancy, recorded 2001-05-06, still marked active: review",
    )


def test_an_undated_or_partly_stale_condition() -> None:
    # no date at all: nothing says it is old, the check's `then` as before
    assert str(run("pregnancy_lactation", condition("Z33.1")).status) == "fail"
    # a month of which some days are more than 300 days before as-of (2026-01-01: 328) and
    # some not (2026-01-31: 298): unknown (not every day agrees)
    r = run("pregnancy_lactation", condition("Z33.1", onset="2026-01"))
    assert (str(r.status), r.reason) == (
        "unknown",
        "pregnancy, onset 2026-01, still marked active: review",
    )
    # a month all of whose days are within the limit: the check's `then`
    assert str(run("pregnancy_lactation", condition("Z33.1", onset="2026-02")).status) == "fail"


def test_a_closed_old_pregnancy_still_passes() -> None:
    old = condition("Z33.1", onset="1995-03-02", clinical="resolved")
    assert str(run("pregnancy_lactation", old).status) == "pass"


def test_without_the_key_an_old_active_condition_keeps_its_then() -> None:
    chk = {"condition": ["pregnancy"], "active": True, "then": "fail"}
    r = run("pregnancy_lactation", condition("Z33.1", onset="1995-03-02"), params={"checks": [chk]})
    assert str(r.status) == "fail"


# --- validation --------------------------------------------------------------------------------
_ROW = '{ condition = ["pregnancy"], active = true, stale_after_days = 300, then = "fail" }'


def _refused(tmp_path: Path, new: str, message: str) -> None:
    m = copy_mappings(tmp_path)
    line = edit(m / TRIAL, _ROW, new, "{")
    code, lines = check_all(m)
    expected = f"error: {m / TRIAL}:{line}: criterion 'pregnancy_lactation': key {message}"
    assert code == 4 and expected in lines, "\n".join(lines)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("= 300", "= 0", "'checks[0].stale_after_days': 0 is not a positive number of days"),
        (
            "= 300",
            '= "300"',
            "'checks[0].stale_after_days': expected a whole number, got the text '300' "
            "(write the number without quotes)",
        ),
        (
            "active = true, ",
            "",
            "'checks[0].stale_after_days': needs 'active = true' too (only a condition still "
            "marked active can be stale)",
        ),
    ],
    ids=["zero", "quoted", "without-active"],
)
def test_a_bad_stale_after_days_is_an_error(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    _refused(tmp_path, _ROW.replace(old, new), message)


def test_a_stale_after_days_on_a_lab_check_is_an_error(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    old = '{ lab = ["hcg"], latest = false,'
    line = edit(m / TRIAL, old, '{ lab = ["hcg"], stale_after_days = 30, latest = false,', "{")
    code, lines = check_all(m)
    expected = (
        f"error: {m / TRIAL}:{line}: criterion 'pregnancy_lactation': key "
        "'checks[2].stale_after_days': only a condition check takes it (a lab check would "
        "ignore it)"
    )
    assert code == 4 and expected in lines, "\n".join(lines)


def test_a_bad_stale_after_days_stops_loading_the_trial_naming_the_key(tmp_path: Path) -> None:
    """What `cohort run` loads: the same located error, raised (exit 4)."""
    m = copy_mappings(tmp_path)
    line = edit(m / TRIAL, _ROW, _ROW.replace("= 300", "= -5"), "{")
    with pytest.raises(MappingError) as err:
        load_trial(m / TRIAL)
    assert f"sirius-sle-2.toml:{line}: criterion 'pregnancy_lactation'" in str(err.value)
    assert "key 'checks[0].stale_after_days': -5 is not a positive number of days" in str(
        err.value
    )
