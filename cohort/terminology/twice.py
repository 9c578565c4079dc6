"""A line of a keyed mapping file whose key an earlier line gives other content: an error."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from cohort.errors import MappingError
from cohort.terminology.csvfile import Record
from cohort.terminology.units import UnitSpec
from cohort.terminology.values import normalise_word

__all__ = ["Firsts", "ingredient_twice", "product_twice", "unit_twice", "value_twice"]

# QA (role-play of a researcher): `Positive` on a second line of values.csv as negative, a
# steroid's factor or a unit's plausible range on a second line: the later line won without a
# word, as an alias on two lines once did (rows.alias_conflict). The same line twice reads the
# same whichever is taken: no error.

# key -> (its first line, what that line gives, that as the message shows it)
Firsts = dict[Hashable, tuple[int, Any, str]]


def _twice(
    first: Firsts, rec: Record, column: str, key: Hashable, value: Any, shown: str, what: str
) -> MappingError | None:
    line = int(rec.where.rsplit(":", 1)[1])
    seen_line, seen, seen_shown = first.setdefault(key, (line, value, shown))
    if seen == value:
        return None
    there = f" ({seen_shown} there, {shown} here)" if shown else ""
    return rec.fail(
        column,
        f"'{rec.get(column)}' is also on line {seen_line} with another {what}{there}: "
        "delete the wrong line",
    )


def unit_twice(first: Firsts, rec: Record, concept: str, spec: UnitSpec) -> MappingError | None:
    """units.csv: a concept's unit, molar mass and plausible range are one line's."""
    return _twice(first, rec, "concept", concept, spec, "", "unit or bounds")


def ingredient_twice(
    first: Firsts, rec: Record, ingredient: str, factor: float | None
) -> MappingError | None:
    """ingredients.csv: an ingredient's prednisone factor."""
    shown = rec.get("prednisone_factor") or "blank"
    return _twice(first, rec, "ingredient", ingredient, factor, shown, "prednisone_factor")


def product_twice(
    first: Firsts, rec: Record, rxcui: str, ingredient: str, systemic: bool
) -> MappingError | None:
    """products.csv: a product's ingredient and whether it is systemic."""
    shown = f"{ingredient}{'' if systemic else ' systemic=N'}"
    what = "ingredient or systemic"
    return _twice(first, rec, "rxcui", rxcui, (ingredient, systemic), shown, what)


def value_twice(
    first: Firsts, rec: Record, kind: str, system: str, code: str, result: str
) -> MappingError | None:
    """values.csv: a result word (compared as it is looked up: case and spacing ignored) or a
    code of a system (`system` canonical) reads as one result."""
    key = (kind, "", normalise_word(code)) if kind == "string" else (kind, system, code)
    return _twice(first, rec, "code", key, result, result, "result")
