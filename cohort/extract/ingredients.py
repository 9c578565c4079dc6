"""A Medication's ingredients as they arrived: which one a criterion's drug is, and its
strength in mg, are read by the criteria through the terminology (cohort/criteria/strength.py):
extraction has none, and a strength's units (ug, mcg, g, mL ...) are the terminology's."""

from __future__ import annotations

from typing import Any

from cohort.extract.elements import codes_of, quantity_of, text_of
from cohort.model import Ingredient


def ingredients_of(med: dict[str, Any]) -> tuple[Ingredient, ...]:
    """Medication.ingredient, each with its item's codes and name and its strength (a Ratio)."""
    out = []
    for ing in med.get("ingredient") or ():
        if not isinstance(ing, dict):
            continue
        item = ing.get("itemCodeableConcept")
        strength = ing.get("strength")
        strength = strength if isinstance(strength, dict) else {}
        active = ing.get("isActive")
        out.append(
            Ingredient(
                codes=codes_of(item),
                text=text_of(item),
                numerator=quantity_of(strength.get("numerator")),
                denominator=quantity_of(strength.get("denominator")),
                active=active if isinstance(active, bool) else None,
            )
        )
    return tuple(out)
