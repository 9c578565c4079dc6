"""What the Terminology reads from ingredients, products, units, unit aliases and values files."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from cohort.errors import MappingError
from cohort.terminology.mappings import REQUIRED, read_csv
from cohort.terminology.rows import (
    KnownSystems,
    alias_conflict,
    alias_row,
    coding_problems,
    ingredient_row,
    product_row,
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
from cohort.terminology.units import Units, UnitSpec
from cohort.terminology.values import Qualitative


def load_factors(root: Path) -> dict[str, float | None]:
    """medications/ingredients.csv: ingredient -> its prednisone factor."""
    factors: dict[str, float | None] = {}
    path = root / "medications" / "ingredients.csv"
    first: Firsts = {}
    for rec in read_csv(root, path, REQUIRED["medications/ingredients.csv"]):
        ingredient, factor = ingredient_row(rec)
        _stop(ingredient_twice(first, rec, ingredient, factor))
        factors[ingredient] = factor
    return factors


def load_products(
    root: Path,
) -> tuple[dict[str, tuple[str, bool]], dict[str, str], dict[str, str]]:
    """medications/products.csv: rxcui -> (ingredient, systemic), its RxNorm name (its
    strength) and its `file:line` (explain)."""
    products: dict[str, tuple[str, bool]] = {}
    names: dict[str, str] = {}
    lines: dict[str, str] = {}
    path = root / "medications" / "products.csv"
    first: Firsts = {}
    for rec in read_csv(root, path, REQUIRED["medications/products.csv"]):
        rxcui, ingredient, systemic = product_row(rec)
        _stop(product_twice(first, rec, rxcui, ingredient, systemic))
        products[rxcui] = (ingredient, systemic)
        names[rxcui] = rec.get("display")
        lines[rxcui] = rec.where
    return products, names, lines


def load_units(root: Path) -> Units:
    """units.csv and unit_aliases.csv (an alias given two units stops the load)."""
    specs: dict[str, UnitSpec] = {}
    written: list[tuple[str, str, str]] = []  # UCUM is asked about these in check_units
    seen: Firsts = {}
    for rec in read_csv(root, root / "units.csv", REQUIRED["units.csv"]):
        concept, spec = unit_row(rec)
        _stop(unit_twice(seen, rec, concept, spec))
        specs[concept] = spec
        written.append((rec.where, "unit", spec.unit))
    aliases: dict[str, str] = {}
    first: dict[str, tuple[int, str]] = {}  # alias -> its first line and unit
    for rec in read_csv(root, root / "unit_aliases.csv", REQUIRED["unit_aliases.csv"]):
        alias, ucum = alias_row(rec)
        problem = alias_conflict(first, rec, alias, ucum)
        if problem is not None:
            raise problem
        # (the first line's unit: a later one is the same unit, or an error above)
        aliases.setdefault(alias, ucum)
        written.append((rec.where, "ucum", ucum))
    return Units(specs, aliases, written)


def load_values(
    root: Path, known: KnownSystems, canonical: Callable[[str], str], use_unverified: bool
) -> Qualitative:
    """values.csv: what coded, string and interpretation results say (`canonical`: the code
    system's canonical name; unverified rows read only with `use_unverified`)."""
    codes: dict[tuple[str, str], str] = {}
    strings: dict[str, str] = {}
    interp: dict[tuple[str, str], str] = {}
    first: Firsts = {}
    for rec in read_csv(root, root / "values.csv", REQUIRED["values.csv"]):
        kind, system, code, result, verified = value_row(rec)
        if kind != "string":
            raise_first(coding_problems(rec.where, known, system, [code]))
        key = (canonical(system), code)
        # (every line, as `mappings check` compares them: unverified ones too)
        _stop(value_twice(first, rec, kind, key[0], code, result))
        if verified == "N" and not use_unverified:
            continue
        if kind == "string":
            strings[code] = result
            continue
        (codes if kind == "code" else interp)[key] = result
    return Qualitative(codes, strings, interp, canonical)


def _stop(problem: MappingError | None) -> None:
    """Loading stops at a line twice with other content (`twice`)."""
    if problem is not None:
        raise problem


def raise_first(problems: Iterable[MappingError]) -> None:
    """Loading stops at the first problem (`mappings check` collects them all)."""
    for problem in problems:
        raise problem
