"""Bad input corpus (tests/data/bad/ plus generated cases) mixed into a copy of the `amr` site.

Every broken record yields a counted, located, PHI-free issue in run.json; nothing crashes; the
sample patients (whose files the corpus is appended to) get exactly the clean run's verdicts.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_reliability_support import AS_OF, SAMPLES, Scenarios, report_at_end, write_config

from cohort.config import load_config
from cohort.filenames import FILE_NAMES, read_names
from cohort.runner import run

BAD = Path(__file__).parent / "data" / "bad"
RUNS = Scenarios("bad input")
HUGE_NAME = "Hugename" + "x" * (1 << 20)  # a 1 MB family name


@pytest.fixture(autouse=True, scope="module")
def _summary(request: pytest.FixtureRequest) -> None:
    report_at_end(request, RUNS)


csv.field_size_limit(1 << 24)  # the 1 MB name is one CSV cell


def _tiers(out: Path) -> dict[str, tuple[str, str]]:
    text = (out / "amr" / "candidates.csv").read_text(encoding="utf-8-sig")
    return {r["patient_id"]: (r["tier"], r["reasons"]) for r in csv.DictReader(io.StringIO(text))}


def _run(root: Path, site: Path) -> dict[str, Any]:
    return run(load_config(write_config(root, {"amr": str(site)})), date.fromisoformat(AS_OF),
               root / "out")  # fmt: skip


def _nested(depth: int) -> Any:
    v: Any = "leaf"
    for _ in range(depth):
        v = [v]
    return v


def _deep_line(depth: int, rid: str) -> str:
    # built as text: json.dumps itself recurses
    head = json.dumps({"resourceType": "Observation", "id": rid, "status": "final",
                       "code": {"text": "x"}, "subject": {"reference": "Patient/bad-deep"}})  # fmt: skip
    return head[:-1] + ', "extension": ' + "[" * depth + '"leaf"' + "]" * depth + "}"


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Path]:
    root = tmp_path_factory.mktemp("bad")
    clean_root = root / "clean"
    clean_root.mkdir()
    _run(clean_root, SAMPLES / "amr")
    site = root / "amr"
    shutil.copytree(SAMPLES / "amr", site)
    bad = site / "bad"
    bad.mkdir()
    for f in sorted(BAD.iterdir()):
        if f.suffix in (".json", ".ndjson") and f.name != "malformed-lines.ndjson":
            shutil.copy(f, bad / f.name)
    # malformed lines inside a real file of valid records: the valid ones must still be read
    with (site / "Condition.ndjson").open("a", encoding="utf-8") as fh:
        fh.write((BAD / "malformed-lines.ndjson").read_text(encoding="utf-8"))
    with (site / "Patient.ndjson").open("ab") as fh:
        fh.write(b"\xff\xfe\x00 binary junk \x80\x81\n")
    # generated: huge strings, deep nesting (below and above orjson's 1024 limit)
    sle = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}
    lines = [
        {"resourceType": "Patient", "id": "bad-huge", "name": [{"family": HUGE_NAME}],
         "birthDate": "1990-01-01", "gender": "female"},
        {"resourceType": "Condition", "id": "bad-huge-c", "code": sle,
         "subject": {"reference": "Patient/bad-huge"}, "onsetDateTime": "2015-01-01"},
        {"resourceType": "Observation", "id": "bad-huge-o", "status": "final",
         "code": {"text": "y" * (1 << 20)}, "subject": {"reference": "Patient/bad-huge"}},
    ]  # fmt: skip
    (bad / "huge.ndjson").write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    # code systems urlsplit refuses ("Invalid IPv6 URL") or silently rewrites (a line break):
    # unknown systems, once a crash of the whole read
    odd = [{"coding": [{"system": s, "code": "55464009"}]} for s in ("http://[x", "http://s\nomed.info/sct")]
    lines = [
        {"resourceType": "Condition", "id": f"bad-sys-{i}", "code": cc,
         "subject": {"reference": "Patient/bad-sys"}, "recordedDate": "2020-01-01"}
        for i, cc in enumerate(odd)
    ] + [
        {"resourceType": "Observation", "id": f"bad-sys-o{i}", "status": "final", "code": cc,
         "subject": {"reference": "Patient/bad-sys"}, "effectiveDateTime": "2020-01-01"}
        for i, cc in enumerate(odd)
    ]  # fmt: skip
    (bad / "systems.ndjson").write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    # records the triage reads before validation, junk nested just below orjson's limit where
    # text belongs (str() of it recursed past Python's limit) or past what orjson writes (252)
    def nested(n: int) -> str:
        return "[" * n + "]" * n

    height = '{"system":"http://loinc.org","code":"8302-2"}'  # body height: no criterion reads it
    head = '{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/bad-nest"},"effectiveDateTime":"2026-01-01",'
    deep_junk = [
        head + f'"id":"bad-nest-sys","code":{{"coding":[{{"system":{nested(1000)},"code":"x"}}]}}}}',
        head + f'"id":"bad-nest-unit","code":{{"coding":[{height}]}},"valueQuantity":{{"value":1,"unit":{nested(1000)}}}}}',
        head + f'"id":"bad-nest-cmp","code":{{"coding":[{height}]}},"valueQuantity":{{"value":1,"comparator":{nested(252)}}}}}',
        '{"resourceType":"Condition","id":"bad-nest-vs","subject":{"reference":"Patient/bad-nest"},'
        '"code":{"coding":[{"system":"http://snomed.info/sct","code":"195662009"}]},"recordedDate":"2020-01-01",'
        f'"verificationStatus":{{"coding":[{{"code":{nested(990)}}}]}}}}',
    ]  # fmt: skip
    # (1 is kept, so rejected as too deep; 2-4 are summarised: their junk is never read)
    (bad / "nested-junk.ndjson").write_text("\n".join(deep_junk) + "\n", encoding="utf-8")
    deep = [_deep_line(300, "bad-deep-300"), _deep_line(10_000, "bad-deep-10k")]
    (bad / "deep.ndjson").write_text("\n".join(deep) + "\n", encoding="utf-8")
    (bad / "deep.json").write_text(_deep_line(10_000, "bad-deep-doc"), encoding="utf-8")
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Observation", "id": "bad-b1",
         "status": "final", "code": {"text": "z"}, "subject": {"reference": "urn:uuid:2"},
         "extension": _nested(900)}},
        {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Patient", "id": "bad-b2"}},
    ]}  # fmt: skip
    (bad / "deep-bundle.json").write_bytes(_dump_deep(bundle))
    report = _run(root, site)
    return report, root / "out", clean_root / "out"


def _dump_deep(obj: Any) -> bytes:
    """json.dumps with a raised recursion limit (only the test writes such files)."""
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        return json.dumps(obj).encode()
    finally:
        sys.setrecursionlimit(old)


def _issues(report: dict[str, Any], out: Path) -> dict[str, str]:
    """origin -> reason, a file named by pseudonym (not Bulk-style: `bad/deep.json`) by its
    path again, as the store folder's file-names.tsv lists it."""
    names = {k: path for k, [(_, _, path)] in read_names(out / ".cohort" / FILE_NAMES).items()}
    got = {}
    for i in report["sites"]["amr"]["issues"]:
        origin = i["origin"]
        head = origin.split(":")[0].split("#")[0]
        got[names[head] + origin[len(head) :] if head in names else origin] = i["reason"]
    return got


