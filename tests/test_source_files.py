"""Tests of the file reader (Bundles, NDJSON, compression, archives) and structural validation."""

from __future__ import annotations

import bz2
import copy
import gzip
import io
import lzma
import shutil
import tarfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cohort.config import default_config
from cohort.errors import SourceError
from cohort.extract import Triage
from cohort.ingest import Loaded
from cohort.source.files import ReadStats, read_path
from cohort.source.refused import MARK
from cohort.source.structure import rewrite_refs, rewritten
from cohort.source.validate import check

DATA = Path(__file__).parent / "data" / "files"


def read(
    path: Path, **kw: Any
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], str], ReadStats]:
    stats = ReadStats()
    res: dict[tuple[str, str], dict[str, Any]] = {}
    origins: dict[tuple[str, str], str] = {}
    for r, origin in read_path(path, stats, **kw):
        res[(r["resourceType"], r["id"])] = r
        origins[(r["resourceType"], r["id"])] = origin
    return res, origins, stats


def test_transaction_bundle_resolves_urn_uuid_and_assigns_ids() -> None:
    res, origins, stats = read(DATA / "bundles" / "transaction.json")
    # id-less Patient takes its id from request.url, id-less Medication from its urn:uuid
    assert ("Patient", "p1") in res
    med_id = "22222222-2222-4222-8222-222222222222"
    assert ("Medication", med_id) in res
    mr = res[("MedicationRequest", "mr1")]
    assert mr["subject"]["reference"] == "Patient/p1"
    assert mr["medicationReference"]["reference"] == f"Medication/{med_id}"
    assert mr["encounter"]["reference"] == "Encounter/e1"
    # references anywhere in the resource are rewritten, not only top-level ones
    cond = res[("Condition", "c1")]
    assert cond["evidence"][0]["detail"][0]["reference"] == "Encounter/e1"
    assert origins[("MedicationRequest", "mr1")] == "transaction.json#entry[3]"
    assert stats.files == 1 and not stats.issues and not stats.rejected
    assert stats.read["Patient"] == 1 and "Bundle" not in stats.read


def test_batch_collection_and_nested_searchset() -> None:
    res, origins, stats = read(DATA / "bundles")
    obs = [r for k, r in res.items() if k[0] == "Observation"]
    assert len(obs) == 1 and obs[0]["id"] == "77777777-7777-4777-8777-777777777777"
    assert obs[0]["subject"]["reference"] == "Patient/p2"
    # absolute fullUrl gives the id; references equal to it become Type/id
    assert ("Patient", "p3") in res
    assert res[("Immunization", "i1")]["patient"]["reference"] == "Patient/p3"
    # a Bundle inside a searchset is read; its refs resolve against the outer bundle too
    ms_key = ("MedicationStatement", "99999999-9999-4999-8999-999999999999")
    assert res[ms_key]["partOf"][0]["reference"] == "Procedure/pr1"
    # a reference to a resource outside the bundle is left as it is (the store parses it)
    assert res[ms_key]["subject"]["reference"] == "https://ehr.example.org/fhir/Patient/p3"
    assert origins[ms_key] == "searchset-nested.json#entry[1].entry[0]"
    assert stats.files == 4 and not stats.rejected
    assert "Bundle" not in stats.read and "Bundle" not in stats.skipped_types


def test_a_history_bundle_reads_no_version_of_a_record_it_deletes(tmp_path: Path) -> None:
    """A history Bundle (a `_history` answer saved to disk) lists a record's versions newest
    first; a DELETE entry carries no resource, so the versions listed after it were read and
    the newest of them stored: a deleted record (a Condition deleted as charted in error)
    counted in screening. A record created again after its deletion is read."""

    def cond(cid: str, version: str) -> dict[str, Any]:
        return {
            "resourceType": "Condition",
            "id": cid,
            "meta": {"versionId": version},
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]},
        }

    def entry(res: dict[str, Any] | None, method: str, url: str) -> dict[str, Any]:
        out: dict[str, Any] = {"request": {"method": method, "url": url}}
        return {**out, "resource": res} if res is not None else out

    bundle = {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [
            entry(None, "DELETE", "Condition/c1"),
            entry(cond("c2", "3"), "PUT", "Condition/c2"),  # created again after its deletion
            entry(cond("c1", "2"), "PUT", "Condition/c1"),
            entry(None, "DELETE", "Condition/c2"),
            entry(cond("c1", "1"), "POST", "Condition"),
            entry(cond("c2", "1"), "POST", "Condition"),
            entry(cond("c3", "1"), "POST", "Condition"),
        ],
    }
    (tmp_path / "h.json").write_bytes(orjson.dumps(bundle))
    res, origins, stats = read(tmp_path / "h.json")
    assert sorted(res) == [("Condition", "c2"), ("Condition", "c3")]
    assert origins[("Condition", "c2")] == "h.json#entry[1]" and not stats.issues
    # in any other Bundle (a transaction that deletes one record and writes another) the
    # entries are read as they are
    (tmp_path / "h.json").write_bytes(orjson.dumps({**bundle, "type": "transaction"}))
    res, _, _ = read(tmp_path / "h.json")
    assert sorted(res) == [("Condition", "c1"), ("Condition", "c2"), ("Condition", "c3")]


