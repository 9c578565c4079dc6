"""Stream FHIR R4 resources from files: plan the read in units (whole files, byte ranges of
plain NDJSON, decompressed pieces of compressed NDJSON) that one process each can read."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cohort.errors import SourceError
from cohort.source.fileinfo import (
    EXPORT_LOG_HEAD,
    EXPORT_LOG_NOTE,
    GZIP_MAGIC,
    MAX_ISSUES,
    NDJSON_SUFFIXES,
    OPENERS,
    UNREADABLE,
    UTF16_BOMS,
    ReadIssue,
    ReadStats,
    is_export_log,
    named_for,
    origin_of,
    unreadable,
    utf8_name,
)
from cohort.source.filereader import FileReader
from cohort.source.names import PREFIX, FileNames
from cohort.source.validate import MODES

if TYPE_CHECKING:  # the reader only calls the triage; the triage itself belongs to extract
    from cohort.extract.census import Triage

__all__ = [
    "MAX_ISSUES",
    "ReadIssue",
    "ReadStats",
    "Unit",
    "data_bytes",
    "fingerprint",
    "plan_units",
    "read_path",
    "read_unit",
    "stream_units",
]

# (resource, origin, the JSON text as read when it is one NDJSON line, else None)
_Item = tuple[dict[str, Any], str, bytes | None]


def _walk(directory: Path, root: Path, names: FileNames) -> Iterator[tuple[Path, str]]:
    """(file, why it is skipped or "") under `directory`, sorted by name at each level; hidden
    entries left out.

    A symbolic link to a folder is not followed (it may lead back up, or to an archive of old
    exports) but named as skipped: it was left out without a word, and the records in it with
    it. A link to nothing is yielded as a file, so that its read reports it (it was left out
    silently too). Other special files (FIFOs, devices, sockets) are left out: opening one
    could block the run. A folder under `root` is named as `names` show it (a folder may be
    named after a patient as a file may)."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as e:
        where = utf8_name(str(directory))
        if directory != root:
            where = names.show(origin_of(directory, root))
        if where.startswith(PREFIX):
            where += " (a pseudonym: file-names.tsv in the store's folder names it)"
        raise SourceError(f"cannot list directory {where}: {e.strerror}") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(path, root, names)
        elif entry.is_file() or (entry.is_symlink() and not path.exists()):
            yield path, ""
        elif entry.is_symlink() and entry.is_dir():
            yield path, "skipped: a symbolic link to a folder (not followed)"


def read_path(
    path: Path,
    stats: ReadStats,
    *,
    types: set[str] | None = None,
    validate: str = "fast",
    triage: Triage | None = None,
) -> Iterator[tuple[dict[str, Any], str]]:
    """Yield (resource, origin) from a directory (recursively, sorted) or a single file.

    Checks run eagerly (not at the first `next`) so a missing path fails where it is named.
    """
    if validate not in MODES:
        raise ValueError(f"unknown validation mode {validate!r}; expected one of {MODES}")
    units = plan_units(path)
    return (
        (res, origin)
        for unit in units
        for res, origin, _ in read_unit(unit, stats, types=types, validate=validate, triage=triage)
    )


@dataclass(frozen=True)
class Unit:
    """A piece of a read that one process can do alone: a whole file, or a line-aligned byte
    range [start, end) of a plain NDJSON file (`part` counts the ranges of that file from 0)."""

    path: Path
    root: Path
    origin: str
    start: int = 0
    end: int = -1  # -1: the whole file, through the general reader
    part: int = 0
    size: int = 0  # bytes of data in the unit
    data: bytes | None = None  # lines already decompressed (see `stream_units`)
    error: str = ""  # the file broke off here: the issue to report
    skip: str = ""  # not read, and why (the issue to report)
    note: str = ""  # not read by design, and why (a note, no issue: see `_export_log`)
    # the file's (size, modification time ns, inode) when planned; None: it could not be looked at
    stamp: tuple[int, int, int] | None = None


