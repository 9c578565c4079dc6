"""`cohort mappings check`: validate every mapping and criteria file, naming file, line and key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from cohort.criteria.loading import check_trial
from cohort.errors import MappingError
from cohort.extract import ReadingRules
from cohort.lockfiles import data_files, side_file, side_files
from cohort.terminology import Terminology
from cohort.terminology.core import FILE_TYPES
from cohort.terminology.mappings import (
    CONCEPT_COLUMNS,
    MappingRow,
    check_folder,
    concept_files,
    concept_row,
    display_path,
    version_of,
)
from cohort.terminology.rows import KnownSystems, concept_problems
from cohort.terminology.units import UnitSpec
from cohort.tools.common import Findings
from cohort.tools.filechecks import (
    check_labels,
    check_overlaps,
    check_routes,
    check_unit_files,
    check_values_products,
    csv_records,
    known_systems,
    read_row,
    unlisted,
)
from cohort.tools.rowchecks import (
    conflicts,
    copies,
    dosed_elsewhere,
    misspelt_concepts,
    misspelt_ingredients,
)
from cohort.tools.thresholds import plausible_limits


@dataclass
class CheckReport:
    """Outcome of a check: located errors and warnings, and the mapping version checked."""

    findings: Findings
    version: str
    human_version: str
    rows: int = 0
    unverified: int = 0
    trials: list[str] = field(default_factory=list)
    routes: int = 0  # lines of routes.csv read


def _concepts_read(f: Findings) -> bool:
    """Whether every concept file was read: else the concepts other files name are not
    compared with the concept rows (those of a file not read would all be missing)."""
    return not any(rel.startswith("concepts/") for rel in f.unread)


def _concept_rows(
    root: Path,
    known: KnownSystems,
    f: Findings,
    use_unverified: bool,
    loaded: list[MappingRow] | None = None,
) -> tuple[list[MappingRow], list[str]]:
    """The rows of every concept file, and the files (as shown) with a header and no row.
    `loaded`: the rows a run's loader has just read from these files (every line a row, or it
    would have stopped): checked as they are, not read a second time (~0.1 s a run)."""
    rows: list[MappingRow] = []
    empty: list[str] = []
    by_file: dict[str, list[MappingRow]] = {}
    for r in loaded or ():
        by_file.setdefault(r.file, []).append(r)
    for path in data_files(root / "concepts", "*.csv"):
        medication = path.stem == "medications"
        required = CONCEPT_COLUMNS + (("ingredient",) if medication else ())
        shown = display_path(root, path)
        unverified: list[str] = []
        records, errors = 0, len(f.errors)
        lines: Iterator[tuple[MappingRow | None, str]]
        if loaded is None:
            lines = _read_rows(root, path, required, shown, medication, f)
        else:
            lines = ((r, f"{r.file}:{r.line}") for r in by_file.get(shown, ()))
        for row, where in lines:
            records += 1
            if row is None:
                continue
            rows.append(row)
            if row.verified == "N":
                unverified.append(str(row.line))
            if loaded is None:  # (the loader raises the first of these: none in its rows)
                f.errors += [str(p) for p in concept_problems(row, known)]
            unlisted(where, row.system, row.verified, known, f)
        if unverified:
            # a note: the shipped files hold such rows by design (codes no public source
            # verified), and warnings every clean file gives teach a researcher to skip them all
            read = "read: the configuration sets" if use_unverified else "ignored unless"
            more = f" … ({len(unverified) - 10} more)" if len(unverified) > 10 else ""
            f.note(
                shown,
                f"column 'verified': {len(unverified)} unverified row(s) (verified=N, "
                f"{read} use_unverified) on line(s) {', '.join(unverified[:10])}{more}",
            )
        if not records and len(f.errors) == errors:  # (read, and no line that is no row)
            empty.append(shown)
            _no_rows(path, shown, f)
    folder = root / "concepts"
    for path in sorted(folder.iterdir() if folder.is_dir() else ()):
        # a file of rows saved under another name is never read (a lock file is no such file)
        if path.is_file() and path.suffix != ".csv" and side_file(path.name) is None:
            f.warn(
                display_path(root, path),
                "not read: only files ending in .csv are (save the rows as 'CSV UTF-8 (Comma "
                "delimited)' under a name ending in .csv)",
            )
    return rows, empty


def _read_rows(
    root: Path, path: Path, required: tuple[str, ...], shown: str, medication: bool, f: Findings
) -> Iterator[tuple[MappingRow | None, str]]:
    """Each line of a concept file that is a row, read as the loader reads it (None: its
    error reported), with the line."""
    read = partial(concept_row, shown=shown, medication=medication)
    for rec in csv_records(root, path, required, f):
        yield read_row(read, rec, f), rec.where


def _no_rows(path: Path, shown: str, f: Findings) -> None:
    """A concept file with its header only (Excel can save one so): an error for a file of one
    sort of records, whose concepts the criteria read; a warning for `local.csv` or another
    file of a site's own codes, which may have none yet."""
    if path.stem in FILE_TYPES:
        f.error(
            shown,
            "no rows (only its header): nothing is read from it (rows lost in Excel? restore "
            "them from a copy)",
        )
    else:
        f.warn(shown, "no rows (only its header)")


