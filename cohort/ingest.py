"""Bring a site's data into the store: files read in parallel chunks, or a FHIR server pull."""

from __future__ import annotations

import logging
import marshal
import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cohort.config import Config, SiteConfig
from cohort.extract import Census, Triage
from cohort.forks import close_inherited, workers_for
from cohort.model import PIPELINE_TYPES, Code
from cohort.source.files import (
    ReadStats,
    Unit,
    data_bytes,
    plan_units,
    read_unit,
    stream_units,
)
from cohort.store import PutStats, Row, Store, prepare_row
from cohort.terminology.units import warm as warm_units

if TYPE_CHECKING:
    from cohort.criteria import Trial
    from cohort.extract import ReadingRules
    from cohort.terminology import Terminology

log = logging.getLogger("cohort")

# Below this much data a pool of processes costs more than it saves.
PARALLEL_MIN_BYTES = 32 << 20


@dataclass
class Loaded:
    """Mappings, reading rules and trial, validated together."""

    term: Terminology
    rules: ReadingRules
    trial: Trial

    def relevant(self, codes: tuple[Code, ...], text: str) -> bool:
        """Whether a code element maps to any concept (records that do not are summarised)."""
        return bool(self.term.concepts_for(codes, text))

    @classmethod
    def from_config(cls, cfg: Config) -> Loaded:
        from cohort.criteria import load_trial
        from cohort.extract import ReadingRules
        from cohort.terminology import Terminology

        term = Terminology.load(cfg.mappings_dir, use_unverified=cfg.use_unverified)
        rules = ReadingRules.load(cfg.mappings_dir / "rules.toml")
        trial = load_trial(cfg.trial_path, term.concept_names())
        return cls(term, rules, trial)


@dataclass
class _Done:
    """What one unit of a file read produced, as sent back by a worker."""

    rows: list[Row]
    stats: ReadStats
    census: Census
    lines: int  # lines in a byte-range unit (0 otherwise)

    # The rows cross from a reading process as one marshal blob: tuples of str/bytes/None
    # travel there and back in ~1.4 us a row against ~2.6 us pickled (bench/RESULTS.md).
    def __getstate__(self) -> tuple[bytes, ReadStats, Census, int]:
        return marshal.dumps(self.rows), self.stats, self.census, self.lines

    def __setstate__(self, state: tuple[bytes, ReadStats, Census, int]) -> None:
        blob, self.stats, self.census, self.lines = state
        self.rows = marshal.loads(blob)  # noqa: S302 (written by this run's own reading process)


# Set in the parent before the pool forks, so workers inherit it (fork start method only).
_JOB: dict[str, Any] = {}


def _read(unit: Unit) -> _Done:
    stats = ReadStats()
    triage: Triage = _JOB["triage"]
    rows = [
        prepare_row(res, origin, raw)
        for res, origin, raw in read_unit(
            unit, stats, types=_JOB["types"], validate=_JOB["validate"], triage=triage
        )
    ]
    return _Done(rows, stats, triage.take(), stats.lines)


def workers_for_files(units: list[Unit], configured: int) -> int:
    """Processes to read with: `configured` if set, else one per core (max 4) for big inputs."""
    return workers_for(sum(data_bytes(u) for u in units), PARALLEL_MIN_BYTES, configured)


def _results(
    units: list[Unit], nproc: int, chunk_bytes: int = 16 << 20
) -> Iterator[tuple[Unit, _Done]]:
    """Each unit's result, in unit order, with bounded memory: at least 2 units per worker in
    flight, and more small ones while they hold under 2 units' worth of data per worker (so a
    worker done with a small file does not wait for the unit ahead of it to be written).

    With workers, a big compressed NDJSON file is decompressed here and its line-aligned
    pieces parsed by them (`stream_units`). If a reading process dies (e.g. killed for memory),
    the units from the first unfinished one on are read in this process instead: every earlier
    unit was already written in order.
    """
    todo = stream_units(units, chunk_bytes) if nproc > 1 else iter(units)
    # after a worker died: what was in flight (finished results are reused), in order
    unfinished: list[tuple[Unit, Future[_Done] | None]] = []
    if nproc > 1:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(nproc, mp_context=ctx, initializer=close_inherited) as pool:
            pending: deque[tuple[Unit, Future[_Done] | None]] = deque()
            held = [0]  # bytes of data in the pending units
            budget, most = 2 * nproc * chunk_bytes, 8 * nproc

            def submit() -> bool:
                """Fill the window; False once the pool is broken."""
                while len(pending) < 2 * nproc or (held[0] < budget and len(pending) < most):
                    u = next(todo, None)
                    if u is None:
                        return True
                    held[0] += data_bytes(u)
                    try:
                        pending.append((u, pool.submit(_read, u)))
                    except BrokenProcessPool:
                        pending.append((u, None))  # a broken pool refuses new work
                        return False
                return True

            alive = submit()
            # Until the first piece is parsed this process has nothing to do: build the UCUM
            # registry the evaluation's forks will share (between ingest and evaluation it
            # would run with the other cores idle).
            warm_units()
            while alive and pending:
                u, future = pending[0]
                try:
                    done = future.result() if future is not None else None
                except BrokenProcessPool:
                    done = None
                if done is None:
                    break
                pending.popleft()
                held[0] -= data_bytes(u)
                yield u, done
                alive = submit()
            if pending:
                log.warning("a reading process died; reading the rest in this process")
                for _, f in pending:
                    if f is not None:
                        f.cancel()
            unfinished = list(pending)
        for u, f in unfinished:
            ok = f is not None and f.done() and not f.cancelled() and f.exception() is None
            yield u, f.result() if ok and f is not None else _read(u)
    for u in todo:
        yield u, _read(u)


