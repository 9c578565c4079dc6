"""A `checks` lab check with `required = true`: no result of its concepts (in its window) is
unknown, not a pass, for an inclusion read from a result ("current or former smoker": the most
recent smoking status must not be "Never smoker"; docs/criteria-kinds.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

from criteria_helpers import ago, cc, context, criterion, observation, qty, run, settled

from cohort.criteria.registry import KINDS
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


def test_the_unknown_of_a_required_check_says_what_was_searched() -> None:
    """A fail or unknown with no record to show has one row saying what was searched (docs/
    rules.md): a check concludes from a finding and was never searched for, but a required one
    is, and its unknown had no evidence row at all."""
    chk = {"lab": ["hbsag"], "result": "negative", "required": True, "window_days": 90}
    heart_rate = observation("8867-4", ago(3), valueQuantity=qty(70))
    r = settled("hbv", heart_rate, params={"checks": [chk]})
    assert str(r.status) == "unknown"
    (row,) = r.evidence
    assert (row.ref, row.concept) == ("", "hbsag")
    assert row.note.startswith(
        "searched: Observation records of hbsag in the 90 days before 2026-11-25: none; "
        "1 other Observation record(s) on file"
    ), row.note


def test_an_inclusion_of_checks_that_passes_says_nothing_rules_it_out() -> None:
    """'no exclusionary finding' read wrong under an inclusion (a smoker is not excluded, but
    included)."""
    chk = {"lab": ["hbsag"], "result": "negative", "required": True}
    crit = dataclasses.replace(criterion("hbv"), type="inclusion", params={"checks": [chk]})
    r = KINDS["checks"].fn(crit, context(result(10, "Positive")))
    assert (str(r.status), r.reason) == ("pass", "no finding that rules it out")
    assert str(hbsag(result(10, "Positive")).status) == "pass"
    assert hbsag(result(10, "Positive")).reason == "no exclusionary finding"  # (an exclusion)
