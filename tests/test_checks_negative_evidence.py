"""A `checks` criterion that passes lists the negative results it read as used evidence, not as
ignored: the most recent one for a check of the most recent result (`latest`, the default),
every one in its window for a check of every result; superseded, out-of-window and other
results stay ignored (docs/rules.md, "Negative tests")."""

from __future__ import annotations

from checks_helpers import ANTI_HBC, HBSAG, HBV_DNA, HIV_TEST, IGRA, NEGATIVE, POSITIVE, lab
from criteria_helpers import ago, condition, context, observation, run, trial

from cohort.evaluate import evaluate


def notes(evidence: tuple) -> dict[str, str]:
    return {e.ref.removeprefix("Observation/"): e.note for e in evidence}


def test_hbv_most_recent_negative_hbsag_is_used_and_an_older_positive_superseded() -> None:
    r = run("hbv", lab(HBSAG, 100, POSITIVE, rid="old"), lab(HBSAG, 10, NEGATIVE, rid="new"))
    assert str(r.status) == "pass"
    assert notes(r.evidence) == {"new": "most recent: negative"}
    assert notes(r.ignored) == {"old": "superseded by a newer result"}


def test_hbv_pass_uses_the_most_recent_negative_of_each_check() -> None:
    r = run(
        "hbv",
        lab(HBSAG, 10, NEGATIVE, rid="s"),
        lab(ANTI_HBC, 20, NEGATIVE, rid="c"),
        lab(HBV_DNA, 30, {"valueString": "Not detected"}, rid="d"),
    )
    assert str(r.status) == "pass"
    assert [(e.ref, e.note) for e in r.evidence] == [
        ("Observation/s", "most recent: negative"),
        ("Observation/d", "most recent: negative"),
        ("Observation/c", "most recent: negative"),
    ]
    assert r.ignored == ()


def test_a_negative_of_a_check_that_did_not_decide_a_fail_stays_ignored() -> None:
    """A fail rests on the finding: the negatives of the other checks are listed among the
    ignored (with what they were), the statuses unchanged."""
    r = run("hbv", condition("B18.1"), lab(HBSAG, 10, NEGATIVE, rid="s"))
    assert str(r.status) == "fail"
    assert len(r.evidence) == 1
    assert r.evidence[0].ref.startswith("Condition/")
    assert notes(r.ignored) == {"s": "most recent: negative"}


def test_every_result_check_uses_every_negative_in_its_window() -> None:
    """`latest = false` (tuberculosis' IGRA, 12 months): every result in the window was read, so
    each negative in it decided the pass; one before the window stays ignored."""
    r = run(
        "tuberculosis",
        lab(IGRA, 20, NEGATIVE, rid="a"),
        lab(IGRA, 200, NEGATIVE, rid="b"),
        lab(IGRA, 500, POSITIVE, rid="out"),
    )
    assert str(r.status) == "pass"
    assert notes(r.evidence) == {"a": "result negative", "b": "result negative"}
    assert list(notes(r.ignored)) == ["out"]
    assert notes(r.ignored)["out"].startswith("outside window")


def test_every_result_check_that_fails_keeps_its_negatives_ignored() -> None:
    negative, positive = lab(HIV_TEST, 20, NEGATIVE, rid="n"), lab(HIV_TEST, 5, POSITIVE, rid="p")
    r = run("immunodeficiency", negative, positive)
    assert str(r.status) == "fail"
    assert notes(r.evidence) == {"p": "result positive"}
    assert notes(r.ignored) == {"n": "result negative"}


def test_same_day_hbsag_positive_and_negative_still_name_each_result() -> None:
    """criteria.ties: a negative the pass reading used is named as before, with what it gives."""
    day = ago(5)
    ctx = context(
        observation(HBSAG, day, **POSITIVE, rid="pos"),
        observation(HBSAG, day, **NEGATIVE, rid="neg"),
    )
    r = next(r for r in evaluate(trial(), ctx) if r.criterion == "hbv")  # as a run (untie)
    assert str(r.status) == "unknown", r.reason
    assert notes(r.evidence) == {
        "pos": "result positive; fail if the most recent (same day, no order)",
        "neg": "result negative; pass if the most recent (same day, no order)",
    }