def _side_files(root: Path, f: Findings) -> None:
    """A note naming each lock file, swap file or backup copy beside a mapping file."""
    for path, what in side_files(root):
        f.note(display_path(root, path), f"skipped, never read as mappings ({what})")


def _check_trial(
    path: Path,
    rows: list[MappingRow],
    units: set[str] | None,
    f: Findings,
    use_unverified: bool,
    empty: list[str],
) -> None:
    """Every problem of a criteria file, as `load_trial` (so `cohort run`) raises the first.
    `empty`: the concept files with no rows, which each unknown concept's error names (18
    errors blaming the criteria for labs.csv emptied in Excel hid the file's own)."""
    known: set[str] | None = {r.concept for r in rows}
    active: set[str] | None = {r.concept for r in rows if use_unverified or r.verified != "N"}
    if not _concepts_read(f):
        known = active = None  # (its concepts are not checked)
    checked = check_trial(path, known, active, units, concept_files(rows))
    hint = f" ({', '.join(empty)} {'has' if len(empty) == 1 else 'have'} no rows)"
    f.errors += [
        str(e) + (hint if empty and ": unknown concept '" in str(e) else "") for e in checked.errors
    ]
    f.warnings += checked.warnings


def check_mappings(
    root: Path,
    trial: str | None = None,
    *,
    use_unverified: bool = False,
    for_run: bool = False,
    loaded: list[MappingRow] | None = None,
) -> CheckReport:
    """Every problem in the mappings folder (and its trial files), not just the first;
    `use_unverified` as a run's configuration sets it (its unverified rows are read).
    `for_run`: a run has loaded the folder (its loader errors are known: it is not loaded
    again) and checks the units where it builds the UCUM registry anyway (`check_units`, after
    the read): UCUM is not asked here; `loaded`: the concept rows it read (Terminology.rows)."""
    f = Findings()
    check_folder(root)
    version, human = version_of(root)
    known = known_systems(root, f)
    rows, empty = _concept_rows(root, known, f, use_unverified, loaded if for_run else None)
    copies(rows, f)
    concepts = {r.concept for r in rows} if _concepts_read(f) else None
    conflicts(rows, known, check_overlaps(root, concepts, f), f)
    labelled = check_labels(root, concepts, f)
    routes = check_routes(root, known, f)
    known_concepts = {r.concept for r in rows} if _concepts_read(f) else None
    specs: dict[str, UnitSpec] = {}
    units = check_unit_files(root, known_concepts, f, specs, ucum=not for_run)
    ingredients = check_values_products(root, known, f)
    if ingredients is not None:
        misspelt_ingredients(rows, ingredients, f)
        dosed_elsewhere(rows, ingredients, f)
    try:
        ReadingRules.load(root / "rules.toml")
    except MappingError as exc:
        f.errors.append(str(exc))
    _side_files(root, f)
    trials = data_files(root / "trials", "*.toml")
    if trial:
        trials = [root / "trials" / f"{trial}.toml"]
        if not trials[0].is_file():
            f.error(str(trials[0]), "criteria file not found")
            trials = []
    for path in trials:
        _check_trial(path, rows, units, f, use_unverified, empty)
        plausible_limits(path, specs, f)
    if _concepts_read(f):
        misspelt_concepts(data_files(root / "trials", "*.toml"), rows, f, labelled)
    if not f.errors and not for_run:
        try:  # anything the loader rejects that the checks above did not name (no concepts/)
            Terminology.load(root, use_unverified=use_unverified)
        except MappingError as exc:
            f.errors.append(str(exc))
    return CheckReport(
        findings=f,
        version=version,
        human_version=human,
        rows=len(rows),
        unverified=sum(r.verified == "N" for r in rows),
        trials=[p.stem for p in trials],
        routes=routes,
    )
