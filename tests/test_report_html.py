"""Tests of the summary.html builder and the shared run.json counts."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as hs

from cohort.model import Candidate, CriterionInfo, Patient, Result, SiteResult, Status
from cohort.report.csv import candidates_csv
from cohort.report.html import LIST_MAX, TOP_N, summary_html
from cohort.report.run import criterion_funnel, run_json, tier_counts

CRITERIA = [
    CriterionInfo("age", "inclusion", "Age <b>>= 12</b>"),
    CriterionInfo("ana_titer", "inclusion", "ANA titer", missing_hint="ANA titer"),
    CriterionInfo("sledai", "inclusion", "SLEDAI-2K >= 6", manual_when_unknown=True),
    CriterionInfo("washout_12wk", "exclusion", "12-week washout"),
]
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _cand(i: int, tier: str, ana: str = "pass", wash: str = "pass", **kw: object) -> Candidate:
    res = [
        Result("age", Status.PASS, "ok"),
        Result("ana_titer", Status(ana), "ana " + ana),
        Result("sledai", Status.UNKNOWN, "manual", manual=True),
        Result("washout_12wk", Status(wash), "wash " + wash),
    ]
    name = HOSTILE if i == 1 else f"Name {i}"
    return Candidate(
        Patient(f"p{i}", "1980-01-01", name=name), res, tier=tier, rank=i, score=3.0 - i / 10, **kw
    )  # type: ignore[arg-type]


def make_site(n_likely: int = 3, n_excluded: int = 15) -> SiteResult:
    cands = [_cand(i, "likely", change="new" if i == 2 else "") for i in range(1, n_likely + 1)]
    cands.append(_cand(n_likely + 1, "possible", ana="unknown", change="tier excluded -> possible"))
    for j in range(n_excluded):
        cands.append(
            _cand(n_likely + 2 + j, "excluded", wash="fail", eligible_from=date(2026, 4, 1 + j % 3))
        )
    return SiteResult(
        "uci",
        'UCI <script>x</script> & "co"',
        date(2026, 3, 1),
        CRITERIA,
        ["contraception"],
        cands,
        mapping_version="sha256:abc",
        data_freshness="2026-02-27T10:00:00Z",
    )


HISTORY = [
    {
        "date": "2026-02-28",
        "site": "uci",
        "screened": 18,
        "likely": 2,
        "possible": 1,
        "excluded": 15,
    }
]


def test_hostile_strings_escaped() -> None:
    page = summary_html(make_site(), history=HISTORY)
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "UCI &lt;script&gt;x&lt;/script&gt; &amp; &quot;co&quot;" in page
    assert "Age &lt;b&gt;&gt;= 12&lt;/b&gt;" in page


def test_funnel_one_group_per_criterion() -> None:
    site = make_site()
    page = summary_html(site, history=[])
    groups = re.findall(r'class="funnel-group" data-criterion="([^"]+)"', page)
    assert groups == [c.id for c in CRITERIA]
    wash = re.search(r'data-criterion="washout_12wk".*?</div></div>', page, re.S)
    assert wash
    counts = dict(re.findall(r'data-status="(\w+)" data-count="([^"]+)"', wash.group(0)))
    assert counts == {"pass": "4", "unknown": "0", "fail": "15"}


def test_numbers_agree_with_csv() -> None:
    site = make_site()
    page = summary_html(site, history=HISTORY)
    rows = list(csv.DictReader(io.StringIO(candidates_csv(site)[1:], newline="")))
    head = next(csv.reader(io.StringIO(candidates_csv(site)[1:], newline="")))
    assert len(set(head)) == len(head)
    tiers = {t: sum(r["tier"] == t for r in rows) for t in ("likely", "possible", "excluded")}
    for tier, n in tiers.items():
        assert f'data-tier="{tier}"><span class="n">{n}</span>' in page
    for crit in CRITERIA:
        for st in ("pass", "fail", "unknown"):
            n = sum(r[crit.id] == st for r in rows)
            group = re.search(rf'data-criterion="{crit.id}">.*?</div></div>', page, re.S)
            assert group and f'data-status="{st}" data-count="{n}"' in group.group(0)
    trs = re.findall(
        r'<tr class="candidate" data-patient-id="([^"]+)"><td class="num">(\d+)</td>'
        r".*?<td class=\"num\">([\d.]+)</td>",
        page,
    )
    by_id = {r["patient_id"]: r for r in rows}
    assert len(trs) == 4
    for pid, rank, score in trs:
        assert by_id[pid]["rank"] == rank and by_id[pid]["score"] == score


def test_no_phi_masks_small_counts() -> None:
    site = make_site()
    page = summary_html(site, history=HISTORY, phi=False)
    assert 'id="candidates"' not in page and 'tr class="candidate"' not in page
    for c in site.candidates:
        assert f">{c.patient.id}<" not in page and c.patient.id + " " not in page
        assert "Name " not in page and "alert" not in page
    assert 'data-tier="likely"><span class="n">&lt;11</span>' in page
    # 3 likely + 1 possible + 15 excluded = 19: printing 15 and 19 told "4 not excluded"; no
    # hiding within the tiers can help, so the total and everything adding up to it go
    assert 'data-tier="excluded"><span class="n">*</span>' in page
    assert 'data-tier="screened"><span class="n">*</span>' in page
    counts = re.findall(r'data-count="([^"]+)"', page)
    for value in counts:
        assert value in ("&lt;11", "0", "*") or int(value) >= 11
    assert 'data-count="&lt;11"' in page
    # nothing between 1 and 10 printed as a count anywhere in cards, funnel or trend table
    cells = re.findall(r'<td class="num">([^<]*)</td>', page)
    assert cells and all(
        v in ("&lt;11", "0", "*") or re.fullmatch(r"\d+–\d+", v) or int(v) >= 11 for v in cells
    )


def test_self_contained_no_remote_urls() -> None:
    for phi in (True, False):
        page = summary_html(make_site(), history=HISTORY, phi=phi)
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
        assert "<script" not in page.lower() and "<link" not in page.lower()
        assert "url(" not in page and "@import" not in page
        assert "default-src 'none'" in page


def test_trend_and_changes() -> None:
    page = summary_html(make_site(), history=HISTORY)
    assert len(re.findall(r'<polyline class="series"', page)) == 3
    assert page.count("<circle ") == 3 * 2  # history run + this run
    assert '<p id="change-counts"><b>1</b> new · <b>1</b> newly eligible' in page
    upcoming = re.findall(r'<li data-date="([^"]+)"', page)
    assert upcoming == sorted(upcoming) and len(upcoming) == 15


def test_run_json_and_counts() -> None:
    site = make_site()
    assert tier_counts(site) == {"screened": 19, "likely": 3, "possible": 1, "excluded": 15}
    funnel = criterion_funnel(site)
    assert [f["id"] for f in funnel] == [c.id for c in CRITERIA]
    assert funnel[1]["unknown"] == 1 and funnel[1]["pass"] == 18
    assert funnel[-1]["fail"] == 15 and funnel[-1]["remaining"] == 4
    text = run_json(
        {"b": 1, "a": {"as_of": date(2026, 3, 1), "z": [1]}, "tiers": tier_counts(site)}
    )
    assert text.endswith("\n") and text.index('"a"') < text.index('"b"')
    assert json.loads(text)["a"]["as_of"] == "2026-03-01"
    assert text == run_json(json.loads(text))


_STATUS = hs.sampled_from(list(Status))
_RESULTS = hs.lists(
    hs.tuples(hs.sampled_from(["age", "ana_titer", "sledai", "washout_12wk", "other"]), _STATUS),
    max_size=7,
)


@settings(max_examples=300, deadline=None)
@given(hs.lists(_RESULTS, max_size=12))
def test_funnel_counts_as_defined_criterion_by_criterion(charts: list) -> None:
    """The one-pass funnel against its definition: per criterion in order, the candidates'
    first result for it counted by status, and those failing it dropped from `remaining`
    (results for unlisted criteria and repeated ones ignored)."""
    cands = [
        Candidate(Patient(f"p{i}", ""), [Result(cid, s, "") for cid, s in chart])
        for i, chart in enumerate(charts)
    ]
    site = SiteResult("s", "S", date(2026, 1, 1), CRITERIA, [], cands)
    alive = set(range(len(cands)))
    want = []
    for ci in CRITERIA:
        firsts = [
            next((r.status.value for r in c.results if r.criterion == ci.id), "") for c in cands
        ]
        alive -= {i for i, s in enumerate(firsts) if s == "fail"}
        counts = {s: firsts.count(s) for s in ("pass", "fail", "unknown")}
        want.append((ci.id, counts, len(alive)))
    got = [
        (f["id"], {s: f[s] for s in ("pass", "fail", "unknown")}, f["remaining"])
        for f in criterion_funnel(site)
    ]
    assert got == want


def test_ten_thousand_candidates_page_stays_small() -> None:
    """With 10,000 candidates a night of many changes (every patient new) and thousands of
    washout dates made a 1.6 MB page of two endless lists: the lists stop at 100 rows and
    say where the rest is (candidates.csv)."""
    cands = [
        _cand(i, "excluded", wash="fail", change="new", eligible_from=date(2026, 4, 1 + i % 28))
        for i in range(1, 10_001)
    ]
    site = SiteResult("uci", "UCI", date(2026, 3, 1), CRITERIA, [], cands)
    page = summary_html(site, history=HISTORY)
    assert len(page) < 200_000
    assert page.count('<tr class="change">') == 100
    assert page.count("<li data-date=") == 100
    assert "9900 more: the <code>change</code> column of candidates.csv" in page
    assert "9900 more: the <code>eligible_from</code> column of candidates.csv" in page
    assert '<p id="change-counts"><b>10000</b> new' in page


def test_moves_between_likely_and_possible_are_listed_once() -> None:
    """possible -> likely and likely -> possible have lists of their own, 100 rows each; a
    patient from excluded to likely stays in "newly eligible" and is not listed twice."""
    cands = [_cand(i, "likely", change="tier possible -> likely") for i in range(1, 106)]
    cands.append(_cand(106, "likely", change="tier excluded -> likely"))
    cands.append(_cand(107, "possible", ana="unknown", change="tier likely -> possible"))
    cands.append(_cand(108, "possible", ana="unknown", change="criteria changed: ana_titer"))
    site = SiteResult("uci", "UCI", date(2026, 3, 1), CRITERIA, [], cands)
    page = summary_html(site, history=HISTORY)
    counts = re.search(r'<p id="change-counts">(.*?)</p>', page)
    assert counts and re.sub(r"</?b>", "", counts.group(1)) == (
        "0 new · 1 newly eligible · 105 newly likely · 1 no longer likely · "
        "0 no longer eligible · 0 no longer screened · 1 other changes"
    )

    def ids(table_id: str) -> list[str]:
        table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
        assert table, table_id
        return re.findall(r'<td class="pid">([^<]*)</td>', table.group(1))

    assert ids("newly-likely") == [f"p{i}" for i in range(1, LIST_MAX + 1)]
    assert "5 more: the <code>change</code> column of candidates.csv" in page
    assert ids("no-longer-likely") == ["p107"]
    assert ids("changes-table") == ["p106"]
    masked = summary_html(site, history=HISTORY, phi=False)
    # counts-only page: the change counts withheld (with the trend they could tell a "<11",
    # test_nophi_changes), no patient listed
    assert "Counts of changes are withheld on this page" in masked
    assert "<b>105</b> newly likely" not in masked
    assert 'id="newly-likely"' not in masked and ">p1<" not in masked


def test_prints_with_its_colours_and_without_cut_rows() -> None:
    """Printed from a browser (A4 or Letter), the funnel came out as blank rows: its bars and
    the legend swatches are CSS backgrounds, which browsers leave out unless "Background
    graphics" is ticked (it is not, by default); rows were cut across pages and the grey page
    background and margins were printed too."""
    page = summary_html(make_site(), history=HISTORY)
    css = re.search(r"<style>(.*?)</style>", page, re.S)
    assert css
    adjust = re.search(r"([^{}]*)\{[^}]*(?<!-)print-color-adjust:exact", css.group(1))
    assert adjust and {".bar", ".sw", ".track"} <= set(adjust.group(1).strip().split(","))
    printed = re.search(r"@media print\{(.*)\}", css.group(1), re.S)
    assert printed and "break-inside:avoid" in printed.group(1)
    assert re.search(r"body\{background:#fff;padding:0", printed.group(1))
    page_rule = re.search(r"@page\{([^}]*)\}", css.group(1))
    assert page_rule and "margin:" in page_rule.group(1)
    assert "size" not in page_rule.group(1)  # the printer's paper: A4 or Letter


def test_readme_says_where_each_list_stops() -> None:
    """Output audit: README said "Lists stop at 100 rows" while Top candidates stops at 25
    (the best-ranked likely and possible patients); the changes and upcoming-date lists stop
    at 100. The page is right: README now says what it does."""
    cands = [_cand(i, "likely") for i in range(1, 61)]
    page = summary_html(SiteResult("uci", "UCI", date(2026, 3, 1), CRITERIA, [], cands), history=[])
    table = re.search(r'<table id="candidates">.*?</table>', page, re.S)
    assert table and table.group(0).count('class="candidate"') == TOP_N == 25
    assert f"{60 - TOP_N} more in candidates.csv." in page
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    [row] = [line for line in readme.splitlines() if line.startswith("| `OUT/<site>/summary.html`")]
    assert f"top candidates (the first {TOP_N} likely or possible by rank)" in row, row
    assert f"changes and upcoming eligibility dates stop at {LIST_MAX} rows" in row, row
    assert LIST_MAX == 100  # (the limit README states, not only the one the page uses)
