"""A primitive sent only as its `_element` companion (FHIR R4 JSON, "Primitive Types": an
element with no value but an id or extensions, e.g. a data-absent-reason) is present, without a
value: read as the same element with a value that cannot be read, never as one left out."""

from __future__ import annotations

from typing import Any

import pytest
from criteria_helpers import (
    UCUM,
    ago,
    condition,
    facts,
    medication,
    mg,
    observation,
    patient,
    qty,
    run,
    status,
)

from cohort.source.validate import check

ABSENT = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                         "valueCode": "unknown"}]}  # fmt: skip
BORN = "1990-01-01"
RECENT_RECORD = "2026-10-26"  # a month before the helpers' as-of, 2026-11-25


def sle_recorded_last_month(**onset: Any) -> dict[str, Any]:
    return {**condition("M32.9", recorded=RECENT_RECORD), **onset}


# --- Condition.onset[x]: an onset given, not known ------------------------------------------------
@pytest.mark.parametrize("name", ["_onsetDateTime", "_onsetString"])
def test_an_onset_sent_as_its_extension_alone_is_an_undated_onset(name: str) -> None:
    c = sle_recorded_last_month(**{name: ABSENT})
    assert check(c, "fast") is None
    [f] = facts(patient(BORN), c).conditions
    # as onsetString "unknown": an onset the record gives that cannot be dated, so the
    # recordedDate (last month) does not stand for it
    assert (f.onset, f.onset_last, f.onset_undated) == (None, None, True)
    r = run("sle_diagnosis", patient(BORN), c)
    assert r.status == "unknown", r.reason  # was fail: "SLE only newer" on its recordedDate
    assert r.reason == "SLE onset recorded without a date this can read"


@pytest.mark.parametrize(
    "onset", [{"_onsetDateTime": ABSENT}, {"onsetString": "since childhood"}, {"onsetAge": {}}]
)
def test_an_undated_onset_recorded_long_before_passes(onset: dict[str, Any]) -> None:
    """An onset the record gives but cannot date is no later than the record: an SLE recorded
    on 2020-01-01 was diagnosed by then, long before the 6-month cutoff (2026-05-25): pass,
    not unknown (every SLE of an EHR that sends its onset as a data-absent-reason was unknown)."""
    c = {**condition("M32.9", recorded="2020-01-01"), **onset}
    r = run("sle_diagnosis", patient(BORN), c)
    assert r.status == "pass", r.reason
    assert r.reason == "diagnosed on or before its record of 2020-01-01 (onset not dated; on or before 2026-05-25)"
    # recorded after the cutoff: the onset may be before it or not
    late = {**condition("M32.9", recorded="2026-06-01"), **onset}
    assert status("sle_diagnosis", patient(BORN), late) == "unknown"


def test_an_onset_companion_with_only_an_id_is_no_onset() -> None:
    # an `_element` with no extension is no element (ele-1): the recordedDate dates it
    c = sle_recorded_last_month(_onsetDateTime={"id": "o1"})
    [f] = facts(patient(BORN), c).conditions
    assert (f.onset, f.onset_undated) == (None, False)
    assert run("sle_diagnosis", patient(BORN), c).status == "fail"


# --- Timing.repeat: how often, given without a value ---------------------------------------------
def prednisone_line(dose_mg: float, **repeat: Any) -> dict[str, Any]:
    """An active prednisone order authored 10 days ago: one line of `dose_mg` with this repeat."""
    line = {"doseAndRate": [{"doseQuantity": mg(dose_mg)}], "timing": {"repeat": repeat}}
    return medication("MedicationRequest", "8640", authored=ago(10), dosages=[line])


