"""Criterion kinds on the patient and the qualifying diagnosis: `age`, `deceased`,
`active_record`, `diagnosis`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from cohort.criteria.base import Context, Criterion, months_before, result, shown
from cohort.criteria.counted import counted, is_counted
from cohort.criteria.days import condition_days, condition_shown, latest, onset_bounded
from cohort.extract.elements import parse_days
from cohort.extract.onset import birth_days
from cohort.model import ConditionFact, Evidence, Result, Status
from cohort.safetext import clipped


def years_at(born: date, on: date) -> int:
    """Whole years from `born` to `on` (the `age` criterion, and report.rows.age_at)."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def birth_bounds(text: str) -> tuple[date, date] | None:
    """Earliest and latest possible birth date of a full or partial FHIR date (as an onset age
    reads it: `extract.onset.birth_days`)."""
    return birth_days(text)


def age(crit: Criterion, ctx: Context) -> Result:
    site_min = ctx.site.get("min_age")  # (0 is a site's limit too: not "unset")
    minimum = int(crit.params["min_years"] if site_min is None else site_min)
    pid = ctx.facts.patient.id
    bounds = birth_bounds(ctx.facts.patient.birth_date)
    if bounds is None:
        return result(crit, Status.UNKNOWN, "no usable birth date")
    if bounds[1] > ctx.as_of:
        # no age: an error of the record (or of the as-of date) for the coordinator ("age -4"
        # failed it). The date goes to the reason and evidence only, never to a log; --no-phi
        # withholds it as any evidence text it quotes (report.nophi)
        born = shown(*bounds)
        after = "after" if bounds[0] > ctx.as_of else "may be after"
        ev = [Evidence(ref=f"Patient/{pid}", value=born, note=f"birth date {after} as-of")]
        return result(crit, Status.UNKNOWN, f"birth date {born} {after} as-of {ctx.as_of}", ev)
    oldest, youngest = years_at(bounds[0], ctx.as_of), years_at(bounds[1], ctx.as_of)
    # A partial birth date spans less than a year: one age, or two (a birthday in it may fall
    # on either side of as_of's day). Reason and evidence say the same ages; neither quotes the
    # birth date (an identifier, left out of --no-phi outputs).
    ages = str(oldest) if oldest == youngest else f"{youngest} or {oldest}"
    partial = " (partial birth date)" if oldest != youngest else ""
    note = "age at as-of" + partial
    # (in words: UCUM's `a`, "35 a", is no unit a coordinator reads as years; nothing converts it)
    ev = [Evidence(ref=f"Patient/{pid}", value=ages, unit="years", note=note)]
    # the oldest age that passes (an age range, "18 to 75 years"); a site's min_age leaves it
    maximum = crit.params.get("max_years")
    if oldest < minimum:
        return result(crit, Status.FAIL, f"age {ages} < {minimum}{partial}", ev)
    if maximum is not None and youngest > maximum:
        return result(crit, Status.FAIL, f"age {ages} > {maximum}{partial}", ev)
    if youngest < minimum:
        why = f"partial birth date: age {ages}, cannot tell if >= {minimum}"
        return result(crit, Status.UNKNOWN, why, ev)
    if maximum is None:
        return result(crit, Status.PASS, f"age {ages} >= {minimum}{partial}", ev)
    if oldest > maximum:
        why = f"partial birth date: age {ages}, cannot tell if <= {maximum}"
        return result(crit, Status.UNKNOWN, why, ev)
    return result(crit, Status.PASS, f"age {ages} >= {minimum} and <= {maximum}{partial}", ev)


