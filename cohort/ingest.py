"""Bring a site's data into the store: files read in parallel chunks, or a FHIR server pull."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cohort import codeversion
from cohort.config import Config, SiteConfig, server_settings
from cohort.errors import ConfigError, ServerError, SourceError
from cohort.extract import Triage
from cohort.held import Held
from cohort.model import PIPELINE_TYPES, Code
from cohort.reading import JOB, read_results, workers_for_files
from cohort.readreport import files_report
from cohort.snapshot import History, counts, refuse_mass_removal, remember
from cohort.source.fileinfo import origin_of
from cohort.source.files import (
    ReadStats,
    Unit,
    fingerprint,
    plan_units,
)
from cohort.source.names import FileNames
from cohort.store import PutStats, Store, Tombstones
from cohort.store.schema import FILES_MARK, SOURCE_MARK

if TYPE_CHECKING:
    from cohort.criteria import Trial
    from cohort.extract import ReadingRules
    from cohort.terminology import Terminology

log = logging.getLogger("cohort")


@dataclass
class Loaded:
    """Mappings, reading rules and trial, validated together."""

    term: Terminology
    rules: ReadingRules
    trial: Trial
    mapping_warnings: list[str] = field(default_factory=list)  # `mappings check`'s

    def relevant(self, codes: tuple[Code, ...], text: str) -> bool:
        """Whether a code element maps to any concept (records that do not are summarised)."""
        return bool(self.term.concepts_for(codes, text))

    @classmethod
    def from_config(cls, cfg: Config, check_cache: Path | None = None) -> Loaded:
        """Load and validate; `check_cache`: a file keeping the last `run_checks` answer for
        these mappings and this code (a run's state folder has one)."""
        from cohort.criteria import load_trial
        from cohort.extract import ReadingRules
        from cohort.terminology import Terminology
        from cohort.terminology.mappings import concept_files
        from cohort.tools.runcheck import run_checks

        term = Terminology.load(cfg.mappings_dir, use_unverified=cfg.use_unverified)
        # (a dosage route sent as a bare code is named by the terminology's routes.csv)
        rules = ReadingRules.load(cfg.mappings_dir / "rules.toml").with_routes(term.route_name)
        # a concept with unverified rows only is known (`mappings check` warns it is empty)
        rows = term.rows()
        known = {r.concept for r in rows}
        files = concept_files(rows)  # (a concept of other records than its key reads)
        trial = load_trial(
            cfg.trial_file(), known, term.concept_names(), term.unit_concepts(), files
        )
        key = (
            "\0".join(
                [codeversion.code_digest(), term.version, str(cfg.use_unverified), cfg.trial_id]
            ).encode()
            + cfg.trial_file().read_bytes()
        )
        checked = run_checks(cfg, hashlib.sha256(key).hexdigest(), check_cache, rows)
        return cls(term, rules, trial, checked)


def _renumber(origin: str, offset: int) -> str:
    """'f.ndjson:12' -> 'f.ndjson:<12 + offset>' (a range's line numbers made file-absolute),
    also 'f.ndjson:12#entry[3]' (an entry of a Bundle on that line)."""
    head, _, n = origin.rpartition(":")
    n, mark, entry = n.partition("#")
    return f"{head}:{int(n) + offset}{mark}{entry}" if n.isdigit() else origin


def ingest_files(
    site: SiteConfig,
    cfg: Config,
    store: Store,
    loaded: Loaded,
    *,
    full_refresh: bool = False,
    names: FileNames | None = None,
) -> dict[str, Any]:
    """Read a file source into the store: kept records upserted, the rest summarised.

    When the files, the mappings, the reading rules, the settings that change a read and
    cohort's code are all as at the last complete read of this source, that read stands (a
    nightly rerun over an unchanged export): nothing is read, and the report is the last
    read's with `files_unchanged`. `full_refresh` reads anyway. A read with a file it could not
    read whole (see `ReadStats.partial`) is not complete: the next run reads again. The report
    and the log name files as `names` show them (cohort/source/names.py: no patient's name).
    """
    names = FileNames() if names is None else names
    source = Path(site.source)
    if source.is_file():  # (named in the config and run.json's `source` already)
        names.given = origin_of(source, source.parent)
    try:
        units = plan_units(source, cfg.chunk_mb << 20, names)
    except SourceError as exc:  # ("data path not found: ..." said neither which site nor key)
        exc.args = (f"site '{site.id}': source: {exc}", *exc.args[1:])
        raise
    key = FILES_MARK + site.source
    history = History.of(store, site)
    stamp = _files_stamp(units, cfg, loaded)
    last = store.get_mark(site.id, key) or ""
    last_stamp, _, last_report = last.partition("\n")
    last_report, _, last_names = last_report.partition("\n")
    if stamp is not None and not full_refresh and last_stamp == stamp:
        try:
            report: dict[str, Any] = json.loads(last_report)
            stored = report["stored"]
            kept = stored["inserted"] + stored["updated"] + stored["unchanged"]
            hidden = json.loads(last_names) if last_names else {}
            hidden = {str(k): str(v) for k, v in hidden.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # a mark this version cannot read: read the files again
        else:
            # (the last read's pseudonyms, shown again: listed again, file-names.tsv deleted)
            names.hidden.update(hidden)
            report["stored"] = {"inserted": 0, "updated": 0, "unchanged": kept, "removed": 0}
            log.info("site %s: files unchanged since the last complete read", site.id)
            if history.last != site.source:  # (back to a folder read before: snapshot = false)
                store.set_mark(site.id, SOURCE_MARK, site.source)
            return {**report, "workers": 0, "files_unchanged": True}
    # forgotten until this read completes: a read that dies halfway never looks complete
    store.set_mark(site.id, key, "")
    if cfg.snapshot:
        # nor does another source's complete read stand once this one writes the site's records
        # (a read refused by the guard keeps what it stored: pointed back at the old folder,
        # "unchanged" skipped the read whose sweep drops them)
        for other in store.mark_keys(site.id, FILES_MARK):
            if other != key:
                store.set_mark(site.id, other, "")
    report, whole = _read_files(site, cfg, store, loaded, units, history, names)
    if whole:
        remember(store, site, report)
    if stamp is not None and whole:  # (a file not read whole is read again next time)
        # (the store holds PHI already: the files' names may be kept there)
        store.set_mark(site.id, key, f"{stamp}\n{json.dumps(report)}\n{json.dumps(names.hidden)}")
    return report


def _files_stamp(units: list[Unit], cfg: Config, loaded: Loaded) -> str | None:
    """What a file read's outcome depends on: the files (`fingerprint`), the mappings (their
    version hash), the reading rules, the validation and snapshot settings and cohort's code."""
    files = fingerprint(units)
    if files is None:
        return None
    try:
        rules = (cfg.mappings_dir / "rules.toml").read_bytes()
    except OSError:
        return None
    parts = [codeversion.code_digest(), loaded.term.version, str(cfg.use_unverified), cfg.validate]
    parts += [str(cfg.snapshot), files]
    digest = hashlib.sha256("\0".join(parts).encode() + b"\0" + rules)
    return digest.hexdigest()


def _read_files(
    site: SiteConfig,
    cfg: Config,
    store: Store,
    loaded: Loaded,
    units: list[Unit],
    history: History | None,
    names: FileNames,
) -> tuple[dict[str, Any], bool]:
    """The read's report, and whether every file was read whole (`history`: the site's
    earlier reads, for the snapshot guard: cohort.snapshot; `names`: how it names files)."""
    nproc = workers_for_files(units, cfg.workers)
    # increments (snapshot = false): a summarised record leaves a tombstone, so a stored older
    # copy of it goes (a snapshot read's sweep drops it anyway: nothing more is read there)
    triage = Triage(loaded.rules, loaded.relevant, tombstones=not cfg.snapshot)
    JOB.update(types=set(PIPELINE_TYPES), validate=cfg.validate, triage=triage)
    stats, put = ReadStats(), PutStats()
    seen: set[tuple[str, str]] = set()
    # a snapshot read sweeps what it did not see; on a first load there is nothing to sweep,
    # so the keys (a million tuples at 50k patients) are not even collected
    known = store.has_rows(site.id)
    sweep = cfg.snapshot and known
    mine = seen if sweep else None  # (the keys written so far: see Held.write)
    gen = store.begin_census(site.id, site.source)
    lines_before: dict[str, int] = {}
    held = Held(tombs=None if cfg.snapshot else Tombstones())
    try:
        # (a new store: the patient index is built at the end, or, with reading processes,
        # while they read the last units: the rows of those few go in through it)
        with store.first_load() as index_now:
            chunk = cfg.chunk_mb << 20
            read = read_results(units, nproc, chunk, pieces=not cfg.snapshot, last_given=index_now)
            for unit, done in read:
                offset = lines_before.get(unit.origin, 0) if unit.part else 0
                lines_before[unit.origin] = offset + done.lines
                rows = done.rows
                if offset:
                    rows = [
                        (t, i, v, u, p, _renumber(o, offset), h, j)
                        for t, i, v, u, p, o, h, j in rows
                    ]
                    for issue in done.stats.issues:
                        issue.origin = _renumber(issue.origin, offset)
                held.rows += rows
                if held.tombs is not None:
                    held.tombs.overrule(rows)  # (read after the units held)
                    held.tombs.add(done.tombs)  # (those its own later rows overrule are gone)
                held.dates += done.census.date_rows()
                held.entries += done.census.entry_rows()
                stats.merge(done.stats)
                if held.size() >= cfg.batch_size:
                    held.write(store, site, gen, put, cfg.batch_size, not known, mine)
            held.write(store, site, gen, put, cfg.batch_size, not known, mine)
    finally:
        JOB.clear()
    partial = set(stats.partial)
    stale = store.stale(site.id, seen) if sweep else []
    spared = 0
    if partial:
        # any record this read did not find may be in the part of a file it could not read: a
        # stored origin does not say where a record is now (one read again unchanged keeps its
        # first file's name; rewriting it wherever a record moved costs ~1 s CPU per 230k rows
        # on a night an export is renamed or re-split, and would still miss one moved into the
        # damaged file that night), so nothing goes until a read of every file whole
        stale, spared = [], len(stale)
    if stale:
        found = counts({"read": stats.read, "rejected": stats.rejected})
        past = history or History(site.source, None, (), None)
        refuse_mass_removal(site, store, stale, cfg.max_snapshot_removal, found, past, put.new)
    if partial:  # (its summaries stay as last read, as its records do)
        store.carry_census(site.id, site.source, gen)
    store.commit_census(site.id, site.source, gen)
    if stale:
        store.drop(site.id, stale)
    if held.doomed:  # (an increment's records replaced by summarised copies)
        store.drop(site.id, sorted(held.doomed))
    if cfg.snapshot:
        store.forget_other_sources(site.id, site.source)
    log.info(
        "site %s: read %d resources from files (%d summarised, %d rejected; %d process(es))",
        site.id,
        sum(stats.read.values()),
        sum(stats.summarised.values()),
        sum(stats.rejected.values()),
        nproc,
    )
    stored = {
        "inserted": put.inserted,
        "updated": put.updated,
        "unchanged": put.unchanged,
        # a snapshot read's sweep; an increment's records replaced by summarised copies
        "removed": len(stale) + len(held.doomed),
    }
    return files_report(site, stats, units, names, spared, stored, nproc), not partial


def ingest(
    site: SiteConfig,
    cfg: Config,
    store: Store,
    loaded: Loaded,
    *,
    full_refresh: bool,
    names: FileNames | None = None,
) -> dict[str, Any]:
    """Bring a site's data into the store; returns the site's source report for run.json
    (`names`: the pseudonyms it gave files, cohort/source/names.py)."""
    if not site.is_url:
        report = ingest_files(site, cfg, store, loaded, full_refresh=full_refresh, names=names)
    else:
        report = _pull(site, cfg, store, loaded, full_refresh=full_refresh)
        store.set_mark(site.id, SOURCE_MARK, site.source)  # (a file read's: ingest_files)
    return _attribute(site, store, report)


def _attribute(site: SiteConfig, store: Store, report: dict[str, Any]) -> dict[str, Any]:
    """`report` once records naming their patient by identifier only are given that Patient
    (cohort/store/identifiers.py), with the count of records left naming none (and a
    warning): read for no one, they were left out without a word."""
    found = store.attribute_by_identifier(site.id)
    if found.attributed:
        log.info(
            "site %s: %d record(s) naming their patient by identifier only read as that Patient's",
            site.id,
            found.attributed,
        )
    report["unattributed"] = found.counts()
    said = found.warning()
    if said is not None:
        report["warnings"] = [*report.get("warnings", []), said]
        log.warning("site %s: %s", site.id, said)
    return report


def _pull(
    site: SiteConfig, cfg: Config, store: Store, loaded: Loaded, *, full_refresh: bool
) -> dict[str, Any]:
    """A FHIR server site's pull into the store; its report for run.json."""
    from cohort.source.fhir import pull  # only server runs need requests
    from cohort.source.fhir.auth import renew_hint

    settings = server_settings(site, cfg.path)  # (checked by load_config already)
    concepts = loaded.trial.concepts()
    try:
        report = pull(
            site.id,
            settings,
            store,
            loaded.term.search_tokens(concepts, loaded.trial.concept_records()),
            screen_tokens=[
                t
                for ts in loaded.term.search_tokens(loaded.trial.screen_concepts).values()
                for t in ts
            ],
            full_refresh=full_refresh,
            log=log,
            max_removal=cfg.max_snapshot_removal,
        )
    except ServerError as exc:
        # the one line on stderr and run.json's error name the site and the server: a bare
        # "GET /fhir/metadata: ConnectionError after 6 attempts" does not say which one failed
        # (host and port only: a URL's user:password part is a secret)
        url = urlsplit(settings.base_url)
        host = f"{url.hostname}:{url.port}" if url.port else str(url.hostname)
        said = f"site '{site.id}' ({host}): {exc}"
        if getattr(exc, "credentials_refused", False):
            # "HTTP 401: error login" alone does not say which of the site's secrets to renew
            said += "; " + renew_hint(settings)
        exc.args = (said, *exc.args[1:])
        raise
    except ConfigError as exc:
        # a secret read only now (a variable unset, a key file missing): of which site's table
        exc.args = (f"site '{site.id}': {exc}", *exc.args[1:])
        raise
    return {"source": site.source, "kind": "fhir", **report.to_dict()}
