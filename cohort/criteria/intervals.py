"""Records as intervals of possibly partial dates, and look-back windows over them (pure)."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple, TypeVar

from cohort.criteria.base import Context, Span, latest, shown
from cohort.criteria.days import partly
from cohort.model import Evidence, ExposureFact, ProcedureFact
from cohort.safetext import clipped

T = TypeVar("T")
__all__ = [
    "Dated",
    "clear_from",
    "dates_said",
    "exposure_dated",
    "exposure_evidence",
    "in_window",
    "last_said",
    "procedure_dated",
    "sets_date",
]


class Dated(NamedTuple):
    """An exposure, procedure or immunization as an interval of possibly partial dates:
    each first day with the last day it can stand for (the same day for a full date)."""

    start: date | None
    start_last: date | None
    end: date | None
    end_last: date | None
    ongoing: bool
    ev: Evidence

    @classmethod
    def of(
        cls,
        start: date | None,
        start_last: date | None,
        end: date | None,
        end_last: date | None,
        ongoing: bool,
        ev: Evidence,
    ) -> Dated:
        """From a fact's fields (`*_last` None for a full date). A record with an end but no
        start may have started on any day up to its end: no first day, its end's last day the
        latest (a start after as_of is no record yet, docs/rules.md)."""
        last = latest(end, end_last)
        first_last = latest(start, start_last) if start is not None else last
        return cls(start, first_last, end, last, ongoing, ev)

    def doubt(self) -> str:
        """What leaves it maybe in a window or current: no start date, or a partial date."""
        return "no start date" if self.start is None else "partial date"

    def partial(self) -> str:
        """Its partial date(s) as recorded, for a reason ("" when every date is full), or that
        it has no start date."""
        start, end = (self.start, self.start_last), (self.end, self.end_last)
        if self.start is None:
            return "without a start date" + (
                f" (end recorded only as {shown(*end)})" if partly(*end) else ""
            )
        if start == end or not partly(*end):
            if not partly(*start):
                return ""
            which = "" if start == end else "start "
            return f"{which}recorded only as {shown(*start)}"
        if not partly(*start):
            return f"end recorded only as {shown(*end)}"
        return f"start and end recorded only as {shown(*start)} and {shown(*end)}"


def dates_said(it: Dated) -> str:
    """A record's dates as a reason gives them after its name, as recorded: " from 2024-09-16
    to 2025-07-13", " on 2024-09-16" (one day), " from 2024-09-16, ongoing", " until
    2025-07-13" (no start), ", no date recorded"."""
    start, end = shown(it.start, it.start_last), shown(it.end, it.end_last)
    if it.start is None:
        return f" until {end}" if it.end is not None else ", no date recorded"
    if it.ongoing or it.end is None:
        return f" from {start}" + (", ongoing" if it.ongoing else "")
    return f" on {start}" if start == end else f" from {start} to {end}"


def last_said(it: Dated) -> str:
    """When a record in a washout's window was last given, as recorded: "on 2026-07-08" (one
    day), "last 2026-10-14" (its end), "since 2025-10-21" (ongoing, or no end)."""
    end = shown(it.end, it.end_last)
    if it.ongoing or it.end is None:
        return f"since {shown(it.start, it.start_last)}" if it.start is not None else "ongoing"
    one_day = it.start is not None and shown(it.start, it.start_last) == end
    return f"on {end}" if one_day else f"last {end}"


def exposure_dated(e: ExposureFact, concept: str, note: str, value: str = "") -> Dated:
    start = shown(e.start, e.start_last)
    end = "ongoing" if e.ongoing else shown(e.end, e.end_last)
    # one "on or before" day as start and end (a statement dated by its dateAsserted alone) is
    # shown once: `../2019-03-01`, not `../2019-03-01..../2019-03-01` (a full or partial one
    # day keeps `2019-03-01..2019-03-01`)
    when = start if start == end and e.start == date.min else f"{start}..{end}"
    ev = Evidence(ref=e.ref, concept=concept, value=value or clipped(e.text), date=when, note=note)
    return Dated.of(e.start, e.start_last, e.end, e.end_last, e.ongoing, ev)


def procedure_dated(pr: ProcedureFact, concept: str, note: str = "") -> Dated:
    """A Procedure as an interval, its evidence dated by its start (`..ongoing` while open)."""
    when = shown(pr.start, pr.start_last) + ("..ongoing" if pr.ongoing else "")
    ev = Evidence(ref=pr.ref, concept=concept, value=clipped(pr.text), date=when, note=note)
    return Dated.of(pr.start, pr.start_last, pr.end, pr.end_last, pr.ongoing, ev)


def exposure_evidence(e: ExposureFact, concept: str, note: str, value: str = "") -> Evidence:
    return exposure_dated(e, concept, note, value).ev


def _overlaps(ctx: Context, start: date | None, end: date | None, ongoing: bool, lo: date) -> bool:
    """Exposure interval overlaps (as_of - window, as_of]; see docs/rules.md for the boundary."""
    if start is None and end is None:
        return False
    if start is not None and start > ctx.as_of:
        return False
    return ongoing or (end is not None and end > lo)


def in_window(ctx: Context, it: Dated, lo: date) -> bool | None:
    """Whether the interval is in the window on every day its partial dates can stand for
    (True), on none (False), or on some only (None: the data cannot tell)."""
    # in the window the latest it may start and the earliest it may end: on every day
    if _overlaps(ctx, it.start_last, it.end, it.ongoing, lo):
        return True
    # not even the earliest start and the latest end: on none
    return None if _overlaps(ctx, it.start, it.end_last, it.ongoing, lo) else False


def clear_from(ends: list[date | None], span: Span) -> date | None:
    """Known ends of every exposure in window: the last one plus the window; else None (also
    past the calendar's end: an exposure "ending" 9999-12-31 has no date it washes out)."""
    known = [e for e in ends if e is not None]
    if not known or len(known) != len(ends):
        return None
    try:
        return span.after(max(known))
    except OverflowError:
        return None


def sets_date(ends: list[date | None], records: list[tuple[T, str]]) -> tuple[T, str]:
    """What a time-limited fail's reason names for its date (`clear_from` of `ends`): of the
    records in the window (doubt ""), the first with no known end, else the first ending last;
    with the doubt of a record only maybe in it (what it is and why) that ends later still."""

    def last(ix: list[int]) -> int:
        open_ended = [i for i in ix if ends[i] is None]
        return open_ended[0] if open_ended else max(ix, key=lambda i: ends[i] or date.min)

    top = last(list(range(len(ends))))
    sure = last([i for i, (_, doubt) in enumerate(records) if not doubt])
    return records[sure][0], records[top][1] if ends[top] != ends[sure] else ""
