"""`lab_latest` with `pass_below`: a strict upper limit an inclusion needs ("FEV1/FVC < 0.70":
0.70 itself fails), where `labs_exceed`'s `fail_above` passes a value at its limit
(docs/criteria-kinds.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from criteria_helpers import ago, context, criterion, observation, qty
from researcher_helpers import check_all, copy_mappings, edit

from cohort.criteria.registry import KINDS
from cohort.criteria.titles import title_problems
from cohort.model import Result

RULE = {"concepts": ["platelets"], "window_days": 90, "pass_below": 100}


def latest(*resources: dict[str, Any]) -> Result:
    crit = dataclasses.replace(criterion("platelets"), params=RULE)
    return KINDS["lab_latest"].fn(crit, context(*resources))


def count(value: float, days: int = 10, comparator: str | None = None) -> dict[str, Any]:
    return observation(
        "777-3", ago(days), valueQuantity=qty(value, "10*3/uL", ucum=True, comparator=comparator)
    )


def test_below_the_limit_passes_at_it_and_above_fails() -> None:
    r = latest(count(99))
    assert (str(r.status), r.reason) == ("pass", "platelets 99 x10^3/uL < 100")
    r = latest(count(100))
    assert (str(r.status), r.reason) == ("fail", "platelets 100 x10^3/uL >= 100 on 2026-11-15")
    assert str(latest(count(150)).status) == "fail"


def test_the_most_recent_result_decides_and_none_is_unknown() -> None:
    assert str(latest(count(150, days=5), count(50, days=20)).status) == "fail"
    assert str(latest(count(50, days=5), count(150, days=20)).status) == "pass"
    r = latest(count(50, days=200))  # outside the 90 days
    assert (str(r.status), r.reason) == ("unknown", "no platelets result since 2026-08-27")


def test_a_comparator_that_leaves_both_sides_is_unknown() -> None:
    assert str(latest(count(80, comparator="<")).status) == "pass"
    r = latest(count(120, comparator="<"))
    assert str(r.status) == "unknown"
    assert r.reason == "platelets <120 x10^3/uL on 2026-11-15: cannot tell vs 100"


def test_a_title_quoting_pass_below_says_its_rule() -> None:
    rule = {"kind": "lab_latest", **RULE, "title": "Platelets < 100 within 90 days"}
    assert title_problems(rule) == []
    (stale,) = title_problems({**rule, "pass_below": 80})
    assert "does not mention pass_below = 80" in stale


@pytest.mark.parametrize(
    ("new", "message"),
    [
        (
            "window_days = 90\nfail_below = 25\npass_below = 25",
            "key 'fail_below': give exactly one of fail_below, pass_at_least or pass_below",
        ),
        (
            "window_days = 90\npass_below = 25000",
            "key 'pass_below': 25000 is outside the plausible range of platelets",
        ),
    ],
)
def test_check_refuses_two_limits_and_warns_of_an_implausible_one(
    tmp_path: Path, new: str, message: str
) -> None:
    m = copy_mappings(tmp_path)
    edit(m / "trials" / "sirius-sle-2.toml", "window_days = 90\nfail_below = 25\n", new + "\n", "w")
    _code, lines = check_all(m)
    assert any(message in line for line in lines), lines
