"""The `checks` kind: condition/lab findings, each with the outcome it causes; worst wins."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from cohort.criteria.base import (
    Context,
    Criterion,
    result,
    shown,
    window_start,
    worst,
)
from cohort.criteria.bounds import below
from cohort.criteria.days import condition_days, condition_shown
from cohort.criteria.ids import says_id
from cohort.model import ConditionFact, Evidence, ObservationFact, Result, Status
from cohort.safetext import clipped

_LESS = re.compile(r"^\s*(<|<=|less than|below)\s*\d", re.I)
# a measured load written as text ("1250 IU/mL", "1250"): a plain number, no bound before it
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)(?![\d.])")
# a check's `then` by its value: Status(...) costs an enum lookup per check per patient
_THEN = {s.value: s for s in Status}
# what a `numeric = "detected"` check's reason says of its finding
_DETECTED = {"positive": "detected", "negative": "not detected"}


def classify(ctx: Context, o: ObservationFact, concept: str, check: dict[str, Any]) -> str | None:
    """positive / negative / indeterminate for a presence-type finding, None when unreadable.

    The value is read first: a number against the check's cut-off (the trial's cut-off, not the
    lab's), a load (`numeric = "detected"`), else its result words or code. An interpretation
    that says otherwise makes it indeterminate: neither is picked (docs/rules.md). A load given
    only as a `<` bound says how much, not whether: the interpretation, or words beside it
    ("<20 IU/mL detected"), decide; with neither it is not detected.
    """
    said, bound = _reading(ctx, o, concept, check)
    # (most results have no interpretation: no lookup then, as classify runs for every result)
    flag = ctx.term.qualitative_flag(o.interpretation) if o.interpretation else None
    if bound:
        return flag or "negative"
    if said is None:
        said = ctx.term.qualitative_value(o.value)
    if said is None:
        return flag
    return said if flag is None or flag == said else "indeterminate"


def _reading(
    ctx: Context, o: ObservationFact, concept: str, check: dict[str, Any]
) -> tuple[str | None, bool]:
    """What the check's numeric rule reads in the value (a number against its cut-off, a load
    with the words written beside it; None: nothing), and whether that is a load's `<` bound
    alone, which says nothing of whether the virus was detected."""
    qty = o.value.quantity
    if "positive_at" in check and qty is not None:
        v = ctx.numeric(o, concept)
        if v is not None:
            # a comparator ("<30", ">10") may leave the value on either side of a cut-off
            under_positive = below(v, qty.comparator, float(check["positive_at"]))
            if under_positive is False:
                return "positive", False
            equivocal = float(check.get("equivocal_at", check["positive_at"]))
            if under_positive and below(v, qty.comparator, equivocal):
                return "negative", False
            return "indeterminate", False
    if check.get("numeric") != "detected":
        return None, False
    if qty is not None:
        if qty.comparator in ("<", "<="):
            return None, True
        return ("negative" if qty.value <= 0 else "positive"), False
    text = o.value.string
    if not text:
        return None, False
    # words inside the text ("<20 IU/mL HBV DNA detected", "Target not detected") say whether
    # whatever number is beside them; only a plain number they deny is a contradiction
    named = ctx.term.qualitative_named(text)
    if named == "positive":
        return named, False
    if named is None and _LESS.match(text):
        return None, True
    number = _NUMBER.match(text)
    # a plain number above zero is a measured load, as in a valueQuantity ("0" stays unread)
    if number is not None and float(number[1]) > 0:
        return ("positive" if named is None else "indeterminate"), False
    return named, False


def _condition_check(
    ctx: Context,
    cid: str,
    chk: dict[str, Any],
    then: Status,
    unconfirmed: frozenset[str] = frozenset(),
    others: list[dict[str, Any]] | None = None,
) -> tuple[Status, list[Evidence], list[Evidence], str]:
    """A condition check's outcome; one that would count but whose verificationStatus is one
    of `unconfirmed` (provisional, differential: the criterion's unconfirmed_verification) is
    no established finding: unknown, naming it, unless an established one counts. So is an
    active one dated more than the check's `stale_after_days` before as_of: likely never
    closed (a 1995 pregnancy still marked active), for review. `cid`: the criterion's id,
    not said again in its reasons (`_named`). `others`: the criterion's checks, which the note
    of a condition its `unless` sets aside may name (`_set_aside`)."""
    hits, unsure, ignored, shaky, stale = [], [], [], [], []
    found: list[tuple[ConditionFact, str]] = []  # the hits' conditions, with what they matched
    why_unsure = why_shaky = why_stale = ""
    stale_days = chk.get("stale_after_days")
    for c in ctx.conditions(chk["condition"]):
        concepts = ctx.concepts(c.ref, c.codes, c.text)
        # evidence names the concepts matched (what the mapping files call them), as every
        # other kind's does; the label is the reasons' word
        matched = ",".join(n for n in chk["condition"] if n in concepts)
        # (no unit, note; the text as a reason quotes it, so --no-phi finds it there)
        ev = Evidence(c.ref, matched, clipped(c.text), "", condition_shown(c))
        active = ctx.active(c) if chk.get("active") else True
        if "unless" in chk and not concepts.isdisjoint(chk["unless"]):
            ignored.append(_note(ev, _set_aside(ctx, chk, concepts, others or [])))
        elif active and ctx.on_record(c) is None:
            # its partial date also stands for days after as_of, when it is not a record yet
            why_unsure = why_unsure or (
                f"{_named(ctx, cid, chk, matched)} condition recorded only as {ev.date}: "
                f"may be after {ctx.as_of}"
            )
            unsure.append(_note(ev, "partial date: may be after the as-of date"))
        elif active is None:
            # abated in a month or year that contains as_of: active on some of its days only
            abated = shown(c.abatement, c.abatement_last)
            why_unsure = why_unsure or (
                f"{_named(ctx, cid, chk, matched)} condition abated {abated}: "
                f"cannot tell if still active on {ctx.as_of}"
            )
            unsure.append(_note(ev, f"abated {abated}"))
        elif not active:
            ignored.append(_note(ev, f"not active ({c.clinical_status or 'abated'})"))
        elif c.verification_status in unconfirmed:
            why_shaky = why_shaky or (
                f"{_named(ctx, cid, chk, matched)} condition recorded as {c.verification_status}: "
                "confirm the diagnosis"
            )
            shaky.append(_note(ev, f"verificationStatus {c.verification_status}: not confirmed"))
        elif stale_days is not None and _stale(ctx, c, stale_days):
            why_stale = why_stale or (
                f"{_named(ctx, cid, chk, matched)}{_when(c)}, still marked active: review"
            )
            note = f"still marked active, dated more than {stale_days} days before as-of"
            stale.append(_note(ev, note))
        else:
            hits.append(_note(ev, "condition"))
            found.append((c, matched))
    if hits:
        why = _found(ctx, cid, chk, found, hits)
        return then, hits, ignored + unsure + shaky + stale, why
    if unsure or shaky or stale:
        why = ", ".join(w for w in (why_unsure, why_shaky, why_stale) if w)
        return Status.UNKNOWN, unsure + shaky + stale, ignored, why
    return Status.PASS, [], ignored, ""


def _set_aside(
    ctx: Context, chk: dict[str, Any], concepts: frozenset[str], checks: list[dict[str, Any]]
) -> str:
    """The note of a condition the check's `unless` sets aside: the label of each `unless`
    concept it is, and the check of the criterion that reviews it instead, when another has the
    concept in its `condition` and does not set the record aside too. "listed exception" on
    every such row read as allowed by the protocol, a breast DCIS that the safety net leaves to
    the in-situ check included."""
    said = []
    for concept in chk["unless"]:
        if concept not in concepts:
            continue
        by = next(
            (
                o.get("label") or ctx.label(o["condition"])
                for o in checks
                if o is not chk
                and concept in o.get("condition", ())
                and concepts.isdisjoint(o.get("unless", ()))
            ),
            None,
        )
        said.append(ctx.label(concept) + (f" (reviewed by the {by} check)" if by else ""))
    return "set aside as " + ", and as ".join(said)


def _stale(ctx: Context, c: ConditionFact, days: int) -> bool:
    """Whether any day the condition's date can stand for is more than `days` before as_of
    (a partial date with days on both sides: not every day gives `then`); undated: no."""
    first = condition_days(c)[0]
    return first is not None and (ctx.as_of - first).days > days


def _named(ctx: Context, cid: str, chk: dict[str, Any], matched: str, quoted: str = "") -> str:
    """What a condition reason calls a finding: the concept matched ("pregnancy"), after the
    check's own `label` when it sets one that says something else ("possible malignancy not in
    the mappings: condition named as a cancer"), then the condition's text `quoted` when that
    says more. A first name that is the criterion's id in words is dropped before another:
    candidates.csv writes "<id>: " before the reason ("malignancy: malignancy: Malignant
    neoplasm of breast" said it twice)."""
    concept = ctx.label(matched)
    label = chk.get("label")
    names = [label, concept] if label and label.casefold() != concept.casefold() else [concept]
    if quoted and quoted.casefold() not in {n.casefold() for n in names}:
        names.append(quoted)
    if len(names) > 1 and says_id(cid, names[0]):
        del names[0]
    return ": ".join(names)


def _found(
    ctx: Context,
    cid: str,
    chk: dict[str, Any],
    found: list[tuple[ConditionFact, str]],
    hits: list[Evidence],
) -> str:
    """A condition finding's reason: the most recent condition counted, what it is (with
    `quote_text`, its text too: "history of malignancy: Personal history of ...") and its date
    (onset, else the date it was recorded, said so; neither: no date), then the note."""
    # (undated ones last: a dated condition says more to the coordinator)
    i = max(range(len(found)), key=lambda i: condition_days(found[i][0])[0] or date.min)
    c, matched = found[i]
    # the first name of its evidence value (text_of joins the text and displays with " | ",
    # Synthea's twice the same): quoted as the evidence has it, which --no-phi withholds
    quoted = hits[i].value.split(" | ")[0] if chk.get("quote_text") else ""
    named = _named(ctx, cid, chk, matched, quoted)
    return f"{named}{_when(c)}{_aside(chk.get('note'))}"


def _when(c: ConditionFact) -> str:
    """A condition reason's date: ", onset <date>", else ", recorded <date>", as recorded;
    neither: empty."""
    if c.onset is not None:
        return f", onset {shown(c.onset, c.onset_last)}"
    if c.recorded is not None:
        return f", recorded {shown(c.recorded, c.recorded_last)}"
    return ""


def _aside(*parts: str | None) -> str:
    """The parts given as ` (a, b)`, the reason's aside; empty with none."""
    said = [p for p in parts if p]
    return f" ({', '.join(said)})" if said else ""


def _note(ev: Evidence, note: str) -> Evidence:
    # the constructor, not dataclasses.replace: this runs for every ignored record
    return Evidence(
        ev.ref, ev.concept, ev.value, ev.unit, ev.date, note, ev.recorded_value, ev.recorded_unit
    )


def _lab_check(
    ctx: Context, chk: dict[str, Any], then: Status
) -> tuple[Status, list[Evidence], list[Evidence], str]:
    concepts = chk["lab"]
    label = chk["label"] if "label" in chk else ctx.label(concepts[0])
    want = chk.get("result", "positive")
    obs, ignored = ctx.observations(concepts, window_start(ctx.as_of, chk))
    # only a cut-off (positive_at) reads the number in the canonical unit: without one a
    # result is shown as recorded ("500 copies/mL" detected is read, never "cannot be converted")
    convert = "positive_at" in chk
    latest = chk.get("latest", True)
    if latest:
        ignored += [
            ctx.obs_evidence(
                o, ctx.obs_concept(o, concepts), "superseded by a newer result", convert=convert
            )
            for o in obs[1:]
        ]
        obs = obs[:1]
    hits: list[Evidence] = []
    unsure: list[Evidence] = []
    read: list[Evidence] = []  # results of the other answer (negative): what a pass rests on
    later = chk.get("unless_later")
    for o in obs:
        concept = ctx.obs_concept(o, concepts)
        cls = classify(ctx, o, concept, chk)
        other = cls not in (want, "indeterminate", None)
        # a `latest` check's negative says it is the most recent: why an older positive,
        # superseded, does not count
        note = f"most recent: {cls}" if other and latest else f"result {cls or 'unreadable'}"
        ev = ctx.obs_evidence(o, concept, note, convert=convert)
        if (
            later
            and o.when
            and any(x.when and x.when >= o.when for x in ctx.observations(later)[0])
        ):
            ignored.append(_note(ev, f"followed by {later[0]}"))
            continue
        if other:
            read.append(ev)
        elif cls == want:
            hits.append(ev)
        else:
            unsure.append(ev)
    if hits:
        # a load check's positive is a virus detected (the words a lab report uses)
        said = _DETECTED.get(want, want) if chk.get("numeric") == "detected" else want
        # after the date: that no later result cancelled it ("HCV antibody positive on ...
        # (no later HCV RNA)": before it, the words read as if the RNA were positive), a note
        aside = _aside(f"no later {ctx.label(later)}" if later else None, chk.get("note"))
        # (an unreadable result beside the finding is listed, as the negatives are)
        return then, hits, ignored + read + unsure, f"{label} {said} on {hits[0].date}{aside}"
    if unsure:
        # whatever the check's outcome: a result nobody could read may be the finding, and a
        # pass of an exclusion resting on it must not reach a coordinator (an unreadable IGRA
        # passed `tuberculosis`, whose finding is only unknown)
        return Status.UNKNOWN, unsure, ignored + read, f"{label} result indeterminate or unreadable"
    # a pass's evidence: the results read that gave the other answer
    return Status.PASS, read, ignored, ""


def checks(crit: Criterion, ctx: Context) -> Result:
    outcomes: list[tuple[Status, list[Evidence], str]] = []
    ignored: list[Evidence] = []
    read: list[Evidence] = []  # the negative results passing checks rest on
    unconfirmed = frozenset(crit.params.get("unconfirmed_verification", ()))
    for chk in crit.params["checks"]:
        word = chk.get("then", "fail")
        then = _THEN.get(word) or Status(word)  # (Status: the error for a word not listed)
        if "condition" in chk:
            status, ev, ign, why = _condition_check(
                ctx, crit.id, chk, then, unconfirmed, crit.params["checks"]
            )
        else:
            status, ev, ign, why = _lab_check(ctx, chk, then)
        ignored += ign
        if status is not Status.PASS:
            outcomes.append((status, ev, why))
        elif ev:
            read += ev
    status = worst(s for s, _, _ in outcomes) if outcomes else Status.PASS  # (nearly always)
    if status is Status.PASS:
        # the negatives read are why it passes (a most recent negative HBsAg is why an older
        # positive does not fail): used evidence, not "ignored" (docs/rules.md)
        return result(crit, Status.PASS, "no exclusionary finding", read, ignored)
    # a fail or unknown rests on its findings alone: the other checks' negatives are listed
    # among the ignored, each note saying what it was
    chosen = [o for o in outcomes if o[0] is status]
    evidence = [e for _, ev, _ in chosen for e in ev]
    why = ", ".join(why for _, _, why in chosen)
    return result(crit, status, why, evidence, ignored + read)
