"""`cohort mappings check`: validate every mapping and criteria file, naming file, line and key."""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

from cohort.criteria.loading import check_trial
from cohort.criteria.trial import concept_refs
from cohort.errors import MappingError, closest, did_you_mean
from cohort.extract import ReadingRules
from cohort.lockfiles import data_files, side_file, side_files
from cohort.terminology import Terminology
from cohort.terminology.codes import TEXT, norm_code
from cohort.terminology.core import FILE_TYPES
from cohort.terminology.mappings import (
    CONCEPT_COLUMNS,
    REQUIRED,
    MappingRow,
    Record,
    concept_files,
    concept_row,
    display_path,
    read_csv,
    version_of,
)
from cohort.terminology.rows import (
    KnownSystems,
    alias_row,
    coding_problems,
    concept_problems,
    ingredient_row,
    product_row,
    system_pair,
    unit_row,
    value_row,
)
from cohort.terminology.units import ucum_problem
from cohort.tools.common import Findings

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


def _known_systems(root: Path, f: Findings) -> KnownSystems:
    """The systems systems.csv names (its bad lines reported)."""
    rows = _records(root, root / "systems.csv", REQUIRED["systems.csv"], f)
    return KnownSystems(p for rec in rows if (p := _row(system_pair, rec, f)) is not None)


def _unlisted(rec: Record, system: str, verified: str, known: KnownSystems, f: Findings) -> None:
    """A warning for a system systems.csv does not name (a misspelt one is an error instead)."""
    if verified != "local" and not known.known(system) and known.near_miss(system) is None:
        f.warn(
            rec.where,
            f"column 'system': code system '{system}' is not in systems.csv "
            "(add it there, or mark a site's own rows verified=local)",
        )


def _records(root: Path, path: Path, required: tuple[str, ...], f: Findings) -> Iterator[Record]:
    try:
        yield from read_csv(root, path, required)
    except MappingError as exc:
        f.errors.append(str(exc))


def _row(read: Callable[[Record], T], rec: Record, f: Findings) -> T | None:
    """`read(rec)` (one of the loader's line rules), or None with its error reported."""
    try:
        return read(rec)
    except MappingError as exc:
        f.errors.append(str(exc))
        return None


def _concept_rows(
    root: Path, known: KnownSystems, f: Findings, use_unverified: bool
) -> list[MappingRow]:
    rows: list[MappingRow] = []
    for path in data_files(root / "concepts", "*.csv"):
        medication = path.stem == "medications"
        required = CONCEPT_COLUMNS + (("ingredient",) if medication else ())
        shown = display_path(root, path)
        unverified: list[str] = []
        for rec in _records(root, path, required, f):
            row = _row(partial(concept_row, shown=shown, medication=medication), rec, f)
            if row is None:
                continue
            rows.append(row)
            if row.verified == "N":
                unverified.append(str(row.line))
            f.errors += [str(p) for p in concept_problems(row, known)]
            _unlisted(rec, row.system, row.verified, known, f)
        if unverified:
            read = "read: the configuration sets" if use_unverified else "ignored unless"
            f.warn(
                shown,
                f"column 'verified': {len(unverified)} unverified row(s) (verified=N, "
                f"{read} use_unverified) on line(s) {', '.join(unverified)}",
            )
    folder = root / "concepts"
    for path in sorted(folder.iterdir() if folder.is_dir() else ()):
        # a file of rows saved under another name is never read (a lock file is no such file)
        if path.is_file() and path.suffix != ".csv" and side_file(path.name) is None:
            f.warn(
                display_path(root, path),
                "not read: only files ending in .csv are (save the rows as 'CSV UTF-8 (Comma "
                "delimited)' under a name ending in .csv)",
            )
    return rows


def _side_files(root: Path, f: Findings) -> None:
    """A note naming each lock file, swap file or backup copy beside a mapping file."""
    for path, what in side_files(root):
        f.note(display_path(root, path), f"skipped, never read as mappings ({what})")


