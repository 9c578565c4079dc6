"""Nights whose export holds a damaged file (docs/operations.md "Bad input"): what such a file
holds is unknown, so a snapshot read neither drops stored records it may hold nor forgets the
summaries (`last_seen` dates, medication records, census) of records it may hold.

Each night is a folder written afresh into one site's source, read into one store; patients are
built with the sample generator's builders (cohort.samples)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

from test_reliability_support import write_config

from cohort.config import load_config
from cohort.runner import run
from cohort.samples.fhir import Builder, birth_date, rxmed
from cohort.samples.scenarios import RTX, base_patient
from cohort.store import Store

AS_OF = date(2026, 11, 25)
LISINOPRIL = rxmed("29046", "lisinopril")  # maps to no concept: summarised, not stored
HEART_RATE = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}  # (likewise)

Res = dict[str, Any]


def chart(pid: str) -> tuple[Builder, list[Res]]:
    """A patient who passes every criterion the data can decide (the samples' base patient)."""
    b = Builder(random.Random(pid), AS_OF, "s", pid)
    b.patient.update({"gender": "female", "birthDate": birth_date(AS_OF, 35, 100)})
    base_patient(b)
    return b, b.resources()


def bundle(records: list[Res]) -> bytes:
    entries = [{"resource": r} for r in records]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


def ndjson(records: list[Res]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def cut(data: bytes, keep: int) -> bytes:
    """The file as an export still writing it (or a broken copy) leaves it: `keep` bytes."""
    return data[: keep if keep > 0 else len(data) + keep]


class Nights:
    """One site read night after night, each night's folder holding exactly `files`."""

    def __init__(self, root: Path) -> None:
        self.root, self.data = root, root / "data"
        self.cfg = write_config(root, {"s": str(self.data)}, store=root / "store.db")

    def night(self, files: dict[str, bytes], as_of: date = AS_OF) -> dict[str, Any]:
        self.data.mkdir(exist_ok=True)
        for old in self.data.iterdir():
            old.unlink()
        for name, data in files.items():
            (self.data / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        report = run(load_config(self.cfg), as_of, self.root / "out")
        assert report["status"] == "success", report
        return dict(report["sites"]["s"])

    def rows(self) -> dict[str, dict[str, str]]:
        """candidates.csv by patient id."""
        text = (self.root / "out" / "s" / "candidates.csv").read_text(encoding="utf-8-sig")
        return {r["patient_id"]: r for r in csv.DictReader(io.StringIO(text))}

    def stored(self, rtype: str, rid: str) -> bool:
        with Store(self.root / "store.db") as store:
            return store.get("s", rtype, rid) is not None

    def side(self, *pids: str) -> dict[str, tuple[list[date], list[date | None]]]:
        with Store(self.root / "store.db") as store:
            found = store.side_facts("s", pids)
        return {p: (sorted(d), sorted(m, key=str)) for p, (d, m) in found.items()}

    def census(self) -> list[tuple[Any, ...]]:
        with Store(self.root / "store.db") as store:
            return sorted(store.census_rows("s"))

    def side_rows(self) -> int:
        with sqlite3.connect(self.root / "store.db") as db:
            return int(db.execute("SELECT COUNT(*) FROM side_dates").fetchone()[0])


def _verdict(row: dict[str, str]) -> tuple[str, ...]:
    return row["tier"], row["eligible_from"], row["last_seen"], row["background_therapy"]


def test_a_record_read_again_from_a_renamed_file_is_kept_when_that_file_is_damaged(
    tmp_path: Path,
) -> None:
    """A record read again unchanged from another file kept the name of the file it was first
    read from, and the sweep spared only records whose (stored) file was damaged: a Bundle
    holding a rituximab dose, renamed one night (same bytes) and cut short the next, lost the
    dose, and a patient excluded for 20 more weeks became 'likely'. Now nothing the read did not
    find goes on a night a file is damaged (any of it may be in that file)."""
    b, records = chart("i-3")
    dose = b.med_admin(None, RTX, -55, mg=1000, route="intravenous")  # 2026-10-01
    site = Nights(tmp_path)
    site.night({"i-3.json": bundle(records), "i-3-rtx.json": bundle([dose])})
    first = site.rows()["i-3"]
    assert first["tier"] == "excluded" and first["washout_b_cell_depletion"] == "fail"
    site.night({"i-3.json": bundle(records), "i-3-rtx-b.json": bundle([dose])})
    assert _verdict(site.rows()["i-3"]) == _verdict(first)
    damaged = site.night({"i-3.json": bundle(records), "i-3-rtx-b.json": cut(bundle([dose]), -200)})
    assert damaged["stored"]["removed"] == 0
    assert site.stored("MedicationAdministration", dose["id"])
    row = site.rows()["i-3"]
    assert _verdict(row) == _verdict(first) and row["eligible_from"] == "2027-06-10"
    assert "1 record(s) not found in this read are kept" in damaged["warnings"][0]


def test_a_result_read_again_from_a_split_bulk_file_is_kept_when_that_file_is_cut(
    tmp_path: Path,
) -> None:
    """The same with a Bulk export: Observation.ndjson split into Observation_1.ndjson.gz and
    Observation_2.ndjson (the same records) one night, the second's last line cut mid-record the
    next: the results read from it the night before (origins still naming Observation.ndjson)
    were dropped. Now they stay as last read."""
    charts = [chart(f"h-{n}")[1] for n in range(1, 5)]
    by_type: dict[str, list[Res]] = {}
    for r in (r for records in charts for r in records):
        by_type.setdefault(r["resourceType"], []).append(r)
    obs = by_type.pop("Observation")
    files = {f"{t}.ndjson": ndjson(rs) for t, rs in by_type.items()}
    half = len(obs) // 2
    split = {
        "Observation_1.ndjson.gz": ndjson(obs[:half]),
        "Observation_2.ndjson": ndjson(obs[half:]),
    }
    site = Nights(tmp_path)
    site.night({**files, "Observation.ndjson": ndjson(obs)})
    first = {pid: _verdict(row) for pid, row in site.rows().items()}
    site.night({**files, **split})
    second = site.night(
        {**files, **split, "Observation_2.ndjson": cut(split["Observation_2.ndjson"], -40)}
    )
    assert second["stored"]["removed"] == 0
    assert all(site.stored("Observation", r["id"]) for r in obs)
    assert {pid: _verdict(row) for pid, row in site.rows().items()} == first
