"""A Bulk export client's log.ndjson beside the data: skipped with a note, not rejected line by
line (its 4 rejects made `issues_total` 4 and the documented alert fire every night)."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_reliability_support import write_config

from cohort.config import load_config
from cohort.runner import run
from cohort.source.files import ReadStats, plan_units, read_path

REPO = Path(__file__).resolve().parents[1]
SNOMED = "http://snomed.info/sct"
NOTE = "a Bulk export client's log (exportId, eventId), not FHIR data: skipped"

# as the SMART bulk-data client writes it (../shared/data/public-fhir/sample-bulk-fhir-datasets)
EVENTS = [
    {
        "exportId": "export-10",
        "timestamp": "2024-08-06T14:11:57.560606-04:00",
        "eventId": "kickoff",
        "eventDetail": {"exportUrl": "https://example.com/fhir/Group/sample-10/$export"},
    },
    {
        "exportId": "export-10",
        "timestamp": "2024-08-06T14:12:57.779320-04:00",
        "eventId": "status_complete",
        "eventDetail": {"transactionTime": "2024-08-06T18:12:57Z"},
    },
    {
        "exportId": "export-10",
        "timestamp": "2024-08-06T14:12:58.124336-04:00",
        "eventId": "export_complete",
        "eventDetail": {"files": 0, "resources": 0, "bytes": 0, "duration": 563},
    },
]


def _ndjson(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    return path


def _patient(pid: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1980-01-01"}


def _export(folder: Path, log_name: str = "log.ndjson") -> Path:
    """A Bulk export folder: two Patients, an SLE Condition and the client's log."""
    _ndjson(folder / "Patient.000.ndjson", [_patient("p1"), _patient("p2")])
    sle = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": SNOMED, "code": "55464009"}]},
        "onsetDateTime": "2020-01-01",
    }
    _ndjson(folder / "Condition.000.ndjson", [sle])
    _ndjson(folder / log_name, EVENTS)
    return folder


def _read(path: Path, **kw: Any) -> ReadStats:
    stats = ReadStats()
    for _ in read_path(path, stats, **kw):
        pass
    return stats


def test_an_export_log_is_skipped_with_one_note_not_rejected(tmp_path: Path) -> None:
    stats = _read(_export(tmp_path / "export"))
    assert stats.read == {"Patient": 2, "Condition": 1}
    assert not stats.rejected and not stats.issues and not stats.partial
    assert stats.notes == [f"log.ndjson: {NOTE}"]
    assert stats.skipped_files == 1
    assert stats.files == 2  # data files read


def test_the_content_decides_not_the_name(tmp_path: Path) -> None:
    """A log under another name is a log; a data file named log.ndjson is data."""
    stats = _read(_export(tmp_path / "a", log_name="nested/export-events.ndjson"))
    assert stats.notes == [f"nested/export-events.ndjson: {NOTE}"] and not stats.issues
    data = _ndjson(tmp_path / "b" / "log.ndjson", [_patient("p9")])
    stats = _read(data.parent)
    assert stats.read == {"Patient": 1} and not stats.notes and not stats.issues
    # a line with exportId and eventId that also has a resourceType is no log line
    odd = {**EVENTS[0], "resourceType": "Patient", "id": "p8"}
    stats = _read(_ndjson(tmp_path / "c" / "log.ndjson", [odd]).parent)
    assert stats.read == {"Patient": 1} and not stats.notes


def test_the_first_line_decides_for_the_whole_file(tmp_path: Path) -> None:
    """An event line first: the whole file is the log (a line of it that is not an event is
    no FHIR record of the export either); anything else first: the file is read as data."""
    log = _ndjson(tmp_path / "a" / "log.ndjson", [*EVENTS, {"unexpected": 1}])
    stats = _read(log.parent)
    assert stats.notes == [f"log.ndjson: {NOTE}"] and not stats.issues and not stats.rejected
    mixed = _ndjson(tmp_path / "b" / "log.ndjson", [_patient("p1"), *EVENTS])
    stats = _read(mixed.parent)
    assert stats.read == {"Patient": 1} and not stats.notes
    assert stats.rejected == {"?": 3}  # (not the client's log: each line a located reject)


def test_a_log_above_the_chunk_size_is_one_unit(tmp_path: Path) -> None:
    log = _ndjson(tmp_path / "log.ndjson", EVENTS * 50)
    units = plan_units(tmp_path, chunk_bytes=256)
    assert [(u.origin, u.note) for u in units] == [("log.ndjson", NOTE)]
    assert log.stat().st_size > 256


def test_a_run_over_an_export_with_its_log_has_no_issue(tmp_path: Path) -> None:
    source = _export(tmp_path / "export")
    cfg = load_config(write_config(tmp_path, {"bulk": str(source)}))
    out = tmp_path / "out"
    report = run(cfg, date(2026, 11, 25), out)
    site = report["sites"]["bulk"]
    assert site["issues_total"] == 0 and site["rejected"] == {}
    assert site["read"]["Patient"] == 2
    assert site["notes"] == [f"log.ndjson: {NOTE}"]
    assert report["warnings"] == [] and site["warnings"] == []
    written = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert written["sites"]["bulk"]["notes"] == [f"log.ndjson: {NOTE}"]
    assert written["sites"]["bulk"]["issues_total"] == 0


def test_the_log_is_noted_at_info_level(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = _export(tmp_path / "export")
    cfg = load_config(write_config(tmp_path, {"bulk": str(source)}))
    with caplog.at_level("INFO", logger="cohort"):
        run(cfg, date(2026, 11, 25), tmp_path / "out")
    said = [(r.levelname, r.getMessage()) for r in caplog.records if "log.ndjson" in r.getMessage()]
    assert said == [("INFO", f"site bulk: log.ndjson: {NOTE}")]


def _public_root() -> Path:
    """As tests/test_public_data.py finds the public FHIR data (skipped when absent)."""
    env = os.environ.get("COHORT_PUBLIC_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data" / "public-fhir"]:
        if cand.is_dir():
            return cand
    pytest.skip("public FHIR test data not found (set COHORT_PUBLIC_DATA)")


@pytest.mark.public_data
def test_the_real_10_patient_export_runs_without_an_issue(tmp_path: Path) -> None:
    folder = _public_root() / "sample-bulk-fhir-datasets" / "10-patients"
    if not (folder / "log.ndjson").is_file():
        pytest.skip(f"{folder}/log.ndjson not found")
    cfg = load_config(write_config(tmp_path, {"bulk10": str(folder)}))
    report = run(cfg, date(2026, 11, 25), tmp_path / "out")
    site = report["sites"]["bulk10"]
    assert site["issues_total"] == 0 and site["rejected"] == {}
    assert site["read"]["Patient"] == 13
    assert site["notes"] == [f"log.ndjson: {NOTE}"]
    # (the log file is no warning; the one warning is that no patient of it has SLE)
    assert [w.split(":", 1)[0] for w in site["warnings"]] == [
        "13 patient(s) read, none screened"
    ]
