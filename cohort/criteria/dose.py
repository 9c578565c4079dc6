"""Criterion kind `high_dose`: a prednisone-equivalent daily dose over a limit in a window."""

from __future__ import annotations

import re
from bisect import bisect
from dataclasses import replace
from datetime import date
from typing import NamedTuple

from cohort.criteria.base import Context, Criterion, TerminologyLike, result, window_span
from cohort.criteria.intervals import (
    clear_from,
    exposure_dated,
    exposure_evidence,
    in_window,
    sets_date,
)
from cohort.criteria.strength import in_mg, is_unit_form, product_strength
from cohort.model import Dose, ExposureFact, Quantity, Result, Status

# "20 MG", not a concentration or rate ("10 MG/ML", "15 mg / 5 mL", "0.001 MG/MG", "5 MG/HR"):
# a slash after it starts a combination's next ingredient only when no unit follows it
_STRENGTH = re.compile(
    r"(\d+(?:\.\d+)?)\s*MG\b"
    r"(?!\s*/\s*(?:\d+(?:\.\d+)?\s*)?(?:ML|L|MG|G|MCG|UG|KG|M2|ACTUAT|HR|H|D|DAY)\b)",
    re.I,
)
# RxNorm's separator of a combination's ingredients and of a kit's or pack's parts
_PART = re.compile(r"\s/\s")


class Daily(NamedTuple):
    """An exposure's largest daily dose: its corticosteroid (the ingredient's name as the
    mappings spell it, not the record's text), mg/day of it and prednisone-equivalent mg/day."""

    drug: str
    mg: float
    equivalent: float
    # another dosage line (or set of concurrent ones) gives a dose that is not read: the
    # largest dose may be that one, so this is only a least largest dose
    unsure: bool = False

    def __str__(self) -> str:
        return f"{self.drug} {self.equivalent:g} mg/day prednisone-equivalent"


def daily_dose(ctx: Context, e: ExposureFact) -> Daily | None:
    """Largest prednisone-equivalent daily dose of an exposure, None when not derivable (of
    several corticosteroid ingredients, the one with the largest factor counts)."""
    ingredients = sorted(ctx.term.medication_ingredients(e.codes, e.text))
    factors = [(f, i) for i in ingredients if (f := ctx.term.prednisone_factor(i)) is not None]
    if not factors:
        return None
    factor, drug = max(factors, key=lambda x: x[0])
    # the Medication's strength: its ingredient that is the drug (never another drug's), per
    # tablet or per mL (a solution's, for a dose in mL only)
    given = product_strength(ctx, e.ingredients, drug)
    strength = given.mg if given is not None and not given.per_ml else None
    per_ml = given.mg if given is not None and given.per_ml else None
    # else the product's name: as the record writes it, or its RxNorm product code's name
    # (products.csv), which a record coded without a display still names (SPEC §2)
    for name in (*e.text.split(" | "), *ctx.term.product_names(e.codes)):
        if given is None and strength is None:
            strength = name_strength(name, drug)
    # Lines with the same Dosage.sequence are taken together (FHIR: "concurrent"), so their
    # doses add up, and a day's total is known only when each of them is; lines without a
    # sequence, or with different ones (a taper's steps), stand alone: the largest counts.
    # A line standing alone that gives no dose at all (an instruction) says nothing of one; a
    # dose not read (a timing code not known, a volume without strength) may be the largest.
    days: dict[tuple[int, int], list[float | None]] = {}
    for i, d in enumerate(e.doses):
        if d.quantity is None and d.sequence is None:
            continue
        key = (0, d.sequence) if d.sequence is not None else (1, i)
        q = ctx.term.ucum_only(d.quantity) if d.quantity is not None else None
        days.setdefault(key, []).append(_line_mg(d, q, strength, per_ml, ctx.term))
    totals = [sum(x for x in mgs if x is not None) for mgs in days.values() if None not in mgs]
    if not totals:
        return None
    # to 0.1 mg: the factors are rounded (6.67 for 20/3), dexamethasone 6 mg is 40 mg, not 40.02
    top = max(totals)
    return Daily(drug, round(top, 1), round(top * factor, 1), len(totals) < len(days))


def name_strength(name: str, drug: str) -> float | None:
    """The mg per tablet a product name gives `drug` ("prednisone 20 MG Oral Tablet"); of a
    combination or kit ("A 5 MG / B 20 MG Oral Tablet"), the strength in the part naming it;
    None when it names none, or several that differ (a pack of two strengths)."""
    seps = [m.start() for m in _PART.finditer(name)]
    word = re.compile(rf"\b{re.escape(drug)}\b", re.I)
    found = set()
    for m in _STRENGTH.finditer(name):
        if seps:  # the part it is in: from the separator before it to the one after
            i = bisect(seps, m.start())
            part = name[seps[i - 1] if i else 0 : seps[i] if i < len(seps) else len(name)]
            if not word.search(part):
                continue  # another ingredient's strength
        found.add(float(m[1]))
    return found.pop() if len(found) == 1 else None


