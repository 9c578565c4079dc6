"""`diagnosis` with `min_count` or a window: at least N conditions in the window, one a day."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from cohort.criteria.base import Context, Criterion, months_before, result
from cohort.criteria.days import condition_days, condition_shown
from cohort.criteria.ordering import evidence_day
from cohort.criteria.windows import window_span, window_start
from cohort.model import Evidence, Result, Status
from cohort.safetext import clipped

COUNT_KEYS = ("min_count", "window_days", "window_weeks", "window_months")
_SAID = 5  # dates a reason lists at most (the evidence has every one)


def is_counted(params: Mapping[str, Any]) -> bool:
    """Whether a `diagnosis` counts its conditions (`min_count` or a window given)."""
    return any(k in params for k in COUNT_KEYS)


def counted(crit: Criterion, ctx: Context) -> Result:
    """At least `min_count` conditions of the concepts dated (onset, else recordedDate) from the
    window's start to as_of - min_months: an episodic finding ("2 exacerbations in 12 months").
    Conditions of one date are one (an episode on the problem list and as an encounter
    diagnosis); any clinical status counts (an episode is over soon). A partial date with days
    on both sides of a bound, or no date, may count: unknown when that decides. Conditions of
    one partial date (2026-03) may be one day or several: each is kept apart (`_apart`)."""
    p = crit.params
    need = int(p.get("min_count", 1))
    start = window_start(ctx.as_of, p)
    cutoff = months_before(ctx.as_of, int(p["min_months"]))
    label = p.get("label") or ctx.label(p["concepts"][0])
    concept = ",".join(p["concepts"])
    unconfirmed = set(p.get("unconfirmed_verification", ()))
    # a day (first, last), else a partial date's condition's ref -> (span, as shown, one
    # confirmed): conditions of one day are one, those of a partial date may be several days
    sure: dict[tuple[date, date] | str, tuple[tuple[date, date], str, bool]] = {}
    maybe: list[str] = []  # as shown, those that may count (each may be an episode of its own)
    shaky = ""  # the first unconfirmed verificationStatus counted
    used: list[Evidence] = []
    ignored: list[Evidence] = []
    first_day = start or date.min
    for c in ctx.conditions(p["concepts"]):
        first, last = condition_days(c)
        ev = Evidence(ref=c.ref, concept=concept, value=clipped(c.text), date=condition_shown(c))
        if first is None or last is None:
            maybe.append("no date")
            used.append(ev.noted("no date: may be in the window"))
        elif last < first_day or first > cutoff:
            outside = f"outside the window ({window_span(p)}, from {start})" if start else ""
            ignored.append(ev.noted(outside or f"after {cutoff}"))
        elif first < first_day or last > cutoff:
            maybe.append(ev.date)
            used.append(ev.noted("partial date: may be in the window"))
        else:
            ok = c.verification_status not in unconfirmed
            shaky = shaky or ("" if ok else c.verification_status)
            key = (first, last) if first == last else c.ref
            had = key in sure and sure[key][2]
            sure[key] = ((first, last), ev.date, ok or had)
            used.append(
                ev.noted("counted" if ok else f"verificationStatus {c.verification_status}")
            )
    days = sorted(sure.values(), key=lambda d: d[0], reverse=True)  # newest first
    # newest first, as the reason lists the dates; undated last
    used.sort(key=lambda e: -(evidence_day(e.date) or date.min).toordinal())
    span = f"within {window_span(p)}" if start else f"on or before {cutoff}"
    # (the label is not made plural: "COPD exacerbation on 2 dates", not "2 COPD exacerbation")
    dates = ", ".join(text for _, text, _ in days[:_SAID]) + (" ..." if len(days) > _SAID else "")
    on = "date" if len(days) == 1 else "dates"
    found = f"{label} on {len(days)} {on} {span} ({dates})" if days else f"no {label} {span}"
    also = "more " if days else ""
    maybes = f"{len(maybe)} {also}that may be ({', '.join(maybe[:_SAID])})"
    if _apart(s for s, _, _ in days) >= need:
        if _apart(s for s, _, ok in days if ok) >= need:
            return result(crit, Status.PASS, found, used, ignored)
        shy = sum(not ok for _, _, ok in days)
        why = f"{found}, {shy} of them recorded as {shaky}: confirm the diagnosis"
        return result(crit, Status.UNKNOWN, why, used, ignored)
    if len(days) >= need:  # (a partial date that may be the day of another)
        why = f"{found}, which may be one day: cannot tell if at least {need}"
        return result(crit, Status.UNKNOWN, why, used, ignored)
    if len(days) + len(maybe) >= need:
        why = f"{found} and {maybes}: cannot tell if at least {need}"
        return result(crit, Status.UNKNOWN, why, used, ignored)
    tail = f" and {maybes}" if maybe else ""
    return result(crit, Status.FAIL, f"{found}{tail}, needs at least {need}", used, ignored)


def _apart(spans: Iterable[tuple[date, date]]) -> int:
    """The fewest days the (first, last) spans can stand for: a partial date (2026-03) may be the
    day of another (2026-03-15), and they are then one episode (the fewest points that stab
    every span, taken greedily by their last days)."""
    n, point = 0, date.min
    for first, last in sorted(spans, key=lambda s: s[1]):
        if n == 0 or first > point:
            n, point = n + 1, last
    return n
