"""Results of one day that nothing orders: the outcome must not rest on their ids.

"Most recent" is the latest date, then the latest time of that day (criteria.ordering). Two
results of a day written without a time (or at one instant) have no order; they were put in id
order, so which one decided a "most recent" rule turned on how a server numbers its records. A
criterion that read such a run of results is evaluated again with each of them first: where
every reading gives its outcome, it stands; where not, the criterion is unknown, naming the
results and what each gives, with all of them in its evidence. An exclusion that one reading
fails is unknown too, not fail: the data cannot tell which result is the latest, and a fail
would drop the candidate on a coin toss (docs/rules.md, "Reading records").

A criterion may read two such runs (HBsAg positive and negative on a day, HBV DNA detected and
not detected on it): each result is tried first with the other runs as read, then every
combination of the runs' results (up to MAX_READINGS), as two positives read first may each
keep a fail that only both negatives first would not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from itertools import islice, product

from cohort.criteria.base import Context, Criterion, result, shown
from cohort.criteria.ordering import Tie
from cohort.model import Evidence, ObservationFact, Result, Status

__all__ = ["MAX_READINGS", "untie"]

Run = Callable[[Criterion, Context], Result]
Reading = tuple[tuple[str, ...], Result]  # the results taken as the most recent, and the outcome

# combinations of two runs' or more results tried for one criterion (a bound on the time a
# patient can take, far above what a chart holds: runs of untimed same-day results are rare)
MAX_READINGS = 256


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
    runs: list[Tie] = []
    for tie in found:
        key = tuple(sorted(map(id, tie)))
        if key not in seen:
            seen.add(key)
            runs.append(tie)
    readings: list[Reading] = []
    for tie in runs:
        each: list[Reading] = [((o.ref,), _read(crit, ctx, run, (o,))) for o in tie]
        if any(r.status is not base.status for _, r in each):
            return _unknown(crit, base, sorted(each, key=_first), tie)
        readings += each
    if len(runs) > 1:
        # every combination of the runs' results first, but those tried above (one result
        # other than the first as read) and the reading as read
        for combo in islice(
            (c for c in product(*runs) if sum(o is not t[0] for o, t in _pairs(c, runs)) > 1),
            MAX_READINGS,
        ):
            r = _read(crit, ctx, run, combo)
            if r.status is not base.status:
                # named by the runs it reads otherwise: those results against the ones as read
                moved = [(o, t) for o, t in _pairs(combo, runs) if o is not t[0]]
                pair = [(_refs(t[0] for _, t in moved), base), (_refs(o for o, _ in moved), r)]
                return _unknown(crit, base, sorted(pair, key=_first), *(t for _, t in moved))
            readings.append((_refs(combo), r))
    if base.status is not Status.FAIL:
        return _agreed(base, runs)
    # the latest date every reading allows (none if one gives none)
    dates = [base.eligible_from, *(r.eligible_from for _, r in readings)]
    later = max(dates) if all(dates) else None  # type: ignore[type-var]
    return _agreed(
        base if later == base.eligible_from else replace(base, eligible_from=later), runs
    )


_SUPERSEDED = "superseded by a newer result"


def _agreed(res: Result, runs: list[Tie]) -> Result:
    """The outcome every reading agrees on, its tied results not read first noted as giving
    it too: they are no older than the one read first, so not "superseded by a newer result"
    (a coordinator took the one quoted for the latest)."""
    tied = {o.ref for tie in runs for o in tie}
    said = f"{res.status} if the most recent too (same day, no order)"
    ignored = tuple(
        replace(e, note=said + e.note.removeprefix(_SUPERSEDED))
        if e.ref in tied and e.note.startswith(_SUPERSEDED)
        else e
        for e in res.ignored
    )
    return replace(res, ignored=ignored) if ignored != res.ignored else res


def _pairs(
    combo: tuple[ObservationFact, ...], runs: list[Tie]
) -> list[tuple[ObservationFact, Tie]]:
    return list(zip(combo, runs, strict=True))


def _refs(results: Iterable[ObservationFact]) -> tuple[str, ...]:
    return tuple(sorted(o.ref for o in results))


def _first(reading: Reading) -> tuple[str, ...]:
    return reading[0]


def _read(crit: Criterion, ctx: Context, run: Run, first: tuple[ObservationFact, ...]) -> Result:
    """`run` with the results `first` read as the most recent of their runs."""
    return run(crit, replace(ctx, _prefer=frozenset(map(id, first))))


def _unknown(crit: Criterion, base: Result, each: list[Reading], *ties: Tie) -> Result:
    """Unknown, naming each reading (the results it took as the most recent) and what it
    gives."""
    said = "; ".join(f"{r.status} with {' and '.join(refs)} ({r.reason})" for refs, r in each)
    days = dict.fromkeys(shown(t[0].when, t[0].when_last) for t in ties)
    why = f"results of {' and '.join(days)} without a time that orders them disagree: {said}"
    tied = {ref: r.status for refs, r in each for ref in refs}
    evidence: list[Evidence] = []
    seen: set[str] = set()
    for refs, r in each:
        # what the reading used (a pass, the negative results it rests on), and the results
        # it took first, also where those counted for nothing there (listed among its ignored:
        # a negative or an unreadable result beside a finding)
        own = [
            e for e in r.ignored if e.ref in refs and not any(x.ref == e.ref for x in r.evidence)
        ]
        for e in (*r.evidence, *own):
            if e.ref in seen:
                continue
            seen.add(e.ref)
            if e.ref in tied:
                e = e.noted(f"{_was(e.note)}{tied[e.ref]} if the most recent (same day, no order)")
            evidence.append(e)
    ignored = [e for e in base.ignored if e.ref not in seen]
    return result(crit, Status.UNKNOWN, why, evidence, ignored)


def _was(note: str) -> str:
    """What a tied result's note said, before what it gives if read first: "most recent" is
    what the tie puts in doubt, so dropped; a check's "most recent: negative" keeps the
    result's reading, as its positive's "result positive" does."""
    if note.startswith("most recent: "):
        return f"result {note.removeprefix('most recent: ')}; "
    return "" if note.startswith("most recent") else f"{note}; "
