"""A file of a type no criterion reads (Encounter, Claim in a Bulk folder) whose last line breaks
off mid-record: its lines are skipped unparsed, but the cut is said as for a type read."""

from __future__ import annotations

import gzip
import sqlite3
from datetime import date
from pathlib import Path

import orjson
from test_reliability_support import AS_OF, copy_site, write_config

from cohort.config import load_config
from cohort.model import PIPELINE_TYPES
from cohort.runner import run
from cohort.source.files import ReadStats, plan_units, read_path, read_unit, stream_units
from cohort.source.unparsed import BROKE_OFF

TYPES = set(PIPELINE_TYPES)


def _encounter(eid: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Encounter",
            "id": eid,
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": "Patient/p1"},
        }
    )


def _good_files(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1980-05-01"}
    (folder / "Patient.ndjson").write_bytes(orjson.dumps(patient) + b"\n")
    claim = {"resourceType": "Claim", "id": "c1", "patient": {"reference": "Patient/p1"}}
    (folder / "Claim.ndjson").write_bytes(orjson.dumps(claim) + b"\n")


def _cut_encounters(n: int = 3) -> bytes:
    """`n` whole Encounter lines and a fourth cut mid-record (a download that stopped)."""
    last = _encounter("e-last")
    return b"".join(_encounter(f"e{i}") + b"\n" for i in range(n)) + last[: len(last) // 2]


def _read(folder: Path) -> tuple[list[str], ReadStats]:
    stats = ReadStats()
    ids = [res["id"] for res, _ in read_path(folder, stats, types=TYPES)]
    return ids, stats


def test_a_cut_short_encounter_file_is_said_as_a_read_type_is(tmp_path: Path) -> None:
    folder = tmp_path / "bulk"
    _good_files(folder)
    (folder / "Encounter.ndjson").write_bytes(_cut_encounters())
    ids, stats = _read(folder)
    assert ids == ["p1"]
    # the same file issue and "not read whole" as a cut Patient.ndjson, and nothing else
    assert [(i.origin, i.reason) for i in stats.issues] == [("Encounter.ndjson", BROKE_OFF)]
    assert stats.partial == ["Encounter.ndjson"]
    # its lines are still types not read, not rejected records (none is parsed but the last)
    assert stats.skipped_types == {"Encounter": 4, "Claim": 1}
    assert not stats.rejected


def test_a_cut_short_read_type_gives_the_same_file_issue(tmp_path: Path) -> None:
    """(What the Encounter case mirrors: a Patient file cut the same way.)"""
    folder = tmp_path / "bulk"
    folder.mkdir()
    whole = orjson.dumps({"resourceType": "Patient", "id": "p1"})
    cut = orjson.dumps({"resourceType": "Patient", "id": "p2", "gender": "female"})
    (folder / "Patient.ndjson").write_bytes(whole + b"\n" + cut[:20])
    _, stats = _read(folder)
    assert ("Patient.ndjson", BROKE_OFF) in [(i.origin, i.reason) for i in stats.issues]
    assert stats.partial == ["Patient.ndjson"]


def test_whole_encounter_files_are_no_issue(tmp_path: Path) -> None:
    """A last line that is a whole record, with or without its line end, is a whole file; and
    a damaged line before the last is still not looked at (only the last line is checked)."""
    folder = tmp_path / "bulk"
    _good_files(folder)
    (folder / "Encounter.ndjson").write_bytes(_encounter("e1") + b"\n" + _encounter("e2"))
    broken_inside = _encounter("x1")[:30] + b"\n" + _encounter("x2") + b"\n"
    (folder / "Encounter_2.ndjson").write_bytes(broken_inside)
    ids, stats = _read(folder)
    assert ids == ["p1"]
    assert stats.issues == [] and stats.partial == []
    assert stats.skipped_types == {"Encounter": 4, "Claim": 1}


def test_a_cut_short_gzipped_encounter_file_is_said(tmp_path: Path) -> None:
    """A whole gzip stream of a cut NDJSON text (a server that compressed what it had)."""
    folder = tmp_path / "bulk"
    _good_files(folder)
    (folder / "Encounter.ndjson.gz").write_bytes(gzip.compress(_cut_encounters()))
    ids, stats = _read(folder)
    assert ids == ["p1"]
    assert [(i.origin, i.reason) for i in stats.issues] == [("Encounter.ndjson.gz", BROKE_OFF)]
    assert stats.partial == ["Encounter.ndjson.gz"]


def _read_in_units(folder: Path, chunk: int) -> ReadStats:
    total = ReadStats()
    for unit in stream_units(plan_units(folder, chunk), chunk):
        part = ReadStats()
        list(read_unit(unit, part, types=TYPES))
        total.merge(part)
    return total


def test_a_cut_short_encounter_file_read_in_pieces_is_said_once(tmp_path: Path) -> None:
    """Read by several processes (byte ranges of a plain file, decompressed pieces of a gzip
    one): the cut is said once, by the piece holding the last line; whole files say nothing."""
    folder = tmp_path / "bulk"
    _good_files(folder)
    lines = 400
    (folder / "Encounter.ndjson").write_bytes(_cut_encounters(lines))
    (folder / "Encounter_2.ndjson.gz").write_bytes(gzip.compress(_cut_encounters(lines)))
    whole = b"".join(_encounter(f"w{i}") + b"\n" for i in range(lines))
    (folder / "Encounter_3.ndjson").write_bytes(whole)
    (folder / "Encounter_4.ndjson.gz").write_bytes(gzip.compress(whole))
    chunk = 4096
    assert len([u for u in stream_units(plan_units(folder, chunk), chunk)]) > 10
    stats = _read_in_units(folder, chunk)
    assert sorted((i.origin, i.reason) for i in stats.issues) == [
        ("Encounter.ndjson", BROKE_OFF),
        ("Encounter_2.ndjson.gz", BROKE_OFF),
    ]
    assert sorted(stats.partial) == ["Encounter.ndjson", "Encounter_2.ndjson.gz"]
    assert stats.skipped_types == {"Encounter": 4 * lines + 2, "Claim": 1}


def _procedures(out: Path) -> int:
    with sqlite3.connect(out / ".cohort" / "store.sqlite") as db:
        sql = "SELECT COUNT(*) FROM resources WHERE type='Procedure'"
        return int(db.execute(sql).fetchone()[0])


def test_a_run_warns_and_drops_nothing_when_an_encounter_download_stopped(
    tmp_path: Path,
) -> None:
    """The night's download stopped inside Encounter.ndjson, before Procedure.ndjson came: the
    run said nothing and the snapshot sweep dropped every stored Procedure. Now run.json warns
    of a file not read whole, names it in its issues, and the Procedures stay."""
    src = copy_site("amr", tmp_path / "feed")
    (src / "Encounter.ndjson").write_bytes(b"".join(_encounter(f"e{i}") + b"\n" for i in range(5)))
    config = write_config(tmp_path, {"amr": str(src)})
    out = tmp_path / "out"
    day = date.fromisoformat(AS_OF)
    first = run(load_config(config), day, out)
    procedures = _procedures(out)
    assert first["warnings"] == [] and procedures > 0
    (src / "Encounter.ndjson").write_bytes(_cut_encounters())
    (src / "Procedure.ndjson").unlink()
    report = run(load_config(config), day, out)
    site = report["sites"]["amr"]
    assert [w for w in report["warnings"] if "not read whole (first: Encounter.ndjson" in w]
    assert {"origin": "Encounter.ndjson", "reason": BROKE_OFF} in site["issues"]
    assert site["stored"]["removed"] == 0 and _procedures(out) == procedures
