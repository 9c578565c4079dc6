"""A JSON file too large to parse whole: a Bundle read entry by entry (memory: one entry)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO, Any

import ijson
import orjson

from cohort.source.structure import name_entry, opens_with_resource

__all__ = [
    "BIG_JSON",
    "NotStreamed",
    "bundle_type",
    "entries",
    "joined",
    "ndjson_named_json",
    "read_head",
    "spooled",
]

# A .json file this large or larger is a Bundle streamed entry by entry when it can be (its
# `type` before its `entry`, as every serializer writes them): parsed whole, a Bundle takes
# ~8x its size in memory (a 290 MB collection Bundle of 615 Synthea charts: 2.3 GB peak,
# streamed: the run's usual ~0.3 GB; bench/RESULTS.md). Smaller files are parsed whole, with
# orjson, as before (a patient's Bundle: faster, and what most files are).
BIG_JSON = 64 * 2**20

# what a Bundle streamed cannot be read past (a damaged or cut-short file; a number or text
# orjson cannot write back: an integer past 64 bits, a lone surrogate)
NotStreamed = (ijson.JSONError, ValueError, TypeError)


def read_head(fh: IO[bytes], size: int) -> bytes:
    """Up to `size` bytes of `fh` (fewer only at its end). (Read a MB at a time: one read of
    `size` bytes costs a small file ~4x a plain read, the buffer made for the whole size.)"""
    parts = []
    while size > 0 and (part := fh.read(min(size, 2**20))):
        parts.append(part)
        size -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def bundle_type(head: bytes) -> str | None:
    """The `type` of the Bundle `head` opens, when it can be streamed: `resourceType` Bundle
    and `type` given before `entry`, an array. None: anything else (read whole, as before;
    a history Bundle too: which versions are current needs every entry at once)."""
    rtype = btype = None
    events = ijson.parse(io.BytesIO(head))
    try:
        for prefix, event, value in events:
            if prefix == "resourceType" and event == "string":
                rtype = value
            elif prefix == "type" and event == "string":
                btype = value
            elif prefix == "" and event == "map_key" and value == "entry":
                opens = next(events)[1]
                if opens == "start_array" and rtype == "Bundle" and btype != "history":
                    return btype
                return None
    except (*NotStreamed, StopIteration):
        return None
    return None


class _Joined(io.RawIOBase):
    """`head`, then the rest of `fh`: the file as one stream again."""

    def __init__(self, head: bytes, fh: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._fh = fh

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._fh.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def joined(head: bytes, fh: IO[bytes]) -> IO[bytes]:
    """`head` and the rest of `fh` as one buffered stream (lines or reads)."""
    return io.BufferedReader(_Joined(head, fh), 2**20)


def ndjson_named_json(head: bytes) -> bool:
    """Whether a large .json file is NDJSON (an exporter's `Patient.json` of one resource a
    line): its first line one JSON object with a resourceType, the next text starting a line.
    Parsed whole, such a file is then read line by line from a copy split in memory (twice its
    size); read as a stream, a line at a time, with the same result."""
    first, sep, rest = head.partition(b"\n")
    if not sep or not opens_with_resource(first):
        return False
    text = rest.lstrip()
    at = len(rest) - len(text)  # (where parsing it whole stops: at a line's start, or not)
    return bool(text) and (at == 0 or rest[at - 1 : at] == b"\n")


def entries(head: bytes, fh: IO[bytes], btype: str, spool: IO[bytes]) -> dict[str, str]:
    """The Bundle's first pass, streamed: each entry named (`name_entry`) and written to
    `spool` as one line; its fullUrl -> "Type/id" map. Raises `NotStreamed` on bad JSON."""
    refs: dict[str, str] = {}
    creates = btype in ("transaction", "batch")
    for entry in ijson.items(joined(head, fh), "entry.item", use_float=True):
        name_entry(entry, refs, creates)
        spool.write(orjson.dumps(entry))
        spool.write(b"\n")
    return refs


def spooled(spool: IO[bytes]) -> Iterator[Any]:
    """The entries `entries` wrote, in order."""
    spool.seek(0)
    for line in spool:
        yield orjson.loads(line)
