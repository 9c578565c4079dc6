"""summary.html's lists of changes say why a patient moved (the reasons of candidates.csv)."""

from __future__ import annotations

import re
from datetime import date

from cohort.model import Candidate, CriterionInfo, Patient, Result, SiteResult, Status
from cohort.report.html import summary_html

CRITERIA = [
    CriterionInfo("age", "inclusion", "Age >= 12"),
    CriterionInfo("pregnancy_lactation", "exclusion", "Not pregnant or lactating"),
]


def _cand(pid: str, rank: int, tier: str, preg: Status, why: str, change: str) -> Candidate:
    res = [Result("age", Status.PASS, "age 35 >= 12"), Result("pregnancy_lactation", preg, why)]
    return Candidate(Patient(pid, "1990-01-01", name=f"Name {pid}"), res, tier=tier, rank=rank,
                     score=2.0, change=change)


def _cells(page: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table}">(.*?)</table>', page, re.S)
    assert body
    return [
        [re.sub(r"<[^>]+>", "", td) for td in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr, re.S)]
        for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    ]


def test_a_patient_no_longer_eligible_is_listed_with_the_reason() -> None:
    cands = [
        _cand("p1", 1, "likely", Status.PASS, "no record", "tier excluded -> likely"),
        _cand("p2", 2, "excluded", Status.FAIL, "hCG positive on 2026-11-24",
              "tier likely -> excluded"),
    ]
    site = SiteResult("uci", "UCI", date(2026, 11, 24), CRITERIA, [], cands,
                      previous_tiers={"p1": "excluded", "p2": "likely"})
    cells = _cells(summary_html(site, history=[]), "changes-table")
    assert cells[0] == ["Rank", "Patient", "Tier", "Change", "Why", "Name"]
    assert cells[1] == ["1", "p1", "likely", "tier excluded -&gt; likely", "", "Name p1"]
    assert cells[2] == [
        "2",
        "p2",
        "excluded",
        "tier likely -&gt; excluded",
        "pregnancy_lactation: hCG positive on 2026-11-24",
        "Name p2",
    ]
