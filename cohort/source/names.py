"""How run.json, the log and messages name a source's files: Bulk-style names as they are, any
other name by a pseudonym (Synthea and export scripts name a bundle after its patient)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from cohort.source.r4_types import RESOURCE_TYPES

__all__ = ["PREFIX", "FileNames", "bulk_named", "file_of", "pseudonym"]

PREFIX = "file-"
# Where in a file an origin points (`files.py`, `reader.py`): an NDJSON line, a Bundle entry
# (nested ones too), or both (a Bundle on a line). Kept as is after a pseudonym.
_WHERE = re.compile(r"(?::\d+)?(?:#entry\[\d+\](?:\.entry\[\d+\])*)?\Z")
# What a data file's name may end with (`fileinfo.py`: compressions, archives, data formats)
_SUFFIXES = (".gz", ".xz", ".bz2", ".tar", ".tgz", ".txz", ".tbz2", ".ndjson", ".jsonl", ".json")
# A Bulk export's names: `Observation.ndjson`, `Observation.000.ndjson.gz`, `Observation_2.ndjson`,
# `1.Patient.ndjson`, cohort's own spool files (`0003.Condition.ndjson`, `error-0001.
# OperationOutcome.ndjson`), and the SMART client's `log.ndjson`. Words from this fixed list
# and numbers cannot name a patient; any other word can.
_BULK = re.compile(r"(?:(?:error-)?\d+[._-])?([A-Za-z]+)(?:[._-]\d+)*")
_WORDS = frozenset({t.lower() for t in RESOURCE_TYPES} | {"log"})


def bulk_named(name: str) -> bool:
    """Whether the file or folder name `name` is Bulk-style: a FHIR resource type (any case),
    maybe numbered, with a data file's suffixes (`Condition.ndjson`, `bundle-0009.json`)."""
    stem = name
    for _ in range(3):  # (.ndjson.gz, .tar.gz: at most a format and a compression, and a tar)
        low = stem.lower()
        stem = next((stem[: -len(s)] for s in _SUFFIXES if low.endswith(s)), stem)
    found = _BULK.fullmatch(stem)
    return found is not None and found[1].lower() in _WORDS


def file_of(origin: str) -> str:
    """The file's path of `origin`, its line or entry left out."""
    where = _WHERE.search(origin)
    return origin[: where.start()] if where is not None else origin


def pseudonym(path: str) -> str:
    """`file-` and the first 8 hex digits of the SHA-256 of `path` (UTF-8), a file's path under
    its source folder as origins write it: the same file has the same one every night."""
    digest = hashlib.sha256(path.encode("utf-8", "backslashreplace")).hexdigest()
    return PREFIX + digest[:8]


@dataclass
class FileNames:
    """The names one site's files are given in run.json, the log and messages; `hidden` keeps
    each pseudonym given (pseudonym -> path) for the store's folder (cohort/filenames.py).

    `given`: the origin of the file a site's source names itself (chosen by research IT in the
    config, and in run.json's `source` already): shown as it is, but not what is inside it."""

    given: str = ""
    hidden: dict[str, str] = field(default_factory=dict)

    def show(self, origin: str) -> str:
        """`origin` (a path under the source, maybe `:line` and `#entry[i]`) as run.json says it:
        the path as it is when each of its parts is Bulk-style, else its pseudonym."""
        path = file_of(origin)
        at = origin[len(path) :]
        if path == self.given:
            return origin
        rest = path.removeprefix(self.given + "/") if self.given else path
        if all(bulk_named(part) for part in rest.split("/")):
            return origin
        return self.keep(path) + at

    def keep(self, path: str) -> str:
        """The name of the file at `path` that knows no `given` (a refused record's stub names
        its file so in candidates.csv and evidence.csv: `stub_why`), kept in `hidden` when it
        is a pseudonym: a site whose source is that one patient-named file names it as it is
        in run.json, and by its pseudonym there."""
        if all(bulk_named(part) for part in path.split("/")):
            return path
        name = pseudonym(path)
        self.hidden[name] = path
        return name