@pytest.mark.parametrize(
    ("dose_mg", "repeat", "expected"),
    [
        # a frequency not known, each day: 30 mg once, or more often (was once a day, pass)
        (30, {"_frequency": ABSENT, "period": 1, "periodUnit": "d"}, "unknown"),
        # once to an unknown most a day: 30 mg or more (was once a day, pass)
        (30, {"frequency": 1, "_frequencyMax": ABSENT, "period": 1, "periodUnit": "d"}, "unknown"),
        # once every 1 to an unknown number of days: 50 mg/day or less (was 50 mg/day, fail)
        (50, {"frequency": 1, "period": 1, "_periodMax": ABSENT, "periodUnit": "d"}, "unknown"),
        # with their values, as before
        (30, {"frequency": 1, "period": 1, "periodUnit": "d"}, "pass"),
        (30, {"frequency": 2, "period": 1, "periodUnit": "d"}, "fail"),
        # an `_element` with only an id is no element: once a day
        (30, {"_frequency": {"id": "f"}, "period": 1, "periodUnit": "d"}, "pass"),
        # every ? hours: as often as every hour (10 mg: was once a day, pass)
        (10, {"_period": ABSENT, "periodUnit": "h"}, "unknown"),
        (30, {"_period": ABSENT, "periodUnit": "h", "timeOfDay": ["08:00:00"]}, "unknown"),
    ],
)
def test_a_timing_count_sent_as_its_extension_alone_is_not_read(
    dose_mg: float, repeat: dict[str, Any], expected: str
) -> None:
    order = {**prednisone_line(dose_mg, **repeat), "intent": "order"}
    assert check(order, "fast") is None
    assert status("washout_high_dose_cs", order) == expected


# --- Patient.deceased[x]: given, with no value ---------------------------------------------------
@pytest.mark.parametrize("name", ["_deceasedDateTime", "_deceasedBoolean"])
def test_a_death_sent_as_its_extension_alone_is_not_known(name: str) -> None:
    """deceased[x] given with no value (a data-absent-reason): whether or when the patient died
    is not known. It read as no death recorded (`deceased` passed); now unknown, as a death
    recorded only as `2026` is when as_of falls in it."""
    p = patient(BORN, **{name: ABSENT})
    assert check(p, "fast") is None
    r = run("deceased", p)
    assert r.status == "unknown"
    assert r.reason == "whether the patient died is not known (Patient.deceased[x] without a value)"
    # the other Patient criteria read as before
    assert status("age", p) == "pass"
    assert status("active_record", p) == "pass"


def test_a_death_companion_with_only_an_id_is_no_death() -> None:
    assert status("deceased", patient(BORN, _deceasedDateTime={"id": "d"})) == "pass"


# --- Observation.value[x]: a value given, not known -----------------------------------------------
K_UL = "10*3/uL"


@pytest.mark.parametrize(
    "value",
    [
        {"valueQuantity": {"_value": ABSENT, "unit": K_UL, "system": UCUM, "code": K_UL}},
        {"valueQuantity": {"_value": ABSENT}},
        {"_valueString": ABSENT},
        {"_valueInteger": ABSENT},
    ],
)
def test_a_value_sent_as_its_extension_alone_is_no_count(value: dict[str, Any]) -> None:
    """A result whose value[x] is given with no value (obs-6 leaves dataAbsentReason out beside
    a value[x]; the value's own data-absent-reason says it) is no count, as one with only a
    dataAbsentReason: the older platelet count in the window is the most recent. It was read as
    a value that does not convert ("value '' (no unit) not convertible"), unknown."""
    newer = observation("777-3", ago(5), **value)
    count = observation("777-3", ago(20), valueQuantity=qty(20, K_UL, K_UL))
    assert check(newer, "fast") is None
    r = run("platelets", newer, count)
    assert r.status == "fail", r.reason
    assert r.evidence[0].ref == f"Observation/{count['id']}"
    assert status("platelets", newer) == "unknown"  # no count at all


def test_a_value_sent_as_another_extension_alone_is_not_read_as_no_count() -> None:
    """Only a data-absent-reason says there is no value: a value sent as another extension
    alone (a vendor's, originalText) is a value not read, unknown, as before: not a result
    that is skipped for the older count."""
    other = {"extension": [{"url": "http://example.org/fhir/lab-value", "valueString": "150"}]}
    for value in ({"_valueString": other}, {"valueQuantity": {"_value": other}}):
        newer = observation("777-3", ago(5), **value)
        count = observation("777-3", ago(20), valueQuantity=qty(20, K_UL, K_UL))
        assert status("platelets", newer, count) == "unknown", value


def test_a_value_with_a_value_and_an_extension_is_read() -> None:
    newer = observation("777-3", ago(5), valueQuantity={**qty(150, K_UL, K_UL), "_value": ABSENT})
    count = observation("777-3", ago(20), valueQuantity=qty(20, K_UL, K_UL))
    assert status("platelets", newer, count) == "pass"
