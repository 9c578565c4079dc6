"""Local SQLite store of FHIR resources per site: versioned idempotent upserts, marks, runs."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from cohort.errors import StoreError

__all__ = ["PutStats", "Store", "reference_id"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    site TEXT NOT NULL,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version TEXT,
    last_updated TEXT,
    patient TEXT,
    source TEXT NOT NULL,
    origin TEXT NOT NULL,
    hash TEXT NOT NULL,
    json BLOB NOT NULL,
    PRIMARY KEY (site, type, id)
);
CREATE INDEX IF NOT EXISTS resources_patient ON resources (site, patient, type);
CREATE TABLE IF NOT EXISTS marks (
    site TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (site, key)
);
-- Records no criterion reads (cohort.extract.census), summarised instead of stored whole:
-- record dates per patient (for last_seen) and one row per distinct code (for coverage).
-- Rows carry a generation; readers use the one named by the mark 'census-gen:<source>', which a
-- read sets only once it is complete, so a crashed read never shows half a census.
CREATE TABLE IF NOT EXISTS side_dates (
    site TEXT NOT NULL,
    source TEXT NOT NULL,
    gen INTEGER NOT NULL,
    patient TEXT NOT NULL,
    dates TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS side_dates_patient ON side_dates (site, patient);
CREATE TABLE IF NOT EXISTS census (
    site TEXT NOT NULL,
    source TEXT NOT NULL,
    gen INTEGER NOT NULL,
    rtype TEXT NOT NULL,
    codes TEXT NOT NULL,
    text TEXT NOT NULL,
    records INTEGER NOT NULL,
    patients TEXT NOT NULL,
    sample TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    record TEXT NOT NULL
);
"""


@dataclass
class PutStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    older: int = 0  # an older version than the stored one: never replaces it


