"""A JSON file too large to parse whole: a Bundle read entry by entry (memory: one entry)."""

from __future__ import annotations

import io
import re
from collections import deque
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
    "looked_at",
    "ndjson_named_json",
    "read_head",
    "spooled",
]

# A .json file this large or larger (`[run] chunk_mb`'s default) is a Bundle streamed entry by
# entry when it can be (its `type` before its `entry`, as every serializer writes them), or NDJSON
# read a line at a time: parsed whole, a Bundle takes ~8x its size in memory (a 290 MB collection
# Bundle of 615 Synthea charts: 2.3 GB peak; streamed: 0.11 GB; bench/RESULTS.md). Smaller files
# are parsed whole with orjson, as before (a patient's Bundle: faster; Synthea's are 0.4 MB, at
# most 1.7 MB).
BIG_JSON = 16 * 2**20
_PART = 2**20  # (read a MB at a time: one read of BIG_JSON bytes cost a small file ~4x a plain
# read, a buffer made for the whole size)
_LOOK = 4 * _PART  # the first bytes looked at to tell a Bundle or NDJSON (else: parsed whole)

# what a Bundle streamed cannot be read past (a damaged or cut-short file; a number or text
# orjson cannot write back: an integer past 64 bits, a lone surrogate)
NotStreamed = (ijson.JSONError, ValueError, TypeError)
_BLANK = re.compile(rb"[ \t\r\n]*")


def read_head(fh: IO[bytes], size: int) -> list[bytes]:
    """Up to `size` bytes of `fh` (fewer only at its end), in pieces of at most a MB (joined,
    a large file's first bytes would be held twice)."""
    parts = []
    while size > 0 and (part := fh.read(min(size, _PART))):
        parts.append(part)
        size -= len(part)
    return parts


def looked_at(parts: list[bytes]) -> bytes:
    """The first bytes of a large file, as `bundle_type` and `ndjson_named_json` see them."""
    return b"".join(parts[: _LOOK // _PART])


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


# A UTF-16 surrogate escape that is not half of a pair: a high one not followed by a low one, a
# low one not preceded by a high one. orjson refuses the text (a Bundle parsed whole is refused,
# naming the file); ijson reads a lone high one as "?" (or, before an escape that is no low
# surrogate, as one other character). A backslash escaped before `ud800` (text, no escape)
# matches too: such a Bundle is read whole, as a small one, to the same records.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")  # (a literal start: searched at ~2 GB/s)
_HIGH = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
_LOW = re.compile(rb"\\u[dD][c-fC-F]")
_AHEAD, _KEEP = 10, 16  # the bytes a match looks at from its start, and with those before it


class LoneSurrogate(ValueError):
    """A Bundle being streamed holds a lone surrogate escape (one of `NotStreamed`)."""


class _Joined(io.RawIOBase):
    """The first bytes read (`parts`), then the rest of `fh`: the file as one stream again, each
    part let go once read; with `strict`, raising LoneSurrogate where the bytes hold one."""

    def __init__(self, parts: list[bytes], fh: IO[bytes], strict: bool) -> None:
        self._parts = deque(memoryview(p) for p in parts)
        self._fh = fh
        self._tail: bytes | None = b"" if strict else None  # the last bytes read, unchecked

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._read(buffer)
        if self._tail is not None:
            self._check(bytes(buffer[:n]) if n else b"")
        return n

    def _check(self, data: bytes) -> None:
        """Look for a lone surrogate escape in the bytes read (`data`: the next ones; empty at
        the end). Whether one at a position is lone reads 6 bytes before it and 10 from it, so
        the last _AHEAD positions wait for the next read, and _KEEP bytes are kept for it."""
        tail = self._tail or b""
        text = tail + data
        at = max(len(tail) - _AHEAD, 0)  # (positions before it were looked at already)
        last = len(text) - _AHEAD if data else len(text)
        while (found := _SURROGATE.search(text, at)) is not None and found.start() <= last:
            at = found.start()
            if _HIGH.match(text, at) is not None:
                if _LOW.match(text, at + 6) is None:
                    raise LoneSurrogate("a lone UTF-16 surrogate escape")
                at += 12  # (a pair)
            elif at < 6 or _HIGH.fullmatch(text, at - 6, at) is None:
                raise LoneSurrogate("a lone UTF-16 surrogate escape")
            else:
                at += 6  # (a pair's low half, its high half before `at`)
        self._tail = text[-_KEEP:]

    def _read(self, buffer: Any) -> int:
        while self._parts:
            part = self._parts[0]
            n = min(len(buffer), len(part))
            buffer[:n] = part[:n]
            if n < len(part):
                self._parts[0] = part[n:]
            else:
                self._parts.popleft()
            if n:
                return n
        data = self._fh.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def joined(parts: list[bytes], fh: IO[bytes], *, strict: bool = False) -> IO[bytes]:
    """`parts` (taken: the list is emptied) and the rest of `fh` as one buffered stream
    (`strict`: a Bundle's, raising LoneSurrogate, one of NotStreamed, on a lone surrogate)."""
    stream = io.BufferedReader(_Joined(parts, fh, strict), _PART)
    parts.clear()
    return stream


def ndjson_named_json(head: bytes) -> bool:
    """Whether a large .json file is NDJSON (an exporter's `Patient.json` of one resource a
    line): its first line one JSON object with a resourceType, the next text starting a line.
    Parsed whole, such a file is then read line by line from a copy split in memory (twice its
    size); read as a stream, a line at a time, with the same result."""
    end = head.find(b"\n")
    if end < 0 or not opens_with_resource(head[:end]):
        return False
    blank = _BLANK.match(head, end + 1)
    at = blank.end() if blank else end + 1
    # (where parsing it whole stops: at a line's start, or within a line: invalid, as before)
    return at < len(head) and head[at - 1] == ord("\n")


def entries(stream: IO[bytes], btype: str, spool: IO[bytes]) -> dict[str, str]:
    """The Bundle's first pass, streamed: each entry named (`name_entry`) and written to
    `spool` as one line; its fullUrl -> "Type/id" map. Raises `NotStreamed` on bad JSON."""
    refs: dict[str, str] = {}
    creates = btype in ("transaction", "batch")
    for entry in ijson.items(stream, "entry.item", use_float=True):
        name_entry(entry, refs, creates)
        spool.write(orjson.dumps(entry))
        spool.write(b"\n")
    return refs


def spooled(spool: IO[bytes]) -> Iterator[Any]:
    """The entries `entries` wrote, in order."""
    spool.seek(0)
    for line in spool:
        yield orjson.loads(line)
