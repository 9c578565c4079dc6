"""File names that may name a patient (Synthea writes `Liz_Conn_<uuid>.json`) reach neither the
log, stderr nor run.json: such a file is named `file-<8 hex>`, which the store folder's
file-names.tsv resolves; a Bulk-style name (`Condition.ndjson`) is named as it is."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from test_reliability_support import AS_OF, REPO, copy_site, write_config

from cohort.config import load_config
from cohort.errors import SourceError
from cohort.filenames import FILE_NAMES, read_names
from cohort.runner import run
from cohort.source.files import plan_units
from cohort.source.names import FileNames, bulk_named
from cohort.source.refused import stub_why

DAY = date.fromisoformat(AS_OF)
LIZ = "Liz_Conn_27c911c6-f045-4ffa-af5d-6eba57ac94b2.json"
AARON = "Aaron697_Brekke496_2fa15bc7-8866-461a-9000-f739e425860a"
PSEUDONYM = re.compile(r"file-[0-9a-f]{8}")


def _fixture_subset() -> Path:
    """The Synthea fixture files (patient-named), as tests/test_public_data.py finds them."""
    env = os.environ.get("COHORT_PUBLIC_DATA")
    roots = ([Path(env)] if env else []) + [REPO.parent / "shared" / "data" / "public-fhir"]
    for root in roots:
        folder = root / "generated-sample-data-r4" / "fixture-subset"
        if (folder / LIZ).is_file():
            return folder
    pytest.skip("public FHIR test data not found (set COHORT_PUBLIC_DATA)")


def _cli(config: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cohort", "--log-level", "debug", "run", "--config", str(config),
         "--as-of", AS_OF, "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip


@pytest.mark.public_data
def test_a_synthea_file_not_read_whole_is_named_by_pseudonym(tmp_path: Path) -> None:
    """The QA repro: a truncated Synthea bundle was named in the warning logged, in run.json's
    warnings and in its issues' origins (`Liz_Conn_27c911c6-...json`)."""
    src = tmp_path / "fx"
    shutil.copytree(_fixture_subset(), src)
    for f in src.iterdir():
        f.chmod(0o600)  # (the shared copies are read-only)
    config = write_config(tmp_path, {"fx": str(src)})
    out = tmp_path / "out"
    first = _cli(config, out)
    assert first.returncode == 0, first.stderr[-1500:]
    liz = src / LIZ
    liz.write_bytes(liz.read_bytes()[:5000])
    res = _cli(config, out)
    assert res.returncode == 0, res.stderr[-1500:]
    text = (out / "run.json").read_text(encoding="utf-8")
    report = json.loads(text)
    site = report["sites"]["fx"]
    for said in (res.stderr, first.stderr, text):
        for word in ("Liz", "Conn", "27c911c6", "Buster", "Hoeger", "hospitalInformation"):
            assert word not in said, word
    # named by the first 8 hex digits of its path's SHA-256 under the source, as documented
    name = "file-" + hashlib.sha256(LIZ.encode()).hexdigest()[:8]
    [warning] = [w for w in site["warnings"] if "not read whole" in w]
    assert f"(first: {name}; see issues)" in warning
    assert f"fx: {warning}" in report["warnings"]
    assert f"site fx: 1 file(s) not read whole (first: {name};" in res.stderr
    assert name in {i["origin"] for i in site["issues"]}
    # ... which the store folder's list resolves to the file, readable by its owner only
    listing = out / ".cohort" / FILE_NAMES
    assert stat.S_IMODE(listing.stat().st_mode) == 0o600
    assert read_names(listing)[name] == [("fx", str(src), LIZ)]
    for origin in {i["origin"].split(":")[0].split("#")[0] for i in site["issues"]}:
        assert origin in read_names(listing), origin  # every pseudonym said resolves


