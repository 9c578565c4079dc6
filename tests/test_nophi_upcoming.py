"""The `--no-phi` summary's upcoming dates, read with the tier counts: no small count told."""

from __future__ import annotations

import re
from datetime import date, timedelta

from cohort.model import Candidate, CriterionInfo, Patient, Result, SiteResult, Status
from cohort.report.html import summary_html

CRITERIA = [
    CriterionInfo("age", "inclusion", "Age"),
    CriterionInfo("info", "inclusion", "Info"),
    CriterionInfo("washout", "exclusion", "Washout"),
]
BIG = 10**6


def _site(likely: int, possible: int, days: list[int]) -> SiteResult:
    """`likely` and `possible` patients, then excluded ones by the washout alone, `days[i]` of
    them eligible on the i-th day after as-of."""
    p, u, f = Status.PASS, Status.UNKNOWN, Status.FAIL
    cands = []
    for chart, n in (((p, p, p), likely), ((p, u, p), possible)):
        for _ in range(n):
            tier = "possible" if u in chart else "likely"
            cands.append((chart, tier, None))
    for i, n in enumerate(days):
        cands += [((p, p, f), "excluded", date(2026, 3, 2) + timedelta(days=i))] * n
    out = []
    for rank, (chart, tier, when) in enumerate(cands, 1):
        results = [Result(c.id, st, "") for c, st in zip(CRITERIA, chart, strict=True)]
        out.append(
            Candidate(Patient(f"p{rank:03d}", ""), results, tier=tier, rank=rank, eligible_from=when)
        )
    return SiteResult("s", "Site", date(2026, 3, 1), CRITERIA, [], out)


def _low(text: str) -> int:
    return 1 if text == "<11" else 11 if text == "*" else int(text)


def _high(text: str) -> int:
    return 10 if text == "<11" else BIG if text == "*" else int(text)


def _printed(site: SiteResult) -> tuple[dict[str, str], list[str]]:
    """The tier cards and the upcoming dates' patient counts of the `--no-phi` page."""
    page = summary_html(site, history=[], phi=False).replace("&lt;", "<")
    cards = dict(re.findall(r'data-tier="(\w+)"><span class="n">(.*?)</span>', page))
    days = re.findall(r'<li data-date="[^"]*"><b>[^<]*</b> — ([^ ]*) patient', page)
    return cards, days


def test_upcoming_dates_do_not_bound_excluded_enough_to_tell_likely() -> None:
    """40 screened: 5 likely, 12 possible, 23 excluded, each eligible on another day. The page
    printed 40, <11 likely, 12 possible, * excluded and 23 dates of "<11" patients: excluded is
    at least 23 (a date lists at least one), so likely = 40 - 12 - excluded is at most 5 (1-5:
    6 to 10 ruled out). The upcoming list bounds excluded from below like a printed count."""
    cards, days = _printed(_site(5, 12, [1] * 23))
    assert len(days) == 23
    if cards["screened"].isdigit():
        excluded_low = max(_low(cards["excluded"]), sum(_low(d) for d in days))
        likely_high = int(cards["screened"]) - _low(cards["possible"]) - excluded_low
        assert likely_high >= 10  # "<11" likely could still be 10
    assert cards["likely"] in ("<11", "*")


def test_upcoming_day_count_not_told_by_the_excluded_count() -> None:
    """60 screened: 20 likely, 28 possible, 12 excluded; 11 of them eligible on one day, 1 on
    the next. Printed 12 excluded, 11 on the first day and "<11" on the second told that one:
    11 + x <= 12 leaves x = 1. The "<11" day must still fit 10 with what the page prints."""
    cards, days = _printed(_site(20, 28, [11, 1]))
    assert days[1] == "<11"
    excluded_high = _high(cards["excluded"])
    if cards["screened"].isdigit():
        excluded_high = min(
            excluded_high,
            int(cards["screened"]) - _low(cards["likely"]) - _low(cards["possible"]),
        )
    assert _low(days[0]) + 10 <= excluded_high


def test_a_large_site_keeps_its_counts_and_dates() -> None:
    """Upcoming dates that tell nothing withhold nothing: 200 likely, 300 possible and 30
    excluded, eligible over 3 days (10 a day: "<11"), keep every count."""
    cards, days = _printed(_site(200, 300, [10, 10, 10]))
    assert days == ["<11", "<11", "<11"]
    assert cards == {"screened": "530", "likely": "200", "possible": "300", "excluded": "30"}