def deceased(crit: Criterion, ctx: Context) -> Result:
    """Patient.deceased[x]: a patient who died on or before as_of fails (no end: not a washout);
    none recorded, or a death dated after as_of (the data as known on as_of), passes; a
    deceased[x] given with no value (a data-absent-reason) is unknown."""
    pt = ctx.facts.patient
    if not pt.deceased:
        if pt.deceased_unknown:  # deceased[x] given with no value: not known
            ev = [Evidence(ref=f"Patient/{pt.id}", value="not known", note="Patient.deceased[x]")]
            why = "whether the patient died is not known (Patient.deceased[x] without a value)"
            return result(crit, Status.UNKNOWN, why, ev)
        return result(crit, Status.PASS, "no death recorded")
    days = parse_days(pt.deceased_on)
    ref = f"Patient/{pt.id}"
    if days is None:  # deceasedBoolean true (a dateTime that does not read is refused at input)
        ev = [Evidence(ref=ref, value="deceased", note="Patient.deceasedBoolean")]
        return result(crit, Status.FAIL, "deceased (no date recorded)", ev)
    first, last = days[0], days[1] or days[0]
    when = shown(first, last)
    ev = [Evidence(ref=ref, value="deceased", date=when, note="Patient.deceasedDateTime")]
    if last <= ctx.as_of:
        return result(crit, Status.FAIL, f"deceased {when}", ev)
    if first > ctx.as_of:
        return result(crit, Status.PASS, f"death recorded after {ctx.as_of}: {when}", ev)
    return result(
        crit, Status.UNKNOWN, f"death recorded only as {when}: may be after {ctx.as_of}", ev
    )


def active_record(crit: Criterion, ctx: Context) -> Result:
    """Whether the Patient record is the one in use: `Patient.active` false (an obsolete chart,
    often a duplicate or one merged away; some EHRs also mark patients not seen for a while)
    or a `replaced-by` link (a merged chart read as it is: the one that replaced it is not in
    the data, or the links loop) is unknown, for the coordinator to check the chart, never a
    fail: the patient may well be a candidate under this or another record."""
    pt = ctx.facts.patient
    ref = f"Patient/{pt.id}"
    if pt.replaced_by:
        other = f"Patient/{pt.replaced_by}"
        ev = [Evidence(ref=ref, value="inactive", note=f"Patient.link replaced-by {other}")]
        where = "the merge links loop" if pt.replaced_loop else "not in the data"
        why = f"Patient record replaced by {other} ({where}): check the current chart"
        return result(crit, Status.UNKNOWN, why, ev)
    if not pt.active:
        ev = [Evidence(ref=ref, value="inactive", note="Patient.active false")]
        why = "Patient record marked inactive (Patient.active false): check it is the current chart"
        return result(crit, Status.UNKNOWN, why, ev)
    return result(crit, Status.PASS, "Patient record in use")


def diagnosis(crit: Criterion, ctx: Context) -> Result:
    """A qualifying condition recorded long enough before as_of (onset, else recordedDate); with
    `min_count` or a window, enough of them in the window (criteria.counted)."""
    p = crit.params
    if is_counted(p):
        return counted(crit, ctx)
    found = ctx.conditions(p["concepts"])
    uncertain_why = p.get("uncertain_reason", "diagnosis not specific")
    unsure = list(p.get("uncertain_concepts", []))
    if not found:
        uncertain = ctx.conditions(unsure)
        if uncertain:
            return result(crit, Status.UNKNOWN, uncertain_why, _plain(ctx, uncertain, unsure))
        return _none_yet(crit, ctx)
    unconfirmed = set(p.get("unconfirmed_verification", ()))
    sure = [c for c in found if c.verification_status not in unconfirmed]
    dated = _dated(crit, ctx, found)
    if dated.status is Status.FAIL:
        # too recent; an older unspecific one (lupus erythematosus) may be the same diagnosis
        uncertain = ctx.conditions(unsure)
        if uncertain and _dated(crit, ctx, uncertain).status is Status.PASS:
            ev = [*dated.evidence, *_plain(ctx, uncertain, unsure)]
            return result(crit, Status.UNKNOWN, uncertain_why, ev, dated.ignored)
    if len(sure) == len(found) or dated.status is not Status.PASS:
        return dated  # (what the unconfirmed ones cannot change)
    own = _dated(crit, ctx, sure) if sure else None
    if own is not None and own.status is Status.PASS:
        return own
    # it passes only on a diagnosis its record says is not confirmed (provisional, differential)
    shaky = [c for c in found if c.verification_status in unconfirmed]
    label = p.get("label") or ctx.label(p["concepts"][0])
    ev = [
        _named(p, c, f"verificationStatus {c.verification_status}" if c in shaky else "")
        for c in found
    ]
    why = f"{label} recorded as {shaky[0].verification_status}: confirm the diagnosis"
    return result(crit, Status.UNKNOWN, why, ev, dated.ignored)


