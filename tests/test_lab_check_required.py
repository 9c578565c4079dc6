"""A `checks` lab check with `required = true`: no result of its concepts (in its window) is
unknown, not a pass, for an inclusion read from a result ("current or former smoker": the most
recent smoking status must not be "Never smoker"; docs/criteria-kinds.md)."""

from __future__ import annotations

from typing import Any

from criteria_helpers import ago, cc, observation, run

from cohort.model import Result

SNOMED = "http://snomed.info/sct"


def hbsag(*resources: dict[str, Any], **check: Any) -> Result:
    chk = {"lab": ["hbsag"], "result": "negative", **check}
    return run("hbv", *resources, params={"checks": [chk]})


def result(days: int, word: str) -> dict[str, Any]:
    return observation("5196-1", ago(days), valueString=word)


def test_without_a_result_a_required_check_is_unknown() -> None:
    r = hbsag(required=True)
    assert (str(r.status), r.reason) == ("unknown", "no HBsAg result")
    assert str(hbsag().status) == "pass"  # (not required: nothing found, nothing fails)


def test_a_required_check_with_a_window_names_it_and_sets_the_older_result_aside() -> None:
    r = hbsag(result(200, "Positive"), required=True, window_days=90)
    assert (str(r.status), r.reason) == ("unknown", "no HBsAg result since 2026-08-27")
    assert [e.note for e in r.ignored] == ["outside window (before 2026-08-27)"]


def test_a_required_check_reads_its_result_as_any_check() -> None:
    # result = "negative": a negative is the finding (fail), a positive the other answer (pass)
    assert str(hbsag(result(10, "Negative"), required=True).status) == "fail"
    passed = hbsag(result(10, "Positive"), result(300, "Negative"), required=True)
    assert str(passed.status) == "pass"
    assert [e.note for e in passed.evidence] == ["most recent: positive"]


def test_a_coded_answer_values_csv_reads_decides() -> None:
    # SNOMED 10828004 Positive (values.csv)
    coded = observation("5196-1", ago(10), valueCodeableConcept=cc("10828004", SNOMED))
    assert str(hbsag(coded, required=True).status) == "pass"
