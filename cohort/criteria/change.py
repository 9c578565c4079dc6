"""Criterion kind `lab_change`: the change between the two most recent results in a window."""

from __future__ import annotations

from cohort.criteria.base import Context, Criterion, result, window_start
from cohort.criteria.bounds import amount, readable, sign, to_unit
from cohort.criteria.labs import superseded
from cohort.criteria.plausible import NOT_CONVERTIBLE, as_recorded, implausible, kind_of
from cohort.model import Result, Status


def lab_change(crit: Criterion, ctx: Context) -> Result:
    """The newest result minus the one before it, both in the window: more than `max_change`
    either way fails, at most passes; fewer than two results, or one of the two without a
    comparable number, is unknown."""
    p = crit.params
    concepts = p["concepts"]
    since = window_start(ctx.as_of, p)
    obs, ignored = ctx.observations(concepts, since)
    name = ctx.label(concepts)
    if len(obs) < 2:
        when = f" since {since}" if since else ""
        count = "only 1" if obs else "no"
        why = f"{count} {name} result{when}: two are needed to tell a change"
        evidence = [ctx.obs_evidence(o, ctx.obs_concept(o, concepts), "the only one") for o in obs]
        return result(crit, Status.UNKNOWN, why, evidence, ignored)
    pair, older = obs[:2], obs[2:]
    ignored += superseded(ctx, older, concepts)
    limit = float(p["max_change"])
    values: list[float] = []
    evidence = []
    for o, note in zip(pair, ("most recent", "the one before"), strict=True):
        concept = ctx.obs_concept(o, concepts)
        v = ctx.numeric(o, concept)
        unit = ctx.term.canonical_unit(concept) or ""
        if v is None:
            # as lab_latest says it: out of the plausible range, else not convertible
            far = implausible(ctx, o, concept)
            ev = ctx.obs_evidence(o, concept, far or NOT_CONVERTIBLE, convert=False)
            why = far or f"{as_recorded(ev.value, ev.unit)} not convertible to {to_unit(unit)}"
            return result(
                crit,
                Status.UNKNOWN,
                f"{name} {why}",
                [*evidence, ev],
                ignored,
                unconvertible=name,
                no_value=kind_of(far),
            )
        if sign(o):
            # a bound (">150 kg") is no number to subtract
            evidence.append(ctx.obs_evidence(o, concept, note, f"{sign(o)}{v:g}", unit))
            why = f"{name} {amount(sign(o) + readable(v), unit)} on {o.when}: cannot tell a change"
            return result(crit, Status.UNKNOWN, why, evidence, ignored)
        evidence.append(ctx.obs_evidence(o, concept, note, f"{v:g}", unit))
        values.append(v)
    change = values[0] - values[1]
    size = abs(change)
    shown = ("+" if change > 0 else "-" if change < 0 else "") + readable(size, limit)
    unit = ctx.term.canonical_unit(ctx.obs_concept(pair[0], concepts)) or ""
    span = f"({pair[1].when} to {pair[0].when})"
    said = f"{name} changed by {amount(shown, unit)} {span}"
    if size > limit:
        return result(crit, Status.FAIL, f"{said}, more than {limit:g}", evidence, ignored)
    return result(crit, Status.PASS, f"{said}, at most {limit:g}", evidence, ignored)
