"""Append rows to a researcher-edited mapping CSV, keeping its header, comments and file mode."""

from __future__ import annotations

import csv
import io
import stat
from collections.abc import Iterable
from pathlib import Path

from cohort.atomic import write_atomic
from cohort.errors import MappingError
from cohort.terminology.mappings import LINE_END, csv_rows, read_text


def header_of(path: Path) -> list[str]:
    """The header line of a mapping CSV (the first non-blank, non-comment line)."""
    return _header(read_text(path, str(path)), path)


def _header(text: str, path: Path) -> list[str]:
    """The header; every line is read, as `read_csv` reads them (a double quote left open on
    the last line would carry the rows appended into its cell)."""
    header: list[str] | None = None
    for _, cells in csv_rows(text, str(path)):
        if header is None:
            header = [c.strip() for c in cells]
    if header is None:
        raise MappingError(f"{path}:1: missing header line")
    return header


def append_rows(path: Path, rows: Iterable[dict[str, str]]) -> int:
    """Append rows (dicts by column name) atomically; returns how many were written.

    The file keeps what Excel's "CSV UTF-8" gave it: its byte order mark (without it Excel
    reads the file in the Windows code page, and an accented display comes back garbled) and
    its line ends (the new rows end as its first line does: CRLF, LF or CR)."""
    data = path.read_bytes() if path.is_file() else b""
    text = read_text(path, str(path))
    header = _header(text, path)
    newline = _first_line_end(text)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline)
    n = 0
    for row in rows:
        w.writerow([row.get(col, "") for col in header])
        n += 1
    if not n:
        return 0
    if text and not text.endswith(("\n", "\r")):
        text += newline
    bom = "\ufeff" if data.startswith(b"\xef\xbb\xbf") else ""
    mode = stat.S_IMODE(path.stat().st_mode)
    write_atomic(path, bom + text + buf.getvalue(), mode=mode)
    return n


def _first_line_end(text: str) -> str:
    """The line end of the text's first line: CRLF, LF or CR (an old "CSV (Macintosh)");
    LF for a text of one line."""
    m = LINE_END.search(text)
    return m[0] if m else "\n"
