"""Writes a run's outputs: the site lists staged then renamed into place, and run.json last."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from cohort.atomic import try_folder
from cohort.errors import OutputError, ReportError
from cohort.forks import map_chunks
from cohort.model import SiteResult

__all__ = ["REPORT_FORK_MIN", "drop_run_json", "write_outputs", "write_report"]

log = logging.getLogger("cohort")

REPORT_FORK_MIN = 2000  # candidates from which the output files are written by two processes


def write_outputs(
    out: Path,
    results: list[SiteResult],
    history: list[dict[str, Any]],
    phi: bool,
    before_replace: Callable[[], None] | None = None,
    renamed: list[Path] | None = None,
) -> None:
    """Write every file staged first, then replace them one by one (each atomically, 0600).

    `before_replace` runs once every file is staged, before any is replaced: what fails there
    (the run's history, written to the store) fails the run with the previous outputs kept.
    `renamed` gets the files renamed into place, also when the renames stop part-way (an error,
    SIGTERM): what the failure then says was replaced. Once one is, OUT/run.json, which
    described the lists it replaced, is removed (`drop_run_json`): an OUT that would not let it
    be fails the run before `before_replace`, nothing replaced (`try_folder`)."""
    from cohort.atomic import discard, write_atomic
    from cohort.report.csv import candidates_csv_chunks, evidence_csv_chunks
    from cohort.report.html import summary_html

    # (target, how to render it): CSVs are rendered piece by piece while their staged file is
    # written (bounded memory)
    jobs: list[tuple[Path, Callable[[], str | Iterator[str]]]] = []
    for sr in results:
        folder = out / sr.site_id
        jobs += [
            (folder / "candidates.csv", partial(candidates_csv_chunks, sr, phi=phi)),
            (folder / "evidence.csv", partial(evidence_csv_chunks, sr, phi=phi)),
            (folder / "summary.html", partial(summary_html, sr, history=history, phi=phi)),
        ]
    staged = [(path.with_name(f".{path.name}.staged"), path) for path, _ in jobs]

    def write_one(i: int) -> None:
        write_atomic(staged[i][0], jobs[i][1]())

    def write(parts: Iterator[list[int]]) -> Iterator[list[int]]:
        for part in parts:
            for i in part:
                write_one(i)
            yield part

    # Two phases so a failure (disk full, folder unwritable) replaces nothing: every file is
    # first written whole next to its target, and only then are they all renamed into place.
    # The files are rendered and written by two processes, whichever is free taking the next
    # (10k candidates: ~0.78 -> ~0.6 s); if that fails, here, one after the other, so an error
    # is raised here with its own message.
    renaming = False
    try:
        done = None
        if len(jobs) > 1 and sum(len(sr.candidates) for sr in results) >= REPORT_FORK_MIN:
            done = map_chunks(write, list(range(len(jobs))), 2, msgspec.msgpack.encode, _indexes)
        if done is None:
            for i in range(len(jobs)):
                write_one(i)
        for _, path in staged:
            # (the one way a rename in the same folder fails that writing did not show: a folder
            # in a file's place; checked before any file is replaced, so all are kept)
            if path.is_dir():
                raise OutputError(f"cannot write {path}: Is a directory")
        # run.json goes after the first rename and is written last: an OUT that takes neither
        # (0555, its site folders writable) had every list replaced, then exit 11 with last
        # night's run.json still there, "success" beside tonight's lists
        try_folder(out / "run.json")
        if before_replace is not None:
            before_replace()
        renaming = True
        for n, (tmp, path) in enumerate(staged):
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
            if n == 0:
                drop_run_json(out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror}") from exc
    finally:
        if renaming and renamed is not None:
            # read off the folder, not counted as they go: a SIGTERM between a rename and its
            # count would have left a replaced file out (a staged file is gone once renamed)
            renamed += [path for tmp, path in staged if not tmp.exists()]
        for tmp, _ in staged:
            discard(tmp)  # (with a half-written temp file of it: PHI, nothing else removes it)


_indexes = msgspec.msgpack.Decoder(list[int]).decode  # what the writing processes hand back


def drop_run_json(out: Path) -> None:
    """Remove OUT/run.json once a list it described has been replaced: left in place when the
    new one cannot be written (exit 11, or a failure part-way through the renames), it told
    research IT's monitor, `cohort diff` and the next run of older lists, "success", counts and
    as-of date, beside tonight's. Not before the first rename: a run that replaces nothing
    keeps it, still true of the lists it kept, should its own run.json fail too.
    Best effort: OUT was tried before the renames (`try_folder`), and a folder in its place
    describes nothing."""
    with contextlib.suppress(OSError):
        (out / "run.json").unlink()


def write_report(out: Path, report: dict[str, Any], *, failed: bool, replaced: bool) -> None:
    """Write run.json (staged, then renamed: never half-written). When the run has already
    failed, a run.json that cannot be written is logged and the run's own error (its one line
    and exit code) is what the caller sees. After a run that succeeded, the outputs are in
    place already (run.json is written last): exit 11 says so, not exit 9's "previous outputs
    kept". Either way, once a list was `replaced` no earlier run.json is left to describe it."""
    from cohort.atomic import write_atomic
    from cohort.report.run import run_json

    try:
        write_atomic(out / "run.json", run_json(report))
    except OutputError as exc:
        if replaced:
            # (write_outputs removed it after the first rename; a SIGTERM could come between)
            drop_run_json(out)
        if not failed:
            raise ReportError(f"outputs written; {exc}") from exc
        log.error("%s", exc)
