"""Whose lists OUT holds, site by site, by OUT/run.json.

The CSVs carry no stamp: the run.json beside them says whose they are. A run that succeeded
describes its own lists (`as_of`, `mapping_version`, `finished`); a failed run keeps the earlier
lists (all of them, or those of the sites its renames did not reach) and describes those in
`outputs_sites`, taken over from the run.json it replaces, so that `cohort diff` and `cohort
explain` (and a run failing again the next night) are told the lists' date and mapping version,
not the failed run's."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cohort.report.run import Renamed

if TYPE_CHECKING:
    from cohort.tools.changes import Kept

FIELDS = (
    "as_of",
    "mapping_version",
    "mapping_human_version",
    "written_at",
    "criteria_digest",
    "mappings_digest",
    "code_version",
)


@dataclass(frozen=True)
class Lists:
    """One site's lists: the as-of date, mapping version and finishing time of the run that
    wrote them. `store_changed_since`: a run that failed after them wrote the site's records
    to the store (what `cohort explain` reads now, and they never saw). `by_last_run`: the
    run.json's own run wrote them (not kept from an earlier one)."""

    as_of: str = ""
    mapping_version: str = ""
    mapping_human_version: str = ""
    written_at: str = ""
    criteria_digest: str = ""  # (`cohort diff`: which of the two an edit was in)
    mappings_digest: str = ""
    code_version: str = ""  # ("" from a cohort before run.json named it: see other_code)
    store_changed_since: bool = field(default=False, compare=False)
    by_last_run: bool = field(default=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            **{k: getattr(self, k) for k in FIELDS},
            "store_changed_since": self.store_changed_since,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], *, by_last_run: bool = False) -> Lists:
        # (a run.json edited by hand, or damaged: whatever is not text reads as unknown)
        text = {k: raw[k] if isinstance(raw.get(k), str) else "" for k in FIELDS}
        return cls(**text, store_changed_since=raw.get("store_changed_since") is True,
                   by_last_run=by_last_run)  # fmt: skip

    def mapping(self) -> str:
        """The mapping version as run.json and the summaries show it: `sha256:... (VERSION)`."""
        human = f" ({self.mapping_human_version})" if self.mapping_human_version else ""
        return (self.mapping_version or "-") + human

    def other_code(self, now: str) -> str:
        """How the lists' code differs from `now` (this cohort's `code_version`), for a note:
        "" when it is the same."""
        if self.code_version == now:
            return ""
        if not self.code_version:
            return "an earlier one, which did not record its code"
        return f"code {self.code_version}"

    def stamp(self) -> str:
        return self.mapping() + (f", as of {self.as_of}" if self.as_of else "")


def own_lists(report: dict[str, Any], written_at: str) -> Lists:
    """The lists a run of `report` wrote (or would have)."""
    return Lists.from_json({**report, "written_at": written_at}, by_last_run=True)


def _names(value: Any) -> set[str]:
    return {str(v) for v in value} if isinstance(value, list | dict) else set()


def lists_of(report: dict[str, Any]) -> dict[str, Lists]:
    """Each site's lists as `report` (a run.json) describes them; a site it does not describe
    (another configuration's, or kept by a failed run of an earlier cohort) is left out."""
    status = report.get("status")
    if status == "success":
        own = own_lists(report, str(report.get("finished") or ""))
        return dict.fromkeys(sorted(_names(report.get("sites"))), own)
    raw = report.get("outputs_sites")
    if status != "failed" or not isinstance(raw, dict):
        return {}
    mine = _names(report.get("outputs_replaced"))
    partly = report.get("outputs_partly_replaced")
    if isinstance(partly, dict):
        mine |= {str(s) for s, files in partly.items() if "candidates.csv" in _names(files)}
    return {
        str(sid): Lists.from_json(desc, by_last_run=sid in mine)
        for sid, desc in raw.items()
        if isinstance(desc, dict)
    }


@dataclass
class OutLists:
    """What OUT/run.json says of the last run into OUT and of the lists there."""

    status: str = ""  # "" without a readable run.json (else its status, or "unknown")
    last: Lists = field(default_factory=Lists)  # the last run (the lists it wrote, or would have)
    sites: dict[str, Lists] = field(default_factory=dict)
    # `sites` names every site whose lists run.json describes (a successful run's, or a failed
    # run's `outputs_sites`): a site's lists in OUT that it does not name are an earlier run's,
    # left over (a run of a configuration without that site; run.json warns of them)
    complete: bool = False

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def read_lists(out: Path) -> OutLists:
    from cohort.tools.changes import run_report

    report = run_report(out)
    if not report:
        return OutLists()
    last = own_lists(report, str(report.get("finished") or ""))
    status = str(report.get("status") or "unknown")
    complete = status == "success" or (
        status == "failed" and isinstance(report.get("outputs_sites"), dict)
    )
    return OutLists(status, last, lists_of(report), complete)


