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
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from test_reliability_support import write_config

from cohort.config import load_config
from cohort.extract.census_data import CensusEntry
from cohort.model import Code
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

    def side(self, *pids: str) -> dict[str, tuple[list[date], list[date | None], dict[str, int],
                                                   dict[str, date]]]:  # fmt: skip
        with Store(self.root / "store.db") as store:
            found = store.side_facts("s", pids)
        return {p: (sorted(d), sorted(m, key=str), c, t) for p, (d, m, c, t) in found.items()}

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


def _summarised_nights(tmp_path: Path) -> tuple[Nights, dict[str, bytes], dict[str, Any]]:
    """Night 1: a patient whose only medication record is one no concept maps (lisinopril), and
    one whose newest record is an unmapped vital, each record in its own file."""
    med, _ = chart("g-med")
    med.drop("hcq")
    med_records = med.resources()
    lisinopril = med.med_statement(None, LISINOPRIL, start=-600)
    vitals, vital_records = chart("g-ls")
    heart_rate = vitals.obs(None, HEART_RATE, -2, {"valueQuantity": {"value": 70, "unit": "/min"}})
    files = {
        "g-med.json": bundle(med_records),
        "g-med-meds.json": bundle([lisinopril]),
        "g-ls.json": bundle(vital_records),
        "g-ls-vitals.json": bundle([heart_rate]),
    }
    site = Nights(tmp_path)
    report = site.night(files)
    assert report["summarised"] == {"MedicationStatement": 1, "Observation": 1}
    return site, files, report


def test_summaries_of_a_damaged_file_are_kept_as_last_read(tmp_path: Path) -> None:
    """Records summarised at read time (not stored) were forgotten when their file was damaged
    on a later night: the patient whose only medication record was summarised went 'excluded'
    -> 'possible' ("no medication records at all"), the other's last_seen fell back from the
    vital's date to an older record's. Now the previous read's summaries stay, as the stored
    records do, until a read of every file whole."""
    site, files, _ = _summarised_nights(tmp_path)
    rows, side, census = site.rows(), site.side("g-med", "g-ls"), site.census()
    assert rows["g-med"]["tier"] == "excluded" and rows["g-med"]["background_therapy"] == "fail"
    assert rows["g-ls"]["last_seen"] == (AS_OF - timedelta(days=2)).isoformat()
    damaged = {**files}
    for name in ("g-med-meds.json", "g-ls-vitals.json"):
        damaged[name] = cut(files[name], len(files[name]) // 2)
    for _ in range(2):  # (a second damaged night keeps them too, without adding rows)
        report = site.night(damaged)
        assert "2 file(s) not read whole" in report["warnings"][0]
        assert {p: _verdict(r) for p, r in site.rows().items()} == {
            p: _verdict(r) for p, r in rows.items()
        }
        assert site.side("g-med", "g-ls") == side and site.census() == census
        assert site.side_rows() == 2
    # a read of every file whole is the truth again: the vital's file is gone, so is its date
    del files["g-ls-vitals.json"]
    site.night(files)
    assert site.rows()["g-ls"]["last_seen"] < rows["g-ls"]["last_seen"]
    assert "g-ls" not in site.side("g-ls")


def test_a_carried_census_adds_only_what_the_read_lacks(tmp_path: Path) -> None:
    """Per patient the date tokens the read did not find again; per code element the entries it
    has none of (one it has keeps its own counts: coverage would count a code twice)."""

    def entry(code: str, records: int) -> tuple[Any, ...]:
        codes = (Code("http://loinc.org", code, ""),)
        return CensusEntry("Observation", codes, "", records, {"p1"}).to_row()

    with Store(tmp_path / "s.sqlite") as store:
        gen = store.begin_census("s", "src")
        last = [("p1", "2026-01-01,m2025-01-01"), ("p2", "2026-02-02")]
        store.add_census("s", "src", gen, last, [entry("8867-4", 5), entry("8310-5", 2)])
        store.commit_census("s", "src", gen)
        gen = store.begin_census("s", "src")
        store.add_census("s", "src", gen, [("p1", "2026-01-01,2026-03-03")], [entry("8867-4", 3)])
        store.carry_census("s", "src", gen)
        store.commit_census("s", "src", gen)
        assert store.side_facts("s", ["p1", "p2"]) == {
            "p1": ([date(2026, 1, 1), date(2026, 3, 3)], [date(2025, 1, 1)], {}, {}),
            "p2": ([date(2026, 2, 2)], [], {}, {}),
        }
        rows = store.census_rows("s")
        assert sorted((json.loads(r[1])[0][1], r[3]) for r in rows) == [
            ("8310-5", 2),
            ("8867-4", 3),
        ]


def test_carrying_a_large_census_is_not_quadratic(tmp_path: Path) -> None:
    """A damaged night carries the census over in time linear in its rows: 615 Synthea patients
    (28765 census rows) took 81 s of a 86 s read, a pair-wise scan of both generations."""

    def entry(i: int) -> tuple[Any, ...]:
        codes = (Code("http://loinc.org", f"{i}-0", ""),)
        return CensusEntry("Observation", codes, "", 1, {"p1"}).to_row()

    n = 3000
    with Store(tmp_path / "s.sqlite") as store:
        gen = store.begin_census("s", "src")
        store.add_census("s", "src", gen, [("p1", "2026-01-01")], [entry(i) for i in range(n)])
        store.commit_census("s", "src", gen)
        gen = store.begin_census("s", "src")
        # tonight's read found all but the last code element again
        store.add_census("s", "src", gen, [("p1", "2026-01-01")], [entry(i) for i in range(n - 1)])
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        # sqlite virtual-machine instructions, in thousands: deterministic, unlike a timing
        store._db.set_progress_handler(count, 1000)
        store.carry_census("s", "src", gen)
        store._db.set_progress_handler(None, 0)
        store.commit_census("s", "src", gen)
        codes = sorted(json.loads(r[1])[0][1] for r in store.census_rows("s"))
    # every code element once: the one the read lacked carried, none twice
    assert codes == sorted(f"{i}-0" for i in range(n))
    # a pair-wise scan is n * n = 9 million row visits (hundreds of thousands of steps here)
    assert steps[0] < 20 * n // 100
