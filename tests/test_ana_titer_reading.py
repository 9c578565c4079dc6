"""ana_titer on records as labs send them: a titer written the other way round, a most recent
result that cannot be read, a value and an interpretation that disagree (docs/rules.md,
`ana_titer`). SPEC §3: "most recent ANA titer >= 1:80 -> pass; < 1:80 or negative -> fail; only
a qualitative positive -> unknown"."""

from __future__ import annotations

from typing import Any

import pytest
from criteria_helpers import cc, observation, qty, run
from test_criteria_labs import ANA_SCREEN, DATA_ABSENT, ana
from test_same_day_results import DAY, IDS, settled

from cohort.model import Result

OLD = 300  # days before as-of of the older titer a newer result may supersede


def ratio(num: float, den: float) -> dict[str, Any]:
    return {"valueRatio": {"numerator": qty(num), "denominator": qty(den)}}


def titer_qty(value: float) -> dict[str, Any]:
    return {"valueQuantity": qty(value, "{titer}", "{titer}")}


def text(s: str) -> dict[str, Any]:
    return {"valueString": s}


UNREADABLE = {
    "range": {"valueRange": {"low": qty(40), "high": qty(80)}},
    "text": text("see report"),
}


def refs(r: Result) -> list[str]:
    return [e.ref for e in r.evidence]


def note(r: Result, o: dict) -> str:
    return next(e.note for e in [*r.evidence, *r.ignored] if e.ref == f"Observation/{o['id']}")


# --- 1. a titer written the other way round -----------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        ratio(160, 1),  # 1:160 written as 160/1
        titer_qty(0.00625),  # 1/160 as a number
        text("0.00625"),
        text("1:0.5"),
    ],
)
def test_a_titer_below_one_to_one_is_no_dilution_and_unknown(value: dict) -> None:
    """A dilution is 1:n with n >= 1: 160/1 was read as 1:0.00625, a fail that dropped a
    candidate; it cannot be told whether 1:160 was meant, so unknown (kept for review)."""
    o = ana(value)
    r = run("ana_titer", o)
    assert r.status == "unknown", r.reason
    assert "cannot tell the dilution" in r.reason
    assert refs(r) == [f"Observation/{o['id']}"]


def test_a_titer_written_the_other_way_round_is_not_passed_over_for_an_older_titer() -> None:
    old, new = ana(text("1:40"), days=OLD), ana(ratio(160, 1))
    r = run("ana_titer", old, new)
    assert r.status == "unknown", r.reason
    assert note(r, old) == "superseded by a newer result"


def test_a_titer_written_as_n_to_1_in_text_is_unknown_whatever_an_older_titer_says() -> None:
    # "160:1" reads as no titer at all: the most recent titer result cannot be read (below)
    for older in ("1:40", "1:160"):
        r = run("ana_titer", ana(text(older), days=OLD), ana(text("160:1")))
        assert r.status == "unknown", r.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ratio(1, 160), "pass"),
        (ratio(2, 320), "pass"),
        (ratio(1, 1), "fail"),
        (ratio(1, 40), "fail"),
    ],
)
def test_ratios_that_are_dilutions_still_decide(value: dict, expected: str) -> None:
    assert run("ana_titer", ana(value)).status == expected  # 1:1 is a dilution (undiluted)


def test_a_screen_ratio_written_the_other_way_round_does_not_pass() -> None:
    r = run("ana_titer", ana(ratio(160, 1), code=ANA_SCREEN))
    assert r.status == "unknown", r.reason


# --- 2. the most recent result cannot be read ---------------------------------------------------
@pytest.mark.parametrize("kind", sorted(UNREADABLE))
@pytest.mark.parametrize("older", ["1:40", "1:160"])
def test_an_unreadable_most_recent_titer_result_is_unknown(kind: str, older: str) -> None:
    """An older titer decided over it (pass or fail on stale data); as in lab_latest, the most
    recent result that cannot be read makes the criterion unknown, naming it."""
    old, new = ana(text(older), days=OLD), ana(UNREADABLE[kind])
    r = run("ana_titer", old, new)
    assert r.status == "unknown", r.reason
    assert refs(r) == [f"Observation/{new['id']}"]
    assert "cannot be read" in r.reason
    assert note(r, old) == "superseded by a newer result"


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_an_unreadable_newer_screen_makes_an_older_titer_s_fail_unknown(kind: str) -> None:
    """A screen decides over a titer only by reading positive at 1:80 or more: one that cannot
    be read might, so a fail is unknown, while a pass stands (nothing it says can fail it)."""
    low = ana(text("1:40"), days=OLD)
    screen = ana(UNREADABLE[kind], code=ANA_SCREEN)
    r = run("ana_titer", low, screen)
    assert r.status == "unknown", r.reason
    assert set(refs(r)) == {f"Observation/{low['id']}", f"Observation/{screen['id']}"}
    high = ana(text("1:160"), days=OLD)
    r = run("ana_titer", high, screen)
    assert r.status == "pass", r.reason
    assert note(r, screen) == "no readable titer or result"


