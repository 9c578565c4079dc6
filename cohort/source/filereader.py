"""Read one FHIR file or archive member by its name: compression, tar archives, NDJSON or JSON."""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import ijson

from cohort.source.bigjson import (
    BIG_JSON,
    NotStreamed,
    bundle_type,
    entries,
    joined,
    looked_at,
    ndjson_named_json,
    read_head,
    spooled,
)
from cohort.source.fileinfo import (
    NDJSON_SUFFIXES,
    OPENERS,
    TAR_SUFFIXES,
    UNREADABLE,
    UTF16_BOMS,
    is_non_data,
    named_for,
    origin_of,
    unreadable,
    utf8_name,
)
from cohort.source.reader import Item, Reader
from cohort.source.unparsed import BROKE_OFF, EMPTY_FILE, from_utf16

__all__ = ["FileReader"]


class FileReader(Reader):
    """A Reader of files: each file's bytes dispatched to the NDJSON or JSON document reader."""

    def stream(self, name: str, fh: IO[bytes], origin: str, stored: bool = True) -> Iterator[Item]:
        """Dispatch one byte stream by its (lower-cased) name; compressed names recurse.
        `stored`: `fh` holds the bytes as stored (a file, an archive member), not decompressed."""
        low = name.lower()
        for suffix, opener in OPENERS.items():
            if low.endswith(suffix):
                if _at_end(fh):
                    # (gzip reads no bytes as no data, where xz and bz2 raise: a download that
                    # died before its first byte read as an empty export, its records dropped)
                    raise EOFError("compressed file is empty")
                with opener(fh, "rb") as inner:
                    yield from self.stream(name[: -len(suffix)], inner, origin, stored=False)
                return
        if low.endswith(NDJSON_SUFFIXES):
            if stored and _at_end(fh):
                # A copy or download that died before its first byte, read as a file with no
                # records: a snapshot read dropped every record it held. (Bulk Data servers
                # leave out a type with no records; a whole compressed stream of nothing was
                # written to its end, and is read as empty.)
                self.stats.files += 1
                self.stats.broke(origin, EMPTY_FILE)
                return
            yield from self.ndjson(fh, origin)
        elif low.endswith(".json"):
            parts = read_head(fh, BIG_JSON)
            if sum(map(len, parts)) < BIG_JSON:  # (most files: parsed at orjson's speed)
                yield from self.json_doc(b"".join(parts), origin)
            else:
                yield from self.big_json(parts, fh, origin)
        elif is_non_data(name):
            self.stats.skipped_files += 1
        else:
            self.stats.skipped_files += 1
            self.stats.issue(origin, "skipped: not a FHIR JSON or NDJSON file")

    def big_json(self, parts: list[bytes], fh: IO[bytes], origin: str) -> Iterator[Item]:
        """A .json file of BIG_JSON or more (its first bytes in `parts`, taken): a Bundle read
        entry by entry, NDJSON a line at a time, anything else parsed whole as a small file is."""
        head = looked_at(parts)
        btype = bundle_type(head)
        lines = btype is None and ndjson_named_json(head)
        del head
        if btype is not None:
            yield from self.big_bundle(joined(parts, fh, strict=True), fh, origin, btype)
        elif lines:
            self.stats.files += 1
            self._file = origin
            yield from self.ndjson(joined(parts, fh), origin, count_file=False)
        else:
            data = b"".join([*parts, fh.read()])  # (memory: the file)
            parts.clear()
            yield from self.json_doc(data, origin)

    def big_bundle(
        self, stream: IO[bytes], fh: IO[bytes], origin: str, btype: str
    ) -> Iterator[Item]:
        """A Bundle too large to parse whole (`stream`: `fh` from its start), read entry by
        entry: a first pass names each entry and writes it to an unnamed spool file (nothing
        on disk once closed, even if killed: PHI), the second reads them back as `bundle` does
        from a parsed Bundle."""
        with tempfile.TemporaryFile(prefix="cohort-bundle-") as spool:
            try:
                refs = entries(stream, btype, spool)
            except NotStreamed as error:
                yield from self.not_streamed(fh, origin, error)
                return
            self.stats.files += 1
            self._file = origin
            for i, entry in enumerate(spooled(spool)):
                yield from self.entry(entry, f"{origin}#entry[{i}]", refs)

    def not_streamed(self, fh: IO[bytes], origin: str, error: Exception) -> Iterator[Item]:
        """A large Bundle that does not stream: read whole again where the file can be (its
        error, or the value only orjson reads, exactly as for a small file); else refused as
        not read whole. (ijson's message quotes the text: not repeated, it may be PHI.)"""
        try:
            fh.seek(0)
            data = fh.read()
        except (OSError, tarfile.StreamError, io.UnsupportedOperation, AttributeError):
            # (a member of a tar read as a stream cannot go back: tarfile has no seekable())
            self.stats.files += 1
            self._file = origin
            cut = isinstance(error, ijson.IncompleteJSONError) and "premature EOF" in str(error)
            self.reject(origin, "?", "invalid JSON" + (f": {BROKE_OFF}" if cut else ""))
            self.stats.partial.append(origin)
            return
        yield from self.json_doc(data, origin)

    def tar(self, path: Path, origin: str) -> Iterator[Item]:
        # Stream mode ("r|*"): members are read in archive order without seeking or listing.
        with tarfile.open(path, mode="r|*") as tf:
            for member in tf:
                if not member.isfile():
                    continue
                fh = tf.extractfile(member)
                if fh is None:
                    continue
                mname = utf8_name(member.name.removeprefix("./"))
                if Path(mname).name.startswith("."):
                    continue  # e.g. macOS "._x.json" resource forks
                with fh:
                    yield from self.guarded(self.stream(mname, fh, f"{origin}/{mname}"), origin)

    def guarded(self, it: Iterator[Item], origin: str) -> Iterator[Item]:
        """Turn a corrupt or truncated file into one located issue; the read goes on."""
        try:
            yield from it
        except UNREADABLE as e:
            self.stats.broke(origin, unreadable(e))

    def file(self, path: Path, root: Path) -> Iterator[Item]:
        origin = origin_of(path, root)
        low = path.name.lower()
        if low.endswith(TAR_SUFFIXES):
            yield from self.guarded(self.tar(path, origin), origin)
            return
        if is_non_data(path.name):
            self.stats.skipped_files += 1
            return
        try:
            fh = path.open("rb")
        except OSError as e:  # (also a dangling symbolic link)
            self.stats.broke(origin, unreadable(e, "opened"))
            return
        with fh:
            try:
                head = fh.peek(64)
                name = named_for(path.name, head)
                if head[:2] in UTF16_BOMS:  # (Windows "Unicode": every line was invalid JSON)
                    data = from_utf16(fh.read())
                    yield from self.stream(name, io.BytesIO(data), origin)
                    return
            except UNREADABLE as e:
                self.stats.broke(origin, unreadable(e))
                return
            yield from self.guarded(self.stream(name, fh, origin), origin)


def _at_end(fh: IO[bytes]) -> bool:
    """Whether `fh` holds no more bytes (a stream that cannot peek is taken to hold some)."""
    peek = getattr(fh, "peek", None)
    return peek is not None and not peek(1)
