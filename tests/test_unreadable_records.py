"""Records that fail validation (or cannot be read) must never make a criterion pass silently.

A MedicationAdministration of rituximab without `effective[x]` was rejected, and then missing:
`washout_b_cell_depletion` passed, though the data says the patient had the drug (an undated
dose is unknown). Each patient below holds one such record beside an SLE condition; the run
goes through `cohort run` (files) and through a FHIR server pull, and candidates.csv is read.
"""

from __future__ import annotations

import csv
import hashlib
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

# how run.json and the reasons name the test's all.ndjson (not a Bulk-style name: a pseudonym)
ALL = "file-" + hashlib.sha256(b"all.ndjson").hexdigest()[:8]


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
    # a statement without effective[x] was taken on or before its dateAsserted: 2019, long
    # before the 36 weeks (a refused stub made it unknown)
    "ms-slashed-asserted": (
        {**ritux(dateAsserted="2019/01/01"), "resourceType": "MedicationStatement"},
        "washout_b_cell_depletion", "pass", "",
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
    "hbsag-word-date": (obs("5196-1", effectiveDateTime="Nov 2026", **POS), "hbv", "unknown",
                        "could not be read"),
    # effectiveTiming's dates are read (its events, repeat.boundsPeriod) as effectivePeriod's
    "hbsag-timing-slashed": (obs("5196-1", effectiveTiming={"event": ["2026/11/01"]}, **POS),
                             "hbv", "unknown", "2026"),
    "hbsag-timing-word": (obs("5196-1", effectiveTiming={"repeat": {"boundsPeriod": {
                              "start": "Nov 2026"}}}, **POS), "hbv", "unknown",
                          "could not be read"),
    "birth-with-time": ({"birthDate": "1990-05-01T00:00:00"}, "age", "pass", ""),
    "birth-slashed": ({"birthDate": "1990/05/01"}, "age", "pass", ""),  # as 1990: 35 or 36
    "sle-bad-onset": ({"sle": cond(SLE, onsetDateTime="around 2019")}, "sle_diagnosis",
                      "unknown", ""),
}
# Other problems: the record stays rejected, but a criterion that reads its concept is unknown
# with a reason naming it (an exclusion's fail from another record stands).
OTHER: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "ma-bad-dose": (
        ritux(effectiveDateTime="2026-10-01", dosage={"dose": {"value": "375 mg/m2"}}),
        "washout_b_cell_depletion", "unknown", "MedicationAdministration.dosage.dose.value",
    ),
    "malignancy-bad-status": (
        {**cond(MALIGNANCY), "clinicalStatus": "active"}, "malignancy", "unknown",
        "malignancy record Condition/x-malignancy-bad-status could not be read",
    ),
    "hbsag-bad-value": (
        obs("5196-1", effectiveDateTime="2026-11-01", valueQuantity={"value": "pos"}), "hbv",
        "unknown", "HBsAg record Observation/x-hbsag-bad-value could not be read",
    ),
    "patient-bad-active": ({"active": "no"}, "deceased", "unknown", "Patient.active"),
    # an event that is no string: refused, as an effectivePeriod.start that is a number
    "hbsag-timing-number": (
        obs("5196-1", effectiveTiming={"event": [5]}, **POS), "hbv", "unknown",
        "HBsAg record Observation/x-hbsag-timing-number could not be read",
    ),
    "sle-bad-status": ({"sle": {**cond(SLE, onsetDateTime="2015-01-01"),
                                "clinicalStatus": "active"}},
                       "sle_diagnosis", "unknown", "could not be read"),  # fmt: skip
    "ana-pass-and-bad": (
        obs("5048-4", effectiveDateTime="2026-11-01", valueString="1:40", status=7),
        "ana_titer", "unknown", "could not be read",
    ),
    # a valid administration (of 2020: outside the window) naming a refused Medication
    "medication-refused": (
        {**ritux(effectiveDateTime="2020-01-01"), "medicationCodeableConcept": None,
         "medicationReference": {"reference": "Medication/x-medication-refused-1"}},
        "washout_b_cell_depletion", "unknown", "",  # (excluded: reasons list the fails)
    ),
}
# Refused for an element of a code or status element (a display that is a number, a text that
# is an object): the stub keeps those elements as far as they read, as a server's record is
# read (elements.codes_of), so the record's concept is still known and a refuted one dropped.
STUB_ELEMENTS: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "malignancy-display-number": (
        cond({"coding": [{"system": SCT, "code": "363346000", "display": 5}]}), "malignancy",
        "unknown", "malignancy record Condition/x-malignancy-display-number could not be read",
    ),
    "malignancy-text-object": (
        cond({**MALIGNANCY, "text": {"div": "x"}}), "malignancy", "unknown",
        "could not be read",
    ),
    "refuted-display-number": (
        cond(MALIGNANCY, verificationStatus={"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": "refuted", "display": 7}]}),
        "malignancy", "pass", "",
    ),
    "hbsag-component-display-number": (
        obs("5196-1", effectiveDateTime="2026-11-01", **POS,
            component=[{"code": {"coding": [{"system": LOINC, "code": "5196-1",
                                             "display": 1}]}}]),
        "hbv", "unknown", "could not be read",
    ),
}  # fmt: skip
EXTRA: dict[str, list[dict[str, Any]]] = {
    # a readable malignancy still fails beside an unreadable one
    "malignancy-bad-status": [],
    "ana-pass-and-bad": [obs("5048-4", effectiveDateTime="2026-10-01", valueString="1:160")],
    "medication-refused": [{"resourceType": "Medication", "code": cc(RX, "121191"),
                            "ingredient": {"itemCodeableConcept": cc(RX, "121191")}}],
}


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
    return _file_run(tmp_path_factory.mktemp("unreadable"), {**DATES, **OTHER, **STUB_ELEMENTS})


