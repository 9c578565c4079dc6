"""Criterion kinds on results: `lab_latest`, `grades`, `labs_exceed` (`titer`: criteria.titers)."""

from __future__ import annotations

from cohort.criteria.base import Context, Criterion, result, shown, window_start
from cohort.criteria.bounds import above, amount, below, readable, sign, to_unit, versus
from cohort.criteria.days import condition_shown
from cohort.criteria.ids import says_id
from cohort.criteria.plausible import NOT_CONVERTIBLE, as_recorded, combined, implausible, kind_of
from cohort.model import Code, Evidence, NoValue, ObservationFact, ObsValue, Result, Status
from cohort.safetext import clipped


def superseded(ctx: Context, obs: list, concepts: list[str]) -> list[Evidence]:
    """Older results of a most-recent rule, listed as ignored."""
    return [
        ctx.obs_evidence(o, ctx.obs_concept(o, concepts), "superseded by a newer result")
        for o in obs
    ]


def lab_latest(crit: Criterion, ctx: Context) -> Result:
    """Most recent numeric result in a window against a threshold: fail_below or pass_at_least
    (below it fails), or pass_below (a strict upper limit: below it passes, at it fails)."""
    p = crit.params
    concepts = p["concepts"]
    since = window_start(ctx.as_of, p)
    obs, ignored = ctx.observations(concepts, since)
    if not obs:
        when = f" since {since}" if since else ""
        return result(
            crit, Status.UNKNOWN, f"no {ctx.label(concepts)} result{when}", ignored=ignored
        )
    o, older = obs[0], obs[1:]
    ignored += superseded(ctx, older, concepts)
    concept = ctx.obs_concept(o, concepts)
    unit = ctx.term.canonical_unit(concept) or ""
    name = ctx.label(concept)  # (reasons name it so; evidence keeps the concept)
    v = ctx.numeric(o, concept)
    if v is None:
        # a number outside the concept's plausible range (units.csv) says so, "not convertible"
        # only a value/unit that is not (QA: "value/unit '32500 10*3/uL' not convertible to
        # x10^3/uL" was untrue of a typo); the evidence row shows it as recorded
        far = implausible(ctx, o, concept)
        ev = ctx.obs_evidence(o, concept, far or NOT_CONVERTIBLE, convert=False)
        why = far or f"{as_recorded(ev.value, ev.unit)} not convertible to {to_unit(unit)}"
        # candidates.csv writes the criterion's id before the reason: a concept of that name
        # ("platelets: platelets: value/unit ...") is not named twice
        named = "" if says_id(crit.id, name) else f"{name} "
        return result(
            crit,
            Status.UNKNOWN,
            f"{named}{why}",
            [ev],
            ignored,
            unconvertible=name,
            no_value=kind_of(far),
        )
    cmp = sign(o)
    # as reported ("<20" is not 20); the evidence row keeps the number, reasons round it
    ev = ctx.obs_evidence(o, concept, "most recent", f"{cmp}{v:g}", unit)
    when = shown(o.when, o.when_last)
    upper = "pass_below" in p
    key = "pass_below" if upper else "fail_below" if "fail_below" in p else "pass_at_least"
    threshold = float(p[key])
    alt = p.get("alt") if "fail_below" in p else None
    if alt:
        # None: active on some of the days a partial date stands for (abatement, or a date
        # that may be after as_of), not on others
        alts = ctx.conditions(alt["concepts"])
        # one recorded as provisional, differential or unconfirmed (unconfirmed_verification)
        # is no established condition: the lower limit may apply or not, as for None
        unconfirmed = set(p.get("unconfirmed_verification", ()))
        shaky = [
            c
            for c in alts
            if c.verification_status in unconfirmed and ctx.active(c) and ctx.on_record(c)
        ]
        states = {ctx.active(c) and ctx.on_record(c) for c in alts if c not in shaky}
        low = float(alt["fail_below"])
        if True in states:
            threshold = low
        elif (None in states or shaky) and len({below(v, cmp, low), below(v, cmp, threshold)}) > 1:
            # the condition abated in a month or year containing as_of (or is not confirmed):
            # a value between the two limits passes on some of its days and fails on others
            said = f"{cmp}{readable(v, low, threshold)}"
            why = f"{name} {amount(said, unit)}: limit {low:g} or {threshold:g}"
            alt_name = ctx.label(alt["concepts"][0])
            if None not in states:  # only a condition not confirmed
                c = shaky[0]
                cev = Evidence(
                    ref=c.ref,
                    concept=name,
                    value=clipped(c.text),
                    date=condition_shown(c),
                    note=f"verificationStatus {c.verification_status}: not confirmed",
                )
                return result(
                    crit,
                    Status.UNKNOWN,
                    f"{why}, as {alt_name} is recorded as {c.verification_status}: confirm it",
                    [ev, cev],
                    ignored,
                )
            abated = any(ctx.active(c) is None for c in alts)
            may = "may have abated by" if abated else "may be dated after"
            return result(
                crit,
                Status.UNKNOWN,
                f"{why}, as {alt_name} {may} {ctx.as_of}",
                [ev],
                ignored,
            )
    is_below = below(v, cmp, threshold)
    if is_below is None:
        shown_v = amount(f"{cmp}{readable(v, threshold)}", unit)
        return result(
            crit,
            Status.UNKNOWN,
            f"{name} {shown_v} on {when}: cannot tell vs {threshold:g}",
            [ev],
            ignored,
        )
    # "<20" against 25: "below 20 x10^3/uL (limit 25)" (`versus`), as reported, not 20
    value = amount(readable(v, threshold), unit)
    said = versus(cmp, value, "<" if is_below else ">=", f"{threshold:g}")
    if is_below is not upper:
        return result(crit, Status.FAIL, f"{name} {said} on {when}", [ev], ignored)
    return result(crit, Status.PASS, f"{name} {said}", [ev], ignored)


