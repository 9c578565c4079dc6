"""Corticosteroid records on the same days (`high_dose`): within the limit each, over it summed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import NamedTuple

from cohort.criteria.intervals import Dated
from cohort.model import Dose, Evidence

__all__ = ["OVERLAP_HINT", "Within", "first_dose", "noted", "overlap", "said"]

# what resolves such an unknown (candidates.csv `missing`): not a dose, both are on file
OVERLAP_HINT = "corticosteroid records overlapping: whether one replaced the other"

_DAY = timedelta(days=1)

# a record (or a taper's step) in the window with a usable dose within the limit: its dates
# (with its evidence row), its drug, the most prednisone-equivalent mg/day it may be, its
# evidence row's index and its dosage lines (when they start: `first_dose`, read only beside
# another record; a plain tuple: one is made for each such record)
Within = tuple[Dated, str, float, int, tuple[Dose, ...]]


class Taken(NamedTuple):
    """A record's days surely in the window (first to last), with what `Within` gives."""

    first: date
    last: date
    drug: str
    most: float
    row: int


class Overlap(NamedTuple):
    """The first day records add up over the limit, those counted that day, their total."""

    day: date
    together: list[Taken]
    total: float


def overlap(within: list[Within], lo: date, as_of: date, limit: float) -> Overlap | None:
    """The first day after `lo` to `as_of` on which records `within` the limit, of different
    drugs or doses, are taken together at more than `limit` mg/day; None when on none."""
    # at most every drug at its largest dose at once (one drug counted once): most charts stop here
    most: dict[str, float] = {}
    for w in within:
        most[w[1]] = max(most.get(w[1], 0.0), w[2])
    if round(sum(most.values()), 1) <= limit:
        return None
    records = [t for w in within if (t := _taken(w, lo, as_of)) is not None]
    # (a day's total is highest on a day a record starts: only records end between them)
    for day in sorted({t.first for t in records}):
        together = _counted([t for t in records if t.first <= day <= t.last])
        total = round(sum(t.most for t in together), 1)  # (each to 0.1: 13.3 + 13.3 + 13.4)
        if total > limit:
            return Overlap(day, together, total)
    return None


def _taken(w: Within, lo: date, as_of: date) -> Taken | None:
    """A record's days in the window on every reading of its partial dates: from the latest day
    it may start to the day before the earliest it may end (as_of when ongoing; its one day for
    a record of one day); None when there are none (or it has no date). Its end day is left
    out: a switch is charted as one record ending the day the other starts, and that day the
    patient took one of them."""
    it, drug, most, row, doses = w
    if it.start_last is None or (it.end is None and not it.ongoing):
        return None
    dosed = first_dose(doses)
    # (the window is after lo: intervals._overlaps)
    first = max(it.start_last, dosed or it.start_last, lo + _DAY)
    if it.ongoing or it.end is None:
        last = as_of
    else:
        last = min(it.end - _DAY if it.end > it.start_last else it.end, as_of)
    return Taken(first, last, drug, most, row) if first <= last else None


def first_dose(doses: Iterable[Dose]) -> date | None:
    """The day a record's (or a step's) dosage lines are first taken on, where each line's own
    boundsPeriod starts after the record's start (`Dose.starts`: an order written ahead of its
    first dose, a taper's later step); None: from the record's start."""
    starts = [d.starts for d in doses if d.quantity is not None or d.unread]
    if not starts or None in starts:
        return None
    return min(s for s in starts if s is not None)


def _counted(on: list[Taken]) -> list[Taken]:
    """The records of one day that add up, by the day they start: of one drug, the record at
    its largest dose only (a renewal, a dose changed by a new order while the old one is still
    open, one therapy recorded as a statement and an order, a day's administrations, each of
    which shows the day's total: criteria.dose_days; as one record's taper steps and dosage
    lines stand alone)."""
    once: dict[str, Taken] = {}
    for t in on:
        seen = once.get(t.drug)
        if seen is None or t.most > seen.most:
            once[t.drug] = t
    return sorted(once.values(), key=lambda t: t.first)


def _doses(together: list[Taken]) -> str:
    """ "prednisone 30 mg/day and methylprednisolone 20 mg/day" (", " between more)."""
    each = [f"{t.drug} {t.most:g} mg/day" for t in together]
    return ", ".join(each[:-1]) + f" and {each[-1]}" if len(each) > 1 else each[0]


def said(o: Overlap, limit: float) -> str:
    """The reason of an unknown on records that add up: which, when, how much, what to check."""
    two = len(o.together) == 2
    return (
        f"{_doses(o.together)} prednisone-equivalent overlap on {o.day}: {o.total:g} mg/day"
        f" together if {'both' if two else 'all'} were taken (> {limit:g}); check whether one"
        f" replaced {'the other' if two else 'another'}"
    )


def noted(rows: list[Evidence], o: Overlap) -> list[Evidence]:
    """`rows` with those of the records that add up first, each naming the others it overlaps."""
    first = []
    for t in o.together:
        others = _doses([u for u in o.together if u is not t])
        note = f"{rows[t.row].note}; overlaps {others} prednisone-equivalent on {o.day}"
        first.append(rows[t.row].noted(f"{note}: {o.total:g} mg/day together"))
    counted = {t.row for t in o.together}
    return first + [r for i, r in enumerate(rows) if i not in counted]
