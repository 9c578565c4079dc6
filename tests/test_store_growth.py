"""A store read night after night stays what a fresh read of the last night's data makes
(docs/operations.md "Store size over time"): no census generation, staged output or WAL piles
up, and the run history gains one row a night. bench/soak.py runs the same over 60 nights."""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_reliability_support import write_config

from cohort.config import load_config
from cohort.runner import run
from cohort.samples.fhir import Builder, birth_date
from cohort.samples.scenarios import base_patient

AS_OF = date(2026, 11, 25)
Res = dict[str, Any]
TABLES = ("resources", "census", "side_dates", "marks")


def chart(pid: str) -> list[Res]:
    b = Builder(random.Random(pid), AS_OF, "s", pid)
    b.patient.update({"gender": "female", "birthDate": birth_date(AS_OF, 35, 100)})
    base_patient(b)
    return b.resources()


def heart_rate(pid: str, n: int) -> Res:
    """A record no criterion reads (summarised: census and side_dates, not resources)."""
    return {"resourceType": "Observation", "id": f"{pid}-hr{n}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": (AS_OF - timedelta(days=n)).isoformat(),
            "valueQuantity": {"value": 70, "unit": "/min"}}  # fmt: skip


def write(folder: Path, records: list[Res], split: bool) -> None:
    """A whole Bulk-style export; `split`: Observation in two files, as exports number them."""
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    by: dict[str, list[bytes]] = {}
    for r in records:
        by.setdefault(r["resourceType"], []).append(json.dumps(r).encode() + b"\n")
    for t, lines in by.items():
        if t == "Observation" and split:
            (folder / "Observation_1.ndjson").write_bytes(b"".join(lines[::2]))
            (folder / "Observation_2.ndjson").write_bytes(b"".join(lines[1::2]))
        else:
            (folder / f"{t}.ndjson").write_bytes(b"".join(lines))


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        out = {t: int(con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}
        out["runs"] = int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        out["generations"] = int(
            con.execute(
                "SELECT COUNT(*) FROM (SELECT DISTINCT site, source, gen FROM census"
                " UNION SELECT DISTINCT site, source, gen FROM side_dates)"
            ).fetchone()[0]
        )
    return out


def lists(out: Path) -> tuple[list[list[str]], str]:
    rows = list(csv.reader(io.StringIO((out / "s" / "candidates.csv").read_text("utf-8-sig"))))
    i = rows[0].index("change")
    return [r[:i] + r[i + 1 :] for r in rows], (out / "s" / "evidence.csv").read_text("utf-8-sig")


@pytest.mark.parametrize("split_last", [False, True], ids=["one-file", "split"])
def test_four_nights_leave_the_store_a_fresh_read_makes(tmp_path: Path, split_last: bool) -> None:
    data, nightly, fresh = tmp_path / "data", tmp_path / "nightly", tmp_path / "fresh"
    nightly.mkdir()
    people = {f"g-{n}": chart(f"g-{n}") for n in range(1, 4)}
    extra: list[Res] = []
    for night in range(4):
        if night:
            # each night: a record no criterion reads for one patient, one deleted, a new patient
            extra.append(heart_rate("g-1", night))
            if night == 2:  # deleted: night 1's heart rate, and a stored result of g-2
                extra.pop(0)
                gone = next(r for r in people["g-2"] if r["resourceType"] == "Observation")
                people["g-2"] = [r for r in people["g-2"] if r is not gone]
            people[f"g-new{night}"] = chart(f"g-new{night}")
        records = [r for rs in people.values() for r in rs] + extra
        write(data, records, split=night == 1 or (split_last and night == 3))
        cfg = write_config(nightly, {"s": str(data)}) if night == 0 else nightly / "cohort.toml"
        report = run(load_config(cfg), AS_OF + timedelta(days=night), nightly / "out")
        assert report["status"] == "success"
    fresh.mkdir()
    run(load_config(write_config(fresh, {"s": str(data)})), AS_OF + timedelta(days=3), fresh / "out")
    store, new = nightly / "out" / ".cohort" / "store.sqlite", fresh / "out" / ".cohort"
    # the WAL is checkpointed and removed on close (before a read-only look leaves one)
    assert not store.with_name("store.sqlite-wal").exists()
    night4, once = counts(store), counts(new / "store.sqlite")
    # 6 charts (g-2's less one result) and 2 heart rates: the same rows as a fresh read
    assert {t: night4[t] for t in TABLES} == {t: once[t] for t in TABLES}
    assert night4["generations"] == once["generations"] == 1
    assert (night4["runs"], once["runs"]) == (4, 1)
    assert lists(nightly / "out") == lists(fresh / "out")
    # no staged list is left beside the lists
    left = [p.name for p in (nightly / "out").rglob("*") if ".staged" in p.name or ".tmp" in p.name]
    assert left == []
