"""Records that could not be read (`PatientFacts.unreadable`): no criterion that reads one of
their concepts passes as if they were not there (docs/rules.md "Reading records").

A record refused by validation used to be simply missing: a rituximab administration without
a date, rejected, left `washout_b_cell_depletion` passing. Now a criterion reading its concept
(or, for a Patient record, a criterion reading the Patient) that would pass is unknown, with a
reason naming the record, where it was read and why it could not be; so is an inclusion that
would fail (the record may hold what it lacks). An exclusion that fails on the records that
were read still fails; one that fails for a time (a washout: `eligible_from`) fails with no
date, the record named (it may be later)."""

from __future__ import annotations

from collections.abc import Sequence

from cohort.criteria.base import Context, Criterion, result
from cohort.criteria.trial import concepts_read
from cohort.model import Evidence, Result, Status, UnreadableFact

__all__ = ["PATIENT_KINDS", "concepts_of", "settle_unreadable", "unreadable_of"]

# the kinds that read the Patient record (birth date, death, whether it is in use)
PATIENT_KINDS = frozenset({"age", "deceased", "active_record"})


def concepts_of(u: UnreadableFact, ctx: Context) -> frozenset[str]:
    """The concepts of an unreadable record's codes. Memoised apart from the record's readable
    copy of the same reference (a stub is stored with it: source.refused.over_readable), which
    may be coded otherwise (a newer version recoded): each is read by its own codes."""
    return ctx.concepts(u.ref + " (unreadable)", u.codes, u.text)


def unreadable_of(crit: Criterion, ctx: Context) -> list[tuple[UnreadableFact, str]]:
    """The patient's unreadable records that `crit` would read, each with the concept it
    reads them as ("Patient" for a Patient record)."""
    want = concepts_read(crit)
    out = []
    for u in ctx.facts.unreadable:
        if u.ref.startswith("Patient/"):
            if crit.kind in PATIENT_KINDS:
                out.append((u, "Patient"))
            continue
        hit = want & concepts_of(u, ctx)
        if hit:
            out.append((u, sorted(hit)[0]))
    return out


def settle_unreadable(
    criteria: Sequence[Criterion], ctx: Context, results: list[Result]
) -> list[Result]:
    """`results`, each that an unreadable record of its concepts could change made unknown (a
    washout's fail, given no end date)."""
    if not ctx.facts.unreadable:
        return results
    out = []
    for crit, res in zip(criteria, results, strict=True):
        hits = unreadable_of(crit, ctx) if res.status is not Status.UNKNOWN else []
        if not hits or (
            res.status is Status.FAIL and crit.type == "exclusion" and not res.eligible_from
        ):
            out.append(res)
            continue
        first, concept = hits[0]
        more = f" (and {len(hits) - 1} more)" if len(hits) > 1 else ""
        unread = (
            f"{ctx.label(concept)} record {first.ref} could not be read"
            + (f" ({first.why})" if first.why else "")
            + more
        )
        evidence = (*res.evidence, *(Evidence(u.ref, c, note="could not be read: " + u.why)
                                     for u, c in hits))  # fmt: skip
        if res.status is Status.FAIL and crit.type == "exclusion":
            # it still fails, but until no date: the record may be later (a dose, a vaccine)
            reason = f"{res.reason}; {unread}: it may fail for longer, check the chart"
            out.append(result(crit, Status.FAIL, reason, evidence, res.ignored))
            continue
        reason = f"{unread}: check the chart; without it {res.status}: {res.reason}"
        out.append(result(crit, Status.UNKNOWN, reason, evidence, res.ignored))
    return out
