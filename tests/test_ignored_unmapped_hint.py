"""A fail or unknown whose only rows are records set aside (an older result outside the window)
also says what was searched when records no concept maps are on file (docs/rules.md)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from criteria_helpers import (
    AS_OF,
    SNOMED,
    ago,
    condition,
    criterion,
    days_before,
    facts,
    medication,
    observation,
    patient,
    qty,
    rules,
    terminology,
    trial,
)
from researcher_helpers import csv_rows, run_records

from cohort.cli import cli
from cohort.criteria.searched import with_searched
from cohort.evaluate import evaluate, make_context
from cohort.model import Result
from cohort.screening import add_side
from cohort.store.census import Side

LAB = "http://example.org/fhir/site-x/lab"
COVERAGE = "not mapped to any concept (see cohort mappings coverage)"
# the platelets window: 90 days before the as-of date (2026-11-25)
SINCE = ago(90)
SEARCHED = f"searched: Observation records of platelets in the 90 days before {AS_OF}: none usable"


def _old_platelets(rid: str = "o-old") -> dict[str, Any]:
    """A platelet count (LOINC 777-3) 200 days back: outside the 90-day window."""
    return observation("777-3", ago(200), rid=rid, valueQuantity=qty(180, "10*3/uL", ucum=True))


def _local_platelets(when: str) -> dict[str, Any]:
    """A recent platelet count under the lab's own code, which no concept maps."""
    return observation("PLT-L", when, LAB, rid="o-local", valueQuantity=qty(150, "K/cumm"))


def _side(n: int, latest: date) -> Side:
    return [], [], {"Observation": n}, {"Observation": latest}


def _result(cid: str, *resources: dict[str, Any], side: Side | None = None) -> Result:
    ctx = make_context(add_side(facts(*resources), side), terminology(), AS_OF, rules(), None)
    return next(r for r in evaluate(trial(), ctx) if r.criterion == cid)


def test_an_older_result_set_aside_with_summarised_unmapped_results_gets_the_hint() -> None:
    r = _result("platelets", _old_platelets(), side=_side(2, days_before(10)))
    # the outcome and reason as before: no result in the window
    assert (r.status.value, r.reason) == ("unknown", f"no platelets result since {SINCE}")
    [row] = r.evidence
    assert (row.ref, row.concept) == ("", "platelets")
    # the two summarised results: the older platelet count is of the concept, not "other"
    assert row.note == (
        f"{SEARCHED}; 2 other Observation record(s) on file, latest {ago(10)}, {COVERAGE}"
    )
    [old] = r.ignored
    assert (old.ref, old.note) == ("Observation/o-old", f"outside window (before {SINCE})")


def test_a_stored_unmapped_result_counts_too() -> None:
    r = _result("platelets", _old_platelets(), _local_platelets(ago(5)))
    assert r.status.value == "unknown"
    [row] = r.evidence
    assert row.note == (
        f"{SEARCHED}; 1 other Observation record(s) on file, latest {ago(5)}, {COVERAGE}"
    )
    assert [e.ref for e in r.ignored] == ["Observation/o-old"]


def test_no_unmapped_record_leaves_the_rows_set_aside_alone() -> None:
    # a hemoglobin result is mapped to another concept: no hint to give, rows as before
    hgb = observation("718-7", ago(5), valueQuantity=qty(12, "g/dL", ucum=True))
    r = _result("platelets", _old_platelets(), hgb)
    assert r.status.value == "unknown" and r.evidence == ()
    assert [e.note for e in r.ignored] == [f"outside window (before {SINCE})"]


def test_a_therapy_set_aside_with_an_unmapped_medication_gets_the_hint() -> None:
    # hydroxychloroquine that ended (ignored) and a medication record no concept maps
    ended = medication("MedicationStatement", "8640", status="completed", start=ago(200), end=ago(100))
    side: Side = [], [days_before(20)], {"MedicationRequest": 1}, {}
    r = _result("background_therapy", ended, side=side)
    assert r.status.value == "fail"
    [row] = r.evidence
    assert row.ref == ""
    assert row.note == (
        "searched: medication records of corticosteroid_systemic, antimalarial,"
        f" dmard_background current on {AS_OF}: none usable; 1 other medication record(s)"
        f" on file, latest {ago(20)}, {COVERAGE}"
    )
    assert [e.note for e in r.ignored] == ["not current on the as-of date"]


def test_a_pass_builds_nothing() -> None:
    # (hot path: a pass returns before the records on file are looked at)
    ok = observation("777-3", ago(10), valueQuantity=qty(180, "10*3/uL", ucum=True))
    ctx = make_context(
        add_side(facts(ok, _old_platelets()), _side(3, days_before(1))),
        terminology(),
        AS_OF,
        rules(),
        None,
    )
    crit = criterion("platelets")
    [r] = [r for r in evaluate(trial(), ctx) if r.criterion == "platelets"]
    assert r.status.value == "pass"
    ctx._memo.clear()
    assert with_searched(crit, ctx, r) is r
    assert not any(k.startswith("searched:") for k in ctx._memo)


def test_evidence_csv_and_explain_give_the_hint_before_the_row_set_aside(tmp_path: Path) -> None:
    records = [
        patient("1990-01-01"),
        condition("55464009", SNOMED, onset="2020-01-01"),
        _old_platelets(),
        _local_platelets("2026-11-01"),
    ]
    site = run_records(tmp_path, records)
    rows = [r for r in csv_rows(site / "evidence.csv") if r["criterion"] == "platelets"]
    note = f"{SEARCHED}; 1 other Observation record(s) on file, latest 2026-11-01, {COVERAGE}"
    # the `yes` row first, then the ignored one (README: evidence.csv's row order)
    assert [(r["status"], r["used"], r["ref"], r["note"]) for r in rows] == [
        ("unknown", "yes", "", note),
        ("unknown", "ignored", "Observation/o-old", "outside window (before 2026-08-27)"),
    ]
    [cand] = [r for r in csv_rows(site / "candidates.csv") if r["patient_id"] == "p1"]
    assert cand["platelets"] == "unknown"
    args = ["explain", "p1", "--config", str(tmp_path / "site.toml"), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = next(i for i, ln in enumerate(lines) if "] platelets - " in ln)
    block = [ln for ln in lines[at + 1 : at + 8] if ln.startswith(("  used: ", "  ignored: "))]
    assert block[0] == f"  used: platelets  -- {note}"
    assert block[1].startswith("  ignored: ") and "Observation/o-old" in block[1]
