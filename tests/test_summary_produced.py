"""summary.html says when it was produced (a printed or left-over page is dated by it)."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

from criteria_helpers import ago, condition, patient
from researcher_helpers import run_records

from cohort.model import CriterionInfo, SiteResult
from cohort.report.html import summary_html

CRITERIA = [CriterionInfo("age", "inclusion", "Age >= 12")]


def test_the_header_names_the_time_the_page_was_produced_in_utc() -> None:
    site = SiteResult("uci", "UCI", date(2026, 11, 26), CRITERIA, [], [])
    site.produced = "2026-11-26T05:07:09+00:00"
    for phi in (True, False):
        page = summary_html(site, history=[], phi=phi)
        assert ' · produced <b id="produced">2026-11-26 05:07 UTC</b>' in page


def test_a_run_dates_its_page_by_the_run_json_start(tmp_path: Path) -> None:
    records = [
        patient("1980-05-01", pid="p1"),
        {**condition("M32.14", onset=ago(3000), rid="c1"), "subject": {"reference": "Patient/p1"}},
    ]
    site = run_records(tmp_path, records)
    started = json.loads((site.parent / "run.json").read_text(encoding="utf-8"))["started"]
    # "2026-11-29T22:52:13+00:00" is shown as "2026-11-29 22:52 UTC"
    shown = f"{started[:10]} {started[11:16]} UTC"
    page = (site / "summary.html").read_text(encoding="utf-8")
    assert f'produced <b id="produced">{shown}</b>' in page


def test_a_printed_funnel_shows_each_criterion_s_words_whole() -> None:
    """On paper there is no tooltip: a criterion's words cut to "No cyclophosphamide, Ig,
    plasmaph…" at A4 width could not be read; printed, they wrap instead."""
    site = SiteResult("uci", "UCI", date(2026, 11, 26), CRITERIA, [], [])
    page = summary_html(site, history=[])
    printed = re.search(r"@media print\{(.*)\}", page.split("</style>")[0], re.S)
    assert printed
    crit = re.search(r"\.crit\{([^}]*)\}", printed.group(1))
    assert crit and {"white-space:normal", "overflow:visible"} <= set(crit.group(1).split(";"))
