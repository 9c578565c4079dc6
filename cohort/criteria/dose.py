"""Criterion kind `high_dose`: a prednisone-equivalent daily dose over a limit in a window."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import NamedTuple

from cohort.criteria.base import Context, Criterion, TerminologyLike, result, shown, window_span
from cohort.criteria.dose_days import same_day
from cohort.criteria.dose_forms import dose_span
from cohort.criteria.dose_overlap import OVERLAP_HINT, Within, noted, overlap, said
from cohort.criteria.intervals import (
    clear_from,
    exposure_dated,
    exposure_evidence,
    in_window,
    sets_date,
)
from cohort.criteria.strength import (
    in_mg,
    is_unit_form,
    name_strength,
    product_strength,
    solid_form,
)
from cohort.extract.dosage import widest
from cohort.model import Bounds, Dose, Evidence, ExposureFact, Quantity, Result, Status


class Daily(NamedTuple):
    """An exposure's largest daily dose: its corticosteroid (the ingredient's name as the
    mappings spell it, not the record's text), mg/day of it and prednisone-equivalent mg/day;
    where the dosage gives a range (a doseRange, frequencyMax ...), its least and its most."""

    drug: str
    mg: float
    equivalent: float
    # another dosage line (or set of concurrent ones) gives a dose that is not read: the
    # largest dose may be that one, so this is only a least largest dose
    unsure: bool = False
    mg_max: float | None = None  # None: no range (as mg)
    equivalent_max: float | None = None
    # how a dose with no unit was read, as tablets of the product's strength (else "")
    read_as: str = ""

    @property
    def most(self) -> float:
        """The most prednisone-equivalent mg/day it may be."""
        return self.equivalent if self.equivalent_max is None else self.equivalent_max

    def amounts(self) -> tuple[str, str]:
        """Its mg/day of the drug and prednisone-equivalent, "30" or a range "30 to 60"."""
        if self.equivalent_max is None:
            return f"{self.mg:g}", f"{self.equivalent:g}"
        return f"{self.mg:g} to {self.mg_max:g}", f"{self.equivalent:g} to {self.equivalent_max:g}"

    def __str__(self) -> str:
        read = f" (dose {self.read_as})" if self.read_as else ""
        return f"{self.drug} {self.amounts()[1]} mg/day prednisone-equivalent{read}"


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
    names = (*e.text.split(" | "), *ctx.term.product_names(e.codes))
    for name in names:
        if given is None and strength is None:
            strength = name_strength(name, drug)
    # a dose with no unit (Synthea's `{"value": 1}`) counts tablets only of a tablet or
    # capsule of known strength: of another form (a solution, a vial, a pack) 1 of what?
    form = None
    if strength is not None:
        dens = (i.denominator for i in e.ingredients if i.denominator is not None)
        form = solid_form((*names, e.route, *(q.code or q.unit for q in dens)))
    # Lines with the same Dosage.sequence are taken together (FHIR: "concurrent"), so their
    # doses add up, and a day's total is known only when each of them is (else the lines read
    # are its least); lines without a sequence, or with different ones (a taper's steps),
    # stand alone: the largest counts. A line standing alone that gives no dose at all (an
    # instruction) says nothing of one; a dose not read (a timing code not known, a volume
    # without strength, a rate) may be the largest, as may more than a dose read as its least.
    # A line giving a range (a doseRange, frequencyMax ...) is its least and its most mg/day.
    days: dict[tuple[int, int], list[tuple[float, float] | None]] = {}
    for i, d in enumerate(e.doses):
        if d.quantity is None and not d.unread and d.sequence is None:
            continue
        key = (0, d.sequence) if d.sequence is not None else (1, i)
        line = days.setdefault(key, [])
        line.append(_line_mg(d, strength, per_ml, ctx.term, form))
        if d.least:
            line.append(None)  # (more than its dose may be given, not read)
    totals = [
        (sum(x[0] for x in mgs if x), sum(x[1] for x in mgs if x))
        for mgs in days.values()
        if any(x is not None for x in mgs)
    ]
    if not totals:
        return None
    # to 0.1 mg: the factors are rounded (6.67 for 20/3), dexamethasone 6 mg is 40 mg, not 40.02
    low, high = max(t[0] for t in totals), max(t[1] for t in totals)
    unsure = any(None in mgs for mgs in days.values())
    read = _read_as(e.doses, strength, form) if form is not None else ""
    if high == low:
        return Daily(drug, round(low, 1), round(low * factor, 1), unsure, read_as=read)
    return Daily(
        drug,
        round(low, 1),
        round(low * factor, 1),
        unsure,
        round(high, 1),
        round(high * factor, 1),
        read,
    )


def _read_as(doses: tuple[Dose, ...], strength: float | None, form: str) -> str:
    """How the lines' doses with no unit were read: "2 (no unit; read as tablets) × 5 mg"."""
    read = []
    for d in doses:
        if d.quantity is None or d.unread or not _unitless(d.quantity):
            continue
        n = f"{d.quantity.value:g}"
        if d.quantity_max is not None:
            n += f" to {d.quantity_max.value:g}"
        many = d.quantity_max is not None or d.quantity.value != 1
        read.append(f"{n} (no unit; read as {form}{'s' if many else ''}) × {strength:g} mg")
    return ", ".join(dict.fromkeys(read))