def test_date_problems_are_read_as_undated_or_as_far_as_they_read(file_run: Any) -> None:
    _check(_rows(file_run[1], "s"), DATES)


def test_other_rejections_make_the_concepts_criteria_unknown(file_run: Any) -> None:
    _check(_rows(file_run[1], "s"), OTHER)


def test_a_stub_keeps_code_and_status_elements_as_far_as_they_read(file_run: Any) -> None:
    """A malignancy whose code has a display that is a number was stored as a stub without its
    code: no concept, so `malignancy` passed as if the record were not there; a refuted one
    whose verificationStatus had such a display lost it, and made `malignancy` unknown."""
    _check(_rows(file_run[1], "s"), STUB_ELEMENTS)


def test_the_evidence_names_the_record_that_could_not_be_read(file_run: Any) -> None:
    text = (file_run[1] / "s" / "evidence.csv").read_text(encoding="utf-8-sig")
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["note"].startswith("could not")]
    found = {(r["patient_id"], r["criterion"], r["ref"]) for r in rows}
    assert ("medication-refused", "washout_b_cell_depletion",
            "MedicationAdministration/x-medication-refused") in found  # fmt: skip
    note = next(r["note"] for r in rows if r["patient_id"] == "medication-refused")
    assert f"Medication/x-medication-refused-1: {ALL}:" in note and "ingredient" in note
    assert ("patient-bad-active", "active_record", "Patient/patient-bad-active") in found


def test_an_exclusion_failed_by_a_readable_record_still_fails(tmp_path: Path) -> None:
    cases = {"two-malignancies": OTHER["malignancy-bad-status"]}
    EXTRA["two-malignancies"] = [cond(MALIGNANCY)]
    try:
        _, out = _file_run(tmp_path, cases)
    finally:
        del EXTRA["two-malignancies"]
    assert _rows(out, "s")["two-malignancies"]["malignancy"] == "fail"


def test_a_washout_failed_by_a_readable_dose_gives_no_date_an_unreadable_one_may_move(
    tmp_path: Path,
) -> None:
    """A readable rituximab dose of September fails the washout until 2027-05-11, and so the
    patient (on hydroxychloroquine) was listed "eligible from 2027-05-11"; a refused dose of
    November (its dose is text) would move that to July, and was not mentioned. The washout
    still fails, with no date, and its reason names the record."""
    cases = {"later-dose": OTHER["ma-bad-dose"]}
    cases["later-dose"] = (
        ritux(effectiveDateTime="2026-11-01", dosage={"dose": {"value": "375 mg/m2"}}),
        *cases["later-dose"][1:],
    )
    EXTRA["later-dose"] = [
        ritux(effectiveDateTime="2026-09-01"),
        {"resourceType": "MedicationStatement", "status": "active",
         "medicationCodeableConcept": cc(RX, "5521"), "effectivePeriod": {"start": "2020-01-01"}},
    ]  # fmt: skip
    try:
        _, out = _file_run(tmp_path, cases)
    finally:
        del EXTRA["later-dose"]
    row = _rows(out, "s")["later-dose"]
    assert (row["tier"], row["washout_b_cell_depletion"]) == ("excluded", "fail"), row
    assert row["eligible_from"] == "", row
    assert "MedicationAdministration/x-later-dose could not be read" in row["reasons"]


