"""Results with a partial date (YYYY, YYYY-MM): pass/fail only when every day it can stand for
gives it, as for every other record (docs/rules.md, "Reading records")."""

# A criterion compares a result's date with other dates only: a window start, as_of, another
# record's date (most recent, "on or after", "since the last dose"). Between two such dates every
# day gives the same outcome, so the days worth trying are the partial date's first and last
# and each of those dates and its neighbours inside it: a handful, not the 365 of a year. Only
# the criteria that read the result are tried again (a criterion reaches records through
# Context.matching, which is given every record of its concepts whatever their dates, so one
# that was not given the result on its first day never is). Each partial result is tried alone
# with the other results of its record (a panel's components share its one date), the others
# at their first day; results are read at their first day everywhere else
# (ordering, last_seen). Only patients with such a result pay for any of this.

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, timedelta

from cohort.criteria.base import Context, Criterion, result, shown
from cohort.model import Evidence, ObservationFact, PatientFacts, Result, Status

__all__ = ["MAX_TRIED", "settle"]

# partially dated records of one patient tried (the rest stay at their first day; a record's
# components move with it): a bound on the time a patient can take, far above what a chart
# holds (results rarely carry partial dates)
MAX_TRIED = 50

Run = Callable[[Criterion, Context], Result]


def settle(criteria: Sequence[Criterion], ctx: Context, run: Run) -> list[Result]:
    """Each criterion's result (`run`), with results read at their first day, where every day
    of each partial result agrees; unknown, with a reason naming the date as recorded, where
    not."""
    partial = [
        o
        for o in ctx.facts.observations
        if o.when_last is not None and o.when is not None and o.when <= ctx.as_of
    ]
    if not partial:
        return [run(crit, ctx) for crit in criteria]
    results: list[Result] = []
    reads: list[set[int]] = []  # per criterion, the records it was given
    for crit in criteria:
        ctx._seen = set()
        results.append(run(crit, ctx))
        reads.append(ctx._seen)
    ctx._seen = None
    marks = _marks(ctx)
    out = list(results)
    split: set[int] = set()  # criteria already made unknown by a partial date
    # one record's results move together: a panel header and its components share one date
    # (tried apart, a component read on a day its sibling was not: a false "unknown")
    records: dict[str, set[int]] = {}
    for o in partial:
        records.setdefault(o.part_of or o.ref, set()).add(id(o))
    tried: set[str] = set()
    for o in partial:
        key = o.part_of or o.ref
        if key in tried:
            continue
        if len(tried) >= MAX_TRIED:
            break
        tried.add(key)
        ids = records[key]
        which = [i for i, seen in enumerate(reads) if ids & seen and i not in split]
        if not which:
            continue
        for day in _days(o, marks):
            alt = _on_day(ctx, ids, day)
            for i in which:
                if i in split:
                    continue
                crit, base = criteria[i], results[i]
                other = run(crit, alt)
                if other.status is not base.status:
                    split.add(i)
                    when = shown(o.when, o.when_last)
                    # its row says it too: its note alone is the first day's reading
                    refs = {x.ref for x in ctx.facts.observations if id(x) in ids}
                    days = f"dated only {when}: {base.status} on its first day, {other.status}"
                    out[i] = result(
                        crit,
                        Status.UNKNOWN,
                        f"a result dated only {when} ({o.ref}):"
                        f" {base.status} on some of its days, {other.status} on others"
                        f" ({base.reason})",
                        _noted(base.evidence, refs, f"{days} on others"),
                        _noted(base.ignored, refs, f"{days} on others"),
                    )
                elif base.status is Status.FAIL and out[i].eligible_from != other.eligible_from:
                    # the latest date every day allows (none if a day gives none)
                    a, b = out[i].eligible_from, other.eligible_from
                    out[i] = replace(out[i], eligible_from=max(a, b) if a and b else None)
    return out


def _noted(rows: Sequence[Evidence], refs: set[str], said: str) -> list[Evidence]:
    """`rows` with `said` added to the note of those of the records `refs`."""
    return [e.noted(f"{e.note}; {said}" if e.note else said) if e.ref in refs else e for e in rows]


def _on_day(ctx: Context, ids: set[int], day: date) -> Context:
    """`ctx` with the results `ids` (one record's) dated `day` (a full date): a context of its
    own (the concept memo, keyed by reference, is shared; the per-list index is not)."""
    obs = [
        replace(x, when=day, when_last=None) if id(x) in ids else x for x in ctx.facts.observations
    ]
    facts: PatientFacts = replace(ctx.facts, observations=obs)
    return ctx.fresh(facts=facts)


def _marks(ctx: Context) -> set[date]:
    """Every date a criterion may compare a result's date with."""
    f = ctx.facts
    found: list[date | None] = [ctx.as_of, *ctx._sinces]
    for o in f.observations:
        found += (o.when, o.when_last)
    for e in f.exposures:
        found += (e.start, e.start_last, e.end, e.end_last)
    for c in f.conditions:
        found += (c.onset, c.onset_last, c.recorded, c.recorded_last)
        found += (c.abatement, c.abatement_last)
    for im in f.immunizations:
        found += (im.when, im.when_last)
    for p in f.procedures:
        found += (p.start, p.start_last, p.end, p.end_last)
    return {d for d in found if d is not None}


def _days(o: ObservationFact, marks: set[date]) -> list[date]:
    """The days of `o`'s partial date worth trying, besides its first (the reading already
    made): its last, and each mark and its neighbours inside it."""
    first, last = o.when, o.when_last
    assert first is not None and last is not None  # (settle passes partial dates only)
    one = timedelta(days=1)
    days = {last}
    for m in marks:
        if first <= m <= last:
            days.add(m)
            if m > first:
                days.add(m - one)
            if m < last:
                days.add(m + one)
    days.discard(first)
    return sorted(days)
