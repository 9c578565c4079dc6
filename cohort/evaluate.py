"""Evaluate a trial's criteria for one patient's facts at an explicit as-of date (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from cohort.criteria.base import Context, Criterion, TerminologyLike
from cohort.criteria.doubtful import settle_doubtful
from cohort.criteria.dropped import with_dropped
from cohort.criteria.obsdays import settle
from cohort.criteria.ordering import in_order
from cohort.criteria.registry import KINDS
from cohort.criteria.searched import with_searched
from cohort.criteria.ties import untie
from cohort.criteria.trial import Trial
from cohort.criteria.unnamed import settle_unnamed
from cohort.criteria.unreadable import concepts_of, settle_unreadable
from cohort.extract import ReadingRules
from cohort.model import PatientFacts, Result, Status
from cohort.rank import eligible_from


def make_context(
    facts: PatientFacts,
    term: TerminologyLike,
    as_of: date,
    rules: ReadingRules,
    site: dict[str, Any] | None = None,
) -> Context:
    return Context(
        facts=facts,
        term=term,
        as_of=as_of,
        site=site or {},
        non_systemic=rules.non_systemic,
        active_statuses=rules.active_clinical,
        missing_status_is_active=rules.missing_status_is_active,
    )


def is_screened(trial: Trial, ctx: Context) -> bool:
    """Screened = has a (non-dropped) condition of a screening concept, whatever its dates."""
    want = set(trial.screen_concepts)
    # (a screening condition that could not be read too: `sle_diagnosis` is then unknown)
    return any(want & ctx.concepts(c.ref, c.codes, c.text) for c in ctx.facts.conditions) or any(
        want & concepts_of(u, ctx) for u in ctx.facts.unreadable if u.ref.startswith("Condition/")
    )


def evaluate(trial: Trial, ctx: Context) -> list[Result]:
    """Every criterion's result for the patient, its evidence rows in reading order (the used
    ones as the criterion gives them, the ignored, with the records of its concepts the reading
    rules dropped, newest first: criteria.ordering.in_order),
    the one order evidence.csv, `cohort explain` and summary.html read them in."""
    results = held_back(trial, ctx, _evaluate(trial.criteria, ctx))
    # (last: a fail or unknown on no record gets its search row once settled, criteria.searched;
    # the records the reading rules dropped are no record it rests on, criteria.dropped)
    by_id = {c.id: c for c in trial.criteria}
    return [
        in_order(with_dropped(by_id[r.criterion], ctx, with_searched(by_id[r.criterion], ctx, r)))
        for r in results
    ]


def _evaluate(criteria: Sequence[Criterion], ctx: Context) -> list[Result]:
    results = settle(criteria, ctx, _run)
    results = settle_unnamed(criteria, ctx, results, _settled)
    results = settle_doubtful(criteria, ctx, results, _settled)
    return settle_unreadable(criteria, ctx, results)


# dates a patient's eligible_from is checked on, at most (each a later one: a chain of records
# each failing until the next is far longer than a chart holds)
MAX_CHECKS = 10


def held_back(trial: Trial, ctx: Context, results: list[Result]) -> list[Result]:
    """`results`, where the eligible_from they give is a date on which a time-limited
    criterion would fail (docs/rules.md "Windows"), with the fail that sets that date given the
    first date on which none would (none: one fails with no known end) and its reason saying
    why. Only the records on file by as_of are read then (no new exposure); one whose partial
    date may be after as_of (not on record yet, so unknown now) is on record by then."""
    limited = [c for c in trial.criteria if c.time_limited]
    ids = {c.id for c in limited}
    first = day = eligible_from(results, ids)
    why = ""
    for _ in range(MAX_CHECKS):
        if day is None:
            break
        then = _evaluate(limited, _known_on(ctx, day))
        failing = [r for r in then if r.status is Status.FAIL]
        if not failing:
            break
        later = eligible_from(then, ids)
        if not why:
            r = next((r for r in failing if r.eligible_from is None), failing[0])
            end = f"until {later}" if later else "with no known end"
            why = f"when {r.criterion} would fail {end}"
        day = later if later is not None and later > day else None
    else:
        day = None  # (not settled within MAX_CHECKS dates: no date is known)
    if day == first:
        return results
    return [_holding(r, first, day, why) for r in results]


def _holding(r: Result, first: date | None, day: date | None, why: str) -> Result:
    """A fail whose eligible_from was `first`, held back to `day`; any other result as it is."""
    if r.status is not Status.FAIL or r.eligible_from is None or r.eligible_from != first:
        return r
    reason = r.reason
    if f"(until {first}" in reason and reason.endswith(")"):
        reason = f"{reason[:-1]}, {why})"
    else:
        reason = f"{reason} ({why})"
    return replace(r, reason=reason, eligible_from=day)


def _known_on(ctx: Context, day: date) -> Context:
    """`ctx` on `day`, with only the records that may be dated on or before its as_of."""
    f, cut = ctx.facts, ctx.as_of
    facts = replace(
        f,
        observations=[o for o in f.observations if o.when is None or o.when <= cut],
        exposures=[e for e in f.exposures if e.start is None or e.start <= cut],
        immunizations=[i for i in f.immunizations if i.when is None or i.when <= cut],
        procedures=[p for p in f.procedures if p.start is None or p.start <= cut],
    )
    return ctx.fresh(facts=facts, as_of=day, _ties=None)


def _settled(criteria: Sequence[Criterion], ctx: Context) -> list[Result]:
    return settle(criteria, ctx, _run)


def _run(crit: Criterion, ctx: Context) -> Result:
    # results of one day that nothing orders are each tried as the most recent (criteria.ties)
    return untie(crit, ctx, KINDS[crit.kind].fn)
