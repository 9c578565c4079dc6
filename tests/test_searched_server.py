"""A FHIR server is asked only for the Observations and Procedures of mapped codes: the row of
a criterion that finds nothing says so there, where a file read counts the others as well
(public-data differential test: a chart of 65 results read "no Observation records on file")."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import responses
from click.testing import CliRunner
from criteria_helpers import (
    AS_OF,
    SNOMED,
    ago,
    condition,
    facts,
    observation,
    rules,
    terminology,
    trial,
)
from fhir_fakes import BASE, FakeFhir
from test_reliability_support import write_config

from cohort.cli import cli
from cohort.config import load_config
from cohort.evaluate import evaluate, make_context
from cohort.runner import run

PULLED = " (from a FHIR server only those of mapped codes are pulled)"
SLEDAI = f"searched: Observation records of sledai in the 90 days before {AS_OF}: none; "
HEART_RATE = {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]}


def _note(cid: str, *resources: dict[str, Any], site: dict[str, Any] | None = None) -> str:
    ctx = make_context(facts(*resources), terminology(), AS_OF, rules(), site)
    [r] = [r for r in evaluate(trial(), ctx) if r.criterion == cid]
    assert r.status.value != "pass"
    [row] = r.evidence
    assert row.ref == ""
    return row.note


def test_a_server_site_says_only_results_of_mapped_codes_were_pulled() -> None:
    server = {"pulled": True}
    assert _note("sledai", site=server) == SLEDAI + "no Observation records on file" + PULLED
    # a stored platelet count (mapped to platelets) is counted as before, with the same words
    platelets = observation("777-3", ago(10), valueQuantity={"value": 250, "unit": "10*3/uL"})
    assert _note("sledai", platelets, site=server) == (
        SLEDAI + f"1 other Observation record(s) on file, latest {ago(10)}, mapped to other"
        " concepts" + PULLED
    )
    # a file site: as before
    assert _note("sledai") == SLEDAI + "no Observation records on file"


def test_a_server_site_counts_its_conditions_as_a_file_site_does() -> None:
    # (a server's Conditions are all pulled, mapped or not: nothing to add)
    other = condition("999999999", SNOMED, onset=ago(100))
    for site in ({"pulled": True}, None):
        note = _note("sle_diagnosis", other, site=site)
        assert note.endswith(
            f"; 1 other Condition record(s) on file, latest {ago(100)}, not mapped to any"
            " concept (see cohort mappings coverage)"
        ), note


def _sledai_note(out: Path, site: str) -> str:
    with (out / site / "evidence.csv").open(encoding="utf-8-sig", newline="") as f:
        [row] = [r for r in csv.DictReader(f) if r["criterion"] == "sledai"]
    return row["note"]


def test_the_same_chart_from_a_server_and_from_files(tmp_path: Path) -> None:
    """A heart rate (no concept maps it) is read from the file and summarised, and never asked
    of the server: each row says what it can."""
    pat = {"resourceType": "Patient", "id": "p1", "birthDate": "1990-01-01"}
    sle = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
           "code": {"coding": [{"system": SNOMED, "code": "55464009"}]},
           "onsetDateTime": "2015-01-01"}  # fmt: skip
    hr = {"resourceType": "Observation", "id": "o1", "status": "final", "code": HEART_RATE,
          "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-07-01",
          "valueQuantity": {"value": 71, "unit": "/min", "code": "/min"}}  # fmt: skip
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "all.ndjson").write_text("\n".join(json.dumps(r) for r in (pat, sle, hr)))
    cfg = write_config(tmp_path, {"f": str(folder), "s": BASE}, server={"s": {"max_retries": 1}},
                       store=tmp_path / "st.db")  # fmt: skip
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeFhir(rsps)
        for r in (pat, sle, hr):
            fake.add(r)
        report = run(load_config(cfg), date(2026, 11, 25), tmp_path / "out")
    assert report["status"] == "success"
    assert _sledai_note(tmp_path / "out", "f") == SLEDAI + (
        "1 other Observation record(s) on file, latest 2026-07-01, not mapped to any concept"
        " (see cohort mappings coverage)"
    )
    assert _sledai_note(tmp_path / "out", "s") == SLEDAI + "no Observation records on file" + PULLED
    # `cohort explain` (which asks no server) says the same of the server site's patient
    args = ["explain", "p1", "--config", str(cfg), "--out", str(tmp_path / "out"), "--site", "s"]
    got = CliRunner().invoke(cli, args)
    assert got.exit_code == 0, got.output
    assert SLEDAI + "no Observation records on file" + PULLED in got.output
