"""Small-count suppression for the `--no-phi` summary: no count from 1 to 10 is shown, and none
can be worked out from the counts that are (docs/security.md, "Counts-only summary").

Three rules:
- a count from 1 to 10 is shown as "<11" (primary suppression);
- in a group of counts that add up to a shown total (the tiers add up to `screened`; each
  criterion's pass, unknown and fail do too), more counts are withheld ("*", complementary
  suppression) until the hidden ones, together, say no more about any "<11" than that it is
  from 1 to 10: a reader who knows the hidden ones add up to D, that each "<11" is 1-10 and
  each "*" at least 11, can still put every "<11" anywhere from 1 to 10. When even hiding
  the whole group is not enough, the total is withheld too, and then every count that adds up
  to it (`withhold_all`);
- a running count ("left" in the funnel: patients failing none of the criteria so far) is
  shown only where it differs from the previous one shown by 0 or by 11 or more.
Then the page as printed is read the way a reader can (`narrowed`): screened, each criterion's
printed cells, the printed "left" counts and the tier counts, linked by what a "left" is (the
first is screened minus the first criterion's fails; each next one is the previous minus 0 to
that criterion's fails, and at most screened minus them; the last is likely + possible; the
upcoming dates' patients per day are excluded ones, so they add up to at most excluded). Where
that still narrows a "<11", more cells are withheld, the fewest found step by step
(`_close`); failing that, the whole page's counts are.
Zero is shown: no patient is no one to single out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SMALL = 11
LESS = "<11"
WITHHELD = "*"


def is_small(n: int) -> bool:
    """A count the no-PHI page never shows: 1 to 10."""
    return 0 < n < SMALL


def _tells_nothing(primary: list[int], withheld: list[int]) -> bool:
    """Whether the sum of the hidden counts leaves every primary ("<11") cell free to be any
    of 1..10, given what a reader knows: each primary is 1-10, each withheld one >= 11."""
    if not primary:
        return True
    d = sum(primary) + sum(withheld)
    highest = d - (len(primary) - 1) - SMALL * len(withheld)
    lowest = 1 if withheld else d - (SMALL - 1) * (len(primary) - 1)
    return highest >= SMALL - 1 and lowest <= 1


def hide_in_group(values: Mapping[str, int]) -> set[str] | None:
    """Keys to hide in a group whose total is shown: the small ones, plus the fewest, smallest
    others that make `_tells_nothing` true. None: not even hiding all of them is enough (the
    total must be withheld)."""
    primary = [k for k, n in values.items() if is_small(n)]
    hidden = set(primary)
    others = sorted((n, k) for k, n in values.items() if n >= SMALL)
    small = [values[k] for k in primary]

    def ok(extra: set[str]) -> bool:
        return _tells_nothing(small, [values[k] for k in extra])

    withheld: set[str] = set()
    while not ok(withheld):
        rest = [(n, k) for n, k in others if k not in withheld]
        if not rest:
            return None
        one = next((k for _, k in rest if ok(withheld | {k})), None)
        withheld.add(one if one is not None else rest[-1][1])
    return hidden | withheld


def running(start: int, values: Sequence[int], hidden: set[int]) -> list[bool]:
    """Which running counts to show (True) after `start` (shown): each shown one differs from
    the previous shown one by 0 or by >= 11; the indexes in `hidden` are never shown, and
    small ones are shown as "<11" (also True here) without becoming the reference."""
    shown: list[bool] = []
    last = start
    for i, n in enumerate(values):
        if i in hidden:
            shown.append(False)
        elif is_small(n):
            shown.append(True)
        elif n == last or last - n >= SMALL:
            shown.append(True)
            last = n
        else:
            shown.append(False)
    return shown


@dataclass
class PageCounts:
    """How the no-PHI page prints one run's counts (text per count)."""

    tiers: dict[str, str] = field(default_factory=dict)
    funnel: list[dict[str, str]] = field(default_factory=list)  # pass/unknown/fail/remaining
    withhold_all: bool = False
    days: list[str] = field(default_factory=list)  # upcoming dates' patients, as printed


def label(n: int, hidden: bool) -> str:
    if n == 0:
        return "0"
    if is_small(n):
        return LESS
    return WITHHELD if hidden else str(n)


