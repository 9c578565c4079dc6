"""The strength a Medication's ingredients or a product's name give a corticosteroid
(`washout_high_dose_cs`): the drug's, never another drug's (docs/rules.md)."""

from __future__ import annotations

import re
from bisect import bisect
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from cohort.criteria.base import Context, TerminologyLike
from cohort.model import Ingredient, Quantity

# a dose, or a strength's denominator, in tablets, capsules or units (`1`) of a solid form
_SOLID_FORMS = frozenset(("tbl", "tab", "tablet", "cap", "capsule"))
# plurals made by an `s`; not "tbls", the pharmacy abbreviation for tablespoons
_PLURAL_FORMS = _SOLID_FORMS - {"tbl"}
# words of a product's form that is no single tablet or capsule (RxNorm's dose forms, SNOMED's
# and an EHR's form texts): beside a tablet word, a pack of tablets, a kit, or a form that
# contradicts it; a dose with no unit of such a product is not read as tablets
_OTHER_FORMS = frozenset(
    ("pack", "kit", "solution", "suspension", "syrup", "elixir", "liquid", "drops", "drop",
     "injection", "injectable", "injector", "syringe", "cartridge", "vial", "infusion", "cream",
     "ointment", "gel", "lotion", "foam", "paste", "powder", "granules", "spray", "inhaler",
     "inhalant", "inhalation", "aerosol", "enema", "suppository", "patch", "concentrate",
     "emulsion", "solutions", "suspensions", "injections", "packs", "kits")
)  # fmt: skip
_WORD = re.compile(r"[a-z]+")

# "20 MG", not a concentration or rate ("10 MG/ML", "15 mg / 5 mL", "0.001 MG/MG", "5 MG/HR"):
# a slash after it starts a combination's next ingredient only when no unit follows it
_STRENGTH = re.compile(
    r"(\d+(?:\.\d+)?)\s*MG\b"
    r"(?!\s*/\s*(?:\d+(?:\.\d+)?\s*)?(?:ML|L|MG|G|MCG|UG|KG|M2|ACTUAT|HR|H|D|DAY)\b)",
    re.I,
)
# RxNorm's separator of a combination's ingredients and of a kit's or pack's parts
_PART = re.compile(r"\s/\s")


def is_unit_form(unit: str) -> bool:
    """A unit counting tablets or capsules: `1`, or a tablet or capsule word in any case, in the
    singular or plural, bare or as a UCUM annotation (`{tab}`, `{caps}`, `tablets`, `Tablet(s)`)."""
    u = unit.strip().lower()
    if u == "1":
        return True
    if u[:1] == "{" and u[-1:] == "}":
        u = u[1:-1].strip()
    u = u.removesuffix("(s)")
    return u in _SOLID_FORMS or (u[-1:] == "s" and u[:-1] in _PLURAL_FORMS)


def solid_form(texts: Iterable[str]) -> str | None:
    """The product's form, `tablet` or `capsule`, when its names and form texts (`texts`) name
    that form and no other (a pack, a solution beside it): a unit of it is one tablet or
    capsule (a dose with no unit counts them, criteria.dose); None when they name none, or
    another too."""
    words = {w for t in texts for w in _WORD.findall(t.lower())}
    solid = {w for w in words if is_unit_form(w)}
    if not solid or words & _OTHER_FORMS:
        return None
    return "tablet" if solid - {"cap", "caps", "capsule", "capsules"} else "capsule"


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


class Strength(NamedTuple):
    """mg of the drug per tablet (capsule, unit of a solid form) or, `per_ml`, per mL."""

    mg: float
    per_ml: bool = False


def product_strength(ctx: Context, ingredients: Sequence[Ingredient], drug: str) -> Strength | None:
    """The strength of `drug` its Medication's ingredients give; None when they give none,
    one that is not read (per gram, per actuation, no mass), or several that differ (the drug
    listed twice, per tablet and per mL)."""
    found = set()
    for ing in drug_ingredients(ctx, ingredients, drug):
        if ing.numerator is None:
            continue  # no strength given: says nothing of one
        strength = _strength(ctx.term, ing.numerator, ing.denominator)
        if strength is None:
            return None
        found.add(strength)
    return found.pop() if len(found) == 1 else None


def _strength(term: TerminologyLike, num: Quantity, den: Quantity | None) -> Strength | None:
    """A Ratio read as mg per tablet (a denominator in tablets, capsules, `1`, or none: "per
    unit of the medication") or per mL (a denominator in any volume unit: 15 mg / 5 mL)."""
    mg = in_mg(term, num)
    if mg is None or not mg > 0:
        return None  # not a mass (units, mmol ...), or none: no strength in mg
    if den is None:
        return Strength(mg)
    if not den.value > 0:
        return None
    den = term.ucum_only(den)
    den_unit = (den.code or den.unit).strip()
    if not den_unit or is_unit_form(den_unit):
        return Strength(mg / den.value)
    ml = term.convert_to(den, "mL")
    return Strength(mg / ml, per_ml=True) if ml is not None and ml > 0 else None


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


def name_strength(name: str, drug: str) -> float | None:
    """The mg per tablet a product name gives `drug` ("prednisone 20 MG Oral Tablet"); of a
    combination or kit ("A 5 MG / B 20 MG Oral Tablet"), the strength in the part naming it;
    None when it names none, or several that differ (a pack of two strengths)."""
    seps = [m.start() for m in _PART.finditer(name)]
    # (the drug's word is looked for only in a name of several parts: most names have one)
    word = re.compile(rf"\b{re.escape(drug)}\b", re.I) if seps else None
    found = set()
    for m in _STRENGTH.finditer(name):
        if seps:  # the part it is in: from the separator before it to the one after
            i = bisect(seps, m.start())
            part = name[seps[i - 1] if i else 0 : seps[i] if i < len(seps) else len(name)]
            if word is not None and not word.search(part):
                continue  # another ingredient's strength
        found.add(float(m[1]))
    return found.pop() if len(found) == 1 else None
