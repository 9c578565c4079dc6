"""Results of one day that nothing orders: the outcome must not rest on their ids.

"Most recent" is the latest date, then the latest time of that day (criteria.ordering). Two
results of a day written without a time (or at one instant) have no order; they were put in id
order, so which one decided a "most recent" rule turned on how a server numbers its records. A
criterion that read such a run of results is evaluated again with each of them first: where
every reading gives its outcome, it stands; where not, the criterion is unknown, naming the
results and what each gives, with all of them in its evidence. An exclusion that one reading
fails is unknown too, not fail: the data cannot tell which result is the latest, and a fail
would drop the candidate on a coin toss (docs/rules.md, "Reading records").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from cohort.criteria.base import Context, Criterion, result, shown
from cohort.model import Evidence, ObservationFact, Result, Status

__all__ = ["untie"]

Run = Callable[[Criterion, Context], Result]


def untie(crit: Criterion, ctx: Context, run: Run) -> Result:
    """`run(crit, ctx)`, unless the results it ordered by id alone give another outcome when
    another of them is taken first: then unknown."""
    outer = ctx._ties
    ctx._ties = []
    try:
        base = run(crit, ctx)
        found = ctx._ties
    finally:
        ctx._ties = outer
    if not found:
        return base
    seen: set[tuple[int, ...]] = set()
    out = base
    for tie in found:
        key = tuple(sorted(map(id, tie)))
        if key in seen:
            continue
        seen.add(key)
        each = [(o.ref, run(crit, replace(ctx, _prefer=frozenset({id(o)})))) for o in tie]
        if any(r.status is not base.status for _, r in each):
            return _unknown(crit, base, sorted(each, key=lambda x: x[0]), tie[0])
        if base.status is Status.FAIL:
            # the latest date every reading allows (none if one gives none)
            dates = [out.eligible_from, *(r.eligible_from for _, r in each)]
            later = max(dates) if all(dates) else None  # type: ignore[type-var]
            if later != out.eligible_from:
                out = replace(out, eligible_from=later)
    return out


def _unknown(
    crit: Criterion, base: Result, each: list[tuple[str, Result]], one: ObservationFact
) -> Result:
    """Unknown, naming each result of the run and what taking it as the most recent gives."""
    said = "; ".join(f"{r.status} with {ref} ({r.reason})" for ref, r in each)
    day = shown(one.when, one.when_last)
    why = f"results of {day} without a time that orders them disagree: {said}"
    tied = {ref: r.status for ref, r in each}
    evidence: list[Evidence] = []
    refs: set[str] = set()
    for ref, r in each:
        # what the reading used, and the result it took first, also where that counted for
        # nothing (a negative test is no finding: listed among the ignored)
        own = [e for e in r.ignored if e.ref == ref and not any(x.ref == ref for x in r.evidence)]
        for e in (*r.evidence, *own[:1]):
            if e.ref in refs:
                continue
            refs.add(e.ref)
            if e.ref in tied:
                was = "" if e.note.startswith("most recent") else f"{e.note}; "
                e = replace(e, note=f"{was}{tied[e.ref]} if the most recent (same day, no order)")
            evidence.append(e)
    ignored = [e for e in base.ignored if e.ref not in refs]
    return result(crit, Status.UNKNOWN, why, evidence, ignored)
