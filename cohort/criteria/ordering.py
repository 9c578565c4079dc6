"""The order of results: newest first, by day and within a day by the time of day."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

from cohort.extract.elements import instant_of
from cohort.model import ObservationFact

__all__ = ["newest_first"]


def newest_first(results: list[ObservationFact]) -> None:
    """Sort dated results newest first: by day, and within a day by the instant of its time,
    the later first (zones compared; a date without a time after the day's timed ones).

    The times are read only when two results share a day: reading every result's time was a
    parse per Observation kept, for an order that the days alone give nearly always."""
    results.sort(key=_by_day, reverse=True)
    if any(a.when == b.when for a, b in pairwise(results)):
        results.sort(key=_by_day_and_time, reverse=True)


def _by_day(o: ObservationFact) -> tuple[date | None, str]:
    return o.when, o.ref


def _by_day_and_time(o: ObservationFact) -> tuple[date | None, bool, float, str]:
    at = instant_of(o.stamp) if o.stamp else None
    return o.when, at is not None, at or 0.0, o.ref