def reference_id(ref: str, rtype: str = "Patient") -> str | None:
    """Id in a reference to `rtype`: "Patient/1", "https://x/fhir/Patient/1", ".../_history/2"."""
    if not isinstance(ref, str):
        return None
    parts = ref.strip().split("?", 1)[0].split("#", 1)[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == rtype and parts[-1]:
        return parts[-1]
    return None


def _patient_of(res: dict[str, Any]) -> str | None:
    if res.get("resourceType") == "Patient":
        rid = res.get("id")
        return rid if isinstance(rid, str) else None
    for key in ("subject", "patient"):
        ref = res.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            pid = reference_id(ref["reference"])
            if pid is not None:
                return pid
    return None


def _parse_instant(s: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    # A missing offset (not valid FHIR, but seen) is read as UTC so comparisons never raise.
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _newer(new: tuple[str | None, str | None], old: tuple[str | None, str | None]) -> int | None:
    """+1 when `new` (versionId, lastUpdated) is newer, -1 older, None when undecided."""
    nv, nl = new
    ov, ol = old
    if nv is not None and ov is not None and nv.isdigit() and ov.isdigit() and int(nv) != int(ov):
        return 1 if int(nv) > int(ov) else -1
    if nl is not None and ol is not None and nl != ol:
        a, b = _parse_instant(nl), _parse_instant(ol)
        if a is not None and b is not None:
            if a != b:
                return 1 if a > b else -1
        else:
            return 1 if nl > ol else -1
    return None


_SET_MARK = (
    "INSERT INTO marks (site, key, value) VALUES (?, ?, ?)"
    " ON CONFLICT (site, key) DO UPDATE SET value=excluded.value"
)
# mark key prefix naming a source's current census generation (also spelt out in two queries)
_CENSUS_MARK = "census-gen:"

_INSERT = (
    "{verb} INTO resources"
    " (site, type, id, version, last_updated, patient, source, origin, hash, json)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# (type, id, versionId, lastUpdated, patient, origin, hash, json): one resource ready to store
Row = tuple[str, str, str | None, str | None, str | None, str, str, bytes]


def prepare_row(res: dict[str, Any], origin: str, raw: bytes | None = None) -> Row:
    """What the store keeps of one resource; pure, so parallel readers can do it.

    `raw`, when given, is the resource's JSON text exactly as read (an NDJSON line): stored
    as is instead of serialising `res` again.
    """
    rtype, rid = res.get("resourceType"), res.get("id")
    if not isinstance(rtype, str) or not isinstance(rid, str):
        raise StoreError(f"cannot store a resource without resourceType and id ({origin})")
    meta = res.get("meta")
    if isinstance(meta, dict):
        version = meta.get("versionId") if isinstance(meta.get("versionId"), str) else None
        updated = meta.get("lastUpdated") if isinstance(meta.get("lastUpdated"), str) else None
    else:
        version = updated = None
    # Hash of key-sorted JSON: the same content read from a Bundle or NDJSON hashes equal.
    digest = hashlib.sha256(orjson.dumps(res, option=orjson.OPT_SORT_KEYS)).hexdigest()
    blob = raw.strip() if raw is not None else orjson.dumps(res)
    return (rtype, rid, version, updated, _patient_of(res), origin, digest, blob)


class Store:
    """SQLite store in WAL mode; the file is created 0600 and a new folder 0700."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            if not self.path.parent.exists():
                # Only folders we create are tightened: an existing folder is the user's choice.
                self.path.parent.mkdir(mode=0o700, parents=True)
                os.chmod(self.path.parent, 0o700)
            # Create the file ourselves so it is never world-readable, not even for a moment.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            os.chmod(self.path, 0o600)
            # Autocommit mode: transactions are explicit BEGIN/COMMIT around each batch.
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open store {self.path}: {_why(e)}") from None
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
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            self._db.close()
            raise StoreError(f"cannot open store {self.path}: {_why(e)}") from None

    # ---- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error as e:
            raise StoreError(f"cannot close store {self.path}: {_why(e)}") from None

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
        return StoreError(f"cannot {action} store {self.path}: {_why(e)}")

    # ---- resources -------------------------------------------------------------------------

    def put_resources(
        self,
        site: str,
        items: Iterable[tuple[dict[str, Any], str]],
        *,
        source: str,
        batch_size: int = 2000,
    ) -> PutStats:
        """Upsert (resource, origin) pairs in transactions of `batch_size`; idempotent."""
        stats = PutStats()
        batch: list[Row] = []
        for res, origin in items:
            batch.append(prepare_row(res, origin))
            if len(batch) >= batch_size:
                self.put_rows(site, batch, source=source, stats=stats)
                batch = []
        if batch:
            self.put_rows(site, batch, source=source, stats=stats)
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
    ) -> None:
        """Upsert prepared rows (`prepare_row`), `batch_size` per transaction (0: all in one).

        `fresh`: the caller knows the site had no rows when its read began (a first load), so a
        batch is first tried as plain inserts without looking anything up; a key already there
        (the same record twice in the input) rolls that batch back and redoes it as upserts.
        """
        step = batch_size or len(rows) or 1
        for i in range(0, len(rows), step):
            self._write_batch(site, rows[i : i + step], source, stats, fresh)

    def _write_batch(
        self, site: str, batch: list[Row], source: str, stats: PutStats, fresh: bool = False
    ) -> None:
        counts = PutStats()
        try:
            if fresh and self._insert_new(site, batch, source):
                counts.inserted = len(batch)
            else:
                with self._transaction():
                    self._put_many(site, batch, source, counts)
        except sqlite3.Error as e:
            raise self._err("write", e) from None
        # Counted only once the batch is durable, so the stats match what the store holds.
        stats.inserted += counts.inserted
        stats.updated += counts.updated
        stats.unchanged += counts.unchanged
        stats.older += counts.older

    def _insert_new(self, site: str, batch: list[Row], source: str) -> bool:
        """Insert a batch of new keys in one transaction; False (nothing written) on a clash."""
        keys = {(r[0], r[1]) for r in batch}
        if len(keys) != len(batch):
            return False  # a key twice in the batch: the upsert path decides which copy wins
        try:
            with self._transaction():
                self._db.executemany(
                    _INSERT.format(verb="INSERT"),
                    [(site, t, i, v, u, p, source, o, h, j) for t, i, v, u, p, o, h, j in batch],
                )
        except sqlite3.IntegrityError:
            return False  # rolled back: nothing written
        return True

    def _put_many(self, site: str, batch: list[Row], source: str, counts: PutStats) -> None:
        """One indexed lookup per resource type, one executemany.

        Per row: an older version than the stored one is skipped, the same version with the same
        content hash is unchanged, anything else replaces it (a key repeated inside the batch is
        compared with its earlier copy); bench/RESULTS.md has the numbers.
        """
        ids: dict[str, list[str]] = {}
        for row in batch:
            ids.setdefault(row[0], []).append(row[1])
        known: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        for rtype, rids in ids.items():
            for rid, version, updated, digest in self._db.execute(
                "SELECT id, version, last_updated, hash FROM resources"
                " WHERE site=? AND type=? AND id IN (SELECT value FROM json_each(?))",
                (site, rtype, orjson.dumps(rids).decode()),
            ):
                known[(rtype, rid)] = (version, updated, digest)
        out: dict[tuple[str, str], tuple[Any, ...]] = {}
        for rtype, rid, version, updated, patient, origin, digest, blob in batch:
            old = known.get((rtype, rid))
            if old is not None:
                newer = _newer((version, updated), (old[0], old[1]))
                if newer == -1:
                    counts.older += 1
                    continue
                if newer is None and old[2] == digest:
                    counts.unchanged += 1
                    continue
                counts.updated += 1
            else:
                counts.inserted += 1
            known[(rtype, rid)] = (version, updated, digest)
            out.pop((rtype, rid), None)  # keep write order = last-seen order
            out[(rtype, rid)] = (
                site, rtype, rid, version, updated, patient, source, origin, digest, blob,
            )  # fmt: skip
        self._db.executemany(_INSERT.format(verb="INSERT OR REPLACE"), list(out.values()))

    def delete_resource(self, site: str, rtype: str, rid: str) -> None:
        try:
            self._db.execute(
                "DELETE FROM resources WHERE site=? AND type=? AND id=?", (site, rtype, rid)
            )
        except sqlite3.Error as e:
            raise self._err("write", e) from None

    def sweep(self, site: str, source: str, keep: set[tuple[str, str]]) -> int:
        """Drop the site's records from `source` that a complete snapshot read did not contain."""
        try:
            stale = [
                (t, i)
                for t, i in self._query(
                    "SELECT type, id FROM resources WHERE site=? AND source=?", (site, source)
                )
                if (t, i) not in keep
            ]
            with self._transaction():
                self._db.executemany(
                    "DELETE FROM resources WHERE site=? AND type=? AND id=?",
                    [(site, t, i) for t, i in stale],
                )
        except sqlite3.Error as e:
            raise self._err("write", e) from None
        return len(stale)

    def has_rows(self, site: str, source: str) -> bool:
        """Whether any resource of `site` read from `source` is stored."""
        row = self._one("SELECT 1 FROM resources WHERE site=? AND source=? LIMIT 1", (site, source))
        return row is not None

    def patient_ids(self, site: str) -> list[str]:
        """Every patient id with at least one stored resource (a Patient or data about one)."""
        rows = self._query(
            "SELECT DISTINCT patient FROM resources WHERE site=? AND patient IS NOT NULL"
            " ORDER BY patient",
            (site,),
        )
        return [r[0] for r in rows]

    def iter_type(self, site: str, rtype: str) -> Iterator[dict[str, Any]]:
        for (blob,) in self._query(
            "SELECT json FROM resources WHERE site=? AND type=? ORDER BY id", (site, rtype)
        ):
            yield orjson.loads(blob)

    def iter_by_patient(
        self,
        site: str,
        patient_ids: Iterable[str] | None = None,
        types: Sequence[str] | None = None,
    ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """(patient id, resources) grouped and ordered by patient id; one patient in memory."""
        sql = "SELECT patient, json FROM resources WHERE site=? AND patient IS NOT NULL"
        params: list[Any] = [site]
        if patient_ids is not None:
            # One JSON array parameter: no SQL variable limit, no temp table to clean up.
            sql += " AND patient IN (SELECT value FROM json_each(?))"
            params.append(orjson.dumps(list(patient_ids)).decode())
        if types is not None:
            sql += " AND type IN (SELECT value FROM json_each(?))"
            params.append(orjson.dumps(list(types)).decode())
        sql += " ORDER BY patient, type, id"
        current: str | None = None
        group: list[dict[str, Any]] = []
        for pid, blob in self._query(sql, tuple(params)):
            if pid != current:
                if current is not None:
                    yield current, group
                current, group = pid, []
            group.append(orjson.loads(blob))
        if current is not None:
            yield current, group

    def get(self, site: str, rtype: str, rid: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT json FROM resources WHERE site=? AND type=? AND id=?", (site, rtype, rid)
        )
        if row is None:
            return None
        res: dict[str, Any] = orjson.loads(row[0])
        return res

    def count_by_type(self, site: str) -> dict[str, int]:
        rows = self._query(
            "SELECT type, COUNT(*) FROM resources WHERE site=? GROUP BY type ORDER BY type",
            (site,),
        )
        return {t: n for t, n in rows}

    # ---- census of summarised records -----------------------------------------------------

    def begin_census(self, site: str, source: str) -> int:
        """A new census generation for (site, source); leftovers of unfinished reads are dropped."""
        current = int(self.get_mark(site, _CENSUS_MARK + source) or 0)
        key = [(site, source, current)]
        self._write(
            [
                ("DELETE FROM side_dates WHERE site=? AND source=? AND gen>?", key),
                ("DELETE FROM census WHERE site=? AND source=? AND gen>?", key),
            ]
        )
        return current + 1

    def add_census(
        self,
        site: str,
        source: str,
        gen: int,
        date_rows: list[tuple[str, str]],
        entry_rows: list[tuple[Any, ...]],
    ) -> None:
        """Append (patient, "d1,d2") date rows and census entry rows to generation `gen`."""
        self._write(
            [
                (
                    "INSERT INTO side_dates (site, source, gen, patient, dates) VALUES (?,?,?,?,?)",
                    [(site, source, gen, pid, ds) for pid, ds in date_rows],
                ),
                (
                    "INSERT INTO census (site, source, gen, rtype, codes, text, records, patients,"
                    " sample) VALUES (?,?,?,?,?,?,?,?,?)",
                    [(site, source, gen, *row) for row in entry_rows],
                ),
            ]
        )

    def commit_census(self, site: str, source: str, gen: int) -> None:
        """Make `gen` the current census of (site, source) and drop the older ones, atomically."""
        key = [(site, source, gen)]
        self._write(
            [
                (_SET_MARK, [(site, _CENSUS_MARK + source, str(gen))]),
                ("DELETE FROM side_dates WHERE site=? AND source=? AND gen<>?", key),
                ("DELETE FROM census WHERE site=? AND source=? AND gen<>?", key),
            ]
        )

    def side_dates(self, site: str, patient_ids: Iterable[str]) -> dict[str, list[date]]:
        """Dates of the summarised records of these patients (current censuses only)."""
        out: dict[str, list[date]] = {}
        for pid, dates in self._query(
            "SELECT patient, dates FROM side_dates s WHERE site=?"
            " AND patient IN (SELECT value FROM json_each(?))"
            " AND gen = (SELECT CAST(value AS INTEGER) FROM marks m"
            " WHERE m.site = s.site AND m.key = 'census-gen:' || s.source)",
            (site, orjson.dumps(list(patient_ids)).decode()),
        ):
            out.setdefault(pid, []).extend(date.fromisoformat(d) for d in dates.split(",") if d)
        return out

    def census_rows(self, site: str) -> Iterator[tuple[Any, ...]]:
        """(rtype, codes, text, records, patients, sample) rows of the current censuses."""
        yield from self._query(
            "SELECT rtype, codes, text, records, patients, sample FROM census c WHERE site=?"
            " AND gen = (SELECT CAST(value AS INTEGER) FROM marks m"
            " WHERE m.site = c.site AND m.key = 'census-gen:' || c.source)",
            (site,),
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

    # ---- marks and runs --------------------------------------------------------------------

    def get_mark(self, site: str, key: str) -> str | None:
        row = self._one("SELECT value FROM marks WHERE site=? AND key=?", (site, key))
        return None if row is None else str(row[0])

    def set_mark(self, site: str, key: str, value: str) -> None:
        try:
            self._db.execute(_SET_MARK, (site, key, value))
        except sqlite3.Error as e:
            raise self._err("write", e) from None

    def add_run(self, record: dict[str, Any]) -> None:
        started = record.get("started")
        if not isinstance(started, str):
            started = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            self._db.execute(
                "INSERT INTO runs (started, record) VALUES (?, ?)",
                (started, orjson.dumps(record, default=str).decode()),
            )
        except sqlite3.Error as e:
            raise self._err("write", e) from None

    def runs(self, limit: int = 90) -> list[dict[str, Any]]:
        """The most recent run records, newest first."""
        rows = self._query("SELECT record FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        return [orjson.loads(r[0]) for r in rows]

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


def _why(e: BaseException) -> str:
    # sqlite and OS messages name the problem ("database is locked", "Permission denied"),
    # never row values; the class name is kept for context.
    msg = getattr(e, "strerror", None) or str(e)
    return f"{type(e).__name__}: {msg}"
