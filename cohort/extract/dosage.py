"""Dosage lines of a medication record: the dose and administrations a day of each."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cohort.extract.elements import codes_of, parse_days, quantity_of
from cohort.model import Dose, Quantity

__all__ = ["doses_of"]

_PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}
# administrations a day of FHIR R4's TimingAbbreviation codes (v3-GTSAbbreviation), and QAM
_TIMING_CODES = {
    "QD": 1, "BID": 2, "TID": 3, "QID": 4, "QOD": 0.5, "AM": 1, "PM": 1, "QAM": 1, "BED": 1,
    "Q1H": 24, "Q2H": 12, "Q3H": 8, "Q4H": 6, "Q6H": 4, "Q8H": 3, "WK": 1 / 7, "MO": 1 / 30,
}  # fmt: skip
# FHIR R4 EventTiming (event-timing and v3-TimingEvent) but C, AC and PC: one time of day each
_EVENTS = frozenset(
    ("MORN", "MORN.EARLY", "MORN.LATE", "NOON", "AFT", "AFT.EARLY", "AFT.LATE", "EVE", "EVE.EARLY",
     "EVE.LATE", "NIGHT", "PHS", "HS", "WAKE", "CM", "CD", "CV", "ACM", "ACD", "ACV", "PCM", "PCD",
     "PCV")
)  # fmt: skip
# administrations a day, the fewest and the most (None: the fewest), and whether not read
Rate = tuple[float | None, float | None, bool]
_NO_RATE: Rate = (None, None, False)
_UNREAD: Rate = (None, None, True)
# a JSON number, tested by class: a bool's class is bool, never int
_NUMBERS: frozenset[Any] = frozenset((int, float))


def doses_of(items: Iterable[Any]) -> tuple[Dose, ...]:
    """The Dosage lines of a record (MedicationStatement.dosage, dosageInstruction ...)."""
    out = []
    for d in items:
        if not isinstance(d, dict):
            continue
        qty = high = None
        doses = d.get("doseAndRate") or ()
        for dr in doses:
            qty = qty or quantity_of(dr.get("doseQuantity") if isinstance(dr, dict) else None)
        qty = qty or quantity_of(d.get("dose"))
        rate, most, unread = _per_day(d.get("timing"))
        bad = False
        if qty is None and doses:  # (read only where no dose quantity is)
            qty, high, bad = _dose_range(doses)
        # a line without a dose (an instruction) has none that is not read
        unread = bad or (unread and qty is not None)
        seq = d.get("sequence")
        sequence = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        out.append(Dose(qty, rate, sequence, unread, high, most))
    return tuple(out)


def _dose_range(doses: Any) -> tuple[Quantity | None, Quantity | None, bool]:
    """The first doseRange's low and high, and whether it is given but does not read as both
    (a range with one end, or one that is no Quantity: that end may be anything)."""
    for dr in doses:
        rng = dr.get("doseRange") if isinstance(dr, dict) else None
        if rng is not None:
            if not isinstance(rng, dict):
                return None, None, True
            low, high = quantity_of(rng.get("low")), quantity_of(rng.get("high"))
            if low is None or high is None:
                return low or high, None, True
            return low, high, False
    return None, None, False


def _per_day(timing: Any) -> Rate:
    """Administrations a day, the fewest and the most (None, None: no rate given, read as
    once a day; the most None when it is the fewest), and whether the timing gives a rate
    that is not read. Only a Dosage without a timing, or whose timing has no element that
    says how often (only bounds, a count, days of the week), gives no rate: a timing that says
    how often in a way not read (a code of text only or not in the list, a frequency without
    a period in days, weeks ..., a timing that is no object) is no usable dose, never once a
    day (docs/rules.md). `frequencyMax` and `periodMax` make a range, as `when` may."""
    if timing is None:
        return _NO_RATE
    if not isinstance(timing, dict):
        return _UNREAD
    rep: Any = timing.get("repeat")
    if rep is None:
        rep = {}
    elif not isinstance(rep, dict):
        return _UNREAD
    freq: Any = rep.get("frequency")
    period, unit = rep.get("period"), rep.get("periodUnit")
    code = timing.get("code")
    if freq is not None or (period is not None and code is None):
        # a period alone is once each period ("every 8 hours")
        freq = 1 if freq is None else freq
        if freq.__class__ not in _NUMBERS or period.__class__ not in _NUMBERS:
            return _UNREAD
        days = period * _PERIOD_DAYS.get(unit, 0)
        if days <= 0:
            return _UNREAD
        if len(rep) <= 3:  # (frequency, period, periodUnit: nothing more to read)
            return freq / days, None, False
        rate = _ranged(rep, freq, period, _PERIOD_DAYS[unit])
    elif code is not None:
        rate = _UNREAD  # text only, or codes not in the list
        for c in codes_of(code):  # a TimingAbbreviation coding wherever it is
            if (n := _TIMING_CODES.get(c.code.upper())) is not None:
                rate = (float(n), None, False)
                break
        if not rep:
            return rate
    else:
        rate = _NO_RATE
        times = rep.get("timeOfDay")
        if times is not None:
            if not isinstance(times, list):
                return _UNREAD
            if times:
                rate = (float(len(times)), None, False)  # each day at each of these times
    if rate[2]:
        return rate
    if when := rep.get("when"):
        rate = _at_events(when, rate)
    if rate[0] is None and (events := timing.get("event")) is not None:
        most = _most_a_day(events)
        return (float(most), None, False) if most else _UNREAD
    return rate


def _at_events(when: Any, rate: Rate) -> Rate:
    """`rate` with `timing.repeat.when`'s events (EventTiming: a time of day each). Alone, one
    administration at each event each day; beside a count (a frequency, a code, times of
    day), that count stands (FHIR: its administrations fall at the union of the events), but
    an EHR may mean one at each event on each day it is given: that is its most, if more."""
    n = _events(when)
    low, high, _ = rate
    if low is None:
        return (float(n), None, False) if n else _UNREAD
    if n is None:  # (the count says how many; the events only when)
        return rate
    most = high if high is not None else low
    each = n * min(most, 1.0)
    return (low, each, False) if each > most else rate


def _events(when: Any) -> int | None:
    """How many times a day `when` lists: each EventTiming code one (an `offset` moves them,
    adds none); None when not determinable: "at", "before" or "after a meal" (C, AC, PC: how
    many meals is not said), a period beside a part of it (MORN and MORN.early: their union
    may be one time or two), a code not in EventTiming, or not a list of codes."""
    if not isinstance(when, list):
        return None
    codes = set()
    for w in when:
        code = w.upper() if isinstance(w, str) else ""
        if code not in _EVENTS:
            return None
        codes.add(code)
    if any(c.partition(".")[0] in codes for c in codes if "." in c):
        return None
    return len(codes)


def _ranged(rep: dict[str, Any], freq: float, period: float, unit_days: float) -> Rate:
    """`freq` times a `period` (> 0) of `unit_days` days, or a range: up to `frequencyMax`
    times, every `period` to `periodMax` periods."""
    most: Any = rep.get("frequencyMax", freq)
    longest: Any = rep.get("periodMax", period)
    if most.__class__ not in _NUMBERS or longest.__class__ not in _NUMBERS or longest <= 0:
        return _UNREAD
    low = min(freq, most) / (max(period, longest) * unit_days)
    high = max(freq, most) / (min(period, longest) * unit_days)
    return low, (high if high != low else None), False


def _most_a_day(events: Any) -> int | None:
    """The most of Timing.event's dateTimes on one day (None: not a list of dates)."""
    if not isinstance(events, list) or not events:
        return None
    days: dict[str, int] = {}
    for e in events:
        if parse_days(e) is None:
            return None
        days[e[:10]] = days.get(e[:10], 0) + 1
    return max(days.values())
