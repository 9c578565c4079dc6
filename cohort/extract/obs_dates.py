"""A result's date: the Observation element that dates it, and the instant that orders a day."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from typing import Any

from cohort.extract.elements import DayRange, parse_days

__all__ = ["instant_of", "obs_date", "obs_days", "obs_when", "timing_date"]


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
    # effective[x] in R4's order (dateTime, Period, Timing, instant; valid FHIR has one), then
    # `issued`, the time the result was made available
    timing = res.get("effectiveTiming")
    at = timing_date(timing) if timing is not None else None
    for value in (start, end, at, res.get("effectiveInstant"), res.get("issued")):
        days = parse_days(value)
        if days is not None:  # (parse_days read a date: `value` is a str)
            return (value if len(value) > 10 else ""), days
    return "", None


def obs_days(res: dict[str, Any]) -> DayRange | None:
    """A result's date, with a partial date's last day (`parse_days`)."""
    return obs_when(res)[1]


def timing_date(timing: Any) -> Any:
    """The element that dates a Timing (effectiveTiming), None when none: its earliest `event`
    that reads as a date, else `repeat.boundsPeriod` read as effectivePeriod is (its start, its
    end when it has no start). `lines._Timing.date` reads the same from a line's bytes."""
    # The earliest, not the first listed: R4 gives the events no order, and the result was
    # observed when its first event took place (as a Period's start dates it). On one day the
    # earliest time where both have one (it orders the day's results), else the first listed.
    if not isinstance(timing, dict):
        return None
    best: str | None = None
    first: date | None = None
    events = timing.get("event")
    for value in events if isinstance(events, list) else ():
        days = parse_days(value)
        if days is not None and (
            first is None or days[0] < first or (days[0] == first and _sooner(value, best))
        ):
            best, first = value, days[0]
    if best is not None:
        return best
    repeat = timing.get("repeat")
    bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
    if not isinstance(bounds, dict):
        return None
    start = bounds.get("start")
    return start if start is not None else bounds.get("end")


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
    leap = stamp[16:19] == ":60"
    try:
        at = datetime.fromisoformat(
            (stamp[:17] + "59" + stamp[19:] if leap else stamp).replace("Z", "+00:00")
        )
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() + leap
