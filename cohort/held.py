"""What a file read holds between store batches (cohort/ingest.py): rows, census rows,
tombstones, and the stored copies they doom."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cohort.config import SiteConfig
from cohort.source.refused import STUB
from cohort.store import PutStats, Row, Store, Tombstones


@dataclass
class Held:
    """Rows and census rows of read units not yet written: units are gathered up to a store
    batch, so many small files (a folder of per-patient Bundles) do not cost a transaction
    (and its WAL pages) each.

    `tombs` (a `snapshot = false` read only, else None): the tombstones of the summarised
    records among them that no row read later overrules; weighed right after the rows are
    written, the stored copies they are not older than (a record recoded to a code no mapping
    has in a later increment) join `doomed`: dropped once the read is complete, so a read that
    dies halfway removes nothing, unless a row of a later batch stores the key again first
    (`lift`: it replaces the doomed copy, as it would once that was gone)."""

    rows: list[Row] = field(default_factory=list)
    dates: list[tuple[str, str]] = field(default_factory=list)
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    tombs: Tombstones | None = None
    doomed: set[tuple[str, str]] = field(default_factory=set)

    def size(self) -> int:
        tombs = len(self.tombs) if self.tombs is not None else 0
        return max(len(self.rows), len(self.dates), len(self.entries), tombs)

    def write(
        self,
        store: Store,
        site: SiteConfig,
        gen: int,
        put: PutStats,
        batch: int,
        fresh: bool,
        seen: set[tuple[str, str]] | None = None,
    ) -> None:
        """`seen` (a snapshot read over stored records): the keys of the rows written before;
        the first copy of a key this read holds replaces the stored one whatever their versions
        say (the export is the whole truth: an EHR restored, a migration's new counters), a
        later one of the read only when newer (grown by the keys written here). Not a refused
        record's stub: versions decide for it, and it never erases a readable copy, which is
        stored inside it (source.refused.over_readable)."""
        if self.rows:
            lift = {(r[0], r[1]) for r in self.rows} & self.doomed if self.doomed else set()
            self.doomed -= lift
            if seen is not None:
                keys = {(r[0], r[1]) for r in self.rows}
                lift |= {(r[0], r[1]) for r in self.rows if STUB not in r[7]} - seen
                seen |= keys
            store.put_rows(
                site.id,
                self.rows,
                source=site.source,
                stats=put,
                batch_size=batch,
                fresh=fresh,
                lift=lift,
            )
        if self.tombs:
            self.doomed.update(store.doomed(site.id, self.tombs.take()))
        if self.dates or self.entries:
            store.add_census(site.id, site.source, gen, self.dates, self.entries)
        self.rows, self.dates, self.entries = [], [], []
