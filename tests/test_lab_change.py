"""Kind `lab_change`: the change between the two most recent results of a concept within a
window against a limit ("body weight stable: no change > 5 kg between the two most recent
weights within 90 days"); docs/criteria-kinds.md."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from criteria_helpers import ago, context, criterion, observation, qty, trial
from researcher_helpers import check_all, copy_mappings, edit

from cohort.criteria.registry import KINDS, numeric_concepts
from cohort.evaluate import evaluate
from cohort.model import Result

WEIGHT = "29463-7"  # Body weight, a verified row of the shipped `body_weight` (kg)
PARAMS = {"concepts": ["body_weight"], "window_days": 90, "max_change": 5}


def _run(*resources: dict, **params: object) -> Result:
    crit = dataclasses.replace(
        criterion("weight"), kind="lab_change", params={**PARAMS, **params}
    )
    return KINDS["lab_change"].fn(crit, context(*resources))


def _kg(days: int, value: float, unit: str = "kg") -> dict:
    return observation(WEIGHT, ago(days), valueQuantity=qty(value, unit))


def test_a_change_within_the_limit_passes() -> None:
    # 92.5 - 90 = 2.5 kg, at most 5
    r = _run(_kg(10, 92.5), _kg(40, 90))
    assert (str(r.status), r.reason) == (
        "pass",
        f"body weight changed by +2.5 kg ({ago(40)} to {ago(10)}), at most 5",
    )
    assert [e.note for e in r.evidence] == ["most recent", "the one before"]
    assert [e.value for e in r.evidence] == ["92.5", "90"]


def test_a_change_above_the_limit_fails_a_loss_too() -> None:
    # 84 - 90 = -6 kg: a change of 6 kg, more than 5
    r = _run(_kg(10, 84), _kg(40, 90))
    assert (str(r.status), r.reason) == (
        "fail",
        f"body weight changed by -6 kg ({ago(40)} to {ago(10)}), more than 5",
    )


def test_a_change_at_the_limit_passes() -> None:
    assert str(_run(_kg(10, 95), _kg(40, 90)).status) == "pass"


def test_only_the_two_most_recent_are_compared() -> None:
    # the 70 kg of 80 days ago is older than the two most recent: superseded, not compared
    r = _run(_kg(10, 91), _kg(40, 90), _kg(80, 70))
    assert str(r.status) == "pass"
    assert [e.note for e in r.ignored] == ["superseded by a newer result"]


def test_fewer_than_two_in_the_window_is_unknown() -> None:
    # 2026-11-25 - 90 days = 2026-08-27: the 100-day-old weight is outside the window
    r = _run(_kg(10, 91), _kg(100, 80))
    assert (str(r.status), r.reason) == (
        "unknown",
        "only 1 body weight result since 2026-08-27: two are needed to tell a change",
    )
    assert (str(_run().status), _run().reason) == (
        "unknown",
        "no body weight result since 2026-08-27: two are needed to tell a change",
    )


def test_pounds_are_converted_before_comparing() -> None:
    # 200 [lb_av] = 90.718 kg; 90.718 - 90 = 0.718 kg
    r = _run(_kg(10, 200, "[lb_av]"), _kg(40, 90))
    assert str(r.status) == "pass"
    # 220 [lb_av] = 99.79 kg: a change of 9.79 kg
    assert str(_run(_kg(10, 220, "[lb_av]"), _kg(40, 90)).status) == "fail"


def test_a_value_that_cannot_be_converted_is_unknown() -> None:
    r = _run(_kg(10, 92, "mg/dL"), _kg(40, 90))
    assert str(r.status) == "unknown"
    # as lab_latest says it
    assert r.reason == "body weight value/unit '92 mg/dL' not convertible to kg"


def test_a_comparator_cannot_tell_a_change() -> None:
    o = observation(WEIGHT, ago(10), valueQuantity=qty(150, "kg", comparator=">"))
    assert str(_run(o, _kg(40, 90)).status) == "unknown"


def test_its_concepts_need_a_unit_line() -> None:
    assert list(numeric_concepts("lab_change", PARAMS)) == [("concepts", "body_weight")]


def test_check_accepts_it_in_a_criteria_file_and_refuses_a_negative_limit(
    tmp_path: Path,
) -> None:
    m = copy_mappings(tmp_path)
    old = 'kind = "lab_latest"\ntitle = "Body weight >= 35 kg within 12 months"'
    new = 'kind = "lab_change"\ntitle = "Body weight stable"'
    edit(m / "trials" / "sirius-sle-2.toml", old, new, "kind")
    edit(m / "trials" / "sirius-sle-2.toml", "pass_at_least = 35\n", "max_change = 5\n", "max")
    code, lines = check_all(m)
    assert code == 0, lines
    edit(m / "trials" / "sirius-sle-2.toml", "max_change = 5\n", "max_change = -5\n", "max")
    code, lines = check_all(m)
    assert code == 4
    assert any("key 'max_change': -5 is negative" in line for line in lines), lines


def _settled(*resources: dict) -> Result:
    """As a run gives it: through `evaluate`, which tries each of a day's untimed results as
    the later (criteria.ties)."""
    crit = dataclasses.replace(criterion("weight"), kind="lab_change", params=PARAMS)
    t = dataclasses.replace(trial(), criteria=[crit])
    return next(r for r in evaluate(t, context(*resources)) if r.criterion == "weight")


def test_two_weights_of_one_day_without_a_time_that_decide_otherwise_are_unknown() -> None:
    # 96 kg 10 days ago; 40 days ago 90 and 97 kg, no time: the one before is either (a change
    # of 6 kg, fail; or 1 kg, pass): nothing tells which, so unknown
    r = _settled(_kg(10, 96), _kg(40, 90), _kg(40, 97))
    assert str(r.status) == "unknown", r.reason
    # 93 or 94 kg: 3 or 2 kg, a pass either way
    assert str(_settled(_kg(10, 96), _kg(40, 93), _kg(40, 94)).status) == "pass"
