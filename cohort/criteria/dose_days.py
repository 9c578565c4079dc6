"""MedicationAdministrations of one corticosteroid on one day, read as that day's dose together."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING

from cohort.criteria.base import Context
from cohort.model import Dose, ExposureFact, Quantity

if TYPE_CHECKING:  # (criteria.dose imports this module)
    from cohort.criteria.dose import Daily

__all__ = ["same_day"]

_UCUM = "http://unitsofmeasure.org"


def same_day(
    ctx: Context,
    exposures: Iterable[ExposureFact],
    daily: Callable[[Context, ExposureFact], Daily | None],
) -> list[ExposureFact]:
    """`exposures` with each systemic MedicationAdministration of one whole day whose dose
    `daily(ctx, e)` reads (a `criteria.dose.Daily`) given, as its dosage, the doses of every
    such administration of its drug that day, concurrent: each is one administration, so a
    day's add up (dexamethasone 4 mg every 6 hours, one record each, is 16 mg that day, not
    4). Each record stays (its evidence row) with that day's total; others are as they are."""
    out = list(exposures)
    days: dict[tuple[str, date], list[int]] = {}
    lines: dict[int, tuple[Dose, ...]] = {}
    for i, e in enumerate(out):
        if not _one_day(e) or not ctx.systemic(e):
            continue
        d = daily(ctx, e)
        if d is None or e.start is None:
            continue
        lines[i] = _as_mg(d)
        days.setdefault((d.drug, e.start), []).append(i)
    for group in days.values():
        if len(group) > 1:
            doses = tuple(line for i in group for line in lines[i])
            for i in group:
                out[i] = replace(out[i], doses=doses)
    return out


def _one_day(e: ExposureFact) -> bool:
    """An administration on one known day (not a partial date, not an infusion over days)."""
    return (
        e.ref.startswith("MedicationAdministration/")
        and e.start is not None
        and e.start == e.end
        and e.start_last is None
        and e.end_last is None
        and not e.ongoing
    )


def _as_mg(d: Daily) -> tuple[Dose, ...]:
    """A read daily dose as concurrent dosage lines in mg of its drug (its range, and a line
    not read beside it, kept: the day's total is then a range, or only its least)."""
    top = _mg(d.mg_max) if d.mg_max is not None else None
    out = [Dose(_mg(d.mg), sequence=0, quantity_max=top)]
    if d.unsure:
        out.append(Dose(None, sequence=0, unread=True))
    return tuple(out)


def _mg(value: float) -> Quantity:
    return Quantity(value, "mg", "mg", "", _UCUM)
