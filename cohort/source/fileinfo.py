"""What a data file is (by its name and first bytes), how it is named in issues, and the
counters of a read (ReadStats)."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import tarfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cohort.source.structure import BOM
from cohort.source.unparsed import not_utf8_reason

__all__ = [
    "EXPORT_LOG_NOTE",
    "GZIP_MAGIC",
    "MAX_ISSUES",
    "NDJSON_SUFFIXES",
    "OPENERS",
    "TAR_SUFFIXES",
    "UNREADABLE",
    "UTF16_BOMS",
    "ReadIssue",
    "ReadStats",
    "is_export_log",
    "is_non_data",
    "named_for",
    "origin_of",
    "utf8_name",
    "unreadable",
]

# Issues are kept in memory; a corrupt multi-GB NDJSON must not turn into a multi-GB issue list.
MAX_ISSUES = 10_000

# Files that are obviously not FHIR data (documentation, checksums, listings): skipped silently.
_NON_DATA_SUFFIXES = (".md", ".txt", ".tsv", ".csv", ".rst", ".html", ".pdf", ".sha256", ".sig")
_NON_DATA_STEMS = {"sha256sums", "md5sums", "readme", "license", "notice", "manifest", "changelog"}
TAR_SUFFIXES = (".tar", ".tar.xz", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".txz")
OPENERS: dict[str, Any] = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
GZIP_MAGIC = b"\x1f\x8b"  # how gzip data opens, whatever the file is called
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # how UTF-16 text opens (little, big endian)
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
# A Bulk export client's own log beside the data (the SMART bulk-data client writes log.ndjson):
# its event lines have no resourceType, and read as records each was a reject, so the run.json
# of every such export had issues and the documented alert fired each night
EXPORT_LOG_NOTE = "a Bulk export client's log (exportId, eventId), not FHIR data: skipped"
EXPORT_LOG_HEAD = 1 << 16  # bytes of a file's first line read to tell (an event line: ~200)
# What a corrupt or truncated file raises while it is read: one located issue, the read goes on
UNREADABLE = (OSError, EOFError, lzma.LZMAError, tarfile.TarError, UnicodeError, zlib.error)


@dataclass
class ReadIssue:
    """A located, PHI-free problem: `origin` is a path plus `#entry[i]` or `:line`."""

    origin: str
    reason: str


@dataclass
class ReadStats:
    """Counters of one read; `files` counts data files read (tar members count one each)."""

    files: int = 0
    read: Counter[str] = field(default_factory=Counter)  # yielded, by resourceType
    rejected: Counter[str] = field(default_factory=Counter)  # by resourceType ("?" unknown)
    skipped_types: Counter[str] = field(default_factory=Counter)  # filtered out by `types`
    summarised: Counter[str] = field(default_factory=Counter)  # read, taken by the triage
    lines: int = 0  # lines in the byte-range units read (see read_unit)
    issues: list[ReadIssue] = field(default_factory=list)
    skipped_files: int = 0  # not FHIR data (README, checksums, unknown formats)
    # files skipped by design, with why: "origin: note" (info, not issues: nothing to repair)
    notes: list[str] = field(default_factory=list)
    issues_dropped: int = 0  # issues beyond MAX_ISSUES (counted, not kept)
    # files (origins) not read whole: unreadable, corrupt, cut short or changed while read. What
    # they hold is unknown, so a read with one drops nothing and forgets no summary (ingest).
    partial: list[str] = field(default_factory=list)
    # ... of them, the files whose whole content is an OperationOutcome: a server's error answer
    # saved in place of the data (its own warning: nothing to repair in the file, re-export it)
    outcomes: dict[str, str] = field(default_factory=dict)  # origin -> its issues' codes
    # lines of each file read as Windows-1252 (0: a whole document): one issue a file, also
    # when its byte ranges are read apart (`merge`)
    recoded: Counter[str] = field(default_factory=Counter)
    # the files holding a refused record stored as a stub, which names its file in candidates.csv
    # and evidence.csv (listed in file-names.tsv: an issue past MAX_ISSUES is shown nowhere)
    stubbed: set[str] = field(default_factory=set)

    def issue(self, origin: str, reason: str) -> None:
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(ReadIssue(origin, reason))
        else:
            self.issues_dropped += 1

    def broke(self, origin: str, reason: str) -> None:
        """The file `origin` could not be read whole: an issue, and a read not complete."""
        self.issue(origin, reason)
        self.partial.append(origin)

    def recode(self, origin: str, lines: int) -> None:
        """`lines` more of the file `origin` were not UTF-8 and were read as Windows-1252."""
        said = self._recoded_issue(origin)
        self.recoded[origin] += lines
        if said is None:
            self.issue(origin, not_utf8_reason(self.recoded[origin]))
        else:
            said.reason = not_utf8_reason(self.recoded[origin])

    def _recoded_issue(self, origin: str) -> ReadIssue | None:
        if origin not in self.recoded:
            return None
        said = not_utf8_reason(self.recoded[origin])
        return next((i for i in self.issues if i.origin == origin and i.reason == said), None)

    def merge(self, other: ReadStats) -> None:
        """Add the counters and issues of another read (e.g. one chunk read elsewhere)."""
        issues = other.issues
        for origin, lines in other.recoded.items():
            if origin in self.recoded:  # another range of the file: its one issue counts them
                said = not_utf8_reason(lines)
                issues = [i for i in issues if i.origin != origin or i.reason != said]
                self.recode(origin, lines)
            else:
                self.recoded[origin] = lines
        self.files += other.files
        self.read.update(other.read)
        self.rejected.update(other.rejected)
        self.skipped_types.update(other.skipped_types)
        self.summarised.update(other.summarised)
        self.skipped_files += other.skipped_files
        self.notes += other.notes
        self.partial += other.partial
        self.outcomes.update(other.outcomes)
        self.stubbed |= other.stubbed
        room = max(MAX_ISSUES - len(self.issues), 0)
        self.issues += issues[:room]
        self.issues_dropped += other.issues_dropped + max(len(issues) - room, 0)


def origin_of(path: Path, root: Path) -> str:
    """The origin of a file: its path under the source folder `root`, in `utf8_name` form."""
    return utf8_name(path.relative_to(root).as_posix() if path != root else path.name)


def utf8_name(name: str) -> str:
    """A file name as UTF-8 can hold it: the bytes of a name that is not UTF-8 (a Latin-1 name
    copied from another system) as backslash escapes, `caf\\xe9.ndjson`. Origins go into the
    store, run.json and the unchanged-files stamp, and such a name crashed the run (exit 1)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def unreadable(exc: BaseException, verb: str = "read") -> str:
    """The located issue's reason for a file that cannot be opened or read (no message: PHI)."""
    kind = "zlib.error" if isinstance(exc, zlib.error) else type(exc).__name__  # (not "error")
    return f"file cannot be {verb} ({kind})"


