"""Tests of the SQLite store: idempotent versioned upserts, grouping, marks, runs, modes, crashes."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cohort.errors import StoreError
from cohort.source.files import ReadStats, read_path
from cohort.store import PutStats, Store, reference_id

DATA = Path(__file__).parent / "data" / "files"
REPO = Path(__file__).resolve().parents[1]


def obs(rid: str, patient: str, value: float = 1.0, **meta: str) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": value},
    }
    if meta:
        r["meta"] = dict(meta)
    return r


def items(*rs: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    return [(r, f"test:{i + 1}") for i, r in enumerate(rs)]


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(tmp_path / "db" / "cohort.sqlite") as s:
        yield s


def test_file_and_folder_modes(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "store.sqlite"
    with Store(path) as s:
        s.put_resources("a", items(obs("1", "p")), source="t")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_same_data_twice_is_unchanged(store: Store) -> None:
    stats = ReadStats()
    first = store.put_resources("s", read_path(DATA, stats), source=str(DATA))
    assert first.inserted > 0 and first.updated == 0
    second = store.put_resources("s", read_path(DATA, ReadStats()), source=str(DATA))
    # the records read, and the stubs of those refused that have an id (source.refused)
    total = len(list(read_path(DATA, ReadStats())))
    assert total > sum(stats.read.values())
    assert second == PutStats(inserted=0, updated=0, unchanged=total)
    # p1 and p2 appear both in a Bundle and in Patient.ndjson: equal content is 'unchanged'
    assert (first.inserted, first.updated, first.unchanged) == (total - 2, 0, 2)
    # inserted by type, which the snapshot guard weighs a read's losses against
    assert sum(first.new.values()) == first.inserted and second.new == {}


def test_newer_version_replaces_older_does_not(store: Store) -> None:
    assert (
        store.put_resources("s", items(obs("1", "p", 1, versionId="2")), source="t").inserted == 1
    )
    st = store.put_resources("s", items(obs("1", "p", 9, versionId="1")), source="t")
    assert st == PutStats(0, 0, 0, older=1)
    assert store.get("s", "Observation", "1")["valueQuantity"]["value"] == 1  # type: ignore[index]
    st = store.put_resources("s", items(obs("1", "p", 3, versionId="10")), source="t")
    assert st.updated == 1  # numeric compare: "10" > "2"
    assert store.get("s", "Observation", "1")["valueQuantity"]["value"] == 3  # type: ignore[index]
    st = store.put_resources("s", items(obs("1", "p", 3, versionId="10")), source="t")
    assert st.unchanged == 1


def test_last_updated_compare_when_versions_not_numeric(store: Store) -> None:
    v1 = obs("1", "p", 1, versionId="a", lastUpdated="2024-01-01T12:00:00+02:00")
    v0 = obs("1", "p", 0, versionId="b", lastUpdated="2024-01-01T11:00:00Z")  # later instant!
    old = obs("1", "p", 5, versionId="c", lastUpdated="2023-12-31T23:00:00Z")
    store.put_resources("s", items(v1), source="t")
    assert store.put_resources("s", items(v0), source="t").updated == 1
    assert store.put_resources("s", items(old), source="t").older == 1
    assert store.get("s", "Observation", "1")["valueQuantity"]["value"] == 0  # type: ignore[index]


def test_a_leap_second_last_updated_compares_as_its_instant(store: Store) -> None:
    """lastUpdated at a leap second (23:59:60Z, a valid FHIR instant that datetime refuses) is
    the second after 23:59:59: compared as an instant, not as text ('2016-12-31T23:59:60Z'
    sorts before '2017-01-01T00:30:00+01:00' as text, though that is 23:30Z, half an hour
    earlier)."""
    earlier = obs("1", "p", 1, versionId="a", lastUpdated="2017-01-01T00:30:00+01:00")
    leap = obs("1", "p", 2, versionId="b", lastUpdated="2016-12-31T23:59:60Z")
    store.put_resources("s", items(earlier), source="t")
    assert store.put_resources("s", items(leap), source="t").updated == 1
    assert store.put_resources("s", items(earlier), source="t").older == 1
    assert store.get("s", "Observation", "1")["valueQuantity"]["value"] == 2  # type: ignore[index]


@pytest.mark.parametrize("odd", ["\u00b2", "\u2460", "\u0663", "9" * 5000])  # ², ①, ٣, long
def test_version_ids_of_non_ascii_digits_are_not_counters(store: Store, odd: str) -> None:
    """isdigit() is true for "²" and "①" but int() refuses them, as it refuses more than 4,300
    digits (found by fuzzing and review: the store crashed); such a versionId is no counter,
    and lastUpdated decides."""
    v1 = obs("1", "p", 1, versionId="1", lastUpdated="2024-01-01T00:00:00Z")
    v2 = obs("1", "p", 2, versionId=odd, lastUpdated="2024-02-01T00:00:00Z")
    store.put_resources("s", items(v1), source="t")
    assert store.put_resources("s", items(v2), source="t").updated == 1
    assert store.get("s", "Observation", "1")["valueQuantity"]["value"] == 2  # type: ignore[index]


def test_no_meta_uses_hash(store: Store) -> None:
    store.put_resources("s", items(obs("1", "p", 1)), source="t")
    assert store.put_resources("s", items(obs("1", "p", 1)), source="t").unchanged == 1
    # key order does not matter for the content hash
    r = obs("1", "p", 1)
    reordered = dict(reversed(list(r.items())))
    assert store.put_resources("s", items(reordered), source="t").unchanged == 1
    assert store.put_resources("s", items(obs("1", "p", 2)), source="t").updated == 1


def test_same_content_in_other_bytes_is_unchanged_in_one_batch_and_across_batches(
    store: Store,
) -> None:
    r = obs("1", "p", 1)
    spaced = {**r, "valueQuantity": {"value": 1}}  # the same numbers, keys in another order
    spaced = dict(reversed(list(spaced.items())))
    st = store.put_resources("s", items(r, spaced, obs("1", "p", 2)), source="t")
    assert (st.inserted, st.unchanged, st.updated) == (1, 1, 1)
    # rows hashed by an earlier version of the store (another hash of the same content)
    store._db.execute("UPDATE resources SET hash = 'older-hash'")
    assert store.put_resources("s", items(obs("1", "p", 2)), source="t").unchanged == 1
    # ... which then takes the hash of the bytes just read, so the next equal read is fast
    assert store._db.execute("SELECT hash FROM resources").fetchone()[0] != "older-hash"
    assert store.put_resources("s", items(obs("1", "p", 2)), source="t").unchanged == 1
    assert store.put_resources("s", items(obs("1", "p", 3)), source="t").updated == 1
    assert store.get("s", "Observation", "1")["valueQuantity"]["value"] == 3  # type: ignore[index]


def test_iter_by_patient_seeks_each_listed_patient(store: Store) -> None:
    # A chunk of ids must be looked up id by id in the patient index: a plan that walks the
    # whole index per chunk and tests each entry costs O(store) per chunk (O(n^2) in all).
    store.put_resources("s", items(obs("o1", "a"), obs("o2", "b")), source="t")
    sql: list[str] = []
    store._db.set_trace_callback(sql.append)
    assert [p for p, _ in store.iter_by_patient("s", patient_ids=["b"])] == ["b"]
    store._db.set_trace_callback(None)
    query = next(q for q in sql if q.startswith("SELECT patient, json"))
    plan = " ".join(str(r[3]) for r in store._db.execute("EXPLAIN QUERY PLAN " + query))
    assert "patient=?" in plan, plan


def test_sites_are_separate(store: Store) -> None:
    store.put_resources("a", items(obs("1", "p")), source="t")
    assert store.put_resources("b", items(obs("1", "p")), source="t").inserted == 1
    assert store.count_by_type("a") == {"Observation": 1}


def test_iter_by_patient_grouping_and_filters(store: Store) -> None:
    pats = [{"resourceType": "Patient", "id": p} for p in ("b", "a", "c")]
    rs = [*pats, obs("o1", "b"), obs("o2", "a"), obs("o3", "https://x/fhir/Patient/c/_history/3")]
    rs.append({"resourceType": "Immunization", "id": "i1", "patient": {"reference": "Patient/a"}})
    rs.append({"resourceType": "Medication", "id": "m1"})  # no patient
    store.put_resources("s", items(*rs), source="t", batch_size=2)
    groups = list(store.iter_by_patient("s"))
    assert [g[0] for g in groups] == ["a", "b", "c"]
    assert sorted(r["resourceType"] for r in groups[0][1]) == [
        "Immunization",
        "Observation",
        "Patient",
    ]
    only = list(store.iter_by_patient("s", patient_ids=["c", "a", "zz"], types=["Observation"]))
    assert [(p, [r["id"] for r in rs]) for p, rs in only] == [("a", ["o2"]), ("c", ["o3"])]
    many = [f"x{i}" for i in range(50_000)] + ["b"]  # beyond SQLite's variable limit
    assert [p for p, _ in store.iter_by_patient("s", patient_ids=many)] == ["b"]
    assert store.patient_ids("s") == ["a", "b", "c"]
    assert [r["id"] for r in store.iter_type("s", "Patient")] == ["a", "b", "c"]
    assert store.count_by_type("s") == {
        "Immunization": 1,
        "Medication": 1,
        "Observation": 3,
        "Patient": 3,
    }
    store.drop("s", [("Observation", "o3")])
    assert store.get("s", "Observation", "o3") is None
    assert store.get("s", "Medication", "m1") == {"resourceType": "Medication", "id": "m1"}


def test_row_records_source_origin_patient(store: Store, tmp_path: Path) -> None:
    store.put_resources("s", read_path(DATA / "bundles", ReadStats()), source="/data/x")
    db = sqlite3.connect(tmp_path / "db" / "cohort.sqlite")
    row = db.execute(
        "SELECT patient, source, origin FROM resources WHERE type='Immunization' AND id='i1'"
    ).fetchone()
    assert row == ("p3", "/data/x", "collection.json#entry[1]")
    db.close()


def test_marks(store: Store) -> None:
    assert store.get_mark("s", "since") is None
    store.set_mark("s", "since", "2024-01-01T00:00:00Z")
    store.set_mark("s", "since", "2024-02-01T00:00:00Z")
    store.set_mark("t", "since", "x")
    assert store.get_mark("s", "since") == "2024-02-01T00:00:00Z"
    assert store.get_mark("t", "since") == "x"


def test_runs_history(store: Store) -> None:
    for i in range(5):
        store.add_run({"started": f"2024-01-0{i + 1}T00:00:00Z", "n": i})
    assert [r["n"] for r in store.runs()] == [4, 3, 2, 1, 0]
    assert [r["n"] for r in store.runs(limit=2)] == [4, 3]


def test_reference_id() -> None:
    assert reference_id("Patient/1") == "1"
    assert reference_id("https://x.org/fhir/Patient/abc") == "abc"
    assert reference_id("Patient/1/_history/2") == "1"
    assert reference_id("http://x/fhir/Patient/1/_history/2") == "1"
    assert reference_id("Group/1") is None
    assert reference_id("urn:uuid:1234") is None
    assert reference_id("#contained") is None
    assert reference_id("Medication/m1", "Medication") == "m1"


def test_open_errors_are_store_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="file"):
        Store(tmp_path / "file" / "db.sqlite")
    bad = tmp_path / "garbage.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="garbage.sqlite"):
        Store(bad)


def test_resource_without_id_is_refused_and_batch_rolled_back(store: Store) -> None:
    with pytest.raises(StoreError):
        store.put_resources("s", items(obs("1", "p"), {"resourceType": "Patient"}), source="t")
    assert store.count_by_type("s") == {}


_WRITER = """
import sys
from pathlib import Path
from cohort.store import Store