def plan_units(
    path: Path, chunk_bytes: int | None = None, names: FileNames | None = None
) -> list[Unit]:
    """The units of `path` (a directory, recursively and sorted, or a file) in reading order;
    plain NDJSON files above `chunk_bytes` are split (None: every file is one unit). `names`:
    how an error names a folder under `path` (`FileNames.show`)."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"data path not found: {path}")
    if not (path.is_dir() or path.is_file()):  # (a FIFO would block the run on its first read)
        raise SourceError(f"data path is neither a folder nor a regular file: {path}")
    if path.is_dir():
        root, files = path, _walk(path, path, names or FileNames())
    else:
        root, files = path.parent, iter([(path, "")])
    units: list[Unit] = []
    for f, skip in files:
        origin = origin_of(f, root)
        if skip:
            units.append(Unit(f, root, origin, skip=skip))
            continue
        try:
            st = f.stat()
            size, stamp = st.st_size, (st.st_size, st.st_mtime_ns, st.st_ino)
        except OSError:
            size, stamp = 0, None  # gone or unreadable: the reader reports it where it opens it
        plain = f.name.lower().endswith(NDJSON_SUFFIXES)
        if plain and _export_log(f):
            units.append(Unit(f, root, origin, size=size, stamp=stamp, note=EXPORT_LOG_NOTE))
            continue
        if chunk_bytes is None or not plain or size <= chunk_bytes:
            units.append(Unit(f, root, origin, size=size, stamp=stamp))
            continue
        cuts = [0]
        try:
            with f.open("rb") as fh:
                if fh.read(2) in (GZIP_MAGIC, *UTF16_BOMS):  # (the reader sees to these whole)
                    cuts = []
                while cuts and cuts[-1] + chunk_bytes < size:
                    fh.seek(cuts[-1] + chunk_bytes)
                    fh.readline()  # to the end of the line the cut fell in
                    if fh.tell() >= size:
                        break
                    cuts.append(fh.tell())
        except OSError:
            cuts = []  # (gone since): read whole, where the reader reports it
        if not cuts:
            units.append(Unit(f, root, origin, size=size, stamp=stamp))
            continue
        cuts.append(size)
        units += [
            Unit(f, root, origin, a, b, k, b - a, stamp=stamp)
            for k, (a, b) in enumerate(pairwise(cuts))
        ]
    return units


def _export_log(path: Path) -> bool:
    """Whether the plain NDJSON file `path` is a Bulk export client's log (`is_export_log`).
    Decided here, for the whole file: split into byte ranges, its later ranges were data."""
    try:
        with path.open("rb") as fh:
            return is_export_log(fh.readline(EXPORT_LOG_HEAD))
    except OSError:
        return False  # (read as data, where the reader reports it)


_SAMPLE = 16 << 10  # bytes of a file's start and of its end that its fingerprint includes


def fingerprint(units: list[Unit]) -> str | None:
    """A digest of the files behind `units`, to tell an unchanged source without reading it:
    each file's path, size, modification time (ns) and inode, and the bytes of its first and
    last 16 KiB (so a rewrite on a coarse-clock file system that kept size and time still
    shows; larger samples cost a first read of many small files too much: 617 Synthea
    bundles took 1.2 s to fingerprint with 1 MiB, 0.03 s with 16 KiB).

    Size, time and inode are those `plan_units` saw, not the file's now: a file still being
    written has grown past them by the time its read ends, so the next run sees a change and
    reads again (a stat taken after planning described data a byte-range read never reached,
    and the next run skipped those records as unchanged).
    None when a file cannot be looked at (the read then reports it)."""
    digest = hashlib.sha256()
    for u in units:
        if u.part:
            continue  # a file cut into ranges: fingerprinted once, with its first range
        if u.skip:
            digest.update(f"{u.origin}\0{u.skip}\0".encode())
            continue
        if u.stamp is None:
            return None
        size, mtime_ns, inode = u.stamp
        try:
            with u.path.open("rb") as fh:
                head = fh.read(_SAMPLE)
                if size > 2 * _SAMPLE:
                    fh.seek(size - _SAMPLE)
                tail = fh.read(_SAMPLE)
        except OSError:
            return None
        digest.update(f"{u.origin}\0{size}\0{mtime_ns}\0{inode}\0".encode())
        digest.update(head + b"\0" + tail + b"\0")
    return digest.hexdigest()


def read_unit(
    unit: Unit,
    stats: ReadStats,
    *,
    types: set[str] | None = None,
    validate: str = "fast",
    triage: Triage | None = None,
) -> Iterator[_Item]:
    """(resource, origin, raw) of one unit. Line numbers in a range's origins count from the
    range's first line: the caller, who knows the earlier ranges, adds their line counts."""
    reader = FileReader(stats, types, validate, triage)
    if unit.skip:
        stats.skipped_files += 1
        stats.issue(unit.origin, unit.skip)
        return
    if unit.note:
        stats.skipped_files += 1
        stats.notes.append(f"{unit.origin}: {unit.note}")
        return
    if unit.error:
        stats.broke(unit.origin, unit.error)
        return
    if unit.data is not None:
        data = unit.data
    elif unit.end < 0:
        broken = len(stats.partial)
        yield from reader.file(unit.path, unit.root)
        if len(stats.partial) == broken:  # (one issue a file: what broke its read, if anything)
            _check_unchanged(unit, stats)
        return
    else:
        try:
            with unit.path.open("rb") as fh:
                fh.seek(unit.start)
                data = fh.read(unit.end - unit.start)
        except OSError as e:
            stats.broke(unit.origin, unreadable(e))
            return
        if unit.stamp is not None and unit.end == unit.stamp[0]:  # (the file's last range)
            _check_unchanged(unit, stats)
    # split on \n only, as iterating the file does (so line numbers agree with a whole read)
    lines = data.split(b"\n")
    stats.lines += len(lines) - 1  # = data.count(b"\n"), without a second pass over the data
    del data  # the lines hold their own copies
    yield from reader.ndjson(lines, unit.origin, count_file=unit.part == 0)


