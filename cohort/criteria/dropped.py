"""Records the reading rules dropped (`PatientFacts.dropped`) as ignored evidence rows of the
criteria reading their concepts: one list, which evidence.csv, `cohort explain` and every other
reader of a result show alike (README "What it writes")."""

from __future__ import annotations

from collections.abc import Sequence

from cohort.criteria.base import Context, Criterion
from cohort.criteria.days import condition_shown, shown
from cohort.criteria.intervals import exposure_evidence
from cohort.criteria.trial import concepts_read
from cohort.model import (
    ConditionFact,
    DroppedFact,
    Evidence,
    ExposureFact,
    ImmunizationFact,
    ObservationFact,
    ProcedureFact,
    Result,
)
from cohort.safetext import clipped

__all__ = ["dropped_note", "unclaimed", "with_dropped"]


def dropped_note(d: DroppedFact) -> str:
    """Why a dropped record is set aside, as its evidence row's note says."""
    return f"dropped by the reading rules: {d.why}" if d.by_rule else f"not read: {d.why}"


def _concepts(d: DroppedFact, ctx: Context) -> frozenset[str]:
    # (memoised apart from a kept record of the same reference: a stub's readable copy)
    return ctx.concepts(d.ref + " (dropped)", d.codes, d.text)


def _wanted(crit: Criterion) -> frozenset[str]:
    return concepts_read(crit)


def with_dropped(crit: Criterion, ctx: Context, r: Result) -> Result:
    """`r` with a row among its ignored ones for each dropped record of a concept `crit`
    reads (not one its rows already show: a record that failed to read is one of them,
    criteria.unreadable), dated and valued as the record reads (a result in the concept's
    canonical unit), the note naming the reading rule."""
    if not ctx.facts.dropped:
        return r  # (nearly every patient)
    want = _wanted(crit)
    hits = [(d, hit) for d in ctx.facts.dropped if (hit := want & _concepts(d, ctx))]
    if not hits:
        return r  # (most criteria read none of a patient's dropped records)
    shown_refs = {e.ref for e in (*r.evidence, *r.ignored)}
    # (the first concept in sorted order, as a result's)
    rows = [_row(ctx, d, min(hit)) for d, hit in hits if d.ref not in shown_refs]
    return r.with_rows(r.evidence, (*r.ignored, *rows)) if rows else r


def unclaimed(criteria: Sequence[Criterion], ctx: Context) -> list[DroppedFact]:
    """The dropped records of no criterion's concepts (`cohort explain` lists them apart)."""
    want = frozenset().union(*(_wanted(c) for c in criteria))
    return [d for d in ctx.facts.dropped if not want & _concepts(d, ctx)]


def _row(ctx: Context, d: DroppedFact, concept: str) -> Evidence:
    note, f = dropped_note(d), d.fact
    if isinstance(f, ObservationFact):
        return ctx.obs_evidence(f, concept, note)
    if isinstance(f, ExposureFact):
        return exposure_evidence(f, concept, note)
    if isinstance(f, ConditionFact):
        return Evidence(d.ref, concept, clipped(f.text), "", condition_shown(f), note)
    if isinstance(f, ImmunizationFact):
        return Evidence(d.ref, concept, clipped(f.text), "", shown(f.when, f.when_last), note)
    if isinstance(f, ProcedureFact):
        return Evidence(d.ref, concept, clipped(f.text), "", shown(f.start, f.start_last), note)
    return Evidence(d.ref, concept, clipped(d.text), note=note)
