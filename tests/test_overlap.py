"""What the main process does while its reading processes still read: the patient index of a
first load is built once the last units are theirs, with the same store as a serial read."""

from __future__ import annotations

import dataclasses
import gzip
import os
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import cohort.ingest as ingest
import cohort.reading as reading
from cohort.config import SiteConfig, default_config
from cohort.extract import Triage
from cohort.ingest import Loaded
from cohort.model import PIPELINE_TYPES
from cohort.samples import generate
from cohort.source.files import plan_units
from cohort.store import Store

AS_OF = date(2026, 11, 25)


@pytest.fixture(scope="module")
def site_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated NDJSON site, its Observations plain (cut into byte ranges)."""
    folder = tmp_path_factory.mktemp("overlap") / "site"
    generate(folder, patients=60, seed=3, as_of=AS_OF, site="t", fmt="ndjson")
    packed = folder / "Observation.ndjson.gz"
    (folder / "Observation.ndjson").write_bytes(gzip.decompress(packed.read_bytes()))
    packed.unlink()
    return folder


@pytest.fixture(scope="module")
def loaded() -> Loaded:
    return Loaded.from_config(default_config())


@pytest.fixture
def job(loaded: Loaded) -> Iterator[None]:
    reading.JOB.update(
        types=set(PIPELINE_TYPES), validate="fast", triage=Triage(loaded.rules, loaded.relevant)
    )
    try:
        yield
    finally:
        reading.JOB.clear()


@pytest.mark.usefixtures("job")
def test_last_given_is_called_once_the_last_unit_is_with_the_reading_processes(
    site_folder: Path,
) -> None:
    units = plan_units(site_folder, 4096)
    assert len(units) > 20  # (many more batches than the 4 the two processes hold at once)
    back: list[int] = []  # units handed back when it was called
    seen = 0

    def told() -> None:
        back.append(seen)

    for _unit, _done in reading.read_results(units, 2, 4096, last_given=told):
        seen += 1
    assert seen == len(units)
    # once, after a first unit came back and before the last ones did
    assert len(back) == 1 and 0 < back[0] < len(units)
    # one process: nothing is read elsewhere meanwhile, so nothing to say
    serial: list[int] = []
    for _ in reading.read_results(units, 1, last_given=lambda: serial.append(1)):
        pass
    assert serial == []


def _by_patient(path: Path) -> dict[str, list[tuple[str, str, str]]]:
    with Store(path) as store:
        pids = sorted({p for p, _ in store.iter_by_patient("t")})
        return {
            pid: [(r["resourceType"], r["id"], r.get("status", "")) for r in rs]
            for pid, rs in store.iter_by_patient("t", pids)
        }


def test_a_parallel_first_load_builds_the_index_while_the_last_units_are_read(
    site_folder: Path, tmp_path: Path, loaded: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With reading processes, the patient index of a new store is there before the last unit
    is written; the store reads by patient exactly as after a one-process load."""
    site = SiteConfig("t", "T", str(site_folder))
    real, real_plan = ingest.read_results, ingest.plan_units
    index_when: list[bool] = []  # per unit handed over: was the index there yet?

    def watched(units: Any, nproc: int, _chunk: int, **kw: Any) -> Any:
        for item in real(units, nproc, 4096, **kw):  # (batches of 4 KB: many, as at scale)
            index_when.append(_has_index(tmp_path / "w2.sqlite"))
            yield item

    stores = {}
    for workers in (1, 2):
        cfg = dataclasses.replace(default_config(), workers=workers, chunk_mb=1, batch_size=50)
        if workers == 2:
            monkeypatch.setattr(ingest, "read_results", watched)
            monkeypatch.setattr(ingest, "plan_units", lambda src, _c, names: real_plan(src, 4096, names))
        path = tmp_path / f"w{workers}.sqlite"
        with Store(path) as store:
            report = ingest.ingest_files(site, cfg, store, loaded)
        assert report["workers"] == workers
        assert _has_index(path)
        stores[workers] = _by_patient(path)
    assert len(index_when) > 20
    assert index_when[0] is False and index_when[-1] is True  # built during the read
    assert stores[1] == stores[2] and sum(len(v) for v in stores[1].values()) > 500
    with sqlite3.connect(tmp_path / "w2.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _has_index(path: Path) -> bool:
    db = sqlite3.connect(path)
    try:
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='index' AND name='resources_patient'"
        ).fetchone()
    finally:
        db.close()
    return found is not None


def test_an_evaluation_fork_copies_the_wal_into_the_store_file(
    site_folder: Path, tmp_path: Path, loaded: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pages a read leaves in the WAL are copied into the store file by the evaluation's
    fork, beside the evaluation, not by the store's close at the end of the run, alone."""
    from cohort.screening import screen

    site = SiteConfig("t", "T", str(site_folder))
    cfg = dataclasses.replace(default_config(), workers=2)
    said = tmp_path / "backfilled-by"
    real = Store.backfill

    def backfill(self: Store) -> None:
        with open(said, "a") as f:  # (the fork's pid, where this process can read it)
            f.write(f"{os.getpid()}\n")
        real(self)

    monkeypatch.setattr(Store, "backfill", backfill)
    with Store(tmp_path / "s.sqlite") as store:
        ingest.ingest_files(site, cfg, store, loaded)
        cands = screen(site, store, loaded, AS_OF, 2)
        serial = screen(site, store, loaded, AS_OF, 1)
    assert len(cands) > 20 and cands == serial
    by = said.read_text().split()
    assert len(by) == 1 and int(by[0]) != os.getpid()
