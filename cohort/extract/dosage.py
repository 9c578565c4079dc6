"""Dosage lines of a medication record: the dose and administrations a day of each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from typing import Any

from cohort.extract.elements import DayRange, parse_days
from cohort.extract.entries import amount, forms_of, needed
from cohort.extract.limits import as_needed, caps_of
from cohort.extract.per_day import per_day
from cohort.extract.steps import after, step_starts
from cohort.model import Bounds, Dose

__all__ = ["doses_of", "widest"]

_RATES = ("rateQuantity", "rateRatio", "rateRange")


def doses_of(
    items: Iterable[Any], start: DayRange | None = None, ongoing: bool = False
) -> tuple[Dose, ...]:
    """The Dosage lines of a record (MedicationStatement.dosage, dosageInstruction ...). Once
    a line has bounds (Timing.repeat.bounds[x]), every line has its days: its bounds, from
    the record's `start` (a boundsDuration, a boundsPeriod without a start) and open while
    the record's status is `ongoing`; a line without bounds the record's own days. A line
    taken as needed is none up to its dose; its maxDosePerPeriod is read by the criteria."""
    out = []
    bounded = False
    items = list(items)
    starts = step_starts(items, start)  # (a taper's steps of a boundsDuration each)
    for d in items:
        if not isinstance(d, dict):
            continue
        doses = d.get("doseAndRate") or ()
        # an amount given (a dose, a rate), and a rate given alone: how much it is a day is
        # not read, and it may add to a dose beside it (an infusion)
        given = "dose" in d
        rated = not given and any(k in d for k in _RATES)  # MedicationAdministration.dosage's
        for dr in doses:
            if isinstance(dr, dict):
                dosed = "doseQuantity" in dr or "doseRange" in dr
                given = given or dosed
                rated = rated or (not dosed and any(k in dr for k in _RATES))
        # the dose in each form its entries give it (extract.entries): the first is the line's
        # quantity, the others its `forms`
        forms = forms_of(doses)
        if (given_dose := amount(d.get("dose"))) is not None:
            forms.insert(0, (given_dose, None, False))
        qty, high, _ = forms[0] if forms else (None, None, False)
        rate, most, unread, rep = per_day(d.get("timing"))
        # a line without a dose (an instruction) has none that is not read, but one whose
        # dose or rate does not read has
        unread = (unread and qty is not None) or (qty is None and (given or rated))
        # only a least: beside a rate alone, or a form that is a doseRange's low alone
        least = (rated or any(f[2] for f in forms)) and qty is not None
        if qty is not None and not unread and as_needed(d):
            forms = [needed(f, least) for f in forms]  # (none up to what each gives)
            qty, high, _ = forms[0]
        others = tuple((low, top) for low, top, _ in forms[1:])
        caps = caps_of(d["maxDosePerPeriod"]) if "maxDosePerPeriod" in d else ()
        seq = d.get("sequence")
        sequence = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        bounds, taken = None, None
        if rep:  # (a repeat with more than a frequency and period: it may have bounds)
            step = starts.get(sequence) if sequence is not None else None
            bounds = _bounds(rep, start, ongoing, step)
            bounded = bounded or bounds is not None
            taken = _taken_from(rep, bounds, step)
        out.append(
            Dose(qty, rate, sequence, unread, high, most, bounds, least, caps, others, taken)
        )
    if bounded:
        own = _days(start, None if ongoing else start, ongoing)
        out = [d if d.bounds is not None else replace(d, bounds=own) for d in out]
    return tuple(out)


def widest(bounds: Iterable[Bounds]) -> Bounds:
    """The days of several lines together: from the first start (none if one has none) to
    the last end (open if one is)."""
    lines = list(bounds)
    start = start_last = end = end_last = None
    if all(b.start is not None for b in lines):
        start = min(b.start for b in lines if b.start is not None)
        start_last = min(b.start_last or b.start for b in lines if b.start is not None)
    ongoing = any(b.ongoing for b in lines)
    ends = [b for b in lines if b.end is not None]
    if ends and not ongoing:
        end = max(b.end for b in ends if b.end is not None)
        end_last = max(b.end_last or b.end for b in ends if b.end is not None)
    return Bounds(
        start,
        end,
        ongoing,
        start_last if start_last != start else None,
        end_last if end_last != end else None,
    )


def _bounds(
    rep: dict[str, Any], start: DayRange | None, ongoing: bool, step: DayRange | None = None
) -> Bounds | None:
    """A line's days by its `repeat.bounds[x]`: a boundsPeriod, from the record's own `start`
    (SPEC's: authoredOn) or its own start, whichever is earlier (an order written for next
    week is an exposure from when it was written, as SPEC reads it), a boundsDuration or the
    longest of a boundsRange from the record's `start` (a boundsDuration ending that long after
    `step`, where its line is a taper's later step: extract.steps); without an end, open while the
    record's status is `ongoing`, else ending on its latest start. None: no bounds, or none
    that read (the line has the record's days)."""
    period, length = rep.get("boundsPeriod"), rep.get("boundsDuration")
    if period is None and length is None and (span := rep.get("boundsRange")) is not None:
        length = span.get("high") if isinstance(span, dict) else span
        if length is None:  # a range of lengths without its longest: no end
            return _days(start, None if ongoing else start, ongoing)
    if isinstance(period, dict):
        own, last = parse_days(period.get("start")), parse_days(period.get("end"))
        if own is None and last is None:
            return None
        first = _earliest(own, start)
        if last is None and not ongoing:
            last = own or start
    elif length is not None:  # (a taper's later step ends its length after the one before)
        first, last = start, after(step or start, length)
        if last is None:
            return None
    else:
        return None
    if last is None and not ongoing:
        last = first
    return _days(first, last, last is None)


def _taken_from(rep: dict[str, Any], bounds: Bounds | None, step: DayRange | None) -> date | None:
    """The latest day a line's own start may be (its boundsPeriod.start; of a taper's step of
    a duration, the day the steps before it end: `step`), where `bounds` (which `_bounds`
    begins on the record's earlier start) begin before it; else None (`Dose.starts`)."""
    period = rep.get("boundsPeriod")
    own = parse_days(period.get("start")) if isinstance(period, dict) else step
    if own is None or bounds is None or bounds.start is None:
        return None
    day = own[1] or own[0]
    return day if day > (bounds.start_last or bounds.start) else None


def _earliest(a: DayRange | None, b: DayRange | None) -> DayRange | None:
    """The earlier of two starts (either may be partial: the first day of each and the
    earliest of their last days); one when the other is None."""
    if a is None or b is None:
        return a or b
    first, last = min(a[0], b[0]), min(a[1] or a[0], b[1] or b[0])
    return first, (last if last != first else None)


def _days(start: DayRange | None, end: DayRange | None, ongoing: bool) -> Bounds:
    return Bounds(
        start[0] if start else None,
        end[0] if end else None,
        ongoing,
        start[1] if start else None,
        end[1] if end else None,
    )