def test_a_bulk_named_file_is_named_as_it_is(tmp_path: Path) -> None:
    """Condition.ndjson (a Bulk export's name, no patient's) keeps its name and line numbers;
    nothing is listed then."""
    src = copy_site("amr", tmp_path / "feed")
    cond = src / "Condition.ndjson"
    data = cond.read_bytes()
    cond.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 40])  # into the last record
    (src / "Patient.ndjson").write_bytes(
        (src / "Patient.ndjson").read_bytes() + b'{"resourceType": "Patient"}\n'
    )
    out = tmp_path / "out"
    cfg = load_config(write_config(tmp_path, {"amr": str(src)}))
    report = run(cfg, date.fromisoformat(AS_OF), out)
    site = report["sites"]["amr"]
    # (the Patient line without an id is a damaged line too: its file is not read whole)
    assert "amr: 2 file(s) not read whole (first: Condition.ndjson; see issues)" in " ".join(
        report["warnings"]
    )
    origins = {i["origin"] for i in site["issues"]}
    assert "Condition.ndjson" in origins
    assert any(o.startswith("Patient.ndjson:") for o in origins)
    assert not (out / ".cohort" / FILE_NAMES).exists()


def test_a_single_file_source_is_named_as_configured(tmp_path: Path) -> None:
    """The file a site's source names (research IT's choice, in run.json's `source` already)
    keeps its name."""
    src = tmp_path / "Smith_John.ndjson"
    src.write_text('{"resourceType": "Patient", "id": "p1", "birthDate": "x"}\n')
    cfg = load_config(write_config(tmp_path, {"s": str(src)}))
    report = run(cfg, date.fromisoformat(AS_OF), tmp_path / "out")
    assert [i["origin"] for i in report["sites"]["s"]["issues"]] == ["Smith_John.ndjson:1"]


@pytest.mark.parametrize(
    ("name", "bulk"),
    [
        ("Condition.ndjson", True),
        ("Observation.000.ndjson.gz", True),
        ("Observation_2.ndjson", True),
        ("1.Patient.ndjson", True),
        ("0003.MedicationRequest.ndjson", True),
        ("error-0001.OperationOutcome.ndjson", True),
        ("bundle-0009.json", True),
        ("Observation.tar.gz", True),
        ("log.ndjson", True),
        (LIZ, False),
        ("Smith.ndjson", False),
        ("hospitalInformation1559319163815.json", False),
        ("123456.json", False),  # an MRN
        ("Patient_Smith.ndjson", False),
        ("conditions", False),
        ("amr", False),
        ("", False),
    ],
)
def test_which_names_are_bulk_style(name: str, bulk: bool) -> None:
    assert bulk_named(name) is bulk


def test_locations_are_kept_after_a_pseudonym() -> None:
    names = FileNames()
    name = "file-" + hashlib.sha256(b"p/Liz.json").hexdigest()[:8]
    assert names.show("p/Liz.json#entry[3]") == f"{name}#entry[3]"
    assert names.show("p/Liz.json:54") == f"{name}:54"
    assert names.show("p/Liz.json:2#entry[1].entry[0]") == f"{name}:2#entry[1].entry[0]"
    assert names.show("p/Liz.json") == name
    assert names.hidden == {name: "p/Liz.json"}
    # a folder or an archive member may name a patient as well as a file
    assert names.show("Smith/Observation.ndjson:4").startswith("file-")
    assert names.show("Observation.tgz/Smith.json").startswith("file-")
    assert names.show("Observation.tgz/x/Observation.ndjson:4").startswith("file-")
    assert names.show("Observation.tgz/Condition/Observation.ndjson:4") == (
        "Observation.tgz/Condition/Observation.ndjson:4"
    )
    given = FileNames(given="Smith.tgz")
    assert given.show("Smith.tgz") == "Smith.tgz"
    assert given.show("Smith.tgz/Condition.ndjson:3") == "Smith.tgz/Condition.ndjson:3"
    assert given.show("Smith.tgz/Jones.json").startswith("file-")
    # a refused record's stub knows no `given` (stub_why): its file's pseudonym is kept too
    member = "file-" + hashlib.sha256(b"Smith.tgz/Condition.ndjson").hexdigest()[:8]
    assert given.keep("Smith.tgz/Condition.ndjson") == member
    assert stub_why({"reason": "Condition.code: missing",
                     "origin": "Smith.tgz/Condition.ndjson:3"}).startswith(f"{member}:3: ")  # fmt: skip
    assert given.hidden[member] == "Smith.tgz/Condition.ndjson"
    assert given.keep("Condition.ndjson") == "Condition.ndjson"


