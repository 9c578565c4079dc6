"""A result reported with a comparator (valueQuantity.comparator: "<30", ">=1000") against a limit.

"<30" is some value below 30: it is below a limit of 25 only when every such value is, not
below it when none is, else the data cannot tell (None), as the `titer` kind reads "<1:80".
Unit conversions are positive factors, so a comparator keeps its sense in the canonical unit.
"""

from __future__ import annotations

from cohort.model import ObservationFact, Status

_COMPARATORS = {"": "", "=": "", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_BELOW_FAILS = {True: Status.FAIL, False: Status.PASS, None: Status.UNKNOWN}


def comparator(sign: str) -> str | None:
    """The comparator as "", "<", "<=", ">" or ">="; None when it is none of them."""
    return _COMPARATORS.get(sign.strip())


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