def test_a_history_delete_named_by_a_versioned_or_absolute_url(tmp_path: Path) -> None:
    """HAPI writes a DELETE's request.url with its version ("Condition/c1/_history/3", the
    unqualified versioned id), other servers an absolute URL: the record is deleted all the
    same, and its older versions listed after the DELETE are not read."""
    versions = [
        {
            "resource": {
                "resourceType": "Condition",
                "id": cid,
                "meta": {"versionId": "1"},
                "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]},
            },
            "request": {"method": "POST", "url": "Condition"},
        }
        for cid in ("c1", "c2", "c3")
    ]
    deletes = [
        {"request": {"method": "DELETE", "url": "Condition/c1/_history/2"}},
        {"request": {"method": "DELETE", "url": "https://ehr.example.org/fhir/Condition/c2"}},
    ]
    bundle = {"resourceType": "Bundle", "type": "history", "entry": deletes + versions}
    (tmp_path / "h.json").write_bytes(orjson.dumps(bundle))
    res, _, _ = read(tmp_path / "h.json")
    assert sorted(res) == [("Condition", "c3")]


def test_types_filter_counts_skipped_types() -> None:
    res, _, stats = read(DATA / "bundles" / "transaction.json", types={"Patient", "Condition"})
    assert {k[0] for k in res} == {"Patient", "Condition"}
    assert stats.skipped_types == {"Medication": 1, "Encounter": 1, "MedicationRequest": 1}


def test_ndjson_malformed_and_invalid_lines_located_and_reading_goes_on() -> None:
    res, origins, stats = read(DATA / "ndjson" / "Observation.ndjson")
    # o2 (a date that is no date, the only problem) is kept; o4 (refused) is stored as a stub
    # naming it, so that no criterion reading its concept passes as if it were not there
    assert sorted(k[1] for k in res) == ["o1", "o2", "o4", "o6"]
    assert set(res[("Observation", "o4")]) == {"resourceType", "id", "status", "code",
                                               "subject", MARK}  # fmt: skip
    assert origins[("Observation", "o6")] == "Observation.ndjson:8"
    by_origin = {i.origin: i.reason for i in stats.issues}
    assert set(by_origin) == {
        "Observation.ndjson:2",  # month 13
        "Observation.ndjson:3",  # truncated JSON
        "Observation.ndjson:4",  # valueQuantity.value is a string
        "Observation.ndjson:6",  # no resourceType
        "Observation.ndjson:7",  # not an object
    }
    assert "effectiveDateTime" in by_origin["Observation.ndjson:2"]
    assert "kept" in by_origin["Observation.ndjson:2"]
    assert "valueQuantity.value" in by_origin["Observation.ndjson:4"]
    assert stats.rejected == {"Observation": 1, "?": 3}
    assert stats.read == {"Observation": 3}
    # reasons name the element, never the value (values may be PHI)
    assert all("2024" not in r and "12.9" not in r for r in by_origin.values())


def test_bad_id_rejected() -> None:
    res, _, stats = read(DATA / "ndjson" / "Patient.ndjson")
    assert set(res) == {("Patient", "p1"), ("Patient", "p2")}
    assert stats.issues[0].origin == "Patient.ndjson:2"
    assert stats.issues[0].reason == "Patient.id: not a valid FHIR id"


