"""The `--no-phi` summary: no count from 1 to 10 can be read, or worked out from the others."""

from __future__ import annotations

import math
import re
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as hs

from cohort.model import Candidate, CriterionInfo, Patient, Result, SiteResult, Status
from cohort.report.html import summary_html
from cohort.report.run import criterion_funnel, tier_counts
from cohort.report.suppress import approx, hide_in_group, page_counts

CRITERIA = [
    CriterionInfo("age", "inclusion", "Age"),
    CriterionInfo("ana_titer", "inclusion", "ANA"),
    CriterionInfo("washout", "exclusion", "Washout"),
]
TIERS = ("likely", "possible", "excluded")


def _site(charts: list[tuple[Status, ...]]) -> SiteResult:
    cands = []
    for i, chart in enumerate(charts):
        results = [Result(ci.id, st, "") for ci, st in zip(CRITERIA, chart, strict=True)]
        tier = (
            "excluded"
            if Status.FAIL in chart
            else "possible"
            if Status.UNKNOWN in chart
            else "likely"
        )
        cands.append(Candidate(Patient(f"p{i:03d}", ""), results, tier=tier, rank=i + 1))
    return SiteResult("s", "Site", date(2026, 3, 1), CRITERIA, [], cands)


def _site_of(likely: int, possible: int, excluded: int) -> SiteResult:
    p, u, f = Status.PASS, Status.UNKNOWN, Status.FAIL
    return _site([(p, p, p)] * likely + [(p, u, p)] * possible + [(p, p, f)] * excluded)


