"""Read every public FHIR R4 test file (../shared/data/public-fhir) and check plausible counts."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from cohort.model import PIPELINE_TYPES
from cohort.source.files import ReadStats, read_path
from cohort.store import Store

pytestmark = pytest.mark.public_data

REPO = Path(__file__).resolve().parents[1]


def _root() -> Path:
    env = os.environ.get("COHORT_PUBLIC_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data" / "public-fhir"]:
        if cand.is_dir():
            return cand
    pytest.skip("public FHIR test data not found (set COHORT_PUBLIC_DATA)")


@pytest.fixture(scope="module")
def root() -> Path:
    return _root()


def read(path: Path, **kw: Any) -> tuple[list[tuple[dict[str, Any], str]], ReadStats]:
    stats = ReadStats()
    return list(read_path(path, stats, **kw)), stats


_LOCATED = re.compile(r"^[^#:]+(#entry\[\d+\](\.entry\[\d+\])*|:\d+)?$")


def assert_issues_located(stats: ReadStats) -> None:
    # every rejected resource has an issue; every issue names a file plus entry/line when known
    assert sum(stats.rejected.values()) <= len(stats.issues)
    assert stats.issues_dropped == 0
    for issue in stats.issues:
        assert _LOCATED.match(issue.origin), issue.origin


@pytest.fixture(scope="module")
def every_file(root: Path) -> dict[str, ReadStats]:
    """Read every top-level entry of the public data once (nothing kept but the counts)."""
    out: dict[str, ReadStats] = {}
    for entry in sorted(root.iterdir()):
        stats = out[entry.name] = ReadStats()
        for _ in read_path(entry, stats):
            pass
    return out


def test_every_file_reads_and_issues_are_located(every_file: dict[str, ReadStats]) -> None:
    for stats in every_file.values():
        assert_issues_located(stats)
    # FILES.tsv, MANIFEST.md, SHA256SUMS, a README.md inside the HIV archive and the Bulk
    # export's log.ndjson: not data
    assert sum(s.skipped_files for s in every_file.values()) == 5
    assert sum(sum(s.read.values()) for s in every_file.values()) > 250_000
    rejected = {n: dict(s.rejected) for n, s in every_file.items() if s.rejected}
    # the only reject: the npm package manifest (the Bulk export's event log is skipped, below)
    assert rejected == {"hl7-fhir-r4-examples": {"?": 1}}


def test_synthea_617_archive(every_file: dict[str, ReadStats]) -> None:
    stats = every_file["generated-sample-data-r4"]
    # 615 patients in the archive (+ 2 organisation/practitioner bundles) + 5 in fixture-subset
    assert stats.files == 617 + 6
    assert stats.read["Patient"] == 615 + 5
    assert stats.read["Observation"] > 50_000 and stats.read["Condition"] > 4_000
    assert not stats.rejected and not stats.issues


def test_fixture_subset_store_idempotent(root: Path, tmp_path: Path) -> None:
    src = root / "generated-sample-data-r4" / "fixture-subset"
    with Store(tmp_path / "s.sqlite") as store:
        first = store.put_resources("s", read_path(src, ReadStats()), source=str(src))
        snapshot = {t: list(store.iter_type("s", t)) for t in store.count_by_type("s")}
        second = store.put_resources("s", read_path(src, ReadStats()), source=str(src))
        assert first.inserted == 616 and second.inserted == 0
        # 7 Organizations/Practitioners appear both in a patient bundle and in the
        # hospitalInformation bundle with different extensions and no meta: the later read wins,
        # so re-reading rewrites them (twice each) but ends in the same state.
        assert first.updated == 7 and second.updated == 14
        assert second.unchanged == 623 - 14
        assert {t: list(store.iter_type("s", t)) for t in snapshot} == snapshot
        assert len([p for p in store.patient_ids("s") if store.get("s", "Patient", p)]) == 5
        groups = list(store.iter_by_patient("s", types=["Patient", "Condition"]))
        assert len(groups) == 5
        assert all(any(r["resourceType"] == "Patient" for r in g) for _, g in groups)
        # every urn:uuid reference inside a bundle was resolved to Type/id
        for rtype in snapshot:
            for r in store.iter_type("s", rtype):
                assert b"urn:uuid:" not in orjson.dumps(r)


def test_bulk_ndjson_datasets(root: Path) -> None:
    base = root / "sample-bulk-fhir-datasets"
    _, stats = read(base / "1000-patients" / "Patient.000.ndjson.xz")
    assert stats.read == {"Patient": 1144}
    assert not stats.issues
    _, stats = read(base / "10-patients")
    assert stats.read["Patient"] == 13 and stats.read["MedicationRequest"] > 0
    # log.ndjson is the Bulk export client's event log (no resourceType): skipped with a note,
    # where each of its lines was a located reject
    assert stats.notes == [
        "log.ndjson: a Bulk export client's log (exportId, eventId), not FHIR data: skipped"
    ]
    assert not stats.issues and not stats.rejected


def test_pathling(root: Path) -> None:
    _, stats = read(root / "pathling" / "ndjson")
    assert stats.read["Patient"] == 9 and stats.read["Questionnaire"] >= 1
    assert not stats.issues
    _, stats = read(root / "pathling" / "synthea_v3_10_collection_bundles.tar.xz")
    assert stats.read["Patient"] == 10 and not stats.issues


def test_other_folders(every_file: dict[str, ReadStats]) -> None:
    expected_patients = {
        "fhir-data-pipes-synthea-hiv": 79,
        "us-core-examples": 4,
        "hl7-fhir-r4-examples": 52,  # 22 standalone + those inside example Bundles
        "inferno-reference-server": 4,  # 2 in bundles + the same 2 in the NDJSON export
    }
    for name, n in expected_patients.items():
        stats = every_file[name]
        assert stats.read["Patient"] == n, name
        if name == "hl7-fhir-r4-examples":
            # the npm package manifest is not a resource: its one located reject
            assert [i.origin for i in stats.issues] == ["_package.json"]
        else:
            assert not stats.issues, (name, stats.issues[:3])


def test_type_filter(root: Path) -> None:
    _, stats = read(root / "us-core-examples", types=PIPELINE_TYPES)
    assert set(stats.read) <= PIPELINE_TYPES and stats.read["Observation"] > 0
    assert stats.skipped_types["Encounter"] > 0 and "Bundle" not in stats.skipped_types


def _normalise(res: dict[str, Any]) -> dict[str, Any]:
    """Content without server bookkeeping: meta and ids the server assigned on POST."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == "meta":
                    continue
                if k == "reference" and isinstance(v, str) and not v.startswith("Patient/"):
                    v = v.split("/")[0] + "/*"
                out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    out = walk(res)
    if out["resourceType"] != "Patient":
        out.pop("id")
    return out