def _check_unchanged(unit: Unit, stats: ReadStats) -> None:
    """A file that changed between planning and the end of its read (an export still being
    written, or replaced) may have been read in part: say so, and spare its records."""
    if unit.stamp is None:
        return  # (could not be looked at when planned: its read reported that)
    try:
        st = unit.path.stat()
    except OSError:
        st = None
    # (not the inode: some network file systems make them up, and may make up another)
    if st is None or (st.st_size, st.st_mtime_ns) != unit.stamp[:2]:
        stats.broke(unit.origin, "the file changed while it was read (still being written?)")


_PIECE = 1 << 20  # decompressed bytes per read: what a corrupt stream can lose at most


_INFLATE = 8  # FHIR JSON compresses about 8-15x: a compressed file's data, at the least


def _compressed_ndjson(unit: Unit) -> str | None:
    """The compression suffix of a whole-file compressed NDJSON unit, else None."""
    low = unit.path.name.lower()
    suffix = next((s for s in OPENERS if low.endswith(s)), None)
    if (
        unit.end >= 0
        or unit.skip
        or suffix is None
        or not low[: -len(suffix)].endswith(NDJSON_SUFFIXES)
    ):
        return None
    return suffix


def data_bytes(unit: Unit) -> int:
    """About how much data `unit` holds once decompressed (what sizes a pool of readers)."""
    return unit.size * _INFLATE if _compressed_ndjson(unit) else unit.size


def stream_units(units: Iterable[Unit], chunk_bytes: int) -> Iterator[Unit]:
    """`units`, with each compressed NDJSON file above `chunk_bytes` decompressed here into
    line-aligned in-memory units of about `chunk_bytes`, which other processes then parse.

    A compressed stream cannot be cut by seeking, so one process would otherwise parse the
    whole file alone (bench/RESULTS.md: 10k gzip NDJSON ingest 11.3 s against 5.8 s plain).
    Lines, their numbers and the issue of a file that breaks off are those of a whole read:
    every complete line decompressed before the break is kept.
    """
    for unit in units:
        suffix = _compressed_ndjson(unit)
        if suffix is None or unit.size * _INFLATE <= chunk_bytes or _misnamed(unit):
            yield unit
        else:
            yield from _decompressed(unit, OPENERS[suffix], chunk_bytes)


def _misnamed(unit: Unit) -> bool:
    """Whether a compressed-looking file is plain JSON after all (the reader then reads it)."""
    try:
        with unit.path.open("rb") as fh:
            head = fh.read(64)
    except OSError:
        return False  # (reported where it is opened)
    return named_for(unit.path.name, head) != unit.path.name


def _decompressed(unit: Unit, opener: Any, chunk_bytes: int) -> Iterator[Unit]:
    part, pieces, held, error = 0, [], 0, ""
    try:
        fh = opener(unit.path, "rb")
    except OSError as e:
        yield replace(unit, end=0, error=unreadable(e, "opened"))
        return
    with fh:
        while True:
            try:
                piece = fh.read1(min(_PIECE, chunk_bytes))
            except UNREADABLE as e:
                error, piece = unreadable(e), b""
            if piece:
                pieces.append(piece)
                held += len(piece)
                if held < chunk_bytes or b"\n" not in piece:
                    continue
            data = b"".join(pieces)
            # a unit ends with a whole line and the rest starts the next one; a file that breaks
            # off loses its unfinished last line, as a line-by-line read does
            cut = len(data) if not (piece or error) else data.rfind(b"\n") + 1
            if cut or part == 0:  # the first unit, even empty, counts the file
                yield replace(unit, end=0, part=part, size=cut, data=data[:cut])
                part += 1
            pieces, held = [data[cut:]], len(data) - cut
            if not piece:
                break
    if error:
        yield replace(unit, end=0, part=part, error=error)
