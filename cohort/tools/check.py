"""`cohort mappings check`: validate every mapping and criteria file, naming file, line and key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

from cohort.criteria.loading import check_trial
from cohort.errors import MappingError, did_you_mean
from cohort.extract import ReadingRules
from cohort.lockfiles import data_files, side_file, side_files
from cohort.terminology import Terminology
from cohort.terminology.core import FILE_TYPES
from cohort.terminology.labels import LABELS, label_row, label_twice
from cohort.terminology.mappings import (
    CONCEPT_COLUMNS,
    REQUIRED,
    MappingRow,
    Record,
    check_folder,
    concept_files,
    concept_row,
    display_path,
    read_csv,
    version_of,
)
from cohort.terminology.routes import ROUTES, route_row, route_twice
from cohort.terminology.rows import (
    OVERLAPS,
    KnownSystems,
    alias_conflict,
    alias_row,
    alias_same_unit,
    coding_problems,
    concept_problems,
    ingredient_row,
    overlap_row,
    product_row,
    system_pair,
    unit_row,
    value_row,
)
from cohort.terminology.units import UnitSpec, ucum_problem
from cohort.tools.common import Findings
from cohort.tools.rowchecks import (
    conflicts,
    copies,
    dosed_elsewhere,
    misspelt_concepts,
    misspelt_ingredients,
)
from cohort.tools.thresholds import plausible_limits

T = TypeVar("T")


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


def _known_systems(root: Path, f: Findings) -> KnownSystems:
    """The systems systems.csv names (its bad lines reported)."""
    rows = _records(root, root / "systems.csv", REQUIRED["systems.csv"], f)
    return KnownSystems(p for rec in rows if (p := _row(system_pair, rec, f)) is not None)


def _unlisted(rec: Record, system: str, verified: str, known: KnownSystems, f: Findings) -> None:
    """A warning for a system systems.csv does not name (a misspelt one is an error instead)."""
    if "systems.csv" in f.unread or verified == "local":
        return  # (not read: its error is reported, and every system would be missing)
    if not known.known(system) and known.near_miss(system) is None:
        f.warn(
            rec.where,
            f"column 'system': code system '{system}' is not in systems.csv "
            "(add it there, or mark a site's own rows verified=local)",
        )


def _records(root: Path, path: Path, required: tuple[str, ...], f: Findings) -> Iterator[Record]:
    """The rows of a mapping CSV. A line that is no row (more cells than columns, a quote left
    open) is an error, and the rows after it are read, so that the checks against the file see
    them; a file not read at all (not found, not UTF-8, a column missing) is an error, and a
    note says that the checks of other files against it are skipped (`Findings.unread`)."""
    try:
        yield from read_csv(root, path, required, bad=lambda e: f.errors.append(str(e)))
    except MappingError as exc:
        f.errors.append(str(exc))
        f.unread.add(path.relative_to(root).as_posix())
        f.note(
            display_path(root, path),
            "not read (its error above): the checks of other files against it are skipped",
        )


def _concepts_read(f: Findings) -> bool:
    """Whether every concept file was read: else the concepts other files name are not
    compared with the concept rows (those of a file not read would all be missing)."""
    return not any(rel.startswith("concepts/") for rel in f.unread)


def _row(read: Callable[[Record], T], rec: Record, f: Findings) -> T | None:
    """`read(rec)` (one of the loader's line rules), or None with its error reported."""
    try:
        return read(rec)
    except MappingError as exc:
        f.errors.append(str(exc))
        return None


def _concept_rows(
    root: Path, known: KnownSystems, f: Findings, use_unverified: bool
) -> tuple[list[MappingRow], list[str]]:
    """The rows of every concept file, and the files (as shown) with a header and no row."""
    rows: list[MappingRow] = []
    empty: list[str] = []
    for path in data_files(root / "concepts", "*.csv"):
        medication = path.stem == "medications"
        required = CONCEPT_COLUMNS + (("ingredient",) if medication else ())
        shown = display_path(root, path)
        unverified: list[str] = []
        records, errors = 0, len(f.errors)
        for rec in _records(root, path, required, f):
            records += 1
            row = _row(partial(concept_row, shown=shown, medication=medication), rec, f)
            if row is None:
                continue
            rows.append(row)
            if row.verified == "N":
                unverified.append(str(row.line))
            f.errors += [str(p) for p in concept_problems(row, known)]
            _unlisted(rec, row.system, row.verified, known, f)
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


def _overlaps(root: Path, concepts: set[str] | None, f: Findings) -> set[frozenset[str]]:
    """The pairs of `overlaps.csv` (optional): a code of both concepts is no conflict (an
    AIDS-associated cancer is a member of VSAC HIV and of VSAC All Primary and Secondary
    Cancer, a row of `hiv` and of `malignancy`). `concepts`: None when the concept files could
    not all be read (no concept is then looked up)."""
    if not (root / OVERLAPS[0]).is_file():
        return set()
    pairs: set[frozenset[str]] = set()
    for rec in _records(root, root / OVERLAPS[0], OVERLAPS[1], f):
        pair = _row(overlap_row, rec, f)
        if pair is None:
            continue
        pairs.add(pair)
        for key in ("concept", "also"):
            if concepts is not None and rec.get(key) not in concepts:
                f.warn(rec.where, f"column '{key}': no concept rows for '{rec.get(key)}'")
    return pairs


def _labels(root: Path, concepts: set[str] | None, f: Findings) -> None:
    """`labels.csv` (optional): a bad line or a concept labelled twice is an error (a run
    stops on it), a label of a concept no concept row names a warning (it labels nothing).
    `concepts`: None when the concept files could not all be read."""
    if not (root / LABELS[0]).is_file():
        return
    first: dict[str, int] = {}
    for rec in _records(root, root / LABELS[0], LABELS[1], f):
        read = _row(label_row, rec, f)
        if read is None:
            continue
        if (twice := label_twice(first, rec, read[0])) is not None:
            f.errors.append(str(twice))
        elif concepts is not None and read[0] not in concepts:
            hint = did_you_mean(read[0], sorted(concepts))
            f.warn(
                rec.where,
                f"column 'concept': no concept rows for '{read[0]}': its label names nothing"
                + (f" ({hint})" if hint else ""),
            )


def _routes(root: Path, known: KnownSystems, f: Findings) -> int:
    """`routes.csv` (optional): a bad line, or a code on two lines with two displays, is an
    error (a run stops on it); a system systems.csv does not name, a warning. Its lines read."""
    if not (root / ROUTES[0]).is_file():
        return 0
    first: dict[tuple[str, str], tuple[int, str]] = {}
    count = 0
    for rec in _records(root, root / ROUTES[0], ROUTES[1], f):
        count += 1
        read = _row(partial(route_row, known=known), rec, f)
        if read is None:
            continue
        system, code, display, verified = read
        if (twice := route_twice(first, rec, (known.canonical(system), code), display)) is not None:
            f.errors.append(str(twice))
        _unlisted(rec, system, verified, known, f)
    return count


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


def _check_units(
    root: Path, known: set[str] | None, f: Findings, specs: dict[str, UnitSpec], ucum: bool = True
) -> set[str] | None:
    """units.csv and unit_aliases.csv; the concepts units.csv gives a unit (None when it is not
    read: the criteria's concepts are then not asked for one), each line read into `specs`.
    `known`: the concepts of the concept rows (None: not every concept file was read). `ucum`:
    ask UCUM about each unit."""
    units: set[str] = set()
    for rec in _records(root, root / "units.csv", REQUIRED["units.csv"], f):
        units.add(rec.get("concept"))
        if known is not None and rec.get("concept") not in known:
            f.warn(rec.where, f"column 'concept': no concept rows for '{rec.get('concept')}'")
        read = _row(unit_row, rec, f)  # an empty unit, a bad molar mass or plausible bound
        if read is not None:
            specs[read[0]] = read[1]  # (a concept's last line, as the loader keeps it)
        problem = ucum_problem(rec.get("unit")) if ucum and rec.get("unit") else None
        if problem:
            f.error(rec.where, f"column 'unit': {problem}")
    first: dict[str, tuple[int, str]] = {}  # alias -> its first line and unit
    for rec in _records(root, root / "unit_aliases.csv", REQUIRED["unit_aliases.csv"], f):
        alias = _row(alias_row, rec, f)
        if alias is not None and (twice := alias_conflict(first, rec, *alias)) is not None:
            f.errors.append(str(twice))
        elif alias is not None and (same := alias_same_unit(first, *alias)) is not None:
            f.note(rec.where, same)
        problem = ucum_problem(rec.get("ucum")) if ucum and rec.get("ucum") else None
        if problem:
            f.error(rec.where, f"column 'ucum': {problem}")
    return None if "units.csv" in f.unread else units


def _check_values_products(
    root: Path, known: KnownSystems, f: Findings
) -> dict[str, float | None] | None:
    """values.csv, ingredients.csv and products.csv; ingredients.csv's prednisone factors (None
    when it is not read: nothing is compared with it)."""
    for rec in _records(root, root / "values.csv", REQUIRED["values.csv"], f):
        value = _row(value_row, rec, f)
        if value is not None and value[0] != "string":
            f.errors += [str(p) for p in coding_problems(rec.where, known, value[1], [value[2]])]
            _unlisted(rec, value[1], value[4], known, f)
    ingredients: dict[str, float | None] = {}
    for rec in _records(
        root, root / "medications/ingredients.csv", REQUIRED["medications/ingredients.csv"], f
    ):
        ingredient = _row(ingredient_row, rec, f)
        name, factor = ingredient if ingredient else (rec.get("ingredient").lower(), None)
        ingredients[name] = factor
    read = "medications/ingredients.csv" not in f.unread
    for rec in _records(
        root, root / "medications/products.csv", REQUIRED["medications/products.csv"], f
    ):
        product = _row(product_row, rec, f)
        if product is not None and read and product[1] not in ingredients:
            f.warn(
                rec.where,
                f"column 'ingredient': '{rec.get('ingredient')}' is not in "
                "medications/ingredients.csv",
            )
    return ingredients if read else None


def check_mappings(
    root: Path, trial: str | None = None, *, use_unverified: bool = False, for_run: bool = False
) -> CheckReport:
    """Every problem in the mappings folder (and its trial files), not just the first;
    `use_unverified` as a run's configuration sets it (its unverified rows are read).
    `for_run`: a run has loaded the folder (its loader errors are known: it is not loaded
    again) and checks the units where it builds the UCUM registry anyway (`check_units`, after
    the read): UCUM is not asked here."""
    f = Findings()
    check_folder(root)
    version, human = version_of(root)
    known = _known_systems(root, f)
    rows, empty = _concept_rows(root, known, f, use_unverified)
    copies(rows, f)
    concepts = {r.concept for r in rows} if _concepts_read(f) else None
    conflicts(rows, known, _overlaps(root, concepts, f), f)
    _labels(root, concepts, f)
    routes = _routes(root, known, f)
    known_concepts = {r.concept for r in rows} if _concepts_read(f) else None
    specs: dict[str, UnitSpec] = {}
    units = _check_units(root, known_concepts, f, specs, ucum=not for_run)
    ingredients = _check_values_products(root, known, f)
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
        misspelt_concepts(data_files(root / "trials", "*.toml"), rows, f)
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
