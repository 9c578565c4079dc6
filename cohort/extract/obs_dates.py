"""A result's date: the Observation element that dates it, and the instant that orders a day."""

from __future__ import annotations

import functools
from datetime import date
from typing import Any

from cohort.extract.elements import DayRange, parse_days
from cohort.instants import parse_instant

__all__ = ["instant_of", "obs_date", "obs_days", "obs_when", "timing_when"]


def obs_date(res: dict[str, Any]) -> date | None:
    """A result's date (a partial one as its first day)."""
    days = obs_days(res)
    return days[0] if days else None


def obs_when(res: dict[str, Any]) -> tuple[str, DayRange | None]:
    """A result's date element as recorded when it has a time of day ("" when not: a date, or
    no date), and its days (`parse_days`). The text is kept, not read: `instant_of` reads it
    only where two results share a day (see criteria.ordering.newest_first)."""
    value: Any = res.get("effectiveDateTime")
    days = parse_days(value)
    if days is not None:  # (most results: read no further element)
        return (value if len(value) > 10 else ""), days
    period = res.get("effectivePeriod")
    start = end = None
    if isinstance(period, dict):
        start = period.get("start")
        # a Period with no start ("not known", R4) dates the result by its end: it was made
        # by then, and a window its end is in overlaps it (SPEC §3)
        end = period.get("end") if start is None else None
    for value in (start, end):
        days = parse_days(value)
        if days is not None:  # (parse_days read a date: `value` is a str)
            return (value if len(value) > 10 else ""), days
    # effective[x] in R4's order (dateTime, Period, Timing, instant; valid FHIR has one), then
    # `issued`, the time the result was made available
    timing = res.get("effectiveTiming")
    if timing is not None:
        dated = timing_when(timing)
        if dated is not None:
            return dated
    for value in (res.get("effectiveInstant"), res.get("issued")):
        days = parse_days(value)
        if days is not None:
            return (value if len(value) > 10 else ""), days
    return "", None


def obs_days(res: dict[str, Any]) -> DayRange | None:
    """A result's date, with a partial date's last day (`parse_days`)."""
    return obs_when(res)[1]


def timing_when(timing: Any) -> tuple[str, DayRange] | None:
    """What dates a Timing (effectiveTiming), as `obs_when` gives it; None when nothing does.

    Its events when it lists any: the days its earliest may be on, from the earliest first day
    to the earliest last day (["2026", "2026-01-10"]: 2026-01-01 to 2026-01-10), and, on one
    day, the event whose time is soonest (the first listed without one) for ordering the day.
    R4 gives the events no order: the result was observed at the first of them, as a Period's
    start dates it. An event that does not read, or a null one (its date not known, beside its
    `_event` extension), leaves the earliest unknown: nothing, as a Period whose start does not
    read. Else its `repeat.boundsPeriod`, read as effectivePeriod
    is (its start; its end when it has no start). `lines._Timing.date` reads the same first
    day from a line's bytes."""
    if not isinstance(timing, dict):
        return None
    events = timing.get("event")
    given = events if isinstance(events, list) and events else []
    if given:
        # an event that does not read, or whose date is not known (a null beside its `_event`
        # extension), may be the earliest: no date
        read = [(v, parse_days(v)) for v in given]
        ranges = [days for _, days in read if days is not None]
        if len(ranges) < len(read):
            return None
        first = min(days[0] for days in ranges)
        last = min(days[1] or days[0] for days in ranges)
        if last != first:
            return "", (first, last)
        best: str | None = None  # (one event is a whole date on `first`: last == first)
        for value, days in read:
            if days == (first, None) and (best is None or _sooner(value, best)):
                best = value
        return (best if best is not None and len(best) > 10 else ""), (first, None)
    repeat = timing.get("repeat")
    bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
    if not isinstance(bounds, dict):
        return None
    start = bounds.get("start")
    value = start if start is not None else bounds.get("end")
    days = parse_days(value)
    if days is None or not isinstance(value, str):
        return None
    return (value if len(value) > 10 else ""), days


def _sooner(stamp: str, than: str | None) -> bool:
    """Whether `stamp`'s time is before `than`'s, both having one."""
    a = instant_of(stamp)
    b = instant_of(than) if than is not None else None
    return a is not None and b is not None and a < b


@functools.lru_cache(maxsize=4096)
def instant_of(stamp: str) -> float | None:
    """The instant (POSIX seconds) of a dateTime with a time of day, else None: it orders
    results of the same day ("most recent"). A time without a zone is read as UTC; a leap
    second (hh:mm:60, valid FHIR, which datetime refuses) as the second after hh:mm:59."""
    if len(stamp) <= 10 or "T" not in stamp:
        return None
    at = parse_instant(stamp)
    return None if at is None else at.timestamp()
