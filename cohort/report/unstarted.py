"""OUT/run.json of a run its configuration stopped before it started (exit 3)."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

from cohort import __version__
from cohort.errors import ConfigError, LockedError, OutputError

log = logging.getLogger("cohort")

BUILT_IN = "(built-in sample configuration)"  # run.json's `config` for a run without --config


def config_failed(out: Path, config: str, as_of: date, exc: ConfigError) -> None:
    """Write OUT/run.json saying the run of `config` (run.json's name for it) failed with
    `exc`, as any other failure does, when OUT holds an earlier run's outputs: left alone, last
    night's "success" told a monitor the night had gone well. The kept lists are described as
    a failed run describes them (`outputs_as_of`, `outputs_sites`, ...), so that `diff`,
    `explain` and the next run read them as before.

    An OUT that does not exist is not made for it, nor is one holding no run's outputs
    written to; one that a run holds (writing it: run.json is that run's) is left alone, and
    one whose lock or run.json cannot be written is logged: the error stays the config's."""
    from cohort.outputs import write_report
    from cohort.report.kept import mark_failed
    from cohort.runlock import out_lock
    from cohort.runner import now_iso
    from cohort.tools.changes import kept_outputs

    if not out.is_dir() or not ((out / "run.json").is_file() or any(out.glob("*/candidates.csv"))):
        return
    try:
        with out_lock(out):
            kept = kept_outputs(out)
            at = now_iso()
            report: dict[str, Any] = {
                "tool": f"cohort {__version__}",
                "started": at,
                "finished": at,
                "as_of": as_of.isoformat(),
                "config": config,
                "sites": {},
                "warnings": [],
                "timings": {},
            }
            # (no trial, mappings or sites: the configuration naming them could not be read)
            mark_failed(report, str(exc), kept, None, changed=set(), at=at)
            write_report(out, report, failed=True, replaced=False)
    except LockedError:
        return
    except OutputError as lock_exc:
        log.error("%s", lock_exc)
