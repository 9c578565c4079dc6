"""Dosage lines of a medication record: the dose and administrations a day of each."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cohort.extract.elements import first_code, quantity_of
from cohort.model import Dose

__all__ = ["doses_of"]

_PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}
# administrations a day of FHIR R4's TimingAbbreviation codes (v3-GTSAbbreviation), and QAM
_TIMING_CODES = {
    "QD": 1, "BID": 2, "TID": 3, "QID": 4, "QOD": 0.5, "AM": 1, "PM": 1, "QAM": 1, "BED": 1,
    "Q1H": 24, "Q2H": 12, "Q3H": 8, "Q4H": 6, "Q6H": 4, "Q8H": 3, "WK": 1 / 7, "MO": 1 / 30,
}  # fmt: skip


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
    """Administrations a day, and whether the timing gives a rate that is not read: a code
    not known, or a frequency without a period in days, weeks ... (None, False: no rate given,
    read as once a day)."""
    if not isinstance(timing, dict):
        return None, False
    rep = timing.get("repeat")
    rep = rep if isinstance(rep, dict) else {}
    freq, period, unit = rep.get("frequency"), rep.get("period"), rep.get("periodUnit")
    if isinstance(freq, int | float) and isinstance(period, int | float) and unit in _PERIOD_DAYS:
        days = period * _PERIOD_DAYS[unit]
        return (float(freq) / days, False) if days > 0 else (None, True)
    code = first_code(timing.get("code")).upper()
    if code:
        return (float(_TIMING_CODES[code]), False) if code in _TIMING_CODES else (None, True)
    if freq is not None:
        return None, True
    times = rep.get("timeOfDay")
    if isinstance(times, list) and times and period is None:
        return float(len(times)), False  # each day at each of these times
    return None, False
