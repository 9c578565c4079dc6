"""A chart merged into another since the last run: summary.html says so, not "refuted"."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from criteria_helpers import ago, condition, patient
from researcher_helpers import csv_rows, run_records


def _for(pid: str, res: dict[str, Any]) -> dict[str, Any]:
    return {**res, "subject": {"reference": f"Patient/{pid}"}}


def _removed_rows(page: str) -> list[str]:
    rows = re.findall(r'<tr class="removed">(.*?)</tr>', page, re.S)
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r)).strip() for r in rows]


def test_a_chart_merged_since_the_last_run_is_named_merged_into_its_survivor(
    tmp_path: Path,
) -> None:
    # night 1: two charts of one person, each screened (each has an SLE diagnosis)
    old = patient("1980-05-01", pid="old1", name=[{"family": "Oldchart", "given": ["Ann"]}])
    records = [
        old,
        patient("1980-05-01", pid="new1"),
        _for("old1", condition("M32.14", onset=ago(3000), rid="c-old")),
        _for("new1", condition("M32.14", onset=ago(30), rid="c-new")),
        patient("1990-01-01", pid="gone1"),
        _for("gone1", condition("M32.14", onset=ago(3000), rid="c-gone")),
    ]
    site = run_records(tmp_path, records)
    assert {r["patient_id"] for r in csv_rows(site / "candidates.csv")} == {
        "old1",
        "new1",
        "gone1",
    }
    # night 2: the EHR merged old1 into new1; gone1's diagnosis was refuted
    link = [{"other": {"reference": "Patient/new1"}, "type": "replaced-by"}]
    records[0] = {**old, "active": False, "link": link}
    records[5] = _for(
        "gone1", condition("M32.14", onset=ago(3000), rid="c-gone", verification="refuted")
    )
    site = run_records(tmp_path, records)
    assert {r["patient_id"] for r in csv_rows(site / "candidates.csv")} == {"new1"}
    page = (site / "summary.html").read_text(encoding="utf-8")
    removed = _removed_rows(page)
    # the merged chart says where its records went; the refuted one keeps the plain words
    assert any(
        r.startswith("- old1 ")
        and "no longer screened: merged into new1 (its records are read with new1's)" in r
        for r in removed
    ), removed
    assert any(
        r.startswith("- gone1 ") and "no longer screened: not in candidates.csv" in r
        for r in removed
    ), removed
    # the legend names the merge among the reasons a patient leaves the list
    assert "or merged into another chart" in page
