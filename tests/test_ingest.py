"""File ingest at scale: chunked parallel reads equal a plain read; unmapped records are summarised."""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_pool import _children
from test_reliability_support import write_config

from cohort.config import default_config, load_config
from cohort.extract import Census, Triage
from cohort.ingest import Loaded, _renumber
from cohort.model import PIPELINE_TYPES
from cohort.runner import run
from cohort.samples import generate
from cohort.source.files import ReadStats, Unit, plan_units, read_path, read_unit, stream_units
from cohort.store import Store
from cohort.tools.coverage import coverage_report

AS_OF = date(2026, 11, 25)
SNOMED = "http://snomed.info/sct"
SLE = {"coding": [{"system": SNOMED, "code": "55464009"}]}
HEART_RATE = {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]}


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated NDJSON site, with malformed lines in the middle of its biggest file."""
    folder = tmp_path_factory.mktemp("pop") / "site"
    # in this process on purpose: test_samples (run later) then also proves that a generation
    # leaves no trace in the next one (decorations once edited shared templates in place)
    generate(folder, patients=120, seed=7, as_of=AS_OF, site="t", fmt="ndjson")
    packed = folder / "Observation.ndjson.gz"
    lines = gzip.decompress(packed.read_bytes()).splitlines(keepends=True)
    packed.unlink()
    # plus vitals no criterion reads, for every patient (summarised, not stored)
    pids = [orjson.loads(x)["id"] for x in (folder / "Patient.ndjson").read_bytes().splitlines()]
    for i, pid in enumerate(pids):
        vital = {
            **_vital(f"hr-{i}", f"2026-0{1 + i % 9}-1{i % 10}"),
            "subject": {"reference": f"Patient/{pid}"},
        }
        lines.append(orjson.dumps(vital) + b"\n")
    obs = folder / "Observation.ndjson"
    lines.insert(len(lines) // 2, b'{"resourceType": "Observation", "id": "x", broken\n')
    lines.insert(len(lines) // 3, b"[1, 2]\n")
    obs.write_bytes(b"".join(lines))
    return folder


def _loaded() -> Loaded:
    return Loaded.from_config(default_config())  # the shipped mappings and trial


def _first_row(out: Path) -> dict[str, str]:
    """Site "s"'s first candidates.csv row, column -> cell (these rows hold no quoted cells)."""
    text = (out / "s" / "candidates.csv").read_text(encoding="utf-8-sig")
    header, row = text.splitlines()[:2]
    return dict(zip(header.split(","), row.split(","), strict=False))


def _read_units(units: Iterable[Unit]) -> tuple[list[tuple[str, str]], ReadStats]:
    """What ingest_files makes of `units`, one after the other: (id, origin) and the stats."""
    chunk_stats = ReadStats()
    chunked: list[tuple[str, str]] = []
    lines: dict[str, int] = {}
    for u in units:
        stats = ReadStats()
        got = [(r["id"], o) for r, o, _ in read_unit(u, stats)]
        offset = lines.get(u.origin, 0) if u.part else 0
        lines[u.origin] = offset + stats.lines
        if offset:
            got = [(rid, _renumber(o, offset)) for rid, o in got]
            for issue in stats.issues:
                issue.origin = _renumber(issue.origin, offset)
        chunked += got
        chunk_stats.merge(stats)
    return chunked, chunk_stats


def test_chunks_read_exactly_what_a_whole_read_reads(population: Path) -> None:
    whole_stats = ReadStats()
    whole = [(r["id"], o) for r, o in read_path(population, whole_stats)]

    units = plan_units(population, 4096)  # tiny chunks: many ranges, cuts inside every file
    assert sum(1 for u in units if u.part > 0) > 20
    chunked, chunk_stats = _read_units(units)
    assert chunked == whole
    assert chunk_stats.files == whole_stats.files
    assert chunk_stats.read == whole_stats.read and chunk_stats.rejected == whole_stats.rejected
    assert [(i.origin, i.reason) for i in chunk_stats.issues] == [
        (i.origin, i.reason) for i in whole_stats.issues
    ]
    assert len(whole_stats.issues) == 2 and all(":" in i.origin for i in whole_stats.issues)


