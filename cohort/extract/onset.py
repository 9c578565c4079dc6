"""A Condition's onset[x] and abatement[x] as days (a date, a Period, or an Age or Range from
the birth date)."""

from __future__ import annotations

import calendar
import math
from datetime import date, timedelta
from typing import Any

from cohort.extract.elements import DayRange, parse_days, quantity_of
from cohort.source.checkers import present

__all__ = [
    "TIME_UNITS",
    "UNDATED",
    "abatement_by_age",
    "abatement_days",
    "add_units",
    "birth_days",
    "needs_birth",
    "onset_by_age",
    "onset_days",
]

# An onset the record gives but that cannot be dated (onsetString, an unread date, an Age of no
# known unit): the condition is then not decided on its recordedDate (docs/rules.md).
UNDATED: Any = object()
_AGES = ("onsetAge", "onsetRange")
_ABATED_AGES = ("abatementAge", "abatementRange")
# an Age's unit (UCUM code, or the unit text) -> (months, days) per unit
# units of time (UCUM codes and words) as (months, days) each
TIME_UNITS = {
    "a": (12, 0), "year": (12, 0), "years": (12, 0), "yr": (12, 0),
    "mo": (1, 0), "month": (1, 0), "months": (1, 0),
    "wk": (0, 7), "week": (0, 7), "weeks": (0, 7),
    "d": (0, 1), "day": (0, 1), "days": (0, 1),
}  # fmt: skip
_OPEN_START = date.min  # "on or before its end" (onsetPeriod with only an end, an age "<")
_OPEN_END = date.max  # "on or after" (an age ">", a Range with only a low)


def onset_days(res: dict[str, Any]) -> DayRange | None:
    """Condition.onset[x] read without the birth date: its days (first, last or None when a full
    date); `UNDATED` when given but not datable (also a primitive onset with an extension and
    no value), or an Age or Range (then `onset_by_age`); None when there is no onset.
    AttributeError if onsetPeriod is no object."""
    if "onsetDateTime" in res:
        return parse_days(res["onsetDateTime"]) or UNDATED
    if "onsetPeriod" in res:
        period = res["onsetPeriod"] or {}
        start = parse_days(period.get("start"))
        if start is not None:
            return start
        end = parse_days(period.get("end"))
        return (_OPEN_START, end[1] or end[0]) if end is not None else UNDATED
    if any(k in res for k in (*_AGES, "onsetString")):
        return UNDATED
    # an onset sent as its `_onsetDateTime` / `_onsetString` extension alone (a
    # data-absent-reason: FHIR R4 json.html) is given, with no value: undated, not none
    if present(res, "onsetDateTime") or present(res, "onsetString"):
        return UNDATED
    return None


def needs_birth(res: dict[str, Any]) -> bool:
    """Whether the onset or abatement is an Age or a Range of ages (read once the Patient is)."""
    return any(k in res for k in _AGES) or any(k in res for k in _ABATED_AGES)


def birth_days(text: str) -> tuple[date, date] | None:
    """Earliest and latest possible birth date of a full or partial FHIR date; a birthDate that
    is no FHIR date is read as far as its start spells one (`1990/05/01` as 1990), as every
    date the criteria read is (docs/rules.md "Records that cannot be read")."""
    days = parse_days(text.strip())
    return (days[0], days[1] or days[0]) if days is not None else None


def onset_by_age(res: dict[str, Any], birth: tuple[date, date] | None) -> DayRange | None:
    """The days of an onsetAge / onsetRange of a patient born in `birth` (None: undated, or
    no such onset)."""
    return _by_age(res, birth, *_AGES)


def abatement_by_age(res: dict[str, Any], birth: tuple[date, date] | None) -> DayRange | None:
    """The days of an abatementAge / abatementRange, read as an onset's are: a Range from its
    low's first day to its high's last, so the condition is surely over only once its high is
    past (None: undated, or no such abatement)."""
    return _by_age(res, birth, *_ABATED_AGES)


def _by_age(
    res: dict[str, Any], birth: tuple[date, date] | None, age_key: str, range_key: str
) -> DayRange | None:
    if birth is None or (age_key not in res and range_key not in res):
        return None
    try:
        if age_key in res:
            age = quantity_of(res[age_key])
            days = _age_days(age, birth) if age is not None else None
            if days is None or age is None:
                return None
            if age.comparator in ("<", "<="):
                days = (birth[0], days[1])
            elif age.comparator in (">", ">="):
                days = (days[0], _OPEN_END)
        else:
            rng = res[range_key] if isinstance(res[range_key], dict) else {}
            low, high = quantity_of(rng.get("low")), quantity_of(rng.get("high"))
            lows = _age_days(low, birth) if low is not None else None
            highs = _age_days(high, birth) if high is not None else None
            if (low is not None and lows is None) or (high is not None and highs is None):
                return None
            if lows is None and highs is None:
                return None
            days = (lows[0] if lows else birth[0], highs[1] if highs else _OPEN_END)
    except (OverflowError, ValueError):
        return None
    if days[0] > days[1]:
        return None
    return days[0], days[1] if days[1] != days[0] else None


def _age_days(age: Any, birth: tuple[date, date]) -> tuple[date, date] | None:
    """The days on which a patient born in `birth` is `age` (whole units: 20 a is from the
    20th birthday to the day before the 21st)."""
    unit = TIME_UNITS.get(age.code) or TIME_UNITS.get(age.unit.strip().lower())
    if unit is None or age.value < 0 or not math.isfinite(age.value):
        return None
    n = math.floor(age.value)
    return add_units(birth[0], n, unit), add_units(birth[1], n + 1, unit) - timedelta(days=1)


def add_units(d: date, n: int, unit: tuple[int, int]) -> date:
    """`d` plus `n` units of (months, days); a month end clamps (Jan 31 + 1 month = Feb 28)."""
    months, days = unit
    if not months:
        return d + timedelta(days=n * days)
    y, m = divmod(d.year * 12 + d.month - 1 + n * months, 12)
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


# abatement[x] choices read as "abated, at a time not given" (an Age or Range until the birth
# date dates it, `abatement_by_age`: without one, neither surely active nor surely over)
_UNDATED_ABATEMENTS = ("abatementString", *_ABATED_AGES)


def abatement_days(res: dict[str, Any]) -> tuple[DayRange | None, bool]:
    """A Condition's abatement: its days (abatementDateTime, abatementPeriod.end), and whether
    one is given that has no date to read (abatementString, an Age or Range until the birth
    date dates it, a date that does not read, `_abatementDateTime` / `_abatementString` sent
    alone: FHIR R4 JSON's value not known). AttributeError if abatementPeriod is no object."""
    given = res.get("abatementDateTime")
    days = parse_days(given) or parse_days((res.get("abatementPeriod") or {}).get("end"))
    if days is not None:
        return days, False
    undated = (
        given is not None
        or any(k in res for k in _UNDATED_ABATEMENTS)
        or present(res, "abatementDateTime")
        or present(res, "abatementString")
    )
    return None, undated
