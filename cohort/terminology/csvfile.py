"""Read a mapping CSV: its text (UTF-8 only), its lines and rows, each data row a Record with
its location, a line that is no row of its file reported where `mappings check` wants it."""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from cohort.errors import MappingError, cwd_relative
from cohort.utf8 import utf8_text


@dataclass(frozen=True, slots=True)
class Record:
    """One data line of a mapping CSV with its location for error messages."""

    where: str  # "mappings/units.csv:4" (csvfile.display_path)
    values: dict[str, str]

    def get(self, key: str) -> str:
        return (self.values.get(key) or "").strip()

    def fail(self, key: str, message: str) -> MappingError:
        return MappingError(f"{self.where}: column '{key}': {message}")


def display_path(root: Path, path: Path) -> str:
    """The path of a file under the mappings folder `root` as messages show it
    (errors.cwd_relative): a researcher's copy at /srv/trial/mappings is not named
    `mappings/units.csv`, read as the shipped file."""
    # (the folder resolved, not the file: a linked file is still named where the folder has it;
    # the working folder is always resolved, so `.` and `..` are too)
    return cwd_relative(root.resolve() / path.relative_to(root))


def read_bytes(path: Path, shown: str) -> bytes:
    """A mapping file's bytes; a MappingError naming it (`shown`) when it is missing or cannot
    be read (no permission, a folder in its place: any OSError, which crashed a run, exit 1)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MappingError(f"{shown}: file not found") from None
    except OSError as exc:
        raise MappingError(f"{shown}: cannot be read ({exc.__class__.__name__})") from None


def is_file(path: Path, shown: str) -> bool:
    """`path.is_file()`; a MappingError naming it when that cannot be told (a folder on its
    way that cannot be looked into: Path.is_file raises PermissionError)."""
    try:
        return path.is_file()
    except OSError as exc:
        raise MappingError(f"{shown}: cannot be read ({exc.__class__.__name__})") from None


def read_text(path: Path, shown: str) -> str:
    """A mapping file's text (UTF-8, a byte order mark dropped); MappingError naming the line
    of a byte that is not UTF-8 (Excel's plain "CSV" is the Windows code page)."""
    excel = "save it as 'CSV UTF-8' (Excel: File > Save As > CSV UTF-8 (Comma delimited))"
    return utf8_text(read_bytes(path, shown), shown, MappingError, excel)


LINE_END = re.compile(r"\r\n|\r|\n")  # a CSV line end (csv_lines; tools.csvedit)


def csv_lines(text: str) -> list[str]:
    """The lines of a CSV text, split at CR, LF or CRLF only: `str.splitlines` also splits at
    U+2028, U+0085 (NEL), form feeds and more, which a cell may hold (a pasted display; the
    csv writer does not quote them), and the row was cut in two."""
    lines = LINE_END.split(text)
    return lines[:-1] if lines and lines[-1] == "" else lines


# where `mappings check` puts the problem of a line that is no row of its file (more cells
# than columns, another separator, a quote left open): the lines after it are read
Bad = Callable[[MappingError], None]


def read_csv(
    root: Path, path: Path, required: tuple[str, ...], bad: Bad | None = None
) -> Iterator[Record]:
    """Yield the data lines of a CSV (blank and `#` comment lines skipped), checking columns.
    A line that is no row of the file raises its MappingError; with `bad`, it goes there and
    the reading goes on after it. A file not read at all (not found, not UTF-8, a column
    missing) raises in either case."""
    shown = display_path(root, path)
    header: list[str] | None = None
    for line, cells in csv_rows(read_text(path, shown), shown, bad):
        if header is None:
            header = [c.strip() for c in cells]
            known = (*required, *_COLUMNS.get(_kind(path), ()))
            for col in required:
                if col not in header:
                    raise MappingError(
                        f"{shown}:{line}: missing column '{col}'" + _case(col, header, cells, known)
                    )
            if (typo := _misspelt(header, known)) is not None:
                raise MappingError(f"{shown}:{line}: {typo}")
            continue
        problem = _cells_problem(f"{shown}:{line}", cells, len(header))
        if (
            problem is None
            and cells[0].strip() == header[0]
            and [c.strip() for c in cells] == header
        ):
            # (its words read as a row's: "unknown match kind 'match'", "UCUM cannot parse
            # 'unit'", "no concept rows for 'concept'")
            problem = MappingError(f"{shown}:{line}: {AGAIN}")
        if problem is not None:
            _bad_line(problem, bad)
            continue
        # every column a key (a short row's missing cells empty): a row can tell an empty cell
        # from a column the file does not have
        cells += [""] * (len(header) - len(cells))
        yield Record(f"{shown}:{line}", dict(zip(header, cells, strict=True)))
    if header is None:
        raise MappingError(f"{shown}:1: missing header line")


AGAIN = "the header line again (rows appended with their file's header?): delete the line"


def _cells_problem(where: str, cells: list[str], columns: int) -> MappingError | None:
    """Why a row's cells do not fit the header's columns (None when they do)."""
    if len(cells) > columns:
        return MappingError(
            f"{where}: {len(cells)} cells but {columns} columns (a cell holding "
            'a comma must be in double quotes: "a, b"; no extra commas at the end)'
        )
    if len(cells) < columns and any(sep in cells[0] for sep in ";\t"):
        name = "semicolons" if ";" in cells[0] else "tabs"
        return MappingError(
            f"{where}: {len(cells)} cell{'s' if len(cells) > 1 else ''} but "
            f"{columns} columns: the row is separated by {name}, not commas (write "
            "commas, or save the file as 'CSV UTF-8 (Comma delimited)')"
        )
    return None


def _bad_line(problem: MappingError, bad: Bad | None) -> None:
    """Raise the problem of a line, or (`mappings check`) hand it to `bad`."""
    if bad is None:
        raise problem
    bad(problem)


UNCLOSED = (
    "a double quote opened here is not closed on its line (a cell cannot run over several "
    "lines; close the quote or remove it)"
)


def csv_rows(text: str, shown: str, bad: Bad | None = None) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of every row of a mapping CSV's text but blank and `#` comment lines (the
    header first); every reader of a mapping file reads it through this.

    A cell may not run over several lines: a double quote left open (a typo, or a cell with a
    line break) made csv read the lines after it into that cell, and they vanished without a
    word (or an error named a later line). It is a MappingError naming the line its row
    starts on, as is a line too long or one csv cannot read; with `bad` (`mappings check`) it
    goes there, and the rows after that line are read."""
    lines = csv_lines(text)
    for n, physical in enumerate(lines, 1):
        # (csv's own cell limit is process-wide state that other readers raise: check here)
        if len(physical) > MAX_LINE:
            _bad_line(MappingError(f"{shown}:{n}: line longer than {MAX_LINE // 1024} KiB"), bad)
            lines[n - 1] = ""  # (read on as a blank line)
    start: int | None = 0
    while start is not None:
        start = yield from _rows_from(lines, start, shown, bad)


def _rows_from(
    lines: list[str], start: int, shown: str, bad: Bad | None
) -> Generator[tuple[int, list[str]], None, int | None]:
    """The rows of the lines after the first `start`; at a bad row (handed to `bad`), the
    number of lines to start again after (its own last), else None at the end."""
    # one empty line more: csv closes a cell still open at the end of its input by itself, so
    # a quote left open on the last line takes this one in and is found as on any other line
    reader = csv.reader([*lines[start:], ""])
    while True:
        line = start + reader.line_num + 1  # every row starts on the line after the last one read
        failed = None
        try:
            cells = next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            failed = str(exc)
        if start + reader.line_num > line:  # an open quote took the next lines in
            _bad_line(MappingError(f"{shown}:{line}: {UNCLOSED}"), bad)
            return line  # (read them again, as rows of their own)
        if failed is not None:
            at = start + reader.line_num
            _bad_line(MappingError(f"{shown}:{at}: cannot be read as CSV ({failed})"), bad)
            return max(at, line)
        if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        yield line, cells


# every column a mapping file has, required or optional, by its name (`concepts`: each file in
# concepts/): a header cell a typo away from one the header lacks is that column misspelt, and
# its cells were read by nothing (`plausable_min`: the plausible range dropped without a word)
_COLUMNS: dict[str, tuple[str, ...]] = {
    "systems.csv": ("canonical", "alias", "note", "source"),
    "units.csv": ("concept", "unit", "molar_mass_g_per_mol", "plausible_min", "plausible_max")
    + ("notes",),
    "unit_aliases.csv": ("alias", "ucum", "notes"),
    "values.csv": ("kind", "system", "code", "result", "source", "verified"),
    "ingredients.csv": ("ingredient", "prednisone_factor", "source"),
    "products.csv": ("rxcui", "ingredient", "display", "systemic", "source"),
    "routes.csv": ("system", "code", "display", "source", "verified"),
    "labels.csv": ("concept", "label"),
    "overlaps.csv": ("concept", "also", "why"),
    "concepts": ("concept", "ingredient", "system", "code", "match", "exclude", "display")
    + ("source", "verified", "expand"),
}
_TYPO = 0.75  # (difflib ratio: `concpet` 0.86, `ucmu` 0.75; a researcher's `comment` 0.57)


def _kind(path: Path) -> str:
    return "concepts" if path.parent.name == "concepts" else path.name


def _near(cell: str, header: list[str], known: tuple[str, ...]) -> str | None:
    """The column of `known` the header lacks that `cell` (no column of the file) misspells."""
    if not cell or cell in known:
        return None
    lacking = [k for k in known if k not in header]
    near = difflib.get_close_matches(cell.lower(), lacking, n=1, cutoff=_TYPO)
    return near[0] if near else None


def _misspelt(header: list[str], known: tuple[str, ...]) -> str | None:
    """An optional column misspelt in the header; a column of the researcher's own (a
    `comment`) is no misspelling and stays unread, as before."""
    for cell in header:
        if (near := _near(cell, header, known)) is not None:
            meant = f"(did you mean '{near}'?): nothing reads it: write '{near}'"
            return f"unknown column '{cell}' {meant}"
    return None


def _case(col: str, header: list[str], cells: list[str], known: tuple[str, ...] = ()) -> str:
    """Why a header lacks a column it holds written otherwise (`Concept`: read as there;
    `concpet`: misspelt)."""
    found = next((h for h in header if h.lower() == col), None)
    if found:
        return f" (column names are lower case: found '{found}')"
    typo = next((h for h in header if _near(h, header, known) == col), None)
    return f" (found '{typo}': write '{col}')" if typo else _sep(cells)


def _sep(header: list[str]) -> str:
    """Why a header lacks its columns when it is written with another separator."""
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if len(header) == 1 and sep in header[0]:
            return (
                f" (the header is separated by {name}, not commas: save the file as "
                "'CSV UTF-8 (Comma delimited)', or set Excel's list separator to a comma)"
            )
    return ""


MAX_LINE = 64 * 1024  # characters in one line of a mapping file (a code row is ~200)