def _printed(page: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    tiers = dict(re.findall(r'data-tier="(\w+)"><span class="n">([^<]*)<', page))
    funnel = []
    for crit in CRITERIA:
        group = re.search(rf'data-criterion="{crit.id}">.*?<div class="nums">(.*?)</div>', page)
        assert group
        text = re.sub(r"<[^>]+>", "", group.group(1)).replace("&lt;", "<")
        nums = re.fullmatch(r"(\S+) pass · (\S+) unknown · (\S+) fail · (\S+) left", text)
        assert nums, text
        funnel.append(dict(zip(("pass", "unknown", "fail", "left"), nums.groups(), strict=True)))
    return {k: v.replace("&lt;", "<") for k, v in tiers.items()}, funnel


def _pinned(total: str, cells: list[str]) -> bool:
    """What a reader can do with a group of printed counts adding up to a printed total: is
    some "<11" cell narrowed below 1..10? (each "<11" is 1-10, each "*" at least 11)"""
    if not total.isdigit():
        return False
    hidden = [c for c in cells if not c.isdigit()]
    rest = int(total) - sum(int(c) for c in cells if c.isdigit())
    small = hidden.count("<11")
    withheld = hidden.count("*")
    for _ in range(small):
        low_others = (small - 1) + 11 * withheld
        high_others = math.inf if withheld else 10 * (small - 1)
        possible = [v for v in range(1, 11) if low_others <= rest - v <= high_others]
        if possible != list(range(1, 11)):
            return True
    return False


def _values(text: str, screened: int) -> range:
    if text == "<11":
        return range(1, 11)
    if text == "*":
        return range(11, screened + 1)
    return range(int(text), int(text) + 1)


def _fits(screened: int, tiers: dict[str, range], funnel: list[dict[str, range]]) -> bool:
    """Brute force over what a reader knows of a run: each criterion's pass + unknown + fail
    is screened; the first "left" is screened minus the first criterion's fails; each next one
    is the previous one minus 0 up to that criterion's fails (those failing it for the first
    time), and no more than screened minus its fails; the last one is likely + possible."""
    s = screened
    left = {s}
    for i, f in enumerate(funnel):
        fails = {n for n in f["fail"] if any(s - n - p in f["unknown"] for p in f["pass"])}
        nxt: set[int] = set()
        for r in left:
            for n in fails:
                nxt.update([r - n] if i == 0 else range(max(r - n, 0), min(r, s - n) + 1))
        left = nxt & set(f["left"])
    kept = {a + b for a in tiers["likely"] for b in tiers["possible"]}
    if funnel:
        kept &= left
    return any(s - k in tiers["excluded"] for k in kept)


def _reader_narrows(tiers: dict[str, str], funnel: list[dict[str, str]]) -> list[tuple[str, int]]:
    """Every value 1-10 some printed "<11" is told not to be, by a reader who knows screened,
    every printed cell of the criteria, the printed "left" counts and the tier counts."""
    if not tiers["screened"].isdigit():
        return []
    s = int(tiers["screened"])
    t = {k: _values(v, s) for k, v in tiers.items()}
    f = [{k: _values(v, s) for k, v in g.items()} for g in funnel]
    assert _fits(s, t, f)  # the true run fits what is printed
    out = []
    for k in TIERS:
        if tiers[k] == "<11":
            out += [(k, v) for v in range(1, 11) if not _fits(s, {**t, k: range(v, v + 1)}, f)]
    for i, g in enumerate(funnel):
        for k in g:
            if g[k] == "<11":
                for v in range(1, 11):
                    trial = [*f[:i], {**f[i], k: range(v, v + 1)}, *f[i + 1 :]]
                    if not _fits(s, t, trial):
                        out.append((f"{CRITERIA[i].id}.{k}", v))
    return out


def _leaks(site: SiteResult) -> list[str]:
    """Every way the no-PHI page lets a count from 1 to 10 be read or worked out."""
    page = summary_html(site, history=[], phi=False)
    tiers, funnel = _printed(page)
    found = []
    for text in [*tiers.values(), *(v for f in funnel for v in f.values())]:
        if text.isdigit() and 0 < int(text) < 11:
            found.append(f"printed {text}")
    screened = tiers["screened"]
    if _pinned(screened, [tiers[t] for t in TIERS]):
        found.append(f"tiers {tiers}")
    for crit, f in zip(CRITERIA, funnel, strict=True):
        if _pinned(screened, [f["pass"], f["unknown"], f["fail"]]):
            found.append(f"{crit.id} {f}")
    found += [f"{cell} cannot be {v}" for cell, v in _reader_narrows(tiers, funnel)]
    return found


def test_tier_counts_no_longer_tell_a_small_one() -> None:
    """The no-PHI page printed 63 screened, 16 possible and 38 excluded with likely as "<11":
    anyone could subtract, 63 - 16 - 38 = 9 likely patients. Now a second tier count is
    withheld ("*") and nothing printed pins a small count."""
    site = _site_of(9, 16, 38)
    tiers, _ = _printed(summary_html(site, history=[], phi=False))
    assert tiers == {"screened": "63", "likely": "<11", "possible": "*", "excluded": "38"}
    assert _leaks(site) == []


def test_funnel_left_no_longer_tells_a_small_difference() -> None:
    """The funnel printed "62 left" under a criterion 63 patients started from (one patient
    failing it, shown as "<11" beside it): 63 - 62 = 1."""
    p, f = Status.PASS, Status.FAIL
    site = _site([(f, p, p)] + [(p, p, p)] * 40 + [(p, p, f)] * 22)
    old_funnel = criterion_funnel(site)
    assert old_funnel[0]["remaining"] == 62
    _, funnel = _printed(summary_html(site, history=[], phi=False))
    assert funnel[0]["left"] == "*" and funnel[0]["fail"] == "<11"
    assert _leaks(site) == []


def test_first_left_worked_out_from_screened_and_fails() -> None:
    """Review: the first "left" printed as "*", but screened 50 minus the first criterion's 20
    fails told it (30); likely + possible (12 + 13) told the last (25), so the second criterion
    removed 5: its "<11" fails were 5-10. Now the first criterion's fails (and pass, which with
    unknown 0 would tell them) are withheld too."""
    tiers = {"screened": 50, "likely": 12, "possible": 13, "excluded": 25}
    funnel = [
        {"pass": 30, "unknown": 0, "fail": 20, "remaining": 30},
        {"pass": 45, "unknown": 0, "fail": 5, "remaining": 25},
    ]
    counts = page_counts(tiers, funnel)
    assert counts.tiers == {k: str(n) for k, n in tiers.items()}
    assert counts.funnel == [
        {"pass": "*", "unknown": "0", "fail": "*", "remaining": "*"},
        {"pass": "*", "unknown": "0", "fail": "<11", "remaining": "25"},
    ]
    printed = [{**g, "left": g.pop("remaining")} for g in map(dict, counts.funnel)]
    assert _reader_narrows(counts.tiers, printed) == []
    # what the page printed before: the reader pins the second criterion's fails to 5-10
    before = [
        {"pass": "30", "unknown": "0", "fail": "20", "left": "*"},
        {"pass": "*", "unknown": "0", "fail": "<11", "left": "25"},
    ]
    assert _reader_narrows(counts.tiers, before) == [
        (f"{CRITERIA[1].id}.fail", v) for v in range(1, 5)
    ]


def test_chain_of_sites_through_the_page() -> None:
    """The same case as a site on the page: screened 50, a first criterion failed by 20, a
    second by 5 (none of them failing the third)."""
    p, u, f = Status.PASS, Status.UNKNOWN, Status.FAIL
    charts = [(f, p, p)] * 20 + [(p, f, p)] * 5 + [(p, p, p)] * 12 + [(p, u, p)] * 13
    site = _site(charts)
    assert criterion_funnel(site)[0]["remaining"] == 30
    tiers, funnel = _printed(summary_html(site, history=[], phi=False))
    assert funnel[1]["fail"] == "<11" and funnel[0]["fail"] == "*"
    assert _leaks(site) == []


@settings(max_examples=400, deadline=None)
@given(hs.lists(hs.tuples(*[hs.sampled_from(list(Status))] * len(CRITERIA)), max_size=90))
def test_no_small_count_can_be_worked_out(charts: list[tuple[Status, ...]]) -> None:
    assert _leaks(_site(charts)) == []


def test_large_site_keeps_its_numbers() -> None:
    """Suppression hides what it must and no more: counts of a big site all print."""
    site = _site_of(400, 300, 1200)
    tiers, funnel = _printed(summary_html(site, history=[], phi=False))
    assert tiers == {"screened": "1900", "likely": "400", "possible": "300", "excluded": "1200"}
    assert funnel[2] == {"pass": "700", "unknown": "0", "fail": "1200", "left": "700"}
    counts = page_counts(tier_counts(site), criterion_funnel(site))
    assert not counts.withhold_all


def test_group_rule_and_trend_tens() -> None:
    assert hide_in_group({"a": 9, "b": 16, "c": 38}) == {"a", "b"}
    assert hide_in_group({"a": 10, "b": 1, "c": 50}) == {"a", "b"}  # 11 between two: 1..10 each
    assert hide_in_group({"a": 1, "b": 11}) is None  # 12 = 1 + 11: the total must go
    assert hide_in_group({"a": 0, "b": 40}) == set()
    assert [approx(n) for n in (0, 3, 11, 19, 20, 63)] == [
        "0",
        "<11",
        "11–19",
        "11–19",
        "20–29",
        "60–69",
    ]


def test_no_phi_trend_is_drawn_from_what_is_printed() -> None:
    """The trend printed yesterday's exact counts next to today's: 60 screened yesterday and
    63 today told "3 more" (or hid a 2 behind "<11" only in today's card). Past runs now show
    their ten, and the chart draws nothing the table hides."""
    site = _site_of(9, 16, 38)
    history = [
        {
            "date": "2026-02-28",
            "site": "s",
            "screened": 60,
            "likely": 8,
            "possible": 16,
            "excluded": 36,
        },
    ]
    page = summary_html(site, history=history, phi=False)
    row = re.search(r"<tr><td>2026-02-28</td>(.*?)</tr>", page)
    assert row and re.findall(r">([^<]*)</td>", row.group(1)) == [
        "60–69",
        "&lt;11",
        "11–19",
        "30–39",
    ]
    today = re.search(r"<tr><td>2026-03-01</td>(.*?)</tr>", page)
    assert today and re.findall(r">([^<]*)</td>", today.group(1)) == ["63", "&lt;11", "*", "38"]
    titles = re.findall(r"<title>([^<]*)</title>", page)
    assert "2026-03-01 possible: *" not in titles  # withheld: not drawn at all
    assert "2026-02-28 screened: 60–69" in titles and "2026-03-01 screened: 63" in titles


def test_no_phi_trend_of_a_back_dated_run() -> None:
    """A run as of an earlier date than runs already in the history: its own row is the one
    printed as the tier cards are, the later run's by its ten."""
    site = _site_of(9, 16, 38)
    later = {"date": "2026-03-05", "site": "s", "screened": 70, "likely": 12, "possible": 18}
    page = summary_html(site, history=[{**later, "excluded": 40}], phi=False)
    row = re.search(r"<tr><td>2026-03-05</td>(.*?)</tr>", page)
    assert row and re.findall(r">([^<]*)</td>", row.group(1)) == [
        "70–79",
        "11–19",
        "11–19",
        "40–49",
    ]
    today = re.search(r"<tr><td>2026-03-01</td>(.*?)</tr>", page)
    assert today and re.findall(r">([^<]*)</td>", today.group(1)) == ["63", "&lt;11", "*", "38"]
