"""Administrations a day of a Dosage's timing: frequency and period, timing codes, times of
day, `when` events, event dates and days of the week (a range where they leave it open)."""

from __future__ import annotations

from typing import Any

from cohort.extract.elements import codes_of, parse_days
from cohort.source.checkers import present

__all__ = ["Timed", "per_day"]

_PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}
# administrations a day of FHIR R4's TimingAbbreviation codes (v3-GTSAbbreviation), and QAM
_TIMING_CODES = {
    "QD": 1, "BID": 2, "TID": 3, "QID": 4, "QOD": 0.5, "AM": 1, "PM": 1, "QAM": 1, "BED": 1,
    "Q1H": 24, "Q2H": 12, "Q3H": 8, "Q4H": 6, "Q6H": 4, "Q8H": 3, "WK": 1 / 7, "MO": 1 / 30,
}  # fmt: skip
# the days a timing code's count is of, where more than one (every other day, a week, a month)
_CODE_DAYS = {"QOD": 2.0, "WK": 7.0, "MO": 30.0}
_WEEKDAYS = frozenset(("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"))  # FHIR R4 days-of-week
# FHIR R4 EventTiming (event-timing and v3-TimingEvent) but C, AC and PC: one time of day each
_EVENTS = frozenset(
    ("MORN", "MORN.EARLY", "MORN.LATE", "NOON", "AFT", "AFT.EARLY", "AFT.LATE", "EVE", "EVE.EARLY",
     "EVE.LATE", "NIGHT", "PHS", "HS", "WAKE", "CM", "CD", "CV", "ACM", "ACD", "ACV", "PCM", "PCD",
     "PCV")
)  # fmt: skip
# administrations a day, the fewest and the most (None: the fewest), whether not read, and the
# timing's repeat where it may hold more than a frequency and period (see per_day)
Timed = tuple[float | None, float | None, bool, dict[str, Any] | None]
_NO_RATE: Timed = (None, None, False, None)
_UNREAD: Timed = (None, None, True, None)
# a JSON number, tested by class: a bool's class is bool, never int
_NUMBERS: frozenset[Any] = frozenset((int, float))


def per_day(timing: Any) -> Timed:
    """Administrations a day, the fewest and the most (None, None: no rate given, read as
    once a day; the most None when it is the fewest), whether the timing gives a rate that is
    not read, and its `repeat` when that holds more than a frequency and period (its bounds
    may be there). Only a Dosage without a timing, or whose timing has no element that says
    how often (only bounds, a count), gives no rate: a timing that says how
    often in a way not read (a code of text only or not in the list, a frequency without a
    period in days, weeks ..., a timing that is no object, a `frequency`, `frequencyMax` or
    `periodMax` sent as its `_name` extension alone) is no usable dose, never once a day
    (docs/rules.md). `frequencyMax` and `periodMax` make a range, as `when` may; days of the
    week give the count on those days only (_on_days)."""
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
    if rep and (
        (freq is None and present(rep, "frequency")) or (period is None and present(rep, "period"))
    ):
        # a frequency or period sent as its `_name` extension alone: how often is not known
        return None, None, True, rep
    rate: Timed
    span = (1.0, 1.0)  # the days the count is of, the fewest and the most (for dayOfWeek)
    counted = False  # whether timeOfDay gave the count (else it may stand beside one)
    if freq is not None or (period is not None and timing.get("code") is None):
        # a period alone is once each period ("every 8 hours")
        given = freq is not None
        freq = freq if given else 1
        days = period * _PERIOD_DAYS.get(unit, 0) if period.__class__ in _NUMBERS else 0
        if freq.__class__ not in _NUMBERS or freq <= 0 or days <= 0:  # (FHIR: positiveInt)
            return None, None, True, rep
        if len(rep) == 2 + given:  # (a frequency, period and unit, nothing more to read)
            return freq / days, None, False, None
        rate = _ranged(rep, freq, period, _PERIOD_DAYS[unit])
        if not rate[2]:
            ends = (period, rep.get("periodMax", period))
            span = (min(ends) * _PERIOD_DAYS[unit], max(ends) * _PERIOD_DAYS[unit])
    elif (code := timing.get("code")) is not None:
        rate = None, None, True, rep  # text only, or codes not in the list
        for c in codes_of(code):  # a TimingAbbreviation coding wherever it is
            if (n := _TIMING_CODES.get(c.code.upper())) is not None:
                rate = float(n), None, False, rep
                span = (days := _CODE_DAYS.get(c.code.upper(), 1.0), days)
                break
        if not rep:
            return rate
    else:
        rate = None, None, False, rep
        times = rep.get("timeOfDay")
        counted = True  # (the times are the count itself here, not beside one)
        if times is not None:
            if not isinstance(times, list) or not all(
                isinstance(t, str) or t is None for t in times
            ):
                return None, None, True, rep
            if times:  # each day at each of these times (one listed twice is one)
                named = {t for t in times if t is not None}
                rate = _up_to(len(named), times.count(None), rep)
    if rate[2]:
        return rate
    when = rep.get("when")
    if not counted and (times := rep.get("timeOfDay")) is not None:
        beside = _at_times(times, rate)
        if beside[2]:
            return beside
        # with `when` events too: the more of the two most, not their product
        rate = _wider(beside, _at_events(when, rate)) if when else beside
        when = None
    if when:
        rate = _at_events(when, rate)
    if rate[0] is None and (events := timing.get("event")) is not None:
        most = _most_a_day(events)  # (its dates name their days)
        return _up_to(*most, rep) if most else (None, None, True, rep)
    return _on_days(rep.get("dayOfWeek"), rate, span)


