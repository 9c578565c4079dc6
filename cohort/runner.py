"""Orchestrates one run: ingest each site's source into the store, screen, rank, write outputs."""

from __future__ import annotations

import csv
import gc
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cohort import __version__
from cohort.asof import as_of_warning
from cohort.atomic import ensure_dir, try_folder
from cohort.codeversion import code_version
from cohort.config import Config, SiteConfig, inside_a_source
from cohort.errors import (
    ArgumentError,
    CohortError,
    LockedError,
    OutputError,
    interruption,
)
from cohort.filenames import kept_names
from cohort.ingest import Loaded, ingest
from cohort.merged import merges_of
from cohort.model import Candidate, SiteResult
from cohort.outputs import write_outputs, write_report
from cohort.report.kept import StoreWatch, mark_failed
from cohort.report.medgaps import add_medication_gaps
from cohort.report.run import renamed_lists, run_history, site_summary
from cohort.report.unstarted import BUILT_IN
from cohort.runlock import out_lock, run_lock, why
from cohort.screening import screen, warn_unscreened
from cohort.store import Store
from cohort.terminology.mappings import digests

log = logging.getLogger("cohort")


@dataclass
class Timer:
    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = round(self.stages.get(name, 0.0) + time.perf_counter() - t0, 3)


def state_dir(cfg: Config, out: Path) -> Path:
    return cfg.store_path.parent if cfg.store_path else out / ".cohort"


def previous_tiers(path: Path) -> dict[str, str]:
    """patient_id -> tier from the previous run's candidates.csv (empty when there is none).

    The mapping also carries the previous criterion cells and trial id
    (`cohort.tools.changes.PreviousRun`) so that `site_result` can name changed criteria.
    """
    from cohort.tools.changes import read_previous

    try:
        return read_previous(path)
    except csv.Error:  # read_previous already returns {} for an unreadable file
        return {}


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def site_result(
    site: SiteConfig,
    cands: list[Candidate],
    loaded: Loaded,
    as_of: date,
    prev: dict[str, str],
    freshness: str,
) -> SiteResult:
    sr = SiteResult(
        site_id=site.id,
        site_name=site.name,
        as_of=as_of,
        criteria=loaded.trial.site_infos(site.min_age),
        manual_items=loaded.trial.manual_items,
        candidates=cands,
        mapping_version=loaded.term.version
        + (f" ({loaded.term.human_version})" if loaded.term.human_version else ""),
        data_freshness=freshness,
        previous_tiers=prev,
        trial_id=loaded.trial.id,
        trial_title=loaded.trial.title,
    )
    from cohort.tools.changes import apply

    apply(prev, sr, loaded.trial.id)  # new / tier a -> b / criteria changed: x, y
    return sr


