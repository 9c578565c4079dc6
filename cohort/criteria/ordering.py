"""The order of results: newest first, by day and within a day by the time of day."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

from cohort.extract.elements import instant_of
from cohort.model import ObservationFact

__all__ = ["Tie", "newest_first"]

Tie = tuple[ObservationFact, ...]  # results that nothing orders: one day, no time or one instant


def newest_first(results: list[ObservationFact], prefer: frozenset[int] = frozenset()) -> list[Tie]:
    """Sort dated results newest first: by day, and within a day by the instant of its time,
    the later first (zones compared; a date without a time after the day's timed ones). Return
    the runs of results that neither orders (one day without a time, or one instant): those
    are put in id order, the ones in `prefer` (their `id()`s) first (criteria.ties tries each
    of them as the newest).

    The times are read only when two results share a day: reading every result's time was a
    parse per Observation kept, for an order that the days alone give nearly always."""
    results.sort(key=_by_day, reverse=True)
    if not any(a.when == b.when for a, b in pairwise(results)):
        return []
    moments = {id(o): _moment(o) for o in results}
    results.sort(key=lambda o: (*moments[id(o)], id(o) in prefer, o.ref), reverse=True)
    ties: list[Tie] = []
    run = [results[0]]
    for a, b in pairwise(results):
        if moments[id(a)] == moments[id(b)]:
            run.append(b)
            continue
        if len(run) > 1:
            ties.append(tuple(run))
        run = [b]
    if len(run) > 1:
        ties.append(tuple(run))
    return ties


def _by_day(o: ObservationFact) -> tuple[date | None, str]:
    return o.when, o.ref


def _moment(o: ObservationFact) -> tuple[date | None, bool, float]:
    at = instant_of(o.stamp) if o.stamp else None
    return o.when, at is not None, at or 0.0
