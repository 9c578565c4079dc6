"""The strength a Medication's ingredients give a corticosteroid (`washout_high_dose_cs`):
that of the ingredient the mappings read as the drug, never another drug's (docs/rules.md)."""

from __future__ import annotations

from collections.abc import Sequence

from cohort.criteria.base import Context, TerminologyLike
from cohort.model import Ingredient, Quantity


def drug_ingredients(
    ctx: Context, ingredients: Sequence[Ingredient], drug: str
) -> list[Ingredient]:
    """The ingredients that are `drug`: those whose codes or name the mappings read as it;
    else the Medication's only active ingredient, when no mapping reads it as another drug;
    else none (several ingredients, none of them known: which is the drug cannot be told)."""
    active = [i for i in ingredients if i.active is not False]  # not an excipient
    mine, unnamed = [], []
    for ing in active:
        named = ctx.term.medication_ingredients(ing.codes, ing.text)
        if drug in named:
            mine.append(ing)
        elif not named:
            unnamed.append(ing)
    if mine:
        return mine
    return unnamed if len(active) == 1 else []


def tablet_strength(ctx: Context, ingredients: Sequence[Ingredient], drug: str) -> float | None:
    """mg of `drug` per tablet its Medication's ingredients give; None when they give none,
    or several that differ (the drug listed twice)."""
    found = set()
    for ing in drug_ingredients(ctx, ingredients, drug):
        num = ing.numerator
        if num is None:
            continue  # no strength given: says nothing of one
        mg = in_mg(ctx.term, num)
        if mg is None:
            return None  # not a mass (units, mmol ...): no strength in mg
        found.add(mg)
    return found.pop() if len(found) == 1 else None


def in_mg(term: TerminologyLike, q: Quantity) -> float | None:
    """`q` in mg, a dose's or a strength's: its UCUM code (under the UCUM system or none), else
    its unit text; `mg` and `g` in any case ("MG"), any other mass unit through UCUM and
    unit_aliases.csv (`ug`, `mcg`, `µg`, `kg` ...); None when it is no mass."""
    q = term.ucum_only(q)
    unit = (q.code or q.unit).strip().lower()
    if unit == "mg":
        return q.value
    if unit == "g":
        return q.value * 1000
    return term.convert_to(q, "mg")