def test_a_file_of_bundle_lines_read_in_ranges_locates_entries_as_a_whole_read(
    tmp_path: Path,
) -> None:
    """NDJSON of one Bundle a line (a patient per line, as some exports write): the entries of
    a line in a later byte range kept their line number within that range ("b.ndjson:3#entry[0]"
    for line 40), in the store and in the issues that should lead to the record."""
    lines = []
    for i in range(60):
        patient = {"resourceType": "Patient", "id": f"p{i}"}
        broken = {"resourceType": "Patient", "id": "bad id"}
        entries = [{"resource": patient}] + ([{"resource": broken}] if i % 7 == 0 else [])
        lines.append(
            orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})
        )
    (tmp_path / "b.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    whole_stats = ReadStats()
    whole = [(r["id"], o) for r, o in read_path(tmp_path, whole_stats)]
    assert whole[40] == ("p40", "b.ndjson:41#entry[0]")
    units = plan_units(tmp_path, 512)
    assert sum(1 for u in units if u.part > 0) > 5
    chunked, chunk_stats = _read_units(units)
    assert chunked == whole
    assert [(i.origin, i.reason) for i in chunk_stats.issues] == [
        (i.origin, i.reason) for i in whole_stats.issues
    ]
    assert len(whole_stats.issues) == 9


@pytest.mark.parametrize("suffix", [".gz", ".xz", ".bz2"])
def test_compressed_files_decompressed_in_pieces_read_what_a_whole_read_reads(
    population: Path, tmp_path: Path, suffix: str
) -> None:
    """A compressed NDJSON is decompressed by the parent into line-aligned pieces for the
    reading processes: same records, origins (line numbers), counts and issues as reading the
    file whole, also when the file breaks off in the middle."""
    import bz2
    import lzma

    pack = {".gz": gzip.compress, ".xz": lzma.compress, ".bz2": bz2.compress}[suffix]
    folder = tmp_path / "site"
    shutil.copytree(population, folder)
    obs = folder / "Observation.ndjson"
    packed = pack(obs.read_bytes())
    obs.unlink()
    cases = [("whole", packed), ("broken", packed[: len(packed) * 2 // 3])]
    if suffix == ".gz":  # a damaged deflate block: zlib.error, which is no OSError
        cases.append(("damaged", packed[:20] + b"\xff" * 50 + packed[70:]))
    for name, blob in cases:
        (folder / f"Observation.ndjson{suffix}").write_bytes(blob)
        whole_stats = ReadStats()
        whole = [(r["id"], o) for r, o in read_path(folder, whole_stats)]
        units = list(stream_units(plan_units(folder), 4096))
        # (bzip2 decodes whole 900 kB blocks: this small file, broken, yields no line at all)
        # (a damaged first block yields no line either)
        least = 20 if name == "whole" else -1 if suffix == ".bz2" or name == "damaged" else 0
        assert sum(1 for u in units if u.data) > least, name
        pieces, stats = _read_units(units)
        assert pieces == whole, name
        assert (stats.files, stats.read, stats.rejected, stats.summarised) == (
            whole_stats.files,
            whole_stats.read,
            whole_stats.rejected,
            whole_stats.summarised,
        ), name
        issues = [(i.origin, i.reason) for i in whole_stats.issues]
        assert [(i.origin, i.reason) for i in stats.issues] == issues, name
        broke = [i for i in issues if i[0] == f"Observation.ndjson{suffix}"]
        assert len(broke) == (name != "whole"), issues
    # small files and plain files are left to the general reader (one unit each)
    small = plan_units(folder)
    assert list(stream_units(small, len(packed) * 16)) == small


def test_parallel_run_writes_the_same_outputs_as_a_serial_run(
    population: Path, tmp_path: Path
) -> None:
    """`[run] workers` 1 vs 2: reading and evaluation in one process, or forked (120 patients
    are above the evaluation's forking threshold)."""
    outs = {}
    for workers in (1, 2):
        folder = tmp_path / f"w{workers}"
        folder.mkdir()
        cfg = load_config(write_config(folder, {"t": str(population)}, run={"workers": workers}))
        report = run(cfg, AS_OF, folder / "out")
        outs[workers] = report
        assert report["sites"]["t"]["workers"] == workers
    for name in ("candidates.csv", "evidence.csv"):
        serial = (tmp_path / "w1" / "out" / "t" / name).read_bytes()
        assert serial == (tmp_path / "w2" / "out" / "t" / name).read_bytes()
    one, two = outs[1]["sites"]["t"], outs[2]["sites"]["t"]
    for key in ("read", "rejected", "summarised", "stored", "issues", "tiers"):
        assert one[key] == two[key], key
    assert one["summarised"]["Observation"] > 0


def _site(folder: Path, extra_obs: list[dict[str, Any]]) -> Path:
    site = folder / "site"
    site.mkdir()
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1990-01-01", "gender": "female"}
    cond = {"resourceType": "Condition", "id": "c1", "code": SLE,
            "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2015-01-01"}  # fmt: skip
    (site / "Patient.ndjson").write_bytes(orjson.dumps(patient) + b"\n")
    (site / "Condition.ndjson").write_bytes(orjson.dumps(cond) + b"\n")
    if extra_obs:  # (a 0-byte file is one not read whole: "still being written?")
        (site / "Observation.ndjson").write_bytes(b"\n".join(orjson.dumps(o) for o in extra_obs))
    return site


def _vital(rid: str, when: str, status: str = "final") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": rid, "status": status, "code": HEART_RATE,
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": when,
            "valueQuantity": {"value": 71, "unit": "/min", "code": "/min"}}  # fmt: skip


def test_unmapped_records_are_summarised_for_last_seen_and_coverage(tmp_path: Path) -> None:
    site = _site(
        tmp_path,
        [
            _vital("v1", "2026-03-04"),
            _vital("v2", "2026-06-07T10:00:00Z"),
            _vital("v3", "2027-01-01"),  # after the as-of date: never the last_seen
            _vital("v4", "2026-10-10", status="entered-in-error"),  # dropped: kept whole
        ],
    )
    cfg = load_config(write_config(tmp_path, {"s": str(site)}))
    report = run(cfg, AS_OF, tmp_path / "out")
    s = report["sites"]["s"]
    assert s["summarised"] == {"Observation": 3}
    assert s["read"]["Observation"] == 4 and s["stored"]["inserted"] == 3  # Patient, SLE, v4
    with Store(tmp_path / "out" / ".cohort" / "store.sqlite") as store:
        assert store.count_by_type("s") == {"Condition": 1, "Observation": 1, "Patient": 1}
        dates = store.side_dates("s", ["p1"])["p1"]
    assert sorted(dates) == [date(2026, 3, 4), date(2026, 6, 7), date(2027, 1, 1)]
    cells = _first_row(tmp_path / "out")
    assert cells["last_seen"] == "2026-06-07"

    cov = coverage_report(cfg, tmp_path / "out")
    hr = [u for u in cov.unmapped if u.code == "8867-4"]
    assert len(hr) == 1
    assert hr[0].records == 3 and hr[0].patients == {"p1"} and hr[0].screened == {"p1"}
    assert hr[0].units == {"/min"} and hr[0].values == ["71"]


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LEVORA = {"coding": [{"system": RXNORM, "code": "748879", "display": "Levora 0.15/30 28 Day Pack"}]}


def _med(rtype: str, rid: str, **extra: Any) -> dict[str, Any]:
    res = {"resourceType": rtype, "id": rid, "status": "active", "medicationCodeableConcept": LEVORA,
           "subject": {"reference": "Patient/p1"}, **extra}  # fmt: skip
    return {k: v for k, v in res.items() if v is not None}


def test_unmapped_medication_records_are_summarised_once_valid(tmp_path: Path) -> None:
    site = _site(tmp_path, [])
    meds = [
        _med("MedicationRequest", "r1", intent="order", authoredOn="2026-08-01"),
        _med("MedicationStatement", "s1"),  # undated: still a medication record
        _med("MedicationRequest", "r2"),  # no intent: rejected, located, as before
        # (its Medication is not in the data: its display names the drug; without one it
        # would name none, and make background_therapy unknown: test_medication_reference)
        _med("MedicationRequest", "r3", intent="order", authoredOn="2026-09-01",
             medicationCodeableConcept=None,
             medicationReference={"reference": "Medication/m", "display": "Levora 28 Day Pack"}),
    ]  # fmt: skip
    (site / "MedicationRequest.ndjson").write_bytes(
        b"\n".join(orjson.dumps(m) for m in meds if m["resourceType"] == "MedicationRequest")
    )
    (site / "MedicationStatement.ndjson").write_bytes(orjson.dumps(meds[1]))
    cfg = load_config(write_config(tmp_path, {"s": str(site)}))
    report = run(cfg, AS_OF, tmp_path / "out")
    s = report["sites"]["s"]
    assert s["summarised"] == {"MedicationRequest": 1, "MedicationStatement": 1}
    assert s["rejected"] == {"MedicationRequest": 1}
    assert [i["origin"] for i in s["issues"]] == ["MedicationRequest.ndjson:2"]
    with Store(tmp_path / "out" / ".cohort" / "store.sqlite") as store:
        # r3 names a Medication to resolve: kept whole; r2, refused, is kept as a stub naming
        # it (no concept maps its drug: no criterion reads it)
        assert store.count_by_type("s") == {"Condition": 1, "MedicationRequest": 2, "Patient": 1}
        assert store.side_facts("s", ["p1"]) == {
            "p1": (
                [date(2026, 8, 1)],
                [date(2026, 8, 1), None],
                {"MedicationRequest": 1, "MedicationStatement": 1},  # summarised, counted
                {},  # (every start is kept: no latest)
            )
        }
    cells = _first_row(tmp_path / "out")
    assert cells["last_seen"] == "2026-09-01"  # r3, stored
    assert cells["background_therapy"] == "fail"  # medication records exist, none qualifying
    cov = coverage_report(cfg, tmp_path / "out")
    # (r1 summarised, and r2's stub: a record that could not be read keeps its code, which is
    # in the data all the same)
    assert {(u.rtype, u.code, u.records) for u in cov.unmapped if u.code == "748879"} == {
        ("MedicationRequest", "748879", 2),
        ("MedicationStatement", "748879", 1),
    }


def test_summarised_medication_records_alone_still_count_as_medication_records(
    tmp_path: Path,
) -> None:
    site = _site(tmp_path, [])
    (site / "MedicationStatement.ndjson").write_bytes(
        orjson.dumps(_med("MedicationStatement", "s"))
    )
    report = run(load_config(write_config(tmp_path, {"s": str(site)})), AS_OF, tmp_path / "out")
    assert report["sites"]["s"]["summarised"] == {"MedicationStatement": 1}
    cells = _first_row(tmp_path / "out")
    assert cells["background_therapy"] == "fail"  # not "no medication records at all"
    (site / "MedicationStatement.ndjson").unlink()
    run(load_config(write_config(tmp_path, {"s": str(site)})), AS_OF, tmp_path / "out2")
    assert _first_row(tmp_path / "out2")["background_therapy"] == "unknown"


def test_a_rerun_replaces_the_census_and_an_unfinished_one_is_never_read(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        gen = store.begin_census("s", "src")
        store.add_census("s", "src", gen, [("p1", "2026-01-01")], [])
        assert store.side_dates("s", ["p1"]) == {}  # not committed: not visible
        store.commit_census("s", "src", gen)
        assert store.side_dates("s", ["p1"]) == {"p1": [date(2026, 1, 1)]}
        # a later read that dies before committing leaves the previous census in place
        gen2 = store.begin_census("s", "src")
        store.add_census("s", "src", gen2, [("p1", "2026-05-05")], [])
        assert store.side_dates("s", ["p1"]) == {"p1": [date(2026, 1, 1)]}
        gen3 = store.begin_census("s", "src")  # the next read starts clean
        assert gen3 == gen2
        store.add_census("s", "src", gen3, [("p1", "2026-02-02"), ("p1", "2026-03-03")], [])
        store.commit_census("s", "src", gen3)
        got = store.side_dates("s", ["p1"])["p1"]
        assert sorted(got) == [date(2026, 2, 2), date(2026, 3, 3)]


def test_triage_keeps_what_it_cannot_summarise_soundly() -> None:
    loaded = _loaded()
    triage = Triage(loaded.rules, loaded.relevant)
    ok = _vital("a", "2026-01-01")
    assert triage.offer(ok)
    kept = [
        {**ok, "code": "8867-4"},  # malformed element: validation must see it
        {**ok, "effectiveDateTime": "2026-02-30"},  # impossible date
        {**ok, "status": ["final"]},  # not a string
        {**ok, "subject": {"display": "no reference"}},
        {**ok, "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]}},  # mapped
        {**ok, "resourceType": "MedicationRequest"},  # not a summarised type
    ]
    assert [triage.offer(r) for r in kept] == [False] * len(kept)
    census: Census = triage.take()
    assert census.records == 1 and census.dates == {"p1": {"2026-01-01"}}
    assert triage.census.records == 0


def test_unmapped_procedures_and_immunizations_are_summarised_without_a_date() -> None:
    """last_seen reads no Procedure or Immunization date, so theirs is not kept; the code is.
    Mapped ones (a live vaccine, plasmapheresis), dropped ones and those naming no patient
    (an Immunization names it in `patient`) are kept whole."""
    loaded = _loaded()
    triage = Triage(loaded.rules, loaded.relevant)
    cvx = "http://hl7.org/fhir/sid/cvx"
    flu = {"resourceType": "Immunization", "id": "i1", "status": "completed",
           "vaccineCode": {"coding": [{"system": cvx, "code": "140"}]},
           "patient": {"reference": "Patient/p1"}, "occurrenceDateTime": "2026-01-01"}  # fmt: skip
    dental = {"resourceType": "Procedure", "id": "pr1", "status": "completed",
              "code": {"coding": [{"system": SNOMED, "code": "234947003"}]},
              "subject": {"reference": "Patient/p2"}}  # fmt: skip
    assert triage.offer(flu) and triage.offer(dental)  # no date needed
    kept = [
        {**flu, "vaccineCode": {"coding": [{"system": cvx, "code": "03"}]}},  # MMR: live
        {**flu, "status": "entered-in-error"},
        {**flu, "patient": None, "subject": {"reference": "Patient/p1"}},
        {**dental, "code": {"coding": [{"system": SNOMED, "code": "20720000"}]}},
        {**dental, "code": {"coding": {"code": "x"}}},  # malformed element
    ]
    assert [triage.offer(r) for r in kept] == [False] * len(kept)
    census = triage.take()
    assert census.records == 2 and census.dates == {}
    assert {(e.rtype, e.codes[0].code, frozenset(e.patients)) for e in census.all_entries()} == {
        ("Immunization", "140", frozenset({"p1"})),
        ("Procedure", "234947003", frozenset({"p2"})),
    }


def _kill_reader_on(monkeypatch: pytest.MonkeyPatch, dies: Callable[[Unit], bool]) -> None:
    """A forked reading process that gets a unit for which `dies` is true exits at once, as if
    killed for memory (the main process reads as usual)."""
    import os

    import cohort.reading as reading

    parent, real = os.getpid(), reading._read

    def dying(unit: Unit) -> Any:
        if os.getpid() != parent and dies(unit):
            os._exit(9)
        return real(unit)

    # pickled by reference to `cohort.reading._read`, which the forked workers also see patched
    dying.__qualname__ = dying.__name__ = "_read"
    dying.__module__ = "cohort.reading"
    monkeypatch.setattr(reading, "_read", dying)


@pytest.mark.usefixtures("sigterm_stops")
def test_a_reading_process_that_dies_is_replaced_by_reading_in_this_process(
    population: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With the CLI's SIGTERM handler in place, as in a run: the rest is read here, and every
    reading process is gone (killed and reaped) once the read is over. (The hang that handler
    once caused, timing-dependent here, is shown by tests/test_reading_processes.py.)"""
    import cohort.reading as reading

    units = plan_units(population, 8192)
    _kill_reader_on(monkeypatch, lambda unit: unit == units[3])
    loaded = _loaded()
    job = {"types": set(PIPELINE_TYPES), "validate": "fast"}
    reading.JOB.update(job, triage=Triage(loaded.rules, loaded.relevant))
    before = _children()  # (a test server started by an earlier test is one)
    try:
        parallel = [(u, [r[1] for r in d.rows]) for u, d in reading.read_results(units, 2, 8192)]
        left = _children() - before
        reading.JOB.update(job, triage=Triage(loaded.rules, loaded.relevant))
        serial = [(u, [r[1] for r in d.rows]) for u, d in reading.read_results(units, 1)]
    finally:
        reading.JOB.clear()
    assert parallel == serial and len(parallel) == len(units)
    assert "a reading process died" in caplog.text
    assert not left


@pytest.mark.parametrize("run_keys", [{"workers": -1}, {"chunk_mb": 0}, {"workers": "two"}])
def test_bad_tuning_keys_are_named(tmp_path: Path, run_keys: dict[str, Any]) -> None:
    from cohort.errors import ConfigError

    path = write_config(tmp_path, {"s": str(tmp_path)}, run=run_keys)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    key = next(iter(run_keys))
    assert str(path) in str(err.value) and key in str(err.value)


def test_a_compressed_file_read_by_processes_stores_what_one_process_stores(
    population: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ingest_files with 2 processes on a gzip NDJSON cut into pieces (one of the processes
    dying on a piece) stores the same rows and reports the same counts and issues as 1."""
    import dataclasses

    import cohort.ingest as ingest
    import cohort.reading as reading
    from cohort.config import SiteConfig

    folder = tmp_path / "site"
    shutil.copytree(population, folder)
    obs = folder / "Observation.ndjson"
    (folder / "Observation.ndjson.gz").write_bytes(gzip.compress(obs.read_bytes()))
    obs.unlink()
    real_stream = reading.stream_units
    pieces: list[Unit] = []

    def small_pieces(units: Any, _chunk: int) -> Any:
        for u in real_stream(units, 4096):
            pieces.append(u)
            yield u

    monkeypatch.setattr(reading, "stream_units", small_pieces)
    _kill_reader_on(monkeypatch, lambda unit: unit.part == 5 and unit.data is not None)
    loaded = _loaded()
    site = SiteConfig("t", "T", str(folder))
    got = {}
    before = _children()  # (a test server started by an earlier test is one)
    for workers in (1, 2):
        cfg = dataclasses.replace(default_config(), workers=workers)
        with Store(tmp_path / f"w{workers}.sqlite") as store:
            report = ingest.ingest_files(site, cfg, store, loaded)
            rows = sorted(
                (r["resourceType"], r["id"])
                for t in PIPELINE_TYPES
                for r in store.iter_type("t", t)
            )
            got[workers] = (report, rows)
    assert sum(1 for u in pieces if u.data) > 20  # the file did go out in pieces
    assert "a reading process died" in caplog.text
    assert not _children() - before  # (the other reading process was killed and reaped)
    one, two = got[1][0], got[2][0]
    for key in ("files", "read", "rejected", "summarised", "stored", "issues"):
        assert one[key] == two[key], key
    assert got[1][1] == got[2][1] and len(got[1][1]) > 100


def test_many_small_bundles_read_by_processes_store_what_one_process_stores(
    tmp_path: Path,
) -> None:
    """Per-patient Bundle files go to the reading processes in batches of about `chunk_mb`
    (here several batches of many files) and their rows and census are written gathered
    into store batches: the store and the counts equal a one-process read."""
    import dataclasses
    import sqlite3

    import cohort.ingest as ingest
    from cohort.config import SiteConfig

    folder = tmp_path / "site"
    generate(folder, patients=150, seed=11, as_of=AS_OF, site="t", fmt="bundles")
    files = list(folder.glob("*.json"))
    assert len(files) > 150
    loaded = _loaded()
    site = SiteConfig("t", "T", str(folder))
    got = {}
    for workers in (1, 2):
        cfg = dataclasses.replace(default_config(), workers=workers, chunk_mb=1, batch_size=500)
        path = tmp_path / f"w{workers}.sqlite"
        with Store(path) as store:
            report = ingest.ingest_files(site, cfg, store, loaded)
        db = sqlite3.connect(path)
        tables = (
            db.execute("SELECT type, id, origin, hash FROM resources ORDER BY type, id").fetchall(),
            db.execute("SELECT patient, dates FROM side_dates ORDER BY patient, dates").fetchall(),
            db.execute("SELECT rtype, codes, records FROM census ORDER BY 1, 2, 3").fetchall(),
        )
        db.close()
        got[workers] = (report, tables)
    one, two = got[1][0], got[2][0]
    assert two["workers"] == 2 and one["workers"] == 1
    for key in ("files", "read", "rejected", "summarised", "stored", "issues"):
        assert one[key] == two[key], key
    assert got[1][1] == got[2][1] and len(got[1][1][0]) > 1000
    assert one["files"] == len(files)


def test_evaluation_falls_back_to_one_process_when_a_fork_fails(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed evaluation fork (map_chunks gives None) is not a failed run: the patients are
    evaluated in this process, with the same outputs as a run whose forks succeeded."""
    import cohort.screening as screening

    calls: list[int] = []

    def fork_failed(fn: Any, items: list[str], nproc: int, dump: Any, load: Any) -> None:
        calls.append(len(items))
        return None

    outs = {}
    for label in ("forked", "fallback"):
        if label == "fallback":
            monkeypatch.setattr(screening, "map_chunks", fork_failed)
        folder = tmp_path / label
        folder.mkdir()
        cfg = load_config(write_config(folder, {"t": str(population)}, run={"workers": 2}))
        run(cfg, AS_OF, folder / "out")
        outs[label] = [
            (folder / "out" / "t" / n).read_bytes() for n in ("candidates.csv", "evidence.csv")
        ]
    assert calls and calls[0] > 100  # the evaluation did try to fork
    assert outs["fallback"] == outs["forked"]
    assert outs["forked"][0].count(b"\r\n") > 100  # every screened patient has a row


def test_output_files_written_by_two_processes_equal_one_process(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above REPORT_FORK_MIN candidates the output files are written by two processes; the
    files are byte-identical to those one process writes, also when the fork fails (then this
    process writes them all), and no staged file is left behind."""
    import cohort.outputs as outputs

    real = outputs.map_chunks
    calls: list[int] = []

    def counted(*args: Any, **kw: Any) -> Any:
        calls.append(len(args[1]))
        return real(*args, **kw)

    def fork_failed(*args: Any, **kw: Any) -> None:
        calls.append(-1)
        return None

    outs = {}
    for label, min_cands, mapper in (
        ("serial", 10**9, real),
        ("forked", 0, counted),
        ("fallback", 0, fork_failed),
    ):
        monkeypatch.setattr(outputs, "REPORT_FORK_MIN", min_cands)
        monkeypatch.setattr(outputs, "map_chunks", mapper)
        folder = tmp_path / label
        folder.mkdir()
        cfg = load_config(write_config(folder, {"t": str(population)}, run={"workers": 1}))
        run(cfg, AS_OF, folder / "out")
        site = folder / "out" / "t"
        outs[label] = {
            n: _unstamped((site / n).read_bytes())
            for n in ("candidates.csv", "evidence.csv", "summary.html")
        }
        assert sorted(p.name for p in site.iterdir()) == sorted(outs[label])  # nothing staged
        assert all((site / n).stat().st_mode & 0o777 == 0o600 for n in outs[label])
    assert calls == [3, -1]  # three files shared out by the forked run; the fallback's try
    assert outs["forked"] == outs["serial"] == outs["fallback"]
    assert outs["serial"]["candidates.csv"].count(b"\r\n") > 100


def _unstamped(data: bytes) -> bytes:
    """An output without summary.html's time of production (runs a minute apart differ)."""
    return re.sub(rb'<b id="produced">[^<]*</b>', b"", data)


def test_a_failed_write_by_either_process_replaces_no_output(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written by two processes, an output file that cannot be written fails the run with
    OutputError whichever process met it, and every previous output stays as it was."""
    import cohort.atomic as files
    import cohort.outputs as outputs
    from cohort.errors import OutputError

    monkeypatch.setattr(outputs, "REPORT_FORK_MIN", 0)
    cfg = load_config(write_config(tmp_path, {"t": str(population)}, run={"workers": 1}))
    out = tmp_path / "out"
    run(cfg, AS_OF, out)
    kept = {p: p.read_bytes() for p in (out / "t").iterdir()}
    real = files.write_atomic

    def no_room_for(name: str) -> Any:
        def write(path: Path, data: Any, mode: int = 0o600) -> None:
            if path.name == f".{name}.staged":
                raise OutputError(f"cannot write {path.name}: No space left on device")
            real(path, data, mode)

        return write

    for name in ("candidates.csv", "evidence.csv", "summary.html"):
        monkeypatch.setattr(files, "write_atomic", no_room_for(name))
        with pytest.raises(OutputError, match="No space left"):
            run(cfg, date(2026, 12, 1), out)
        assert {p: p.read_bytes() for p in (out / "t").iterdir()} == kept, name


def test_screening_and_store_read_a_reference_alike(tmp_path: Path) -> None:
    """A subject reference with a trailing space or slash names the same patient to screening as
    to the store (they used to disagree, and the patient vanished); one whose id is no FHIR id
    names nobody, also after a Bundle's fullUrl is rewritten to a rejected Patient's id (found
    by fuzzing)."""
    sle = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}
    site = tmp_path / "site"
    site.mkdir()
    lines = []
    for pid, ref in (("p1", "Patient/p1 "), ("p2", "Patient/p2/"), ("p3", "Patient/p3")):
        lines.append({"resourceType": "Patient", "id": pid, "birthDate": "1990-01-01"})
        lines.append({"resourceType": "Condition", "id": f"c-{pid}", "code": sle,
                      "subject": {"reference": ref}, "onsetDateTime": "2020-01-01"})  # fmt: skip
    lines.append({"resourceType": "Condition", "id": "c-bad", "code": sle,
                  "subject": {"reference": "Patient/bad id"}, "onsetDateTime": "2020-01-01"})  # fmt: skip
    (site / "x.ndjson").write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p9", "resource": {"resourceType": "Patient", "id": "bad id 9"}},
        {"fullUrl": "urn:uuid:c9", "resource": {"resourceType": "Condition", "id": "c9",
         "code": sle, "subject": {"reference": "urn:uuid:p9"}, "onsetDateTime": "2020-01-01"}},
    ]}  # fmt: skip
    (site / "b.json").write_bytes(orjson.dumps(bundle))
    cfg = load_config(write_config(tmp_path, {"t": str(site)}))
    report = run(cfg, AS_OF, tmp_path / "out")
    text = (tmp_path / "out" / "t" / "candidates.csv").read_text(encoding="utf-8-sig")
    ids = [line.split(",")[1] for line in text.splitlines()[1:]]
    assert sorted(ids) == ["p1", "p2", "p3"]
    assert report["sites"]["t"]["rejected"] == {"Patient": 1}  # "bad id 9", located


def test_a_patient_id_starting_with_a_dash_is_the_same_patient_on_the_next_run(
    tmp_path: Path,
) -> None:
    """"-p1" is a valid FHIR id; candidates.csv guards it against Excel formulas as "'-p1", and
    the next run reads it back as "-p1": not new, and not removed (found by fuzzing)."""
    sle = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}
    site = tmp_path / "site"
    site.mkdir()
    lines = [{"resourceType": "Patient", "id": "-p1", "birthDate": "1990-01-01"},
             {"resourceType": "Condition", "id": "c1", "code": sle,
              "subject": {"reference": "Patient/-p1"}, "onsetDateTime": "2020-01-01"}]  # fmt: skip
    (site / "x.ndjson").write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    cfg = load_config(write_config(tmp_path, {"t": str(site)}))
    run(cfg, AS_OF, tmp_path / "out")
    text = (tmp_path / "out" / "t" / "candidates.csv").read_text(encoding="utf-8-sig")
    assert text.splitlines()[1].split(",")[1] == "'-p1"  # Excel-safe on disk
    second = run(cfg, AS_OF, tmp_path / "out")
    changes = second["sites"]["t"]["changes"]
    assert changes == {
        "new": 0,
        "removed": 0,
        "tier_changed": 0,
        "criteria_changed": 0,
        "newly_likely": 0,
        "no_longer_likely": 0,
    }
    text = (tmp_path / "out" / "t" / "candidates.csv").read_text(encoding="utf-8-sig")
    assert ",new," not in text


def test_a_file_stopped_mid_write_leaves_no_temp_file(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writing process stopped mid-file (killed because the other failed first) leaves
    write_atomic's temp file behind; the run removes it with the staged files (it holds PHI)."""
    import cohort.atomic as files
    from cohort.errors import OutputError

    cfg = load_config(write_config(tmp_path, {"t": str(population)}, run={"workers": 1}))
    out = tmp_path / "out"
    run(cfg, AS_OF, out)
    kept = sorted(p.name for p in (out / "t").iterdir())

    def stopped(path: Path, data: Any, mode: int = 0o600) -> None:
        (path.parent / f".{path.name}.0123456789ab.tmp").write_text("half a file")
        raise OutputError(f"cannot write {path.name}: stopped")

    monkeypatch.setattr(files, "write_atomic", stopped)
    with pytest.raises(OutputError):
        run(cfg, date(2026, 12, 1), out)
    assert sorted(p.name for p in (out / "t").iterdir()) == kept


LOINC = "http://loinc.org"
K_UL = {"unit": "10*3/uL", "code": "10*3/uL"}


def _cbc(rid: str, when: str, platelets: float) -> dict[str, Any]:
    """A CBC panel (LOINC 58410-2, mapped to no concept), its results as components."""
    parts = [("777-3", platelets, K_UL), ("718-7", 12, {"unit": "g/dL", "code": "g/dL"}),
             ("751-8", 3, K_UL)]  # fmt: skip
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "58410-2"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": when,
            "component": [{"code": {"coding": [{"system": LOINC, "code": code}]},
                           "valueQuantity": {"value": value, **unit}}
                          for code, value, unit in parts]}  # fmt: skip


def test_a_panel_whose_components_are_read_is_kept_and_read(tmp_path: Path) -> None:
    """A panel whose own code maps to nothing but whose components do is kept whole, by the
    parsed record's triage (the first lines of a code) and the line handler (its repeats)
    alike; a blood-pressure panel, whose components map to nothing either, is summarised."""
    when = ["2026-11-20", "2026-10-01", "2026-09-20", "2026-09-10", "2026-09-01"]
    cbcs = [_cbc(f"cbc{i}", d, 10 if i == 0 else 200 + i) for i, d in enumerate(when)]
    bp = {**_vital("bp", "2026-11-21"), "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
          "component": [{"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                         "valueQuantity": {"value": 120, "unit": "mm[Hg]"}}]}  # fmt: skip
    del bp["valueQuantity"]
    site = _site(tmp_path, [*cbcs, bp])
    cfg = load_config(write_config(tmp_path, {"s": str(site)}))
    report = run(cfg, AS_OF, tmp_path / "out")
    s = report["sites"]["s"]
    assert s["summarised"] == {"Observation": 1}  # was 6: every CBC panel summarised away
    cells = _first_row(tmp_path / "out")
    assert cells["platelets"] == "fail"  # was unknown: no platelet count read
    assert cells["last_seen"] == "2026-11-21"


def test_triage_keeps_a_record_whose_components_are_read() -> None:
    loaded = _loaded()
    triage = Triage(loaded.rules, loaded.relevant)
    cbc = _cbc("a", "2026-01-01", 10)
    unread = {"code": {"coding": [{"system": LOINC, "code": "787-2"}]}, "valueInteger": 90}
    assert not triage.offer(cbc)
    assert triage.offer({**cbc, "component": [unread]})  # no component read: summarised
    assert not triage.offer({**cbc, "component": [unread, *cbc["component"]]})
    assert not triage.offer({**cbc, "component": {"code": "777-3"}})  # malformed: validation
    assert not triage.offer({**cbc, "component": [unread, {"code": "777-3"}]})
    assert triage.take().records == 1


def test_coverage_reads_a_kept_panel_and_the_codes_of_its_components(tmp_path: Path) -> None:
    """The panel's own code, mapped to nothing, is listed as unmapped; a component's code is
    seen (its mapping rows are not "never seen"), and one that maps to nothing is not listed:
    the census of summarised panels has no component codes, so counts would be partial."""
    cbc = _cbc("cbc", "2026-11-20", 10)
    cbc["component"].append({"code": {"coding": [{"system": LOINC, "code": "787-2"}]},
                             "valueQuantity": {"value": 90, "unit": "fL"}})  # fmt: skip
    site = _site(tmp_path, [cbc])
    cfg = load_config(write_config(tmp_path, {"s": str(site)}))
    run(cfg, AS_OF, tmp_path / "out")
    cov = coverage_report(cfg, tmp_path / "out")
    assert {u.code for u in cov.unmapped if u.rtype == "Observation"} == {"58410-2"}
    assert not [row for row in cov.never_seen if row[0] == "platelets" and row[2] == "777-3"]


def test_triage_keeps_a_request_that_is_no_exposure_whole() -> None:
    """An unmapped drug's doNotPerform order or proposal is no medication record of the
    patient's (docs/rules.md): not summarised (no medication date, no last_seen), but kept
    whole for the Extractor to drop with its reason, as a dropped status is."""
    triage = Triage(_loaded().rules, _loaded().relevant)
    order = _med("MedicationRequest", "r1", intent="order", authoredOn="2026-08-01")
    assert triage.offer_checked(order)
    assert not triage.offer_checked({**order, "doNotPerform": True})
    assert not triage.offer_checked({**order, "intent": "proposal"})
    assert triage.offer_checked({**order, "intent": "plan", "doNotPerform": False})


def test_coverage_counts_the_codes_of_records_that_could_not_be_read(tmp_path: Path) -> None:
    """A record the validator refused is stored as a stub keeping its codes (source.refused),
    read as a record that could not be read: coverage passed over it, so its mapped code was
    listed under mapped_never_seen though it is in the data (the only platelet count, refused
    for a status that is no code), and its code that maps to nothing (a local lab code on a
    result without a date: kept whole, so not in the census) was not listed as unmapped.
    Both are codes in the data (docs/mappings-howto.md): counted now, once per record."""
    plt = {"resourceType": "Observation", "id": "plt", "status": 7,  # refused: no code
           "code": {"coding": [{"system": LOINC, "code": "777-3"}]},
           "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-11-20",
           "valueQuantity": {"value": 90, **K_UL}}  # fmt: skip
    local = {"resourceType": "Observation", "id": "loc", "status": 7,
             "code": {"coding": [{"system": "http://example.org/lab", "code": "ZZ-9",
                                  "display": "LOCAL TEST"}]},
             "subject": {"reference": "Patient/p1"}}  # fmt: skip
    site = _site(tmp_path, [plt, local])
    cfg = load_config(write_config(tmp_path, {"s": str(site)}))
    report = run(cfg, AS_OF, tmp_path / "out")
    assert report["sites"]["s"]["rejected"] == {"Observation": 2}, report["sites"]["s"]
    cov = coverage_report(cfg, tmp_path / "out")
    assert not [row for row in cov.never_seen if row[0] == "platelets" and row[2] == "777-3"]
    zz = [u for u in cov.unmapped if u.code == "ZZ-9"]
    assert len(zz) == 1 and zz[0].records == 1 and zz[0].patients == {"p1"}, cov.unmapped
    assert zz[0].display == "LOCAL TEST" and zz[0].rtype == "Observation"
    assert not [u for u in cov.unmapped if u.code == "777-3"]



def test_coverage_reads_a_refused_panel_as_a_kept_one(tmp_path: Path) -> None:
    """A refused panel's stub keeps its own code and its components' (source.refused), which
    coverage took for the codes of one record: a component that maps (a platelet count) made
    the panel's own unmapped code go unlisted, and with none mapped, the components' codes
    were listed, which the kept panel's are not (partial counts). Now it is read as a kept
    panel is: its own code listed, its components' seen and not listed."""
    cbc = _cbc("cbc", "2026-11-20", 10)
    cbc["component"].append({"code": {"coding": [{"system": LOINC, "code": "787-2"}]},
                             "valueQuantity": {"value": 90, "unit": "fL"}})  # fmt: skip
    cbc["status"] = 7  # refused: no code
    bare = {**cbc, "id": "cbc2", "component": cbc["component"][3:]}  # (MCV: maps to nothing)
    uncoded = {**cbc, "id": "cbc3", "code": {"coding": [{"system": LOINC}]}}  # (no code of its own)
    site = _site(tmp_path, [cbc, bare, uncoded])
    cfg = load_config(write_config(tmp_path, {"s": str(site)}))
    report = run(cfg, AS_OF, tmp_path / "out")
    assert report["sites"]["s"]["rejected"] == {"Observation": 3}, report["sites"]["s"]
    cov = coverage_report(cfg, tmp_path / "out")
    listed = [u for u in cov.unmapped if u.rtype == "Observation"]
    assert [(u.code, u.records) for u in listed] == [("58410-2", 2)], listed
    assert not [row for row in cov.never_seen if row[0] == "platelets" and row[2] == "777-3"]