def test_an_unreadable_most_recent_screen_is_unknown_over_an_older_screen() -> None:
    old = ana(text("Negative"), days=OLD, code=ANA_SCREEN)
    new = ana(UNREADABLE["text"], code=ANA_SCREEN)
    r = run("ana_titer", old, new)
    assert r.status == "unknown", r.reason
    assert refs(r) == [f"Observation/{new['id']}"]


def test_a_newer_readable_screen_is_listed_when_an_older_titer_decides() -> None:
    # (it was left out of the evidence altogether)
    old, screen = ana(text("1:160"), days=OLD), ana(text("Negative"), code=ANA_SCREEN)
    r = run("ana_titer", old, screen)
    assert r.status == "pass"
    assert "not a titer" in note(r, screen)


def test_a_titer_coded_positive_without_a_dilution_still_leaves_the_older_titer() -> None:
    # documented: "Positive" is no titer (1:40 is positive at the usual screening dilution)
    r = run("ana_titer", ana(text("1:40"), days=OLD), ana(text("Positive")))
    assert r.status == "fail", r.reason


def test_a_result_with_only_a_data_absent_reason_still_leaves_the_older_titer() -> None:
    absent = {"dataAbsentReason": cc("error", DATA_ABSENT)}
    r = run("ana_titer", ana(text("1:160"), days=OLD), ana(absent))
    assert r.status == "pass", r.reason


@pytest.mark.parametrize(("odd_id", "high_id"), IDS)
def test_same_day_unreadable_and_readable_titers_are_unknown(odd_id: str, high_id: str) -> None:
    odd = observation("5048-4", DAY, rid=odd_id, **UNREADABLE["text"])
    high = observation("5048-4", DAY, rid=high_id, valueString="1:160")
    r = settled("ana_titer", odd, high)
    assert str(r.status) == "unknown", r.reason


# --- 3. a value and an interpretation that disagree ---------------------------------------------
@pytest.mark.parametrize(
    ("value", "code", "flag"),
    [
        ("Negative", "5048-4", "A"),
        ("Negative", "5048-4", "POS"),
        ("Positive 1:160", "5048-4", "N"),
        ("Positive 1:160", "5048-4", "NEG"),
        ("Negative", ANA_SCREEN, "A"),
        ("Positive", ANA_SCREEN, "N"),
        ("Positive 1:160", ANA_SCREEN, "N"),
        ("Negative 1:80", ANA_SCREEN, "POS"),
    ],
)
def test_result_words_and_a_flag_that_disagree_are_unknown(
    value: str, code: str, flag: str
) -> None:
    """The words and the flag are both the lab's call: the record contradicts itself, as in
    `checks` (docs/rules.md). "Negative" flagged A failed; "Positive 1:160" flagged N passed."""
    o = ana(text(value), code=code, interpretation=flag)
    r = run("ana_titer", o)
    assert r.status == "unknown", r.reason
    assert "disagree" in r.reason
    assert refs(r) == [f"Observation/{o['id']}"]


def test_a_disagreeing_most_recent_titer_result_is_not_passed_over() -> None:
    r = run("ana_titer", ana(text("1:160"), days=OLD), ana(text("Negative"), interpretation="A"))
    assert r.status == "unknown", r.reason


@pytest.mark.parametrize(
    ("value", "flag", "expected"),
    [
        # a titer number is read against the trial's 1:80, a flag is the lab's own cut-off
        ("1:80", "N", "pass"),  # a lab whose cut-off is 1:160
        ("1:160", "N", "pass"),
        ("1:40", "A", "fail"),  # a lab whose cut-off is 1:40
        ("1:40", "POS", "fail"),
        # words and flag that agree
        ("Negative", "N", "fail"),
        ("Positive 1:160", "A", "pass"),
    ],
)
def test_a_flag_does_not_contradict_a_titer_number(value: str, flag: str, expected: str) -> None:
    r = run("ana_titer", ana(text(value), interpretation=flag))
    assert r.status == expected, r.reason


@pytest.mark.parametrize("value", ["Negative 1:80", "Negative at 1:160", "Negative (1:40)"])
def test_a_titer_coded_negative_at_a_dilution_is_negative(value: str) -> None:
    """It was read as the titer beside the word: "Negative 1:80" passed."""
    r = run("ana_titer", ana(text(value)))
    assert r.status == "fail", r.reason
    assert "negative" in r.reason


def test_a_screen_dilution_alone_takes_its_result_from_the_flag() -> None:
    # no result word to disagree with: "1:160" flagged N is negative at 1:160 (as before)
    assert (
        run("ana_titer", ana(text("1:160"), code=ANA_SCREEN, interpretation="N")).status == "fail"
    )
    assert (
        run("ana_titer", ana(text("1:160"), code=ANA_SCREEN, interpretation="A")).status == "pass"
    )
