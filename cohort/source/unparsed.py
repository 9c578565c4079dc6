"""Text orjson refused: UTF-16 or Windows-1252 read as UTF-8, and a text that breaks off."""

from __future__ import annotations

import codecs
from typing import Any

import orjson

from cohort.source.structure import BOM

__all__ = [
    "BROKE_OFF",
    "EMPTY_FILE",
    "NOT_UTF8",
    "Refused",
    "breaks_off",
    "ends_early",
    "from_utf16",
    "is_utf8",
    "not_utf8_reason",
    "reparsed",
    "windows_1252",
]

BROKE_OFF = "the file breaks off mid-record (still being written, or cut short?)"
EMPTY_FILE = "empty file (still being written?)"  # a data file of no bytes: not read whole
NOT_UTF8 = "not UTF-8"  # how every issue about such text opens or says it

# Windows-1252 as browsers read it (WHATWG): the five bytes it leaves undefined (0x81, 0x8D,
# 0x8F, 0x90, 0x9D) are their Latin-1 characters, so no byte fails the decode
_CP1252 = {
    b: c for b in range(0x80, 0xA0) if (c := bytes([b]).decode("cp1252", "ignore")) and ord(c) != b
}
_FROM_LATIN1 = str.maketrans({chr(b): c for b, c in _CP1252.items()})
_ERRORS = "cohort-windows-1252"


def _byte_as_1252(e: UnicodeError) -> tuple[str, int]:
    """A byte that is not UTF-8, read as Windows-1252 (a line pasted together from two tools)."""
    if not isinstance(e, UnicodeDecodeError):
        raise e
    bad = e.object[e.start : e.end].decode("latin-1").translate(_FROM_LATIN1)
    return bad, e.end


codecs.register_error(_ERRORS, _byte_as_1252)


def from_utf16(data: bytes) -> bytes:
    """UTF-16 text (Windows "Unicode", PowerShell 5's Out-File) as the UTF-8 it should be."""
    return data.decode("utf-16").encode()


def is_utf8(data: bytes) -> bool:
    """Whether `data` is UTF-8 text, or UTF-8 cut inside its last character (a text that breaks
    off, not another encoding)."""
    try:
        data.decode()
    except UnicodeDecodeError as u:
        return u.reason == "unexpected end of data"  # (raised only at the end of the input)
    return True


def windows_1252(data: bytes) -> bytes | None:
    """`data` written as UTF-8 when it is not UTF-8 (`is_utf8`), else None: its UTF-8 characters
    as they are and every other byte read as Windows-1252. Called only once orjson refused
    `data`: valid UTF-8 pays nothing."""
    if is_utf8(data):
        return None
    return data.decode("utf-8", _ERRORS).encode()


class Refused(Exception):
    """Text that is not JSON, as the last try read it: the error, the text it is about (UTF-8
    when recoded), and whether the text as read was not UTF-8."""

    def __init__(self, error: orjson.JSONDecodeError, text: bytes, not_utf8: bool) -> None:
        super().__init__(str(error))
        self.error, self.text, self.not_utf8 = error, text, not_utf8


def reparsed(data: bytes, error: orjson.JSONDecodeError) -> tuple[Any, bytes, bool]:
    """After orjson refused `data` with `error`: (the JSON, its UTF-8 text without a byte order
    mark, whether it was read as Windows-1252). Raises Refused when no reading is JSON."""
    text = data
    if data.startswith(BOM):
        # JSON may not carry one (RFC 8259), but Windows tools write it and orjson refuses it
        text = data[3:]
        try:
            return orjson.loads(text), text, False
        except orjson.JSONDecodeError as e:
            error = e
    recoded = windows_1252(text)
    if recoded is None:
        raise Refused(error, data, False)  # (`data`: ends_early reads a BOM's positions)
    try:
        return orjson.loads(recoded), recoded, True
    except orjson.JSONDecodeError as e:
        raise Refused(e, recoded, True) from None


def not_utf8_reason(lines: int) -> str:
    """The issue of a file read as Windows-1252 (`lines` of it; 0: a whole JSON document)."""
    what = f"{lines} line(s)" if lines else "the document"
    return (
        f"{NOT_UTF8} (FHIR JSON is UTF-8): {what} read as Windows-1252; accented letters may"
        " read wrong, have the export written in UTF-8"
    )


def ends_early(data: bytes, e: orjson.JSONDecodeError) -> bool:
    """Whether the JSON error `e` of `data` is its running out: nothing but blanks after it."""
    raw = data[3:] if data[:3] == BOM else data  # (`loads` reports positions past a BOM)
    try:
        # orjson counts `e.pos` in characters, not bytes: with a name like "Müller" before the
        # cut, the bytes from `e.pos` on were never blank and the cut record went unnoticed
        text = raw.decode()
    except UnicodeDecodeError as u:
        # cut inside a multi-byte character: the text runs out in the middle of it
        return u.reason == "unexpected end of data" and not raw[u.end :].strip()
    return not text[e.pos :].strip()


def breaks_off(line: bytes) -> bool:
    """Whether `line`, a file's last, runs out mid-record (a line end after it: whole). For the
    last line of a type skipped unparsed: one parse a file, not a line."""
    if line.endswith(b"\n"):
        return False
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError as error:
        try:
            reparsed(line, error)
        except Refused as r:
            return ends_early(r.text, r.error)
    return False
