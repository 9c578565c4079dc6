"""A refused record's stub (source.refused) against a readable copy of the same record.

A stub was stored like any record: the last copy read of a key won where versions did not
decide, and a newer version always did. So a malignancy Condition read well from one file and
refused in another (the same id, no version) was a fail or an unknown by the order the files
were read in, and a night whose export held only a broken copy of a record read well the night
before erased it: the readable fail became unknown, its evidence gone. Now the stub is stored
with the readable copy it replaces, which is read as the record: an exclusion it fails still
fails, and a criterion it would pass is unknown, naming the record that could not be read. A
readable copy read after the stub (the source fixed it) replaces it.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from test_reliability_support import write_config
from test_unreadable_records import ACTIVE, AS_OF, LOINC, RX, SCT, cc

from cohort.config import load_config
from cohort.runner import run
from cohort.source.refused import MARK
from cohort.store import Store

ERROR = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": "entered-in-error",
        }
    ]
}


def patient() -> list[dict[str, Any]]:
    return [
        {"resourceType": "Patient", "id": "p1", "birthDate": "1990-05-01", "gender": "female"},
        {"resourceType": "Condition", "id": "sle", "clinicalStatus": ACTIVE,
         "code": cc(SCT, "55464009"), "onsetDateTime": "2015-01-01",
         "subject": {"reference": "Patient/p1"}},
    ]  # fmt: skip


def malignancy(**kw: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": "m1", "clinicalStatus": ACTIVE,
            "code": cc(SCT, "363346000"), "subject": {"reference": "Patient/p1"}, **kw}  # fmt: skip


# refused (a clinicalStatus that is text, not a CodeableConcept): stored as a stub
BROKEN = malignancy(clinicalStatus="active")


def hbsag(value: str, **kw: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": "h1", "status": "final",
            "code": cc(LOINC, "5196-1"), "effectiveDateTime": "2026-11-01",
            "valueString": value, "subject": {"reference": "Patient/p1"}, **kw}  # fmt: skip


class Site:
    """One site read night after night from a folder of NDJSON files, into one store."""

    def __init__(self, root: Path) -> None:
        self.root, self.data = root, root / "data"
        self.cfg = write_config(root, {"s": str(self.data)}, store=root / "store.db")

    def night(self, files: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, Any], dict]:
        self.data.mkdir(exist_ok=True)
        for old in self.data.iterdir():
            old.unlink()
        for name, records in files.items():
            lines = "".join(json.dumps(r) + "\n" for r in records)
            (self.data / name).write_text(lines, encoding="utf-8")
        report = run(load_config(self.cfg), date.fromisoformat(AS_OF), self.root / "out")
        assert report["status"] == "success", report
        text = (self.root / "out" / "s" / "candidates.csv").read_text(encoding="utf-8-sig")
        row = next(csv.DictReader(io.StringIO(text)))
        return report["sites"]["s"], row

    def unreadable_evidence(self) -> set[tuple[str, str]]:
        """(criterion, record) of evidence.csv's records that could not be read."""
        text = (self.root / "out" / "s" / "evidence.csv").read_text(encoding="utf-8-sig")
        rows = csv.DictReader(io.StringIO(text))
        return {(r["criterion"], r["ref"]) for r in rows if "could not be read" in r["note"]}

    def stored(self, rtype: str, rid: str) -> dict[str, Any] | None:
        with Store(self.root / "store.db") as store:
            return store.get("s", rtype, rid)


@pytest.mark.parametrize("order", ["readable first", "broken first"])
def test_a_readable_copy_in_another_file_is_read_whatever_the_order(
    tmp_path: Path, order: str
) -> None:
    files = [[*patient(), malignancy()], [BROKEN]]
    if order == "broken first":
        files.reverse()
    _, row = Site(tmp_path).night({"a.ndjson": files[0], "b.ndjson": files[1]})
    assert row["malignancy"] == "fail", row["reasons"]


def test_a_broken_copy_the_next_night_keeps_the_readable_one_until_fixed(
    tmp_path: Path,
) -> None:
    site = Site(tmp_path)
    _, row = site.night({"a.ndjson": [*patient(), malignancy(), hbsag("Negative")]})
    assert (row["malignancy"], row["hbv"]) == ("fail", "pass")
    # night 2: both records broken. The malignancy read the night before still fails; the
    # negative HBsAg no longer says the patient passes (its newer version could not be read)
    broken_hbsag = hbsag("Negative", status=7)
    report, row = site.night({"a.ndjson": [*patient(), BROKEN, broken_hbsag]})
    assert row["malignancy"] == "fail", row["reasons"]
    assert row["hbv"] == "unknown"
    assert ("hbv", "Observation/h1") in site.unreadable_evidence()
    assert report["stored"]["updated"] == 2
    stub = site.stored("Condition", "m1")
    assert stub is not None and MARK in stub
    # the same broken export again: nothing changes in the store
    report, again = site.night({"a.ndjson": [*patient(), BROKEN, broken_hbsag]})
    assert report["stored"]["updated"] == 0, report["stored"]
    assert (again["malignancy"], again["hbv"]) == ("fail", "unknown")
    # night 3: the source fixed them; the readable versions replace the stubs
    report, row = site.night({"a.ndjson": [*patient(), malignancy(), hbsag("Negative")]})
    assert (row["malignancy"], row["hbv"]) == ("fail", "pass"), row["reasons"]
    assert not site.unreadable_evidence()
    assert site.stored("Condition", "m1") == malignancy()