def test_directory_is_sorted_recursive_and_skips_non_data() -> None:
    stats = ReadStats()
    origins = [o for _, o in read_path(DATA, stats)]
    files = [o.split("#")[0].split(":")[0] for o in origins]
    assert files == sorted(files)  # deterministic: sorted paths, bundles/ before ndjson/
    assert origins[0].startswith("bundles/batch.json#entry[")
    # README.md silently skipped; notes.bin skipped with an issue
    assert stats.skipped_files == 2
    assert [i for i in stats.issues if i.origin == "notes.bin"]
    assert not [i for i in stats.issues if "README" in i.origin]


def test_compressed_and_archived(tmp_path: Path) -> None:
    raw = (DATA / "ndjson" / "Observation.ndjson").read_bytes()
    bundle = (DATA / "bundles" / "transaction.json").read_bytes()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "Observation.ndjson.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "a" / "Observation.ndjson.xz").write_bytes(lzma.compress(raw))
    (tmp_path / "a" / "tx.json.gz").write_bytes(gzip.compress(bundle))
    (tmp_path / "a" / "tx.json.bz2").write_bytes(bz2.compress(bundle))
    for name, mode in (("b.tar.xz", "w:xz"), ("c.tgz", "w:gz"), ("d.tar.gz", "w:gz")):
        with tarfile.open(tmp_path / "a" / name, mode) as tf:
            for member, data in (("x/tx.json", bundle), ("x/Obs.ndjson.gz", gzip.compress(raw))):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    stats = ReadStats()
    items = list(read_path(tmp_path / "a", stats))
    origins = [o for _, o in items]
    assert "Observation.ndjson.gz:8" in origins
    assert "Observation.ndjson.xz:8" in origins
    assert "b.tar.xz/x/Obs.ndjson.gz:8" in origins
    assert "c.tgz/x/tx.json#entry[3]" in origins
    assert "b.tar.xz/x/Obs.ndjson.gz:4" in {i.origin for i in stats.issues}
    # 3 Observations and 5 bundle resources per copy; 5 NDJSON + 5 bundle copies
    assert stats.read["Observation"] == 3 * 5
    assert stats.read["MedicationRequest"] == 5
    assert stats.files == 10


def test_corrupt_archive_is_an_issue_not_a_crash(tmp_path: Path) -> None:
    shutil.copy(DATA / "ndjson" / "Patient.ndjson", tmp_path / "Patient.ndjson")
    (tmp_path / "broken.tar.xz").write_bytes(lzma.compress(b"x" * 1000)[:40])
    (tmp_path / "broken.ndjson.gz").write_bytes(b"\x1f\x8b not gzip")
    stats = ReadStats()
    got = list(read_path(tmp_path, stats))
    assert len(got) == 2
    reasons = {i.origin: i.reason for i in stats.issues}
    assert reasons["broken.tar.xz"].startswith("file cannot be read")
    assert reasons["broken.ndjson.gz"].startswith("file cannot be read")


def test_gzip_with_a_corrupt_deflate_stream_is_an_issue_not_a_crash(tmp_path: Path) -> None:
    """A gzip header followed by a bad deflate block raises zlib.error (not an OSError): a
    located issue for a plain .gz file, a .json.gz and a .gz member of a tar archive."""
    shutil.copy(DATA / "ndjson" / "Patient.ndjson", tmp_path / "Patient.ndjson")
    bad = bytes.fromhex("1f8b0800000000000003ffffffff")  # the fuzzer's 14 bytes
    (tmp_path / "x.ndjson.gz").write_bytes(bad)
    (tmp_path / "y.json.gz").write_bytes(bad)
    with tarfile.open(tmp_path / "z.tar", "w") as tf:
        info = tarfile.TarInfo("in/Obs.ndjson.gz")
        info.size = len(bad)
        tf.addfile(info, io.BytesIO(bad))
    stats = ReadStats()
    got = list(read_path(tmp_path, stats))
    assert len(got) == 2  # the two good Patients
    reasons = {i.origin: i.reason for i in stats.issues if not i.origin.startswith("Patient")}
    names = ("x.ndjson.gz", "y.json.gz", "z.tar")
    assert reasons == {n: "file cannot be read (zlib.error)" for n in names}