def gen():
    i = 0
    while True:
        i += 1
        yield ({"resourceType": "Observation", "id": str(i), "status": "final",
                "code": {"text": "x" * 200}, "subject": {"reference": "Patient/p%d" % (i % 97)}}, "w")

with Store(Path(sys.argv[1])) as s:
    s.put_resources("s", gen(), source="w", batch_size=int(sys.argv[2]))
"""


def test_sigkill_mid_write_leaves_whole_batches(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite"
    batch = 500
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(batch)], env=env)
    try:
        deadline = time.monotonic() + 30
        n = 0
        while time.monotonic() < deadline and n < 3 * batch:
            time.sleep(0.05)
            if path.exists():
                try:
                    db = sqlite3.connect(path, timeout=1)
                    n = db.execute("SELECT COUNT(*) FROM resources").fetchone()[0]
                    db.close()
                except sqlite3.OperationalError:
                    n = 0
        assert n >= 3 * batch, "writer did not commit in time"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with Store(path) as s:
        count = s.count_by_type("s")["Observation"]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    assert count >= n and count % batch == 0


def test_fresh_load_inserts_and_falls_back_to_upserts_on_a_repeated_key(store: Store) -> None:
    from cohort.store import prepare_row

    first = [prepare_row(obs(f"o{i}", "a", versionId="1"), f"f:{i}") for i in range(5)]
    stats = PutStats()
    store.put_rows("s", first, source="src", stats=stats, batch_size=2, fresh=True)
    assert stats.inserted == 5 and store.count_by_type("s") == {"Observation": 5}
    # the same record again (e.g. in a second file) while the caller still believes it fresh
    newer = prepare_row(obs("o1", "a", 9.0, versionId="2"), "g:1")
    older = prepare_row(obs("o2", "a", 0.5, versionId="0"), "g:2")
    again = PutStats()
    store.put_rows("s", [newer, older], source="src", stats=again, fresh=True)
    assert (again.inserted, again.updated, again.older) == (0, 1, 1)
    assert store.get("s", "Observation", "o1")["valueQuantity"]["value"] == 9.0
    assert store.get("s", "Observation", "o2")["valueQuantity"]["value"] == 1.0


def test_fresh_load_with_a_key_twice_in_one_batch_keeps_the_newer_copy(store: Store) -> None:
    """A record twice in one batch of a first load (two files of one export): the primary key
    refuses the plain inserts, the batch is rolled back and redone as upserts: one row, the
    newer version, whichever came first; the batch's other records all stored once."""
    from cohort.store import prepare_row

    newer = prepare_row(obs("o1", "a", 9.0, versionId="2"), "g:1")
    older = prepare_row(obs("o1", "a", 0.5, versionId="1"), "f:1")
    others = [prepare_row(obs(f"x{i}", "a", versionId="1"), f"f:{i}") for i in range(3)]
    stats = PutStats()
    store.put_rows("s", [others[0], newer, others[1], older, others[2]], source="src",
                   stats=stats, fresh=True)
    assert store.count_by_type("s") == {"Observation": 4}
    assert store.get("s", "Observation", "o1")["valueQuantity"]["value"] == 9.0
    assert (stats.inserted, stats.older) == (4, 1)