def _on_days(days: Any, rate: Timed, span: tuple[float, float]) -> Timed:
    """`rate` (of a count over `span` days) given on `timing.repeat.dayOfWeek`'s days only,
    averaged over the week as a weekly or every-other-day dose is (docs/rules.md). A count of
    a day or less (3 a day, every 8 hours, none: once a day) is on each of the days: n/7 of
    it. One of a week or more (1 a week) keeps its count, the days saying when, as `when`'s
    events say when: more days than the count a week may mean one on each, the most. Between
    (every other day), FHIR's reading, on the days of both (n/7 of it), is the least, the
    count or one on each day, the more of them, the most. Days that do not read: not read."""
    if rate[2] or days is None or days == []:
        return rate
    low, high, _, rep = rate
    if not isinstance(days, list) or not all(
        isinstance(d, str) and d.upper() in _WEEKDAYS for d in days
    ):
        return None, None, True, rep
    share = len({d.upper() for d in days}) / 7
    low = 1.0 if low is None else low
    high = low if high is None else high
    if span[1] <= 1:
        low, high = low * share, high * share
    elif span[0] >= 7:  # (a week it is given in: up to one on each day)
        high = max(high, share * min(7 * high, 1.0))
    else:
        low, high = low * share, max(high, share)
    return low, (high if high != low else None), False, rep


def _at_times(times: Any, rate: Timed) -> Timed:
    """`rate` (a frequency, a period or a timing code) with `timing.repeat.timeOfDay` beside
    it: that count stands (FHIR), but an EHR may mean one administration at each time on each
    day it is given ("daily" at 08:00 and 20:00: a period alone reads once a day): that is its
    most, if more, as `when`'s events beside a count (`_at_events`; a null time may be one more,
    `_up_to`). Times that are not a list of times say how often in a way not read."""
    low, high, _, rep = rate
    if not isinstance(times, list) or not all(isinstance(t, str) or t is None for t in times):
        return None, None, True, rep
    if low is None or not times:
        return rate
    n = len({t for t in times if t is not None}) + times.count(None)
    most = high if high is not None else low
    each = n * min(most, 1.0)
    return (low, each, False, rep) if each > most else rate


def _wider(a: Timed, b: Timed) -> Timed:
    """Two readings of one count's most a day (times of day, events): the larger most."""
    low = a[0] if a[0] is not None else 0.0
    most = max(x[1] if x[1] is not None else (x[0] or 0.0) for x in (a, b))
    return a[0], (most if most > low else None), False, a[3]


def _at_events(when: Any, rate: Timed) -> Timed:
    """`rate` with `timing.repeat.when`'s events (EventTiming: a time of day each). Alone, one
    administration at each event each day; beside a count (a frequency, a code, times of
    day), that count stands (FHIR: its administrations fall at the union of the events), but
    an EHR may mean one at each event on each day it is given: that is its most, if more."""
    n = _events(when)
    low, high, _, rep = rate
    if low is None:
        return (float(n), None, False, rep) if n else (None, None, True, rep)
    if n is None:  # (the count says how many; the events only when)
        return rate
    most = high if high is not None else low
    each = n * min(most, 1.0)
    return (low, each, False, rep) if each > most else rate


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


def _ranged(rep: dict[str, Any], freq: float, period: float, unit_days: float) -> Timed:
    """`freq` times a `period` (> 0) of `unit_days` days, or a range: up to `frequencyMax`
    times, every `period` to `periodMax` periods."""
    if ("_frequencyMax" in rep or "_periodMax" in rep) and any(
        k not in rep and present(rep, k) for k in ("frequencyMax", "periodMax")
    ):
        return None, None, True, rep  # an end of the range sent as its extension alone
    most: Any = rep.get("frequencyMax", freq)
    longest: Any = rep.get("periodMax", period)
    if most.__class__ not in _NUMBERS or longest.__class__ not in _NUMBERS:
        return None, None, True, rep
    if most <= 0 or longest <= 0:
        return None, None, True, rep
    low = min(freq, most) / (max(period, longest) * unit_days)
    high = max(freq, most) / (min(period, longest) * unit_days)
    return low, (high if high != low else None), False, rep


def _most_a_day(events: Any) -> tuple[int, int] | None:
    """The most of Timing.event's dateTimes on one day, and how many nulls (events whose date
    is not given: valid FHIR with an `_event` extension) may add to it (None: not a list of
    dates and nulls)."""
    if not isinstance(events, list) or not events:
        return None
    days: dict[str, int] = {}
    nulls = 0
    for e in events:
        if e is None:
            nulls += 1
        elif parse_days(e) is None:
            return None
        else:
            days[e[:10]] = days.get(e[:10], 0) + 1
    return max(days.values(), default=0), nulls


def _up_to(known: int, nulls: int, rep: dict[str, Any]) -> Timed:
    """A count of `known` administrations a day and `nulls` whose day or time is not given
    (a null with its `_name` extension): each of those may fall with a known one or not, so
    from `known` (at least one) to `known` + `nulls` a day (a wrong pass is the worst)."""
    low, high = max(known, 1), known + nulls
    return float(low), (float(high) if high > low else None), False, rep