def run(
    cfg: Config, as_of: date, out: Path, *, full_refresh: bool = False, phi: bool = True
) -> dict[str, Any]:
    """The whole job. Returns the run report (also written to OUT/run.json)."""
    with collector_paused():
        return _run(cfg, as_of, out, full_refresh=full_refresh, phi=phi)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the job.

    The job allocates millions of small acyclic objects (parsed JSON, facts, evidence) on top
    of a large long-lived heap (mappings, memo tables); the collector's passes over that heap
    cost up to ~10x the work itself in places (bench/RESULTS.md: packing 10k candidates for the
    forked workers 2.5 s -> 0.28 s). Reference counting still frees everything acyclic at once;
    the few cycles left (e.g. a caught exception's traceback) wait for the collector to resume.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            # Everything allocated meanwhile sits in the youngest generation, and the first
            # collection after enable() would walk all of it (~0.3 s after a 10k run); moving
            # it to the oldest generation leaves it to the next full collection instead.
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _run(
    cfg: Config, as_of: date, out: Path, *, full_refresh: bool = False, phi: bool = True
) -> dict[str, Any]:
    """OUT made and locked, then the job. A run that cannot (OUT cannot be made, or another
    run holds its lock) writes nothing there, run.json included: it may not be its own."""
    said = inside_a_source(f"OUT {out}", out, cfg.sites)
    if said is not None:
        raise ArgumentError(f"{said}; give --out a folder outside it")
    try:
        ensure_dir(out)  # PHI lives here: owner only (and every folder made for it)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {why(exc)}") from None
    # held from reading the previous outputs (`change`) to writing run.json: two runs into one
    # OUT with stores of their own (the store's lock apart) mixed their lists and run.json
    with out_lock(out):
        # an OUT that takes no file (0555, a read-only mount) failed only once every site was
        # read and screened, when its lock file was there from an earlier run: tried first
        try_folder(out / "run.json")
        return _locked_run(cfg, as_of, out, full_refresh=full_refresh, phi=phi)


def _locked_run(
    cfg: Config, as_of: date, out: Path, *, full_refresh: bool, phi: bool
) -> dict[str, Any]:
    from cohort.tools.changes import (
        config_name,
        kept_outputs,
        kept_warnings,
        not_compared,
        other_code,
        upgrade_warnings,
    )

    timer = Timer()
    report: dict[str, Any] = {
        "tool": f"cohort {__version__}",
        "status": "running",
        "started": now_iso(),
        "as_of": as_of.isoformat(),
        "config": config_name(str(cfg.path)) if cfg.path else BUILT_IN,
        "trial": cfg.trial_id,
        "mappings_dir": str(cfg.mappings_dir),
        "code_version": code_version(),
        "sites": {},
        "warnings": [],
    }
    state = state_dir(cfg, out)
    # what a failure leaves in place (a first run's failure has no earlier lists to keep), and
    # whose they are (a failed run's run.json describes them: `outputs_trial`, `outputs_sites`)
    kept = kept_outputs(out)
    # lists another configuration wrote are not this run's previous run (like another trial's)
    foreign = bool(kept.config) and kept.config != report["config"]
    report["warnings"] += kept_warnings(out, kept, report["config"], [s.id for s in cfg.sites])
    far = as_of_warning(as_of)  # (a typo in a nightly job's date: the run goes on)
    if far is not None:
        report["warnings"].append(far)
        log.warning("%s", far)
    renamed: list[Path] = []  # the run's files renamed into place (write_outputs)
    watch = StoreWatch()  # the sites whose records the run wrote (the lists kept never saw them)

    def failed(error: str, exc: BaseException) -> None:
        lists = renamed_lists([s.id for s in cfg.sites], renamed, kept.sites)
        if lists is not None:
            exc.add_note(lists.said())  # (the CLI's one line ends with it)
        changed = watch.changed(report["sites"])
        mark_failed(report, error, kept, lists, changed=changed, at=now_iso())

    try:
        with run_lock(state):
            with timer.stage("load_mappings"):
                loaded = Loaded.from_config(cfg, state / "mapping-check.json")
            report["mapping_version"] = loaded.term.version
            report["mapping_human_version"] = loaded.term.human_version
            crit, maps = digests(loaded.term.root, loaded.trial.path)  # (for `cohort diff`)
            report["criteria_digest"], report["mappings_digest"] = crit, maps
            report["mapping_warnings"] = loaded.mapping_warnings
            if loaded.mapping_warnings:  # (listed by check: a run's log gets the count only)
                n = len(loaded.mapping_warnings)
                log.warning("%d mapping warning(s): run `cohort mappings check` for them", n)
            for site in cfg.sites:  # (a site's limit below the trial's: used, but said)
                for said in loaded.trial.age_warnings(site.id, site.min_age):
                    log.warning("%s", said)
                    report["warnings"].append(said)
            store_path = cfg.store_path or state / "store.sqlite"
            if kept.sites and not foreign and not store_path.exists():
                # made anew without a word, a moved store or an unmounted volume cost a full
                # read (a server's full pull) and the run's history, exit 0 and run.json clean
                said = (
                    f"the store {store_path} was not there, though {out} holds an earlier run's "
                    "lists: a new store was made and every site read in full (a server site's "
                    "records all pulled again, as by --full-refresh); moved, or its volume not "
                    "mounted? point [store] path at it"
                )
                log.warning("%s", said)
                report["warnings"].append(said)
            results: list[SiteResult] = []
            upgraded: dict[str, str] = {}  # site -> another cohort that wrote its lists
            with Store(store_path) as store, watch.on(store_path):
                for site in cfg.sites:
                    # (the pseudonyms it gives files are listed where the store is)
                    with timer.stage("ingest"), kept_names(state, site) as names:
                        watch.reading(site.id)
                        report["sites"][site.id] = ingest(
                            site, cfg, store, loaded, full_refresh=full_refresh, names=names
                        )
                    report["warnings"] += [
                        f"{site.id}: {w}" for w in report["sites"][site.id].get("warnings", [])
                    ]
                    for note in report["sites"][site.id].get("notes", []):  # (by design: info)
                        log.info("site %s: %s", site.id, note)
                with timer.stage("evaluate"):
                    # the mapping files' UCUM units are checked where the registry is built
                    # anyway (a large file read has built it while its processes parsed; else
                    # evaluation would): one UCUM cannot read stops the run here, before any
                    # output is touched (the store keeps what was read)
                    loaded.term.check_units()
                for site in cfg.sites:
                    with timer.stage("evaluate"):
                        cands = screen(site, store, loaded, as_of, cfg.workers, phi=phi)
                    path = out / site.id / "candidates.csv"
                    prev = not_compared(path) if foreign else previous_tiers(path)
                    newest = max((c.last_seen for c in cands if c.last_seen), default=None)
                    sr = site_result(
                        site, cands, loaded, as_of, prev, newest.isoformat() if newest else ""
                    )
                    if len(prev) > len(cands) or set(prev) - {c.patient.id for c in cands}:
                        # someone left the list: was it a merge (read once a site)
                        sr.merged_into = merges_of(store, site.id).into
                    sr.produced = report["started"]
                    results.append(sr)
                    # (after site_result: lists of another trial are not compared)
                    upgraded[site.id] = other_code(prev, report["code_version"])
                    report["sites"][site.id].update(site_summary(sr, prev))
                    add_medication_gaps(site.id, cands, report)
                    warn_unscreened(site.id, len(cands), store, loaded, report)
                for said in upgrade_warnings(out, upgraded):
                    log.warning("%s", said)
                    report["warnings"].append(said)
                history = run_history(store.runs(), results, as_of)
                tiers = {
                    sr.site_id: report["sites"][sr.site_id]["tiers"]
                    | {"screened": len(sr.candidates)}
                    for sr in results
                }
                with timer.stage("report"):
                    # the run's history goes in once the outputs are staged, before they replace
                    # the previous ones: a store that cannot take it (disk full) failed the run
                    # after its outputs were in place, and run.json said they had been kept
                    write_outputs(
                        out,
                        results,
                        history,
                        phi,
                        before_replace=lambda: store.add_run(
                            {"date": as_of.isoformat(), "finished": now_iso(), "sites": tiers}
                        ),
                        renamed=renamed,
                    )
        report["status"] = "success"
    except CohortError as exc:
        failed(str(exc), exc)
        raise
    except Exception as exc:
        # A bug or an unwrapped library error: still record the failure (type only: an
        # exception's message may quote input values, i.e. PHI), then let it propagate.
        failed(f"internal error ({type(exc).__name__}); this is a bug, see the log", exc)
        raise
    except KeyboardInterrupt as exc:  # Ctrl-C: run.json said "running" for a run long stopped
        failed(f"interrupted ({interruption(exc)[0]})", exc)
        raise
    finally:
        report["finished"] = now_iso()
        report["timings"] = timer.stages
        failure = sys.exc_info()[1]
        # (exit 10, the store's lock held: never touch outputs the run holding it may write)
        if not isinstance(failure, LockedError):
            write_report(out, report, failed=failure is not None, replaced=bool(renamed))
    return report