def _unitless(q: Quantity) -> bool:
    """A dose as recorded with no unit: neither a text nor a code (of any system)."""
    return not (q.code or q.unit).strip()


def _bare(q: Quantity, form: str | None) -> str | None:
    """`form` for a dose `q` with no unit (read as that many of it), else None."""
    return form if form is not None and _unitless(q) else None


def _steps(ctx: Context, e: ExposureFact) -> list[ExposureFact]:
    """A systemic exposure whose dosage lines have days of their own (bounds: a taper's
    steps), as one exposure a step, each over its own days: lines with the same `sequence`
    together (concurrent: over the days any of them runs), lines that give no dose
    (instructions) in none. Else (or with one step only) the exposure as it is."""
    if not e.doses or e.doses[0].bounds is None or not ctx.systemic(e):
        return [e]
    together: dict[int, Bounds] = {}
    for d in e.doses:
        if d.sequence is not None and d.bounds is not None:
            seen = together.get(d.sequence)
            together[d.sequence] = d.bounds if seen is None else widest((seen, d.bounds))
    steps: dict[Bounds | None, list[Dose]] = {}
    for d in e.doses:
        if d.quantity is None and not d.unread and d.sequence is None:
            continue  # (an instruction: as daily_dose reads it)
        steps.setdefault(together[d.sequence] if d.sequence is not None else d.bounds, []).append(d)
    if len(steps) < 2:
        return [e]
    return [
        replace(
            e,
            start=b.start,
            end=b.end,
            ongoing=b.ongoing,
            start_last=b.start_last,
            end_last=b.end_last,
            doses=tuple(lines),
        )
        for b, lines in steps.items()
        if b is not None
    ]


def _line_mg(
    d: Dose,
    strength: float | None,
    per_ml: float | None,
    term: TerminologyLike,
    form: str | None = None,
) -> tuple[float, float] | None:
    """Milligrams a day of one dosage line, the least and the most (1 administration a day
    when no rate is given); None when it has no usable dose. With a solid `form` (its
    strength known), a dose with no unit is that many of it."""
    if d.quantity is None or d.unread:
        return None
    # (of each form its doseAndRate entries give it that reads; a doseRange: its high too)
    span = dose_span(d, lambda q: _mg(term.ucum_only(q), strength, per_ml, term, _bare(q, form)))
    if span is None:
        return None
    least, most = span
    fewest = d.per_day if d.per_day is not None else 1.0
    least, most = least * fewest, most * (d.per_day_max if d.per_day_max is not None else fewest)
    cap = _cap(d, strength, per_ml, term)
    if cap is None:
        return least, most
    # no more a day than its maxDosePerPeriod: the most lowered to it, never raised (a least
    # above it too: the schedule gives more than may be taken, the cap says what may be)
    return min(least, cap), min(most, cap)


def _cap(
    d: Dose, strength: float | None, per_ml: float | None, term: TerminologyLike
) -> float | None:
    """The least mg a day of a line's maxDosePerPeriod Ratios whose numerator reads as a dose
    does and whose denominator is of time (UCUM's: a month 30.4375 days); None: none reads."""
    caps = []
    for num, den in d.caps:
        days = term.convert_to(den, "d")
        amount = _mg(term.ucum_only(num), strength, per_ml, term)
        if days is not None and days > 0 and amount is not None:
            caps.append(amount / days)
    return min(caps, default=None)


def _mg(
    q: Quantity,
    strength: float | None,
    per_ml: float | None,
    term: TerminologyLike,
    bare: str | None = None,
) -> float | None:
    """Milligrams of one dose `q`: in any mass unit (ug, kg ... as SPEC §2's UCUM semantics),
    in tablets (`strength` mg each; `bare`: with no unit, of that tablet or capsule form) or
    in a volume (`per_ml` mg a mL); None when not read."""
    if bare is not None or is_unit_form(q.code or q.unit):
        return q.value * strength if strength is not None else None
    if (converted := in_mg(term, q)) is not None:
        return converted
    if per_ml is not None and (ml := term.convert_to(q, "mL")) is not None:
        return ml * per_ml
    return None