def _line_mg(
    d: Dose,
    q: Quantity | None,
    strength: float | None,
    per_ml: float | None,
    term: TerminologyLike,
) -> float | None:
    """Milligrams a day of one dosage line (1 administration a day when no rate is given);
    None when it has no usable dose. `q` is its dose: in any mass unit (ug, kg ... as SPEC
    §2's UCUM semantics), in tablets (`strength` mg each) or in a volume (`per_ml` mg a mL)."""
    if q is None or d.per_day_unread:
        return None
    if is_unit_form(q.code or q.unit):
        if strength is None:
            return None
        mg = q.value * strength
    elif (converted := in_mg(term, q)) is not None:
        mg = converted
    elif per_ml is not None and (ml := term.convert_to(q, "mL")) is not None:
        mg = ml * per_ml
    else:
        return None
    return mg * (d.per_day if d.per_day is not None else 1.0)


def high_dose(crit: Criterion, ctx: Context) -> Result:
    p = crit.params
    span = window_span(p)
    lo = span.before(ctx.as_of)
    limit = float(p["max_daily_mg"])
    fails, unknown, ok, ignored = [], [], [], []
    ends: list[date | None] = []
    enders: list[tuple[str, str]] = []  # the dose each of `ends` is the end of, its doubt if any
    why_partial = ""
    for e in ctx.exposures(p["concepts"]):
        concept = ",".join(sorted(set(p["concepts"]) & ctx.concepts(e.ref, e.codes, e.text)))
        if not ctx.systemic(e):
            ignored.append(exposure_evidence(e, concept, "not systemic (route or form)"))
            continue
        it = exposure_dated(e, concept, "")
        undated = e.start is None and e.end is None
        inside = None if undated else in_window(ctx, it, lo)
        if inside is False:
            ignored.append(replace(it.ev, note="outside window"))
            continue
        daily = daily_dose(ctx, e)
        if daily is not None and daily.unsure and daily.equivalent <= limit:
            daily = None  # a line not read may be above the limit: no usable dose
        mg = daily.equivalent if daily is not None else None
        dose = "no usable dose"
        if daily is not None:
            # the drug's own dose and its equivalent; the drug named by the mappings, not by
            # the record's text (--no-phi shows notes and reasons as they are: report.nophi)
            dose = f"{daily.drug} {daily.mg:g} mg/day = {mg:g} mg/day prednisone-equivalent"
        if undated and (mg is None or mg > limit):
            # no date at all: the data cannot tell whether this dose is within the window
            unknown.append(replace(it.ev, note="undated: cannot tell if within window"))
        elif inside is None and (mg is None or mg > limit):
            # in the window on some of the days its partial dates stand for, not on others
            doubt = f"{daily or 'corticosteroid'} {it.partial()}"
            why_partial = why_partial or (
                f"{doubt}: cannot tell if within {span} before {ctx.as_of} (ending after {lo})"
            )
            unknown.append(replace(it.ev, note=f"{it.doubt()}: may be within window; {dose}"))
            if daily is not None:
                ends.append(None if e.ongoing else it.end_last)  # it may fail as long
                enders.append((str(daily), doubt))
        elif mg is None:
            unknown.append(replace(it.ev, note="no usable dose"))
        elif mg > limit:
            fails.append(replace(it.ev, note=dose, value=f"{mg:g}", unit="mg/day"))
            ends.append(None if e.ongoing else it.end_last)  # latest possible end
            enders.append((str(daily), ""))
        else:
            ok.append(replace(it.ev, note=dose, value=f"{mg:g}", unit="mg/day"))
    if fails:
        eligible = clear_from(ends, span)
        # as the other washouts say it: until when, or that no end is known
        when = f"until {eligible}" if eligible else "ongoing or no known end"
        # the dose of the exposure whose end sets that date (or that has none)
        named, doubt = sets_date(ends, enders)
        when += f": {doubt} may be within it" if doubt else ""
        return result(
            crit,
            Status.FAIL,
            f"{named} > {limit:g} within {span} ({when})",
            fails + unknown + ok,
            ignored,
            eligible,
        )
    if unknown:
        if any(u.note == "no usable dose" for u in unknown):
            why = "corticosteroid in window without a usable dose"
        else:
            why = why_partial or f"undated corticosteroid: cannot tell if within {span}"
        return result(crit, Status.UNKNOWN, why, unknown + ok, ignored)
    return result(crit, Status.PASS, "no corticosteroid above the limit in window", ok, ignored)
