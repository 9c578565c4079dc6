"""Two results of one concept on one day that nothing orders (no time, or the same instant):
which is "most recent" must not depend on their ids. Where taking either as the most recent
gives the same outcome it stands; where not, the criterion is unknown, naming both, with both
in its evidence (docs/rules.md, "Reading records"). Evaluated as a run does (evaluate)."""

from __future__ import annotations

from typing import Any

import pytest
from criteria_helpers import ago, condition, observation, qty, settled
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohort.model import Result

DAY = ago(5)
K_UL = "10*3/uL"


def plt(value: float, rid: str, when: str = DAY) -> dict[str, Any]:
    return observation("777-3", when, valueQuantity=qty(value, K_UL, K_UL), rid=rid)


IDS = [("a", "b"), ("b", "a")]


@pytest.mark.parametrize(("low_id", "high_id"), IDS)
def test_same_day_platelets_that_disagree_are_unknown_whatever_the_ids(
    low_id: str, high_id: str
) -> None:
    r = settled("platelets", plt(20, low_id), plt(150, high_id))
    assert str(r.status) == "unknown", r.reason
    assert f"Observation/{low_id}" in r.reason and f"Observation/{high_id}" in r.reason
    assert "without a time that orders them" in r.reason
    notes = {e.ref: e.note for e in r.evidence}
    assert notes[f"Observation/{low_id}"] == "fail if the most recent (same day, no order)"
    assert notes[f"Observation/{high_id}"] == "pass if the most recent (same day, no order)"
    refs = {e.ref for e in r.evidence}
    assert {f"Observation/{low_id}", f"Observation/{high_id}"} <= refs
    assert r.eligible_from is None


@pytest.mark.parametrize(("first", "second"), IDS)
def test_same_day_results_that_agree_keep_their_outcome(first: str, second: str) -> None:
    assert str(settled("platelets", plt(20, first), plt(22, second)).status) == "fail"
    assert str(settled("platelets", plt(120, first), plt(150, second)).status) == "pass"


def test_the_same_instant_is_no_order_either() -> None:
    at = f"{DAY}T08:00:00Z"
    r = settled("platelets", plt(20, "a", at), plt(150, "b", at))
    assert str(r.status) == "unknown", r.reason
    # a time orders them: the later one is the most recent (docs/rules.md)
    later = settled("platelets", plt(20, "a", at), plt(150, "b", f"{DAY}T09:00:00Z"))
    assert str(later.status) == "pass"


def test_an_older_result_is_not_tied_with_the_newest() -> None:
    r = settled("platelets", plt(20, "b", ago(10)), plt(150, "a"))
    assert str(r.status) == "pass"


@pytest.mark.parametrize(("one_id", "other_id"), IDS)
@pytest.mark.parametrize(
    ("code", "one", "other"),
    [
        pytest.param("5196-1", "Positive", "Negative", id="hbsag"),
        # anti-HBc: the unreadable one read first is unknown (its check's finding is unknown):
        # the day's two disagree, where both read first passed before
        pytest.param("16933-4", "Negative", "see report", id="anti-hbc"),
    ],
)
def test_same_day_hbv_results_that_disagree_are_unknown(
    code: str, one: str, other: str, one_id: str, other_id: str
) -> None:
    first = observation(code, DAY, valueString=one, rid=one_id)
    second = observation(code, DAY, valueString=other, rid=other_id)
    r = settled("hbv", first, second)
    assert str(r.status) == "unknown", r.reason
    assert "without a time that orders them" in r.reason
    assert {e.ref for e in r.evidence} == {f"Observation/{one_id}", f"Observation/{other_id}"}


def test_any_positive_in_a_window_is_not_a_most_recent_rule() -> None:
    # hCG: any positive within 30 days fails; a negative the same day does not make it unknown
    pos = observation("2106-3", DAY, valueString="Positive", rid="a")
    neg = observation("2106-3", DAY, valueString="Negative", rid="b")
    assert str(settled("pregnancy_lactation", pos, neg).status) == "fail"


@pytest.mark.parametrize(("low_id", "high_id"), IDS)
def test_same_day_ana_titers_that_disagree_are_unknown(low_id: str, high_id: str) -> None:
    low = observation("5048-4", DAY, valueString="1:40", rid=low_id)
    high = observation("5048-4", DAY, valueString="1:160", rid=high_id)
    assert str(settled("ana_titer", low, high).status) == "unknown"


@pytest.mark.parametrize(("low_id", "high_id"), IDS)
def test_same_day_weights_that_disagree_are_unknown(low_id: str, high_id: str) -> None:
    low = observation("29463-7", DAY, valueQuantity=qty(30, "kg", "kg"), rid=low_id)
    high = observation("29463-7", DAY, valueQuantity=qty(60, "kg", "kg"), rid=high_id)
    assert str(settled("weight", low, high).status) == "unknown"


