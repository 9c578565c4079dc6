"""Load and validate the researcher-editable mapping files under `mappings/`."""

from __future__ import annotations

import csv
import hashlib
import math
import re
import unicodedata
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cohort.errors import MappingError, did_you_mean
from cohort.lockfiles import data_files

MATCH_KINDS = ("exact", "prefix", "range", "glob")
VERIFIED_FLAGS = ("Y", "N", "local")
CONCEPT_COLUMNS = ("concept", "system", "code", "match", "exclude", "display", "source", "verified")
_CONCEPT_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_RANGE_RE = re.compile(r"^([A-Za-z0-9.]+)-([A-Za-z0-9.]+)$")

# files every mappings directory must hold (relative paths) and their required columns
REQUIRED: dict[str, tuple[str, ...]] = {
    "systems.csv": ("canonical", "alias"),
    "units.csv": ("concept", "unit", "molar_mass_g_per_mol"),
    "unit_aliases.csv": ("alias", "ucum"),
    "values.csv": ("kind", "system", "code", "result"),
    "medications/ingredients.csv": ("ingredient", "prednisone_factor"),
    "medications/products.csv": ("rxcui", "ingredient", "display", "systemic"),
}


@dataclass(frozen=True, slots=True)
class MappingRow:
    """One concept row of `mappings/concepts/*.csv` as loaded (system not yet canonicalised)."""

    concept: str
    system: str
    code: str
    match: str = "exact"
    exclude: bool = False
    display: str = ""
    source: str = ""
    verified: str = "Y"  # "Y" | "N" | "local"
    ingredient: str = ""  # medications.csv only
    expand: tuple[str, ...] = ()  # codes to use for server-side search (prefix rows)
    file: str = ""  # "mappings/concepts/labs.csv"
    line: int = 0


@dataclass(frozen=True, slots=True)
class Record:
    """One data line of a mapping CSV with its location for error messages."""

    where: str  # "mappings/units.csv:4"
    values: dict[str, str]

    def get(self, key: str) -> str:
        return (self.values.get(key) or "").strip()

    def fail(self, key: str, message: str) -> MappingError:
        return MappingError(f"{self.where}: column '{key}': {message}")


def invisible_problem(text: str) -> str | None:
    """Why a code, name or system cannot match as written: a character not seen on screen (a
    zero-width space, a soft hyphen, a control, a space other than the plain one), which no
    record's code holds where the researcher sees none; None when there is none."""
    odd = [ch for ch in text if ch != " " and unicodedata.category(ch) in _INVISIBLE]
    if not odd:
        return None
    shown = "".join(f"\\u{ord(ch):04x}" if ch in odd else ch for ch in text)
    name = unicodedata.name(odd[0], "")
    return (
        f"'{shown}' holds an invisible character (U+{ord(odd[0]):04X}{' ' + name if name else ''}"
        "; text copied from a web page or a PDF can carry one): type it again"
    )


_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp"}


def verified_flag(rec: Record) -> str:
    """A row's `verified` cell, one of VERIFIED_FLAGS (MappingError naming it otherwise)."""
    verified = rec.get("verified")
    if verified not in VERIFIED_FLAGS:
        raise rec.fail("verified", f"'{verified}' is not one of {', '.join(VERIFIED_FLAGS)}")
    return verified


def display_path(root: Path, path: Path) -> str:
    """The path as shown in messages: `mappings/concepts/labs.csv`."""
    return f"{root.name}/{path.relative_to(root).as_posix()}"


