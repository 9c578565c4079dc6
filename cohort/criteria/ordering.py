"""The order of results (newest first, by day and within a day by the time of day) and of a
criterion's evidence rows."""

from __future__ import annotations

import functools
import re
from datetime import date
from itertools import pairwise

from cohort.extract.obs_dates import instant_of
from cohort.model import Evidence, ObservationFact, Result

__all__ = ["Tie", "evidence_day", "in_order", "newest_first"]

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


# the first date an evidence row's date shows: 2026-05-03, 2026-05 or 2026 (criteria.days.shown),
# alone or starting an interval ("2025-01..ongoing", "2020-01-01/2020-03-01"), or ending one
# with no start ("..2020-12-31", "../2020-12-31")
_SHOWN = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


@functools.lru_cache(maxsize=4096)  # (a chart shows the same few hundred days many times)
def evidence_day(shown: str) -> date | None:
    """The day an evidence row is ordered by: the first date its `date` shows, a partial one
    by its first day (docs/rules.md: "ordering the evidence"); None when it shows none."""
    m = _SHOWN.search(shown)
    if m is None:
        return None
    try:
        return date(int(m[1]), int(m[2] or 1), int(m[3] or 1))
    except ValueError:
        return None


def _newest_first(e: Evidence) -> tuple[bool, int]:
    day = evidence_day(e.date)
    return (True, 0) if day is None else (False, -day.toordinal())


def in_order(r: Result) -> Result:
    """`r` with its ignored rows newest first, undated last, rows of one day as they came (a
    stable sort); the used rows stay in the criterion's order, which says something (the most
    recent result first). evidence.csv, `cohort explain` and every other reader of a result
    list its rows in this order (README: evidence.csv)."""
    if len(r.ignored) < 2:
        return r  # (nearly every result)
    ordered = sorted(r.ignored, key=_newest_first)
    if all(a is b for a, b in zip(ordered, r.ignored, strict=True)):
        return r
    return r.with_rows(r.evidence, tuple(ordered))
