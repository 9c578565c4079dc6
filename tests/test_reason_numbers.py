"""Numbers in reasons (text for people): rounded for reading, never across or onto a limit;
evidence.csv's `value` keeps the number as read (docs/rules.md, "Tiers, score": the paragraph
"Numbers in reasons")."""

from __future__ import annotations

import pytest
from criteria_helpers import ago, medication, observation, qty, run

from cohort.criteria.bounds import readable


@pytest.mark.parametrize(
    ("value", "limits", "shown"),
    [
        (7.73445, (8.0,), "7.73"),
        (2.82741, (2.0,), "2.83"),
        (2.2105, (2.0,), "2.21"),
        (8.0, (8.0,), "8"),  # on the limit: shown on it
        (7.5, (8.0,), "7.5"),  # trailing zeros dropped
        (150.0, (25.0,), "150"),
        (248123.4, (), "248123"),  # a whole number is kept whole: never 2.48e+05
        (0.0123456, (), "0.0123"),
        (0.0, (), "0"),
        # digits are added until the shown number is on the exact one's side of each limit
        (7.996, (8.0,), "7.996"),  # not "8 < 8" nor "8.00 < 8"
        (7.9996, (8.0,), "7.9996"),
        (2.004, (2.0,), "2.004"),  # not "2 > 2": never equal to a limit it exceeds
        (8.0001, (8.0,), "8.0001"),  # at or above: not shown on the limit either
        (7.03, (7.0, 8.0), "7.03"),
        (6.999, (7.0, 8.0), "6.999"),
        (1.4998, (1.4996,), "1.5"),
    ],
)
def test_readable(value: float, limits: tuple[float, ...], shown: str) -> None:
    assert readable(value, *limits) == shown


def test_readable_keeps_the_side_of_every_limit() -> None:
    """Whatever the value, the shown number compares with each limit as the exact one does."""
    for i in range(1, 4000):
        v = 8 + (i - 2000) / 10**5
        for limit in (8.0, 7.99, 8.01):
            x = float(readable(v, limit))
            assert (x > limit) - (x < limit) == (v > limit) - (v < limit), (v, limit)


def hb(value: dict, code: str = "718-7") -> dict:
    return observation(code, ago(15), valueQuantity=value)


def test_lab_latest_reason_rounds_a_converted_value_but_evidence_keeps_it() -> None:
    """Output audit: "hemoglobin 7.73445 g/dL < 8" (4.8 mmol/L converted) carried every digit."""
    r = run("hemoglobin", hb(qty(4.8, "mmol/L", "mmol/L"), code="59260-0"))
    assert (r.status, r.reason) == ("fail", f"hemoglobin 7.73 g/dL < 8 on {ago(15)}")
    assert r.evidence[0].value == "7.73445"


@pytest.mark.parametrize(
    ("value", "status", "reason"),
    [
        (7.996, "fail", "hemoglobin 7.996 g/dL < 8 on {}"),
        (8.004, "pass", "hemoglobin 8.004 g/dL >= 8"),
        (8.0, "pass", "hemoglobin 8 g/dL >= 8"),
        (12.3456, "pass", "hemoglobin 12.3 g/dL >= 8"),
    ],
)
def test_lab_latest_reason_never_rounds_onto_the_limit(
    value: float, status: str, reason: str
) -> None:
    r = run("hemoglobin", hb(qty(value, "g/dL", "g/dL")))
    assert (r.status, r.reason) == (status, reason.format(ago(15)))


def test_labs_exceed_reason_rounds_and_never_shows_the_limit_it_exceeds() -> None:
    creat = observation("14682-9", ago(10), valueQuantity=qty(250, "umol/L", "umol/L"))
    r = run("severe_lupus_nephritis", creat)
    assert (r.status, r.reason) == ("fail", f"creatinine 2.83 mg/dL > 2 on {ago(10)}")
    assert r.evidence[0].value == "2.82741"
    just = observation("2160-0", ago(10), valueQuantity=qty(2.004, "mg/dL", "mg/dL"))
    assert run("severe_lupus_nephritis", just).reason == f"creatinine 2.004 mg/dL > 2 on {ago(10)}"


def test_cd19_reason_rounds_the_count_and_a_converted_lower_limit() -> None:
    """A reference low converted from 10*9/L is a limit too: both shown rounded, each on its side
    of the other."""
    count = observation(
        "8116-6",
        ago(5),
        valueQuantity=qty(0.0701234, "10*9/L", "10*9/L"),
        ref_low=qty(0.0801234, "10*9/L", "10*9/L"),
    )
    rtx = medication("MedicationAdministration", "121191", status="completed", when=ago(300))
    r = run("washout_b_cell_depletion", rtx, count)
    assert r.status == "fail"
    assert r.reason.startswith("CD19 B-cell count 70.1 /uL below lower limit 80.1 on ")
    # (the count's row: the last dose it is read since is a used row too)
    assert [e.value for e in r.evidence if e.concept == "cd19_count"] == ["70.1234"]
