"""Look-back and exposure windows of the criteria: calendar-month arithmetic and `Span`."""

from __future__ import annotations

import calendar
import functools
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

__all__ = ["Span", "months_before", "window_span", "window_start"]


@functools.lru_cache(maxsize=1024)  # (pure; windows ask it of the same few as-of dates)
def months_before(d: date, months: int) -> date:
    """Calendar months back, clamping the day (2026-08-31 minus 6 months = 2026-02-28)."""
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    m += 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def window_start(as_of: date, params: dict[str, Any], prefix: str = "window") -> date | None:
    """Start of a look-back window given `<prefix>_days|_weeks|_months`; None = unlimited."""
    days, weeks, months = _window_keys(prefix)
    if days in params:
        return _days_before(as_of, int(params[days]))
    if weeks in params:
        return as_of - timedelta(weeks=int(params[weeks]))
    if months in params:
        return months_before(as_of, int(params[months]))
    return None


@functools.lru_cache(maxsize=1024)
def _days_before(as_of: date, days: int) -> date:
    """`as_of` minus `days` days, remembered: every windowed ask of every patient computes one
    of a trial's few windows (a timedelta built each time cost more than the lookup)."""
    return as_of - timedelta(days=days)


@functools.cache
def _window_keys(prefix: str) -> tuple[str, str, str]:
    """The keys built once per prefix: window_start runs for every windowed ask of every patient."""
    return f"{prefix}_days", f"{prefix}_weeks", f"{prefix}_months"


@dataclass(frozen=True)
class Span:
    """An exposure window: a number of days (weeks are 7 days) or of calendar months."""

    days: int = 0
    months: int = 0
    weeks: bool = False  # given as window_weeks: said in weeks (reasons quote the protocol's)

    def before(self, d: date) -> date:
        """The window's start for an as-of date `d` (exposures ending after it fail)."""
        return months_before(d, self.months) if self.months else d - timedelta(days=self.days)

    def after(self, end: date) -> date:
        """The first as-of date whose window starts on or after `end` (its `eligible_from`);
        OverflowError past the calendar's end."""
        if not self.months:
            return end + timedelta(days=self.days)
        y, m = divmod(end.year * 12 + end.month - 1 + self.months, 12)
        if y > date.max.year:
            raise OverflowError("past the calendar's end")
        first = date(y, m + 1, min(end.day, calendar.monthrange(y, m + 1)[1]))
        while self.before(first) < end:  # a clamped month end (Aug 31 + 6 months = Mar 1)
            first += timedelta(days=1)
        return first

    def __str__(self) -> str:
        n, unit = (
            (self.months, "month")
            if self.months
            else (self.days // 7, "week")
            if self.weeks
            else (self.days, "day")
        )
        return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def window_span(params: dict[str, Any]) -> Span:
    """The exposure window of `window_days`, `window_weeks` or `window_months`."""
    if "window_days" in params:
        return _span(int(params["window_days"]), 0)
    if "window_weeks" in params:
        return _span(7 * int(params["window_weeks"]), 0, weeks=True)
    if "window_months" in params:
        return _span(0, int(params["window_months"]))
    raise KeyError("window_days, window_weeks or window_months")


@functools.lru_cache(maxsize=256)
def _span(days: int, months: int, weeks: bool = False) -> Span:
    """One (frozen) Span per window: a washout asks for its window for every patient."""
    return Span(days=days, months=months, weeks=weeks)