def test_inferno_bundles_and_bulk_export_store_the_same(root: Path, tmp_path: Path) -> None:
    inferno = root / "inferno-reference-server"
    with Store(tmp_path / "inferno.sqlite") as store:
        for name in ("uscore_bundle_patient_85.json", "uscore_bundle_patient_355.json"):
            path = inferno / "bundles" / name
            store.put_resources(
                "b", read_path(path, ReadStats(), types=PIPELINE_TYPES), source=name
            )
        src = inferno / "bulk-ndjson"
        stats = ReadStats()
        store.put_resources("n", read_path(src, stats, types=PIPELINE_TYPES), source=str(src))
        assert not stats.issues
        by_site: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for site in ("b", "n"):
            by_site[site] = {t: list(store.iter_type(site, t)) for t in sorted(PIPELINE_TYPES)}
        groups_b = [(p, len(g)) for p, g in store.iter_by_patient("b")]
        groups_n = [(p, len(g)) for p, g in store.iter_by_patient("n")]
    b, n = by_site["b"], by_site["n"]
    # The export is a Group $export: Medication is not in the Patient compartment, so the one
    # Medication of bundle 85 (referenced by a MedicationRequest) is absent from the NDJSON.
    assert len(b["Medication"]) == 1 and n["Medication"] == []
    # Patients were PUT (Patient/85, Patient/355): the same ids, the same content.
    assert {r["id"] for r in b["Patient"]} == {r["id"] for r in n["Patient"]} == {"85", "355"}
    for t in ("Patient",):
        assert sorted(map(_key, map(_normalise, b[t]))) == sorted(map(_key, map(_normalise, n[t])))
    # Every other resource was POSTed, so the reference server assigned new ids: (type, id) sets
    # are disjoint and we compare contents as multisets with non-Patient reference ids masked.
    for t in sorted(PIPELINE_TYPES - {"Patient", "Medication"}):
        cb = Counter(_key(_normalise(r)) for r in b[t])
        cn = Counter(_key(_normalise(r)) for r in n[t])
        if t == "Observation":
            # One source Observation carries `effectivePeriod.stop`, not a FHIR element: the
            # server dropped it on import. That is the only content difference in the data.
            only_b, only_n = cb - cn, cn - cb
            assert sum(only_b.values()) == sum(only_n.values()) == 1
            fixed = orjson.loads(next(iter(only_b)))
            del fixed["effectivePeriod"]["stop"]
            assert _key(fixed) == next(iter(only_n))
        else:
            assert cb == cn, t
        assert sum(cb.values()) > 0 or t.startswith("Medication")
    # Per patient, the same resources (the Medication has no patient, so no group).
    assert groups_b == groups_n
    assert [p for p, _ in groups_b] == ["355", "85"]


