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


def label(n: int, hidden: bool) -> str:
    if n == 0:
        return "0"
    if is_small(n):
        return LESS
    return WITHHELD if hidden else str(n)


def page_counts(tiers: Mapping[str, int], funnel: Sequence[Mapping[str, Any]]) -> PageCounts:
    """The texts of the tier counts and funnel counts of one run, suppressed together.

    `tiers`: screened plus one count per tier (run.tier_counts); `funnel`: run.criterion_funnel.
    """
    screened = tiers.get("screened", 0)
    parts = {k: n for k, n in tiers.items() if k != "screened"}
    groups = [{s: int(f[s]) for s in ("pass", "unknown", "fail")} for f in funnel]
    hidden_tiers = hide_in_group(parts)
    hidden_groups = [hide_in_group(g) for g in groups]
    out = PageCounts()
    if not is_small(screened) and (hidden_tiers is None or None in hidden_groups):
        # the total itself would have to go: then so must every count adding up to it
        out.withhold_all = True
        out.tiers = {k: label(n, True) for k, n in tiers.items()}
        out.funnel = [
            {**{s: label(n, True) for s, n in g.items()}, "remaining": label(f["remaining"], True)}
            for g, f in zip(groups, funnel, strict=True)
        ]
        return out
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
    return out


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
