"""Dosage lines of a medication record: the dose and administrations a day of each."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cohort.extract.elements import codes_of, parse_days, quantity_of
from cohort.model import Dose

__all__ = ["doses_of"]

_PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}
# administrations a day of FHIR R4's TimingAbbreviation codes (v3-GTSAbbreviation), and QAM
_TIMING_CODES = {
    "QD": 1, "BID": 2, "TID": 3, "QID": 4, "QOD": 0.5, "AM": 1, "PM": 1, "QAM": 1, "BED": 1,
    "Q1H": 24, "Q2H": 12, "Q3H": 8, "Q4H": 6, "Q6H": 4, "Q8H": 3, "WK": 1 / 7, "MO": 1 / 30,
}  # fmt: skip
# a JSON number, tested by class: a bool's class is bool, never int
_NUMBERS: frozenset[Any] = frozenset((int, float))


def doses_of(items: Iterable[Any]) -> tuple[Dose, ...]:
    """The Dosage lines of a record (MedicationStatement.dosage, dosageInstruction ...)."""
    out = []
    for d in items:
        if not isinstance(d, dict):
            continue
        qty = None
        for dr in d.get("doseAndRate") or ():
            qty = qty or quantity_of(dr.get("doseQuantity") if isinstance(dr, dict) else None)
        qty = qty or quantity_of(d.get("dose"))
        per_day, unread = _per_day(d.get("timing"))
        seq = d.get("sequence")
        sequence = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        out.append(Dose(qty, per_day, sequence, unread))
    return tuple(out)


def _per_day(timing: Any) -> tuple[float | None, bool]:
    """Administrations a day, and whether the timing gives a rate that is not read (None,
    False: no rate given, read as once a day). Only a Dosage without a timing, or whose timing
    has no element that says how often (only bounds, a count, days of the week), gives no rate:
    a timing that says how often in a way not read (a code of text only or not in the list, a
    frequency without a period in days, weeks ..., a timing that is no object) is no usable
    dose, never once a day (docs/rules.md)."""
    if timing is None:
        return None, False
    if not isinstance(timing, dict):
        return None, True
    rep: Any = timing.get("repeat")
    if rep is None:
        rep = {}
    elif not isinstance(rep, dict):
        return None, True
    freq: Any = rep.get("frequency")
    period, unit = rep.get("period"), rep.get("periodUnit")
    code = timing.get("code")
    if freq is not None or (period is not None and code is None):
        # a period alone is once each period ("every 8 hours")
        freq = 1 if freq is None else freq
        if freq.__class__ not in _NUMBERS or period.__class__ not in _NUMBERS:
            return None, True
        days = period * _PERIOD_DAYS.get(unit, 0)
        return (float(freq) / days, False) if days > 0 else (None, True)
    if code is not None:
        for c in codes_of(code):  # a TimingAbbreviation coding wherever it is
            if (n := _TIMING_CODES.get(c.code.upper())) is not None:
                return float(n), False
        return None, True  # text only, or codes not in the list
    times = rep.get("timeOfDay")
    if times is not None:
        if not isinstance(times, list):
            return None, True
        if times:
            return float(len(times)), False  # each day at each of these times
    events = timing.get("event")
    if events is not None:
        most = _most_a_day(events)
        return (float(most), False) if most else (None, True)
    return None, False


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
