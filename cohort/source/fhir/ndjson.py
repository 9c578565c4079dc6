"""Reading a Bulk export's downloaded NDJSON files: their resources, and who is screened."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import orjson

from cohort.errors import ServerError
from cohort.merged import merge_links
from cohort.source.fileinfo import UNREADABLE, unreadable
from cohort.source.structure import loads
from cohort.store import patient_of


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as f:
        magic = f.read(2)
    return cast(IO[bytes], gzip.open(path, "rb")) if magic == b"\x1f\x8b" else path.open("rb")


def read_ndjson(path: Path, bad: list[int] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Resources of one export file; numbers of unreadable lines go to `bad` (PHI-free).

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