def _key(r: dict[str, Any]) -> bytes:
    return orjson.dumps(r, option=orjson.OPT_SORT_KEYS)


def test_whole_job_on_public_data(root: Path, tmp_path: Path) -> None:
    """`cohort run` end to end on real public data nobody here wrote: no crash, sane counts.

    None of these populations has an SLE patient coded as such, so nobody is screened; the
    point is that every record flows through read, validation, store and screening.
    """
    from click.testing import CliRunner

    from cohort.cli import cli

    sources = {
        "hiv": root / "fhir-data-pipes-synthea-hiv",
        "inferno": root / "inferno-reference-server",
        "uscore": root / "us-core-examples",
        "hl7": root / "hl7-fhir-r4-examples",
    }
    cfg = tmp_path / "public.toml"
    cfg.write_text(
        '[trial]\nid = "sirius-sle-2"\n'
        + "".join(f'[[sites]]\nid = "{k}"\nsource = "{v}"\n' for k, v in sources.items())
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = orjson.loads((out / "run.json").read_bytes())
    assert report["status"] == "success"
    hiv = report["sites"]["hiv"]
    assert hiv["read"]["Patient"] == 79 and hiv["read"]["Observation"] > 10_000
    # every record read is either stored whole or summarised (no concept: date + census only)
    stored = sum(hiv["stored"][k] for k in ("inserted", "updated", "unchanged"))
    assert stored + sum(hiv["summarised"].values()) == sum(hiv["read"].values())
    assert hiv["summarised"]["Observation"] > 10_000
    for site in sources:
        assert (out / site / "candidates.csv").exists()
        assert report["sites"][site]["screened"] == 0
    # (that nobody is screened is said: it looks like an SLE code the mappings lack)
    said = "hiv: 79 patient(s) read, none screened: no patient has a Condition mapped to"
    assert any(w.startswith(said) for w in report["warnings"]), report["warnings"]


def test_a_record_naming_its_patient_by_identifier_is_that_patients(
    root: Path, tmp_path: Path
) -> None:
    """HL7's R4 example of references: Observation/48's subject is only an identifier
    (http://example.org/ids|1234567), which Patient/23 of the same Bundle holds."""
    src = root / "hl7-fhir-r4-examples" / "Bundle-bundle-references.json"
    with Store(tmp_path / "s.sqlite") as store:
        store.put_resources("s", read_path(src, ReadStats()), source=str(src))
        found = store.attribute_by_identifier("s")
        groups = {p: g for p, g in store.iter_by_patient("s")}
    assert found.attributed == 1 and found.counts() == {}
    assert ("Observation", "48") in {(r["resourceType"], r["id"]) for r in groups["23"]}


# FHIR R4 JSON: a primitive with no value but an extension is written only as its `_name`
# sibling (json.html); it is present (ele-1: a value or children), so it meets a 1..1
# cardinality. US Core's and IPS's missing-data rules send a required primitive that is not
# known that way, with a data-absent-reason extension.
_DAR = {
    "extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}
    ]
}


def _absent(res: dict[str, Any], name: str) -> dict[str, Any]:
    """`res` with element `name` (a primitive) given only by a data-absent-reason extension."""
    out = {k: v for k, v in res.items() if k != name}
    out["_" + name] = _DAR
    return out


def _read_lines(tmp_path: Path, records: list[dict[str, Any]]) -> tuple[list[dict], ReadStats]:
    path = tmp_path / "data.ndjson"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    got, stats = read(path)
    return [r for r, _ in got], stats