def high_dose(crit: Criterion, ctx: Context) -> Result:
    p = crit.params
    span = window_span(p)
    lo = span.before(ctx.as_of)
    limit = float(p["max_daily_mg"])
    fails, unknown, ignored = [], [], []
    ok: list[Evidence] = []
    ends: list[date | None] = []
    enders: list[tuple[str, str]] = []  # the dose each of `ends` is the end of, its doubt if any
    why_partial = why_range = ""
    # each exposure in the window without a usable dose, as a reason names it
    undosed: list[str] = []
    within: list[Within] = []  # each with a dose within the limit (criteria.dose_overlap)
    # each step of each exposure, a day's administrations of a drug together
    steps = same_day(
        ctx, (s for e in ctx.exposures(p["concepts"]) for s in _steps(ctx, e)), daily_dose
    )
    for e in steps:
        concept = ",".join(sorted(set(p["concepts"]) & ctx.concepts(e.ref, e.codes, e.text)))
        if not ctx.systemic(e):
            ignored.append(exposure_evidence(e, concept, "not systemic (route or form)"))
            continue
        it = exposure_dated(e, concept, "")
        undated = e.start is None and e.end is None
        inside = None if undated else in_window(ctx, it, lo)
        if inside is False:
            ignored.append(it.ev.noted("outside window"))
            continue
        daily = daily_dose(ctx, e)
        if daily is not None and daily.unsure and daily.equivalent <= limit:
            daily = None  # a line not read may be above the limit: no usable dose
        # its most (a range: a doseRange, frequencyMax ...; its least: daily.equivalent)
        most = daily.most if daily is not None else None
        dose = "no usable dose"
        if daily is not None:
            # the drug's own dose and its equivalent; the drug named by the mappings, not by
            # the record's text (--no-phi shows notes and reasons as they are: report.nophi)
            own, equivalent = daily.amounts()
            dose = f"{daily.drug} {own} mg/day = {equivalent} mg/day prednisone-equivalent"
            dose += f"; dose {daily.read_as}" if daily.read_as else ""
        may_fail = most is None or most > limit
        if undated and may_fail:
            # no date at all: the data cannot tell whether this dose is within the window
            unknown.append(it.ev.noted("undated: cannot tell if within window"))
        elif inside is None and may_fail:
            # in the window on some of the days its partial dates stand for, not on others
            doubt = f"{daily or 'corticosteroid'} {it.partial()}"
            why_partial = why_partial or (
                f"{doubt}: cannot tell if within {span} before {ctx.as_of} (ending after {lo})"
            )
            unknown.append(it.ev.noted(f"{it.doubt()}: may be within window; {dose}"))
            if daily is not None:
                ends.append(None if e.ongoing else it.end_last)  # it may fail as long
                enders.append((str(daily), doubt))
        elif daily is None:
            unknown.append(it.ev.noted("no usable dose"))
            undosed.append(_undosed(ctx, e, it.ev.value))
        elif daily.equivalent > limit:
            fails.append(replace(it.ev, note=dose, value=f"{daily.equivalent:g}", unit="mg/day"))
            ends.append(None if e.ongoing else it.end_last)  # latest possible end
            enders.append((str(daily), ""))
        elif daily.most > limit:
            # a range with its least within the limit and its most above it
            unknown.append(it.ev.noted(f"{dose}: may be > {limit:g}"))
            why_range = why_range or (
                f"{daily} within {span}: cannot tell if > {limit:g} (the dosage gives a range)"
            )
        else:
            within.append((it, daily.drug, daily.most, len(ok), e.doses))
            # (the most it may be: what the pass rests on)
            ok.append(replace(it.ev, note=dose, value=f"{daily.most:g}", unit="mg/day"))
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
    # no record alone over the limit: records taken together may be (only where 2 may be)
    found = overlap(within, lo, ctx.as_of, limit) if len(within) > 1 else None
    rows = ok if found is None else noted(ok, found)
    if unknown:
        if undosed:
            more = len(dict.fromkeys(undosed)) - 1
            why = f"{undosed[0]} in window without a usable dose" + (
                f" (and {more} more)" if more else ""
            )
        else:
            why = (
                why_range or why_partial or f"undated corticosteroid: cannot tell if within {span}"
            )
        return result(crit, Status.UNKNOWN, why, unknown + rows, ignored)
    if found is not None:
        return result(crit, Status.UNKNOWN, said(found, limit), rows, ignored, hint=OVERLAP_HINT)
    return result(crit, Status.PASS, "no corticosteroid above the limit in window", ok, ignored)


def _undosed(ctx: Context, e: ExposureFact, value: str) -> str:
    """An exposure without a usable dose as a reason names it, with its date: its corticosteroid
    by the mappings' name (as a dose's reason names it), else its evidence value (free text that
    `--no-phi` withholds where the reason quotes it, report.nophi), else "corticosteroid". Never
    a dosage's text: no evidence value holds it, so nothing would withhold it."""
    ingredients = sorted(ctx.term.medication_ingredients(e.codes, e.text))
    factors = [(f, i) for i in ingredients if (f := ctx.term.prednisone_factor(i)) is not None]
    name = max(factors)[1] if factors else value or "corticosteroid"
    start = shown(e.start, e.start_last)
    if not start:
        return f"{name} without a start date"
    one_day = not e.ongoing and (e.end, e.end_last) == (e.start, e.start_last)
    return f"{name} {'on' if one_day else 'from'} {start}"
