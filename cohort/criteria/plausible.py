"""A result whose number converts to its concept's unit but lies outside the plausible range
(units.csv) is said so, value, unit and range, wherever a result that is no value is named (a
reason, an evidence note, `missing`): "not convertible" only of one that does not convert (QA:
a platelet count of 32500 10*3/uL, already in the unit, was "unit or value cannot be
converted")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohort.criteria.bounds import readable, sign, to_unit
from cohort.model import NoValue

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cohort.criteria.base import Context
    from cohort.model import ObservationFact

__all__ = [
    "NOT_CONVERTIBLE",
    "OUTSIDE",
    "as_recorded",
    "combined",
    "implausible",
    "kind_of",
    "unconverted_note",
]

NOT_CONVERTIBLE = "unit or value cannot be converted"  # (an evidence note)
OUTSIDE = "outside the plausible range"


def implausible(ctx: Context, o: ObservationFact, concept: str) -> str:
    """ "32500 x10^3/uL outside the plausible range 0-5000 x10^3/uL (check the result)" (the
    number as recorded after it when converted: "900 x10^3/uL (recorded 900000 /uL) ..."), or
    "" when `o` is no number that converts to `concept`'s unit outside its range."""
    q = o.value.quantity
    far = ctx.term.outside(q, concept) if q is not None and (q.unit or q.code) else None
    if q is None or far is None:
        return ""
    value, low, high = far
    unit = ctx.term.canonical_unit(concept) or ""
    number = f"{sign(o)}{_number(value)}"
    said = f"{number} {to_unit(unit)}"
    raw_unit = q.unit or q.code
    if value != q.value or not (unit == q.code or to_unit(raw_unit) == to_unit(unit)):
        said += f" (recorded {q.comparator.strip()}{_number(q.value)} {raw_unit})"
    if low is not None and high is not None:
        span = f"{_number(low)}-{_number(high)}"
    else:
        span = f">= {_number(low)}" if low is not None else f"<= {_number(high or 0)}"
    return f"{said} {OUTSIDE} {span} {to_unit(unit)} (check the result)"


def _number(x: float) -> str:
    """`x` as a reason shows it (`readable`: 32500, not 3.25e+04), but a number past any
    plausible range's digits as Python writes it (1e+308, not 309 digits)."""
    return readable(x) if abs(x) < 1e15 else f"{x:g}"


def as_recorded(value: str, unit: str) -> str:
    """A result that is no value in its concept's unit, as a reason quotes it: "value/unit
    '240 cells/hpf'", or "value '20' (no unit)" (was "'20 '")."""
    return f"value/unit '{value} {unit}'" if unit else f"value '{value}' (no unit)"


def unconverted_note(ctx: Context, o: ObservationFact, concept: str) -> str:
    """The evidence note of a result no value in `concept`'s unit: why."""
    return implausible(ctx, o, concept) or NOT_CONVERTIBLE


def kind_of(far: str) -> NoValue:
    """The kind of a result that is no value in its concept's unit (`Result.no_value`), `far`
    what `implausible` says of it ("": its value/unit does not convert)."""
    return NoValue.IMPLAUSIBLE if far else NoValue.UNCONVERTIBLE


def combined(kinds: Iterable[NoValue]) -> NoValue:
    """The kind of the results an unknown rests on, each of `kinds`: IMPLAUSIBLE only when each
    is (`missing` then asks for a plausible value, not the lab's unit), NONE when one is a
    value or there are none."""
    found = set(kinds)
    if not found or NoValue.NONE in found:
        return NoValue.NONE
    return NoValue.IMPLAUSIBLE if found == {NoValue.IMPLAUSIBLE} else NoValue.UNCONVERTIBLE
