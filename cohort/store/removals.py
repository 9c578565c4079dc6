"""Removing stored records: a snapshot's sweep, its guard, increments' tombstones, deletions."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager
from typing import Any

from cohort.errors import StoreError
from cohort.store.rows import Tomb, compare_versions

__all__ = ["MASS_REMOVAL_MIN", "Removals"]

# records of a type a snapshot read or full refresh may always drop (deaths, merges), whatever
# share of the type they are (see Store.over_removal)
MASS_REMOVAL_MIN = 10


class Removals:
    """The deletions of `Store`: what a snapshot read or full refresh drops (guarded against
    an incomplete answer), which stored records `snapshot = false` tombstones replace."""

    # provided by Store
    _db: sqlite3.Connection

    def _err(self, action: str, e: sqlite3.Error) -> StoreError:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _select(self, columns: str, site: str, rtype: str, rids: list[str]) -> Iterator[Any]:
        raise NotImplementedError

    def _query(self, sql: str, params: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        raise NotImplementedError

    def count_by_type(self, site: str) -> dict[str, int]:
        raise NotImplementedError

    def doomed(self, site: str, tombs: list[Tomb]) -> list[tuple[str, str]]:
        """(type, id) of the stored records of `site` that these tombstones (summarised copies
        read after them, see rows.Tombstones) replace: those a tombstone is not older than
        (newer by `compare_versions`, or undecided: it was read later). One lookup per type;
        nothing is deleted here (the read drops them once it is complete, see cohort.ingest)."""
        ids: dict[str, list[str]] = {}
        for tomb in tombs:
            ids.setdefault(tomb[0], []).append(tomb[1])
        versions = {(t, i): (v, u) for t, i, v, u in tombs}
        try:
            return [
                (rtype, rid)
                for rtype, rids in ids.items()
                for rid, version, updated in self._select(
                    "id, version, last_updated", site, rtype, rids
                )
                if compare_versions(versions[(rtype, rid)], (version, updated)) != -1
            ]
        except sqlite3.Error as e:
            raise self._err("read", e) from None

    def stale(self, site: str, keep: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """(type, id) of the site's records that are not in `keep`: what a complete snapshot
        read that saw only `keep` would drop. Every record of the site counts, from whichever
        source it was read (a site has one source; after its path changed, the records read
        from the old path were never dropped again)."""
        rows = self._query("SELECT type, id FROM resources WHERE site=?", (site,))
        return [(t, i) for t, i in rows if (t, i) not in keep]

    def over_removal(
        self,
        site: str,
        stale: list[tuple[str, str]],
        limit: float,
        exempt: Collection[str] = (),
        added: dict[str, int] | None = None,
    ) -> tuple[str, int, int] | None:
        """(type, to drop, stored) of the first type (not `exempt`) of which dropping `stale`
        would remove more than `limit` of the site's records (and more than MASS_REMOVAL_MIN):
        a snapshot or full refresh that found so little is an incomplete answer, not deletions
        (callers refuse). `added`: records of each type the read inserted, not counted as
        stored (a folder of other patients, as many, would lack only half of a doubled count)."""
        stored = self.count_by_type(site)
        for rtype, n in (added or {}).items():
            stored[rtype] = stored.get(rtype, 0) - n
        for rtype, n in sorted(Counter(t for t, _ in stale).items()):
            if rtype in exempt:
                continue
            if n > MASS_REMOVAL_MIN and n > limit * stored.get(rtype, 0):
                return rtype, n, stored.get(rtype, 0)
        return None

    def drop_other_types(self, site: str, keep: Collection[str]) -> dict[str, int]:
        """Delete the site's records of every type not in `keep`, in one transaction; returns
        how many of each type. The site's types are found by index seeks, one per type (no
        scan of its records: this runs after every pull)."""
        try:
            with self._transaction():
                found: dict[str, int] = {}
                last = ""
                while True:
                    row = self._db.execute(
                        "SELECT MIN(type) FROM resources WHERE site=? AND type>?", (site, last)
                    ).fetchone()
                    if row is None or row[0] is None:
                        break
                    last = row[0]
                    if last not in keep:
                        found[last] = self._db.execute(
                            "SELECT COUNT(*) FROM resources WHERE site=? AND type=?", (site, last)
                        ).fetchone()[0]
                        self._db.execute(
                            "DELETE FROM resources WHERE site=? AND type=?", (site, last)
                        )
        except sqlite3.Error as e:
            raise self._err("write", e) from None
        return found

    def drop(self, site: str, keys: list[tuple[str, str]]) -> None:
        """Delete these (type, id) records of `site`, in one transaction."""
        try:
            with self._transaction():
                self._db.executemany(
                    "DELETE FROM resources WHERE site=? AND type=? AND id=?",
                    [(site, t, i) for t, i in keys],
                )
        except sqlite3.Error as e:
            raise self._err("write", e) from None