def page_counts(
    tiers: Mapping[str, int], funnel: Sequence[Mapping[str, Any]], days: Sequence[int] = ()
) -> PageCounts:
    """The texts of the tier counts and funnel counts of one run, suppressed together.

    `tiers`: screened plus one count per tier (run.tier_counts); `funnel`: run.criterion_funnel;
    `days`: the upcoming eligibility dates' patient counts the page prints beside them.
    """
    screened = tiers.get("screened", 0)
    parts = {k: n for k, n in tiers.items() if k != "screened"}
    groups = [{s: int(f[s]) for s in ("pass", "unknown", "fail")} for f in funnel]
    hidden_tiers = hide_in_group(parts)
    hidden_groups = [hide_in_group(g) for g in groups]
    out = PageCounts()
    if not is_small(screened) and (hidden_tiers is None or None in hidden_groups):
        # the total itself would have to go: then so must every count adding up to it
        return page_counts_withheld(tiers, funnel)
    out.tiers = {"screened": label(screened, False)}
    out.tiers.update({k: label(n, k in (hidden_tiers or set())) for k, n in parts.items()})
    for g, hid in zip(groups, hidden_groups, strict=True):
        out.funnel.append({s: label(n, s in (hid or set())) for s, n in g.items()})
    # "left" after each criterion: the first one is `screened` minus the first criterion's
    # fails, so it goes whenever those are hidden; the last one is likely + possible, shown
    # only if the tier counts as printed already tell it (else it would undo their hiding)
    remaining = [int(f["remaining"]) for f in funnel]
    never: set[int] = set()
    if remaining and groups and out.funnel[0]["fail"] in (LESS, WITHHELD):
        never.add(0)
    end = _known_end(out.tiers, parts, screened)
    if remaining and end is None:
        never.add(len(remaining) - 1)
    shown = running(screened, remaining, never)
    if remaining and end is not None:
        # the end is known from the tiers: the last shown "left" before it must not be 1-10
        # patients away from it either (else hide that one too, and look further back)
        i = len(remaining) - 1
        for j in range(i - 1, -1, -1):
            if not shown[j] or is_small(remaining[j]):
                continue
            if remaining[j] == end or remaining[j] - end >= SMALL:
                break
            shown[j] = False
        shown[i] = True  # (what the tiers already tell)
    for entry, n, ok in zip(out.funnel, remaining, shown, strict=True):
        entry["remaining"] = label(n, not ok)
    out.days = [label(n, False) for n in days]
    if not is_small(screened) and not _close(out):
        return page_counts_withheld(tiers, funnel)
    return out


def page_counts_withheld(
    tiers: Mapping[str, int], funnel: Sequence[Mapping[str, Any]]
) -> PageCounts:
    """Every count of the run as "*" (0 and 1-10 as always)."""
    return PageCounts(
        tiers={k: label(n, True) for k, n in tiers.items()},
        funnel=[
            {s: label(int(f[s]), True) for s in ("pass", "unknown", "fail", "remaining")}
            for f in funnel
        ],
        withhold_all=True,
    )


# --- what a reader can work out from the printed page ---------------------------------------

_NO_END = 1 << 62
Span = tuple[int, int]


def _span(text: str) -> Span:
    """The values a printed text allows."""
    if text == LESS:
        return (1, SMALL - 1)
    if text == WITHHELD:
        return (SMALL, _NO_END)
    return (int(text), int(text))


def _possible(
    screened: int,
    tiers: Mapping[str, Span],
    funnel: Sequence[Mapping[str, Span]],
    dated: int = 0,
) -> bool:
    """Whether some run fits the printed spans: per criterion pass + unknown + fail = screened;
    left[0] = screened - fail[0]; left[i] in [left[i-1] - fail[i], min(left[i-1], screened -
    fail[i])]; the tiers add up to screened and likely + possible = the last left; excluded is
    at least `dated` (the upcoming dates' patients, each one excluded). The chain
    links each step to the next only through "left", and each step's set of possible "left"
    values is a range, so carrying the range along is exact."""
    if dated:
        low, high = tiers.get("excluded", (0, 0))
        tiers = {**tiers, "excluded": (max(low, dated), high)}
    s = screened
    lo = hi = s
    for i, g in enumerate(funnel):
        (pl, ph), (ul, uh), (fl, fh) = g["pass"], g["unknown"], g["fail"]
        fl, fh = max(fl, s - ph - uh, 0), min(fh, s - pl - ul)
        if fl > fh:
            return False
        nlo, nhi = (s - fh, s - fl) if i == 0 else (lo - fh, min(hi, s - fl))
        tl, th = g["remaining"]
        lo, hi = max(nlo, tl, 0), min(nhi, th)
        if lo > hi:
            return False
    rest = [v for k, v in tiers.items() if k not in ("screened", "likely", "possible")]
    kept = (tiers.get("likely", (0, 0)), tiers.get("possible", (0, 0)))
    klo, khi = kept[0][0] + kept[1][0], kept[0][1] + kept[1][1]
    rlo, rhi = sum(v[0] for v in rest), sum(v[1] for v in rest)
    lo2, hi2 = max(klo, s - rhi), min(khi, s - rlo)  # likely + possible
    if funnel:
        lo2, hi2 = max(lo2, lo), min(hi2, hi)
    return lo2 <= hi2


