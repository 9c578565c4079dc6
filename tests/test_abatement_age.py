"""Condition.abatementAge / abatementRange dated from the patient's birth date, as onsetAge and
onsetRange are (FHIR: an Age is the patient's age at that time)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from criteria_helpers import condition, facts, patient, qty, settled

BORN = "1990-05-01"  # 36 on as_of 2026-11-25


def _age(n: float, comparator: str | None = None) -> dict[str, Any]:
    out = qty(n, "a", ucum=True)
    if comparator is not None:
        out["comparator"] = comparator
    return out


@pytest.mark.parametrize(
    ("abatement", "birth", "first", "last"),
    [
        # every day the patient is 20: the 20th birthday to the day before the 21st
        ({"abatementAge": _age(20)}, "1990-05-01", date(2010, 5, 1), date(2011, 4, 30)),
        # a year of birth only: every possible birthday's (born 1990-01-01 .. 1990-12-31)
        ({"abatementAge": _age(20)}, "1990", date(2010, 1, 1), date(2011, 12, 30)),
        ({"abatementAge": _age(20)}, "1990-05", date(2010, 5, 1), date(2011, 5, 30)),
        ({"abatementAge": qty(18, "mo", ucum=True)}, "2020-01-15", date(2021, 7, 15), date(2021, 8, 14)),
        ({"abatementAge": _age(20, "<")}, "1990-05-01", date(1990, 5, 1), date(2011, 4, 30)),
        ({"abatementAge": _age(20, ">")}, "1990-05-01", date(2010, 5, 1), date.max),
        # a Range: from its low's first day to its high's last (the high decides "over by")
        ({"abatementRange": {"low": _age(18), "high": _age(20)}}, "1990-05-01", date(2008, 5, 1), date(2011, 4, 30)),
        ({"abatementRange": {"high": _age(20)}}, "1990-05-01", date(1990, 5, 1), date(2011, 4, 30)),
        ({"abatementRange": {"low": _age(18)}}, "1990-05-01", date(2008, 5, 1), date.max),
    ],
)  # fmt: skip
def test_abatement_age_and_range_are_dated_from_the_birth_date(
    abatement: dict[str, Any], birth: str, first: date, last: date
) -> None:
    c = {**condition("B18.1", onset="2005-03-02"), **abatement}
    for records in ((c, patient(birth)), (patient(birth), c)):  # the Patient before or after
        [f] = facts(*records).conditions
        assert (f.abatement, f.abatement_last, f.abatement_undated) == (first, last, False)
        assert (f.onset, f.onset_last, f.onset_undated) == (date(2005, 3, 2), None, False)


@pytest.mark.parametrize(
    ("abatement", "birth"),
    [
        ({"abatementAge": _age(20)}, None),  # no birth date
        ({"abatementAge": _age(20)}, "19"),  # no birth date that reads
        ({"abatementAge": qty(20, "furlong", ucum=True)}, BORN),  # no age unit
        ({"abatementAge": {"unit": "a"}}, BORN),  # no value
        ({"abatementAge": _age(-1)}, BORN),
        ({"abatementRange": {}}, BORN),
        ({"abatementRange": {"low": _age(30), "high": _age(20)}}, BORN),  # low above high
    ],
)
def test_an_abatement_age_that_cannot_be_dated_stays_undated(
    abatement: dict[str, Any], birth: str | None
) -> None:
    c = {**condition("B18.1"), **abatement}
    [f] = facts(patient(birth), c).conditions
    assert (f.abatement, f.abatement_last, f.abatement_undated) == (None, None, True)


def test_onset_and_abatement_ages_are_both_dated() -> None:
    c = {**condition("B18.1"), "onsetAge": _age(20), "abatementAge": _age(30)}
    [f] = facts(c, patient(BORN)).conditions
    assert (f.onset, f.onset_last) == (date(2010, 5, 1), date(2011, 4, 30))
    assert (f.abatement, f.abatement_last) == (date(2020, 5, 1), date(2021, 4, 30))
    assert not f.onset_undated and not f.abatement_undated


@pytest.mark.parametrize(
    ("abatement", "birth", "clinical", "expected"),
    [
        ({"abatementAge": _age(35)}, BORN, "active", "pass"),  # over by 2026-04-30
        ({"abatementAge": _age(37)}, BORN, "active", "fail"),  # from 2027-05-01: active now
        ({"abatementAge": _age(36)}, BORN, "active", "unknown"),  # 2026-05-01..2027-04-30
        ({"abatementAge": _age(36)}, BORN, "resolved", "pass"),  # not active whatever the day
        ({"abatementRange": {"high": _age(35)}}, BORN, "active", "pass"),
        ({"abatementRange": {"low": _age(30), "high": _age(36)}}, BORN, "active", "unknown"),
        ({"abatementRange": {"low": _age(30)}}, BORN, "active", "unknown"),  # 2020 or later
        # a year of birth only: 34 is 2024-01-01..2025-12-30, 35 is 2025-01-01..2026-12-30
        ({"abatementAge": _age(34)}, "1990", "active", "pass"),
        ({"abatementAge": _age(35)}, "1990", "active", "unknown"),
        ({"abatementAge": _age(20)}, None, "active", "unknown"),  # no birth date: as before
    ],
)
def test_hbv_reads_an_abatement_age_from_the_birth_date(
    abatement: dict[str, Any], birth: str | None, clinical: str, expected: str
) -> None:
    """An active chronic hepatitis B condition that abated at an age: it was unknown ("abated
    on a date not given") whatever the age; now the birth date dates it."""
    c = {**condition("B18.1", clinical=clinical), **abatement}
    r = settled("hbv", patient(birth), c)
    assert r.status == expected, r.reason


def test_the_reason_names_the_days_an_abatement_age_stands_for() -> None:
    c = {**condition("B18.1"), "abatementAge": _age(36)}
    r = settled("hbv", c, patient(BORN))
    assert r.reason == (
        "chronic hepatitis B condition abated 2026-05-01/2027-04-30: cannot tell if still"
        " active on 2026-11-25"
    )
