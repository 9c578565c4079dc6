"""When a taper's steps start: each Dosage.sequence after the boundsDuration of those before it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from cohort.extract.elements import DayRange, quantity_of
from cohort.extract.onset import TIME_UNITS, add_units

__all__ = ["after", "step_starts"]

_HOURS = {"h": 1, "hour": 1, "hours": 1, "min": 1 / 60, "s": 1 / 3600}  # a Duration's, in hours


def after(start: DayRange | None, length: Any) -> DayRange | None:
    """The day `length` (a Duration) after `start`, each of its days (None: no start, or a
    length that does not read); a part of a unit is a whole one (the later day)."""
    q = quantity_of(length)
    if start is None or q is None or not 0 <= q.value < 1e5:
        return None
    unit = TIME_UNITS.get(q.code) or TIME_UNITS.get(q.unit.strip().lower())
    n = math.ceil(q.value)
    if unit is None and (hours := _HOURS.get(q.code) or _HOURS.get(q.unit.strip().lower())):
        unit, n = (0, 1), math.ceil(q.value * hours / 24)
    if unit is None:
        return None
    first = add_units(start[0], n, unit)
    last = add_units(start[1], n, unit) if start[1] is not None else None
    return first, last


def step_starts(items: Iterable[Any], start: DayRange | None) -> dict[int, DayRange]:
    """The day each `sequence` of Dosage lines starts from when the lines are steps that each
    last a `boundsDuration` (FHIR: sequence is the order the lines apply in; a taper of 80 mg
    for 3 days, then 60 mg for 7 days): the record's `start` for the first, for each later one
    the end of the longest line of the one before. Lines of one sequence are concurrent (one
    start). Only as far as every earlier step has such a duration that reads: after a step
    without one (a boundsPeriod, none) when the next starts is not said (read from `start`)."""
    steps: dict[int, list[Any]] = {}
    for d in items:
        seq = d.get("sequence") if isinstance(d, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool):
            continue
        timing = d.get("timing")
        rep = timing.get("repeat") if isinstance(timing, dict) else None
        bounds = rep if isinstance(rep, dict) else {}
        alone = "boundsPeriod" not in bounds and "boundsRange" not in bounds
        steps.setdefault(seq, []).append(bounds.get("boundsDuration") if alone else None)
    out: dict[int, DayRange] = {}
    at = start
    for seq in sorted(steps):
        if at is None:
            break
        out[seq] = at
        ends = [after(at, length) for length in steps[seq]]
        if any(end is None for end in ends):
            break
        at = _latest(e for e in ends if e is not None)
    return out


def _latest(ends: Iterable[DayRange]) -> DayRange:
    """The latest of several days, each possibly partial (its first and last day)."""
    days = list(ends)
    first = max(e[0] for e in days)
    last = max(e[1] or e[0] for e in days)
    return first, (last if last != first else None)
