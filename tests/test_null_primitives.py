"""A null in an array of primitives with its `_element` companion (FHIR R4 JSON, "Primitive
Types": a repeating primitive's value may be null where the companion array carries an id or an
extension at that position) is valid: kept by validation and skipped by the readers. A null
without a companion object at its position stays refused with the same reason as before."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from criteria_helpers import dosage, facts, medication, mg, observation, patient, status
from test_precheck import interpreter, precheck
from test_reliability_support import write_config

from cohort.config import load_config
from cohort.extract.lines import decoder
from cohort.runner import run
from cohort.source.files import ReadStats, read_path
from cohort.source.refused import MARK
from cohort.source.validate import check

ABSENT = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                         "valueCode": "unknown"}]}  # fmt: skip
SLE = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}


def jim(**name: Any) -> dict[str, Any]:
    """The Patient whose second given name is unknown (a null with its `_given` companion)."""
    given: dict[str, Any] = {"family": "X", "given": ["Jim", None], "_given": [None, ABSENT]}
    given.update(name)
    return patient("1990-05-01", pid="p1", gender="male",
                   name=[{k: v for k, v in given.items() if v is not ...}])  # fmt: skip


def timed_result(event: list[Any], companion: Any = ...) -> dict[str, Any]:
    """A hemoglobin result dated by an effectiveTiming with these events (and `_event`)."""
    res = observation("718-7", None, valueQuantity={"value": 13.1, "unit": "g/dL"})
    res["effectiveTiming"] = {"event": event}
    if companion is not ...:
        res["effectiveTiming"]["_event"] = companion
    return res


def dose_order(event: list[Any], companion: Any) -> dict[str, Any]:
    line = {**dosage(mg(5)), "timing": {"event": event, "_event": companion}}
    order = medication("MedicationRequest", "8640", authored="2026-11-01", dosages=[line])
    return {**order, "intent": "order"}


# --- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "res",
    [
        jim(),
        timed_result([None, "2026-11-20"], [ABSENT, None]),
        dose_order([None, "2026-11-20"], [ABSENT, None]),
        # every value null, each with its companion
        jim(given=[None, None], _given=[ABSENT, ABSENT]),
    ],
)
def test_a_null_with_its_companion_is_valid(res: dict[str, Any]) -> None:
    assert check(res, "fast") is None
    assert interpreter(res) is None
    # the compiled precheck says no (a null is no string) and leaves it to the walk, which
    # accepts: never the other way round
    assert not precheck(res)
    assert check(res, "full") is None


@pytest.mark.parametrize(
    ("res", "reason"),
    [
        (jim(_given=...), "Patient.name[0].given[1]: not a string"),
        (jim(_given=[None, None]), "Patient.name[0].given[1]: not a string"),
        (jim(_given=[ABSENT]), "Patient.name[0].given[1]: not a string"),  # shorter
        (jim(_given=ABSENT), "Patient.name[0].given[1]: not a string"),  # no array
        (jim(_given=[None, "unknown"]), "Patient.name[0].given[1]: not a string"),
        # the companion at another position does not stand for this one
        (jim(given=[None, "Jim"], _given=[None, ABSENT]), "Patient.name[0].given[0]: not a string"),
        # a null passed over, the next bad entry is named at its own position
        (jim(given=[None, None, 5], _given=[ABSENT, None]),
         "Patient.name[0].given[1]: not a string"),
        (jim(given=[None, 5], _given=[ABSENT, None]), "Patient.name[0].given[1]: not a string"),
        # a companion with only an id is no element (ele-1: a value or children), as present()
        (jim(given=[None, "Jim"], _given=[{"id": "g0"}]), "Patient.name[0].given[0]: not a string"),
        (jim(given=[None, "Jim"], _given=[{}]), "Patient.name[0].given[0]: not a string"),
        # a companion of another element does not stand for `given`
        (jim(_given=..., _family=[None, ABSENT]), "Patient.name[0].given[1]: not a string"),
        (timed_result([None, "2026-11-20"]),
         "Observation.effectiveTiming.event[0]: not a valid FHIR dateTime"),
        (timed_result([None, "2026-11-20"], [None, ABSENT]),
         "Observation.effectiveTiming.event[0]: not a valid FHIR dateTime"),
        (dose_order([None, "2026-11-20"], []),
         "MedicationRequest.dosageInstruction[0].timing.event[0]: not a valid FHIR dateTime"),
    ],
)  # fmt: skip
def test_a_null_without_its_companion_is_still_refused(res: dict[str, Any], reason: str) -> None:
    assert check(res, "fast") == reason
    assert not precheck(res)


def test_the_file_read_keeps_the_records_whole(tmp_path: Path) -> None:
    records = [jim(), timed_result([None, "2026-11-20"], [ABSENT, None]),
               dose_order([None, "2026-11-20"], [ABSENT, None])]  # fmt: skip
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in records]}  # fmt: skip
    (tmp_path / "b.json").write_text(json.dumps(bundle), encoding="utf-8")
    stats = ReadStats()
    kept = [r for r, _ in read_path(tmp_path / "b.json", stats)]
    assert not stats.rejected
    assert [MARK in r for r in kept] == [False, False, False]
    assert kept == records


def test_a_result_line_with_a_null_event_is_read_whole_by_the_triage() -> None:
    """msgspec's `list[str]` refuses the null: the line is read the ordinary way."""
    line = json.dumps(timed_result([None, "2026-11-20"], [ABSENT, None])).encode()
    assert decoder("Observation")(line) is None


