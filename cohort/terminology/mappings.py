"""Load and validate the researcher-editable mapping files under `mappings/`."""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cohort.errors import MappingError, did_you_mean, shown_path
from cohort.lockfiles import data_files
from cohort.terminology.csvfile import (
    Record,
    display_path,
    is_file,
    read_bytes,
    read_csv,
    read_text,
)

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


def invisible_problem(text: str) -> str | None:
    """Why a code, name or system cannot match as written: a character not seen on screen (a
    zero-width space, a soft hyphen, a control, a space other than the plain one), which no
    record's code holds where the researcher sees none; None when there is none."""
    if text.isprintable():
        return None  # (every character of _INVISIBLE but the plain space is not printable)
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


def flag(rec: Record, column: str, allowed: tuple[str, ...]) -> str:
    """A flag column's cell (`Y`, `N`, ...) as `allowed` writes it, read in either case (`y`,
    `n`, `Local`); a MappingError naming the values read otherwise."""
    cell = rec.get(column)
    if cell in allowed:
        return cell  # (as written: nearly every cell)
    found = next((a for a in allowed if a.lower() == cell.lower()), None)
    if found is None:
        words = [a or "empty" for a in allowed]
        said = f"{', '.join(words[:-1])} or {words[-1]}"
        raise rec.fail(column, f"'{cell}' is not {said} (either case)")
    return found


def verified_flag(rec: Record) -> str:
    """A row's `verified` cell, one of VERIFIED_FLAGS (MappingError naming it otherwise)."""
    return flag(rec, "verified", VERIFIED_FLAGS)


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
    exclude = flag(rec, "exclude", ("Y", "N", ""))
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
        raise MappingError(f"{display_path(root, folder)}: folder not found")
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


def check_folder(root: Path) -> None:
    """A MappingError (exit 4) naming `root` when it is not a folder that can be listed and
    searched: one without permissions (0000) crashed the run with a PermissionError traceback
    (exit 1), one that can be searched but not listed (0111) read as missing every file."""
    try:
        folder = stat.S_ISDIR(os.stat(root).st_mode)
        if folder:
            os.listdir(root)
            os.stat(os.path.join(root, "."))  # (searched: what is in it can be opened)
    except (FileNotFoundError, NotADirectoryError):
        folder = False
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise MappingError(f"{root}: mappings folder cannot be read: {why}") from None
    if not folder:
        raise MappingError(f"{root}: mappings folder not found")


def mapping_files(root: Path) -> list[Path]:
    """Every file a researcher edits: the terminology, the reading rules and the criteria files
    (hashed into `Terminology.version`, so that an edit to any of them changes the version)."""
    files = [root / rel for rel in REQUIRED] + data_files(root / "concepts", "*.csv")
    files += [
        root / "overlaps.csv",
        root / "labels.csv",
        root / "routes.csv",
        root / "rules.toml",
        *data_files(root / "trials", "*.toml"),
    ]
    found = {p for p in files if is_file(p, display_path(root, p))}
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def digests(root: Path, criteria: Path) -> tuple[str, str]:
    """("sha256:<hex>" of the criteria file's bytes, "sha256:<hex>" over the other mapping
    files' names and bytes, in name order): run.json's `criteria_digest` and `mappings_digest`,
    so that `cohort diff` says which of the two changed (the mapping version hashes both, and
    `VERSION`, which is neither)."""
    files = hashlib.sha256()
    for path in mapping_files(root):
        if path.parent != root / "trials":
            files.update(path.relative_to(root).as_posix().encode() + b"\0")
            files.update(read_bytes(path, display_path(root, path)) + b"\0")
    digest = hashlib.sha256(read_bytes(criteria, shown_path(criteria)))
    return "sha256:" + digest.hexdigest(), "sha256:" + files.hexdigest()


def version_of(root: Path) -> tuple[str, str]:
    """("sha256:<12 hex>", human version) over the mapping files' bytes and `VERSION`."""
    digest = hashlib.sha256()
    for path in mapping_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(read_bytes(path, display_path(root, path)) + b"\0")
    human = ""
    version_file = root / "VERSION"
    if is_file(version_file, display_path(root, version_file)):
        human = read_text(version_file, display_path(root, version_file)).strip()
    digest.update(b"VERSION\0" + human.encode())
    return "sha256:" + digest.hexdigest()[:12], human