def test_no_crash_and_valid_patients_unchanged(corpus_run: tuple[dict, Path, Path]) -> None:
    with RUNS.scenario("valid records in corrupted files still used"):
        report, out, clean = corpus_run
        assert report["status"] == "success"
        got, want = _tiers(out), _tiers(clean)
        assert len(want) > 40
        for pid, verdict in want.items():
            assert got.get(pid) == verdict, pid
        # nothing but the corpus' own `bad-` patients was added
        assert {p for p in got if p not in want} <= {p for p in got if p.startswith("bad-")}


# (file, line or entry) -> words the reason must contain
EXPECTED = {
    "Condition.ndjson:{n1}": "invalid JSON",  # truncated
    "Condition.ndjson:{n2}": "invalid JSON",  # not JSON
    "Condition.ndjson:{n3}": "not a JSON object",  # [1, 2, 3]
    "Condition.ndjson:{n4}": "not a JSON object",  # "just a string"
    "Condition.ndjson:{n5}": "resourceType",  # {}
    "Condition.ndjson:{n7}": "invalid JSON",  # NaN
    "Condition.ndjson:{n8}": "invalid JSON",  # single quotes
    "bad/not-json.json": "invalid JSON",
    "bad/wrong-type.ndjson:1": "not a FHIR R4 resource type",
    "bad/wrong-type.ndjson:2": "resourceType",
    "bad/wrong-type.ndjson:3": "resourceType",
    "bad/wrong-type.ndjson:4": "resourceType",
    "bad/structure.ndjson:1": "Observation.code",
    "bad/structure.ndjson:2": "Observation.status: missing",
    "bad/structure.ndjson:3": "valueQuantity.value",
    "bad/structure.ndjson:4": "Condition.subject",
    "bad/structure.ndjson:5": "Patient.id",
    "bad/structure.ndjson:6": "Patient.birthDate",
    "bad/structure.ndjson:7": "medication[x]",
    "bad/structure.ndjson:8": "Observation.code.coding: not an array",  # once a crash
    "bad/structure.ndjson:9": "Procedure.code.coding: not an array",
    "bad/structure.ndjson:10": "resourceType: missing or not a string",  # these three: crashes
    "bad/structure.ndjson:11": "Observation.code.coding: not an array",
    "bad/structure.ndjson:12": "Observation.valueCodeableConcept: not an object",
    "bad/references.ndjson:1": "Condition.subject: missing",
    "bad/dates.ndjson:1": "Patient.birthDate: impossible calendar date",
    "bad/dates.ndjson:2": "Condition.onsetDateTime",
    "bad/dates.ndjson:3": "Condition.recordedDate: impossible calendar date",
    "bad/dates.ndjson:4": "Observation.effectiveDateTime: impossible calendar date",
    "bad/deep.ndjson:1": "nested deeper than",
    "bad/nested-junk.ndjson:1": "nested deeper than",  # once a RecursionError in the triage
    "bad/deep.ndjson:2": "invalid JSON",
    "bad/deep.json": "invalid JSON",
    "bad/deep-bundle.json#entry[0]": "nested deeper than",
}


