"""What a Dosage's timing, dose range and bounds say, as washout_high_dose_cs and the washouts
read them, and Procedures that stay ongoing (docs/rules.md "Reading records", "Exposure
interval" and `washout_high_dose_cs`). SPEC: > 40 mg/day prednisone-equivalent within 12 weeks
fails, a corticosteroid without a usable dose is unknown; a wrong pass of an exclusion is the
worst outcome, so a timing that is given but cannot be read, or a dose that may be on either
side of the limit, is unknown, never once a day."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from criteria_helpers import (
    ago,
    dosage,
    medication,
    mg,
    status,
)

PREDNISONE, CYCLOPHOSPHAMIDE, PLASMAPHERESIS = "8640", "3002", "20720000"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
W12, W24 = timedelta(weeks=12), timedelta(weeks=24)


def taking(*dosages: dict[str, Any], code: str = PREDNISONE, **kw: Any) -> dict[str, Any]:
    """A MedicationRequest (prednisone, active, authored 10 days ago) with these lines."""
    kw.setdefault("status", "active")
    kw.setdefault("authored", ago(10))
    return medication("MedicationRequest", code, dosages=list(dosages), **kw)


def timed(dose: dict[str, Any], timing: Any) -> dict[str, Any]:
    """A dosage line of `dose` with this `timing` element as it is (any shape)."""
    return {**dosage(dose), "timing": timing}


def high_dose(*dosages: dict[str, Any]) -> str:
    return status("washout_high_dose_cs", taking(*dosages))


def period(start: int | None, end: int | None) -> dict[str, str]:
    """A boundsPeriod from `start` to `end` days before as_of."""
    return {k: ago(v) for k, v in (("start", start), ("end", end)) if v is not None}


# --- 1. a timing given that cannot be read is no usable dose ---------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # a timing code of text only was read as no timing: once a day, 30 mg/day, pass
        (dosage(mg(30), timing_text="2 times daily"), "unknown"),
        (dosage(mg(30), timing_text="once daily"), "unknown"),  # text is not read either way
        (timed(mg(30), "BID"), "unknown"),  # a timing that is no object
        (timed(mg(30), {"repeat": "twice daily"}), "unknown"),
        (
            timed(mg(30), {"code": {"coding": [{"system": "urn:local", "code": "200023"}]}}),
            "unknown",
        ),
        # a frequency is read first: the code's text only renders it
        (dosage(mg(25), frequency=2, timing_text="2 times daily"), "fail"),
        # a TimingAbbreviation coding beside a local one is read wherever it is
        (
            timed(
                mg(25), {"code": {"coding": [{"code": "200023"}, {"system": GTS, "code": "BID"}]}}
            ),
            "fail",
        ),
        # a period without a frequency: once each period (every 8 hours, 3 a day)
        (dosage(mg(15), period=8, period_unit="h"), "fail"),
        (dosage(mg(10), period=8, period_unit="h"), "pass"),
        (dosage(mg(15), period=8, period_unit="hours"), "unknown"),  # no unit of time
        # timing.event: the most administrations on one day
        (timed(mg(25), {"event": [f"{ago(5)}T08:00:00Z", f"{ago(5)}T20:00:00Z"]}), "fail"),
        (timed(mg(25), {"event": [ago(5), ago(4)]}), "pass"),
        (timed(mg(25), {"event": ["next week"]}), "unknown"),
        # elements that say nothing of a rate leave it as no timing: once a day
        (dosage(mg(30), count=10), "pass"),
        (dosage(mg(45), count=10), "fail"),
        (timed(mg(30), {}), "pass"),
    ],
)
def test_a_timing_given_that_does_not_read_is_no_usable_dose(
    line: dict[str, Any], expected: str
) -> None:
    assert high_dose(line) == expected


def test_an_unread_timing_beside_a_low_line_is_unknown() -> None:
    """The unread line may be the one above the limit (docs: "may be the largest")."""
    low = dosage(mg(5), timing_code="QD")
    assert high_dose(dosage(mg(30), timing_text="2 times daily"), low) == "unknown"
