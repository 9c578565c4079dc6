"""After a load: a new store's patient index built once the rows are in, the WAL copied back."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from cohort.errors import StoreError
from cohort.store.schema import PATIENT_INDEX

__all__ = ["Loads"]


class Loads:
    """`Store.first_load` and `Store.backfill`."""

    # provided by Store
    _db: sqlite3.Connection

    def _err(self, action: str, e: sqlite3.Error) -> StoreError:
        raise NotImplementedError

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        raise NotImplementedError

    @contextmanager
    def first_load(self) -> Iterator[Callable[[], None]]:
        """Around a load: when the store holds no resources at all (a new store), the rows go
        in without the patient index, which is built once at the end: one sorted build costs
        less than an index insert per row (dense10k's 229k rows written, build included: 1.91
        -> 1.72 s CPU). Nothing reads that index during a file read; it is back however the
        load ends, and a process killed meanwhile leaves a store whose next open creates it
        (SCHEMA: IF NOT EXISTS). Yields a function that builds it at once (nothing if it is
        there): called once the last rows are being read elsewhere, it is built while they
        are, and those few rows go in through it."""
        empty = self._one("SELECT 1 FROM resources LIMIT 1", ()) is None
        if empty:
            try:
                self._db.execute("DROP INDEX IF EXISTS resources_patient")
            except sqlite3.Error as e:
                raise self._err("write", e) from None
        missing = empty

        def build() -> None:
            nonlocal missing
            if missing:
                try:
                    self._db.execute(PATIENT_INDEX)
                except sqlite3.Error as e:
                    raise self._err("write", e) from None
                missing = False

        failed = True
        try:
            yield build
            failed = False
        finally:
            try:
                build()
            except StoreError:
                if not failed:  # (else the load's own error is the one to see)
                    raise

    def backfill(self) -> None:
        """Copy what the WAL holds into the store file now (a passive checkpoint: readers and
        a writer go on meanwhile). Up to ~80 MB of a load's pages are left there
        (`wal_autocheckpoint`), which the close at the end of a run would otherwise copy
        alone; an evaluation fork does it beside the evaluation (cohort.screening). Best
        effort: what it cannot copy, or an error, is left to that close."""
        with suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
