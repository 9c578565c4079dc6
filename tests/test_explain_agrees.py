"""`cohort explain` reads a patient as the run did: its evidence lines are evidence.csv's rows.

Found by the as-of metamorphic sweeps (P5) on Inferno's Synthea data: an Observation kept whole
because it has no date (a DXA result sent with a dataAbsentReason), of a code no concept maps,
was counted by `explain` ("1 other Observation record(s) on file") and by no run ("no
Observation records on file"), though it is on file.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from criteria_helpers import SNOMED, condition, observation, patient
from researcher_helpers import csv_rows, run_records

from cohort.cli import cli

SEARCHED = (
    "searched: Observation records of ana_titer, ana_screen on record by 2026-11-25: none; "
    "1 other Observation record(s) on file, not mapped to any concept "
    "(see cohort mappings coverage)"
)


def _undated_unmapped() -> dict:
    # (LOINC 80954-1, a DXA bone density, maps to no concept; no effective[x]: not summarised)
    res = observation("80954-1", None, rid="o-dxa")
    res["dataAbsentReason"] = {"text": "not performed"}
    return res


def test_an_undated_unmapped_observation_is_on_file_in_the_run_and_in_explain(
    tmp_path: Path,
) -> None:
    records = [patient("1990-01-01"), condition("55464009", SNOMED, onset="2020-01-01")]
    site = run_records(tmp_path, [*records, _undated_unmapped()])
    rows = [r for r in csv_rows(site / "evidence.csv") if r["criterion"] == "ana_titer"]
    assert [(r["status"], r["used"], r["ref"], r["note"]) for r in rows] == [
        ("unknown", "yes", "", SEARCHED)
    ]
    args = ["explain", "p1", "--config", str(tmp_path / "site.toml"), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = lines.index("[unknown] ana_titer - ANA titer >= 1:80 (inclusion)")
    used = [ln for ln in lines[at + 1 :] if ln.startswith("  used: ")][0]
    assert used == f"  used: ana_titer,ana_screen  -- {SEARCHED}"


def test_explain_counts_no_record_the_run_does_not(tmp_path: Path) -> None:
    # the same chart with a dated DXA result: summarised at read time, counted by both alike
    dated = observation("80954-1", "2026-03-02", rid="o-dxa", valueString="see report")
    records = [patient("1990-01-01"), condition("55464009", SNOMED, onset="2020-01-01"), dated]
    site = run_records(tmp_path, records)
    rows = [r for r in csv_rows(site / "evidence.csv") if r["criterion"] == "ana_titer"]
    want = SEARCHED.replace("on file, not", "on file, latest 2026-03-02, not")
    assert [r["note"] for r in rows] == [want]
    args = ["explain", "p1", "--config", str(tmp_path / "site.toml"), "--out", str(tmp_path / "out")]
    lines = CliRunner().invoke(cli, args).output.splitlines()
    assert f"  used: ana_titer,ana_screen  -- {want}" in lines
