"""A result reported with a comparator (valueQuantity.comparator: "<30", ">=1000") against a limit.

"<30" is some value below 30: it is below a limit of 25 only when every such value is, not
below it when none is, else the data cannot tell (None), as the `titer` kind reads "<1:80".
Unit conversions are positive factors, so a comparator keeps its sense in the canonical unit.
"""

from __future__ import annotations

import functools
import math

from cohort.model import ObservationFact, Status
from cohort.terminology.units import readable_unit

_COMPARATORS = {"": "", "=": "", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_BELOW_FAILS = {True: Status.FAIL, False: Status.PASS, None: Status.UNKNOWN}
# a comparator as a reason says it before a value ("below 20 x10^3/uL", not "<20 ... < 25")
_IN_WORDS = {"<": "below", "<=": "at most", ">": "above", ">=": "at least"}


def comparator(sign: str) -> str | None:
    """The comparator as "", "<", "<=", ">" or ">="; None when it is none of them."""
    return _COMPARATORS.get(sign.strip())


def amount(value: str, unit: str) -> str:
    """A value with its unit as a reason shows it (`readable_unit`): "20 x10^3/uL"; a UCUM
    annotation alone (`{score}`) or `1` stands for the unit 1, nothing a reader needs, so no
    unit is shown ("SLEDAI-2K 4 < 6")."""
    shown = readable_unit(unit)
    return f"{value} {shown}" if shown else value


def versus(sign: str, value: str, verdict: str, limit: str, limit_name: str = "limit") -> str:
    """A result against a limit as a reason says it: `value verdict limit` ("20 x10^3/uL < 25");
    a value reported with a comparator in words, the limit beside it ("below 20 x10^3/uL
    (limit 25)"): "<20 x10^3/uL < 25", "<1:40 < 1:80" read as a slip. `value` is without the
    comparator, with its unit."""
    words = _IN_WORDS.get(comparator(sign) or "")
    if words is None:
        return f"{value} {verdict} {limit}"
    return f"{words} {value} ({limit_name} {limit})"


def to_unit(unit: str) -> str:
    """The unit a value could not be converted to, as a reason names it: `readable_unit`, and
    an annotation as written (a value is "not convertible to {titer}", not to nothing)."""
    return readable_unit(unit) or unit


def sign(o: ObservationFact) -> str:
    """The result's comparator as reported ("<", ">=", ...; "" for none)."""
    return o.value.quantity.comparator.strip() if o.value.quantity else ""


def below(value: float, sign: str, limit: float) -> bool | None:
    """Whether a result `sign value` is below `limit`: True, False, or None (cannot tell)."""
    cmp = comparator(sign)
    if cmp is None:
        return None
    if cmp == "":
        return value < limit
    if cmp == "<":  # below value <= limit
        return True if value <= limit else None
    if cmp == "<=":
        return True if value < limit else None
    return False if value >= limit else None  # ">" / ">=": at least value >= limit


def fails_below(value: float, sign: str, limit: float) -> Status:
    """A lower limit's verdict on a result `sign value`: fail below it, pass at or above it,
    unknown when the comparator leaves both possible (a titer, a count since the last dose)."""
    return _BELOW_FAILS[below(value, sign, limit)]


def above(value: float, sign: str, limit: float) -> bool | None:
    """Whether a result `sign value` is above `limit`: True, False, or None (cannot tell)."""
    cmp = comparator(sign)
    if cmp is None:
        return None
    if cmp == "":
        return value > limit
    if cmp == ">":  # above value >= limit
        return True if value >= limit else None
    if cmp == ">=":
        return True if value > limit else None
    return False if value <= limit else None  # "<" / "<=": at most value <= limit


# significant digits of a number in a reason: enough to read a lab value by (7.73 g/dL), few
# enough that a converted one (4.8 mmol/L = 7.73445 g/dL) does not look measured to 6 digits
READABLE_DIGITS = 3


@functools.lru_cache(maxsize=4096)  # (lab_latest says a number for every patient it reads)
def readable(value: float, *limits: float) -> str:
    """`value` as a reason shows it: READABLE_DIGITS significant digits, but a whole number's
    digits all kept (248123, not 2.48e+05), without trailing zeros; more digits where fewer
    would put it on another side of one of `limits` than `value`, or onto one it is not on
    (7.996 against 8 is "7.996", never "8 < 8"; 2.004 never "2 > 2"). Reasons are read by
    people; evidence.csv keeps the number as read (criteria.recorded)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    whole = math.floor(math.log10(abs(value))) + 1  # digits before the point (< 1 for 0.0x)
    sides = [_side(value, limit) for limit in limits]
    for digits in range(READABLE_DIGITS, 18):
        text = f"{value:.{max(0, digits - whole)}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        shown = float(text)
        if all(_side(shown, limit) == s for limit, s in zip(limits, sides, strict=True)):
            return text
    return repr(value)  # (17 significant digits give any float back: not reached)


def _side(value: float, limit: float) -> int:
    return (value > limit) - (value < limit)