def _stored_any(site_report: Any) -> bool:
    """Whether a site's completed read changed the store's records (a file read's `stored`
    counts, a server pull's); a report of another shape counts as a change."""
    if not isinstance(site_report, dict):
        return True
    stored = site_report.get("stored")
    if isinstance(stored, dict):
        return any(stored.get(k) for k in ("inserted", "updated", "removed"))
    return any(site_report.get(k, 1) for k in ("stored", "updated", "removed"))


class StoreWatch:
    """Which sites' records a run wrote to the store, for a failure to tell (the lists it keeps
    never saw them). A completed read says so in its counts; the read that failed says nothing,
    so its store is watched: SQLite's `data_version`, on a connection of the watch's own,
    changes when another connection (the run's) commits. A read that failed before writing (a
    source folder gone: the usual failed night) then does not count as a change."""

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self._site = ""
        self._at: int | None = None
        self._wrote = False

    @contextmanager
    def on(self, path: Path) -> Iterator[StoreWatch]:
        """Watch the store at `path` (open) until the run lets go of it: closed first, so the
        store's own close still checkpoints and removes its WAL."""
        try:
            uri = path.absolute().as_uri() + "?mode=ro"  # (read only: it never checkpoints)
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error:
            self._db = None  # (unwatched: a failed read counts as a change)
        try:
            yield self
        finally:
            if self._site:
                self._wrote = self._version() != self._at
            if self._db is not None:
                self._db.close()
                self._db = None

    def reading(self, site: str) -> None:
        """`site`'s read starts."""
        self._site, self._at = site, self._version()

    def _version(self) -> int | None:
        try:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0]) if self._db else None
        except sqlite3.Error:
            return None

    def changed(self, sites: dict[str, Any]) -> set[str]:
        """The sites whose records the run changed, by `sites` (run.json's, the reads that
        completed) and the watch (the read that did not)."""
        done = {sid for sid, rep in sites.items() if _stored_any(rep)}
        failed = bool(self._site) and self._site not in sites and (self._wrote or self._at is None)
        return done | ({self._site} if failed else set())


def mark_failed(
    report: dict[str, Any],
    error: str,
    kept: Kept,
    lists: Renamed | None,
    *,
    changed: set[str],
    at: str,
) -> None:
    """Mark the run report failed; `previous_outputs_kept` says whether OUT holds an earlier
    run's candidate lists (untouched), `outputs_trial` and `outputs_config` whose they are, and
    `outputs_sites` describes each site's (`outputs_as_of` etc. the earlier ones, when one run
    wrote them all). With `lists` (renames stopped part-way, at time `at`) the lists are not
    all kept: the error and `outputs_replaced` / `outputs_kept` say which sites' are this run's.
    `changed`: the sites whose records the run wrote to the store."""
    report["status"] = "failed"
    report["error"] = error if lists is None else f"{error}; {lists.said()}"
    report["previous_outputs_kept"] = bool(kept.sites) and lists is None
    mine = set(lists.replaced if lists else [])
    if lists is not None:
        mine |= {sid for sid, files in lists.partly.items() if "candidates.csv" in files}
    sites = {sid: own_lists(report, at) for sid in mine}
    for sid in kept.sites:
        if sid not in mine and sid in kept.lists:
            was = kept.lists[sid]
            sites[sid] = replace(was, store_changed_since=was.store_changed_since or sid in changed)
    if sites:
        report["outputs_sites"] = {sid: d.to_json() for sid, d in sorted(sites.items())}
    if lists is not None:
        report.update(lists.fields())
        if not lists.earlier_left:
            return  # (every list of the run is its own: `trial` and `config` say whose)
    if kept.trial:
        report["outputs_trial"] = kept.trial
    if kept.config:
        report["outputs_config"] = kept.config
    earlier = {d for sid, d in sites.items() if sid not in mine}
    if len(earlier) == 1:  # (lists kept of more than one run: `outputs_sites` only)
        report.update(
            {f"outputs_{k}": v for k, v in earlier.pop().to_json().items() if k in FIELDS}
        )