def test_every_problem_stays_a_located_issue_without_phi(file_run: Any) -> None:
    report, out = file_run
    issues = report["sites"]["s"]["issues"]
    origins = {i["origin"] for i in issues}
    records = _records({**DATES, **OTHER})
    made_bad = {"sle-sle-bad-onset", "sle-sle-bad-status", "birth-with-time", "birth-slashed",
                "patient-bad-active"}
    bad = [n for n, r in enumerate(records, 1) if r["id"] in made_bad
           or r["id"].startswith("x-") and r["id"] not in ("x-ana-pass-and-bad-1",
                                                           "x-medication-refused")]  # fmt: skip
    missing = [n for n in bad if f"{ALL}:{n}" not in origins]
    assert not missing, (missing, issues)
    text = (out / "run.json").read_text(encoding="utf-8")
    assert NAME not in text and "around 2019" not in text and "last spring" not in text
    reasons = " ".join(r["reasons"] for r in _rows(out, "s").values())
    assert "around 2019" not in reasons and "375 mg/m2" not in reasons


def test_a_result_s_timing_is_validated_as_its_other_dates(file_run: Any) -> None:
    """effectiveTiming's dates are validated as effectivePeriod's are: one that is a string but
    no FHIR date keeps the record (the issue says so), one that is no string refuses it."""
    report, _ = file_run
    records = _records({**DATES, **OTHER})
    line = {r["id"]: n for n, r in enumerate(records, 1)}
    said = {i["origin"]: i["reason"] for i in report["sites"]["s"]["issues"]}
    assert said[f"{ALL}:{line['x-hbsag-timing-slashed']}"] == (
        "Observation.effectiveTiming.event[0]: not a valid FHIR dateTime; kept, the date read "
        "as far as it reads"
    )
    assert said[f"{ALL}:{line['x-hbsag-timing-word']}"].startswith(
        "Observation.effectiveTiming.repeat.boundsPeriod.start: not a valid FHIR dateTime; kept"
    )
    assert said[f"{ALL}:{line['x-hbsag-timing-number']}"] == (
        "Observation.effectiveTiming.event[0]: not a valid FHIR dateTime"
    )


def test_a_forged_marker_quotes_nothing(tmp_path: Path) -> None:
    """A record carrying the key cohort marks a rejected record's stub with cannot put its text
    into a reason. `_cohortRejected` is no FHIR element (docs/architecture.md: the key of a
    stub), so the record is read as a stub, as a refused record is (docs/rules.md, "Records
    that cannot be read"): no criterion reads it as a record, and `malignancy`, which would pass
    without it, is unknown, naming the record, never a pass and never its text."""
    rec = cond(MALIGNANCY, _cohortRejected={"reason": NAME, "origin": NAME})
    _, out = _file_run(tmp_path, {"forged": (rec, "malignancy", "unknown", "")})
    row = _rows(out, "s")["forged"]
    assert NAME not in row["reasons"]
    assert row["malignancy"] == "unknown"
    assert "malignancy record Condition/x-forged could not be read" in row["reasons"]


# ---- the same records pulled from a FHIR server (stored as pulled, not validated) -----------

SERVER_ONLY: dict[str, tuple[dict[str, Any], str, str, str]] = {
    # an element the extractor cannot read (a Period given as text): not silently dropped
    "ma-period-text": (ritux(effectivePeriod="2026"), "washout_b_cell_depletion", "unknown",
                       "could not be read"),
}


def test_server_pull_reads_the_same_records_alike(tmp_path: Path) -> None:
    cases = {**DATES, **OTHER, **SERVER_ONLY}
    cfg = write_config(tmp_path, {"s": BASE}, server={"s": {"max_retries": 1}},
                       store=tmp_path / "st.db")  # fmt: skip
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeFhir(rsps)
        for r in _records(cases):
            fake.add(r)
        report = run(load_config(cfg), date.fromisoformat(AS_OF), tmp_path / "out")
    assert report["status"] == "success"
    rows = _rows(tmp_path / "out", "s")
    # a server's records are not validated: what a file read refuses for a problem other than
    # a date, the server path reads as far as it can (docs/rules.md, "Records that cannot be
    # read"), and an exclusion does not pass on them either:
    _check(rows, {**DATES, **SERVER_ONLY})
    expected = {
        # the dose text is not read, and no dose is needed: a rituximab dose 8 weeks before
        # as_of is within 36 weeks (SPEC §3) -> fail, its end date told
        "ma-bad-dose": ("fail", "rituximab (B-cell depleting therapy) on 2026-10-01, within"),
        # a clinicalStatus that is no CodeableConcept reads as none; `malignancy` counts any
        # malignancy condition (SPEC §3), active or not -> fail
        "malignancy-bad-status": ("fail", "malignancy: malignancy"),
        # an HBsAg value that does not read is no result to pass on -> unknown
        "hbsag-bad-value": ("unknown", "hbv: HBsAg result on 2026-11-01: unreadable"),
    }
    for pid, (status, reason) in expected.items():
        crit = OTHER[pid][1]
        assert rows[pid][crit] == status and reason in rows[pid]["reasons"], (pid, rows[pid])
    # a Patient whose `active` is no boolean ("no") was read as in use, its death as none
    for crit in ("active_record", "deceased"):
        assert rows["patient-bad-active"][crit] == "unknown", rows["patient-bad-active"]