def _patient_index(store: Store) -> list[Any]:
    return store._db.execute(
        "SELECT sql FROM sqlite_master WHERE type='index' AND name='resources_patient'"
    ).fetchall()


def test_first_load_builds_the_patient_index_at_its_end(store: Store, tmp_path: Path) -> None:
    from cohort.store import prepare_row

    with store.first_load():
        assert _patient_index(store) == []  # a new store: built once the rows are in
        rows = [prepare_row(obs(f"o{i}", f"p{i % 2}"), f"f:{i}") for i in range(4)]
        store.put_rows("s", rows, source="src", stats=PutStats(), fresh=True)
    assert len(_patient_index(store)) == 1
    assert [pid for pid, _ in store.iter_by_patient("s", ["p1"])] == ["p1"]
    # a store with rows keeps its index during a load
    with store.first_load():
        assert len(_patient_index(store)) == 1
    # a load that fails still leaves it, and so does one killed midway (the next open)
    other = Store(tmp_path / "other.sqlite")
    with pytest.raises(RuntimeError), other.first_load():
        raise RuntimeError("read failed")
    assert len(_patient_index(other)) == 1
    other._db.execute("DROP INDEX resources_patient")
    other.close()
    with Store(tmp_path / "other.sqlite") as again:
        assert len(_patient_index(again)) == 1


