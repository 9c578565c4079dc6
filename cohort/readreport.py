"""The report of a site's file read, for run.json and the log: counts, warnings, notes and
located issues, each file named as `FileNames` shows it (no patient's name)."""

from __future__ import annotations

import logging
from typing import Any

from cohort.config import SiteConfig
from cohort.source.fileinfo import ReadStats
from cohort.source.files import Unit
from cohort.source.names import FileNames

__all__ = ["files_report"]

log = logging.getLogger("cohort")


def files_report(
    site: SiteConfig,
    stats: ReadStats,
    units: list[Unit],
    names: FileNames,
    spared: int,
    stored: dict[str, int],
    workers: int,
) -> dict[str, Any]:
    """The report of a read of `units` (`spared`: records not found that a file not read whole
    kept); its warnings are logged as they are made."""
    warnings = []
    for path in stats.stubbed:  # (shown by a stub's reason, not by `show`: `FileNames.keep`)
        names.keep(path)
    partial = set(stats.partial)
    if partial:
        first = names.show(sorted(partial)[0])
        kept = f"; {spared} record(s) not found in this read are kept" if spared else ""
        warnings.append(
            f"{len(partial)} file(s) not read whole (first: {first}; see issues){kept}: an"
            " export still being written, or a damaged or unreadable file?"
        )
        log.warning("site %s: %s", site.id, warnings[-1])
    if stats.outcomes:  # (not read whole, above; but a file to export again, not to repair)
        first = min(stats.outcomes)
        warnings.append(
            f"{len(stats.outcomes)} file(s) hold an OperationOutcome, a server's error answer,"
            f" not data (first: {names.show(first)}: {stats.outcomes[first]}): export them"
            " again; until then nothing is dropped from the store"
        )
        log.warning("site %s: %s", site.id, warnings[-1])
    if stats.recoded:  # (kept, but names may read wrong: a warning, not only an issue)
        warnings.append(
            f"{len(stats.recoded)} file(s) not UTF-8, read as Windows-1252 (first:"
            f" {names.show(min(stats.recoded))}; see issues): have the export written in UTF-8"
        )
        log.warning("site %s: %s", site.id, warnings[-1])
    if site.server:  # (config.py: accepted, not used)
        warnings.append(
            "[sites.server] is not used: this site's source is a folder or file, not a FHIR"
            " server URL"
        )
    if not stats.read:  # (a feed that did not arrive: loud, not a quiet empty list)
        warnings.append(f"no FHIR records read from {site.source} ({stats.files} data file(s))")
        log.warning("site %s: %s", site.id, warnings[-1])
    return {
        "source": site.source,
        "kind": "files",
        "warnings": warnings,
        "files": stats.files,
        "read": dict(stats.read),
        "rejected": dict(stats.rejected),
        "skipped_types": dict(stats.skipped_types),
        "summarised": dict(stats.summarised),
        "stored": stored,
        "workers": workers,
        # (a unit's note is the one note its read adds: `read_unit`)
        "notes": [f"{names.show(u.origin)}: {u.note}" for u in units if u.note],
        "issues_total": len(stats.issues) + stats.issues_dropped,
        # (every issue's file is listed, not only the 200 here: a refused record's stub names
        # it in candidates.csv and evidence.csv, by the same pseudonym)
        "issues": [{"origin": names.show(i.origin), "reason": i.reason} for i in stats.issues][
            :200
        ],
    }
