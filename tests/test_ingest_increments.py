"""`snapshot = false` (a folder of increments): a newer copy of a stored record recoded to a code
no mapping has is only summarised, and its tombstone removes the stored older copy."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest

import cohort.ingest
import cohort.reading as reading
from cohort.config import Config, SiteConfig, default_config
from cohort.extract import Triage
from cohort.ingest import Loaded, ingest_files
from cohort.reading import _Done
from cohort.source.files import ReadStats
from cohort.store import Store, Tombstones

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
PLATELETS = {"coding": [{"system": LOINC, "code": "777-3"}]}  # read by the criteria
HEART_RATE = {"coding": [{"system": LOINC, "code": "8867-4"}]}  # read by none
SLE = {"coding": [{"system": SNOMED, "code": "55464009"}]}
HYPERTENSION = {"coding": [{"system": SNOMED, "code": "38341003"}]}
HCQ = {"coding": [{"system": RXNORM, "code": "5521"}]}  # hydroxychloroquine
TOOTHPASTE = {"coding": [{"system": RXNORM, "code": "1000000"}]}
T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"
LOADED = Loaded.from_config(default_config())


def _obs(code: dict[str, Any], updated: str | None = None, **more: Any) -> dict[str, Any]:
    """Observation o1 of patient p1 (with a value, so the line handler samples it from the
    parsed record the first time: see _vitals)."""
    res = {"resourceType": "Observation", "id": "o1", "status": "final", "code": code,
           "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-01-05",
           "valueQuantity": {"value": 210, "unit": "10*3/uL", "code": "10*3/uL",
                             "system": "http://unitsofmeasure.org"}}  # fmt: skip
    if updated is not None:
        res["meta"] = {"lastUpdated": updated}
    return {**res, **more}


def _line_obs(updated: str | None = None, **more: Any) -> dict[str, Any]:
    """A heart-rate Observation o1 without a quantity, which the line handler summarises from
    its bytes (nothing the census samples from a parsed record)."""
    res = _obs(HEART_RATE, updated, **more)
    del res["valueQuantity"]
    return res


def _condition(code: dict[str, Any], updated: str | None = None) -> dict[str, Any]:
    res = {"resourceType": "Condition", "id": "c1", "code": code,
           "clinicalStatus": {"coding": [{"system":
               "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
           "subject": {"reference": "Patient/p1"}, "recordedDate": "2025-06-01"}  # fmt: skip
    if updated is not None:
        res["meta"] = {"lastUpdated": updated}
    return res


def _med(code: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    res = {"resourceType": "MedicationRequest", "id": "m1", "status": "active",
           "intent": "order", "medicationCodeableConcept": code,
           "subject": {"reference": "Patient/p1"}, "authoredOn": "2025-06-01"}  # fmt: skip
    if version is not None:
        res["meta"] = {"versionId": version}
    return res


def _ndjson(path: Path, *records: dict[str, Any]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def _bundle(path: Path, *records: dict[str, Any]) -> None:
    entries = [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(records)]
    path.write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "collection",
                                   "entry": entries}))  # fmt: skip


def _config(**kw: Any) -> Config:
    return dataclasses.replace(default_config(), **{"snapshot": False, "workers": 1, **kw})


def _ingest(folder: Path, store: Store, cfg: Config | None = None) -> dict[str, Any]:
    return ingest_files(SiteConfig("s", "S", str(folder)), cfg or _config(), store, LOADED)


def _ids(store: Store, rtype: str) -> list[str]:
    return [r["id"] for r in store.iter_type("s", rtype)]


@pytest.fixture
def offers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the records `Triage.offer` summarised (the parsed path)."""
    got: list[str] = []
    real = Triage.offer

    def spy(self: Triage, res: dict[str, Any]) -> bool:
        took = real(self, res)
        if took:
            got.append(res["id"])
        return took

    monkeypatch.setattr(Triage, "offer", spy)
    return got


def _recoded(folder: Path, path: str, when: str) -> None:
    """o1 recoded to heart rate (unmapped) at `when`, in a new increment read by `path`: from
    the NDJSON line's bytes, from the parsed line, or from a Bundle entry."""
    if path == "line":
        _ndjson(folder / "2026-03-01.ndjson", _line_obs(when))
    elif path == "parsed":
        _ndjson(folder / "2026-03-01.ndjson", _obs(HEART_RATE, when))
    else:
        _bundle(folder / "2026-03-01.json", _obs(HEART_RATE, when))