# --- reading -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "text"),
    [
        ({}, "Jim X"),
        ({"given": [None, "Jim"], "_given": [ABSENT, None]}, "Jim X"),
        ({"given": [None], "_given": [ABSENT]}, "X"),
        # (from a server, not validated: no companion, other shapes)
        ({"given": ["Jim", None, 7], "_given": ...}, "Jim X"),
        ({"family": None, "_family": ABSENT}, "Jim"),
        ({"text": None, "_text": ABSENT}, "Jim X"),
        ({"text": 5}, "Jim X"),
        ({"given": "Jim"}, "Jim X"),
    ],
)
def test_the_name_reads_without_the_nulls(name: dict[str, Any], text: str) -> None:
    pf = facts(jim(**name))
    assert pf.patient.name == text
    assert pf.patient.birth_date == "1990-05-01" and pf.patient.sex == "male"
    assert not pf.unreadable and not pf.dropped


def test_a_result_with_an_event_not_known_has_no_earliest() -> None:
    """An event whose date is not known (null beside its `_event`) may be the earliest: the
    result is not dated by the others (a newer Hb dated so was taken as the most recent), as an
    event that does not read; undated, listed as a date that does not read."""
    pf = facts(timed_result([None, "2026-11-20"], [ABSENT, None]))
    [obs] = pf.observations
    assert obs.when is None
    assert [u.ref for u in pf.unreadable] == [f"Observation/{obs.ref.split('/')[-1]}"]
    # every event not known: no date given at all (as `_effectiveDateTime` alone)
    pf = facts(timed_result([None], [ABSENT]))
    assert pf.observations[0].when is None and not pf.unreadable


@pytest.mark.parametrize(
    ("timing", "dose_mg", "expected"),
    [
        # 25 mg at an unknown time and once on 11-20: 1 or 2 a day, 25 to 50 mg -> unknown
        ({"event": [None, "2026-11-20"], "_event": [ABSENT, None]}, 25, "unknown"),
        ({"event": [None, "2026-11-20"], "_event": [ABSENT, None]}, 15, "pass"),  # 15 to 30
        # twice on 11-20 and once unknown: 2 or 3 a day, 50 to 75 mg
        ({"event": ["2026-11-20T08:00:00Z", "2026-11-20T20:00:00Z", None]}, 25, "fail"),
        ({"event": [None], "_event": [ABSENT]}, 5, "pass"),  # one administration: 5 mg
        ({"timeOfDay": ["08:00:00", None]}, 15, "pass"),  # 1 or 2 a day: 15 to 30
        ({"timeOfDay": ["08:00:00", None]}, 25, "unknown"),  # 25 to 50
        ({"timeOfDay": ["08:00:00", "20:00:00", None]}, 25, "fail"),  # 2 or 3: 50 to 75
        ({"timeOfDay": [None]}, 30, "pass"),  # one a day
    ],
)  # fmt: skip
def test_a_dose_s_timing_counts_an_unknown_entry_as_maybe_one_more(
    timing: dict[str, Any], dose_mg: int, expected: str
) -> None:
    """A null is an administration whose day or time is not given: it may fall on the day (or
    at the time) of another or not, so the count is a range (a wrong pass is the worst)."""
    if "timeOfDay" in timing:
        line = {**dosage(mg(dose_mg)), "timing": {"repeat": {"timeOfDay": timing["timeOfDay"]}}}
    else:
        line = {**dosage(mg(dose_mg)), "timing": timing}
    order = medication("MedicationRequest", "8640", authored="2026-11-15", dosages=[line])
    assert status("washout_high_dose_cs", order) == expected


# --- a run -------------------------------------------------------------------------------------
def test_a_file_run_keeps_the_patient_and_reads_the_age(tmp_path: Path) -> None:
    records = [jim(), {"resourceType": "Condition", "id": "c1", "code": SLE,
                       "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2015-01-01"}]  # fmt: skip
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "all.ndjson").write_text("\n".join(json.dumps(r) for r in records))
    out = tmp_path / "out"
    run(load_config(write_config(tmp_path, {"s": str(tmp_path / "site")})), date(2026, 11, 25), out)
    with (out / "s" / "candidates.csv").open(encoding="utf-8-sig", newline="") as f:
        [row] = list(csv.DictReader(f))
    # born 1990-05-01: 36 on 2026-11-25, at least 12
    assert row["age"] == "pass"
    assert row["age_years"] == "36"
    assert row["name"] == "Jim X"
    assert row["sex"] == "male"


def test_a_result_whose_only_events_are_null_is_undated_not_unreadable() -> None:
    """As a null effectiveDateTime with its `_effectiveDateTime` extension: no date is given,
    so the result is undated (dated by `issued` when it has one), not a date that does not
    read."""
    pf = facts(timed_result([None], [ABSENT]))
    [obs] = pf.observations
    assert obs.when is None and not pf.unreadable
    pf = facts({**timed_result([None], [ABSENT]), "issued": "2026-11-21T08:00:00Z"})
    assert pf.observations[0].when == date(2026, 11, 21) and not pf.unreadable
    # beside an event that does not read, it is still one that does not read
    pf = facts(timed_result([None, "next week"], [ABSENT, None]))
    assert pf.observations[0].when is None and pf.unreadable