def test_first_load_builds_the_patient_index_when_asked_and_rows_after_go_in_through_it(
    store: Store,
) -> None:
    """The index may be built before the load ends (while other processes read the last
    units): the rows written after it are in it, and it is built once."""
    from cohort.store import prepare_row

    with store.first_load() as index_now:
        first = [prepare_row(obs(f"o{i}", f"p{i % 2}"), f"f:{i}") for i in range(4)]
        store.put_rows("s", first, source="src", stats=PutStats(), fresh=True)
        assert _patient_index(store) == []
        index_now()
        assert len(_patient_index(store)) == 1
        later = [prepare_row(obs(f"o{i}", f"p{i % 3}"), f"f:{i}") for i in range(4, 7)]
        store.put_rows("s", later, source="src", stats=PutStats(), fresh=True)
        index_now()  # (built already: nothing)
    assert len(_patient_index(store)) == 1
    assert store._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    got = {pid: sorted(r["id"] for r in rs) for pid, rs in store.iter_by_patient("s", ["p0", "p1", "p2"])}
    # o0..o3 by i % 2, o4..o6 by i % 3
    assert got == {"p0": ["o0", "o2", "o6"], "p1": ["o1", "o3", "o4"], "p2": ["o5"]}
    # a store with rows keeps its index, and asking for it changes nothing
    with store.first_load() as index_now:
        index_now()
    assert len(_patient_index(store)) == 1


