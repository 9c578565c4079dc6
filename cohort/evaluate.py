"""Evaluate a trial's criteria for one patient's facts at an explicit as-of date (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from cohort.criteria.base import Context, Criterion, TerminologyLike
from cohort.criteria.obsdays import settle
from cohort.criteria.registry import KINDS
from cohort.criteria.ties import untie
from cohort.criteria.trial import Trial
from cohort.criteria.unnamed import settle_unnamed
from cohort.criteria.unreadable import concepts_of, settle_unreadable
from cohort.extract import ReadingRules
from cohort.model import PatientFacts, Result


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
    results = settle(trial.criteria, ctx, _run)
    results = settle_unnamed(trial.criteria, ctx, results, _settled)
    return settle_unreadable(trial.criteria, ctx, results)


def _settled(criteria: Sequence[Criterion], ctx: Context) -> list[Result]:
    return settle(criteria, ctx, _run)


def _run(crit: Criterion, ctx: Context) -> Result:
    # results of one day that nothing orders are each tried as the most recent (criteria.ties)
    return untie(crit, ctx, KINDS[crit.kind].fn)
