"""Read a file source's units in worker processes: results in unit order, memory bounded,
and this process taking over when a worker dies."""

from __future__ import annotations

import logging
import marshal
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cohort.extract import Census, Triage
from cohort.forks import workers_for
from cohort.pool import ForkPool
from cohort.source.files import ReadStats, Unit, data_bytes, read_unit, stream_units
from cohort.store import Row, Tomb, Tombstones, prepare_row
from cohort.terminology.units import warm as warm_units

__all__ = ["JOB", "PARALLEL_MIN_BYTES", "read_results", "workers_for_files"]

log = logging.getLogger("cohort")

# Below this much data a pool of processes costs more than it saves.
PARALLEL_MIN_BYTES = 32 << 20


@dataclass
class _Done:
    """What one unit of a file read produced, as sent back by a worker."""

    rows: list[Row]
    stats: ReadStats
    census: Census
    lines: int  # lines in a byte-range unit (0 otherwise)
    # the unit's summarised records that no later row of the unit overrules (`snapshot =
    # false` reads only; see Tombstones)
    tombs: list[Tomb]

    # The rows cross from a reading process as one marshal blob: tuples of str/bytes/None
    # travel there and back in ~1.4 us a row against ~2.6 us pickled (bench/RESULTS.md).
    def __getstate__(self) -> tuple[bytes, ReadStats, Census, int]:
        return marshal.dumps((self.rows, self.tombs)), self.stats, self.census, self.lines

    def __setstate__(self, state: tuple[bytes, ReadStats, Census, int]) -> None:
        blob, self.stats, self.census, self.lines = state
        # (written by this run's own reading process)
        self.rows, self.tombs = marshal.loads(blob)  # noqa: S302


# Set in the parent before the pool forks, so workers inherit it (fork start method only).
JOB: dict[str, Any] = {}


def _read(unit: Unit) -> _Done:
    stats = ReadStats()
    triage: Triage = JOB["triage"]
    items = read_unit(unit, stats, types=JOB["types"], validate=JOB["validate"], triage=triage)
    if triage.tombs is not None:
        rows, tombs = _read_with_tombs(items, triage.tombs)
        return _Done(rows, stats, triage.take(), stats.lines, tombs)
    rows = [prepare_row(res, origin, raw) for res, origin, raw in items]
    return _Done(rows, stats, triage.take(), stats.lines, [])


def _read_with_tombs(
    items: Iterator[tuple[dict[str, Any], str, bytes | None]], tombs: list[Tomb]
) -> tuple[list[Row], list[Tomb]]:
    """The rows of a unit, and the tombstones the triage left in `tombs` while reading it that
    no row read after them overrules. The reader is lazy: when it hands over a row, `tombs`
    holds exactly the tombstones of the records read before it."""
    del tombs[:]  # (the list stays the one the triage's line handlers append to)
    held = Tombstones()
    rows: list[Row] = []
    for res, origin, raw in items:
        if tombs:
            held.add(tombs)
            del tombs[:]
        row = prepare_row(res, origin, raw)
        held.overrule((row,))
        rows.append(row)
    held.add(tombs)
    del tombs[:]
    return rows, held.take()


def workers_for_files(units: list[Unit], configured: int) -> int:
    """Processes to read with: `configured` if set, else one per core (max 4) for big inputs."""
    return workers_for(sum(data_bytes(u) for u in units), PARALLEL_MIN_BYTES, configured)


def _read_all(batch: list[Unit]) -> list[_Done]:
    return [_read(u) for u in batch]


def _batched(units: Iterator[Unit], chunk_bytes: int) -> Iterator[list[Unit]]:
    """Consecutive units gathered up to `chunk_bytes` of data (a big unit goes alone): one
    task per ~chunk, however small the files (e.g. a folder of per-patient Bundles)."""
    batch: list[Unit] = []
    size = 0
    for u in units:
        n = data_bytes(u)
        if batch and size + n > chunk_bytes:
            yield batch
            batch, size = [], 0
        batch.append(u)
        size += n
    if batch:
        yield batch


def read_results(
    units: list[Unit],
    nproc: int,
    chunk_bytes: int = 16 << 20,
    *,
    pieces: bool = False,
    last_given: Callable[[], None] | None = None,
) -> Iterator[tuple[Unit, _Done]]:
    """Each unit's result, in unit order, with bounded memory: units go to the workers in
    batches of about `chunk_bytes` (many small files make one task), 2 batches per worker in
    flight.

    With workers, a big compressed NDJSON file is decompressed here and its line-aligned
    pieces parsed by them (`stream_units`); with `pieces` (a `snapshot = false` read, whose
    units carry a tombstone per summarised record) one process reads it in those pieces too,
    so its tombstones are held a piece at a time and weighed as with workers. If a reading
    process dies (e.g. killed for memory), the others are killed too and the units from the
    first batch not yet handed over on are read in this process instead: every earlier unit was
    already written in order. However the caller stops (an error, SIGTERM), the workers are
    killed and reaped; they also die with this process (see `as_child`).

    `last_given` is called once, with workers, when the last unit has gone to them, at least
    one has come back and some are still theirs: what this process has to do anyway at the end
    of the read (the patient index) it can do then, while they read the last ones.
    """
    if nproc <= 1:
        for u in stream_units(units, chunk_bytes) if pieces else units:
            yield u, _read(u)
        return
    todo = _batched(stream_units(units, chunk_bytes), chunk_bytes)
    # the batches handed out, in order, each with its worker (which works its own in order)
    given: deque[tuple[list[Unit], int]] = deque()
    pool = ForkPool()
    try:
        pool.start(nproc, _read_all)
        load = [0] * pool.size  # batches given to each worker and not yet handed over

        left = True  # (units not yet given to a worker)

        def submit() -> None:
            """Fill the window, each batch to the worker with the fewest."""
            nonlocal left
            while left and len(given) < 2 * pool.size:
                batch = next(todo, None)
                if batch is None:
                    left = False
                    break
                i = load.index(min(load))
                pool.submit(i, batch)
                load[i] += 1
                given.append((batch, i))

        submit()
        # Until the first piece is parsed this process has nothing to do: build the UCUM
        # registry the evaluation's forks will share (between ingest and evaluation it
        # would run with the other cores idle).
        warm_units()
        while given:
            batch, i = given[0]
            dones = pool.result(i)
            if dones is None:
                log.warning("a reading process died; reading the rest in this process")
                break
            given.popleft()
            load[i] -= 1
            yield from zip(batch, dones, strict=True)
            submit()
            if not left and given and last_given is not None:
                last_given()
                last_given = None
    finally:
        pool.close()
    for batch, _ in given:
        yield from ((u, _read(u)) for u in batch)
    for batch in todo:
        yield from ((u, _read(u)) for u in batch)
