"""The store's census of summarised records: per-patient side dates and per-code entries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from itertools import groupby
from operator import itemgetter
from typing import Any

import orjson

from cohort.store.schema import (
    CARRIED_MARK,
    CENSUS_MARK,
    COUNTS_MARK,
    FHIR_MARK,
    FILES_MARK,
    LATEST_MARK,
    MEDICATION_MARK,
    SET_MARK,
)

__all__ = ["CensusTables", "Side"]

# What a patient's summarised records say (Store.side_facts): their dates (for last_seen), the
# starts of the medication records (None: undated), the number of records per type and the date
# of the latest per type (not of medication records; none in a store read before they were kept)
Side = tuple[list[date], list[date | None], dict[str, int], dict[str, date]]

# A row `t` of side_dates or census is of its source's current generation (parameter: CENSUS_MARK)
_CURRENT = (
    "gen = (SELECT CAST(value AS INTEGER) FROM marks m"
    " WHERE m.site = t.site AND m.key = ? || t.source)"
)


class CensusTables:
    """The census tables of `Store` (cohort.extract.census writes them, evaluation and
    `cohort mappings coverage` read them). Rows carry a generation that becomes current only
    when a read completes, so a crashed read never shows half a census."""

    # provided by Store
    def _write(self, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        raise NotImplementedError

    def _query(self, sql: str, params: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        raise NotImplementedError

    def get_mark(self, site: str, key: str) -> str | None:
        raise NotImplementedError

    def begin_census(self, site: str, source: str) -> int:
        """A new census generation for (site, source); leftovers of unfinished reads are dropped."""
        current = int(self.get_mark(site, CENSUS_MARK + source) or 0)
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

    def carry_census(self, site: str, source: str, gen: int) -> None:
        """Add to `gen` of (site, source), before it is committed, what the site's current
        censuses hold that it lacks: for a read that could not read every file whole. What such
        a file holds is unknown, so its summarised records stay as last read, as its stored
        records do (cohort.ingest): their dates still date `last_seen`, a medication record
        still counts as one. Per patient, the date tokens `gen` lacks, and each per-type count
        above `gen`'s, as a floor (a count is no set: what `gen` read of the file is unknown),
        and each per-type latest date later than `gen`'s, in one row (so nights of damaged
        reads in a row add no rows); per code element, the census rows of one `gen` has none
        of (one it has keeps this read's counts, which coverage shows)."""
        rows = "SELECT patient, dates FROM side_dates t WHERE site=? AND {} ORDER BY patient"
        fresh = _tokens(self._query(rows.format("source=? AND gen=?"), (site, source, gen)))
        now = next(fresh, None)
        carried = []
        # (both in patient order: this read's census is walked, not held in memory)
        for pid, tokens, counts, latest in _tokens(
            self._query(rows.format(_CURRENT), (site, CENSUS_MARK))
        ):
            while now is not None and now[0] < pid:
                now = next(fresh, None)
            if now is not None and now[0] == pid:
                tokens -= now[1]
                counts = {t: n for t, n in counts.items() if n > now[2].get(t, 0)}
                latest = {t: d for t, d in latest.items() if d > now[3].get(t, "")}
            if tokens or counts or latest:
                text = ",".join(sorted(tokens))
                if counts or latest:
                    tail = [f"{CARRIED_MARK}{t}={n}" for t, n in sorted(counts.items())]
                    tail += (f"{t}{LATEST_MARK}{d}" for t, d in sorted(latest.items()))
                    text += COUNTS_MARK + ",".join(tail)
                carried.append((site, source, gen, pid, text))
        # An uncorrelated NOT IN: sqlite builds one index of `gen`'s keys for it (a correlated
        # NOT EXISTS on the unindexed table scanned `gen` once per row: 81 s for 615 patients)
        entries = (
            "INSERT INTO census"  # noqa: S608 (constant SQL)
            " (site, source, gen, rtype, codes, text, records, patients, sample)"
            " SELECT site, ?, ?, rtype, codes, text, records, patients, sample"
            " FROM census t WHERE site=? AND " + _CURRENT + " AND (rtype, codes, text) NOT IN"
            " (SELECT rtype, codes, text FROM census WHERE site=? AND source=? AND gen=?)"
        )
        self._write(
            [
                (
                    "INSERT INTO side_dates (site, source, gen, patient, dates) VALUES (?,?,?,?,?)",
                    carried,
                ),
                (entries, [(source, gen, site, CENSUS_MARK, site, source, gen)]),
            ]
        )

    def commit_census(self, site: str, source: str, gen: int) -> None:
        """Make `gen` the current census of (site, source) and drop the older ones, atomically."""
        key = [(site, source, gen)]
        self._write(
            [
                (SET_MARK, [(site, CENSUS_MARK + source, str(gen))]),
                ("DELETE FROM side_dates WHERE site=? AND source=? AND gen<>?", key),
                ("DELETE FROM census WHERE site=? AND source=? AND gen<>?", key),
            ]
        )

    def forget_other_sources(self, site: str, source: str) -> None:
        """Drop the census and the read marks `site` holds of sources other than `source`: once
        a snapshot read of `source` is complete it is all the site's data (after a change of
        path the old path's census stayed current beside the new one, counted twice for
        coverage and dating `last_seen` from records long gone; and its marks would have let a
        later switch back skip reading as "unchanged" files whose records were since dropped)."""
        mine = [CENSUS_MARK + source, FILES_MARK + source]
        others = [(site, source)]
        marks = [(site, CENSUS_MARK + "%", FILES_MARK + "%", FHIR_MARK + "%", *mine)]
        self._write(
            [
                ("DELETE FROM side_dates WHERE site=? AND source<>?", others),
                ("DELETE FROM census WHERE site=? AND source<>?", others),
                (
                    "DELETE FROM marks WHERE site=? AND (key LIKE ? OR key LIKE ? OR key LIKE ?)"
                    " AND key NOT IN (?, ?)",
                    marks,
                ),
            ]
        )

    def side_dates(self, site: str, patient_ids: Iterable[str]) -> dict[str, list[date]]:
        """Dates of the summarised records of these patients (current censuses only)."""
        return {pid: side[0] for pid, side in self.side_facts(site, patient_ids).items()}

    def side_facts(self, site: str, patient_ids: Iterable[str]) -> dict[str, Side]:
        """(record dates, medication starts, records per type, latest date per type) of the
        summarised records of these patients.

        A medication start is stored as a date token marked `MEDICATION_MARK` (alone: undated),
        beside the plain date that `last_seen` reads; the counts and latest dates follow
        COUNTS_MARK (cohort.extract.census_data `Census.date_rows`)."""
        out: dict[str, Side] = {}
        floors: dict[str, dict[str, int]] = {}  # counts carried over a damaged read
        latest: dict[str, dict[str, str]] = {}
        for pid, text in self._query(
            "SELECT patient, dates FROM side_dates t WHERE site=?"  # noqa: S608 (constant SQL)
            " AND patient IN (SELECT value FROM json_each(?)) AND " + _CURRENT,
            (site, orjson.dumps(list(patient_ids)).decode(), CENSUS_MARK),
        ):
            dates, meds, counts, _ = out.setdefault(pid, ([], [], {}, {}))
            text, _, tail = text.partition(COUNTS_MARK)
            if tail:
                _add_counts(tail, counts, floors.setdefault(pid, {}), latest.setdefault(pid, {}))
            if MEDICATION_MARK not in text:  # (nearly every row: dates only, read in one go)
                dates += map(date.fromisoformat, filter(None, text.split(",")))
                continue
            for token in text.split(","):
                if token.startswith(MEDICATION_MARK):
                    meds.append(date.fromisoformat(token[1:]) if len(token) > 1 else None)
                elif token:
                    dates.append(date.fromisoformat(token))
        for pid, floor in floors.items():
            _floored(out[pid][2], floor)
        for pid, days in latest.items():
            out[pid][3].update((t, date.fromisoformat(d)) for t, d in days.items())
        return out

    def census_rows(self, site: str) -> Iterator[tuple[Any, ...]]:
        """(rtype, codes, text, records, patients, sample) rows of the current censuses."""
        yield from self._query(
            "SELECT rtype, codes, text, records, patients, sample FROM census t"  # noqa: S608
            " WHERE site=? AND " + _CURRENT,
            (site, CENSUS_MARK),
        )


def _tokens(
    rows: Iterator[tuple[Any, ...]],
) -> Iterator[tuple[str, set[str], dict[str, int], dict[str, str]]]:
    """(patient, date tokens, counts per type, latest ISO date per type) of side_dates rows in
    patient order, one patient at a time."""
    for pid, group in groupby(rows, key=itemgetter(0)):
        tokens: set[str] = set()
        counts: dict[str, int] = {}
        floor: dict[str, int] = {}
        latest: dict[str, str] = {}
        for _, text in group:
            head, _, tail = text.partition(COUNTS_MARK)
            tokens.update(token for token in head.split(",") if token)
            if tail:
                _add_counts(tail, counts, floor, latest)
        yield pid, tokens, _floored(counts, floor), latest


def _add_counts(
    tail: str, counts: dict[str, int], floor: dict[str, int], latest: dict[str, str]
) -> None:
    """Add a row's "Type=n" counts to `counts` (a generation's rows are summed: each reading
    process summarised its own records), its carried "~Type=n" ones to `floor` and its
    "Type@date" ones to `latest` (the latest of them: ISO dates order as text)."""
    for token in tail.split(","):
        rtype, _, n = token.partition("=")
        if not n.isdigit():
            rtype, mark, day = token.partition(LATEST_MARK)
            if mark and day > latest.get(rtype, ""):
                latest[rtype] = day
            continue
        if rtype.startswith(CARRIED_MARK):
            rtype = rtype[len(CARRIED_MARK) :]
            floor[rtype] = max(floor.get(rtype, 0), int(n))
        else:
            counts[rtype] = counts.get(rtype, 0) + int(n)


def _floored(counts: dict[str, int], floor: dict[str, int]) -> dict[str, int]:
    """`counts` raised to the counts carried over a damaged read (in place)."""
    for rtype, n in floor.items():
        if n > counts.get(rtype, 0):
            counts[rtype] = n
    return counts