def test_versions_still_decide(tmp_path: Path) -> None:
    """An older broken version is no newer record (skipped); a newer one is a stub over the
    readable copy; a newer readable one replaces that."""
    site = Site(tmp_path)
    v = {"meta": {"versionId": "2"}}
    site.night({"a.ndjson": [*patient(), hbsag("Negative", **v)]})
    older = hbsag("Negative", status=7, meta={"versionId": "1"})
    _, row = site.night({"a.ndjson": [*patient(), older]})
    assert row["hbv"] == "pass" and "could not be read" not in row["reasons"]
    newer = hbsag("Negative", status=7, meta={"versionId": "3"})
    _, row = site.night({"a.ndjson": [*patient(), newer]})
    assert row["hbv"] == "unknown" and "could not be read" in row["reasons"]
    fixed = hbsag("Positive", meta={"versionId": "4"})
    _, row = site.night({"a.ndjson": [*patient(), fixed]})
    assert row["hbv"] == "fail" and "could not be read" not in row["reasons"]


def test_a_newer_version_entered_in_error_drops_the_readable_copy_too(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.night({"a.ndjson": [*patient(), malignancy()]})
    retracted = {**BROKEN, "verificationStatus": ERROR}
    _, row = site.night({"a.ndjson": [*patient(), retracted]})
    assert row["malignancy"] == "pass", row["reasons"]


def test_a_broken_copy_without_its_patient_keeps_the_readable_one_on_the_chart(
    tmp_path: Path,
) -> None:
    """A copy refused for its subject (a reference that is no string) names no patient: the
    readable copy it is stored over still does."""
    site = Site(tmp_path)
    site.night({"a.ndjson": [*patient(), malignancy()]})
    _, row = site.night({"a.ndjson": [*patient(), malignancy(subject={"reference": 1})]})
    assert row["malignancy"] == "fail", row["reasons"]


def test_a_broken_newer_version_recoded_is_read_by_its_own_code(tmp_path: Path) -> None:
    """The readable copy (asthma) and the stub stored over it (now a malignancy) share one
    reference: each is read by its own code, so `malignancy` does not pass on the stub."""
    site = Site(tmp_path)
    site.night({"a.ndjson": [*patient(), malignancy(code=cc(SCT, "195967001"))]})
    _, row = site.night({"a.ndjson": [*patient(), BROKEN]})
    assert row["malignancy"] == "unknown", row["reasons"]
    assert row["cs_dependent_comorbidity"] == "unknown"
    assert ("malignancy", "Condition/m1") in site.unreadable_evidence()


def test_a_broken_copy_of_a_referenced_medication_keeps_the_readable_one_s_strength(
    tmp_path: Path,
) -> None:
    """A Medication (prednisone 20 mg a tablet) read well one night and refused the next is
    stored as a stub over its readable copy: the request's dose (3 tablets a day) still reads
    as 60 mg through that copy's ingredient strength, so the exclusion still fails (it was
    unknown: the stub, read in place of the copy, has no ingredient)."""
    tablet = {"value": 1, "unit": "TAB", "system": "http://unitsofmeasure.org", "code": "{tbl}"}
    med = {"resourceType": "Medication", "id": "med1", "code": {"text": "steroid tablet"},
           "ingredient": [{"itemCodeableConcept": cc(RX, "8640"),
                           "strength": {"numerator": {"value": 20, "unit": "mg",
                                                      "system": "http://unitsofmeasure.org",
                                                      "code": "mg"},
                                        "denominator": tablet}}]}  # fmt: skip
    request = {"resourceType": "MedicationRequest", "id": "r1", "status": "active",
               "intent": "order", "subject": {"reference": "Patient/p1"},
               "authoredOn": "2026-11-15", "medicationReference": {"reference": "Medication/med1"},
               "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {**tablet, "value": 3}}],
                                      "timing": {"repeat": {"frequency": 1, "period": 1,
                                                            "periodUnit": "d"}}}]}  # fmt: skip
    site = Site(tmp_path)
    _, row = site.night({"a.ndjson": [*patient(), request, med]})
    assert row["washout_high_dose_cs"] == "fail", row["reasons"]
    _, row = site.night({"a.ndjson": [*patient(), request, {**med, "status": 7}]})
    stub = site.stored("Medication", "med1")
    assert stub is not None and MARK in stub
    assert row["washout_high_dose_cs"] == "fail", row["reasons"]
    assert "60" in row["reasons"]


def test_a_refused_medication_named_only_by_its_ingredient_is_no_silent_pass(
    tmp_path: Path,
) -> None:
    """A Medication refused on reading whose drug only its ingredient codes (no readable copy):
    the stub keeps the ingredient's codes, so the request is of a corticosteroid that could not
    be read (unknown), not of no drug at all (pass)."""
    med = {"resourceType": "Medication", "id": "med1", "status": 7,
           "code": {"text": "steroid tablet"},
           "ingredient": [{"itemCodeableConcept": cc(RX, "8640")}]}  # fmt: skip
    request = {"resourceType": "MedicationRequest", "id": "r1", "status": "active",
               "intent": "order", "subject": {"reference": "Patient/p1"},
               "authoredOn": "2026-11-15",
               "medicationReference": {"reference": "Medication/med1"}}  # fmt: skip
    _, row = Site(tmp_path).night({"a.ndjson": [*patient(), request, med]})
    assert row["washout_high_dose_cs"] == "unknown", row["reasons"]
    assert "could not be read" in row["reasons"]
