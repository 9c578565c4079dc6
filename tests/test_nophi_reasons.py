"""`--no-phi` withholds the free text a reason quotes, not the same letters elsewhere in it.

A withheld evidence value was replaced wherever its text occurred in the reason: a value
"urine" blanked the concept label "24-h urine protein" ("24-h (text withheld) protein not
convertible"), a value "mab" the middle of "ianalumab". Only whole-token occurrences outside
the run's fixed wording (concept labels, the trial's own words) are withheld now.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
from click.testing import CliRunner
from criteria_helpers import ago, medication, observation, qty, run, terminology, trial
from test_reliability_support import AS_OF, write_config

from cohort.cli import cli
from cohort.model import Evidence, Result, Status
from cohort.report.nophi import WITHHELD, public_result, reason_wording

URINE_PROTEIN = "2889-4"  # urine_protein_24h, labelled "24-h urine protein"
CREAT = "2160-0"


def _wording() -> frozenset[str]:
    return reason_wording(terminology(), trial().criteria)


def _prior(value: str, reason: str) -> Result:
    ev = Evidence("MedicationStatement/m1", "ianalumab", value, "", "2024")
    return Result("prior_ianalumab", Status.FAIL, reason, (ev,))


def test_a_label_holding_the_free_text_stays_whole() -> None:
    r = run(
        "severe_lupus_nephritis",
        observation(URINE_PROTEIN, ago(10), valueString="urine"),
        observation(CREAT, ago(10), valueQuantity=qty(1.0, "mg/dL", "mg/dL")),
    )
    assert r.reason == "24-h urine protein not convertible"  # (the reason quotes no value)
    assert public_result(r, _wording()).reason == "24-h urine protein not convertible"


def test_the_quoted_value_is_withheld_while_the_label_holding_it_stays() -> None:
    r = run("background_therapy", medication(code="8638", text="systemic", start=ago(100)))
    assert r.reason == "current systemic corticosteroid: systemic"
    assert public_result(r, _wording()).reason == f"current systemic corticosteroid: {WITHHELD}"


def test_free_text_holding_a_label_is_withheld_whole() -> None:
    # the label inside the value does not shield the rest of it
    r = _prior("ianalumab per Dr Lee", "prior ianalumab: ianalumab per Dr Lee")
    assert public_result(r, _wording()).reason == f"prior ianalumab: {WITHHELD}"


def test_the_quoted_value_is_still_withheld() -> None:
    r = _prior("VAY736 per Dr Lee", "prior ianalumab: VAY736 per Dr Lee")
    for wording in (frozenset(), _wording()):
        assert public_result(r, wording).reason == f"prior ianalumab: {WITHHELD}"


def test_a_value_inside_a_longer_word_is_not_withheld_there() -> None:
    # without any wording to go by: "mab" inside "ianalumab" is not the quoted value
    r = _prior("mab", "prior ianalumab: mab")
    assert public_result(r).reason == f"prior ianalumab: {WITHHELD}"
    r = _prior("dose", "prior ianalumab: 2 doses, last dose")
    assert public_result(r).reason == f"prior ianalumab: 2 doses, last {WITHHELD}"


def test_a_value_with_punctuation_at_its_edge_is_withheld_next_to_letters() -> None:
    # only a word character at the text's own edge has to stand apart from the letters beside it
    r = _prior("(Dr Lee)", "prior ianalumab(Dr Lee)x")
    assert public_result(r).reason == f"prior ianalumab{WITHHELD}x"
    r = _prior("Dr Lee.", "prior ianalumab: Dr Lee.Smith")
    assert public_result(r).reason == f"prior ianalumab: {WITHHELD}Smith"


def test_no_phi_run_keeps_the_label_in_candidates_csv(tmp_path: Path) -> None:
    sle = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}
    records = [
        {"resourceType": "Patient", "id": "u-1", "birthDate": "1980-01-01", "gender": "female"},
        {"resourceType": "Condition", "id": "u-1-sle", "code": sle,
         "subject": {"reference": "Patient/u-1"}, "onsetDateTime": "2015-01-01"},
        {**observation(URINE_PROTEIN, ago(10), valueString="urine"), "id": "up-1",
         "subject": {"reference": "Patient/u-1"}},
        {**observation(CREAT, ago(10), valueQuantity=qty(1.0, "mg/dL", "mg/dL")), "id": "cr-1",
         "subject": {"reference": "Patient/u-1"}},
    ]  # fmt: skip
    site = tmp_path / "site"
    site.mkdir()
    (site / "all.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    cfg = write_config(tmp_path, {"s": str(site)})
    out = tmp_path / "out"
    args = ["run", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out), "--no-phi"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    text = (out / "s" / "candidates.csv").read_text(encoding="utf-8-sig")
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert "severe_lupus_nephritis: 24-h urine protein not convertible" in row["reasons"]
    assert WITHHELD not in row["reasons"]