def narrowed(
    tiers: Mapping[str, str], funnel: Sequence[Mapping[str, str]], days: Sequence[str] = ()
) -> list[tuple[str, int]]:
    """Every (cell, value) a printed "<11" cannot be, given the rest of the printed page:
    empty when each "<11" can still be anything from 1 to 10. Cells: a tier's name,
    "i.pass" / "i.unknown" / "i.fail" / "i.remaining" for the i-th criterion, or "days" for
    the upcoming dates' "<11"s (alike: only their sum is tied to the rest)."""
    if not tiers.get("screened", "0").isdigit():
        return []  # screened itself hidden ("<11" or "*"): nothing adds up to a known total
    screened = int(tiers["screened"])
    t = {k: _span(v) for k, v in tiers.items()}
    f = [{k: _span(v) for k, v in g.items()} for g in funnel]
    dated = sum(_span(d)[0] for d in days)
    out: list[tuple[str, int]] = []
    for k, text in tiers.items():
        if text == LESS and k != "screened":
            for v in range(1, SMALL):
                if not _possible(screened, {**t, k: (v, v)}, f, dated):
                    out.append((k, v))
    for i, g in enumerate(funnel):
        for k, text in g.items():
            if text != LESS:
                continue
            for v in range(1, SMALL):
                trial = [*f[:i], {**f[i], k: (v, v)}, *f[i + 1 :]]
                if not _possible(screened, t, trial, dated):
                    out.append((f"{i}.{k}", v))
    # a larger day only raises the sum: if one "<11" day can be 10, each value of each can
    if LESS in days and not _possible(screened, t, f, dated + SMALL - 2):
        out.append(("days", SMALL - 1))
    return out


def _close(out: PageCounts) -> bool:
    """Withhold more printed counts of `out` until `narrowed` finds nothing: each step takes
    the one count (or two of one criterion: hiding a fail alone leaves it as screened minus
    pass and unknown) whose hiding narrows least, fewest first. False: no step helps."""

    def cells() -> list[tuple[dict[str, str], str]]:
        shown: list[tuple[dict[str, str], str]] = [
            (out.tiers, k) for k in out.tiers if k != "screened" and _hideable(out.tiers[k])
        ]
        for g in out.funnel:
            shown += [(g, k) for k in ("remaining", "pass", "unknown", "fail") if _hideable(g[k])]
        return shown

    while bad := len(narrowed(out.tiers, out.funnel, out.days)):
        shown = cells()
        steps = [[c] for c in shown]
        steps += [[a, b] for n, a in enumerate(shown) for b in shown[n + 1 :] if a[0] is b[0]]
        best: tuple[tuple[int, int], list[tuple[dict[str, str], str]]] | None = None
        for step in steps:
            was = [d[k] for d, k in step]
            for d, k in step:
                d[k] = WITHHELD
            score = (len(narrowed(out.tiers, out.funnel, out.days)), len(step))
            for (d, k), text in zip(step, was, strict=True):
                d[k] = text
            if score[0] < bad and (best is None or score < best[0]):
                best = (score, step)
        if best is None:
            return False
        for d, k in best[1]:
            d[k] = WITHHELD
    return True


def _hideable(text: str) -> bool:
    """A printed count that "*" can stand for (11 or more)."""
    return text.isdigit() and int(text) >= SMALL


def _known_end(texts: Mapping[str, str], parts: Mapping[str, int], screened: int) -> int | None:
    """likely + possible when the printed tier counts tell it exactly, else None."""

    def shown(k: str) -> bool:
        return texts.get(k, "0") not in (LESS, WITHHELD)

    if shown("likely") and shown("possible"):
        return parts.get("likely", 0) + parts.get("possible", 0)
    if shown("screened") and shown("excluded"):
        return screened - parts.get("excluded", 0)
    return None


def approx(n: int) -> str:
    """A past run's count on the no-PHI trend: 0, "<11", or its ten ("60-69"; 11-19 for the
    first), so that two runs' counts cannot be subtracted to tell a small change."""
    if n <= 0:
        return "0"
    if is_small(n):
        return LESS
    low = max(SMALL, n - n % 10)
    return f"{low}–{n - n % 10 + 9}"