def read_text(path: Path, shown: str) -> str:
    """A mapping file's text (UTF-8, a byte order mark dropped); MappingError naming the line
    of a byte that is not UTF-8 (Excel's plain "CSV" is the Windows code page)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MappingError(f"{shown}: cannot be read ({exc.__class__.__name__})") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MappingError(
            f"{shown}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save it as "
            "'CSV UTF-8' (Excel: File > Save As > CSV UTF-8 (Comma delimited))"
        ) from None


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
    if not path.is_file():
        raise MappingError(f"{shown}: file not found")
    header: list[str] | None = None
    for line, cells in csv_rows(read_text(path, shown), shown, bad):
        if header is None:
            header = [c.strip() for c in cells]
            for col in required:
                if col not in header:
                    raise MappingError(f"{shown}:{line}: missing column '{col}'" + _sep(cells))
            continue
        problem = _cells_problem(f"{shown}:{line}", cells, len(header))
        if problem is not None:
            _bad_line(problem, bad)
            continue
        # every column a key (a short row's missing cells empty): a row can tell an empty cell
        # from a column the file does not have
        cells += [""] * (len(header) - len(cells))
        yield Record(f"{shown}:{line}", dict(zip(header, cells, strict=True)))
    if header is None:
        raise MappingError(f"{shown}:1: missing header line")


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

# A `..` range enumerates its codes: a typo such as M32.10..M32.99999999 must not exhaust
# memory (found by fuzzing); no real code list comes near this
MAX_EXPANDED = 10_000


def expand_spec(spec: str) -> tuple[str, ...]:
    """`M32.10..M32.19 M32.8` -> every code named (a `..` pair enumerates its last digits)."""
    out: list[str] = []
    for part in spec.replace(";", " ").split():
        if ".." in part:
            lo, hi = part.split("..", 1)
            width = len(lo) - len(lo.rstrip("0123456789"))
            stem = lo[: len(lo) - width]
            if width == 0 or not hi.startswith(stem) or not hi[len(stem) :].isdigit():
                raise ValueError(part)
            first, last = int(lo[len(stem) :]), int(hi[len(stem) :])
            if last - first + 1 + len(out) > MAX_EXPANDED:
                raise ValueError(f"{part}: more than {MAX_EXPANDED:,} codes")
            for n in range(first, last + 1):
                out.append(f"{stem}{n:0{width}d}")
        else:
            out.append(part)
    return tuple(out)


def concept_row(rec: Record, shown: str, *, medication: bool) -> MappingRow:
    """Validate one line of a concept file."""
    concept = rec.get("concept")
    if not _CONCEPT_RE.match(concept):
        raise rec.fail("concept", f"invalid concept name '{concept}' (use a-z, 0-9, _)")
    system, code = rec.get("system"), rec.get("code")
    if not system:
        raise rec.fail("system", "empty")
    if not code:
        raise rec.fail("code", "empty (never guess a code: leave the row out)")
    for column, text in (("system", system), ("code", code)):
        if problem := invisible_problem(text):
            raise rec.fail(column, problem)
    match = rec.get("match") or "exact"
    if match not in MATCH_KINDS:
        hint = did_you_mean(match, MATCH_KINDS)
        raise rec.fail(
            "match",
            f"unknown match kind '{match}' (one of {', '.join(MATCH_KINDS)})"
            + (f" ({hint})" if hint else ""),
        )
    if match == "range" and not _RANGE_RE.match(code):
        raise rec.fail("code", f"range '{code}' is not of the form LOW-HIGH")
    if match == "range":
        lo, hi = code.split("-", 1)
        if len(lo.replace(".", "")) != len(hi.replace(".", "")):
            raise rec.fail("code", f"range '{code}' bounds differ in length")
    exclude = rec.get("exclude").upper()
    if exclude not in ("", "Y", "N"):
        raise rec.fail("exclude", f"'{rec.get('exclude')}' is not Y, N or empty")
    verified = verified_flag(rec)
    ingredient = rec.get("ingredient").lower()
    if medication and not ingredient:
        raise rec.fail("ingredient", "empty")
    try:
        expand = expand_spec(rec.get("expand"))
    except ValueError as exc:
        raise rec.fail("expand", f"cannot read '{exc}' (write codes, or LOW..HIGH)") from None
    return MappingRow(
        concept=concept,
        system=system,
        code=code,
        match=match,
        exclude=exclude == "Y",
        display=rec.get("display"),
        source=rec.get("source"),
        verified=verified,
        ingredient=ingredient,
        expand=expand,
        file=shown,
        line=int(rec.where.rsplit(":", 1)[1]),
    )


def load_concept_rows(root: Path) -> list[MappingRow]:
    """Every row of `concepts/*.csv` (unverified ones included; the caller filters)."""
    folder = root / "concepts"
    if not folder.is_dir():
        raise MappingError(f"{root.name}/concepts: folder not found")
    rows: list[MappingRow] = []
    for path in data_files(folder, "*.csv"):  # (not Excel's `~$labs.csv` lock file)
        medication = path.stem == "medications"
        required = CONCEPT_COLUMNS + (("ingredient",) if medication else ())
        shown = display_path(root, path)
        for rec in read_csv(root, path, required):
            rows.append(concept_row(rec, shown, medication=medication))
    return rows


def concept_files(rows: Iterable[MappingRow]) -> dict[str, set[str]]:
    """Concept -> the concept files (as shown) of its rows that map codes to it (not exclude=Y):
    the records it can match (`labs.csv`: Observations; criteria/reads.py)."""
    out: dict[str, set[str]] = {}
    for r in rows:
        if not r.exclude:
            out.setdefault(r.concept, set()).add(r.file)
    return out


def parse_number(rec: Record, key: str) -> float | None:
    """A positive finite number, `a/b`, or blank (None)."""
    raw = rec.get(key)
    if not raw:
        return None
    try:
        parts = [float(p) for p in raw.split("/")]
    except ValueError:
        raise rec.fail(key, f"'{raw}' is not a number") from None
    if len(parts) > 2:
        raise rec.fail(key, f"'{raw}' is not a positive number or a/b")
    value = parts[0] / parts[1] if len(parts) == 2 and parts[1] else parts[0]
    if not all(math.isfinite(p) for p in [*parts, value]):
        raise rec.fail(key, not_finite(raw))
    if any(p <= 0 for p in parts) or value <= 0:  # (1e-300/1e300 is 0)
        raise rec.fail(key, f"'{raw}' is not a positive number or a/b")
    return value


def parse_bound(rec: Record, key: str) -> float | None:
    """Any finite number (a plausibility bound may be 0), or blank (None)."""
    raw = rec.get(key)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise rec.fail(key, f"'{raw}' is not a number") from None
    if not math.isfinite(value):
        raise rec.fail(key, not_finite(raw))
    return value


def not_finite(raw: str) -> str:
    """The error of a number `float()` reads that is none (`nan`, `inf`, `Infinity`, `1e400`):
    every comparison with nan is false, so a limit of nan let every value pass."""
    return f"expected a finite number, got '{raw}'"


def mapping_files(root: Path) -> list[Path]:
    """Every file a researcher edits: the terminology, the reading rules and the criteria files
    (hashed into `Terminology.version`, so that an edit to any of them changes the version)."""
    files = [root / rel for rel in REQUIRED] + data_files(root / "concepts", "*.csv")
    files += [root / "overlaps.csv", root / "rules.toml", *data_files(root / "trials", "*.toml")]
    return sorted({p for p in files if p.is_file()}, key=lambda p: p.relative_to(root).as_posix())


def version_of(root: Path) -> tuple[str, str]:
    """("sha256:<12 hex>", human version) over the mapping files' bytes and `VERSION`."""
    digest = hashlib.sha256()
    for path in mapping_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    human = ""
    version_file = root / "VERSION"
    if version_file.is_file():
        human = read_text(version_file, display_path(root, version_file)).strip()
    digest.update(b"VERSION\0" + human.encode())
    return "sha256:" + digest.hexdigest()[:12], human