def test_an_empty_compressed_file_is_not_read_whole(tmp_path: Path) -> None:
    """A 0-byte .gz (a download that died before its first byte) is a compressed stream that
    ends early, as a 0-byte .xz or .bz2 is: gzip.open read it as no data, so a snapshot read
    dropped the records of Condition.000.ndjson.gz from the store, exit 0, no issue."""
    shutil.copy(DATA / "ndjson" / "Patient.ndjson", tmp_path / "Patient.ndjson")
    for name in ("Condition.000.ndjson.gz", "Obs.ndjson.xz", "Obs.ndjson.bz2"):
        (tmp_path / name).write_bytes(b"")
    with tarfile.open(tmp_path / "z.tar", "w") as tf:
        tf.addfile(tarfile.TarInfo("in/Obs.ndjson.gz"), io.BytesIO(b""))
    stats = ReadStats()
    got = list(read_path(tmp_path, stats))
    assert len(got) == 2  # the two good Patients
    names = ("Condition.000.ndjson.gz", "Obs.ndjson.xz", "Obs.ndjson.bz2", "z.tar")
    reasons = {i.origin: i.reason for i in stats.issues if not i.origin.startswith("Patient")}
    assert reasons == {n: "file cannot be read (EOFError)" for n in names}
    assert sorted(p for p in stats.partial if not p.startswith("Patient")) == sorted(names)


def test_an_empty_ndjson_file_is_not_read_whole(tmp_path: Path) -> None:
    """A 0-byte .ndjson or .jsonl (a copy or download that died before its first byte) read as
    a complete file that holds no records: a snapshot read dropped the 7 Conditions it held
    last night, exit 0, no issue. It is now an issue naming the file, and not read whole, as a
    0-byte .json and .gz are; also as a tar archive's member."""
    shutil.copy(DATA / "ndjson" / "Patient.ndjson", tmp_path / "Patient.ndjson")
    for name in ("Condition.ndjson", "Obs.jsonl"):
        (tmp_path / name).write_bytes(b"")
    with tarfile.open(tmp_path / "z.tar", "w") as tf:
        tf.addfile(tarfile.TarInfo("in/Obs.ndjson"), io.BytesIO(b""))
    stats = ReadStats()
    got = list(read_path(tmp_path, stats))
    assert len(got) == 2  # the two good Patients
    names = ("Condition.ndjson", "Obs.jsonl", "z.tar/in/Obs.ndjson")
    reasons = {i.origin: i.reason for i in stats.issues if not i.origin.startswith("Patient")}
    assert reasons == {n: "empty file (still being written?)" for n in names}
    assert sorted(p for p in stats.partial if not p.startswith("Patient")) == sorted(names)
    assert stats.files == 4


def test_missing_path_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="nope"):
        read_path(tmp_path / "nope", ReadStats())


def test_invalid_json_file_located(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"resourceType": "Patient",\n  "id": }')
    stats = ReadStats()
    assert list(read_path(tmp_path, stats)) == []
    assert stats.issues[0].origin == "bad.json"
    assert stats.issues[0].reason.startswith("invalid JSON (line 2")


def _obs(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/1"},
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("resource", "reason"),
    [
        (_obs(), None),
        (_obs(effectiveDateTime="2024"), None),
        (_obs(effectiveDateTime="2024-02-30T10:00:00+14:00"), None),  # regex-level check only
        (
            _obs(effectiveDateTime="2024-02-01T10:00"),
            "Observation.effectiveDateTime: not a valid FHIR dateTime",
        ),
        (
            _obs(effectiveDateTime="01/02/2024"),
            "Observation.effectiveDateTime: not a valid FHIR dateTime",
        ),
        (_obs(issued="2024-02-01"), "Observation.issued: not a valid FHIR instant"),
        (_obs(valueQuantity={"value": True}), "Observation.valueQuantity.value: not a number"),
        (_obs(subject="Patient/1"), "Observation.subject: not an object"),
        (_obs(code={"coding": {"code": "x"}}), "Observation.code.coding: not an array"),
        (_obs(code={"coding": [{"code": 5}]}), "Observation.code.coding[0].code: not a valid code"),
        (
            _obs(component=[{"valueQuantity": {"value": 1}}]),
            "Observation.component[0].code: missing",
        ),
        (_obs(id="x" * 65), "Observation.id: not a valid FHIR id"),
        ({"resourceType": "Observation", "id": "o"}, "Observation.status: missing"),
        ({"resourceType": "Spaceship", "id": "s"}, "resourceType: not a FHIR R4 resource type"),
        (
            {"resourceType": "Patient", "id": "p", "birthDate": "1980-1-1"},
            "Patient.birthDate: not a valid FHIR date",
        ),
        (
            {"resourceType": "Patient", "id": "p", "deceasedBoolean": "no"},
            "Patient.deceasedBoolean: not a boolean",
        ),
        (
            {
                "resourceType": "MedicationRequest",
                "id": "m",
                "status": "active",
                "intent": "order",
                "subject": {"reference": "Patient/1"},
            },
            "MedicationRequest.medication[x]: missing",
        ),
        (
            {
                "resourceType": "Immunization",
                "id": "i",
                "status": "completed",
                "vaccineCode": {},
                "patient": {},
            },
            "Immunization.occurrence[x]: missing",
        ),
        (
            {
                "resourceType": "MedicationStatement",
                "id": "m",
                "status": "active",
                "subject": {},
                "medicationReference": {"reference": "#m"},
                "contained": [{"resourceType": "Medication", "id": "m", "code": {"text": 1}}],
            },
            "MedicationStatement.contained[0]/Medication.code.text: not a string",
        ),
        (
            {
                "resourceType": "MedicationRequest",
                "id": "m",
                "status": "active",
                "intent": "order",
                "subject": {},
                "medicationCodeableConcept": {},
                "dosageInstruction": [{"timing": {"repeat": {"frequency": 1.5}}}],
            },
            "MedicationRequest.dosageInstruction[0].timing.repeat.frequency: not an integer",
        ),
    ],
)
def test_fast_check(resource: dict[str, Any], reason: str | None) -> None:
    assert check(resource) == reason