def test_stub_keeps_codes_statuses_and_a_shaped_reason_only() -> None:
    from cohort.source.refused import MARK, stub_of, stub_why

    res = {
        "resourceType": "MedicationRequest", "id": "r1", "status": "entered-in-error",
        "intent": "order", "subject": {"reference": "Patient/p", "display": NAME},
        "medicationReference": {"reference": "#m"}, "note": [{"text": NAME}],
        "contained": [{"resourceType": "Medication", "id": "m", "code": cc(RX, "121191"),
                       "ingredient": 3}],
        "meta": {"versionId": "2", "source": NAME},
    }  # fmt: skip
    reason = "MedicationRequest.dosageInstruction: not an array"
    stub = stub_of(res, "MedicationRequest.ndjson:3", reason)
    assert stub is not None and NAME not in json.dumps(stub)
    assert stub["status"] == "entered-in-error" and stub["meta"] == {"versionId": "2"}
    assert stub["contained"][0]["code"] == cc(RX, "121191")
    assert stub_why(stub[MARK]) == (
        "MedicationRequest.ndjson:3: MedicationRequest.dosageInstruction: not an array"
    )
    assert stub_why({"reason": f"Patient.name: {NAME}", "origin": NAME}) == ""
    assert stub_of({**res, "id": "bad id"}, "a", "x") is None


@pytest.mark.parametrize(
    "cc",
    [
        {"coding": [{"system": SCT, "code": "363346000", "display": 5}], "text": {"div": 1}},
        {"coding": [{"display": "no code"}, {"code": 7, "system": None}, "x"], "text": "t"},
        {"coding": {"code": "not an array"}, "text": 3.5},
        {"coding": [{"system": SCT, "code": "363346000", "display": ["a"]}]},
    ],
)
def test_a_malformed_code_element_reads_alike_in_the_stub(cc: dict[str, Any]) -> None:
    from cohort.extract.elements import codes_of, readable_cc, text_of
    from cohort.source.validate import valid_codeable_concept

    kept = readable_cc(cc)
    assert kept is not None and valid_codeable_concept(kept)
    assert (codes_of(kept), text_of(kept)) == (codes_of(cc), text_of(cc))


    assert (codes_of(kept), text_of(kept)) == (codes_of(cc), text_of(cc))


def test_one_list_of_a_result_s_date_elements() -> None:
    """What obs_when reads a result's date from is the list source.refused keeps a record
    refused for a date by, and extract.unreadable asks of a result whose date does not read."""
    from cohort.extract.obs_dates import obs_when
    from cohort.extract.unreadable import unread_date
    from cohort.source.refused import RESULT_DATES, RESULT_PERIODS, RESULT_TIMINGS

    for name in RESULT_DATES:
        assert obs_when({name: "2026-11-01T08:00:00Z"})[1] is not None, name
        assert unread_date({name: "someday"}), name
    for name in RESULT_PERIODS:
        assert obs_when({name: {"start": "2026-11-01"}})[1] is not None, name
        assert unread_date({name: {"start": "someday"}}), name
    for name in RESULT_TIMINGS:
        assert obs_when({name: {"event": ["2026-11-01"]}})[1] is not None, name
        assert unread_date({name: {"event": ["someday"]}}), name
        assert unread_date({name: {"event": [5]}}), name
        bounds = {"repeat": {"boundsPeriod": {"start": "2026-11-01"}}}
        assert obs_when({name: bounds})[1] is not None, name
        assert unread_date({name: {"repeat": {"boundsPeriod": {"end": "someday"}}}}), name
        assert not unread_date({name: {"event": [], "repeat": {"frequency": 1}}}), name
