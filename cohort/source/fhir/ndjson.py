"""Reading a Bulk export's downloaded NDJSON files: their resources, who is screened, and
the screened patients' records into the store."""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import orjson

from cohort.errors import ServerError
from cohort.merged import merge_links
from cohort.source.fileinfo import UNREADABLE, unreadable
from cohort.source.structure import loads
from cohort.source.unparsed import NOT_UTF8, is_utf8
from cohort.source.validate import RESOURCE_TYPES
from cohort.store import Tomb, patient_of, tomb_of

from .outcome import keyed, type_name
from .plan import BY_CODE
from .spool import served_whole

if TYPE_CHECKING:
    from .puller import Puller

# records stored per store call while loading an export
BATCH = 2000
_OVERCOUNTS = "bulk-overcounts"  # (the mark: this server's `count` was seen to overcount)


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as f:
        magic = f.read(2)
    return cast(IO[bytes], gzip.open(path, "rb")) if magic == b"\x1f\x8b" else path.open("rb")


def read_ndjson(
    path: Path,
    bad: list[int] | None = None,
    cut: list[int] | None = None,
    *,
    not_utf8: list[int] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Resources of one export file; numbers of unreadable lines go to `bad` (PHI-free), to
    `cut` that of a last line which breaks off mid-record (no JSON, no newline after it), and
    to `not_utf8` those of unreadable lines that are not UTF-8.

    Such a line is not read as Windows-1252, as a local file's is (cohort/source/unparsed.py):
    Bulk Data output must be UTF-8, and a server's text in another charset is read only when
    the server names it (answer.as_utf8), never by a guess, which a downloaded file no longer
    holds. The line stays unreadable, and the warning says why.

    A downloaded file that cannot be read (a damaged gzip body) fails the pull with a
    ServerError, and is removed from the spool so that the next run downloads it again."""
    try:
        with _open(path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        res = loads(line)
                    except orjson.JSONDecodeError:
                        res = None
                        if cut is not None and not line.endswith(b"\n"):
                            cut.append(n)
                        if not_utf8 is not None and not is_utf8(line):
                            not_utf8.append(n)
                    if isinstance(res, dict):
                        yield n, res
                    elif bad is not None:
                        bad.append(n)
    except UNREADABLE as e:
        path.unlink(missing_ok=True)
        why = unreadable(e)  # "file cannot be read (zlib.error)"
        raise ServerError(f"bulk {path.name}: downloaded {why}; removed, to fetch again") from None


def screened_in(files: list[tuple[str, Path]], codes_wanted: set[str]) -> set[str]:
    """Patients with a Condition whose code (any system variant) is a screening code."""
    found: set[str] = set()
    for rtype, path in files:
        if rtype != "Condition":
            continue
        for _, res in read_ndjson(path):
            code = res.get("code")  # (of any shape: a list, a string, crashed the pull)
            coding = code.get("coding") if isinstance(code, dict) else None
            codes = {
                str(c.get("code"))
                for c in (coding if isinstance(coding, list) else [])
                if isinstance(c, dict)
            }
            if codes & codes_wanted and (pid := patient_of(res)):
                found.add(pid)
    return found


def export_links(files: list[tuple[str, Path]]) -> dict[str, str]:
    """Old patient id -> the id that replaced it, from the export's Patient records
    (cohort.merged.merge_links)."""
    return merge_links(
        res
        for rtype, path in files
        if rtype == "Patient"
        for _, res in read_ndjson(path)
        if res.get("link") is not None
    )


def not_whole(
    p: Puller, cut: list[str], damaged: list[str], empty: list[str], short: list[str]
) -> bool:
    """Warn (run.json, and the log: records may stay stale until the export is whole) of the
    export files `load` found cut short, damaged, empty or short of their count (`short`:
    "name (n record(s) of the m the manifest counts)"); True when there is one. The bulk
    mark then stays (moving it would leave the records they held out of every later export:
    one since the mark holds a record only if it changes once more) and nothing is swept."""
    said = []
    if empty:  # (the IG has a server leave out a type with no records, or count 0 in its item)
        said.append(
            f"bulk {', '.join(empty[:5])}: not read whole (an empty file, which the manifest"
            " listed: a download that ended before its first byte?); no stored record is"
            " removed as gone from the server, and the bulk mark was not advanced: the next"
            " export repeats this window"
        )
    if cut:  # (the server's file, or its answer, cut short: the records after the break)
        said.append(
            f"bulk {', '.join(cut[:5])}: the last line breaks off mid-record (the file was not"
            " served whole); the bulk mark was not advanced, the next export repeats this window"
        )
    if damaged:  # (a full refresh took the stored copy of the record a line held for deleted)
        said.append(
            f"bulk {', '.join(damaged[:5])}: not read whole (a line that is no JSON, or a"
            " record with no resource type or id: which record it held is unknown); no stored"
            " record is removed as gone from the server, and the bulk mark was not advanced:"
            " the next export repeats this window"
        )
    if short:  # (a body that ended early between two lines, with no Content-Length to tell)
        said.append(
            f"bulk {', '.join(short[:5])}: fewer records than the manifest counts (the file"
            " was not served whole); no stored record is removed as gone from the server, and"
            " the bulk mark was not advanced: the next export repeats this window"
        )
    for msg in said:
        p.report.warn(msg)
        p.log.warning("fhir %s: %s", p.site, msg)
    return bool(said)


def mapped_codes(p: Puller) -> dict[str, set[tuple[str | None, str]]]:
    """For each type searched by code, the (system or None: any, code) pairs of its mapped
    codes: what its searches (and the export's _typeFilter) ask for."""
    return {t: p.pairs.get(t, set()) for t in BY_CODE}


def has_mapped_code(res: dict[str, Any], wanted: set[tuple[str | None, str]]) -> bool:
    """Whether a record's `code` has a coding that its type's search by code would match, or
    (an Observation) one of its components' does: a component whose code maps is a result of
    its own, and its record is kept on every reading path (docs/rules.md)."""
    parts = res.get("component") if res.get("resourceType") == "Observation" else None
    codes = [res.get("code")] + [
        c.get("code") for c in (parts if isinstance(parts, list) else []) if isinstance(c, dict)
    ]
    return any(_coded(code, wanted) for code in codes)


def _coded(code: Any, wanted: set[tuple[str | None, str]]) -> bool:
    coding = code.get("coding") if isinstance(code, dict) else None
    return any(
        isinstance(c, dict)
        and isinstance(cd := c.get("code"), str)
        and ((None, cd) in wanted or (c.get("system"), cd) in wanted)
        for c in (coding if isinstance(coding, list) else [])
    )


def load(
    p: Puller,
    files: list[tuple[str, Path]],
    screened: set[str],
    asked: set[str],
    changes: bool = False,
    counts: Mapping[str, int] | None = None,
) -> tuple[set[str], list[str], list[str], list[str], list[str]]:
    """Store screened patients' records and Medications; then read referenced Medications the
    export left out (Patient-level exports hold only the patient compartment). Of the types
    searched by code, only records with a mapped code are stored, as a search would fetch them
    (an export the server would not filter holds every one); the others are counted in
    `not_stored`; records of a type not in `asked` (the kick-off's) are counted in
    `skipped_types`. `changes` (an export since the last one): a stored record the export now
    holds as another patient's, not screened (moved to the right chart), is removed, as a
    fresh pull would not have it. Returns the screened patients whose Patient record the
    export held, the names of the files whose last line breaks off mid-record (not served
    whole: the records it held may be missing), and those of the other files with a damaged
    line: no JSON object, or a record that cannot be named (no R4 resourceType; of a type
    asked, no id). Which stored record such a line held is unknown: not read whole either;
    nor are the files of no bytes, but for those the manifest counts 0 records in (`counts`,
    by file name: spool.counts), nor, named last, those holding fewer lines than it counts."""
    wanted = mapped_codes(p)
    meds: list[dict[str, Any]] = []
    held: set[str] = set()
    cut_short: list[str] = []
    damaged: list[str] = []
    empty: list[str] = []
    short: list[str] = []
    over: list[str] = []  # (short of their count, yet served whole: the count is wrong)
    counts = counts or {}
    left: list[Tomb] = []  # (records of patients not screened: see `changes`)
    for _, path in sorted(files, key=lambda f: f[0] != "Medication"):
        if path.stat().st_size == 0 and counts.get(path.name) != 0:
            # read as a file of no records, a full refresh removed every record it held
            empty.append(path.name)
            continue
        batch: list[tuple[dict, str]] = []
        bad: list[int] = []
        cut: list[int] = []
        foreign: list[int] = []
        unnamed: list[int] = []
        read = 0  # (records read: with its unreadable lines, what the manifest counts)
        for n, res in read_ndjson(path, bad, cut, not_utf8=foreign):
            read += 1
            kind = res.get("resourceType")
            if (
                kind.__class__ is not str
                or kind not in RESOURCE_TYPES
                or (kind in asked and not keyed(res))
            ):
                # (a damaged record: which one it was is unknown; put() would drop it, and a
                # full refresh took its stored copy for deleted on the server)
                unnamed.append(n)
                continue
            if kind not in asked:
                name = type_name(kind)
                p.report.skipped_types[name] = p.report.skipped_types.get(name, 0) + 1
                continue
            if kind == "Medication" or (pid := patient_of(res)) in screened:
                if kind in wanted and not has_mapped_code(res, wanted[str(kind)]):
                    # (an unfiltered export: vital signs, unrelated labs; PHI no criterion reads)
                    p.report.not_stored[str(kind)] = p.report.not_stored.get(str(kind), 0) + 1
                    continue
                batch.append((res, f"bulk {path.name}:{n}"))
                if res.get("resourceType") == "Patient" and pid:
                    held.add(pid)
                if "medicationReference" in res:
                    meds.append({"medicationReference": res["medicationReference"]})
            elif changes and (tomb := tomb_of(str(kind), res)) is not None:
                left.append(tomb)
            if len(batch) >= BATCH:
                p.put(batch)
                batch = []
        p.put(batch)
        if bad:
            p.report.warn(
                # the spool file (a type may be split over several): a warning naming the type
                # twice was one warning, and the second file's lines went uncounted
                f"bulk {path.name}: {len(bad)} unreadable line(s), first at line {bad[0]}"
                + (
                    f" ({len(foreign)} {NOT_UTF8}, which Bulk Data output must be)"
                    if foreign
                    else ""
                )
            )
        if unnamed:
            p.report.warn(
                f"bulk {path.name}: {len(unnamed)} record(s) with no FHIR R4 resourceType or"
                f" no id, first at line {unnamed[0]}"
            )
        if cut:
            cut_short.append(path.name)
        if unnamed or set(bad) - set(cut):  # (a cut last line alone: `cut_short`'s warning)
            damaged.append(path.name)
        # (one whose last line breaks off: `cut_short`'s warning says it already)
        if not cut and read + len(bad) < counts.get(path.name, 0):
            n, counted = read + len(bad), counts[path.name]
            if served_whole(path):
                over.append(f"{path.name} ({n} record(s); the manifest counts {counted})")
            else:
                short.append(f"{path.name} ({n} record(s) of the {counted})")
    if left:
        gone = p.store.doomed(p.site, left)  # (stored, and not newer than the export's copy)
        if gone:
            p.store.drop(p.site, gone)
            p.report.removed += len(gone)
    p.fetch_medications(meds)
    if over:
        _overcounts(p, over)
    return held, cut_short, damaged, empty, short


def _overcounts(p: Puller, over: list[str]) -> None:
    """Say that the manifest's `count` overcounts files served whole: a run.json (and log)
    warning the first night a site's server does (a store mark remembers it), later nights a
    line of the log's at info level."""
    msg = (
        f"bulk {', '.join(over[:5])}: fewer records than the manifest counts, though the file"
        " was served whole (its Content-Length matched, its last line complete): taken as"
        " whole, the count is the server's error (the Bulk Data IG's `count` is optional)"
    )
    if p.mark(_OVERCOUNTS):
        p.log.info("fhir %s: %s", p.site, msg)
        return
    p.report.warn(msg + "; said once, later nights in the log only")
    p.log.warning("fhir %s: %s", p.site, msg)
    p.set_mark(_OVERCOUNTS, "1")
