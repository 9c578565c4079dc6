"""Medication records that name no drug (`PatientFacts.unnamed`, extract.medref): their
Medication is not in the data (or dropped) and their reference has no display.

Such a record may be any drug: a medication criterion passed as if it were not there (a
rituximab order whose Medication was missing from the export passed `washout_b_cell_depletion`).
Each criterion reading medication records whose outcome such a record could change is tried
again with the record read as the criterion's drugs: where that changes the outcome, an
exclusion that passed and an inclusion that failed are unknown (the reason names the record), an
exclusion that failed for a time fails with no date. Trying the criterion, rather than making
every medication criterion unknown, keeps to its own reading (dates, windows, statuses): an
order of five years ago is in no washout's window and changes none. docs/rules.md."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cohort.criteria.base import Context, Criterion, result
from cohort.criteria.registry import KINDS, MEDICATIONS
from cohort.model import Evidence, Result, Status, UnreadableFact

__all__ = ["Run", "same_outcome", "settle_unnamed"]

Run = Callable[[Sequence[Criterion], Context], list[Result]]


def same_outcome(a: Result, b: Result) -> bool:
    """Whether another reading of the records left a criterion's outcome as it was."""
    return a.status is b.status and a.eligible_from == b.eligible_from


def _drugs(crit: Criterion) -> frozenset[str]:
    """The concepts `crit` matches against medication records (none: it reads none)."""
    keys = [k for k, reads in KINDS[crit.kind].reads.items() if reads == MEDICATIONS]
    return frozenset(c for k in keys for c in crit.params.get(k, ()))


def _may_change(crit: Criterion, res: Result) -> bool:
    """Whether another medication record could change `res`: more records never make an
    exclusion pass nor an inclusion fail, nor an exclusion fail for less long."""
    if crit.type == "exclusion":
        return res.status is Status.PASS or (
            res.status is Status.FAIL and res.eligible_from is not None
        )
    return res.status is Status.FAIL


def settle_unnamed(
    criteria: Sequence[Criterion], ctx: Context, results: list[Result], run: Run
) -> list[Result]:
    """`results`, each that a record naming no drug could change settled as the module says;
    `run` evaluates criteria as the caller does (partial dates settled alike)."""
    if not ctx.facts.unnamed:
        return results
    out = []
    for crit, res in zip(criteria, results, strict=True):
        drugs = _drugs(crit) if _may_change(crit, res) else frozenset()
        if not drugs:
            out.append(res)
            continue
        # the same patient with each such record read as any of the criterion's drugs (a fresh
        # context: its memos and index are of the records as they name themselves)
        seeded = {u.ref: drugs for u in ctx.facts.unnamed}
        what_if = ctx.fresh(_concepts=seeded, _ties=None)
        alt = run([crit], what_if)[0]
        if same_outcome(alt, res):
            out.append(res)
        else:
            out.append(_settled(crit, res, alt, ctx.facts.unnamed))
    return out


def _settled(crit: Criterion, res: Result, alt: Result, unnamed: list[UnreadableFact]) -> Result:
    """`res` made unknown (an exclusion's fail: undated), naming the records that changed it."""
    why = {u.ref: u.why for u in unnamed}
    # the records the other reading used (dated, as its evidence), else every such record
    used = [ev for ev in alt.evidence if ev.ref in why] or [Evidence(u.ref) for u in unnamed]
    evidence = [ev.noted(f"names no drug: {why[ev.ref]}") for ev in used]
    first = used[0].ref
    more = f" (and {len(used) - 1} more)" if len(used) > 1 else ""
    named = f"{first} names no drug ({why[first]}){more}"
    if res.status is Status.FAIL and crit.type == "exclusion":
        reason = f"{res.reason}; {named}: it may fail for longer, check the chart"
        return result(crit, Status.FAIL, reason, (*res.evidence, *evidence), res.ignored)
    reason = f"{named}: check the chart; without it {res.status}: {res.reason}"
    return result(crit, Status.UNKNOWN, reason, (*res.evidence, *evidence), res.ignored)
