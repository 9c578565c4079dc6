"""One damaged line in an NDJSON export (docs/operations.md "Bad input"): the record it held is
unknown, so a snapshot read must not take its stored copy for deleted. Found by QA: one broken
character in a patient's malignancy Condition line dropped the stored Condition as "gone from
the export" and turned an excluded patient into "likely", exit 0, no warning.

The site is the shipped `uci` sample, written as one NDJSON file per type (a Bulk-export-like
folder), read night after night into one store."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

from test_reliability_support import AS_OF, SAMPLES, write_config

from cohort.config import load_config
from cohort.runner import run
from cohort.store import Store

PID = "uci-p0046"  # excluded for a malignancy (C50.911) in the sample data


def _ndjson_site(folder: Path) -> None:
    """The `uci` Bundles as NDJSON files by type, urn:uuid references as 'Type/id'."""
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted((SAMPLES / "uci").glob("*.json")):
        text = path.read_text(encoding="utf-8")
        bundle = json.loads(text)
        urls = {}
        for entry in bundle.get("entry", []):
            res = entry.get("resource")
            if res:
                res.setdefault("id", entry["fullUrl"].split(":")[-1])
                urls[entry["fullUrl"]] = f"{res['resourceType']}/{res['id']}"
        text = json.dumps(bundle)
        for url, ref in urls.items():
            text = text.replace(json.dumps(url), json.dumps(ref))
        for entry in json.loads(text).get("entry", []):
            if entry.get("resource"):
                by_type[entry["resource"]["resourceType"]].append(entry["resource"])
    folder.mkdir()
    for rtype, records in by_type.items():
        lines = "".join(json.dumps(r) + "\n" for r in records)
        (folder / f"{rtype}.ndjson").write_text(lines, encoding="utf-8")


class Site:
    def __init__(self, root: Path) -> None:
        self.root, self.data = root, root / "data"
        _ndjson_site(self.data)
        self.cfg = write_config(root, {"uci": str(self.data)}, store=root / "store.db")
        self.conditions = (self.data / "Condition.ndjson").read_text(encoding="utf-8")
        lines = self.conditions.splitlines()
        found = [
            i for i, line in enumerate(lines)
            if f'"Patient/{PID}"' in line and "C50.911" in line
        ]  # fmt: skip
        assert len(found) == 1
        self.index = found[0]
        self.cancer = json.loads(lines[self.index])  # the malignancy Condition

    def night(self) -> dict[str, Any]:
        report = run(load_config(self.cfg), date.fromisoformat(AS_OF), self.root / "out")
        assert report["status"] == "success", report
        self.run_json = (self.root / "out" / "run.json").read_text(encoding="utf-8")
        return dict(report["sites"]["uci"])

    def row(self) -> dict[str, str]:
        text = (self.root / "out" / "uci" / "candidates.csv").read_text(encoding="utf-8-sig")
        return next(r for r in csv.DictReader(io.StringIO(text)) if r["patient_id"] == PID)

    def with_line(self, line: str | None) -> None:
        """Condition.ndjson with the malignancy line replaced (None: left out)."""
        lines = self.conditions.splitlines()
        if line is None:
            del lines[self.index]
        else:
            lines[self.index] = line
        (self.data / "Condition.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def stored(self) -> bool:
        with Store(self.root / "store.db") as store:
            return store.get("uci", "Condition", self.cancer["id"]) is not None


def _not_whole(site: dict[str, Any]) -> list[str]:
    return [w for w in site["warnings"] if "not read whole" in w]


def _damage(site: Site, old: str, new: str) -> None:
    line = site.conditions.splitlines()[site.index]
    assert old in line
    site.with_line(line.replace(old, new, 1))


def _excluded_for_malignancy(row: dict[str, str]) -> bool:
    return row["tier"] == "excluded" and row["malignancy"] == "fail"


def test_a_damaged_line_keeps_the_record_it_held(tmp_path: Path) -> None:
    """The QA repro: a line that is no JSON any more (one quote gone)."""
    site = Site(tmp_path)
    first = site.night()
    assert _excluded_for_malignancy(site.row())
    assert not _not_whole(first)
    _damage(site, '"clinicalStatus"', '"clinicalStatus')
    damaged = site.night()
    assert _excluded_for_malignancy(site.row()), site.row()
    assert site.stored()
    assert damaged["stored"]["removed"] == 0
    warned = _not_whole(damaged)
    assert len(warned) == 1 and "Condition.ndjson" in warned[0]
    assert "1 record(s) not found in this read are kept" in warned[0]
    report = json.loads(site.run_json)
    assert warned[0] in report["sites"]["uci"]["warnings"]
    assert any(i["reason"].startswith("invalid JSON") for i in damaged["issues"])
    # no PHI: the warning names the file, never what the line held
    for text in (site.cancer["id"], "C50.911", "alignant", PID):
        assert text not in " ".join(damaged["warnings"])
    # fixed: a clean read again, no warning, nothing lost
    site.with_line(site.conditions.splitlines()[site.index])
    fixed = site.night()
    assert not _not_whole(fixed) and fixed["stored"]["removed"] == 0
    assert not any(i["reason"].startswith("invalid JSON") for i in fixed["issues"])
    assert _excluded_for_malignancy(site.row())


def test_a_record_gone_from_a_file_read_whole_is_still_removed(tmp_path: Path) -> None:
    site = Site(tmp_path)
    # a JSON file that is no FHIR beside the data (a FHIR package's manifest): an issue, no
    # damaged record, so it holds no deletion back
    (site.data / "_package.json").write_text('{"name": "x", "version": "1"}', encoding="utf-8")
    site.night()
    assert _excluded_for_malignancy(site.row())
    site.with_line(None)  # the Condition deleted at the source: the line is gone, not damaged
    gone = site.night()
    assert not _not_whole(gone)
    # (named by pseudonym, not being a Bulk-style name: docs/security.md)
    assert [i["origin"] for i in gone["issues"]] == ["file-" + hashlib.sha256(b"_package.json").hexdigest()[:8]]
    assert gone["stored"]["removed"] == 1
    assert not site.stored()
    assert site.row()["malignancy"] != "fail"


def test_a_line_whose_record_cannot_be_named_keeps_the_record(tmp_path: Path) -> None:
    """A line that still parses, but whose type or id no longer reads (a damaged key): which
    stored record it held is unknown, as for a line that is no JSON."""
    site = Site(tmp_path)
    site.night()
    cases = [
        ('"id": ', '"ix": '),  # id missing
        ('"resourceType": "Condition"', '"resourceType": "Conditoin"'),  # no R4 type
        ('"resourceType"', '"resourcetype"'),  # no type at all
        (f'"id": "{site.cancer["id"]}"', '"id": "x y"'),  # an id no record can have
    ]
    for old, new in cases:
        _damage(site, old, new)
        damaged = site.night()
        assert damaged["stored"]["removed"] == 0, (old, new)
        assert site.stored(), (old, new)
        assert _excluded_for_malignancy(site.row()), (old, new)
        warned = _not_whole(damaged)
        assert len(warned) == 1 and "Condition.ndjson" in warned[0], (old, new, warned)


def test_a_refused_record_with_its_id_is_stored_as_a_stub_not_a_file_not_read_whole(
    tmp_path: Path,
) -> None:
    """A line that reads as a Condition with its id, refused by validation: it is stored as a
    stub in the record's place (keeping the readable copy stored before), so the read found
    it, nothing is spared for it and other deletions of the night still go."""
    site = Site(tmp_path)
    site.night()
    _damage(site, '"subject": {"reference"', '"subject": {"reference": 7, "x"')
    refused = site.night()
    assert refused["rejected"].get("Condition") == 1
    assert not _not_whole(refused)
    assert refused["stored"]["removed"] == 0
    assert site.stored()
    assert site.row()["tier"] == "excluded"


def test_a_damaged_bundle_or_an_entry_that_cannot_be_named_keeps_the_records(
    tmp_path: Path,
) -> None:
    """The same site as the shipped Bundles: a Bundle that is no JSON any more is not read at
    all, and an entry whose id no longer reads (its fullUrl's key damaged: the id came from
    it) leaves which stored record it held unknown."""
    data = tmp_path / "uci"
    shutil.copytree(SAMPLES / "uci", data)
    cfg = load_config(write_config(tmp_path, {"uci": str(data)}, store=tmp_path / "store.db"))
    path = data / "bundle-0046.json"
    text = path.read_text(encoding="utf-8")
    cancer = next(
        e for e in json.loads(text)["entry"]
        if e["resource"]["resourceType"] == "Condition" and "C50.911" in json.dumps(e)
    )  # fmt: skip

    def night() -> tuple[dict[str, Any], dict[str, str]]:
        report = run(cfg, date.fromisoformat(AS_OF), tmp_path / "out")
        assert report["status"] == "success", report
        out = (tmp_path / "out" / "uci" / "candidates.csv").read_text(encoding="utf-8-sig")
        rows = {r["patient_id"]: r for r in csv.DictReader(io.StringIO(out))}
        return report["sites"]["uci"], rows[PID]

    assert _excluded_for_malignancy(night()[1])
    url = json.dumps(cancer["fullUrl"])
    for damaged in (
        text.replace('"resourceType": "Bundle"', '"resourceType": "Bundle', 1),
        text.replace(f'"fullUrl": {url}', f'"fullUrk": {url}', 1),
    ):
        assert damaged != text
        path.write_text(damaged, encoding="utf-8")
        site, row = night()
        assert _excluded_for_malignancy(row), row
        assert site["stored"]["removed"] == 0
        warned = _not_whole(site)
        assert len(warned) == 1 and "bundle-0046.json" in warned[0]
    path.write_text(text, encoding="utf-8")
    site, row = night()
    assert not _not_whole(site) and _excluded_for_malignancy(row)