def test_full_check_uses_r4b_models_and_names_paths_only() -> None:
    assert check(_obs(valueQuantity={"value": 1.5, "unit": "g"}), "full") is None
    reason = check(_obs(status=12345, effectiveDateTime="Secret-Value"), "full")
    assert reason is not None and "Observation.status" in reason
    assert "Secret-Value" not in reason and "12345" not in reason


def test_unknown_mode_rejected() -> None:
    with pytest.raises(ValueError):
        check(_obs(), "strict")
    with pytest.raises(ValueError):
        read_path(DATA, ReadStats(), validate="strict")


def test_validate_none_and_full_modes_through_reader() -> None:
    _, _, stats = read(DATA / "ndjson" / "Observation.ndjson", validate="none")
    assert stats.read == {"Observation": 4}  # only structure-less lines rejected
    _, _, stats = read(DATA / "ndjson" / "Observation.ndjson", validate="full")
    # pydantic (lax mode) coerces the string "12.9" to a decimal, so `full` accepts line 4;
    # line 2's date that is no date is kept too, as under `fast`
    assert stats.read["Observation"] == 4


def test_origin_is_phi_free_location() -> None:
    stats = ReadStats()
    for r, origin in read_path(DATA, stats):
        assert orjson.dumps(r)  # serialisable
        assert "#entry[" in origin or ":" in origin