@pytest.mark.parametrize("path", ["line", "parsed", "bundle"])
def test_an_increment_recoding_a_stored_observation_removes_it(
    tmp_path: Path, path: str, offers: list[str]
) -> None:
    """Read 1 stores platelets o1 (T1); read 2 adds a file with o1 recoded to heart rate (T2):
    o1 is summarised and the stored copy goes. Read from an NDJSON line's bytes, from a parsed
    line and from a Bundle entry."""
    folder = tmp_path / "feed"
    folder.mkdir()
    _ndjson(folder / "2026-02-01.ndjson", _obs(PLATELETS, T1))
    with Store(tmp_path / "s.sqlite") as store:
        first = _ingest(folder, store)
        assert first["stored"]["inserted"] == 1 and _ids(store, "Observation") == ["o1"]
        _recoded(folder, path, T2)
        report = _ingest(folder, store)
        assert report["summarised"] == {"Observation": 1}
        assert report["stored"]["removed"] == 1
        assert store.get("s", "Observation", "o1") is None
        assert store.count_by_type("s") == {}
        # the census still dates the patient's record (last_seen)
        assert "p1" in store.side_dates("s", ["p1"])
    assert offers == ([] if path == "line" else ["o1"])  # the path the test means


@pytest.mark.parametrize("path", ["line", "parsed", "bundle"])
def test_an_older_recoded_copy_leaves_the_stored_record(
    tmp_path: Path, path: str, offers: list[str]
) -> None:
    """The recoded copy says it is older (T0 < T1): the stored copy is the current one."""
    folder = tmp_path / "feed"
    folder.mkdir()
    _ndjson(folder / "2026-02-01.ndjson", _obs(PLATELETS, T1))
    with Store(tmp_path / "s.sqlite") as store:
        _ingest(folder, store)
        _recoded(folder, path, T0)
        report = _ingest(folder, store)
        assert report["summarised"] == {"Observation": 1}
        assert report["stored"]["removed"] == 0
        kept = store.get("s", "Observation", "o1")
        assert kept is not None and kept["code"] == PLATELETS
    assert len(offers) == (0 if path == "line" else 1)


@pytest.mark.parametrize("path", ["line", "parsed"])
def test_a_later_file_of_the_same_read_recoding_a_record_removes_it(
    tmp_path: Path, path: str
) -> None:
    """Two files in one read, no meta: the copy read last counts. The later file recodes o1:
    gone (also when the store held nothing before, a first load). The other way round (the
    mapped copy read last) o1 is kept."""
    recoded = _line_obs() if path == "line" else _obs(HEART_RATE)
    folder = tmp_path / "feed"
    folder.mkdir()
    _ndjson(folder / "a.ndjson", _obs(PLATELETS))
    _ndjson(folder / "b.ndjson", recoded)
    with Store(tmp_path / "s.sqlite") as store:
        report = _ingest(folder, store)
        assert report["stored"]["removed"] == 1 and _ids(store, "Observation") == []
    _ndjson(folder / "a.ndjson", recoded)
    _ndjson(folder / "b.ndjson", _obs(PLATELETS))
    with Store(tmp_path / "t.sqlite") as store:
        report = _ingest(folder, store)
        assert report["stored"] == {"inserted": 1, "updated": 0, "unchanged": 0, "removed": 0}
        kept = store.get("s", "Observation", "o1")
        assert kept is not None and kept["code"] == PLATELETS


def test_copies_in_one_file_count_in_line_order(tmp_path: Path) -> None:
    """In one NDJSON file (one unit of the read): mapped, recoded, mapped again -> the last one
    is kept; mapped then recoded -> gone; a mapped copy older than the recoded one read after
    it -> gone; a newer mapped copy read before the recoded one -> kept."""
    folder = tmp_path / "feed"
    folder.mkdir()
    rows = [
        _obs(PLATELETS, id="a"), _line_obs(id="a"), _obs(PLATELETS, id="a", status="amended"),
        _obs(PLATELETS, id="b"), _line_obs(id="b"),
        _line_obs(T2, id="c"), _obs(PLATELETS, T1, id="c"),
        _obs(PLATELETS, T2, id="d"), _line_obs(T1, id="d"),
    ]  # fmt: skip
    _ndjson(folder / "x.ndjson", *rows)
    with Store(tmp_path / "s.sqlite") as store:
        report = _ingest(folder, store)
        assert sorted(_ids(store, "Observation")) == ["a", "d"]
        kept = store.get("s", "Observation", "a")
        assert kept is not None and kept["status"] == "amended"
        assert report["stored"]["removed"] == 2  # b and c, inserted first in this batch


