"""`cohort mappings coverage` counts each record under its own resource type, and gives a unit
failure's screened patients and records each in its own column (found by the coverage oracle
on the public Pathling Synthea bundles)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from cohort.cli import cli

SCT = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
VANCO = {
    "coding": [{"system": RXNORM, "code": "1807510", "display": "150 ML vancomycin 5 MG/ML Injection"}],
    "text": "150 ML vancomycin 5 MG/ML Injection",
}
# a SNOMED CT code Synthea writes on Conditions and on Procedures alike
SPRAIN = {"coding": [{"system": SCT, "code": "44465007", "display": "Sprain of ankle"}]}


def _patient(pid: str) -> list[dict]:
    active = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                          "code": "active"}]}
    return [
        {"resourceType": "Patient", "id": pid, "birthDate": "1980-01-01", "gender": "female"},
        {"resourceType": "Condition", "id": f"sle-{pid}", "clinicalStatus": active,
         "code": {"coding": [{"system": SCT, "code": "55464009"}]},
         "subject": {"reference": f"Patient/{pid}"}, "onsetDateTime": "2020-03-01"},
    ]


def _write(folder: Path, records: list[dict]) -> None:
    """One collection Bundle holding every record (as Synthea writes a patient's chart)."""
    folder.mkdir()
    entries = [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in records]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    (folder / "chart.json").write_text(json.dumps(bundle))


def _coverage(tmp_path: Path, records: list[dict]) -> list[dict[str, str]]:
    _write(tmp_path / "site", records)
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'[trial]\nid = "sirius-sle-2"\n[[sites]]\nid = "s1"\nsource = "{tmp_path / "site"}"\n')
    out = tmp_path / "out"
    args = ["--log-level", "error", "run", "--config", str(cfg), "--as-of", "2026-11-25"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["mappings", "coverage", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with (out / "coverage.csv").open(encoding="utf-8-sig", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["section"] != "mapped_never_seen"]


def test_a_code_on_records_of_two_types_is_counted_under_each_type(tmp_path: Path) -> None:
    """A vancomycin order and its administration carry the same unmapped code element: the
    administration was counted under MedicationRequest (2 records, no MedicationAdministration
    row); likewise a Condition and a Procedure coded alike. Both in one file: the records a
    file's read summarises were counted by their code element alone."""
    records = _patient("p1") + _patient("p2")
    records += [
        {"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
         "medicationCodeableConcept": VANCO, "subject": {"reference": "Patient/p1"},
         "authoredOn": "2026-01-01"},
        {"resourceType": "MedicationAdministration", "id": "ma1", "status": "completed",
         "medicationCodeableConcept": VANCO, "subject": {"reference": "Patient/p1"},
         "effectiveDateTime": "2026-01-01"},
        {"resourceType": "MedicationAdministration", "id": "ma2", "status": "completed",
         "medicationCodeableConcept": VANCO, "subject": {"reference": "Patient/p2"},
         "effectiveDateTime": "2026-01-02"},
        {"resourceType": "Condition", "id": "c1", "code": SPRAIN,
         "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2025-01-01"},
        {"resourceType": "Procedure", "id": "pr1", "status": "completed", "code": SPRAIN,
         "subject": {"reference": "Patient/p2"}, "performedDateTime": "2025-01-01"},
    ]
    rows = _coverage(tmp_path, records)
    got = {
        (r["resource_type"], r["code"]): (r["screened_patients"], r["patients"], r["records"])
        for r in rows if r["section"] == "unmapped"
    }
    # the order: p1 (1 record); the administrations: p1 and p2, one each
    assert got[("MedicationRequest", "1807510")] == ("1", "1", "1")
    assert got[("MedicationAdministration", "1807510")] == ("2", "2", "2")
    assert got[("Condition", "44465007")] == ("1", "1", "1")
    assert got[("Procedure", "44465007")] == ("1", "1", "1")


def test_a_unit_failure_counts_screened_patients_and_records_apart(tmp_path: Path) -> None:
    """Two platelet counts of one screened patient in a unit that does not convert: one
    screened patient, two records (the record count was written as screened_patients)."""

    def count(oid: str, day: str) -> dict:
        return {"resourceType": "Observation", "id": oid, "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "777-3"}]},
                "subject": {"reference": "Patient/p1"}, "effectiveDateTime": day,
                "valueQuantity": {"value": 250, "unit": "furlongs"}}

    rows = _coverage(tmp_path, _patient("p1") + [count("o1", "2026-11-01"), count("o2", "2026-11-10")])
    (row,) = [r for r in rows if r["section"] == "unit_not_converted"]
    assert (row["site"], row["suggestion"], row["units"]) == ("s1", "platelets", "furlongs")
    assert (row["screened_patients"], row["patients"], row["records"]) == ("1", "1", "2")
