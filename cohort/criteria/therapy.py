"""Criterion kind `current_medication`: a qualifying therapy current on the as-of date."""

from __future__ import annotations

from cohort.criteria.base import Context, Criterion, latest, result, shown
from cohort.criteria.intervals import exposure_dated, exposure_evidence
from cohort.criteria.medication import drug_named, ingredients
from cohort.model import ExposureFact, Result, Status


def current_medication(crit: Criterion, ctx: Context) -> Result:
    p = crit.params
    starts = [e.start for e in ctx.facts.exposures] + ctx.facts.other_medications
    if not any(d is None or d <= ctx.as_of for d in starts):
        return result(crit, Status.UNKNOWN, "no medication records at all")
    # a record whose partial start also stands for days after as_of is a record on some of
    # those days only: on the others there is none ("no medication records at all", unknown)
    unsure = not any(d is None or d <= ctx.as_of for d in ctx.facts.other_medications) and all(
        e.start is not None and (e.start_last or e.start) > ctx.as_of for e in ctx.facts.exposures
    )
    evidence, ignored, undated, maybe = [], [], [], []
    why_maybe = ""
    past: list[tuple[ExposureFact, str]] = []  # qualifying, not current: for a fail's reason
    local: list[ExposureFact] = []  # set aside as not systemic: for a fail's reason
    for e in ctx.exposures(p["concepts"]):
        concept = ",".join(sorted(set(p["concepts"]) & ctx.concepts(e.ref, e.codes, e.text)))
        current = ctx.current(e)
        if p.get("systemic_only", True) and not ctx.systemic(e):
            ignored.append(exposure_evidence(e, concept, "not systemic (route or form)"))
            local.append(e)
        elif current:
            evidence.append(exposure_evidence(e, concept, "current"))
        elif current is None:
            # current on some of the days its partial dates stand for, not on others, or
            # without a start and ending on or after as_of (it may start after as_of)
            it, name = exposure_dated(e, concept, ""), ctx.label(concept)
            why_maybe = why_maybe or (
                f"{name} ending {shown(e.end, e.end_last)} without a start date: confirm it"
                " is current"
                if e.start is None
                else f"{name} {it.partial()}: cannot tell if current on {ctx.as_of}"
            )
            maybe.append(it.ev.noted(f"{it.doubt()}: may be current"))
        elif e.ongoing and e.start is None:
            undated.append(exposure_evidence(e, concept, "ongoing, no start date"))
        else:
            ignored.append(exposure_evidence(e, concept, "not current on the as-of date"))
            past.append((e, concept))
    if evidence:
        return result(
            crit,
            Status.PASS,
            f"current {ctx.label(evidence[0].concept)}: {evidence[0].value}",
            evidence,
            ignored + maybe,
        )
    if maybe:
        return result(crit, Status.UNKNOWN, why_maybe, maybe + undated, ignored)
    if undated:
        # an ongoing record without a start date: the data cannot tell it started by as_of
        return result(
            crit,
            Status.UNKNOWN,
            f"{ctx.label(undated[0].concept)} ongoing without a start date: confirm it is current",
            undated,
            ignored,
        )
    if unsure:
        e = min(ctx.facts.exposures, key=lambda x: (x.start or ctx.as_of, x.ref))
        began = shown(e.start, e.start_last)
        return result(
            crit,
            Status.UNKNOWN,
            f"no current qualifying therapy, the only medication records start {began}: "
            f"cannot tell if on record by {ctx.as_of}",
            ignored=ignored,
        )
    return result(crit, Status.FAIL, _none_current(ctx, past, local), ignored=ignored)


def _none_current(
    ctx: Context, past: list[tuple[ExposureFact, str]], local: list[ExposureFact]
) -> str:
    """A fail's reason, with what was found but not counted (QA: "no current qualifying
    therapy" read as no record at all): the qualifying record that ended last, by its drug and
    its concept's label as a washout's fail names it ("hydroxychloroquine (antimalarial)",
    criteria.medication.drug_named); else, when only records not systemic were set aside,
    their ingredients by the mappings' names. Fixed wording only: a record's free text is not
    quoted."""
    why = "no current qualifying therapy"
    ended = [(latest(e.end, e.end_last), e, c) for e, c in past if e.end is not None]
    if ended:
        _, e, concept = max(ended, key=lambda x: (x[0], x[1].ref))
        drug = ingredients(ctx, e, set(concept.split(",")))
        last = drug_named(ctx.label(concept), drug)
        return f"{why} (last: {last}, ended {shown(e.end, e.end_last)})"
    if local and not past:
        names = sorted({i for e in local for i in ctx.term.medication_ingredients(e.codes, e.text)})
        which = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "") if names else "records"
        return f"{why} ({which} not counted: not systemic by route or form)"
    return why