def test_tombstones_are_applied_with_each_store_batch(tmp_path: Path) -> None:
    """Batches of 2 rows: a tombstone is weighed with its own batch, not held to the end, and
    still removes a copy stored by an earlier batch of the same read (once the read ends)."""
    folder = tmp_path / "feed"
    folder.mkdir()
    _ndjson(folder / "a.ndjson", *[_obs(PLATELETS, T1, id=f"o{i}") for i in range(6)])
    _ndjson(folder / "b.ndjson", *[_obs(PLATELETS, T1, id=f"q{i}") for i in range(6)])
    _ndjson(folder / "c.ndjson", _line_obs(T2, id="o1"), _line_obs(T0, id="o2"))
    written: list[int] = []
    real = Store.doomed

    def doomed(self: Store, site: str, tombs: list[Any]) -> list[tuple[str, str]]:
        written.append(len(tombs))
        return real(self, site, tombs)

    with pytest.MonkeyPatch.context() as m, Store(tmp_path / "s.sqlite") as store:
        m.setattr(Store, "doomed", doomed)
        report = _ingest(folder, store, _config(batch_size=2))
        assert written == [2]  # (only the last file left tombstones)
        assert report["stored"]["removed"] == 1
        assert sorted(_ids(store, "Observation")) == [
            *(f"o{i}" for i in (0, 2, 3, 4, 5)),
            *(f"q{i}" for i in range(6)),
        ]


def _recoded_and_back(folder: Path) -> None:
    """o1 mapped (a), recoded (b), mapped again (c), no meta: the copy read last, c's, stands.
    With batches of 1 row each file is a store batch of its own."""
    folder.mkdir()
    _ndjson(folder / "a.ndjson", _obs(PLATELETS))
    _ndjson(folder / "b.ndjson", _line_obs())
    _ndjson(folder / "c.ndjson", _obs(PLATELETS))


def test_a_read_that_dies_halfway_removes_nothing_a_complete_read_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read killed after b's batch (the tombstone's) but before c's (the copy that overrules
    it): o1 is still stored, as the complete read leaves it. Deletions wait for the read's
    end, like a snapshot read's sweep; the next read is a complete one (the mark was cleared)."""
    folder = tmp_path / "feed"
    _recoded_and_back(folder)
    cfg = _config(batch_size=1)
    real = cohort.ingest.read_results

    def dying(*args: Any, **kw: Any) -> Any:
        for n, item in enumerate(real(*args, **kw)):
            if n == 2:  # a and b written, c not read
                raise RuntimeError("killed")
            yield item

    with Store(tmp_path / "s.sqlite") as store:
        _ingest(folder, store, cfg)
        assert _ids(store, "Observation") == ["o1"]
        _ndjson(folder / "d.ndjson", _obs(PLATELETS, id="o9"))
        monkeypatch.setattr(cohort.ingest, "read_results", dying)
        with pytest.raises(RuntimeError):
            _ingest(folder, store, cfg)
        assert _ids(store, "Observation") == ["o1"]
        monkeypatch.undo()
        report = _ingest(folder, store, cfg)
        assert report["stored"]["removed"] == 0 and report.get("files_unchanged") is None
        assert _ids(store, "Observation") == ["o1", "o9"]


def test_a_record_recoded_and_back_is_not_counted_removed(tmp_path: Path) -> None:
    """The record recoded in b and back in c (the same bytes as a) is neither removed nor
    inserted again: not on a first load, nor re-read whole (a new increment arrived), where
    only the new file's record is new."""
    folder = tmp_path / "feed"
    _recoded_and_back(folder)
    cfg = _config(batch_size=1)
    with Store(tmp_path / "s.sqlite") as store:
        first = _ingest(folder, store, cfg)
        assert first["stored"] == {"inserted": 1, "updated": 0, "unchanged": 1, "removed": 0}
        _ndjson(folder / "d.ndjson", _obs(PLATELETS, id="o9"))
        report = _ingest(folder, store, cfg)
        assert report["stored"] == {"inserted": 1, "updated": 0, "unchanged": 2, "removed": 0}
        assert _ids(store, "Observation") == ["o1", "o9"]


