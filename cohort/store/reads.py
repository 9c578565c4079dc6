"""Reading stored records: by patient (evaluation), by type, one by key, counts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

__all__ = ["Reads"]


class Reads:
    """The read queries of `Store` over the `resources` table."""

    # provided by Store
    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        raise NotImplementedError

    def _query(self, sql: str, params: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        raise NotImplementedError

    def has_rows(self, site: str, rtype: str | None = None) -> bool:
        """Whether any resource of `site` (of `rtype`, when given) is stored: one key lookup."""
        if rtype is None:
            row = self._one("SELECT 1 FROM resources WHERE site=? LIMIT 1", (site,))
        else:
            row = self._one(
                "SELECT 1 FROM resources WHERE site=? AND type=? LIMIT 1", (site, rtype)
            )
        return row is not None

    def patient_ids(self, site: str) -> list[str]:
        """Every patient id with at least one stored resource (a Patient or data about one)."""
        rows = self._query(
            "SELECT DISTINCT patient FROM resources WHERE site=? AND patient IS NOT NULL"
            " ORDER BY patient",
            (site,),
        )
        return [r[0] for r in rows]

    def ids(self, site: str, rtype: str) -> list[str]:
        """The ids of the stored records of `rtype`, in order, read from the key (no JSON)."""
        rows = self._query(
            "SELECT id FROM resources WHERE site=? AND type=? ORDER BY id", (site, rtype)
        )
        return [r[0] for r in rows]

    def iter_type(
        self, site: str, rtype: str, containing: bytes | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every stored record of `rtype`, by id; with `containing`, only those whose JSON text
        holds those bytes, or holds a \\u escape (which may spell them: an NDJSON line is stored
        as read). A pre-filter in SQLite: the caller still checks the parsed record."""
        sql = "SELECT json FROM resources WHERE site=? AND type=?"
        params: tuple[Any, ...] = (site, rtype)
        if containing is not None:
            sql += " AND (instr(json, ?) > 0 OR instr(json, ?) > 0)"
            params = (*params, containing, b"\\u")
        for (blob,) in self._query(sql + " ORDER BY id", params):
            yield orjson.loads(blob)

    def iter_type_patients(
        self, site: str, rtype: str
    ) -> Iterator[tuple[str | None, dict[str, Any]]]:
        """(patient id as stored, record) of every stored record of `rtype`, by id: the stored
        patient, not one read again from the record (a record naming its patient by identifier
        only is given one after the read, `Store.attribute_by_identifier`)."""
        sql = "SELECT patient, json FROM resources WHERE site=? AND type=? ORDER BY id"
        for pid, blob in self._query(sql, (site, rtype)):
            yield pid, orjson.loads(blob)

    def iter_by_patient(
        self,
        site: str,
        patient_ids: Iterable[str] | None = None,
        types: Sequence[str] | None = None,
    ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """(patient id, resources) grouped and ordered by patient id; one patient in memory."""
        sql = "SELECT patient, json FROM resources WHERE site=?"
        params: list[Any] = [site]
        if patient_ids is not None:
            # One JSON array parameter: no SQL variable limit, no temp table to clean up. No
            # "patient IS NOT NULL" beside it (IN never matches NULL): with it, SQLite walks the
            # whole patient index as a range for every chunk and tests each entry against the
            # list, instead of seeking each id (10k read-types: 1.31 -> 0.54 s, bench/RESULTS.md).
            sql += " AND patient IN (SELECT value FROM json_each(?))"
            params.append(orjson.dumps(list(patient_ids)).decode())
        else:
            sql += " AND patient IS NOT NULL"
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
