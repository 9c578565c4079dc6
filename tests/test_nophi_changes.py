"""The `--no-phi` summary's changes, read with the trend's previous run and today's tiers."""

from __future__ import annotations

import re
from datetime import date

from cohort.model import Candidate, CriterionInfo, Patient, Result, SiteResult, Status
from cohort.report.html import summary_html

CRITERIA = [CriterionInfo("age", "inclusion", "Age"), CriterionInfo("washout", "exclusion", "W")]
BIG = 10**6


def _span(text: str) -> range:
    """The values a printed count allows: 0, "<11" (1-10), "*" (11 or more), "40–49", 24."""
    text = text.replace("&lt;", "<")
    if text == "withheld":  # (not printed: any number)
        return range(0, BIG)
    if text == "<11":
        return range(1, 11)
    if text == "*":
        return range(11, BIG)
    if "–" in text:
        low, high = text.split("–")
        return range(int(low), int(high) + 1)
    return range(int(text), int(text) + 1)


def _changes(line: str) -> dict[str, str]:
    """The change counts the page prints, "withheld" for each it does not."""
    printed = {what: n for n, what in re.findall(r"<b>([^<]*)</b> ([a-z ]+?)(?: ·|$)", line)}
    kinds = ["new", "newly eligible", "no longer eligible", "no longer screened"]
    return {k: printed.get(k, "withheld") for k in kinds}


def _no_phi_page(site: SiteResult, last_run: tuple[int, int, int]) -> tuple[str, dict[str, str]]:
    """The `--no-phi` page of `site`, its last run's (screened, possible, excluded) in the
    trend (none likely), and the change counts it prints."""
    screened, possible, excluded = last_run
    history = [{"date": "2026-02-28", "site": "s", "screened": screened, "likely": 0,
                "possible": possible, "excluded": excluded}]  # fmt: skip
    page = summary_html(site, history=history, phi=False)
    line = re.search(r'id="change-counts"[^>]*>(.*?)</p>', page)
    assert line
    return page, _changes(line[1])


def _site_moved() -> SiteResult:
    """Last run: 20 possible, 40 excluded. Now 17 of the excluded are possible (their washout
    ended) and 1 possible patient is excluded: 36 possible, 24 excluded, no one new or gone."""
    p, f = Status.PASS, Status.FAIL
    cands, before = [], {}
    for i in range(60):
        possible = i < 36
        results = [Result("age", p, ""), Result("washout", p if possible else f, "")]
        tier = "possible" if possible else "excluded"
        pid = f"p{i:03d}"
        cands.append(Candidate(Patient(pid, ""), results, tier=tier, rank=i + 1))
        # p000-p016 were excluded, p017-p035 possible; p036 was possible, p037-p059 excluded
        before[pid] = "excluded" if i < 17 or i > 36 else "possible"
    return SiteResult("s", "Site", date(2026, 3, 1), CRITERIA, [], cands, previous_tiers=before)


def test_no_longer_eligible_cannot_be_worked_out_from_the_trend() -> None:
    """Excluded today = excluded last run - newly eligible + no longer eligible (+ new - no
    longer screened). The page printed 24 excluded today, 40–49 excluded last run, 17 newly
    eligible, 0 new, 0 no longer screened and "<11" no longer eligible: 24 = E - 17 + X with E
    from 40 to 49 leaves X = 41 - E, so X = 1 (and E = 40). Every value 1-10 of the "<11" must
    still fit the printed page."""
    page, changes = _no_phi_page(_site_moved(), last_run=(60, 20, 40))
    dropped = changes["no longer eligible"]  # 1: the count a reader must not learn
    assert not (dropped.isdigit() and 0 < int(dropped) < 11)
    before = re.search(r"<tr><td>2026-02-28</td>(.*?)</tr>", page)
    today = re.search(r"<tr><td>2026-03-01</td>(.*?)</tr>", page)
    assert today
    # a page leaving the compared run out of the trend tells nothing of its count
    excluded_then = _span(re.findall(r">([^<]*)</td>", before[1])[3]) if before else range(200)
    excluded_now = _span(re.findall(r">([^<]*)</td>", today[1])[3])
    eligible, new = _span(changes["newly eligible"]), _span(changes["new"])
    gone = _span(changes["no longer screened"])
    # new patients may be excluded, patients no longer screened may have been: each moves
    # today's count by up to its number
    fits = [
        x
        for x in _span(dropped)[:100]
        if any(
            e - ne + x - gone[-1] <= excluded_now[-1] and e - ne + x + new[-1] >= excluded_now[0]
            for e in excluded_then
            for ne in eligible[:100]  # ("*": 11 to 110 is enough to fit)
        )
    ]
    assert fits == list(_span(dropped)[:100])


def _site_unchanged() -> SiteResult:
    """13 patients, all excluded, the same as last run: p000 fails the washout (12 pass it),
    the 12 others fail the age criterion. The cards print every count as "*" (the washout's
    12 pass and 1 fail add up to 13: "*" and "<11" would tell 1-2)."""
    p, f = Status.PASS, Status.FAIL
    cands, before = [], {}
    for i in range(13):
        results = [Result("age", p if i == 0 else f, ""), Result("washout", f if i == 0 else p, "")]
        cands.append(Candidate(Patient(f"p{i:03d}", ""), results, tier="excluded", rank=i + 1))
        before[f"p{i:03d}"] = "excluded"
    return SiteResult("s", "Site", date(2026, 3, 1), CRITERIA, [], cands, previous_tiers=before)


def test_hidden_screened_is_not_told_by_the_trend_and_the_changes() -> None:
    """Screened now = screened last run + new - no longer screened. The cards print screened
    as "*" and the washout as "* pass · 0 unknown · <11 fail"; the trend's last run prints
    11–19 screened and the changes 0 new, 0 no longer screened: screened is 11 to 19 now, so
    the washout's fails (screened minus at least 11 passes) are 1 to 8, never 9 or 10."""
    page, changes = _no_phi_page(_site_unchanged(), last_run=(13, 0, 13))
    cells = re.search(r'data-criterion="washout">.*?<div class="nums">(.*?)</div>', page)
    today = re.search(r"<tr><td>2026-03-01</td>(.*?)</tr>", page)
    assert cells and today
    nums = re.sub(r"<[^>]+>", "", cells[1])
    passed, unknown, failed = re.findall(r"(\S+) (?:pass|unknown|fail)", nums)
    assert not (failed.isdigit() and 0 < int(failed) < 11)
    screened = _span(re.findall(r">([^<]*)</td>", today[1])[0])
    before = re.search(r"<tr><td>2026-02-28</td>(.*?)</tr>", page)
    if before:
        then = _span(re.findall(r">([^<]*)</td>", before[1])[0])
        new, gone = _span(changes["new"]), _span(changes["no longer screened"])
        low, high = then[0] - gone[-1], then[-1] + new[-1]
        screened = range(max(screened[0], low), min(screened[-1], high) + 1)
    fits = [
        x
        for x in _span(failed)[:100]
        if any(s - x - u in _span(passed) for s in screened[:200] for u in _span(unknown)[:100])
    ]
    assert fits == list(_span(failed)[:100])
