"""The store's marks (sync positions, file stamps, census generations) and run history."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from cohort.errors import StoreError
from cohort.store.schema import SET_MARK

__all__ = ["MarkTables"]


class MarkTables:
    """The `marks` and `runs` tables of `Store`: one value per (site, key), and one JSON
    record per finished run (the trend chart's history)."""

    # provided by Store
    _db: sqlite3.Connection

    def _err(self, action: str, e: sqlite3.Error) -> StoreError:
        raise NotImplementedError

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        raise NotImplementedError

    def _query(self, sql: str, params: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        raise NotImplementedError

    def get_mark(self, site: str, key: str) -> str | None:
        row = self._one("SELECT value FROM marks WHERE site=? AND key=?", (site, key))
        return None if row is None else str(row[0])

    def set_mark(self, site: str, key: str, value: str) -> None:
        try:
            self._db.execute(SET_MARK, (site, key, value))
        except sqlite3.Error as e:
            raise self._err("write", e) from None

    def mark_keys(self, site: str, prefix: str) -> list[str]:
        """The keys of `site`'s marks that start with `prefix`."""
        rows = self._query("SELECT key FROM marks WHERE site=? ORDER BY key", (site,))
        return [k for (k,) in rows if k.startswith(prefix)]

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