def test_a_refused_records_reason_names_its_file_by_pseudonym() -> None:
    """A stub's reason goes into candidates.csv and evidence.csv, --no-phi ones too."""
    why = stub_why({"reason": "Condition.code: missing", "origin": "Smith_John.json#entry[2]"})
    name = "file-" + hashlib.sha256(b"Smith_John.json").hexdigest()[:8]
    assert why == f"{name}#entry[2]: Condition.code: missing"
    kept = stub_why({"reason": "Condition.code: missing", "origin": "Condition.ndjson:3"})
    assert kept == "Condition.ndjson:3: Condition.code: missing"


def test_a_folder_that_cannot_be_listed_is_named_by_pseudonym(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error that stops the run named the folder's path; now its pseudonym, listed."""
    src = tmp_path / "src"
    (src / "Smith_John").mkdir(parents=True)
    real = os.scandir

    def scandir(path: os.PathLike[str] | str):  # type: ignore[no-untyped-def]
        if Path(path).name == "Smith_John":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    names = FileNames()
    with pytest.raises(SourceError) as err:
        plan_units(src, names=names)
    name = "file-" + hashlib.sha256(b"Smith_John").hexdigest()[:8]
    assert "Smith" not in str(err.value) and name in str(err.value)
    assert "Permission denied" in str(err.value)
    assert names.hidden == {name: "Smith_John"}

    # a run stopped so lists it where the store is
    out = tmp_path / "out"
    with pytest.raises(SourceError):
        run(load_config(write_config(tmp_path, {"s": str(src)})), DAY, out)
    assert read_names(out / ".cohort" / FILE_NAMES) == {name: [("s", str(src), "Smith_John")]}
    assert name in json.loads((out / "run.json").read_text(encoding="utf-8"))["error"]


def _aaron(kind: str) -> bytes:
    """A Synthea-style patient file: an SLE patient and a malignancy Condition refused on
    reading (its clinicalStatus is a string), whose stub makes `malignancy` unknown and names
    the record's file in candidates.csv's reasons and evidence.csv's notes."""
    sct = "http://snomed.info/sct"
    clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    status = {"coding": [{"system": clinical, "code": "active"}]}
    records = [
        {"resourceType": "Patient", "id": "aaron", "birthDate": "1990-05-01",
         "gender": "female"},
        {"resourceType": "Condition", "id": "sle", "clinicalStatus": status,
         "code": {"coding": [{"system": sct, "code": "55464009"}]},
         "subject": {"reference": "Patient/aaron"}, "onsetDateTime": "2015-01-01"},
        {"resourceType": "Condition", "id": "bad", "clinicalStatus": "active",
         "code": {"coding": [{"system": sct, "code": "363346000"}]},
         "subject": {"reference": "Patient/aaron"}},
    ]  # fmt: skip
    if kind == "ndjson":
        return "".join(json.dumps(r) + "\n" for r in records).encode()
    entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in records]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


def _said(out: Path) -> tuple[str, str, str]:
    """candidates.csv, evidence.csv and run.json of site `s`."""
    return (
        (out / "s" / "candidates.csv").read_text(encoding="utf-8-sig"),
        (out / "s" / "evidence.csv").read_text(encoding="utf-8-sig"),
        (out / "run.json").read_text(encoding="utf-8"),
    )


