"""Criterion kind `recent_record`: an Immunization or Procedure of its concepts within a window."""

from __future__ import annotations

from datetime import date, timedelta

from cohort.criteria.base import Context, Criterion, result, shown, window_span, window_start
from cohort.criteria.intervals import Dated, in_window, procedure_dated
from cohort.criteria.medication import vaccine_given
from cohort.model import Evidence, Result, Status

# The inclusion counterpart of a washout ("an influenza vaccination within 12 months"): a record
# in the window passes, none fails. The window is inclusive, as a result's: it asks whether the
# record is recent, not when an exposure washes out (docs/rules.md "Windows").


def _inside(ctx: Context, it: Dated, lo: date) -> bool | None:
    """Whether the record is in [lo, as_of] on every day its partial dates can stand for
    (True), on none (False), or on some only, or undated (None: the data cannot tell)."""
    if it.start is None and it.end is None:
        return None
    if it.end is None and not it.ongoing:
        # a record without an end is one day, its start's (an Immunization, a Procedure so given)
        it = it._replace(end=it.start, end_last=it.start_last)
    # a washout's window leaves out its first day (intervals.in_window); this one includes it
    return in_window(ctx, it, lo - timedelta(days=1) if lo > date.min else lo)


def _named(ctx: Context, ev: Evidence) -> str:
    return "/".join(ctx.label(c) for c in ev.concept.split(",") if c) or "record"


def recent_record(crit: Criterion, ctx: Context) -> Result:
    p = crit.params
    items: list[Dated] = []
    vaccines = p.get("immunizations", [])
    for im in ctx.immunizations(vaccines):
        matched = ",".join(sorted(set(vaccines) & ctx.concepts(im.ref, im.codes, im.text)))
        when = shown(im.when, im.when_last)
        ev = Evidence(ref=im.ref, concept=matched, value=vaccine_given(ctx, im), date=when)
        items.append(Dated.of(im.when, im.when_last, im.when, im.when_last, False, ev))
    for pr in ctx.procedures(p.get("procedures", [])):
        matched = ",".join(sorted(set(p["procedures"]) & ctx.concepts(pr.ref, pr.codes, pr.text)))
        items.append(procedure_dated(pr, matched))
    span = window_span(p)
    lo = window_start(ctx.as_of, p) or date.min
    inside, maybe, ignored = [], [], []
    why_maybe = ""
    for it in items:
        found = _inside(ctx, it, lo)
        if found:
            inside.append(it)
        elif found is None:
            said = f"recorded only as {it.ev.date}" if it.ev.date else "undated"
            why_maybe = why_maybe or f"{_named(ctx, it.ev)} {said}: cannot tell if within {span}"
            maybe.append(it.ev.noted(f"{said}: may be within window"))
        elif (it.start or date.min) <= ctx.as_of:
            ignored.append(it)
    # most recent first: the reason names it
    inside.sort(key=lambda it: it.start_last or date.min, reverse=True)
    ignored.sort(key=lambda it: it.start_last or date.min, reverse=True)
    outside = [it.ev.noted(f"outside window (before {lo})") for it in ignored]
    if inside:
        top = inside[0].ev
        why = f"{_named(ctx, top)} on {top.date}, within {span}"
        used = [it.ev.noted("within window") for it in inside]
        return result(crit, Status.PASS, why, used, maybe + outside)
    if maybe:
        return result(crit, Status.UNKNOWN, why_maybe, maybe, outside)
    sought = "/".join(ctx.label(c) for c in [*vaccines, *p.get("procedures", [])])
    why = f"no {sought} within {span}"
    if ignored:
        why += f" (last on {ignored[0].ev.date})"
    return result(crit, Status.FAIL, why, [], outside)