_FINAL = ("final", "amended", "corrected")  # an assessment's copy that wins over a draft


def _grade(v: ObsValue) -> str:
    text = (v.string or v.text or (v.codes[0].code if v.codes else "")).strip().upper()
    return (
        text[0] if text and text[0] in "ABCDE" and (len(text) == 1 or not text[1].isalpha()) else ""
    )


def grades(crit: Criterion, ctx: Context) -> Result:
    """Organ grades (BILAG) at the latest assessment: pass with >= min_a A or >= min_b B."""
    p = crit.params
    # an assessment is a panel header of its organ grades: read with its components
    since = window_start(ctx.as_of, p)
    obs, ignored = ctx.observations(p["concepts"], since, panels=True)
    if not obs:
        # (as lab_latest says it; the title spliced in read "no BILAG-2004: >= 1 A or >= 2 B
        # within 90 days assessment in window")
        when = f" since {since}" if since else ""
        why = f"no {ctx.label(p['concepts'])} assessment{when}"
        return result(crit, Status.UNKNOWN, why, ignored=ignored)
    latest = obs[0].when
    # a component that is a result of its own is also read among its assessment's: once
    read = {o.ref for o in obs}
    day = []
    for o in obs:
        if o.part_of in read:
            continue
        if o.when != latest:
            ignored.append(ctx.obs_evidence(o, "", "superseded by a newer assessment"))
        else:
            day.append(o)
    # each organ system counts once: one assessment may be recorded twice (a preliminary and
    # a final copy), the final one's grade winning; different organ systems on the day add up
    by_organ: dict[Organ, tuple[bool, str]] = {}
    loose: list[str] = []  # grades of components naming no organ (_organs)
    ev = []
    for o, pairs in _organs(day):
        gs = [g for _, g in pairs if g]
        draft = o.status not in _FINAL
        for organ, g in pairs:
            if not g:
                continue
            if organ is None:
                loose.append(g)
            elif organ not in by_organ or by_organ[organ][0] and not draft:
                by_organ[organ] = (draft, g)
        ev.append(
            ctx.obs_evidence(
                o, ctx.obs_concept(o, p["concepts"]), "grades " + "".join(gs), "".join(gs)
            )
        )
    found = [g for _, g in by_organ.values()]
    if not found and not loose:
        return result(crit, Status.UNKNOWN, "no readable grades", ev, ignored)
    min_a, min_b = int(p.get("min_a", 1)), int(p.get("min_b", 2))
    a, b = found.count("A"), found.count("B")
    ok = a >= min_a or b >= min_b
    why = f"{a} A and {b} B on {latest}"
    if loose and ok != (a + loose.count("A") >= min_a or b + loose.count("B") >= min_b):
        # another organ, or one of those named again: each gives another outcome
        why += f", and {''.join(loose)} of a component with no organ named: cannot tell"
        return result(crit, Status.UNKNOWN, why, ev, ignored)
    return result(crit, Status.PASS if ok else Status.FAIL, why, ev, ignored)


# an organ system: (system, code) of each coding (a display is no part of it) and a name
Organ = tuple[tuple[tuple[str, str], ...], str]