def test_an_older_copy_read_in_a_batch_after_the_tombstone_replaces_the_doomed_one(
    tmp_path: Path,
) -> None:
    """The documented edge (operations.md): platelets o1 v5 stored, then an increment recodes it
    (v6) and a later batch holds an older mapped copy (v2). The tombstone is not held past its
    batch, so v2 is stored again; but the v5 copy the tombstone replaced never comes back."""
    folder = tmp_path / "feed"
    folder.mkdir()
    _ndjson(folder / "a.ndjson", _obs(PLATELETS, meta={"versionId": "5"}, status="amended"))
    cfg = _config(batch_size=1)
    with Store(tmp_path / "s.sqlite") as store:
        _ingest(folder, store, cfg)
        _ndjson(folder / "b.ndjson", _line_obs(meta={"versionId": "6"}))
        _ndjson(folder / "c.ndjson", _obs(PLATELETS, meta={"versionId": "2"}))
        report = _ingest(folder, store, cfg)
        kept = store.get("s", "Observation", "o1")
        assert kept is not None and kept["meta"] == {"versionId": "2"}
        assert report["stored"]["removed"] == 0


def test_an_increment_recoding_a_condition_or_a_medication_removes_it(tmp_path: Path) -> None:
    """Not only Observations: a Condition recoded to a code no mapping has (newer lastUpdated)
    and a MedicationRequest to a product none has (higher versionId); the older copy of a
    second medication stays."""
    folder = tmp_path / "feed"
    folder.mkdir()
    other = {**_med(HCQ, "3"), "id": "m2"}
    _ndjson(folder / "1.ndjson", _condition(SLE, T1), _med(HCQ, "1"), other)
    with Store(tmp_path / "s.sqlite") as store:
        _ingest(folder, store)
        assert store.count_by_type("s") == {"Condition": 1, "MedicationRequest": 2}
        _ndjson(
            folder / "2.ndjson",
            _condition(HYPERTENSION, T2),
            _med(TOOTHPASTE, "2"),
            {**_med(TOOTHPASTE, "2"), "id": "m2"},
        )
        report = _ingest(folder, store)
        assert report["summarised"] == {"Condition": 1, "MedicationRequest": 2}
        assert report["stored"]["removed"] == 2
        assert store.count_by_type("s") == {"MedicationRequest": 1}
        kept = store.get("s", "MedicationRequest", "m2")
        assert kept is not None and kept["medicationCodeableConcept"] == HCQ


def test_a_snapshot_read_collects_no_tombstones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """snapshot = true (the default): the triage is built without tombstones, no unit carries
    any, and its sweep is what drops the recoded record."""
    folder = tmp_path / "feed"
    folder.mkdir()
    _ndjson(folder / "a.ndjson", _obs(PLATELETS, T1))
    seen: list[tuple[bool, int]] = []
    real = reading._read

    def spy(unit: Any) -> Any:
        done = real(unit)
        seen.append((reading.JOB["triage"].tombs is None, len(done.tombs)))
        return done

    monkeypatch.setattr(reading, "_read", spy)
    cfg = dataclasses.replace(default_config(), workers=1)
    with Store(tmp_path / "s.sqlite") as store:
        _ingest(folder, store, cfg)
        _ndjson(folder / "a.ndjson", _line_obs(T2), _obs(HEART_RATE, T2, id="o2"))
        _bundle(folder / "b.json", _obs(HEART_RATE, T2, id="o3"))
        report = _ingest(folder, store, cfg)
        assert report["summarised"] == {"Observation": 3}
        assert report["stored"]["removed"] == 1 and store.count_by_type("s") == {}
    assert seen == [(True, 0)] * 3
    # ... and with snapshot = false the same units do carry them
    seen.clear()
    with Store(tmp_path / "t.sqlite") as store:
        _ingest(folder, store)
    assert seen == [(False, 2), (False, 1)]