def _renumber(origin: str, offset: int) -> str:
    """'f.ndjson:12' -> 'f.ndjson:<12 + offset>' (a range's line numbers made file-absolute)."""
    head, _, n = origin.rpartition(":")
    return f"{head}:{int(n) + offset}" if n.isdigit() else origin


def ingest_files(site: SiteConfig, cfg: Config, store: Store, loaded: Loaded) -> dict[str, Any]:
    """Read a file source into the store: kept records upserted, the rest summarised."""
    units = plan_units(Path(site.source), cfg.chunk_mb << 20)
    nproc = workers_for_files(units, cfg.workers)
    triage = Triage(loaded.rules, loaded.relevant)
    _JOB.update(types=set(PIPELINE_TYPES), validate=cfg.validate, triage=triage)
    stats, put = ReadStats(), PutStats()
    seen: set[tuple[str, str]] = set()
    # a snapshot read sweeps what it did not see; on a first load there is nothing to sweep,
    # so the keys (a million tuples at 50k patients) are not even collected
    known = store.has_rows(site.id, site.source)
    sweep = cfg.snapshot and known
    gen = store.begin_census(site.id, site.source)
    lines_before: dict[str, int] = {}
    try:
        for unit, done in _results(units, nproc, cfg.chunk_mb << 20):
            offset = lines_before.get(unit.origin, 0) if unit.part else 0
            lines_before[unit.origin] = offset + done.lines
            rows = done.rows
            if offset:
                rows = [
                    (t, i, v, u, p, _renumber(o, offset), h, j) for t, i, v, u, p, o, h, j in rows
                ]
                for issue in done.stats.issues:
                    issue.origin = _renumber(issue.origin, offset)
            store.put_rows(
                site.id, rows, source=site.source, stats=put, batch_size=cfg.batch_size,
                fresh=not known,
            )  # fmt: skip
            if sweep:
                seen.update((r[0], r[1]) for r in rows)
            census = done.census
            store.add_census(site.id, site.source, gen, census.date_rows(), census.entry_rows())
            stats.merge(done.stats)
    finally:
        _JOB.clear()
    store.commit_census(site.id, site.source, gen)
    removed = store.sweep(site.id, site.source, seen) if sweep else 0
    log.info(
        "site %s: read %d resources from files (%d summarised, %d rejected; %d process(es))",
        site.id,
        sum(stats.read.values()),
        sum(stats.summarised.values()),
        sum(stats.rejected.values()),
        nproc,
    )
    return {
        "source": site.source,
        "kind": "files",
        "files": stats.files,
        "read": dict(stats.read),
        "rejected": dict(stats.rejected),
        "skipped_types": dict(stats.skipped_types),
        "summarised": dict(stats.summarised),
        "stored": {
            "inserted": put.inserted,
            "updated": put.updated,
            "unchanged": put.unchanged,
            "removed": removed,
        },
        "workers": nproc,
        "issues_total": len(stats.issues) + stats.issues_dropped,
        "issues": [{"origin": i.origin, "reason": i.reason} for i in stats.issues[:200]],
    }


def ingest(
    site: SiteConfig, cfg: Config, store: Store, loaded: Loaded, *, full_refresh: bool
) -> dict[str, Any]:
    """Bring a site's data into the store; returns the site's source report for run.json."""
    if not site.is_url:
        return ingest_files(site, cfg, store, loaded)
    from cohort.source.fhir import ServerSettings, pull  # only server runs need requests

    settings = ServerSettings.from_dict(
        {"base_url": site.source, **site.server}, f"site '{site.id}'"
    )
    concepts = loaded.trial.concepts()
    report = pull(
        site.id,
        settings,
        store,
        loaded.term.search_tokens(concepts),
        screen_tokens=[
            t for ts in loaded.term.search_tokens(loaded.trial.screen_concepts).values() for t in ts
        ],
        full_refresh=full_refresh,
        log=log,
    )
    return {"source": site.source, "kind": "fhir", **report.to_dict()}