def _organs(
    day: list[ObservationFact],
) -> list[tuple[ObservationFact, list[tuple[Organ | None, str]]]]:
    """Each assessment record of the day with its grades, each with its organ system: a
    result's code and text; a component's code, which names the organ whatever the text each
    copy gives it, unless one record names several organs by their text under that code (a
    site may record each organ so, "Renal", "Musculoskeletal"): then its text too, case and
    spacing aside, and a component with no text under such a code names none (None)."""

    def name(text: str) -> str:
        return " ".join(text.split()).casefold()

    def key(codes: tuple[Code, ...]) -> tuple[tuple[str, str], ...]:
        return tuple((c.system, c.code) for c in codes)

    shared: set[tuple[tuple[str, str], ...]] = set()
    for o in day:
        names: dict[tuple[tuple[str, str], ...], set[str]] = {}
        for c, text, _ in o.components:
            names.setdefault(key(c), set()).add(name(text))
        shared |= {c for c, n in names.items() if len(n) > 1}
    out = []
    for o in day:
        pairs: list[tuple[Organ | None, str]] = [((key(o.codes), name(o.text)), _grade(o.value))]
        for c, text, v in o.components:
            organ: Organ | None = (key(c), "")
            if key(c) in shared:
                organ = (key(c), name(text)) if name(text) else None
            pairs.append((organ, _grade(v)))
        out.append((o, pairs))
    return out


# how a result stands against its measure's limit (labs_exceed reading every result)
_AGAINST = {True: "above the limit", False: "within the limit", None: "cannot tell vs the limit"}


def labs_exceed(crit: Criterion, ctx: Context) -> Result:
    """Fail if a result in the window exceeds its measure's limit (only each measure's latest
    with `latest_only`); else unknown if a required measure has none or a result read cannot
    be compared; else pass."""
    p = crit.params
    since = window_start(ctx.as_of, p)
    latest_only = p.get("latest_only", False)
    evidence, ignored, fails, missing = [], [], [], []
    unread: list[str] = []  # the measures whose gap (in `missing`) is a value not convertible
    kinds: list[NoValue] = []  # ... and which kind each is
    for m in p["measures"]:
        concepts = m["concepts"]
        limit = float(m["fail_above"])
        obs, ign = ctx.observations(concepts, since)
        ignored += ign
        if not obs:
            if m.get("required"):
                missing.append(f"no {ctx.label(concepts[0])} in window")
            continue
        if latest_only:
            ignored += superseded(ctx, obs[1:], concepts)
            obs = obs[:1]
        # newest first: the measure's reason names its most recent result above the limit,
        # else its most recent one that cannot be compared
        # (unread_name: the name of the value not convertible when that is the measure's `unsure`)
        fail = unsure = unread_name = ""
        unread_kind = NoValue.NONE
        for o in obs:
            concept = ctx.obs_concept(o, concepts)
            unit = ctx.term.canonical_unit(concept) or ""
            v = ctx.numeric(o, concept)
            if v is None:
                far = implausible(ctx, o, concept)
                evidence.append(ctx.obs_evidence(o, concept, far or NOT_CONVERTIBLE, convert=False))
                if not unsure:
                    unread_name, unread_kind = ctx.label(concept), kind_of(far)
                    unsure = f"{unread_name} {far or 'not convertible'}"
                continue
            cmp = sign(o)
            exceeds = above(v, cmp, limit)
            note = "most recent" if latest_only else _AGAINST[exceeds]
            evidence.append(ctx.obs_evidence(o, concept, note, f"{cmp}{v:g}", unit))
            if (exceeds and not fail) or (exceeds is None and not unsure):
                name = ctx.label(concept)
                when = shown(o.when, o.when_last)  # as lab_latest says it
                if exceeds:
                    said = versus(cmp, amount(readable(v, limit), unit), ">", f"{limit:g}")
                    fail = f"{name} {said} on {when}"
                else:
                    said = amount(cmp + readable(v, limit), unit)
                    unsure = f"{name} {said} on {when}: cannot tell vs {limit:g}"
        if fail:
            fails.append(fail)
        elif unsure:
            missing.append(unsure)
            if unread_name:
                unread.append(unread_name)
                kinds.append(unread_kind)
    if fails:
        return result(crit, Status.FAIL, ", ".join(fails), evidence, ignored)
    if missing:
        # only values not convertible: `missing` asks for readable ones, not the tests
        said = ", ".join(unread) if len(unread) == len(missing) else ""
        why = ", ".join(missing)
        kind = combined(kinds)
        return result(
            crit, Status.UNKNOWN, why, evidence, ignored, unconvertible=said, no_value=kind
        )
    return result(crit, Status.PASS, "no value above its limit", evidence, ignored)
