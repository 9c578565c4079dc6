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
    # "left": screened, then each printed one, then likely + possible if the tiers tell it
    chain = [int(screened)] if screened.isdigit() else []
    if funnel[0]["left"].isdigit() and not funnel[0]["fail"].isdigit() and chain:
        found.append("first 'left' tells the first criterion's fails")
    chain += [int(f["left"]) for f in funnel if f["left"].isdigit() and int(f["left"]) >= 11]
    if tiers["likely"].isdigit() and tiers["possible"].isdigit():
        chain.append(int(tiers["likely"]) + int(tiers["possible"]))
    elif screened.isdigit() and tiers["excluded"].isdigit():
        chain.append(int(screened) - int(tiers["excluded"]))
    for a in chain:
        for b in chain:
            if 0 < a - b < 11:
                found.append(f"'left' {a} - {b}")
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
