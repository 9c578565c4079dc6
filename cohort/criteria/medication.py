"""Criterion kinds on exposures: `current_medication`, `any_record`, `washout`, `high_dose`."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, timedelta

from cohort.criteria.base import Context, Criterion, Span, iso, result, window_span
from cohort.model import Evidence, ExposureFact, Quantity, Result, Status

_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*MG\b(?!\s*/)", re.I)
_UNIT_FORMS = ("tbl", "tab", "tablet", "cap", "capsule", "{tbl}", "{tablet}", "{capsule}", "1")


def _exposure_evidence(e: ExposureFact, concept: str, note: str, value: str = "") -> Evidence:
    end = "ongoing" if e.ongoing else iso(e.end)
    return Evidence(
        ref=e.ref,
        concept=concept,
        value=value or e.text[:80],
        date=f"{iso(e.start)}..{end}",
        note=note,
    )


def current_medication(crit: Criterion, ctx: Context) -> Result:
    p = crit.params
    starts = [e.start for e in ctx.facts.exposures] + ctx.facts.other_medications
    if not any(d is None or d <= ctx.as_of for d in starts):
        return result(crit, Status.UNKNOWN, "no medication records at all")
    evidence, ignored, undated = [], [], []
    for e in ctx.exposures(p["concepts"]):
        concept = ",".join(sorted(set(p["concepts"]) & ctx.concepts(e.ref, e.codes, e.text)))
        if p.get("systemic_only", True) and not ctx.systemic(e):
            ignored.append(_exposure_evidence(e, concept, "not systemic (route or form)"))
        elif ctx.current(e):
            evidence.append(_exposure_evidence(e, concept, "current"))
        elif e.ongoing and e.start is None:
            undated.append(_exposure_evidence(e, concept, "ongoing, no start date"))
        else:
            ignored.append(_exposure_evidence(e, concept, "not current on the as-of date"))
    if evidence:
        return result(
            crit,
            Status.PASS,
            f"current {evidence[0].concept}: {evidence[0].value}",
            evidence,
            ignored,
        )
    if undated:
        # an ongoing record without a start date: the data cannot tell it started by as_of
        return result(
            crit,
            Status.UNKNOWN,
            f"{undated[0].concept} ongoing without a start date: confirm it is current",
            undated,
            ignored,
        )
    return result(crit, Status.FAIL, "no current qualifying therapy", ignored=ignored)


def any_record(crit: Criterion, ctx: Context) -> Result:
    hits = ctx.exposures(crit.params["concepts"])
    if hits:
        ev = [
            _exposure_evidence(e, ",".join(crit.params["concepts"]), "record found") for e in hits
        ]
        # (the evidence's value, as quoted: `--no-phi` withholds it in both, report.nophi)
        return result(crit, Status.FAIL, f"prior {crit.params['concepts'][0]}: {ev[0].value}", ev)
    return result(crit, Status.PASS, "no record")


def _in_window(ctx: Context, start: date | None, end: date | None, ongoing: bool, lo: date) -> bool:
    """Exposure interval overlaps (as_of - window, as_of]; see docs/rules.md for the boundary."""
    if start is None and end is None:
        return False
    if start is not None and start > ctx.as_of:
        return False
    return ongoing or (end is not None and end > lo)


def washout(crit: Criterion, ctx: Context) -> Result:
    """Exposure (medication, procedure or immunization) inside the window fails, time-limited."""
    p = crit.params
    span = window_span(p)
    lo = span.before(ctx.as_of)
    evidence, ignored = [], []
    ends: list[date | None] = []
    uncertain: list[Evidence] = []
    items: list[tuple[str, date | None, date | None, bool, Evidence]] = []
    for e in ctx.exposures(p.get("concepts", [])):
        if p.get("systemic_only") and not ctx.systemic(e):
            ignored.append(_exposure_evidence(e, "", "not systemic (route or form)"))
            continue
        concept = ",".join(sorted(set(p["concepts"]) & ctx.concepts(e.ref, e.codes, e.text)))
        items.append((e.ref, e.start, e.end, e.ongoing, _exposure_evidence(e, concept, "")))
    for pr in ctx.procedures(p.get("procedures", [])):
        ev = Evidence(
            ref=pr.ref, concept=",".join(p["procedures"]), value=pr.text[:80], date=iso(pr.start)
        )
        items.append((pr.ref, pr.start, pr.end, False, ev))
    for im in ctx.immunizations(p.get("immunizations", []) + p.get("uncertain_immunizations", [])):
        ev = Evidence(ref=im.ref, value=im.text[:80], date=iso(im.when))
        if set(p.get("uncertain_immunizations", [])) & ctx.concepts(im.ref, im.codes, im.text):
            if im.when and lo < im.when <= ctx.as_of:
                uncertain.append(
                    Evidence(ref=im.ref, value=im.text[:80], date=iso(im.when), note="may be live")
                )
            continue
        items.append((im.ref, im.when, im.when, False, ev))
    last_end: date | None = None
    for _ref, start, end, ongoing, ev in items:
        if end and (last_end is None or end > last_end):
            last_end = end
        if start is None and end is None:
            # no date at all: the data cannot tell whether it is within the window
            uncertain.append(replace(ev, note="undated: cannot tell if within window"))
        elif _in_window(ctx, start, end, ongoing, lo):
            evidence.append(replace(ev, note="within window"))
            ends.append(None if ongoing else end)
        else:
            ignored.append(replace(ev, note="outside window or undated"))
    if evidence:
        eligible = _eligible(ends, span)
        when = f"until {eligible}" if eligible else "ongoing or no known end"
        if eligible and "lab_concepts" in p and last_end is not None:
            # after the window the lab rule applies to the same last dose and the counts
            # already known: one already below the lower limit still fails then (SPEC §4:
            # eligible_from is a date on which the fails pass), so no date is known
            after = _lab_after(crit, ctx, last_end, [])
            if after.status is Status.FAIL:
                eligible = None
                when = f"then {after.reason}"
                evidence += list(after.evidence)
        return result(
            crit,
            Status.FAIL,
            f"{evidence[0].concept or evidence[0].value} within {span} ({when})",
            evidence,
            ignored,
            eligible,
        )
    if uncertain:
        why = "; ".join(
            dict.fromkeys(
                f"undated {u.concept or u.value} record: cannot tell if within {span}"
                if u.note.startswith("undated")
                else "vaccine of uncertain live status in window"
                for u in uncertain
            )
        )
        return result(crit, Status.UNKNOWN, why, uncertain, ignored)
    if "lab_concepts" in p and last_end is not None:
        return _lab_after(crit, ctx, last_end, ignored)
    return result(crit, Status.PASS, "no exposure in window", ignored=ignored)


def _eligible(ends: list[date | None], span: Span) -> date | None:
    """Known ends of every exposure in window: the last one plus the window; else None (also
    past the calendar's end: an exposure "ending" 9999-12-31 has no date it washes out)."""
    known = [e for e in ends if e is not None]
    if not known or len(known) != len(ends):
        return None
    try:
        return span.after(max(known))
    except OverflowError:
        return None


def _lab_after(crit: Criterion, ctx: Context, last_dose: date, ignored: list[Evidence]) -> Result:
    """After the window: the most recent lab since the last dose below its lower limit fails."""
    p = crit.params
    since = last_dose + timedelta(days=1) if last_dose < date.max else date.max
    obs, ign = ctx.observations(p["lab_concepts"], since)
    ignored += ign
    if not obs:
        return result(
            crit,
            Status.PASS,
            f"last dose {last_dose}, outside window; no count since",
            ignored=ignored,
        )
    o = obs[0]
    concept = ctx.obs_concept(o, p["lab_concepts"])
    v = ctx.numeric(o, concept)
    unit = ctx.term.canonical_unit(concept) or ""
    if v is None:
        ev = ctx.obs_evidence(o, concept, "unit cannot be converted")
        return result(
            crit, Status.UNKNOWN, f"{concept} after last dose not convertible", [ev], ignored
        )
    # SPEC §3: the lower limit is the result's own referenceRange.low when present (a low
    # without a unit is in the result's unit), else the criteria file's default
    low = o.ref_low
    if low is not None and not (low.unit or low.code) and o.value.quantity is not None:
        low = Quantity(low.value, o.value.quantity.unit, o.value.quantity.code)
    lln = ctx.term.convert(low, concept) if low is not None else float(p["lab_default_lln"])
    if lln is None:
        ev = ctx.obs_evidence(o, concept, "reference low cannot be converted", f"{v:g}", unit)
        return result(
            crit,
            Status.UNKNOWN,
            f"{concept} {v:g} {unit}: its reference low cannot be converted to {unit}",
            [ev],
            ignored,
        )
    ev = ctx.obs_evidence(o, concept, f"lower limit {lln:g}", f"{v:g}", unit)
    if v < lln:
        return result(
            crit,
            Status.FAIL,
            f"{concept} {v:g} {unit} below lower limit {lln:g} since last dose",
            [ev],
            ignored,
        )
    return result(
        crit, Status.PASS, f"{concept} {v:g} {unit} >= lower limit {lln:g}", [ev], ignored
    )


def daily_mg(ctx: Context, e: ExposureFact) -> float | None:
    """Largest prednisone-equivalent daily dose of an exposure, None when not derivable."""
    factors = [
        ctx.term.prednisone_factor(i) for i in ctx.term.medication_ingredients(e.codes, e.text)
    ]
    factor = max((f for f in factors if f is not None), default=None)
    if factor is None:
        return None
    strength = e.strength_mg
    if strength is None and (m := _STRENGTH.search(e.text)):
        strength = float(m[1])
    best: float | None = None
    for d in e.doses:
        if d.quantity is None:
            continue
        unit = (d.quantity.code or d.quantity.unit).strip().lower()
        if unit == "mg":
            mg = d.quantity.value
        elif unit == "g":
            mg = d.quantity.value * 1000
        elif unit in _UNIT_FORMS and strength is not None:
            mg = d.quantity.value * strength
        else:
            continue
        daily = mg * (d.per_day if d.per_day is not None else 1.0) * factor
        best = daily if best is None else max(best, daily)
    return best


def high_dose(crit: Criterion, ctx: Context) -> Result:
    p = crit.params
    span = window_span(p)
    lo = span.before(ctx.as_of)
    limit = float(p["max_daily_mg"])
    fails, unknown, ok, ignored = [], [], [], []
    ends: list[date | None] = []
    for e in ctx.exposures(p["concepts"]):
        if not ctx.systemic(e):
            ignored.append(_exposure_evidence(e, "", "not systemic (route or form)"))
            continue
        undated = e.start is None and e.end is None
        if not undated and not _in_window(ctx, e.start, e.end, e.ongoing, lo):
            ignored.append(_exposure_evidence(e, "", "outside window"))
            continue
        mg = daily_mg(ctx, e)
        if undated and (mg is None or mg > limit):
            # no date at all: the data cannot tell whether this dose is within the window
            unknown.append(_exposure_evidence(e, "", "undated: cannot tell if within window"))
        elif mg is None:
            unknown.append(_exposure_evidence(e, "", "no usable dose"))
        elif mg > limit:
            fails.append(
                _exposure_evidence(e, "", f"{mg:g} mg/day prednisone-equivalent", f"{mg:g}")
            )
            ends.append(None if e.ongoing else e.end)
        else:
            ok.append(_exposure_evidence(e, "", f"{mg:g} mg/day prednisone-equivalent", f"{mg:g}"))
    if fails:
        eligible = _eligible(ends, span)
        return result(
            crit,
            Status.FAIL,
            f"corticosteroid {fails[0].value} mg/day > {limit:g} within {span}",
            fails + unknown + ok,
            ignored,
            eligible,
        )
    if unknown:
        dated = any(not u.note.startswith("undated") for u in unknown)
        return result(
            crit,
            Status.UNKNOWN,
            "corticosteroid in window without a usable dose"
            if dated
            else f"undated corticosteroid: cannot tell if within {span}",
            unknown + ok,
            ignored,
        )
    return result(crit, Status.PASS, "no corticosteroid above the limit in window", ok, ignored)