def test_ndjson_lines_of_unread_types_are_counted_without_parsing(tmp_path: Path) -> None:
    """A line that opens with a type the filter leaves out is counted, not parsed: a broken
    Claim is not a rejection. Anything that could be read (another resourceType inside, a
    Bundle, a misspelt or unknown type, a leading key other than resourceType) is parsed."""
    claim = {"resourceType": "Claim", "id": "c1", "patient": {"reference": "Patient/p1"}}
    lines = [
        orjson.dumps(claim),
        b'{"resourceType": "ExplanationOfBenefit", "id": "e1", "total": [',  # broken, unread
        # another resourceType inside: parsed, so a duplicate key cannot hide a Patient
        b'{"resourceType":"Claim","id":"c2","resourceType":"Patient"}',
        b'{"id":"p2","resourceType":"Encounter"}',  # type not first: parsed, then skipped
        b'{"resourceType":"Claimm","id":"c3"}',  # not an R4 type: rejected as before
        b'{"resourceType":"Patient","id":"p1"}',
        b'{"resourceType":"Bundle","type":"collection","entry":[{"resource":'
        b'{"resourceType":"Patient","id":"p3"}}]}',
    ]
    (tmp_path / "mixed.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    res, _, stats = read(tmp_path, types={"Patient", "Condition"})
    assert sorted(k[1] for k in res) == ["c2", "p1", "p3"]  # c2: the last key says Patient
    assert stats.skipped_types == {"Claim": 1, "ExplanationOfBenefit": 1, "Encounter": 1}
    assert [i.origin for i in stats.issues] == ["mixed.ndjson:5"]
    # without a type filter nothing is skipped: the broken line is located as before
    res, _, stats = read(tmp_path)
    assert "mixed.ndjson:2" in {i.origin for i in stats.issues}
    assert ("Claim", "c1") in res and not stats.skipped_types


_REF_KEYS = ["urn:uuid:a", "urn:uuid:b", 'urn:uuid:"q"', "urn:uuid:\\x", "urn:uuid:é"]
_REF_VALUES = st.sampled_from([*_REF_KEYS, "Patient/p1", "urn:uuid:zz", '"reference":"urn:uuid:a"'])
_TREES = st.recursive(
    st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=5), _REF_VALUES),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["reference", "a", "display", "detail"]), inner, max_size=3
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["subject", "reference", "x", "evidence"]), _TREES))
def test_rewritten_bytes_equal_the_walk(tree: dict[str, Any]) -> None:
    """The text-level rewrite of a Bundle entry's references gives exactly the bytes of the
    walk (rewrite_refs, then compact JSON), or None where only the walk can answer: a
    reference value with a quote or backslash. A string that merely contains the text of a
    reference is left alone."""
    res = {"resourceType": "Observation", "id": "o1", **tree}
    refs = {k: f"Patient/{i}" for i, k in enumerate(_REF_KEYS)}
    walked = copy.deepcopy(res)
    rewrite_refs(walked, refs)
    got = rewritten(res, refs)
    if got is None:
        assert any(b"\\" in orjson.dumps(v) for v in _reference_values(res))
    else:
        assert got == orjson.dumps(walked)


def _reference_values(node: Any) -> list[str]:
    """Every string under a "reference" key, at any depth."""
    if isinstance(node, list):
        return [v for item in node for v in _reference_values(item)]
    if not isinstance(node, dict):
        return []
    found = [v for k, v in node.items() if k == "reference" and isinstance(v, str)]
    return found + [v for k, v in node.items() for v in _reference_values(v)]


def test_bundle_reference_with_escapes_is_still_rewritten(tmp_path: Path) -> None:
    odd = 'urn:uuid:"odd"'
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": odd, "resource": {"resourceType": "Patient", "id": "p9"}},
            {
                "fullUrl": "urn:uuid:c",
                "resource": {
                    "resourceType": "Condition",
                    "id": "c9",
                    "subject": {"reference": odd},
                    "note": [{"text": '"reference":"urn:uuid:c"'}],
                },
            },
        ],
    }
    path = tmp_path / "b.json"
    path.write_bytes(orjson.dumps(bundle))
    res, _, _ = read(path)
    cond = res[("Condition", "c9")]
    assert cond["subject"]["reference"] == "Patient/p9"
    assert cond["note"][0]["text"] == '"reference":"urn:uuid:c"'


def test_byte_order_mark_opening_a_file_is_read_past(tmp_path: Path) -> None:
    """A UTF-8 BOM (Windows tools, some exporters) opened every file's first record to an
    "invalid JSON" rejection: a Bundle file lost whole, an NDJSON file its first line."""
    bom = b"\xef\xbb\xbf"
    patient = {"resourceType": "Patient", "id": "p1"}
    obs = _obs(id="o1")
    lines = [patient, obs, {"resourceType": "Claim", "id": "c1"}]
    for i, first in enumerate(lines):  # each type path (kept, line handler, unread) opens one
        rest = lines[:i] + lines[i + 1 :]
        body = b"\n".join(orjson.dumps(r) for r in [first, *rest]) + b"\n"
        (tmp_path / f"f{i}.ndjson").write_bytes(bom + body)
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient}]}
    (tmp_path / "b.json").write_bytes(bom + orjson.dumps(bundle))
    loaded = Loaded.from_config(default_config())
    triage = Triage(loaded.rules, loaded.relevant)
    res, _, stats = read(tmp_path, types={"Patient", "Observation"}, triage=triage)
    assert stats.issues == []
    assert set(res) == {("Patient", "p1"), ("Observation", "o1")}
    assert stats.read == {"Patient": 4, "Observation": 3}
    assert stats.skipped_types == {"Claim": 3}
    # an Observation no criterion reads, opening a file: summarised like the others
    heart_rate = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}
    unmapped = _obs(id="o2", code=heart_rate, effectiveDateTime="2024-01-02")
    (tmp_path / "f3.ndjson").write_bytes(bom + orjson.dumps(unmapped) + b"\n")
    triage = Triage(loaded.rules, loaded.relevant)
    _, _, stats = read(tmp_path / "f3.ndjson", types={"Observation"}, triage=triage)
    assert (stats.issues, stats.summarised) == ([], {"Observation": 1})