def test_each_bad_record_has_a_located_issue(corpus_run: tuple[dict, Path, Path]) -> None:
    report, _, _ = corpus_run
    base = sum(1 for ln in (SAMPLES / "amr" / "Condition.ndjson").read_bytes().splitlines())
    lines = {f"n{i}": base + i for i in range(1, 9)}
    issues = _issues(report, corpus_run[1])
    for where, words in EXPECTED.items():
        origin = where.format(**lines)
        with RUNS.scenario(f"bad input {origin}"):
            assert origin in issues, f"no issue for {origin}"
            assert words in issues[origin], (origin, issues[origin])
    with RUNS.scenario("binary junk line"):
        assert any(o.startswith("Patient.ndjson:") for o in issues)
    site = report["sites"]["amr"]
    assert site["issues_total"] >= len(EXPECTED)
    assert sum(site["rejected"].values()) >= len(EXPECTED) - 3  # 3 date issues keep the record


def test_issues_carry_no_phi(corpus_run: tuple[dict, Path, Path]) -> None:
    with RUNS.scenario("issues carry no PHI"):
        report, out, _ = corpus_run
        text = (out / "run.json").read_text(encoding="utf-8")
        for secret in ("Nobody", "Hugename", "1990-01-01", "2026-02-30", "502 Bad Gateway"):
            assert secret not in text
        assert len(text) < 200_000  # no 1 MB value echoed


def test_hostile_values_give_no_silently_wrong_verdict(corpus_run: tuple[dict, Path, Path]) -> None:
    with RUNS.scenario("huge strings, dangling refs, impossible dates"):
        _, out, _ = corpus_run
        got = _tiers(out)
        # a 1 MB name is carried through intact to the coordinator's CSV
        text = (out / "amr" / "candidates.csv").read_text(encoding="utf-8-sig")
        assert HUGE_NAME in text and "bad-huge" in got
        # no birth date -> age unknown, never "likely"; dangling subject -> not likely either
        assert got["bad-date-1"][0] != "likely" and "age" in got["bad-date-1"][1]
        assert got["bad-ghost"][0] != "likely"


def test_absurd_lab_value_is_not_evidence(corpus_run: tuple[dict, Path, Path]) -> None:
    _, out, _ = corpus_run
    text = (out / "amr" / "evidence.csv").read_text(encoding="utf-8-sig")
    used = [r for r in csv.DictReader(io.StringIO(text))
            if r["patient_id"] == "bad-8" and r["criterion"] == "platelets" and r["used"] == "yes"]  # fmt: skip
    # the most recent count (1e308) is outside the plausible range: shown, but never a pass
    assert used and all(r["status"] == "unknown" for r in used)
    # (in the concept's unit: said so, not that it cannot be converted)
    assert [r["note"] for r in used] == [
        "1e+308 x10^3/uL outside the plausible range 0-5000 x10^3/uL (check the result)"
    ]


def test_100mb_file(tmp_path: Path) -> None:
    """A 100 MB NDJSON (generated here, never committed): read in one pass, bad lines located."""
    with RUNS.scenario("100 MB file"):
        site = tmp_path / "amr"
        shutil.copytree(SAMPLES / "amr", site)
        filler = orjson.dumps({"resourceType": "Basic", "id": "f", "code": {"text": "x" * 900}})
        n = ((100 << 20) // (len(filler) + 1) // 1000 + 1) * 1000
        with (site / "big.ndjson").open("wb") as fh:
            for _ in range(n // 1000):
                fh.write((filler + b"\n") * 1000)
            fh.write(b'{"resourceType": "Observation", "id": \n')  # broken, at the very end
        assert (site / "big.ndjson").stat().st_size >= 100 << 20
        report = _run(tmp_path, site)
        assert report["status"] == "success"
        s = report["sites"]["amr"]
        assert s["skipped_types"]["Basic"] == (n // 1000) * 1000
        last = f"big.ndjson:{(n // 1000) * 1000 + 1}"
        assert _issues(report, tmp_path / "out")[last] == "invalid JSON"