def _none_yet(crit: Criterion, ctx: Context) -> Result:
    """No qualifying condition on record by as_of. One dated after it (what `ctx.conditions`
    leaves out) is named and listed: screening counts it whatever its date, and the coordinator
    would otherwise see a listed patient with no diagnosis shown."""
    p = crit.params
    later = [c for c in ctx.matching(ctx.facts.conditions, p["concepts"]) if c.onset or c.recorded]
    if not later:
        return result(crit, Status.FAIL, "no qualifying diagnosis")
    first = min(later, key=lambda c: c.onset or c.recorded or date.max)
    label = p.get("label") or ctx.label(p["concepts"][0])
    why = f"no qualifying diagnosis ({label} dated {condition_shown(first)}, after the as-of date)"
    ignored = [_named(p, c, "after the as-of date") for c in later]
    return result(crit, Status.FAIL, why, (), ignored)


def _dated(crit: Criterion, ctx: Context, found: list[ConditionFact]) -> Result:
    """`diagnosis` on the conditions `found` (at least one) by their dates."""
    p = crit.params
    months = int(p["min_months"])
    cutoff = months_before(ctx.as_of, months)
    ev = [_named(p, c) for c in found]
    # (first day, last day, condition) of each dated one, earliest first
    dated = sorted(
        ((first, last, c) for c in found for first, last in [condition_days(c)] if first and last),
        key=lambda d: (d[0], d[1], d[2].ref),
    )
    sure = [d for d in dated if d[1] <= cutoff]  # every day it can stand for is early enough
    if sure:
        return result(
            crit,
            Status.PASS,
            f"diagnosed {_when(sure[0][2])} (on or before {cutoff})",
            ev,
        )
    # an onset the record gives but cannot date is no later than the record (condition_days)
    for c in found:
        last = latest(c.recorded, c.recorded_last) if c.onset_undated and c.onset is None else None
        if last is not None and last <= cutoff:
            when = shown(c.recorded, c.recorded_last)
            why = f"diagnosed on or before its record of {when} (onset not dated; on or before"
            return result(crit, Status.PASS, f"{why} {cutoff})", ev)
    maybe = [d for d in dated if d[0] <= cutoff]  # a partial date straddling the cutoff
    if maybe:
        c = maybe[0][2]
        label = p.get("label") or ctx.label(p["concepts"][0])
        which = "onset " if c.onset is not None else ""
        note = "" if c.onset is not None else " (recordedDate, no onset)"
        return result(
            crit,
            Status.UNKNOWN,
            f"{label} {which}recorded only as {condition_shown(c)}{note}, "
            f"{months} months before {ctx.as_of} is {cutoff}",
            ev,
        )
    if len(dated) < len(found):
        if any(c.onset_undated for c in found):
            label = p.get("label") or ctx.label(p["concepts"][0])
            return result(
                crit, Status.UNKNOWN, f"{label} onset recorded without a date this can read", ev
            )
        return result(crit, Status.UNKNOWN, "diagnosis has no onset or recorded date", ev)
    # the cut-off named as one: "after <date>" read as an unexplained second date (QA)
    period = f"{months} month" if months == 1 else f"{months} months"
    why = (
        f"diagnosed {condition_shown(dated[0][2])}, less than {period} before the as-of date"
        f" (needs on or before {cutoff})"
    )
    return result(crit, Status.FAIL, why, ev)


def _when(c: ConditionFact) -> str:
    """A condition's date as recorded, with the recordedDate when that bounds its onset (a pass
    may rest on it)."""
    if onset_bounded(c):
        return f"{condition_shown(c)} (recorded {shown(c.recorded, c.recorded_last)})"
    return condition_shown(c)


def _named(p: Mapping[str, Any], c: ConditionFact, note: str = "") -> Evidence:
    """Evidence of a condition of the criterion's concepts."""
    concept = ",".join(p["concepts"])
    return Evidence(
        ref=c.ref, concept=concept, value=clipped(c.text), date=condition_shown(c), note=note
    )


def _plain(ctx: Context, conditions: list[ConditionFact], concepts: list[str]) -> list[Evidence]:
    """Evidence of conditions of an uncertain concept, each naming the one it matched (an
    evidence.csv row with no concept left a researcher to guess why it was read)."""
    return [
        Evidence(
            ref=c.ref,
            concept=min(set(concepts) & ctx.concepts(c.ref, c.codes, c.text), default=""),
            value=clipped(c.text),
            date=condition_shown(c),
        )
        for c in conditions
    ]
