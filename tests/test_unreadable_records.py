"""Records that fail validation only for a date must not be dropped: read as undated.

A MedicationAdministration of rituximab without `effective[x]` was rejected, and then missing:
`washout_b_cell_depletion` passed, though the data says the patient had the drug (an undated
dose is unknown). Each patient below holds one such record beside an SLE condition; the run
goes through `cohort run` (files) and through a FHIR server pull, and candidates.csv is read.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import responses
from fhir_fakes import BASE, FakeFhir
from test_reliability_support import write_config

from cohort.config import load_config
from cohort.runner import run

AS_OF = "2026-11-25"
REPO = Path(__file__).resolve().parent.parent
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
CVX = "http://hl7.org/fhir/sid/cvx"
ACTIVE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
    ]
}
NAME = "Zebulon Quartermaine"  # on every Patient: must never reach a message


def cc(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def ritux(**kw: Any) -> dict[str, Any]:
    return {"resourceType": "MedicationAdministration", "status": "completed",
            "medicationCodeableConcept": cc(RX, "121191"), **kw}  # fmt: skip


def cond(code: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "clinicalStatus": ACTIVE, "code": code, **kw}


def obs(code: str, **kw: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": cc(LOINC, code), **kw}


def vaccine(**kw: Any) -> dict[str, Any]:
    return {"resourceType": "Immunization", "status": "completed",
            "vaccineCode": cc(CVX, "03"), **kw}  # fmt: skip


MALIGNANCY = cc(SCT, "363346000")
HBV = cc(ICD, "B18.1")
HIV = cc(ICD, "B20")
SLE = cc(SCT, "55464009")
POS = {"valueString": "Positive"}

# patient id -> (its extra record, or a Patient change; criterion; outcome; reason contains)
# Date-only problems: the record is kept and read as far as its date reads (as a server's is).
DATES: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "ma-no-effective": (ritux(), "washout_b_cell_depletion", "unknown", ""),
    "ma-belimumab-no-effective": (
        {**ritux(), "medicationCodeableConcept": cc(RX, "1092437")},
        "washout_belimumab", "unknown", "",
    ),
    "ma-bad-effective": (ritux(effectiveDateTime="2026-13-45x"), "washout_b_cell_depletion",
                         "unknown", ""),
    "ms-bad-effective": (
        {**ritux(effectiveDateTime="last spring"), "resourceType": "MedicationStatement"},
        "washout_b_cell_depletion", "unknown", "",
    ),
    "mr-slashed-authored": (
        {"resourceType": "MedicationRequest", "status": "completed", "intent": "order",
         "medicationCodeableConcept": cc(RX, "121191"), "authoredOn": "2026/10/01"},
        "washout_b_cell_depletion", "unknown", "2026",
    ),
    "malignancy-bad-onset": (cond(MALIGNANCY, onsetDateTime="around 2019"), "malignancy",
                             "fail", ""),
    "hbv-bad-onset": (cond(HBV, onsetDateTime="around 2019"), "hbv", "fail", ""),
    "hiv-bad-onset": (cond(HIV, onsetDateTime="around 2019"), "immunodeficiency", "fail", ""),
    "hiv-bad-recorded": (cond(HIV, recordedDate="2019/01/01"), "immunodeficiency", "fail", ""),
    "live-bad-occurrence": (vaccine(occurrenceDateTime="2026-11-2O"), "live_vaccine",
                            "unknown", ""),
    "live-word-occurrence": (vaccine(occurrenceDateTime="last week"), "live_vaccine",
                             "unknown", ""),
    "live-no-occurrence": (vaccine(), "live_vaccine", "unknown", ""),
    "hbsag-slashed-date": (obs("5196-1", effectiveDateTime="2026/11/01", **POS), "hbv",
                           "unknown", "2026"),
    "birth-with-time": ({"birthDate": "1990-05-01T00:00:00"}, "age", "pass", ""),
    "sle-bad-onset": ({"sle": cond(SLE, onsetDateTime="around 2019")}, "sle_diagnosis",
                      "unknown", ""),
}
OTHER: dict[str, tuple[dict[str, Any], str, str, str]] = {}
EXTRA: dict[str, list[dict[str, Any]]] = {}


def _records(cases: dict[str, tuple[dict[str, Any], str, str, str]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for pid, (rec, _, _, _) in cases.items():
        patient = {"resourceType": "Patient", "id": pid, "birthDate": "1990-05-01",
                   "gender": "female", "name": [{"text": NAME}]}  # fmt: skip
        sle = cond(SLE, onsetDateTime="2015-01-01")
        if "resourceType" not in rec:  # a change of the Patient or of the SLE condition
            sle = rec.get("sle", sle)
            patient.update({k: v for k, v in rec.items() if k != "sle"})
            extra = []
        else:
            extra = [rec]
        extra += EXTRA.get(pid, [])
        out.append(patient)
        out.append({**sle, "id": f"sle-{pid}", "subject": {"reference": f"Patient/{pid}"}})
        for i, r in enumerate(extra):
            r = {k: v for k, v in r.items() if v is not None}
            r["id"] = f"x-{pid}" + (f"-{i}" if i else "")
            if r["resourceType"] != "Medication":
                who = "patient" if r["resourceType"] == "Immunization" else "subject"
                r[who] = {"reference": f"Patient/{pid}"}
            out.append(r)
    return out


def _rows(out: Path, site: str) -> dict[str, dict[str, str]]:
    text = (out / site / "candidates.csv").read_text(encoding="utf-8-sig")
    return {r["patient_id"]: r for r in csv.DictReader(io.StringIO(text))}


def _check(rows: dict[str, dict[str, str]], cases: dict[str, tuple[Any, str, str, str]]) -> None:
    wrong = {}
    for pid, (_, crit, want, says) in cases.items():
        row = rows.get(pid)
        if row is None:
            wrong[pid] = "not listed"
        elif row[crit] != want or says not in row["reasons"] and want != "pass":
            wrong[pid] = f"{crit}={row[crit]}: {row['reasons']}"
    assert not wrong, json.dumps(wrong, indent=1)


def _file_run(root: Path, cases: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    data = root / "data"
    data.mkdir(parents=True)
    lines = [json.dumps(r) for r in _records(cases)]
    (data / "all.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = root / "out"
    cfg = write_config(root, {"s": str(data)}, store=root / "store.db")
    proc = subprocess.run(
        [sys.executable, "-m", "cohort", "run", "--config", str(cfg), "--as-of", AS_OF,
         "--out", str(out)],
        capture_output=True, cwd=REPO, timeout=300, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "run.json").read_text(encoding="utf-8")), out


@pytest.fixture(scope="module")
def file_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    return _file_run(tmp_path_factory.mktemp("unreadable"), {**DATES, **OTHER})


def test_date_problems_are_read_as_undated_or_as_far_as_they_read(file_run: Any) -> None:
    _check(_rows(file_run[1], "s"), DATES)


def test_every_problem_stays_a_located_issue_without_phi(file_run: Any) -> None:
    report, out = file_run
    issues = report["sites"]["s"]["issues"]
    origins = {i["origin"] for i in issues}
    records = _records({**DATES, **OTHER})
    made_bad = {"sle-sle-bad-onset", "birth-with-time"}
    bad = [n for n, r in enumerate(records, 1)
           if r["id"] in made_bad or r["id"].startswith("x-")]  # fmt: skip
    missing = [n for n in bad if f"all.ndjson:{n}" not in origins]
    assert not missing, (missing, issues)
    text = (out / "run.json").read_text(encoding="utf-8")
    assert NAME not in text and "around 2019" not in text and "last spring" not in text
    reasons = " ".join(r["reasons"] for r in _rows(out, "s").values())
    assert "around 2019" not in reasons


# ---- the same records pulled from a FHIR server (stored as pulled, not validated) -----------

def test_server_pull_reads_the_same_records_alike(tmp_path: Path) -> None:
    cases = DATES
    cfg = write_config(tmp_path, {"s": BASE}, server={"s": {"max_retries": 1}},
                       store=tmp_path / "st.db")  # fmt: skip
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeFhir(rsps)
        for r in _records(cases):
            fake.add(r)
        report = run(load_config(cfg), date.fromisoformat(AS_OF), tmp_path / "out")
    assert report["status"] == "success"
    rows = _rows(tmp_path / "out", "s")
    _check(rows, DATES)