def test_backfill_leaves_every_record_in_the_store_file(tmp_path: Path) -> None:
    """What the WAL holds is copied into the store file while the store stays open (and
    readable): the file alone then has every record."""
    import shutil

    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.put_resources("s", items(*(obs(f"o{i}", "p1") for i in range(50))), source="src")
        reader = Store(path)  # (a reader open meanwhile, as the evaluation's are)
        try:
            assert len(list(reader.iter_by_patient("s", ["p1"]))[0][1]) == 50
            shutil.copy(path, tmp_path / "before.sqlite")
            store.backfill()
            shutil.copy(path, tmp_path / "after.sqlite")
            assert len(list(reader.iter_by_patient("s", ["p1"]))[0][1]) == 50
        finally:
            reader.close()

    def stored(copy: Path) -> int:
        db = sqlite3.connect(copy)  # (the file alone: no WAL beside it)
        try:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name='resources'").fetchone():
                return int(db.execute("SELECT count(*) FROM resources").fetchone()[0])
            return 0
        finally:
            db.close()

    assert stored(tmp_path / "before.sqlite") == 0  # (they were in the WAL only, even the table)
    assert stored(tmp_path / "after.sqlite") == 50


def test_a_text_zero_is_stored_as_text_and_none_as_null(store: Store) -> None:
    """INSERT binds None as 0 and NULLIF(?, 0) makes it NULL again: a versionId, lastUpdated or
    patient "0" (text) never equals the integer and stays "0", on the insert and upsert paths."""
    from cohort.store import prepare_row

    zero = prepare_row(obs("z", "0", versionId="0", lastUpdated="0"), "f:1")
    bare = prepare_row({"resourceType": "Observation", "id": "n", "status": "final"}, "f:2")
    for site, fresh in (("a", True), ("b", False)):
        store.put_rows(site, [zero, bare], source="src", stats=PutStats(), fresh=fresh)
        rows = store._db.execute(
            "SELECT id, version, last_updated, patient FROM resources WHERE site=? ORDER BY id",
            (site,),
        ).fetchall()
        assert rows == [("n", None, None, None), ("z", "0", "0", "0")]
