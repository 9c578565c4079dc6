"""A `checks` criterion's lab check: each result read as positive, negative or neither, and
the reason of a finding or of a result that decides nothing (its value, date and why)."""

from __future__ import annotations

import re
from typing import Any

from cohort.criteria.base import Context, window_start
from cohort.criteria.bounds import amount, below, to_unit
from cohort.criteria.plausible import as_recorded, combined, implausible
from cohort.model import Evidence, NoValue, ObservationFact, Status

_LESS = re.compile(r"^\s*(<|<=|less than|below)\s*\d", re.I)
# a measured load written as text ("1250 IU/mL", "1250"): a plain number, no bound before it
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)(?![\d.])")

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


def aside(*parts: str | None) -> str:
    """The parts given as ` (a, b)`, the reason's aside; empty with none."""
    said = [p for p in parts if p]
    return f" ({', '.join(said)})" if said else ""


def lab_check(
    ctx: Context, chk: dict[str, Any], then: Status
) -> tuple[Status, list[Evidence], list[Evidence], str, str, NoValue]:
    """The check's outcome, evidence, ignored rows and reason; and, when its unknown rests only
    on values that could not be converted, what they are and which kind (`Result.unconvertible`,
    `Result.no_value`)."""
    concepts = chk["lab"]
    label = chk["label"] if "label" in chk else ctx.label(concepts[0])
    want = chk.get("result", "positive")
    since = window_start(ctx.as_of, chk)
    obs, ignored = ctx.observations(concepts, since)
    if not obs and chk.get("required"):
        # an inclusion read from a result (a smoking status that must not read "never"): no
        # result is no answer, as lab_latest's and a required measure's
        when = f" since {since}" if since else ""
        why = f"no {ctx.label(concepts)} result{when}"
        return Status.UNKNOWN, [], ignored, why, "", NoValue.NONE
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
    # each unsure result's reason, and whether it is no value (which kind) or NONE
    why_unsure: list[tuple[str, NoValue]] = []
    read: list[Evidence] = []  # results of the other answer (negative): what a pass rests on
    later = chk.get("unless_later")
    for o in obs:
        concept = ctx.obs_concept(o, concepts)
        cls = classify(ctx, o, concept, chk)
        other = cls not in (want, "indeterminate", None)
        # a `latest` check's negative says it is the most recent: why an older positive,
        # superseded, does not count
        note = f"most recent: {cls}" if other and latest else f"result {cls or 'unreadable'}"
        # a number outside the plausible range is not unreadable: its note says only that, as
        # lab_latest's does (not "result unreadable; 6000000 mIU/mL outside the plausible ...")
        far = implausible(ctx, o, concept) if cls is None and convert else ""
        ev = ctx.obs_evidence(o, concept, far or note, convert=convert and not far)
        if (
            later
            and o.when
            and any(x.when and x.when >= o.when for x in ctx.observations(later)[0])
        ):
            # (by its label, as the reason names it: "(no later HCV RNA)")
            ignored.append(ev.noted(f"followed by a later {ctx.label(later[0])} result"))
            continue
        if other:
            read.append(ev)
        elif cls == want:
            hits.append(ev)
        else:
            unsure.append(ev)
            why_unsure.append(_undecided(ctx, chk, label, o, concept, cls, ev))
    if hits:
        # a load check's positive is a virus detected (the words a lab report uses)
        said = _DETECTED.get(want, want) if chk.get("numeric") == "detected" else want
        # after the date: that no later result cancelled it ("HCV antibody positive on ...
        # (no later HCV RNA)": before it, the words read as if the RNA were positive), a note
        after = aside(f"no later {ctx.label(later)}" if later else None, chk.get("note"))
        # (an unreadable result beside the finding is listed, as the negatives are)
        why = f"{label} {said} on {hits[0].date}{after}"
        return then, hits, ignored + read + unsure, why, "", NoValue.NONE
    if unsure:
        # whatever the check's outcome: a result nobody could read may be the finding, and a
        # pass of an exclusion resting on it must not reach a coordinator (an unreadable IGRA
        # passed `tuberculosis`, whose finding is only unknown). The newest names it.
        kind = combined(k for _, k in why_unsure)
        unread = label if kind is not NoValue.NONE else ""
        return Status.UNKNOWN, unsure, ignored + read, why_unsure[0][0], unread, kind
    # a pass's evidence: the results read that gave the other answer
    return Status.PASS, read, ignored, "", "", NoValue.NONE


def _undecided(
    ctx: Context,
    chk: dict[str, Any],
    label: str,
    o: ObservationFact,
    concept: str,
    cls: str | None,
    ev: Evidence,
) -> tuple[str, NoValue]:
    """The reason of a result that decides nothing, with its value as evidence.csv shows it,
    its date and why: "hCG 12 mIU/mL on 2026-11-15: indeterminate (5-25)" (between the
    equivocal and positive cut-offs), "anti-HBc indeterminate on ..." (said so), "... 'Negative'
    on ...: value and interpretation disagree", "hCG result 'see report' on ...: unreadable",
    "IGRA 2.5 IU/mL on ...: no cut-off to read it by" (QA: "result indeterminate or unreadable"
    told neither the value nor which); and, of a number that is no value in the cut-off's
    unit, which kind it is (NONE: another reason)."""
    q, when = o.value.quantity, ev.date
    if cls is None and q is not None and "positive_at" in chk and ctx.numeric(o, concept) is None:
        if far := implausible(ctx, o, concept):  # (converts, but not to a plausible number)
            return f"{label} {far}", NoValue.IMPLAUSIBLE
        unit = to_unit(ctx.term.canonical_unit(concept) or "")
        why = f"{label} {as_recorded(ev.value, ev.unit)} not convertible to {unit}"
        return why, NoValue.UNCONVERTIBLE
    if cls is not None:
        why = _indeterminate(ctx, o, concept, chk)
    elif q is not None:
        # a number the check has no cut-off for (an IGRA in IU/mL flagged H): read, but not
        # as positive or negative
        why = "no cut-off to read it by"
    else:
        why = "unreadable"
    if q is not None:
        return f"{label} {amount(ev.value, ev.unit)} on {when}: {why}", NoValue.NONE
    if not ev.value:
        return f"{label} result on {when}: {why}", NoValue.NONE
    if why == "indeterminate" and ctx.term.qualitative_value(o.value) == why:
        return f"{label} {ev.value.strip().lower()} on {when}", NoValue.NONE  # "Equivocal": said so
    said = f"result '{ev.value}'" if cls is None else f"'{ev.value}'"
    return f"{label} {said} on {when}: {why}", NoValue.NONE


def _indeterminate(ctx: Context, o: ObservationFact, concept: str, chk: dict[str, Any]) -> str:
    """Why `classify` read a result as indeterminate: a number in the equivocal range, one
    whose comparator leaves it on either side, a value and interpretation that disagree."""
    said, _ = _reading(ctx, o, concept, chk)
    q = o.value.quantity
    if said == "indeterminate" and q is not None and "positive_at" in chk:
        positive = float(chk["positive_at"])
        equivocal = float(chk.get("equivocal_at", positive))
        cuts = f"{equivocal:g}-{positive:g}" if equivocal != positive else f"{positive:g}"
        return f"cannot tell vs {cuts}" if q.comparator.strip() else f"indeterminate ({cuts})"
    if said is None:
        said = ctx.term.qualitative_value(o.value)
    flag = ctx.term.qualitative_flag(o.interpretation) if o.interpretation else None
    if said not in (None, "indeterminate") and flag not in (None, said):
        return "value and interpretation disagree"
    return "indeterminate"
