"""Records naming their patient by identifier only (a logical Reference, FHIR R4 references.html).

HL7's own R4 example Bundle-bundle-references.json holds such an Observation. Such a record was
stored for no patient and read for nobody, silently: a malignancy so recorded passed
`malignancy`. It is read as the one Patient of the site holding that identifier; one that names
no patient this way is counted in a run.json warning (types and counts only, no identifier).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from criteria_helpers import ago, condition, patient
from researcher_helpers import csv_rows, run_records

MRN = "http://hospital.example.org/mrn"


def _by_identifier(res: dict[str, Any], value: str, system: str | None = MRN) -> dict[str, Any]:
    ident = {"value": value} if system is None else {"system": system, "value": value}
    return {**res, "subject": {"identifier": ident, "display": "not read"}}


def _for(pid: str, res: dict[str, Any]) -> dict[str, Any]:
    return {**res, "subject": {"reference": f"Patient/{pid}"}}


def _mrn(value: str) -> list[dict[str, Any]]:
    return [{"system": MRN, "value": value}]


def _report(site: Path) -> dict[str, Any]:
    site_report: dict[str, Any] = json.loads((site.parent / "run.json").read_text())
    return site_report


def test_a_malignancy_naming_the_patient_by_identifier_fails_malignancy(tmp_path: Path) -> None:
    records = [
        patient("1980-05-01", pid="p1", identifier=_mrn("M-1")),
        _for("p1", condition("M32.14", onset=ago(3000), rid="sle-1")),
        # breast cancer (ICD-10-CM C50.911, malignancy C00-C96), subject given by MRN only
        _by_identifier(condition("C50.911", onset=ago(400), rid="ca-1"), "M-1"),
    ]
    site = run_records(tmp_path, records)
    rows = {r["patient_id"]: r for r in csv_rows(site / "candidates.csv")}
    assert rows["p1"]["malignancy"] == "fail"
    assert rows["p1"]["tier"] == "excluded"
    evidence = csv_rows(site / "evidence.csv")
    assert any(r["ref"] == "Condition/ca-1" and r["criterion"] == "malignancy" for r in evidence)
    report = _report(site)
    assert report["sites"]["s1"]["unattributed"] == {}


def test_an_sle_diagnosis_by_identifier_screens_the_patient(tmp_path: Path) -> None:
    records = [
        patient("1980-05-01", pid="p1", identifier=[{"system": "urn:other", "value": "M-1"}]),
        patient("1981-05-01", pid="p2", identifier=_mrn("M-1")),
        _by_identifier(condition("M32.14", onset=ago(3000), rid="sle-2"), "M-1"),
    ]
    site = run_records(tmp_path, records)
    # the identifier's system decides: p1 holds the value under another system
    rows = {r["patient_id"]: r for r in csv_rows(site / "candidates.csv")}
    assert set(rows) == {"p2"}
    assert rows["p2"]["sle_diagnosis"] == "pass"


def test_records_no_single_patient_holds_are_counted_in_a_warning(tmp_path: Path) -> None:
    records = [
        patient("1980-05-01", pid="p1", identifier=_mrn("M-1")),
        patient("1980-05-01", pid="p2", identifier=_mrn("M-1")),  # two charts, one MRN
        patient("1990-01-01", pid="p3", identifier=_mrn("M-3")),
        _for("p3", condition("M32.14", onset=ago(3000), rid="sle-3")),
        _by_identifier(condition("C50.911", onset=ago(400), rid="ca-2"), "M-1"),
        _by_identifier(condition("C50.911", onset=ago(400), rid="ca-3"), "M-9"),
        _by_identifier(condition("C50.911", onset=ago(400), rid="ca-4"), "M-3", system=None),
        {k: v for k, v in condition("C50.911", rid="ca-5").items() if k != "subject"},
    ]
    site = run_records(tmp_path, records)
    rows = {r["patient_id"]: r for r in csv_rows(site / "candidates.csv")}
    # an identifier without a system names no one for sure: not read as p3's
    assert rows["p3"]["malignancy"] == "pass"
    report = _report(site)
    assert report["sites"]["s1"]["unattributed"] == {"Condition": 4}
    said = [w for w in report["warnings"] if "name no patient" in w]
    assert len(said) == 1
    # M-1 held by two charts, M-9 by none, M-3 given without a system; one with no subject
    assert said[0] == (
        "s1: 4 record(s) name no patient in this site's data and are read for no one"
        " (Condition 4): 3 by an identifier no single Patient holds, 1 by no Patient"
        " reference or identifier"
    )
    # counts only: no identifier value, record or patient id
    for text in ("M-1", "M-9", "M-3", "ca-", "p1", "p2"):
        assert text not in said[0]


def test_a_night_after_the_identifier_moved_reads_the_record_as_its_new_holder(
    tmp_path: Path,
) -> None:
    """The record is re-read unchanged into the same store: its patient is the one holding the
    identifier tonight, as a read into a fresh store finds (it kept last night's patient, who
    no longer holds the MRN, and screened them with the SLE diagnosis)."""
    sle = _by_identifier(condition("M32.14", onset=ago(3000), rid="sle-4"), "M-1")

    def night(mrn1: str, mrn2: str) -> Path:
        charts = [patient("1980-05-01", pid="p1", identifier=_mrn(mrn1)),
                  patient("1981-05-01", pid="p2", identifier=_mrn(mrn2))]  # fmt: skip
        return run_records(tmp_path, [*charts, sle])

    site = night("M-1", "M-2")
    assert [r["patient_id"] for r in csv_rows(site / "candidates.csv")] == ["p1"]
    # the MRN corrected: M-1 is p2's, p1 has another
    site = night("M-9", "M-1")
    assert [r["patient_id"] for r in csv_rows(site / "candidates.csv")] == ["p2"]
    # two charts holding it: no one for sure
    site = night("M-1", "M-1")
    assert csv_rows(site / "candidates.csv") == []
    assert _report(site)["sites"]["s1"]["unattributed"] == {"Condition": 1}
