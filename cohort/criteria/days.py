"""Possibly partial dates of records as (first day, last day): shown as recorded, a condition's."""

from __future__ import annotations

import calendar
from datetime import date

from cohort.model import ConditionFact

__all__ = ["condition_days", "condition_shown", "latest", "onset_bounded", "partly", "shown"]


# A date from a record may be partial (YYYY or YYYY-MM): facts keep its first day and, apart,
# its last (`*_last`, None for a full date). A criterion decides on such a date only when every
# day it can stand for gives the same outcome (as `age` does for a birth date), else unknown.
def latest(first: date | None, last: date | None) -> date | None:
    """The last day a possibly partial date can stand for (`last` is None for a full date)."""
    return first if last is None else last


_FIRST_DAY = date.min
# full dates as shown, remembered: isoformat() costs ~3x a lookup, and every result, condition
# and exposure a criterion reads is shown (evidence, reasons) by the same few thousand days
_ISO: dict[date, str] = {}


def shown(first: date | None, last: date | None) -> str:
    """A possibly partial date as recorded: 2026, 2026-09 or 2026-09-14 (not an invented day)."""
    if first is None:
        return ""
    if last is None and first != _FIRST_DAY:  # (a full date: nearly every one shown)
        text = _ISO.get(first)
        if text is None:
            text = first.isoformat()
            if len(_ISO) < 100_000:
                _ISO[first] = text
        return text
    if first == date.min or last == date.max:  # open-ended, as ISO 8601-2 writes it
        start = ".." if first == date.min else first.isoformat()
        end = ".." if last is None or last == date.max else last.isoformat()
        return f"{start}/{end}"
    if last is None or last == first:
        return first.isoformat()
    if (first.month, first.day, last.month, last.day) == (1, 1, 12, 31) and first.year == last.year:
        return f"{first.year:04d}"
    month_end = calendar.monthrange(last.year, last.month)[1]
    if first.day == 1 and last.day == month_end and first.replace(day=1) == last.replace(day=1):
        return first.isoformat()[:7]
    return f"{first.isoformat()}/{last.isoformat()}"


def partly(first: date | None, last: date | None) -> bool:
    """Whether a date is partial (it can stand for more than one day)."""
    return first is not None and last is not None and last != first


def condition_days(c: ConditionFact) -> tuple[date | None, date | None]:
    """A condition's date to decide on, onset else recordedDate: (first day, last day it can
    stand for). An onset is no later than its record: its last day is at most the recordedDate's
    (its last day when partial), unless that is before the onset's first (docs/rules.md)."""
    if c.onset is not None:
        last = latest(c.onset, c.onset_last)
        bound = latest(c.recorded, c.recorded_last)
        if bound is not None and last is not None and c.onset <= bound < last:
            return c.onset, bound
        return c.onset, last
    if c.onset_undated:
        return None, None  # an onset it cannot date: not the recordedDate's days
    return c.recorded, latest(c.recorded, c.recorded_last)


def onset_bounded(c: ConditionFact) -> bool:
    """Whether the recordedDate narrows the onset's days (`condition_days`)."""
    return c.onset is not None and condition_days(c)[1] != latest(c.onset, c.onset_last)


def condition_shown(c: ConditionFact) -> str:
    """A condition's date as recorded (onset, else recordedDate), for evidence and reasons."""
    if c.onset is not None:
        return shown(c.onset, c.onset_last)
    return shown(c.recorded, c.recorded_last)
