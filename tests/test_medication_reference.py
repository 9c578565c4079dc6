"""A medication record whose `medicationReference` names a Medication that is not in the data.

Such a MedicationRequest of rituximab (`"display": "riTUXimab (RITUXAN) 10 mg/mL injection"`,
no `Medication/rtx-2` anywhere) named no drug, silently: `washout_b_cell_depletion` passed, the
patient listed `likely`, nothing in evidence.csv nor in run.json. The reference's display now
names the drug; a record that names none at all makes a medication criterion it could change
unknown (docs/rules.md, "Reading records"), and run.json and the log count such records.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import responses
from criteria_helpers import (
    ago,
    context,
    facts,
    medication,
    medication_resource,
    trial,
)
from fhir_fakes import BASE, FakeFhir
from test_reliability_support import write_config

from cohort.config import load_config
from cohort.evaluate import evaluate
from cohort.model import Status
from cohort.runner import run

AS_OF = "2026-11-25"
SCT = "http://snomed.info/sct"
RITUXAN = "riTUXimab (RITUXAN) 10 mg/mL injection"
NAME = "Zebulon Quartermaine"  # on every Patient: must never reach run.json or the log


def request(med_ref: str, display: str | None = None, **kw: Any) -> dict[str, Any]:
    """A MedicationRequest (criteria_helpers.medication) whose reference has `display`."""
    kw.setdefault("authored", ago(55))
    kw.setdefault("status", "completed")
    res = medication("MedicationRequest", None, med_ref=med_ref, **kw)
    res["intent"] = "order"
    if display is not None:
        res["medicationReference"]["display"] = display
    return res


def results(*resources: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """Every criterion as a run evaluates it (evaluate: with the settling passes)."""
    return {r.criterion: r for r in evaluate(trial(), context(*resources, **kw))}


# --- extraction and criteria ------------------------------------------------------------------
@pytest.mark.parametrize("ref", ["Medication/rtx-2", "#rtx-2"])
def test_a_missing_medication_is_named_by_the_reference_display(ref: str) -> None:
    pf = facts(request(ref, RITUXAN))
    assert pf.exposures[0].text == RITUXAN and not pf.unnamed
    assert pf.unresolved == [pf.exposures[0].ref]
    got = results(request(ref, RITUXAN))["washout_b_cell_depletion"]
    assert got.status is Status.FAIL and "B-cell depleting therapy" in got.reason


def test_a_resolved_reference_does_not_read_the_display() -> None:
    """The Medication names the drug: its display (which may be stale) is not read."""
    med = medication_resource("5521", mid="m1")  # hydroxychloroquine
    pf = facts(request("Medication/m1", RITUXAN), medications={"m1": med})
    assert RITUXAN not in pf.exposures[0].text
    assert not pf.unresolved and not pf.unnamed


def test_a_display_that_maps_to_no_concept_is_a_named_drug() -> None:
    """As a record whose inline name maps to nothing (most of a chart's medications): read,
    counted as not resolved, but no criterion is made unknown by it."""
    got = results(request("Medication/x", "lisinopril 10 mg tablet"))
    assert got["washout_b_cell_depletion"].status is Status.PASS
    assert got["prior_ianalumab"].status is Status.PASS
    pf = facts(request("Medication/x", "lisinopril 10 mg tablet"))
    assert pf.unresolved and not pf.unnamed


@pytest.mark.parametrize("display", [None, "", "   "])
def test_a_record_naming_no_drug_makes_the_criteria_it_could_change_unknown(
    display: str | None,
) -> None:
    rec = request("Medication/rtx-2", display, authored=ago(55))
    pf = facts(rec)
    assert [u.ref for u in pf.unnamed] == [rec["resourceType"] + "/" + rec["id"]]
    got = results(rec)
    for cid in ("washout_b_cell_depletion", "washout_belimumab", "washout_24wk",
                "washout_12wk", "washout_high_dose_cs", "prior_ianalumab"):  # fmt: skip
        r = got[cid]
        assert r.status is Status.UNKNOWN, (cid, r.reason)
        assert f"MedicationRequest/{rec['id']} names no drug" in r.reason, r.reason
        assert any(e.ref.endswith(rec["id"]) and "names no drug" in e.note for e in r.evidence)


def test_a_record_naming_no_drug_outside_every_window_changes_no_washout() -> None:
    """Date-aware: a completed order of five years ago is in no washout's window (each passes
    as before), but may be the ianalumab `prior_ianalumab` reads at any time."""
    got = results(request("Medication/gone", authored=ago(5 * 365)))
    for cid in ("washout_b_cell_depletion", "washout_belimumab", "washout_24wk"):
        assert got[cid].status is Status.PASS, (cid, got[cid].reason)
    assert got["prior_ianalumab"].status is Status.UNKNOWN


def test_a_washout_failed_for_a_time_gives_no_date_when_a_later_record_names_no_drug() -> None:
    """A named rituximab dose of 200 days ago fails until some date; a later order naming no
    drug may be a later dose: the washout still fails, with no date, the record named."""
    named = request("Medication/m1", authored=ago(200))
    ritux = medication_resource("121191", mid="m1")
    base = results(named, medications={"m1": ritux})["washout_b_cell_depletion"]
    assert base.status is Status.FAIL and base.eligible_from is not None
    got = results(named, request("Medication/gone", authored=ago(10)), medications={"m1": ritux})
    r = got["washout_b_cell_depletion"]
    assert r.status is Status.FAIL and r.eligible_from is None, r.reason
    assert "names no drug" in r.reason and "check the chart" in r.reason


def test_an_inclusion_a_record_naming_no_drug_could_meet_is_unknown() -> None:
    """`background_therapy`: an active order for a drug not named may be the antimalarial."""
    got = results(request("Medication/gone", status="active", authored=ago(30)))
    assert got["background_therapy"].status is Status.UNKNOWN
    assert "names no drug" in got["background_therapy"].reason


def test_a_medication_entered_in_error_names_no_drug_and_is_not_a_pass() -> None:
    """A record naming a Medication that is itself entered-in-error names no drug (the rules
    drop the Medication, and its reference's display, taken from it, is not read): a recent
    such order makes the washouts unknown rather than pass."""
    med = {**medication_resource("121191", mid="m9"), "status": "entered-in-error"}
    rec = request("Medication/m9", RITUXAN, authored=ago(30))
    pf = facts(rec, medications={"m9": med})
    assert pf.unnamed and not pf.unresolved
    got = results(rec, medications={"m9": med})
    assert got["washout_b_cell_depletion"].status is Status.UNKNOWN


# --- a run: files and a FHIR server -----------------------------------------------------------
def _chart(pid: str, *records: dict[str, Any]) -> list[dict[str, Any]]:
    """A screened patient (female, 36, SLE since 2015) with `records`, ids and subjects set."""
    out: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": pid, "birthDate": "1990-05-01", "gender": "female",
         "name": [{"text": NAME}]},
        {"resourceType": "Condition", "id": f"{pid}-sle", "subject": {"reference": f"Patient/{pid}"},
         "code": {"coding": [{"system": SCT, "code": "55464009"}]},
         "onsetDateTime": "2015-01-01"},
    ]  # fmt: skip
    for i, r in enumerate(records):
        r = {**r, "id": f"{pid}-{i}"}
        if r["resourceType"] != "Medication":
            r["subject"] = {"reference": f"Patient/{pid}"}
        out.append(r)
    return out


def _order(ref: str, display: str | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "MedicationRequest", "status": "completed",
                           "intent": "order", "authoredOn": "2026-10-01",
                           "medicationReference": {"reference": ref}}  # fmt: skip
    if display is not None:
        res["medicationReference"]["display"] = display
    return res


RTX = {"resourceType": "Medication", "id": "rtx-1",
       "code": {"coding": [{"system": "urn:oid:1.2.3", "code": "77777"}], "text": RITUXAN}}  # fmt: skip
CHARTS = {
    "missing-display": [_order("Medication/rtx-2", RITUXAN)],
    "missing-bare": [_order("Medication/rtx-3")],
    "present": [_order("Medication/rtx-1")],
}
# patient -> washout_b_cell_depletion as listed
EXPECTED = {"missing-display": "fail", "missing-bare": "unknown", "present": "fail"}


def _rows(out: Path) -> dict[str, dict[str, str]]:
    text = (out / "s" / "candidates.csv").read_text(encoding="utf-8-sig")
    return {r["patient_id"]: r for r in csv.DictReader(io.StringIO(text))}


def _run(tmp: Path, source: str, caplog: pytest.LogCaptureFixture, **kw: Any) -> dict[str, Any]:
    cfg = write_config(tmp, {"s": source}, store=tmp / "store.db", **kw)
    with caplog.at_level(logging.INFO, logger="cohort"):
        report = run(load_config(cfg), date.fromisoformat(AS_OF), tmp / "out")
    assert report["status"] == "success"
    return report


def _check_run(report: dict[str, Any], out: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = _rows(out)
    got = {pid: rows[pid]["washout_b_cell_depletion"] for pid in EXPECTED}
    assert got == EXPECTED, {pid: rows[pid]["reasons"] for pid in EXPECTED}
    text = (out / "s" / "evidence.csv").read_text(encoding="utf-8-sig")
    evidence = {(r["patient_id"], r["criterion"], r["ref"]): r["note"]
                for r in csv.DictReader(io.StringIO(text))}  # fmt: skip
    # the record used, not absent; the one naming no drug named
    assert ("missing-display", "washout_b_cell_depletion",
            "MedicationRequest/missing-display-0") in evidence  # fmt: skip
    note = evidence[
        ("missing-bare", "washout_b_cell_depletion", "MedicationRequest/missing-bare-0")
    ]
    assert note.startswith("names no drug: its Medication is not in the data"), note
    site = report["sites"]["s"]
    assert site["unresolved_medications"] == {
        "MedicationRequest": {"not_in_data": 2, "by_display": 1, "no_drug": 1}
    }
    said = [w for w in report["warnings"] if "Medication" in w and "not in the data" in w]
    assert said and "MedicationRequest 2" in said[0] and "1 read by" in said[0], said
    assert any("name no drug" in w and "MedicationRequest 1" in w for w in report["warnings"])
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "not in the data" in logged and "name no drug" in logged
    for text in (json.dumps(report), logged):  # counts and types only: no patient, no name
        assert NAME not in text and "missing-bare" not in text and "rtx-3" not in text


def test_a_bundle_read_names_the_drug_by_the_display_and_counts_what_it_could_not_get(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i, (pid, records) in enumerate(CHARTS.items()):
        entries = [{"resource": r} for r in _chart(pid, *records)]
        (data / f"chart-{i}.json").write_text(
            json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})
        )
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": RTX}]}
    (data / "formulary.json").write_text(json.dumps(bundle))
    report = _run(tmp_path, str(data), caplog)
    _check_run(report, tmp_path / "out", caplog)


def test_an_ndjson_read_alike_and_a_medication_of_a_later_read_is_resolved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Medications in a file of their own (as a Bulk export has them); a record whose
    Medication is not there is kept whole (it references one: not summarised), and is read
    with it once a later read brings it."""
    data = tmp_path / "data"
    data.mkdir()
    by_type: dict[str, list[str]] = {}
    for pid, records in CHARTS.items():
        for r in _chart(pid, *records):
            by_type.setdefault(r["resourceType"], []).append(json.dumps(r))
    by_type["Medication"] = [json.dumps(RTX)]
    for rtype, lines in by_type.items():
        (data / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n")
    report = _run(tmp_path, str(data), caplog)
    _check_run(report, tmp_path / "out", caplog)
    later = {**RTX, "id": "rtx-3"}
    (data / "Medication.ndjson").write_text(json.dumps(RTX) + "\n" + json.dumps(later) + "\n")
    report = _run(tmp_path, str(data), caplog)
    assert _rows(tmp_path / "out")["missing-bare"]["washout_b_cell_depletion"] == "fail"
    assert report["sites"]["s"]["unresolved_medications"] == {
        "MedicationRequest": {"not_in_data": 1, "by_display": 1, "no_drug": 0}
    }


def test_a_server_pull_alike(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The server does not return Medication/rtx-2 (nor rtx-3): its own warning says so, and
    the records are read as a file's are."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeFhir(rsps)
        fake.add(RTX)
        for pid, records in CHARTS.items():
            for r in _chart(pid, *records):
                fake.add(r)
        report = _run(tmp_path, BASE, caplog, server={"s": {"max_retries": 1}})
    assert any("referenced Medication(s) not returned by the server" in w
               for w in report["warnings"])  # fmt: skip
    _check_run(report, tmp_path / "out", caplog)


def test_coverage_lists_a_record_naming_no_drug_and_an_unmapped_display(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cohort.cli import cli

    data = tmp_path / "data"
    data.mkdir()
    records = _chart("p", _order("Medication/gone"), _order("Medication/x", "Zorblatamab 5 mg"))
    (data / "p.ndjson").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    cfg = write_config(tmp_path, {"s": str(data)}, store=tmp_path / "store.db")
    out = tmp_path / "out"
    args = ["--config", str(cfg), "--out", str(out)]
    assert CliRunner().invoke(cli, ["run", *args, "--as-of", AS_OF]).exit_code == 0
    result = CliRunner().invoke(cli, ["mappings", "coverage", *args])
    assert result.exit_code == 0, result.output
    with (out / "coverage.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["resource_type"] == "MedicationRequest"]
    by_display = {r["display"]: r for r in rows}
    assert "Zorblatamab 5 mg" in by_display
    unnamed = [r for r in rows if "names no drug" in r["why"]]
    assert len(unnamed) == 1 and unnamed[0]["records"] == "1", rows


def test_the_counts_come_back_from_an_evaluation_fork() -> None:
    """Above 200 screened patients candidates come back from forks as msgpack (screening)."""
    import msgspec

    from cohort.model import Candidate, Patient
    from cohort.report.medgaps import gaps_of

    pf = facts(request("Medication/a", RITUXAN), request("Medication/b"))
    gaps = gaps_of(pf)
    assert sorted(gaps) == [("MedicationRequest", True, False), ("MedicationRequest", True, True)]
    sent = msgspec.msgpack.Encoder().encode([Candidate(Patient("p"), [], medication_gaps=gaps)])
    got = msgspec.msgpack.Decoder(list[Candidate]).decode(sent)
    assert got[0].medication_gaps == gaps
