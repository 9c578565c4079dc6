"""The `titer` kind: the most recent titer (ANA 1:160) against a minimum dilution (1:80)."""

from __future__ import annotations

from dataclasses import dataclass

from cohort.criteria.base import Context, Criterion, result, shown
from cohort.criteria.bounds import fails_below, readable, versus
from cohort.criteria.labs import superseded
from cohort.model import Evidence, ObservationFact, ObsValue, Result, Status
from cohort.terminology.values import Titer, split_dilution

# a titer is a dilution 1:n of serum with n >= 1 (1:1 undiluted): a smaller n is no dilution
# but one written the other way round (160/1, 0.00625 for 1:160), or a slip
_LEAST_DILUTION = 1.0
_UNREAD = "no readable titer or result"
_DISAGREE = "value and interpretation disagree"
_INDETERMINATE = "indeterminate"
# how a reason says a result is none of them
_WHY = {
    _UNREAD: "cannot be read",
    _DISAGREE: "has a value and an interpretation that disagree",
    _INDETERMINATE: "is indeterminate",
}
_VERDICT = {Status.PASS: ">=", Status.FAIL: "<", Status.UNKNOWN: "cannot tell vs"}


@dataclass(frozen=True, slots=True)
class _Reading:
    """A result as the rule reads it: `status` and `why` when it decides as the most recent
    titer; else what it says (`said`: positive or negative; None when it cannot be read)."""

    ev: Evidence
    status: Status | None = None
    why: str = ""
    said: str | None = None


def titer(crit: Criterion, ctx: Context) -> Result:
    """Most recent titer decides; else the most recent qualitative result (negative fails,
    positive is unknown); a most recent result that cannot be read is unknown."""
    p = crit.params
    minimum = float(p["min_titer"])
    titer_concepts = p["titer_concepts"]
    concepts = titer_concepts + p.get("screen_concepts", [])
    label = p.get("label") or ctx.label(titer_concepts[0])  # the test's name in reasons ("ANA")
    obs, ignored = ctx.observations(concepts)
    newer: list[_Reading] = []  # results that do not decide, newest first
    for i, o in enumerate(obs):
        concept = ctx.obs_concept(o, concepts)
        if concept in titer_concepts:
            r = _titer_result(ctx, o, concept, minimum, label)
        else:
            r = _screen_result(ctx, o, concept, minimum, label)
        if r.status is None:
            newer.append(r)
            continue
        ignored += superseded(ctx, obs[i + 1 :], concepts)
        unread = next((n for n in newer if n.said is None), None)
        if r.status is Status.FAIL and unread is not None:
            # a screen decides over a titer only by reading positive at the minimum dilution or
            # more: one that cannot be read might, so a fail (never a pass) is unknown
            ignored += [_not_titer(n) for n in newer if n is not unread]
            said = f"the newer {label} result of {unread.ev.date} {_WHY[unread.ev.note]}"
            why = f"{r.why}, but {said}: cannot tell"
            return result(crit, Status.UNKNOWN, why, [unread.ev, r.ev], ignored)
        ignored += [_not_titer(n) for n in newer]
        return result(crit, r.status, r.why, [r.ev], ignored)
    if not newer:
        return result(crit, Status.UNKNOWN, f"no {label} result", ignored=ignored)
    last = newer[0]
    ignored += [n.ev for n in newer[1:]]
    if last.said is None:
        # as lab_latest: the most recent result decides, and one that cannot be read is no
        # ground for an older one to
        why = f"most recent {label} result of {last.ev.date} {_WHY[last.ev.note]}: cannot tell"
        return result(crit, Status.UNKNOWN, why, [last.ev], ignored)
    if last.said == "negative":
        return result(crit, Status.FAIL, f"{label} negative on {last.ev.date}", [last.ev], ignored)
    return result(crit, Status.UNKNOWN, f"{label} positive without a titer", [last.ev], ignored)


def _not_titer(n: _Reading) -> Evidence:
    if n.said is None:
        return n.ev
    ev = n.ev
    return Evidence(
        ev.ref,
        ev.concept,
        ev.value,
        ev.unit,
        ev.date,
        f"{ev.note}: not a titer, the latest titer decides",
        ev.recorded_value,
        ev.recorded_unit,
    )


def _with_flag(said: str | None, flag: str | None) -> tuple[str | None, str]:
    """What a value says with its interpretation standing in when it says nothing, and the
    evidence note when that is no result; the two disagreeing is indeterminate, as in
    `checks` (both are the lab's call, and the data cannot tell which is right)."""
    if said is None:
        said = flag
    elif flag is not None and flag != said:
        return None, _DISAGREE
    if said == "indeterminate":
        return None, _INDETERMINATE
    return said, _UNREAD if said is None else ""