def test_a_required_primitive_given_only_by_an_extension_is_read(tmp_path: Path) -> None:
    subject = {"reference": "Patient/p1"}
    med = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "8640"}]}
    records = [
        _absent(
            {
                "resourceType": "Observation",
                "id": "o1",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                "subject": subject,
                "effectiveDateTime": "2026-11-01",
                "valueQuantity": {"value": 7.0, "unit": "g/dL"},
            },
            "status",
        ),
        _absent(
            {
                "resourceType": "MedicationRequest",
                "id": "mr1",
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": med,
                "subject": subject,
                "authoredOn": "2026-09-01",
            },
            "intent",
        ),
        _absent(
            {
                "resourceType": "Immunization",
                "id": "i1",
                "status": "completed",
                "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "03"}]},
                "patient": subject,
                "occurrenceDateTime": "2026-11-01",
            },
            "occurrenceDateTime",
        ),
        _absent(
            {
                "resourceType": "MedicationAdministration",
                "id": "ma1",
                "status": "completed",
                "medicationCodeableConcept": med,
                "subject": subject,
                "effectiveDateTime": "2026-11-01",
            },
            "effectiveDateTime",
        ),
    ]
    got, stats = _read_lines(tmp_path, records)
    assert stats.issues == [] and not stats.rejected
    assert got == records  # each read whole, none a stub of a refused record
    # an `_name` holding no extension (an id alone) is no element: still missing
    bare = {k: v for k, v in records[0].items() if k != "_status"} | {"_status": {"id": "s"}}
    _, stats = _read_lines(tmp_path, [bare])
    assert [i.reason for i in stats.issues] == ["Observation.status: missing"]


def test_public_immunizations_with_their_date_withheld_are_read(root: Path, tmp_path: Path) -> None:
    """The Inferno export's Immunizations, each with its occurrence date replaced by a
    data-absent-reason extension (US Core's way of sending a required date not known)."""
    src = root / "inferno-reference-server" / "bulk-ndjson" / "Immunization.ndjson"
    real = [orjson.loads(line) for line in src.read_bytes().splitlines() if line.strip()]
    # (one gives its date as occurrenceString: the other choice, withheld the same way)
    withheld = [_absent(r, next(k for k in r if k.startswith("occurrence"))) for r in real]
    assert len(withheld) == 40 and sum("_occurrenceString" in r for r in withheld) == 1
    got, stats = _read_lines(tmp_path, withheld)
    assert stats.issues == [] and stats.read == {"Immunization": 40}
    assert got == withheld


def test_a_result_over_a_period_known_only_by_its_end_is_dated(tmp_path: Path) -> None:
    """FHIR R4 Period: start 0..1 ("if missing, the start of the period is not known"). A
    result made over a period that ended on 2026-11-01 (a 24-hour urine, a result an EHR
    stamps with its end) was read as undated and ignored; its end dates it (SPEC §3: a result
    is within N days when it overlaps them)."""
    from click.testing import CliRunner

    from cohort.cli import cli

    sle = {
        "resourceType": "Condition",
        "id": "sle",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]},
        "subject": {"reference": "Patient/p"},
        "onsetDateTime": "2020-03-01",
    }
    hb = {
        "resourceType": "Observation",
        "id": "hb",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/p"},
        "effectivePeriod": {"end": "2026-11-01T08:00:00Z"},
        "valueQuantity": {"value": 7.0, "unit": "g/dL"},
    }
    # a result no concept maps, dated the same way: the patient's newest record (last_seen)
    bp = hb | {"id": "bp", "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
               "effectivePeriod": {"end": "2026-11-20"}}  # fmt: skip
    data = tmp_path / "data"
    data.mkdir()
    patient = {"resourceType": "Patient", "id": "p", "birthDate": "1980-01-01"}
    (data / "p.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in (patient, sle, hb, bp)))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[trial]\nid = "sirius-sle-2"\n[[sites]]\nid = "s"\nsource = "{data}"\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    import csv

    with (out / "s" / "candidates.csv").open(encoding="utf-8-sig") as fh:
        (row,) = csv.DictReader(fh)
    assert row["hemoglobin"] == "fail", row["reasons"]
    assert "7 g/dL < 8 on 2026-11-01" in row["reasons"]
    assert row["last_seen"] == "2026-11-20"
