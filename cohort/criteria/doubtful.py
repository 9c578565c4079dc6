"""Records whose status (intent, doNotPerform) is sent without a value: tried dropped and open."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cohort.criteria.base import Context, Criterion, result
from cohort.criteria.registry import KINDS, MEDICATIONS
from cohort.criteria.trial import concepts_read
from cohort.criteria.unnamed import Run, same_outcome
from cohort.model import (
    DoubtFact,
    Evidence,
    ExposureFact,
    ImmunizationFact,
    ObservationFact,
    PatientFacts,
    ProcedureFact,
    Result,
    Status,
)

__all__ = ["settle_doubtful"]

Read = ExposureFact | ObservationFact | ImmunizationFact | ProcedureFact


def settle_doubtful(
    criteria: Sequence[Criterion], ctx: Context, results: list[Result], run: Run
) -> list[Result]:
    """`results`, each that a record of `PatientFacts.doubtful` could change settled; `run`
    evaluates criteria as the caller does (partial dates settled alike).

    Such a record is read as given (counted, not open), but it may be one the reading rules
    drop (entered-in-error, cancelled, not-done, a proposal, an order not to give the drug) or
    one a status keeps open (active, on-hold). SPEC is silent; no reading is taken as the most
    permissive one. Each criterion reading such a record is tried again with every such record
    dropped, and with each read as open: where the readings disagree, the criterion is unknown
    (the reason names the record), or, when every reading fails, it fails with no date (it may
    fail for longer). Where they agree the result stands: a course that ended before a
    washout's window changes nothing. docs/rules.md "Reading records"."""
    doubtful = ctx.facts.doubtful
    if not doubtful:
        return results
    f = ctx.facts
    refs = {d.ref for d in doubtful}
    read: list[Read] = [*f.exposures, *f.observations, *f.immunizations, *f.procedures]
    read = [x for x in read if _base(x.ref) in refs]
    if not read:
        return results  # (dated after an as_of asked: none is on record)
    concepts = frozenset[str]().union(*(ctx.concepts(x.ref, x.codes, x.text) for x in read))
    exposures = any(x.ref in refs for x in f.exposures)
    # the what-ifs: every such record dropped; every one a status keeps open read so
    readings = [_without(f, refs)]
    opened = {d.ref: d.ongoing for d in doubtful if d.ongoing is not None}
    if opened:
        readings.append(_opened(f, opened))
    out = []
    for crit, res in zip(criteria, results, strict=True):
        if not (concepts_read(crit) & concepts or (exposures and _reads_medications(crit))):
            out.append(res)
            continue
        alts = [run([crit], ctx.fresh(facts=facts, _ties=None))[0] for facts in readings]
        if all(same_outcome(a, res) for a in alts):
            out.append(res)
        else:
            out.append(_settled(crit, res, alts, doubtful))
    return out


def _base(ref: str) -> str:
    """The record a fact is of (a component's: its Observation's)."""
    return ref.partition("#")[0]


def _without(f: PatientFacts, refs: set[str]) -> PatientFacts:
    """The facts with none of the records `refs` (each read as dropped)."""
    return replace(
        f,
        exposures=[e for e in f.exposures if e.ref not in refs],
        observations=[o for o in f.observations if _base(o.ref) not in refs],
        immunizations=[i for i in f.immunizations if i.ref not in refs],
        procedures=[p for p in f.procedures if p.ref not in refs],
    )


def _opened(f: PatientFacts, opened: dict[str, Any]) -> PatientFacts:
    """The facts with each record of `opened` read as open (those on record only)."""
    return replace(
        f,
        exposures=[opened.get(e.ref, e) for e in f.exposures],
        procedures=[opened.get(p.ref, p) for p in f.procedures],
    )


def _reads_medications(crit: Criterion) -> bool:
    """Whether `crit` reads medication records (`current_medication` also asks whether there
    is any at all)."""
    return MEDICATIONS in KINDS[crit.kind].reads.values()


def _settled(crit: Criterion, res: Result, alts: list[Result], doubtful: list[DoubtFact]) -> Result:
    """`res` made unknown (an exclusion every reading fails: undated), naming the records."""
    why = {d.ref: d for d in doubtful}
    # the rows of those records a reading used or set aside (dated), else each such record
    rows: dict[str, Evidence] = {}
    for r in (res, *alts):
        for ev in (*r.evidence, *r.ignored):
            if ev.ref in why and ev.ref not in rows:
                rows[ev.ref] = ev
    if not rows:
        rows = {ref: Evidence(ref) for ref in why}
    noted = [ev.noted(f"{why[ref].why}: {_may(why[ref])}") for ref, ev in rows.items()]
    evidence = [*(ev for ev in res.evidence if ev.ref not in rows), *noted]
    ignored = [ev for ev in res.ignored if ev.ref not in rows]
    first = next(iter(rows))
    more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
    named = f"{first}: {why[first].why} ({_may(why[first])}){more}"
    if all(a.status is Status.FAIL for a in (res, *alts)):
        reason = f"{res.reason}; {named}: it may fail for longer, check the chart"
        return result(crit, Status.FAIL, reason, evidence, ignored)
    reason = f"{named}: check the chart; read as given: {res.status}: {res.reason}"
    return result(crit, Status.UNKNOWN, reason, evidence, ignored)


def _may(d: DoubtFact) -> str:
    return "it may not count or may be ongoing" if d.ongoing is not None else "it may not count"
