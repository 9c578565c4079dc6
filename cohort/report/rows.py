"""Per-candidate values shared by the CSV and HTML writers, so both always agree."""

from __future__ import annotations

from datetime import date

from cohort.criteria.demographic import birth_bounds, years_at
from cohort.criteria.ids import without_id
from cohort.extract.elements import parse_days
from cohort.model import Candidate, CriterionInfo, NoValue, Patient, Result, SiteResult, Status

TIERS = ("likely", "possible", "excluded")
SEPARATOR = "; "  # between the items of a reasons / missing / to_confirm cell


def fmt_score(score: float) -> str:
    """The score as written everywhere: two decimals."""
    return f"{score:.2f}"


def fmt_date(d: date | None) -> str:
    """ISO date, or "" when absent."""
    return d.isoformat() if d else ""


Ordered = list[tuple[Result, CriterionInfo | None]]


def results_by_id(c: Candidate) -> dict[str, Result]:
    """The candidate's results keyed by criterion id (first result wins)."""
    out: dict[str, Result] = {}
    for r in c.results:
        out.setdefault(r.criterion, r)
    return out


def status_text(r: Result) -> str:
    """ "pass" / "fail" / "unknown" of a result."""
    s = r.status
    return s._value_ if s.__class__ is Status else Status(s).value  # _value_: no descriptor


def statuses(c: Candidate, done: Ordered | None = None) -> dict[str, str]:
    """criterion id -> pass / fail / unknown; build once per candidate, not once per cell
    (`done`: the candidate's `ordered` results, when already built)."""
    if done is not None:
        return {r.criterion: status_text(r) for r, _ in done}
    return {cid: status_text(r) for cid, r in results_by_id(c).items()}


def status_of(c: Candidate, criterion: str) -> str:
    """pass / fail / unknown for one criterion, "" when the candidate has no result for it."""
    r = results_by_id(c).get(criterion)
    return status_text(r) if r is not None else ""


def ordered(site: SiteResult, c: Candidate) -> Ordered:
    """Results in `site.criteria` order, then any result for a criterion not listed there.

    The functions below take it precomputed (`done`) where a caller needs several of them for
    one candidate: building it is most of their cost (10k candidates.csv rows: ~0.4 s)."""
    by_id = results_by_id(c)
    infos = {ci.id: ci for ci in site.criteria}
    ordered: list[tuple[Result, CriterionInfo | None]] = [
        (by_id[ci.id], ci) for ci in site.criteria if ci.id in by_id
    ]
    ordered += [(r, infos.get(r.criterion)) for cid, r in by_id.items() if cid not in infos]
    return ordered


def _is_manual(r: Result, info: CriterionInfo | None) -> bool:
    """An unknown that is for the coordinator to confirm rather than a data gap."""
    return r.manual or bool(info and info.manual_when_unknown)


def _title(r: Result, info: CriterionInfo | None) -> str:
    return (info.title if info else "") or r.criterion


def reasons(site: SiteResult, c: Candidate, done: Ordered | None = None) -> str:
    """Fails' reasons (plus unknown non-manual reasons when not excluded), "id: reason; ...".

    "; " separates the reasons, so one inside a reason (free text quoted from a record) is
    written ", ": splitting the cell on "; " gives exactly one "id: reason" per criterion.
    A reason beginning with the id in words before a value is written without it
    (`without_id`: "age: 11 < 12", not "age: age 11 < 12"), whatever the criterion's kind."""
    excluded = c.tier == "excluded" or any(r.status == Status.FAIL for r in c.results)
    parts: list[str] = []
    for r, info in done if done is not None else ordered(site, c):
        if r.status == Status.FAIL or (
            r.status == Status.UNKNOWN and not excluded and not _is_manual(r, info)
        ):
            why = without_id(r.criterion, r.reason).replace(SEPARATOR, ", ")
            parts.append(f"{r.criterion}: {why}" if why else r.criterion)
    return SEPARATOR.join(parts)


def _dedupe(items: list[str]) -> list[str]:
    out: list[str] = []
    for x in items:
        if x and x not in out:
            out.append(x)
    return out


def to_confirm_items(site: SiteResult, c: Candidate, done: Ordered | None = None) -> list[str]:
    """Manual unknown criteria (their titles), then the site's manual-only checks."""
    items = [
        _title(r, info)
        for r, info in (done if done is not None else ordered(site, c))
        if r.status == Status.UNKNOWN and _is_manual(r, info)
    ]
    return _dedupe(items + list(site.manual_items))


def missing_items(site: SiteResult, c: Candidate, done: Ordered | None = None) -> list[str]:
    """For unknown non-manual criteria: what would resolve them (hint, else title); for one
    whose unknown rests only on values that could not be converted (`Result.unconvertible`),
    a readable value of them (a plausible one when each converts but is not: `Result.no_value`):
    the result is there, and the hint ("CBC within 90 days") had the coordinator order a test
    the chart already has."""
    items = [
        _missing(r, info)
        for r, info in (done if done is not None else ordered(site, c))
        if r.status == Status.UNKNOWN and not _is_manual(r, info)
    ]
    return _dedupe(items)


def _missing(r: Result, info: CriterionInfo | None) -> str:
    if r.unconvertible:
        what = PLAUSIBLE_VALUE if r.no_value is NoValue.IMPLAUSIBLE else READABLE_VALUE
        return f"{r.unconvertible}: {what}"
    if r.hint:
        return r.hint
    return info.missing_hint if info and info.missing_hint else _title(r, info)


