"""Evidence.noted and Result.with_rows build their copies positionally (faster than
dataclasses.replace): every field must come through, whatever fields are added later."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import date

from cohort.model import Evidence, NoValue, Result, Status


def _evidence(tag: str) -> Evidence:
    # every field set to a value of its own, none its default
    return Evidence(**{f.name: f"{tag}-{f.name}" for f in fields(Evidence)})


def test_noted_keeps_every_field_but_the_note() -> None:
    ev = _evidence("a")
    assert ev.noted("other") == replace(ev, note="other")
    assert ev.noted("other").note == "other"


def test_with_rows_keeps_every_field_but_the_rows() -> None:
    r = Result(
        "crit",
        Status.UNKNOWN,
        "a reason",
        (_evidence("a"),),
        (_evidence("b"),),
        date(2026, 1, 2),
        True,
        "platelets",
        NoValue.IMPLAUSIBLE,
        "a hint",
    )
    # (a field added without a default of its own would make the call above fail; one added
    # with a value here must come through)
    assert {f.name for f in fields(Result)} == {
        "criterion", "status", "reason", "evidence", "ignored", "eligible_from", "manual",
        "unconvertible", "no_value", "hint",
    }  # fmt: skip
    rows, ignored = (_evidence("c"),), (_evidence("d"), _evidence("e"))
    assert r.with_rows(rows, ignored) == replace(r, evidence=rows, ignored=ignored)