def test_a_record_after_a_byte_order_mark_is_stored_without_it(tmp_path: Path) -> None:
    """The first line of an NDJSON file opening with a BOM was parsed past the mark but kept
    with it as the stored text: every later read of that record (screening, explain) failed
    with an internal error, on every run, until the store was deleted."""
    from cohort.source.files import plan_units, read_unit
    from cohort.store import PutStats, Store, prepare_row

    bom = b"\xef\xbb\xbf"
    lines = [orjson.dumps({"resourceType": "Patient", "id": f"p{i}"}) for i in range(2)]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.ndjson").write_bytes(bom + b"\n".join(lines) + b"\n")
    (tmp_path / "src" / "b.ndjson").write_bytes(bom + b"\n".join(lines))  # (no last newline)
    for chunk in (None, 1 << 20):  # read whole, and as byte ranges
        stats = ReadStats()
        raws = [
            raw
            for unit in plan_units(tmp_path / "src", chunk)
            for _, _, raw in read_unit(unit, stats)
        ]
        assert len(raws) == 4 and all(raw is not None and raw[:1] == b"{" for raw in raws)
    rows = [
        prepare_row(r, o, raw)
        for u in plan_units(tmp_path / "src", 1 << 20)
        for r, o, raw in read_unit(u, ReadStats())
    ]
    with Store(tmp_path / "s.sqlite") as store:
        # a store written before the fix holds the mark: the next read replaces that text
        bad = prepare_row({"resourceType": "Patient", "id": "p0"}, "a.ndjson:1", bom + lines[0])
        store.put_rows("s", [bad], source="src", stats=PutStats())
        put = PutStats()
        store.put_rows("s", rows, source="src", stats=put)
        assert (put.inserted, put.updated) == (1, 1)
        assert store.get("s", "Patient", "p0") == {"resourceType": "Patient", "id": "p0"}
        assert [g for g, _ in store.iter_by_patient("s")] == ["p0", "p1"]


def test_ndjson_named_json_is_read_line_by_line(tmp_path: Path) -> None:
    """Lines of resources in a file named .json were one "invalid JSON (line 2, column 1)"
    issue, every record of the file lost; a broken line among them is still located."""
    lines = [orjson.dumps({"resourceType": "Patient", "id": f"p{i}"}) for i in range(3)]
    (tmp_path / "Patient.json").write_bytes(b"\n".join([*lines, b'{"resourceType": ']) + b"\n")
    res, origins, stats = read(tmp_path)
    assert sorted(res) == [("Patient", "p0"), ("Patient", "p1"), ("Patient", "p2")]
    assert origins[("Patient", "p2")] == "Patient.json:3"
    assert [(i.origin, i.reason) for i in stats.issues] == [("Patient.json:4", "invalid JSON")]
    assert stats.files == 1
    # a broken (pretty-printed) document is still one located issue
    (tmp_path / "Patient.json").write_bytes(b'{\n"resourceType": "Patient"}\n}\n')
    _, _, stats = read(tmp_path)
    assert [i.reason for i in stats.issues] == ["invalid JSON (line 3, column 1)"]


def test_medication_record_with_a_malformed_period_is_kept_not_fatal(tmp_path: Path) -> None:
    """Found by the pipeline fuzz test: a valid MedicationRequest (no period element in R4, so
    validation passes it) whose inline code maps to nothing and whose `effectivePeriod` is an
    array crashed the read (AttributeError) where the triage took its start."""
    med = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "nothing a concept maps"},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2025-09-16",
        "effectivePeriod": [None, 1, "a"],
    }
    (tmp_path / "m.ndjson").write_bytes(orjson.dumps(med) + b"\n")
    loaded = Loaded.from_config(default_config())
    triage = Triage(loaded.rules, loaded.relevant)
    res, _, stats = read(tmp_path, types={"MedicationRequest"}, triage=triage)
    assert set(res) == {("MedicationRequest", "m1")} and stats.summarised == {}