def _flag(ctx: Context, o: ObservationFact) -> str | None:
    # (most results have no interpretation: no lookup then)
    return ctx.term.qualitative_flag(o.interpretation) if o.interpretation else None


def _titer_result(
    ctx: Context, o: ObservationFact, concept: str, minimum: float, label: str
) -> _Reading:
    """A result of a titer code: a dilution decides against the minimum (an interpretation
    is the lab's call by its own cut-off, 1:80 flagged N by a lab whose cut-off is 1:160, and
    is not read against the trial's); a negative decides as a fail; a positive with no
    dilution is no titer; anything else, unread, is the most recent titer result still."""
    when = shown(o.when, o.when_last)
    flag = _flag(ctx, o)
    t: Titer | None = ctx.term.titer(o.value)
    # result words beside the dilution ("Negative 1:80", "Positive 1:160") are the lab's call
    # too: they, and a flag against them, can say otherwise than the dilution
    words = _words(ctx, o.value.string) if t is not None and o.value.string else None
    if t is not None and (words is None or words == "positive" and flag in (None, "positive")):
        if t.value < _LEAST_DILUTION:
            ev = ctx.obs_evidence(o, concept, "no dilution (below 1:1)")
            why = (
                f"{label} titer read as {t} on {when}: a dilution is 1:1 or more (1:"
                f"{readable(1 / t.value)} written the other way round?), cannot tell the dilution"
            )
            return _Reading(ev, Status.UNKNOWN, why)
        status = fails_below(float(t.value), t.comparator, minimum)
        ev = ctx.obs_evidence(o, concept, "most recent titer", str(t), "{titer}")
        if status is Status.UNKNOWN:
            against = f"{t} {_VERDICT[status]} 1:{minimum:g}"
        else:
            against = versus(t.comparator, _dilution(t), _VERDICT[status], f"1:{minimum:g}")
        return _Reading(ev, status, f"{label} titer {against} on {when}")
    said, note = _with_flag(words or ctx.term.qualitative_value(o.value), flag)
    if said == "negative":
        # "Negative", or negative at a dilution: the most recent titer, and a fail
        ev = ctx.obs_evidence(o, concept, "most recent titer: negative")
        return _Reading(ev, Status.FAIL, f"{label} titer negative on {when}")
    if said == "positive":
        return _Reading(ctx.obs_evidence(o, concept, "qualitative positive"), said=said)
    ev = ctx.obs_evidence(o, concept, note)
    why = f"most recent {label} titer result of {when} {_WHY[note]}: cannot tell"
    return _Reading(ev, Status.UNKNOWN, why)


def _dilution(t: Titer) -> str:
    """The dilution without its comparator ("1:40" of "<1:40"), for `versus` to say it."""
    return str(t)[len(t.comparator) :]


def _words(ctx: Context, s: str) -> str | None:
    """What result words beside the one dilution a string names say (None: no such words)."""
    at, rest = split_dilution(s)
    return ctx.term.qualitative_value(ObsValue(string=rest)) if at is not None and rest else None


def _screen_result(
    ctx: Context, o: ObservationFact, concept: str, minimum: float, label: str
) -> _Reading:
    """A result of a screen code: positive at a dilution it names ("Positive 1:160", "1:320",
    a `{titer}` quantity) of the minimum or more is a titer of at least that (the end titer,
    or the dilution screened at) and decides as the most recent titer; else what it says."""
    flag = _flag(ctx, o)
    v = o.value
    if v.string.strip():
        at, rest = split_dilution(v.string)
    else:
        at, rest = ctx.term.titer(v), ""
    if at is not None and at.value < _LEAST_DILUTION:
        at, rest = None, ""  # no dilution (160/1): what the value says without it
    if at is None:
        said, note = _with_flag(ctx.term.qualitative_value(v), flag)
    elif rest:
        said, note = _with_flag(ctx.term.qualitative_value(ObsValue(string=rest)), flag)
    else:
        # a dilution alone has no result word to disagree with: its flag is the result at that
        # dilution, and with none it is a positive at it
        said, note = _with_flag(flag or "positive", None)
    if (
        said == "positive"
        and at is not None
        and fails_below(at.value, at.comparator, minimum) is Status.PASS
    ):
        ev = ctx.obs_evidence(o, concept, "positive screen at a dilution", str(at))
        limit = f"1:{minimum:g}"
        # ("positive below/above ..." in words where the dilution has a comparator: versus)
        said = versus(at.comparator, _dilution(at), ">=", limit)
        said = said if at.comparator.strip() else f"at {said}"
        why = f"{label} positive {said} on {shown(o.when, o.when_last)}"
        return _Reading(ev, Status.PASS, why)
    if said is None:
        return _Reading(ctx.obs_evidence(o, concept, note))
    return _Reading(ctx.obs_evidence(o, concept, f"qualitative {said}"), said=said)