@pytest.mark.parametrize(("low_id", "high_id"), IDS)
def test_same_day_creatinine_above_the_limit_fails_whichever_is_the_latest(
    low_id: str, high_id: str
) -> None:
    # SPEC: any creatinine within 90 days above 2.0 mg/dL fails, the most recent or not: the
    # order of the day's two results cannot change that
    mg = "mg/dL"
    low = observation("2160-0", DAY, valueQuantity=qty(1.0, mg, mg), rid=low_id)
    high = observation("2160-0", DAY, valueQuantity=qty(2.5, mg, mg), rid=high_id)
    r = settled("severe_lupus_nephritis", low, high)
    assert str(r.status) == "fail", r.reason
    assert r.reason == f"creatinine 2.5 mg/dL > 2 on {DAY}"
    # with latest_only (each measure's most recent result) the two readings disagree: unknown
    r = settled("severe_lupus_nephritis", low, high, params={"latest_only": True})
    assert str(r.status) == "unknown", r.reason
    assert "without a time that orders them" in r.reason


@pytest.mark.parametrize(("pos_id", "neg_id"), IDS)
def test_same_day_hcv_antibody_positive_and_negative_is_unknown(pos_id: str, neg_id: str) -> None:
    # a positive antibody with no later RNA is unknown whichever of the day's two is read first
    pos = observation("16128-1", DAY, valueString="Positive", rid=pos_id)
    neg = observation("16128-1", DAY, valueString="Negative", rid=neg_id)
    r = settled("hcv", pos, neg)
    assert str(r.status) == "unknown", r.reason
    assert f"Observation/{pos_id}" in {e.ref for e in r.evidence}


def test_a_same_day_tie_beside_a_failing_condition_still_fails() -> None:
    # hbv fails on its chronic hepatitis B condition whichever HBsAg is the most recent
    pos = observation("5196-1", DAY, valueString="Positive", rid="a")
    neg = observation("5196-1", DAY, valueString="Negative", rid="b")
    assert str(settled("hbv", pos, neg, condition("B18.1")).status) == "fail"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from([5.0, 24.9, 25.0, 150.0]), min_size=2, max_size=4),
    st.permutations(["a", "b", "c", "d"]),
)
def test_same_day_untimed_platelets_whatever_the_ids(values: list[float], ids: list[str]) -> None:
    """fail when every result of the day is below 25, pass when none is, else unknown; the
    ids never decide."""
    r = settled("platelets", *(plt(v, rid) for v, rid in zip(values, ids, strict=False)))
    below = {v < 25 for v in values}
    expected = "unknown" if len(below) > 1 else "fail" if below == {True} else "pass"
    assert str(r.status) == expected, (values, ids, r.reason)


# Two runs of one criterion, neither able to change its outcome alone: HBsAg positive and
# negative on one day, HBV DNA detected and not detected on that day. Read in id order both
# positives may come first (fail), and trying each result first with the other run as read
# still fails (on the other positive); only both negatives first pass. So the ids decided
# between fail and unknown: the runs' results are also tried together.
def _hbv_runs(s_pos: str, s_neg: str, d_pos: str, d_neg: str) -> Result:
    return settled(
        "hbv",
        observation("5196-1", DAY, valueString="Positive", rid=s_pos),
        observation("5196-1", DAY, valueString="Negative", rid=s_neg),
        observation("29615-2", DAY, valueString="Detected", rid=d_pos),
        observation("29615-2", DAY, valueString="Not detected", rid=d_neg),
    )


@pytest.mark.parametrize(
    "ids",
    [
        ("s2", "s1", "d2", "d1"),  # each positive's id first in id order: both read first
        ("s1", "s2", "d1", "d2"),
        ("s2", "s1", "d1", "d2"),
        ("s1", "s2", "d2", "d1"),
    ],
)
def test_two_same_day_runs_are_tried_together_whatever_the_ids(
    ids: tuple[str, str, str, str],
) -> None:
    r = _hbv_runs(*ids)
    assert str(r.status) == "unknown", (ids, r.reason)
    assert "without a time that orders them" in r.reason


def test_two_runs_that_disagree_only_together_name_both_readings() -> None:
    r = _hbv_runs("s2", "s1", "d2", "d1")
    assert str(r.status) == "unknown", r.reason
    assert "fail with Observation/d2 and Observation/s2 (" in r.reason
    assert "pass with Observation/d1 and Observation/s1 (" in r.reason
    notes = {e.ref: e.note for e in r.evidence}
    assert set(notes) == {f"Observation/{i}" for i in ("s1", "s2", "d1", "d2")}
    for ref in ("Observation/s2", "Observation/d2"):
        assert notes[ref].endswith("fail if the most recent (same day, no order)"), notes
    for ref in ("Observation/s1", "Observation/d1"):
        assert notes[ref].endswith("pass if the most recent (same day, no order)"), notes


def test_two_same_day_runs_that_agree_keep_their_outcome() -> None:
    # both HBsAg results positive: fail whichever DNA result is read first
    r = settled(
        "hbv",
        observation("5196-1", DAY, valueString="Positive", rid="s1"),
        observation("5196-1", DAY, valueString="Positive", rid="s2"),
        observation("29615-2", DAY, valueString="Detected", rid="d1"),
        observation("29615-2", DAY, valueString="Not detected", rid="d2"),
    )
    assert str(r.status) == "fail", r.reason
