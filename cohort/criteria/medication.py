"""Criterion kind `washout`, and what the exposure kinds share (criteria/therapy.py, dose.py)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, timedelta

from cohort.criteria.base import Context, Criterion, Span, latest, result, shown, window_span
from cohort.criteria.bounds import amount, fails_below, readable, sign, to_unit, versus
from cohort.criteria.days import partly
from cohort.criteria.intervals import (
    Dated,
    clear_from,
    exposure_dated,
    exposure_evidence,
    in_window,
    last_said,
    procedure_dated,
    sets_date,
)
from cohort.criteria.plausible import implausible, kind_of
from cohort.model import Evidence, ExposureFact, ImmunizationFact, Quantity, Result, Status
from cohort.safetext import clipped
from cohort.terminology.codes import CVX


def _named(ctx: Context, ev: Evidence) -> str:
    """What a reason calls a record: its concept (by its label), else its text, else its type;
    a vaccine by what was given (`vaccine_given`: its concept is the criterion's class)."""
    if ev.ref.startswith("Immunization/") and ev.value:
        return ev.value
    return ctx.label(ev.concept) if ev.concept else ev.value or ev.ref.partition("/")[0]


def ingredients(ctx: Context, e: ExposureFact, matched: set[str]) -> str:
    """The exposure's ingredients of the `matched` concepts as the mappings name them
    ("tacrolimus" of a record of "Prograf"), "/"-joined; "" when none is known. Fixed wording,
    never the record's text, which `--no-phi` withholds (report.nophi)."""
    found = ctx.term.medication_ingredients(e.codes, e.text)
    return "/".join(sorted(i for i in found if ctx.term.ingredient_groups(i) & matched))


def drug_named(named: str, drug: str | None) -> str:
    """A record as a fail names it: the drug (`ingredients`), then its class `named` when that
    does not name it already ("tacrolimus (calcineurin inhibitor)", "belimumab"); no drug
    known: `named`. Also background_therapy's "last: ..." (criteria.therapy)."""
    if not drug or all(d.casefold() in named.casefold() for d in drug.split("/")):
        return named  # ("CTLA4-Fc (abatacept)" names it already)
    return f"{drug} ({named})"


def _drug(ctx: Context, ev: Evidence, drug: str | None) -> str:
    """A washout record as its fail names it (`drug_named`); no drug known: `_named`."""
    return drug_named(_named(ctx, ev), drug)


def vaccine_given(ctx: Context, im: ImmunizationFact) -> str:
    """A vaccine as evidence.csv's value shows it: its text or codes' displays, else its code
    ("CVX 03", "code 836389008"); `--no-phi` withholds it as any text (report.nophi)."""
    if im.text:
        return clipped(im.text)
    c = next((c for c in im.codes if ctx.term.canonical_system(c.system) == CVX), None)
    if c is not None:
        return f"CVX {c.code.strip()}"
    return f"code {im.codes[0].code.strip()}" if im.codes else ""


def _maybe_live(ctx: Context, ev: Evidence, first: date, last: date, lo: date, span: Span) -> str:
    """The reason of a vaccine that may be live given on a day that may be in the window
    (after `lo`): which, when, and the day it would clear if live ("zoster vaccine on
    2026-11-11 may be live (within 4 weeks, until 2026-12-09 if live)"), as a live one's
    fail names it. `first`, `last`: the days its date may stand for; a partial one is said so
    and clears from its last day that is a record (a later day is no record yet)."""
    when = f"recorded only as {ev.date}" if partly(first, last) else f"on {ev.date}"
    inside = f"within {span}" if first > lo else f"cannot tell if within {span}"
    clear = clear_from([min(last, ctx.as_of)], span)
    # (", ", not "; ": candidates.csv separates the reasons of a cell by "; ")
    until = f", until {clear} if live" if clear else ""
    return f"{_named(ctx, ev)} {when} may be live ({inside}{until})"


def _excluded_route(
    routes: tuple[str, ...], concepts: set[str], excluded: dict[str, list[str]]
) -> str:
    """The route word by which an exposure is not counted (`excluded_routes`): one of the words
    of each of its concepts, a whole word of every one of its dosages' recorded routes (the dose
    form is not read); "" when it has no dosage route recorded (it counts), or any of its
    concepts has no entry, or a route names no word of an entry (an IV and an IM dosage on one
    record: the IV one counts)."""
    if not routes:
        return ""
    found = ""
    for c in sorted(concepts):
        words = excluded.get(c, ())
        hits = [next((w for w in words if _has_word(r, w)), "") for r in routes]
        if not all(hits):
            return ""
        found = found or hits[0].strip().lower()
    return found


def _has_word(text: str, word: str) -> bool:
    """`word` in `text` as a whole word, case-insensitive ("im" is not in "immune")."""
    w = re.escape(word.strip().lower())
    return re.search(rf"(?<![a-z0-9]){w}(?![a-z0-9])", text.lower()) is not None


def washout(crit: Criterion, ctx: Context) -> Result:
    """Exposure (medication, procedure or immunization) inside the window fails, time-limited."""
    p = crit.params
    span = window_span(p)
    lo = span.before(ctx.as_of)
    evidence, ignored, maybe = [], [], []
    ends: list[date | None] = []
    enders: list[tuple[Evidence, str]] = []  # whose end each of `ends` is, and its doubt if any
    uncertain: list[Evidence] = []
    live_if: dict[int, str] = {}  # the reason of each dated vaccine that may be live, by id()
    why_maybe = ""
    items: list[Dated] = []
    drugs: dict[int, str] = {}  # each medication item's ingredients, by id() of its evidence
    given: dict[int, str] = {}  # what a fail's reason says of each in-window record, by id()
    # immunizations: one date is both start and end, so on the days it is a record (on or
    # before as_of) it also ends by as_of
    same_day: set[str] = set()
    for e in ctx.exposures(p.get("concepts", [])):
        if p.get("systemic_only") and not ctx.systemic(e):
            ignored.append(exposure_evidence(e, "", "not systemic (route or form)"))
            continue
        matched = set(p["concepts"]) & ctx.concepts(e.ref, e.codes, e.text)
        concept = ",".join(sorted(matched))
        route = _excluded_route(e.routes, matched, p.get("excluded_routes", {}))
        if route:
            ignored.append(
                exposure_evidence(e, concept, f"route {route}: not counted for {concept}")
            )
            continue
        items.append(exposure_dated(e, concept, ""))
        drugs[id(items[-1].ev)] = ingredients(ctx, e, matched)
    for pr in ctx.procedures(p.get("procedures", [])):
        # named by the concept its code maps (dialysis), not every one of the key's
        matched = set(p["procedures"]) & ctx.concepts(pr.ref, pr.codes, pr.text)
        items.append(procedure_dated(pr, ",".join(sorted(matched))))
    vaccines = p.get("immunizations", []) + p.get("uncertain_immunizations", [])
    for im in ctx.immunizations(vaccines):
        matched = set(vaccines) & ctx.concepts(im.ref, im.codes, im.text)
        ev = Evidence(
            ref=im.ref,
            concept=",".join(sorted(matched)),
            value=vaccine_given(ctx, im),
            date=shown(im.when, im.when_last),
        )
        if set(p.get("uncertain_immunizations", [])) & matched:
            # on any day its date may stand for (a vaccine that may be live is only a doubt)
            last = latest(im.when, im.when_last)
            if im.when is None:  # no date at all, as an undated live one (below): a doubt
                uncertain.append(ev.noted("may be live, undated"))
            elif last and im.when <= ctx.as_of and last > lo:
                uncertain.append(ev.noted("may be live"))
                live_if[id(uncertain[-1])] = _maybe_live(ctx, ev, im.when, last, lo, span)
            continue
        items.append(Dated.of(im.when, im.when_last, im.when, im.when_last, False, ev))
        same_day.add(im.ref)
    # The last dose, for the lab rule after the window, on its earliest and its latest reading
    # (they differ when its date is partial; see _lab_after_dose).
    known = [(it.end, it.end_last) for it in items if it.end and it.end_last]
    last_end = (max(e for e, _ in known), max(e for _, e in known)) if known else None
    last_dose: set[int] = set()  # its rows among `ignored` (outside the window)
    for it in items:
        if it.start is None and it.end is None:
            # no date at all: the data cannot tell whether it is within the window
            uncertain.append(it.ev.noted("undated: cannot tell if within window"))
            continue
        inside = in_window(ctx, it, lo)
        if inside:
            evidence.append(it.ev.noted("within window"))
            given[id(evidence[-1])] = f"{_drug(ctx, it.ev, drugs.get(id(it.ev)))} {last_said(it)}"
            ends.append(None if it.ongoing else it.end_last)
            enders.append((evidence[-1], ""))
        elif inside is None:
            name = _named(ctx, it.ev)
            why_maybe = why_maybe or (
                f"{name} {it.partial()}: cannot tell if within {span} before {ctx.as_of}"
                f" (ending after {lo})"
            )
            maybe.append(it.ev.noted(f"{it.doubt()}: may be within window"))
            end = it.end_last
            if end is not None and it.ev.ref in same_day:
                end = min(end, ctx.as_of)  # a later day is a new exposure, not this record
            ends.append(None if it.ongoing else end)
            enders.append((maybe[-1], f"{name} {it.partial()}"))
        else:
            ignored.append(it.ev.noted("outside window"))
            if last_end and it.end_last and it.end_last >= last_end[0]:
                last_dose.add(id(ignored[-1]))  # (the last dose, on some reading of its date)
    if evidence:
        # eligible_from: the first day on which every record in (or maybe in) the window is
        # out of it whatever day its partial date stands for, so from its latest end
        eligible = clear_from(ends, span)
        when = f"until {eligible}" if eligible else "ongoing or no known end"
        # named: the record whose end sets that date (or that has none)
        ev, doubt = sets_date(ends, enders)
        when += f": {doubt} may be within it" if doubt else ""
        if eligible and "lab_concepts" in p and last_end is not None:
            # after the window the lab rule applies to the same last dose and the counts
            # already known: one already below the lower limit still fails then (SPEC §4:
            # eligible_from is a date on which the fails pass), so no date is known. Only
            # counts surely after the dose (its latest reading) are sure to count then.
            after = _lab_after(crit, ctx, last_end[1], [], shown(*last_end))
            if after.status is Status.FAIL:
                eligible = None
                when = f"then {after.reason}"
                evidence += list(after.evidence)
        return result(
            crit,
            Status.FAIL,
            f"{given[id(ev)]}, within {span} ({when})",
            evidence + maybe,
            ignored,
            eligible,
        )
    out = _last_dose_out(ctx, items, lo) if maybe and not uncertain else None
    if out is not None and "lab_concepts" in p:
        # in the window on some days of its partial date (a fail), out of it on the others:
        # if the lab rule then fails too, every day fails (not time-limited: a low count).
        # The last dose is read on those other days only (last_end also spans in-window ones)
        after = _lab_after_dose(crit, ctx, out, [])
        if after.status is Status.FAIL:
            return result(crit, Status.FAIL, after.reason, maybe + list(after.evidence), ignored)
    if maybe:
        return result(crit, Status.UNKNOWN, why_maybe, maybe + uncertain, ignored)
    if uncertain:
        why = ", ".join(
            dict.fromkeys(
                f"undated {_named(ctx, u)} record: cannot tell if within {span}"
                if u.note.startswith("undated")
                else f"{_named(ctx, u)} may be live, undated: cannot tell if within {span}"
                if u.note.endswith("undated")
                else live_if[id(u)]
                for u in uncertain
            )
        )
        return result(crit, Status.UNKNOWN, why, uncertain, ignored)
    if "lab_concepts" in p and last_end is not None:
        # the lab rule counts from the last dose: the outcome rests on it too (used)
        # (the lab by its label, as the reason names it: a coordinator reads this note)
        note = f"last dose, outside window: the {ctx.label(p['lab_concepts'])} after it decides"
        dose = [e.noted(note) for e in ignored if id(e) in last_dose]
        after = _lab_after_dose(crit, ctx, last_end, [e for e in ignored if id(e) not in last_dose])
        return replace(after, evidence=(*dose, *after.evidence))  # the dose, then the count
    return result(crit, Status.PASS, "no exposure in window", ignored=ignored)


def _last_dose_out(ctx: Context, items: list[Dated], lo: date) -> tuple[date, date] | None:
    """The last dose's earliest and latest day over the days its records' partial dates can
    stand for on which none is in the window: each then ends on or before `lo`, or starts
    after as_of (not a record yet, no dose). None when there may then be no dose at all (the
    lab rule then passes on some days) or when no record can be out of the window."""
    must: list[date] = []  # earliest end of each record that is a dose on every such day
    can: list[date] = []  # latest end of each record that may be one
    for it in items:
        if it.end is None or it.end_last is None:
            continue  # ongoing (in the window when a record) or undated (not in this branch)
        may_be_later = it.start_last is not None and it.start_last > ctx.as_of
        on_record = it.start is None or it.start <= ctx.as_of
        if on_record and it.end <= lo:
            can.append(min(it.end_last, lo))
            if not may_be_later:
                must.append(it.end)
        elif not may_be_later:
            return None  # in the window on every day (not a `maybe` only record)
    if not must:
        return None
    return max(must), max(can)


def _lab_after_dose(
    crit: Criterion, ctx: Context, last_dose: tuple[date, date], ignored: list[Evidence]
) -> Result:
    """`_lab_after` of a last dose given as its earliest and latest possible day.

    Counts "since the last dose" must postdate it. When its date is partial, neither reading
    may be taken alone: the earliest would count a low count that may predate the dose (as
    counts between two doses are expected to be), the latest would drop a count that may
    follow it. As the dose day moves later, only counts drop out, so the answer on any day is
    that of one of the two readings: when they agree, every day does; else unknown."""
    early, late = last_dose
    if early == late:
        return _lab_after(crit, ctx, late, ignored)
    sure = _lab_after(crit, ctx, late, list(ignored), shown(early, late))
    first = _lab_after(crit, ctx, early, [], shown(early, late))
    if first.status is sure.status:
        return sure
    when = first.evidence[0].date if first.evidence else ""
    return result(
        crit,
        Status.UNKNOWN,
        f"last dose recorded only as {shown(early, late)}: cannot tell if the count of {when}"
        f" is since it ({first.reason})",
        first.evidence,
        sure.ignored,
    )


def _lab_after(
    crit: Criterion, ctx: Context, last_dose: date, ignored: list[Evidence], dose: str = ""
) -> Result:
    """After the window: the most recent lab since the last dose below its lower limit fails.
    `dose`: the last dose's date as recorded, for reasons (a partial one is not `last_dose`)."""
    p = crit.params
    dose = dose or last_dose.isoformat()
    since = last_dose + timedelta(days=1) if last_dose < date.max else date.max
    obs, ign = ctx.observations(p["lab_concepts"], since)
    ignored += ign
    if not obs:
        why = f"last dose {dose}, outside window, no count since"
        return result(crit, Status.PASS, why, ignored=ignored)
    o = obs[0]
    concept = ctx.obs_concept(o, p["lab_concepts"])
    v = ctx.numeric(o, concept)
    unit = ctx.term.canonical_unit(concept) or ""
    if v is None:  # (a number outside the plausible range is said so: criteria.plausible)
        far, name = implausible(ctx, o, concept), ctx.label(concept)
        ev = ctx.obs_evidence(o, concept, far or "unit cannot be converted", convert=False)
        why = f"{name} after last dose {far or 'not convertible'}"
        kind = kind_of(far)
        return result(crit, Status.UNKNOWN, why, [ev], ignored, unconvertible=name, no_value=kind)
    # SPEC §3: the lower limit is the result's own referenceRange.low when present (a low
    # without a unit is in the result's unit), else the criteria file's default
    low = o.ref_low
    q = o.value.quantity
    if low is not None and not (low.unit or low.code) and q is not None:
        low = Quantity(low.value, q.unit, q.code, system=q.system)
    lln = ctx.term.convert(low, concept) if low is not None else float(p["lab_default_lln"])
    cmp = sign(o)
    value = f"{cmp}{v:g}"  # as reported: "<100" is not 100
    if lln is None:
        ev = ctx.obs_evidence(o, concept, "reference low cannot be converted", value, unit)
        return result(
            crit,
            Status.UNKNOWN,
            f"{ctx.label(concept)} {amount(cmp + readable(v), unit)}: its reference low cannot be"
            f" converted to {to_unit(unit)}",
            [ev],
            ignored,
        )
    # a reference low converted to the canonical unit is rounded as the count is, on the
    # count's side (the file's default is shown as written); the count on the side of both
    limit = f"{lln:g}" if low is None else readable(lln, v)
    count = amount(readable(v, lln, float(limit)), unit)
    ev = ctx.obs_evidence(o, concept, f"lower limit {limit}", value, unit)
    status = fails_below(v, cmp, lln)
    when = f"on {ev.date} since last dose {dose}"  # as lab_latest gives a result's date
    if status is Status.UNKNOWN:
        said = f"{amount(cmp + readable(v, lln, float(limit)), unit)} {when}: cannot tell vs"
        said += f" lower limit {limit}"
    elif cmp.strip():
        # "<5" below 80: "below 5 /uL (lower limit 80)" (`versus`), not "<5 /uL below ..."
        said = versus(cmp, count, "", limit, "lower limit")
        said += f" {when}" if status is Status.FAIL else ""
    elif status is Status.FAIL:
        said = f"{count} below lower limit {limit} {when}"
    else:
        said = f"{count} >= lower limit {limit}"
    return result(crit, status, f"{ctx.label(concept)} {said}", [ev], ignored)