def named_for(name: str, head: bytes) -> str:
    """`name` as its first bytes `head` say it should read: gzip data saved without its .gz
    gains it (every line of it was invalid JSON), and plain JSON named .gz loses it (the whole
    file was one "cannot be read" issue). Anything else keeps its name."""
    low = name.lower()
    if head[:2] == GZIP_MAGIC:
        return name if low.endswith(tuple(OPENERS)) else name + ".gz"
    if low.endswith(".gz") and head.removeprefix(BOM).lstrip()[:1] in (b"{", b"["):
        return name[:-3]
    return name


def is_non_data(name: str) -> bool:
    """Documentation, checksums, listings: not FHIR data (skipped without an issue)."""
    low = name.lower()
    stem = low.split(".", 1)[0]
    return low.endswith(_NON_DATA_SUFFIXES) or stem in _NON_DATA_STEMS


def is_export_log(first_line: bytes) -> bool:
    """Whether a file whose first line is `first_line` is a Bulk export client's event log:
    that line a JSON object with `exportId` and `eventId` and no `resourceType`. The first
    line decides for the whole file, whatever its name (a data file named log.ndjson is data)."""
    line = first_line.removeprefix(BOM)
    if b'"exportId"' not in line or b'"eventId"' not in line:
        return False  # (most files: no parse)
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(doc, dict)
        and "exportId" in doc
        and "eventId" in doc
        and "resourceType" not in doc
    )
