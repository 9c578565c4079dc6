"""The `checks` kind: condition/lab findings, each with the outcome it causes; worst wins.

A lab check's reading and wording: criteria.labchecks."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from cohort.criteria.base import Context, Criterion, result, shown, window_span, window_start, worst
from cohort.criteria.days import condition_days, condition_shown
from cohort.criteria.ids import says_id
from cohort.criteria.intervals import clear_from
from cohort.criteria.labchecks import aside, classify, lab_check
from cohort.criteria.plausible import combined
from cohort.model import ConditionFact, Evidence, NoValue, Result, Status
from cohort.safetext import clipped

__all__ = ["checks", "classify"]

# a check's `then` by its value: Status(...) costs an enum lookup per check per patient
_THEN = {s.value: s for s in Status}


def _condition_check(
    ctx: Context,
    cid: str,
    chk: dict[str, Any],
    then: Status,
    unconfirmed: frozenset[str] = frozenset(),
    others: list[dict[str, Any]] | None = None,
) -> tuple[Status, list[Evidence], list[Evidence], str, date | None]:
    """A condition check's outcome, and with a window the first day on which the conditions it
    counts are all out of it (their latest last day + the window: `eligible_from`). One that
    would count but whose verificationStatus is one of `unconfirmed` (provisional,
    differential: the criterion's unconfirmed_verification) is no established finding:
    unknown, naming it, unless an established one counts. So is an active one dated more than
    the check's `stale_after_days` before as_of: likely never closed (a 1995 pregnancy still
    marked active), for review. `cid`: the criterion's id,
    not said again in its reasons (`_named`). `others`: the criterion's checks, which the note
    of a condition its `unless` sets aside may name (`_set_aside`)."""
    hits, unsure, ignored, shaky, stale = [], [], [], [], []
    found: list[tuple[ConditionFact, str]] = []  # the hits' conditions, with what they matched
    why_unsure = why_shaky = why_stale = ""
    stale_days = chk.get("stale_after_days")
    lo = window_start(ctx.as_of, chk)  # None: any date counts
    for c in ctx.conditions(chk["condition"]):
        concepts = ctx.concepts(c.ref, c.codes, c.text)
        # evidence names the concepts matched (what the mapping files call them), as every
        # other kind's does; the label is the reasons' word
        matched = ",".join(n for n in chk["condition"] if n in concepts)
        # (no unit, note; the text as a reason quotes it, so --no-phi finds it there)
        ev = Evidence(c.ref, matched, clipped(c.text), "", condition_shown(c))
        active = ctx.active(c) if chk.get("active") else True
        if "unless" in chk and not concepts.isdisjoint(chk["unless"]):
            ignored.append(ev.noted(_set_aside(ctx, chk, concepts, others or [])))
        elif active and ctx.on_record(c) is None:
            # its partial date also stands for days after as_of, when it is not a record yet
            why_unsure = why_unsure or (
                f"{_named(ctx, cid, chk, matched)} condition recorded only as {ev.date}: "
                f"may be after {ctx.as_of}"
            )
            unsure.append(ev.noted("partial date: may be after the as-of date"))
        elif active is None:
            # abated in a month or year that contains as_of: active on some of its days only
            abated = shown(c.abatement, c.abatement_last) or "on a date not given"
            why_unsure = why_unsure or (
                f"{_named(ctx, cid, chk, matched)} condition abated {abated}: "
                f"cannot tell if still active on {ctx.as_of}"
            )
            unsure.append(ev.noted(f"abated {abated}"))
        elif not active:
            ignored.append(ev.noted(f"not active ({c.clinical_status or 'abated'})"))
        elif lo is not None and (inside := _in_window(c, lo)) is not True:
            if inside is False:
                ignored.append(ev.noted(f"outside window (before {lo})"))
                continue
            # undated, or a partial date with days on both sides of the window's start
            said = f"recorded only as {ev.date}" if ev.date else "undated"
            why_unsure = why_unsure or (
                f"{_named(ctx, cid, chk, matched)} condition {said}: "
                f"cannot tell if within {window_span(chk)}"
            )
            unsure.append(ev.noted(f"{said}: may be within window"))
        elif c.verification_status in unconfirmed:
            why_shaky = why_shaky or (
                f"{_named(ctx, cid, chk, matched)} condition recorded as {c.verification_status}: "
                "confirm the diagnosis"
            )
            note = f"verificationStatus {c.verification_status}: not confirmed"
            shaky.append(ev.noted(note))
        elif stale_days is not None and _stale(ctx, c, stale_days):
            why_stale = why_stale or (
                f"{_named(ctx, cid, chk, matched)}{_when(c)}, still marked active: review"
            )
            note = f"still marked active, dated more than {stale_days} days before as-of"
            stale.append(ev.noted(note))
        else:
            hits.append(ev.noted("condition"))
            found.append((c, matched))
    if hits:
        why = _found(ctx, cid, chk, found, hits)
        until = None
        if lo is not None:
            # the window is inclusive: a condition dated d is in it up to as_of = d + N
            last = max(condition_days(c)[1] or ctx.as_of for c, _ in found)
            until = clear_from([last + timedelta(days=1)], window_span(chk))
        return then, hits, ignored + unsure + shaky + stale, why, until
    if unsure or shaky or stale:
        why = ", ".join(w for w in (why_unsure, why_shaky, why_stale) if w)
        return Status.UNKNOWN, unsure + shaky + stale, ignored, why, None
    return Status.PASS, [], ignored, "", None


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


def _in_window(c: ConditionFact, lo: date) -> bool | None:
    """Whether the condition's date (onset, else recordedDate) is on or after the window's first
    day `lo` on every day it can stand for (True), on none (False), or on some only or undated
    (None: the data cannot tell). Dates after as_of are not records yet (`ctx.conditions`)."""
    first, last = condition_days(c)
    if first is None:
        return None
    if first >= lo:
        return True
    return None if last is not None and last >= lo else False


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
    return f"{named}{_when(c)}{aside(chk.get('note'))}"


def _when(c: ConditionFact) -> str:
    """A condition reason's date: ", onset <date>", else ", recorded <date>", as recorded;
    neither: empty."""
    if c.onset is not None:
        return f", onset {shown(c.onset, c.onset_last)}"
    if c.recorded is not None:
        return f", recorded {shown(c.recorded, c.recorded_last)}"
    return ""


def checks(crit: Criterion, ctx: Context) -> Result:
    # each outcome: status, evidence, reason, what its values not convertible are ("") and
    # which kind (`Result.no_value`)
    outcomes: list[tuple[Status, list[Evidence], str, str, NoValue, date | None]] = []
    ignored: list[Evidence] = []
    read: list[Evidence] = []  # the negative results passing checks rest on
    unconfirmed = frozenset(crit.params.get("unconfirmed_verification", ()))
    for chk in crit.params["checks"]:
        word = chk.get("then", "fail")
        then = _THEN.get(word) or Status(word)  # (Status: the error for a word not listed)
        unread, kind, until = "", NoValue.NONE, None
        if "condition" in chk:
            status, ev, ign, why, until = _condition_check(
                ctx, crit.id, chk, then, unconfirmed, crit.params["checks"]
            )
        else:
            status, ev, ign, why, unread, kind = lab_check(ctx, chk, then)
        ignored += ign
        if status is not Status.PASS:
            outcomes.append((status, ev, why, unread, kind, until))
        elif ev:
            read += ev
    status = worst(o[0] for o in outcomes) if outcomes else Status.PASS  # (nearly always)
    if status is Status.PASS:
        # the negatives read are why it passes (a most recent negative HBsAg is why an older
        # positive does not fail): used evidence, not "ignored" (docs/rules.md)
        # (an inclusion read from results, "current or former smoker", is not excluded)
        why = (
            "no exclusionary finding"
            if crit.type != "inclusion"
            else "no finding that rules it out"
        )
        return result(crit, Status.PASS, why, read, ignored)
    # a fail or unknown rests on its findings alone: the other checks' negatives are listed
    # among the ignored, each note saying what it was
    chosen = [o for o in outcomes if o[0] is status]
    evidence = [e for o in chosen for e in o[1]]
    why = ", ".join(o[2] for o in chosen)
    # only values not convertible: `missing` asks for readable ones (report.rows)
    unread = ", ".join(o[3] for o in chosen) if all(o[3] for o in chosen) else ""
    kind = combined(o[4] for o in chosen)
    # a fail has a known end only when every finding failing it leaves its window (docs/rules.md)
    ends = [o[5] for o in chosen]
    known = [e for e in ends if e is not None]
    eligible = max(known) if status is Status.FAIL and len(known) == len(ends) else None
    return result(
        crit, status, why, evidence, ignored + read, eligible, unconvertible=unread, no_value=kind
    )