def _conflicts(
    rows: list[MappingRow], known: KnownSystems, overlaps: set[frozenset[str]], f: Findings
) -> None:
    """Same system+code mapped (not excluded) to different concepts of one resource family:
    a file's (`labs.csv`: Observation), or for local.csv and other files the family of the
    concept's rows elsewhere, else Observation (as a run searches a server for them)."""
    families: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if Path(r.file).stem in FILE_TYPES:
            families[r.concept].add(Path(r.file).stem)
    groups: dict[tuple[str, str, str], list[MappingRow]] = defaultdict(list)
    for r in rows:
        if r.system == TEXT or r.match != "exact" or r.verified == "N":
            continue
        system = known.canonical(r.system)
        family = Path(r.file).stem
        if family not in FILE_TYPES:
            family = min(families[r.concept], default="labs")
        groups[(family, system, norm_code(system, r.code))].append(r)
    for (_, system, code), grp in sorted(groups.items()):
        excluded = {r.concept for r in grp if r.exclude}
        included = {r.concept: r for r in grp if not r.exclude}
        if excluded or len(included) < 2 or _intentional(set(included), overlaps):
            continue
        mapping = [r for r in grp if not r.exclude]  # every row, in file order
        where = "; ".join(f"{r.file}:{r.line} ({r.concept})" for r in mapping)
        first = mapping[0]
        f.warn(
            f"{first.file}:{first.line}",
            f"column 'code': {system}|{code} is mapped to "
            f"{len(included)} concepts: {where} (intended? add exclude=Y to one of them)",
        )


OVERLAPS = "overlaps.csv"  # pairs of concepts a code may belong to at once, by design


def _overlaps(root: Path, concepts: set[str], f: Findings) -> set[frozenset[str]]:
    """The pairs of `overlaps.csv` (optional): a code of both concepts is no conflict (an
    AIDS-associated cancer is a member of VSAC HIV and of VSAC All Primary and Secondary
    Cancer, a row of `hiv` and of `malignancy`)."""
    path = root / OVERLAPS
    if not path.is_file():
        return set()
    pairs: set[frozenset[str]] = set()
    for rec in _records(root, path, ("concept", "also", "why"), f):
        pair = frozenset((rec.get("concept"), rec.get("also")))
        for key in ("concept", "also"):
            if rec.get(key) not in concepts:
                f.warn(rec.where, f"column '{key}': no concept rows for '{rec.get(key)}'")
        if len(pair) != 2:
            f.error(rec.where, "column 'also': name a concept other than 'concept'")
        elif not rec.get("why"):
            f.error(rec.where, "column 'why': empty: say why codes of both are by design")
        else:
            pairs.add(pair)
    return pairs


def _intentional(concepts: set[str], overlaps: set[frozenset[str]]) -> bool:
    """An exception/history/uncertain pair (`malignancy` + `malignancy_exception`) is by design,
    and so is a pair listed in overlaps.csv (`hiv` + `malignancy`)."""
    names = sorted(concepts)
    if frozenset(names) in overlaps:
        return True
    return len(names) == 2 and names[1].startswith(names[0] + "_")


def _check_trial(
    path: Path, rows: list[MappingRow], units: set[str] | None, f: Findings, use_unverified: bool
) -> None:
    """Every problem of a criteria file, as `load_trial` (so `cohort run`) raises the first."""
    known = {r.concept for r in rows}
    active = {r.concept for r in rows if use_unverified or r.verified != "N"}
    checked = check_trial(path, known, active, units, concept_files(rows))
    f.errors += [str(e) for e in checked.errors]
    f.warnings += checked.warnings


def _misspelt_concepts(trials: list[Path], rows: list[MappingRow], f: Findings) -> None:
    """A warning at the first row of a concept no criteria file names, in one concept file
    only, a typo away from one they do name (`ana_titr`): its rows are lost to the criterion.
    Any other unnamed concept is left alone (one for a trial not written yet; the shipped
    files hold such concepts)."""
    used: set[str] = set()
    for path in trials:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            return  # its error is reported; what the criteria name is not known
        used |= {name for _, name in concept_refs(data)}
    files: dict[str, set[str]] = defaultdict(set)
    first: dict[str, MappingRow] = {}
    for r in rows:
        files[r.concept].add(r.file)
        first.setdefault(r.concept, r)
    for name, row in first.items():
        near = None if name in used or len(files[name]) > 1 else closest(name, used)
        if near is not None and _typo(name, near):
            f.warn(
                f"{row.file}:{row.line}",
                f"column 'concept': no criteria file names concept '{name}' "
                f"({did_you_mean(name, used)})",
            )


def _typo(name: str, near: str) -> bool:
    """Whether `name` is a typo of `near`: one or two letters changed, left out, added or
    swapped (one below 8 letters, none below 5), not a sibling differing in its digits
    (`complement_c4` beside `complement_c3`)."""
    if re.sub(r"\d", "", name) == re.sub(r"\d", "", near):
        return False
    return 0 < _edits(name, near) <= min(2, max(0, (len(name) - 2) // 3))


def _edits(a: str, b: str) -> int:
    """Letters changed, left out, added or swapped (adjacent) to make `a` into `b`."""
    before: list[int] = []
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(row[j] + 1, cur[j - 1] + 1, row[j - 1] + (ca != cb)))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], before[j - 2] + 1)
        before, row = row, cur
    return row[-1]