def test_a_compressed_file_is_weighed_in_the_same_pieces_by_one_process_and_by_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gzip NDJSON file above `chunk_mb` goes to reading processes in decompressed pieces,
    each with the tombstones of its own records; one process read it whole and weighed all of
    its tombstones at once (one per summarised record in memory, ~0.5 KB each: a Bulk file of
    10 million took GBs). Now one process reads it in the same pieces, so the store does not
    depend on `workers`: here the recoded o1 (v3) opens the file and an older mapped copy (v2)
    ends it, pieces and store batches later (the documented edge: v2 is stored again)."""
    folder = tmp_path / "feed"
    folder.mkdir()
    records = [_line_obs(meta={"versionId": "3"})]
    records += [
        _obs(PLATELETS, id=f"f{i}", note=[{"text": f"{i * 7919:x}" * 9}]) for i in range(60)
    ]
    records.append(_obs(PLATELETS, meta={"versionId": "2"}))
    text = b"".join(orjson.dumps(r) + b"\n" for r in records)
    (folder / "x.ndjson.gz").write_bytes(gzip.compress(text))
    real = reading.stream_units
    pieces: list[int] = []

    def small_pieces(units: Any, _chunk: int) -> Any:
        for unit in real(units, 4096):
            pieces.append(unit.part)
            yield unit

    monkeypatch.setattr(reading, "stream_units", small_pieces)
    got, read_in = {}, {}
    for workers in (1, 2):
        pieces.clear()
        with Store(tmp_path / f"w{workers}.sqlite") as store:
            report = _ingest(folder, store, _config(workers=workers, batch_size=5))
            o1 = store.get("s", "Observation", "o1")
            got[workers] = (report["stored"], o1 and o1["meta"], len(_ids(store, "Observation")))
        read_in[workers] = len(pieces)
    assert got[1] == got[2] == ({"inserted": 61, "updated": 0, "unchanged": 0, "removed": 0},
                                {"versionId": "2"}, 61)  # fmt: skip
    assert read_in[1] == read_in[2] > 3  # (in pieces, by one process too)


def test_reading_processes_remove_what_one_process_removes(tmp_path: Path) -> None:
    """Read by 2 processes (the tombstones marshalled back with the rows), the store is the
    one a read in this process leaves."""
    folder = tmp_path / "feed"
    folder.mkdir()
    for day in range(8):
        records = [_obs(PLATELETS, f"2026-01-0{day + 1}T00:00:00Z", id=f"o{i}") for i in range(20)]
        # each day recodes a few of the records (some of them recoded back later)
        for i in range(day, 20, 5):
            records[i] = _line_obs(f"2026-01-0{day + 1}T00:00:00Z", id=f"o{i}")
        _ndjson(folder / f"day{day}.ndjson", *records)
    got = {}
    for workers in (1, 2):
        with Store(tmp_path / f"w{workers}.sqlite") as store:
            report = _ingest(folder, store, _config(workers=workers, batch_size=7))
            got[workers] = (report["workers"], report["stored"], sorted(_ids(store, "Observation")))
    assert got[2][0] == 2 and got[1][1:] == got[2][1:]
    # day 7 recodes o7, o12, o17: the other records stand as platelets
    assert got[1][2] == sorted(f"o{i}" for i in range(20) if i not in (7, 12, 17))


def test_tombstones_cross_from_a_reading_process_with_the_rows() -> None:
    done = _Done([], ReadStats(), Triage(LOADED.rules, LOADED.relevant).take(), 0,
                 [("Observation", "o1", "2", None), ("Condition", "c1", None, T1)])  # fmt: skip
    back = pickle.loads(pickle.dumps(done))  # noqa: S301 (our own bytes)
    assert back.tombs == done.tombs and back.rows == []


def test_tombstones_keep_the_newest_copy_and_yield_to_rows_read_after_them() -> None:
    held = Tombstones()
    held.add([("Observation", "a", "2", None), ("Observation", "a", "1", None)])
    held.add([("Observation", "b", None, T1), ("Observation", "b", None, None)])
    assert sorted(held.by_key.values()) == [
        ("Observation", "a", "2", None),
        ("Observation", "b", None, None),  # undecided: the one read last
    ]
    row = ("Observation", "a", "1", None, "p1", "x:1", "h", b"{}")
    held.overrule([row])  # an older copy read after the tombstone: the tombstone stands
    assert len(held) == 2
    held.overrule([(*row[:2], "3", *row[3:]), ("Observation", "b", None, None, *row[4:])])
    assert len(held) == 0 and held.take() == []
