"""Append rows to a researcher-edited mapping CSV, keeping its header, comments and file mode."""

from __future__ import annotations

import csv
import io
import stat
from collections.abc import Iterable
from pathlib import Path

from cohort.atomic import write_atomic
from cohort.errors import MappingError
from cohort.report.files import excel_safe
from cohort.safetext import printable
from cohort.terminology.csvfile import LINE_END, csv_rows, read_text

# the columns the tools fill with text for people (a ValueSet's display, an RxNav name, where
# the row came from): nothing matches on them
TEXT_COLUMNS = ("display", "source")


def text_cell(value: str) -> str:
    """Outside text as a mapping CSV cell: on one line (a cell may not run over lines, see
    `csv_rows`) and guarded as the output CSVs are (`excel_safe`: a `'` before a cell a
    spreadsheet would read as a formula, "=HYPERLINK(...)" in a downloaded ValueSet)."""
    return excel_safe(LINE_END.sub(" ", value))


def key_problem(kind: str, value: str) -> str | None:
    """Why a code, system or name cannot be written as it is, or None. It is never altered (a
    guarded or joined code is another code, and would match nothing): its row is refused."""
    if LINE_END.search(value):
        return f"{kind} '{printable(value)}' holds a line break"
    if excel_safe(value) != value:
        return (
            f"{kind} '{printable(value)}' starts with '{printable(value[0])}', which a "
            "spreadsheet reads as a formula (a code or system is never altered)"
        )
    return None


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

    TEXT_COLUMNS are written as `text_cell`s; any other cell (a code, a system, a concept) is
    written as it is, or refused whole (a MappingError, nothing written): the tools refuse such
    a row themselves, this is the last guard of the rule that no cell of ours is a formula.

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
        w.writerow([_cell(path, col, row.get(col, "")) for col in header])
        n += 1
    if not n:
        return 0
    if text and not text.endswith(("\n", "\r")):
        text += newline
    bom = "\ufeff" if data.startswith(b"\xef\xbb\xbf") else ""
    mode = stat.S_IMODE(path.stat().st_mode)
    write_atomic(path, bom + text + buf.getvalue(), mode=mode)
    return n


def _cell(path: Path, col: str, value: str) -> str:
    if col in TEXT_COLUMNS:
        return text_cell(value)
    problem = key_problem(f"column '{col}'", value)
    if problem:
        raise MappingError(f"{path}: {problem}: nothing was written")
    return value


def _first_line_end(text: str) -> str:
    """The line end of the text's first line: CRLF, LF or CR (an old "CSV (Macintosh)");
    LF for a text of one line."""
    m = LINE_END.search(text)
    return m[0] if m else "\n"