@pytest.mark.parametrize("kind", ["json", "ndjson"])
@pytest.mark.parametrize("folder", [True, False], ids=["folder", "single-file"])
def test_every_pseudonym_shown_is_listed(tmp_path: Path, kind: str, folder: bool) -> None:
    """A single patient-named file as a site's source: the refused record's stub named its
    file by pseudonym in candidates.csv and evidence.csv, and file-names.tsv did not list it
    (run.json names that file as configured). Every pseudonym shown anywhere is listed now, in
    the store's folder only (never elsewhere in OUT), 0600 also once a rerun rewrites it."""
    name = f"{AARON}.{kind}"
    src = tmp_path / "feed" / name
    src.parent.mkdir()
    src.write_bytes(_aaron(kind))
    source = src.parent if folder else src
    state = tmp_path / "state"
    config = write_config(tmp_path, {"s": str(source)}, store=state / "store.sqlite")
    out = tmp_path / "out"
    first = _cli(config, out)
    assert first.returncode == 0, first.stderr[-1500:]
    rows, notes, report, logged = (*_said(out), first.stderr)
    mine = "file-" + hashlib.sha256(name.encode()).hexdigest()[:8]  # as documented
    assert mine in rows and mine in notes  # (the test's premise: the stub names its file)
    for said in (rows, notes, logged, *([report] if folder else [])):
        assert "Aaron697" not in said and "Brekke496" not in said
    listing = state / FILE_NAMES
    # then read again (the list written again), then, the list deleted, a run over unchanged
    # files (not read: the last read's issues and stubs are shown again, so listed again)
    for rerun in (None, ["--full-refresh"], []):
        if rerun is not None:
            if not rerun:
                listing.unlink()
            again = subprocess.run(
                [sys.executable, "-m", "cohort", "run", "--config", str(config), "--as-of",
                 AS_OF, "--out", str(out), *rerun],
                capture_output=True, text=True, cwd=REPO, timeout=600,
            )  # fmt: skip
            assert again.returncode == 0, again.stderr[-1500:]
            assert json.loads((out / "run.json").read_text())["sites"]["s"].get(
                "files_unchanged", False
            ) is (not rerun)
            rows, notes, report, logged = (*_said(out), again.stderr)
        listed = read_names(listing)
        shown = set(PSEUDONYM.findall(rows + notes + report + logged))
        assert mine in shown
        assert {p: listed.get(p) for p in shown} == {p: [("s", str(source), name)] for p in shown}
        assert stat.S_IMODE(listing.stat().st_mode) == 0o600
        # OUT holds no list and, but for a single file's configured `source`, no file's name
        assert not list(out.rglob(FILE_NAMES))
        for path in out.rglob("*"):
            if path.is_file() and (folder or path.name != "run.json"):
                assert b"Aaron697" not in path.read_bytes(), path


def test_a_refused_record_past_the_issue_limit_has_its_file_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issues past MAX_ISSUES are counted, not kept, so not shown in run.json; the stub of a
    record refused there still names its file in candidates.csv: listed all the same."""
    monkeypatch.setattr("cohort.source.fileinfo.MAX_ISSUES", 0)
    src = tmp_path / "feed"
    src.mkdir()
    (src / f"{AARON}.json").write_bytes(_aaron("json"))
    out = tmp_path / "out"
    cfg = load_config(write_config(tmp_path, {"s": str(src)}, run={"workers": 1}))
    report = run(cfg, DAY, out)
    assert report["sites"]["s"]["issues"] == []
    mine = "file-" + hashlib.sha256(f"{AARON}.json".encode()).hexdigest()[:8]
    assert mine in (out / "s" / "candidates.csv").read_text(encoding="utf-8-sig")
    assert read_names(out / ".cohort" / FILE_NAMES) == {mine: [("s", str(src), f"{AARON}.json")]}
