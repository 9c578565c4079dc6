"""The guard of a snapshot file read: refused when it lacks most of a type's stored records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cohort.config import SiteConfig
from cohort.errors import SourceError
from cohort.store import Store
from cohort.store.schema import FILES_COUNT_MARK, FILES_MARK, SOURCE_MARK


@dataclass(frozen=True)
class History:
    """What the store says of a site's earlier file reads, taken before a read begins.

    `last`: the source of the last complete read (None: not known, a new store). `sources`:
    those whose records the store may hold, `last` first, then any other read since (a run
    refused or stopped part-way writes what it read): a complete snapshot read forgets the
    other sources' read marks (Store.forget_other_sources), so these are the ones since.
    `counts`: records of each type the last complete read found (None: not known)."""

    source: str
    last: str | None
    sources: tuple[str, ...]
    counts: dict[str, int] | None

    @classmethod
    def of(cls, store: Store, site: SiteConfig) -> History:
        marked = [k.removeprefix(FILES_MARK) for k in store.mark_keys(site.id, FILES_MARK)]
        last = store.get_mark(site.id, SOURCE_MARK)
        if last is None and len(marked) == 1:  # (a store of an earlier cohort: no SOURCE_MARK)
            last = marked[0]
        sources = [last] if last is not None else []
        sources += [s for s in marked if s not in sources]
        return cls(site.source, last, tuple(sources), _last_counts(store, site.id))

    @property
    def moved(self) -> str | None:
        """The source of the last complete read when it was not this one (`source` changed)."""
        return self.last if self.last not in (None, self.source) else None

    def before(self) -> dict[str, int] | None:
        """`counts`, when they are of this source: another folder's do not tell a mapping
        change from lost records (a moved source is checked as any snapshot read)."""
        return self.counts if self.moved is None else None


def refuse_mass_removal(
    site: SiteConfig,
    store: Store,
    stale: list[tuple[str, str]],
    limit: float,
    found: dict[str, int],
    history: History,
    added: dict[str, int] | None = None,
) -> None:
    """SourceError when a snapshot read lacks more than `limit` of a type's stored records: an
    export folder emptied before tonight's export arrives (or that arrived in part) would empty
    the store and the candidate lists, exit 0. Raised before any census or record is dropped.

    `found`: records of each type this read found (kept, summarised or rejected). A type the
    export holds as many records of as at the last complete read of this source has lost
    none: its stored records this read did not keep were read, and summarised or rejected
    under changed mappings, rules or validation (a researcher unmapping a lab); those go
    without a refusal that no rerun could lift. `added`: records of each type this read
    inserted, weighed against those stored before it. The message names the sources the
    records were read from (IT's configured paths, no PHI): after a change of `source` they
    are not the new folder's."""
    before = history.before()
    whole = {t for t, n in (before or {}).items() if found.get(t, 0) >= n}
    over = store.over_removal(site.id, stale, limit, exempt=whole, added=added)
    if over is None:
        return
    rtype, n, stored = over
    here, moved = site.source, history.moved
    froms = " and ".join(history.sources)
    if moved is not None:
        raise SourceError(
            f"site {site.id}: its source changed from {moved} to {here} since the last complete"
            f" read (the store holds {stored} {rtype} records read from {froms}): {here} lacks"
            f" {n} of them (over [run] max_snapshot_removal = {limit:g}). Nothing was removed."
            f" If {here} is now all of this site's data, set max_snapshot_removal = 1 for one"
            " run (the records it lacks are then dropped); if it holds other patients, point"
            f" the site back at {moved} or give it a new [store] path; if it is still being"
            " written, rerun once it is complete"
        )
    whence = "it" if history.sources in ((), (here,)) else froms
    raise SourceError(
        f"site {site.id}: {here} lacks {n} of the {stored} {rtype} records read from {whence}"
        f" before (over [run] max_snapshot_removal = {limit:g}): an incomplete export?"
        " Nothing was removed; rerun once it is complete (or, if they were deleted on purpose,"
        " set max_snapshot_removal higher for one run)"
    )


def remember(store: Store, site: SiteConfig, report: dict[str, Any]) -> None:
    """After a complete read: what it found, and of which source (the next read's History)."""
    store.set_mark(site.id, FILES_COUNT_MARK, json.dumps(counts(report)))
    store.set_mark(site.id, SOURCE_MARK, site.source)


def counts(report: dict[str, Any]) -> dict[str, int]:
    """Records of each type a file read found: kept, summarised or rejected."""
    out = dict(report.get("read", {}))
    for rtype, n in report.get("rejected", {}).items():
        if rtype != "?":
            out[rtype] = out.get(rtype, 0) + n
    return out


def _last_counts(store: Store, site: str) -> dict[str, int] | None:
    try:
        found = json.loads(store.get_mark(site, FILES_COUNT_MARK) or "null")
    except ValueError:
        return None
    if not isinstance(found, dict):
        return None
    return {t: n for t, n in found.items() if isinstance(n, int)}
