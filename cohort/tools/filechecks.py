"""`cohort mappings check`: a mapping CSV's rows, and the checks of the files beside concepts/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

from cohort.errors import MappingError, did_you_mean
from cohort.terminology.labels import LABELS, label_row, label_twice
from cohort.terminology.mappings import REQUIRED, Record, display_path, read_csv
from cohort.terminology.routes import ROUTES, route_row, route_twice
from cohort.terminology.rows import (
    OVERLAPS,
    KnownSystems,
    alias_conflict,
    alias_row,
    alias_same_unit,
    coding_problems,
    ingredient_row,
    overlap_row,
    product_row,
    system_pair,
    unit_row,
    value_row,
)
from cohort.terminology.twice import (
    Firsts,
    ingredient_twice,
    product_twice,
    unit_twice,
    value_twice,
)
from cohort.terminology.units import UnitSpec, ucum_problem
from cohort.tools.common import Findings

T = TypeVar("T")


def known_systems(root: Path, f: Findings) -> KnownSystems:
    """The systems systems.csv names (its bad lines reported)."""
    rows = csv_records(root, root / "systems.csv", REQUIRED["systems.csv"], f)
    return KnownSystems(p for rec in rows if (p := read_row(system_pair, rec, f)) is not None)


def unlisted(where: str, system: str, verified: str, known: KnownSystems, f: Findings) -> None:
    """A warning at `where` ("mappings/concepts/labs.csv:4") for a system systems.csv does not
    name (a misspelt one is an error instead)."""
    if "systems.csv" in f.unread or verified == "local":
        return  # (not read: its error is reported, and every system would be missing)
    if not known.known(system) and known.near_miss(system) is None:
        f.warn(
            where,
            f"column 'system': code system '{system}' is not in systems.csv "
            "(add it there, or mark a site's own rows verified=local)",
        )


def csv_records(root: Path, path: Path, required: tuple[str, ...], f: Findings) -> Iterator[Record]:
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


def read_row(read: Callable[[Record], T], rec: Record, f: Findings) -> T | None:
    """`read(rec)` (one of the loader's line rules), or None with its error reported."""
    try:
        return read(rec)
    except MappingError as exc:
        f.errors.append(str(exc))
        return None


def check_overlaps(root: Path, concepts: set[str] | None, f: Findings) -> set[frozenset[str]]:
    """The pairs of `overlaps.csv` (optional): a code of both concepts is no conflict (an
    AIDS-associated cancer is a member of VSAC HIV and of VSAC All Primary and Secondary
    Cancer, a row of `hiv` and of `malignancy`). `concepts`: None when the concept files could
    not all be read (no concept is then looked up)."""
    if not (root / OVERLAPS[0]).is_file():
        return set()
    pairs: set[frozenset[str]] = set()
    for rec in csv_records(root, root / OVERLAPS[0], OVERLAPS[1], f):
        pair = read_row(overlap_row, rec, f)
        if pair is None:
            continue
        pairs.add(pair)
        for key in ("concept", "also"):
            if concepts is not None and rec.get(key) not in concepts:
                f.warn(rec.where, f"column '{key}': no concept rows for '{rec.get(key)}'")
    return pairs


def check_labels(root: Path, concepts: set[str] | None, f: Findings) -> set[str]:
    """`labels.csv` (optional): a bad line or a concept labelled twice is an error (a run
    stops on it), a label of a concept no concept row names a warning (it labels nothing).
    `concepts`: None when the concept files could not all be read. The concepts labelled."""
    if not (root / LABELS[0]).is_file():
        return set()
    first: dict[str, int] = {}
    for rec in csv_records(root, root / LABELS[0], LABELS[1], f):
        read = read_row(label_row, rec, f)
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
    return set(first)


def check_routes(root: Path, known: KnownSystems, f: Findings) -> int:
    """`routes.csv` (optional): a bad line, or a code on two lines with two displays, is an
    error (a run stops on it); a system systems.csv does not name, a warning. Its lines read."""
    if not (root / ROUTES[0]).is_file():
        return 0
    first: dict[tuple[str, str], tuple[int, str]] = {}
    count = 0
    for rec in csv_records(root, root / ROUTES[0], ROUTES[1], f):
        count += 1
        read = read_row(partial(route_row, known=known), rec, f)
        if read is None:
            continue
        system, code, display, verified = read
        if (twice := route_twice(first, rec, (known.canonical(system), code), display)) is not None:
            f.errors.append(str(twice))
        unlisted(rec.where, system, verified, known, f)
    return count


def check_unit_files(
    root: Path, known: set[str] | None, f: Findings, specs: dict[str, UnitSpec], ucum: bool = True
) -> set[str] | None:
    """units.csv and unit_aliases.csv; the concepts units.csv gives a unit (None when it is not
    read: the criteria's concepts are then not asked for one), each line read into `specs`.
    `known`: the concepts of the concept rows (None: not every concept file was read). `ucum`:
    ask UCUM about each unit."""
    units: set[str] = set()
    seen: Firsts = {}
    asked: list[tuple[str, str, str]] = []  # (where, column, unit) UCUM is asked about
    for rec in csv_records(root, root / "units.csv", REQUIRED["units.csv"], f):
        units.add(rec.get("concept"))
        if known is not None and rec.get("concept") not in known:
            f.warn(rec.where, f"column 'concept': no concept rows for '{rec.get('concept')}'")
        read = read_row(unit_row, rec, f)  # an empty unit, a bad molar mass or plausible bound
        if read is not None:
            _found(f, unit_twice(seen, rec, *read))
            specs[read[0]] = read[1]  # (a concept's last line, as the loader keeps it)
        if ucum and rec.get("unit"):
            asked.append((rec.where, "unit", rec.get("unit")))
    first: dict[str, tuple[int, str]] = {}  # alias -> its first line and unit
    for rec in csv_records(root, root / "unit_aliases.csv", REQUIRED["unit_aliases.csv"], f):
        alias = read_row(alias_row, rec, f)
        if alias is not None and (twice := alias_conflict(first, rec, *alias)) is not None:
            f.errors.append(str(twice))
        elif alias is not None and (same := alias_same_unit(first, *alias)) is not None:
            f.note(rec.where, same)
        if ucum and rec.get("ucum"):
            asked.append((rec.where, "ucum", rec.get("ucum")))
    # (asked once the aliases are read, as a run does: the hint names a lab spelling's unit)
    aliases = {alias: seen[1] for alias, seen in first.items()}
    for where, column, unit in asked:
        if problem := ucum_problem(unit, aliases):
            f.error(where, f"column '{column}': {problem}")
    return None if "units.csv" in f.unread else units


def check_values_products(
    root: Path, known: KnownSystems, f: Findings
) -> dict[str, float | None] | None:
    """values.csv, ingredients.csv and products.csv; ingredients.csv's prednisone factors (None
    when it is not read: nothing is compared with it)."""
    first: Firsts = {}
    for rec in csv_records(root, root / "values.csv", REQUIRED["values.csv"], f):
        value = read_row(value_row, rec, f)
        if value is not None and value[0] != "string":
            f.errors += [str(p) for p in coding_problems(rec.where, known, value[1], [value[2]])]
            unlisted(rec.where, value[1], value[4], known, f)
        if value is not None:
            kind, system, code, result, _ = value
            _found(f, value_twice(first, rec, kind, known.canonical(system), code, result))
    ingredients: dict[str, float | None] = {}
    first = {}
    for rec in csv_records(
        root, root / "medications/ingredients.csv", REQUIRED["medications/ingredients.csv"], f
    ):
        ingredient = read_row(ingredient_row, rec, f)
        if ingredient is not None:
            _found(f, ingredient_twice(first, rec, *ingredient))
        name, factor = ingredient if ingredient else (rec.get("ingredient").lower(), None)
        ingredients[name] = factor
    read = "medications/ingredients.csv" not in f.unread
    first = {}
    for rec in csv_records(
        root, root / "medications/products.csv", REQUIRED["medications/products.csv"], f
    ):
        product = read_row(product_row, rec, f)
        if product is not None:
            _found(f, product_twice(first, rec, *product))
        if product is not None and read and product[1] not in ingredients:
            f.warn(
                rec.where,
                f"column 'ingredient': '{rec.get('ingredient')}' is not in "
                "medications/ingredients.csv",
            )
    return ingredients if read else None


def _found(f: Findings, problem: MappingError | None) -> None:
    """A line twice with other content (`twice`): an error, as the run stops on it."""
    if problem is not None:
        f.errors.append(str(problem))