# what resolves an unknown from a value/unit that cannot be converted (`missing_items`), and
# from values that convert but lie outside the plausible range (criteria.plausible)
READABLE_VALUE = "readable value/unit (check the lab's unit)"
PLAUSIBLE_VALUE = "plausible value (check the result)"


# why lists in OUT are not compared with (`PreviousRun.not_compared`; summary.html says which)
OTHER_TRIAL = "trial"  # they were of another trial (`PreviousRun.trial` names it)
OTHER_CONFIG = "config"  # another configuration file's run wrote them (run.json names it)


def has_previous(site: SiteResult) -> bool:
    """A previous run of this site and trial was read: its tiers, or (`PreviousRun.found`)
    at least its header, when it screened nobody. False on the first run, with nothing to
    compare with."""
    return bool(site.previous_tiers) or bool(getattr(site.previous_tiers, "found", False))


def compared(site: SiteResult) -> bool:
    """The run was compared with a previous one (`has_previous`, or a candidate already
    carries a change): the summary's "changes" then count; else it says there is nothing to
    compare with."""
    return has_previous(site) or any(c.change for c in site.candidates)


def ranked(site: SiteResult) -> list[Candidate]:
    """The site's candidates by rank, the unranked (rank 0) last."""
    return sorted(site.candidates, key=lambda c: (c.rank <= 0, c.rank))


def change_of(site: SiteResult, c: Candidate) -> str:
    """`Candidate.change`, or derived from `site.previous_tiers` when the ranker left it empty."""
    if c.change or not has_previous(site):
        return c.change
    prev = site.previous_tiers.get(c.patient.id)
    if prev is None:
        return "new"
    if prev != c.tier:
        return f"tier {prev} -> {c.tier}"
    return ""


def is_newly_eligible(change: str) -> bool:
    """True for a change that moved the patient into likely/possible from excluded or nothing."""
    before, after = _moved(change)
    return before == "excluded" and after in ("likely", "possible")


def is_newly_excluded(change: str) -> bool:
    """True for a tier change from likely/possible to excluded (stop calling)."""
    before, after = _moved(change)
    return before in ("likely", "possible") and after == "excluded"


def _moved(change: str) -> tuple[str, str]:
    """(before, after) tiers of a `tier a -> b` change; ("", "") for any other change."""
    if not change.startswith("tier ") or "->" not in change:
        return "", ""
    before, after = (s.strip() for s in change[len("tier ") :].rsplit("->", 1))
    return before, after


def is_newly_likely(change: str) -> bool:
    """True for a tier change from possible to likely (the first to call); from excluded to
    likely is newly eligible."""
    return _moved(change) == ("possible", "likely")


def is_no_longer_likely(change: str) -> bool:
    """True for a tier change from likely to possible (likely to excluded: no longer eligible)."""
    return _moved(change) == ("likely", "possible")


Changed = list[tuple[Candidate, str]]


def changed(site: SiteResult) -> Changed:
    """The candidates with a change (`change_of`), by rank, with it; [] when the run was not
    compared with a previous one (`compared`)."""
    if not compared(site):
        return []
    out = [(c, change_of(site, c)) for c in ranked(site)]
    return [(c, ch) for c, ch in out if ch]


def likely_moves(moved: Changed) -> tuple[Changed, Changed]:
    """(newly likely, no longer likely) of `changed`'s list, by rank: what summary.html lists
    and run.json counts (one reading of the tier moves, so the two always agree)."""
    likely = [(c, ch) for c, ch in moved if is_newly_likely(ch)]
    unlikely = [(c, ch) for c, ch in moved if is_no_longer_likely(ch)]
    return likely, unlikely


def removed_ids(site: SiteResult) -> list[str]:
    """Patients of the previous run that are not screened now (no row in candidates.csv),
    by their previous tier then id."""
    current = {c.patient.id for c in site.candidates}
    order = {t: i for i, t in enumerate(TIERS)}
    gone = [pid for pid in site.previous_tiers if pid not in current]
    return sorted(gone, key=lambda pid: (order.get(site.previous_tiers[pid], len(order)), pid))


def age_at(birth_date: str, as_of: date, earliest: date | None = None) -> int | None:
    """Whole years at `as_of` (on every day from `earliest` to it, when given); for a partial
    birth date only when every possible day agrees (the days as the `age` criterion reads
    them: `birth_bounds`, so the two always agree)."""
    bounds = birth_bounds(birth_date)
    if bounds is None:
        return None
    # (years only grow with the day: the two ends of each range decide)
    ages = {years_at(b, on) for b in bounds for on in {earliest or as_of, as_of}}
    if len(ages) != 1:
        return None
    age = ages.pop()
    return age if 0 <= age < 150 else None


def age_of(p: Patient, as_of: date) -> int | None:
    """The `age_years` cell: `age_at` as_of, or at death for a patient who died on or before
    it (a deceasedDateTime that may be after as_of: every day up to as_of; a death of no
    date, deceasedBoolean: no age)."""
    if not p.birth_date:
        return None
    if not p.deceased:
        return age_at(p.birth_date, as_of)
    days = parse_days(p.deceased_on)
    if days is None:
        return None
    first, last = days[0], days[1] or days[0]
    if first > as_of:  # (the data as known on as_of: alive on it)
        return age_at(p.birth_date, as_of)
    return age_at(p.birth_date, min(last, as_of), first)
