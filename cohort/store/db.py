"""The Store: SQLite in WAL mode, versioned idempotent upserts, census, marks and runs."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from cohort.atomic import ensure_dir
from cohort.errors import StoreError
from cohort.source.refused import STUB, over_readable
from cohort.store.census import CensusTables
from cohort.store.identifiers import UnattributedTables
from cohort.store.loads import Loads
from cohort.store.marks import MarkTables
from cohort.store.reads import Reads
from cohort.store.removals import Removals
from cohort.store.rows import (
    PutStats,
    Row,
    bound,
    compare_versions,
    patient_of,
    prepare_row,
    same_content,
)
from cohort.store.schema import INSERT, SCHEMA
from cohort.store.why import why

__all__ = ["Store"]


# (Reads before Removals: its count_by_type is what Removals' stub stands for)
class Store(MarkTables, CensusTables, Reads, Removals, UnattributedTables, Loads):
    """SQLite store in WAL mode; the file is created 0600 and a new folder 0700."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            # Only folders we create are tightened (each missing one, not just the last: under
            # umask 000 its parents were 0777): an existing folder is the user's choice.
            ensure_dir(self.path.parent)
            # Create the file ourselves so it is never world-readable, not even for a moment.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            os.chmod(self.path, 0o600)
            # Autocommit mode: transactions are explicit BEGIN/COMMIT around each batch.
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open store {self.path}: {why(e, self.path)}") from None
        try:
            # 16 KB pages for a new store: rows carry ~0.5-1 KB of JSON each, and bulk inserts
            # run ~30% faster than with 4 KB pages (bench/RESULTS.md). An existing file keeps its.
            self._db.execute("PRAGMA page_size=16384")
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot open store {self.path}: WAL mode unavailable")
            # NORMAL in WAL: a process crash loses nothing committed; power loss may lose the
            # last transactions but never corrupts the file.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            # Bulk loads: checkpoint the WAL every ~80 MB instead of every 4 MB (each checkpoint
            # copies pages back into the file) and keep 64 MB of pages cached. bench 1k first
            # load 2.38 s -> 1.36 s (bench/RESULTS.md); the WAL is truncated back on close.
            page = int(self._db.execute("PRAGMA page_size").fetchone()[0]) or 4096
            self._db.execute(f"PRAGMA wal_autocheckpoint={(80 << 20) // page}")
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as e:
            self._db.close()
            raise StoreError(f"cannot open store {self.path}: {why(e, self.path)}") from None

    # ---- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error as e:
            raise StoreError(f"cannot close store {self.path}: {why(e)}") from None

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _err(self, action: str, e: sqlite3.Error) -> StoreError:
        return StoreError(f"cannot {action} store {self.path}: {why(e, self.path)}")

    # ---- resources -------------------------------------------------------------------------

    def put_resources(
        self,
        site: str,
        items: Iterable[tuple[dict[str, Any], str]],
        *,
        source: str,
        batch_size: int = 2000,
        lift: Collection[tuple[str, str]] = (),
    ) -> PutStats:
        """Upsert (resource, origin) pairs in transactions of `batch_size`; idempotent.
        `lift`: as put_rows' (the first copy of these keys replaces the stored one)."""
        stats = PutStats()
        batch: list[Row] = []
        left = set(lift)
        for res, origin in items:
            batch.append(prepare_row(res, origin))
            if len(batch) >= batch_size:
                self.put_rows(site, batch, source=source, stats=stats, lift=left)
                left -= {(r[0], r[1]) for r in batch}
                batch = []
        if batch:
            self.put_rows(site, batch, source=source, stats=stats, lift=left)
        return stats

    def put_rows(
        self,
        site: str,
        rows: list[Row],
        *,
        source: str,
        stats: PutStats,
        batch_size: int = 0,
        fresh: bool = False,
        lift: Collection[tuple[str, str]] = (),
    ) -> None:
        """Upsert prepared rows (`prepare_row`), `batch_size` per transaction (0: all in one).

        `fresh`: the caller knows the site had no rows when its read began (a first load), so a
        batch is first tried as plain inserts without looking anything up; a key already there
        (the same record twice in the input) rolls that batch back and redoes it as upserts.
        `lift`: (type, id) keys whose stored copy a tombstone of this read replaced (dropped at
        the read's end): the first of these rows replaces it even when older (see _put_many).
        """
        step = batch_size or len(rows) or 1
        left = set(lift)
        for i in range(0, len(rows), step):
            batch = rows[i : i + step]
            here = {(r[0], r[1]) for r in batch} & left if left else set()
            left -= here
            self._write_batch(site, batch, source, stats, fresh, here)

    def _write_batch(
        self,
        site: str,
        batch: list[Row],
        source: str,
        stats: PutStats,
        fresh: bool = False,
        lift: set[tuple[str, str]] | None = None,
    ) -> None:
        counts = PutStats()
        try:
            if fresh and not lift and self._insert_new(site, batch, source):
                counts.inserted = len(batch)
                for row in batch:
                    counts.new[row[0]] = counts.new.get(row[0], 0) + 1
            else:
                with self._transaction():
                    self._put_many(site, batch, source, counts, lift or ())
        except sqlite3.Error as e:
            raise self._err("write", e) from None
        # Counted only once the batch is durable, so the stats match what the store holds.
        stats.inserted += counts.inserted
        stats.updated += counts.updated
        stats.unchanged += counts.unchanged
        stats.older += counts.older
        for rtype, n in counts.new.items():
            stats.new[rtype] = stats.new.get(rtype, 0) + n

    def _insert_new(self, site: str, batch: list[Row], source: str) -> bool:
        """Insert a batch of new keys in one transaction; False (nothing written) on a clash:
        a key stored already or twice in the batch (the upsert path then decides which copy
        wins). The primary key finds a key twice: no set of the batch's keys built first (~1.5
        us a row of the first load's one writing process, bench/RESULTS.md)."""
        try:
            with self._transaction():
                self._db.executemany(INSERT.format(verb="INSERT"), bound(site, source, batch))
        except sqlite3.IntegrityError:
            return False  # rolled back: nothing written
        return True

    def _put_many(
        self,
        site: str,
        batch: list[Row],
        source: str,
        counts: PutStats,
        lift: Collection[tuple[str, str]] = (),
    ) -> None:
        """One indexed lookup per resource type, one executemany.

        Per row: an older version than the stored one is skipped, the same version with the same
        content is unchanged, anything else replaces it (a key repeated inside the batch is
        compared with its earlier copy); bench/RESULTS.md has the numbers. Content is compared
        by hash of the stored bytes, and only where those differ, as key-sorted JSON.
        A key in `lift` (its stored copy replaced by a tombstone read before this batch): the
        stored copy is not current, so the first row of the key replaces it even when older.
        """
        ids: dict[str, list[str]] = {}
        # keys read naming no patient (Medications; a record naming its patient by identifier
        # only): few, so the stored patient is looked at only for them
        nobody: set[tuple[str, str]] = set()
        for row in batch:
            ids.setdefault(row[0], []).append(row[1])
            if not row[4]:
                nobody.add((row[0], row[1]))
        # (version, lastUpdated, hash, JSON text when known) of each key seen so far
        known: dict[tuple[str, str], tuple[Any, Any, Any, bytes | None]] = {}
        # stored with the patient the identifier pass gave them (Store.attribute_by_identifier)
        attributed: set[tuple[str, str]] = set()
        for rtype, rids in ids.items():
            for rid, version, updated, digest, patient in self._select(
                "id, version, last_updated, hash, patient", site, rtype, rids
            ):
                known[(rtype, rid)] = (version, updated, digest, None)
                if patient is not None and nobody and (rtype, rid) in nobody:
                    attributed.add((rtype, rid))
        # the stored JSON, fetched only where the bytes differ and the versions do not decide,
        # or a refused record's stub comes over it (source.refused.over_readable)
        texts: dict[str, list[str]] = {}
        for rtype, rid, version, updated, _, _, digest, blob in batch:
            old = known.get((rtype, rid))
            if (
                old is not None
                and old[2] != digest
                and (compare_versions((version, updated), (old[0], old[1])) is None or STUB in blob)
            ):
                texts.setdefault(rtype, []).append(rid)
        stored = {
            (rtype, rid): bytes(text)
            for rtype, rids in texts.items()
            for rid, text in self._select("id, json", site, rtype, rids)
        }
        out: dict[tuple[str, str], Row] = {}
        rehash: dict[tuple[str, str], str] = {}  # same content as stored, other bytes
        unchanged: set[tuple[str, str]] = set()  # (only kept while `attributed` has keys)
        lifted = set(lift)
        for rtype, rid, version, updated, patient, origin, digest, blob in batch:
            key = (rtype, rid)
            old = known.get(key)
            if old is not None:
                newer = compare_versions((version, updated), (old[0], old[1]))
                doomed = bool(lifted) and key in lifted
                if doomed:
                    lifted.discard(key)  # (against the stored copy, not this batch's rows)
                    newer = 1 if newer == -1 else newer
                if newer == -1:
                    counts.older += 1
                    continue
                if old[2] != digest and not doomed and STUB in blob:
                    # a stub never erases a readable copy: stored with it (source.refused)
                    text = old[3] if old[3] is not None else stored.get(key)
                    stub = over_readable(blob, text) if text is not None else None
                    if stub is not None:
                        blob = orjson.dumps(stub)
                        digest, patient = hashlib.sha256(blob).hexdigest(), patient_of(stub)
                if newer is None:
                    if old[2] == digest:
                        counts.unchanged += 1
                        if attributed:
                            unchanged.add(key)
                        continue
                    text = old[3] if old[3] is not None else stored.get(key)
                    if text is not None and same_content(text, blob):
                        counts.unchanged += 1
                        if attributed:
                            unchanged.add(key)
                        if old[3] is None:
                            rehash[key] = digest
                        continue
                counts.updated += 1
            else:
                counts.inserted += 1
                counts.new[rtype] = counts.new.get(rtype, 0) + 1
            known[key] = (version, updated, digest, blob)
            out.pop(key, None)  # keep write order = last-seen order
            out[key] = (rtype, rid, version, updated, patient, origin, digest, blob)
        self._db.executemany(
            INSERT.format(verb="INSERT OR REPLACE"), bound(site, source, out.values())
        )
        # the row keeps its bytes but takes the hash of these equal ones, so the next read of
        # the same bytes (e.g. every nightly re-read of a file, after an upgrade) compares fast
        self._db.executemany(
            "UPDATE resources SET hash=? WHERE site=? AND type=? AND id=?",
            [(d, site, t, i) for (t, i), d in rehash.items() if (t, i) not in out],
        )
        # Read again unchanged, such a record names its patient by identifier as before, but
        # who holds it is tonight's Patients' to say: the identifier pass gives it again (it
        # kept last night's holder, unlike a read into a new store)
        self._db.executemany(
            "UPDATE resources SET patient=NULL WHERE site=? AND type=? AND id=?",
            [(site, t, i) for t, i in attributed if (t, i) in unchanged and (t, i) not in out],
        )

    def _select(self, columns: str, site: str, rtype: str, rids: list[str]) -> Iterator[Any]:
        """`columns` of the stored resources of one type among `rids` (any number of ids)."""
        return self._db.execute(
            f"SELECT {columns} FROM resources"  # noqa: S608 (columns are the caller's literals)
            " WHERE site=? AND type=? AND id IN (SELECT value FROM json_each(?))",
            (site, rtype, orjson.dumps(rids).decode()),
        )

    def _write(self, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """executemany each statement, all in one transaction."""
        try:
            with self._transaction():
                for sql, rows in statements:
                    self._db.executemany(sql, rows)
        except sqlite3.Error as e:
            raise self._err("write", e) from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; any error rolls back and propagates."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    # ---- helpers ---------------------------------------------------------------------------

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = self._db.execute(sql, params).fetchone()
        except sqlite3.Error as e:
            raise self._err("read", e) from None
        return row

    def _query(self, sql: str, params: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        """Rows of a read query, streamed; sqlite errors become StoreError."""
        try:
            cur = self._db.execute(sql, params)
            while True:
                rows = cur.fetchmany(500)
                if not rows:
                    return
                yield from rows
        except sqlite3.Error as e:
            raise self._err("read", e) from None