def _check_units(root: Path, known: set[str], f: Findings) -> None:
    for rec in _records(root, root / "units.csv", REQUIRED["units.csv"], f):
        if rec.get("concept") not in known:
            f.warn(rec.where, f"column 'concept': no concept rows for '{rec.get('concept')}'")
        _row(unit_row, rec, f)  # an empty unit, a bad molar mass or plausible bound
        problem = ucum_problem(rec.get("unit")) if rec.get("unit") else None
        if problem:
            f.error(rec.where, f"column 'unit': {problem}")
    for rec in _records(root, root / "unit_aliases.csv", REQUIRED["unit_aliases.csv"], f):
        _row(alias_row, rec, f)
        problem = ucum_problem(rec.get("ucum")) if rec.get("ucum") else None
        if problem:
            f.error(rec.where, f"column 'ucum': {problem}")


def _unit_concepts(root: Path) -> set[str] | None:
    """The concepts units.csv gives a unit; None when it cannot be read (`_check_units` says
    why)."""
    try:
        return {rec.get("concept") for rec in read_csv(root, root / "units.csv", ("concept",))}
    except MappingError:
        return None


def _check_values_products(root: Path, known: KnownSystems, f: Findings) -> dict[str, float | None]:
    """values.csv, ingredients.csv and products.csv; ingredients.csv's prednisone factors."""
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
    for rec in _records(
        root, root / "medications/products.csv", REQUIRED["medications/products.csv"], f
    ):
        product = _row(product_row, rec, f)
        if product is not None and product[1] not in ingredients:
            f.warn(
                rec.where,
                f"column 'ingredient': '{rec.get('ingredient')}' is not in "
                "medications/ingredients.csv",
            )
    return ingredients


def _dosed_elsewhere(
    rows: list[MappingRow], ingredients: dict[str, float | None], f: Findings
) -> None:
    """A warning at a row outside medications.csv of a concept whose medications.csv rows
    have a prednisone factor (a steroid group): the row has no ingredient, so a dose of it has
    no prednisone equivalent and `high_dose` is unknown where it should pass or fail."""
    dosed = {
        r.concept
        for r in rows
        if Path(r.file).stem == "medications" and ingredients.get(r.ingredient) is not None
    }
    for r in rows:
        if r.concept in dosed and Path(r.file).stem != "medications":
            f.warn(
                f"{r.file}:{r.line}",
                f"column 'concept': a row of '{r.concept}' outside concepts/medications.csv "
                "has no ingredient, so its doses have no prednisone equivalent (high_dose: "
                "unknown): add it to concepts/medications.csv with its ingredient",
            )


def _misspelt_ingredients(
    rows: list[MappingRow], ingredients: dict[str, float | None], f: Findings
) -> None:
    """A warning at a medication row whose ingredient ingredients.csv lacks but is a typo
    away from one it lists (`predisone`: one letter changed, left out, added or swapped; drug
    names share stems, abrocitinib is two from baricitinib): no prednisone factor, no products.
    Any other unlisted ingredient is a drug of its own (it needs no factor unless a steroid)."""
    for r in rows:
        if len(r.ingredient) < 5 or r.ingredient in ingredients:
            continue
        near = closest(r.ingredient, ingredients)
        if near is not None and _edits(r.ingredient, near) == 1:
            f.warn(
                f"{r.file}:{r.line}",
                f"column 'ingredient': '{r.ingredient}' is not in medications/ingredients.csv "
                f"(did you mean '{near}'?): its doses have no prednisone equivalent and RxNorm "
                "products of the ingredient meant do not reach this row's concept",
            )


def check_mappings(
    root: Path, trial: str | None = None, *, use_unverified: bool = False
) -> CheckReport:
    """Every problem in the mappings folder (and its trial files), not just the first;
    `use_unverified` as a run's configuration sets it (its unverified rows are read)."""
    f = Findings()
    if not root.is_dir():
        raise MappingError(f"{root}: mappings folder not found")
    version, human = version_of(root)
    known = _known_systems(root, f)
    rows = _concept_rows(root, known, f, use_unverified)
    _conflicts(rows, known, _overlaps(root, {r.concept for r in rows}, f), f)
    _check_units(root, {r.concept for r in rows}, f)
    ingredients = _check_values_products(root, known, f)
    _misspelt_ingredients(rows, ingredients, f)
    _dosed_elsewhere(rows, ingredients, f)
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
    units = _unit_concepts(root)
    for path in trials:
        _check_trial(path, rows, units, f, use_unverified)
    _misspelt_concepts(data_files(root / "trials", "*.toml"), rows, f)
    if not f.errors:
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
    )
