"""Evidence of a converted result names the result as recorded (README: evidence.csv).

evidence.csv's `value, unit` are in the concept's canonical unit. A platelet count recorded as
`248 Thou/cumm` (a unit a site aliased wrongly) showed there and in `cohort explain` only as
`0.248 10*3/uL`: a coordinator checking the chart could not see that a conversion made the
fail. The note now names the value and unit as recorded whenever the row shows them converted;
an ignored result is shown in the canonical unit too (it was shown as recorded), or as recorded
with a note that it cannot be converted.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from criteria_helpers import ago, context, observation, qty, run, trial
from test_reliability_support import AS_OF, REPO, write_config

from cohort.cli import cli
from cohort.evaluate import evaluate
from cohort.model import Candidate, Patient, Result
from cohort.report.csv import candidate_evidence_rows
from cohort.report.nophi import WITHHELD

PLT = "777-3"  # platelets
CREAT = "2160-0"  # creatinine


def rows(r: Result, phi: bool = True) -> list[tuple[str, ...]]:
    """(used, value, unit, note) of each evidence.csv row of one result, as written."""
    cand = Candidate(Patient("p1"), [r])
    return [(x[3], x[6], x[7], x[9]) for x in candidate_evidence_rows(cand, {}, phi=phi)]


@pytest.mark.parametrize(
    ("value", "shown", "recorded"),
    [
        (qty(248000, "/uL", "/uL"), "248", "248000 /uL"),
        (qty(248, "10*9/L", "10*9/L"), "248", "248 10*9/L"),
        (qty(248, "K/uL"), "248", "248 K/uL"),  # an alias: the number kept, the unit not
        (qty(20, "10*9/L", "10*9/L", comparator="<"), "<20", "<20 10*9/L"),
    ],
)
def test_a_converted_result_s_note_names_it_as_recorded(
    value: dict[str, Any], shown: str, recorded: str
) -> None:
    r = run("platelets", observation(PLT, ago(10), valueQuantity=value))
    assert rows(r) == [("yes", shown, "10*3/uL", f"most recent; recorded {recorded}")]


def test_a_result_in_the_canonical_unit_has_no_recorded_note() -> None:
    r = run("platelets", observation(PLT, ago(10), valueQuantity=qty(248, "10*3/uL", "10*3/uL")))
    assert rows(r) == [("yes", "248", "10*3/uL", "most recent")]


def test_a_result_that_cannot_be_converted_is_shown_as_recorded() -> None:
    r = run("platelets", observation(PLT, ago(10), valueQuantity=qty(150, "furlongs")))
    assert rows(r) == [("yes", "150", "furlongs", "unit or value cannot be converted")]


def test_a_titer_read_from_its_text_has_no_recorded_note() -> None:
    r = run("ana_titer", observation("5048-4", ago(10), valueString="1:160"))
    assert rows(r) == [("yes", "1:160", "{titer}", "most recent titer")]


def test_labs_exceed_names_each_converted_result_as_recorded() -> None:
    umol = observation(CREAT, ago(10), valueQuantity=qty(221, "umol/L", "umol/L"))
    r = run("severe_lupus_nephritis", umol)
    assert ("yes", "2.49943", "mg/dL", "above the limit; recorded 221 umol/L") in rows(r)


def test_ignored_results_are_shown_in_the_canonical_unit_with_the_recorded_value() -> None:
    new = observation(PLT, ago(10), valueQuantity=qty(150, "10*3/uL", "10*3/uL"))
    older = observation(PLT, ago(20), valueQuantity=qty(180000, "/uL", "/uL"))
    old = observation(PLT, ago(200), valueQuantity=qty(239, "x10E3/uL"))
    odd = observation(PLT, ago(300), valueQuantity=qty(150, "furlongs"))
    same = observation(PLT, ago(400), valueQuantity=qty(99, "10*3/uL", "10*3/uL"))
    window = f"outside window (before {ago(90)})"
    assert rows(run("platelets", new, older, old, odd, same)) == [
        ("yes", "150", "10*3/uL", "most recent"),
        ("ignored", "239", "10*3/uL", f"{window}; recorded 239 x10E3/uL"),
        ("ignored", "150", "furlongs", f"{window}; unit or value cannot be converted"),
        ("ignored", "99", "10*3/uL", window),
        ("ignored", "180", "10*3/uL", "superseded by a newer result; recorded 180000 /uL"),
    ]


def test_no_phi_withholds_a_recorded_unit_that_is_free_text() -> None:
    """A UCUM annotation may hold any text (`10*9/L{per Dr X}` converts as 10*9/L): with
    `--no-phi` the note withholds the recorded unit as the unit column would."""
    unit = "10*9/L{checked by Dr Quixotica}"
    r = run("platelets", observation(PLT, ago(10), valueQuantity=qty(248, unit, unit)))
    assert rows(r) == [("yes", "248", "10*3/uL", f"most recent; recorded 248 {unit}")]
    assert rows(r, phi=False) == [
        ("yes", "248", "10*3/uL", f"most recent; recorded 248 {WITHHELD}")
    ]
    plain = run("platelets", observation(PLT, ago(10), valueQuantity=qty(248000, "/uL", "/uL")))
    assert rows(plain, phi=False) == [("yes", "248", "10*3/uL", "most recent; recorded 248000 /uL")]


def test_same_day_results_keep_the_recorded_value_beside_the_tie_note() -> None:
    """A same-day tie rewrites the note of each result it tried first (criteria.ties): the
    recorded value stays named after it."""
    low = observation(PLT, ago(5), valueQuantity=qty(20000, "/uL", "/uL"), rid="a")
    high = observation(PLT, ago(5), valueQuantity=qty(150, "10*3/uL", "10*3/uL"), rid="b")
    r = next(r for r in evaluate(trial(), context(low, high)) if r.criterion == "platelets")
    assert str(r.status) == "unknown"
    assert rows(r) == [
        (
            "yes",
            "20",
            "10*3/uL",
            "fail if the most recent (same day, no order); recorded 20000 /uL",
        ),
        ("yes", "150", "10*3/uL", "pass if the most recent (same day, no order)"),
    ]


# --- end to end: a site's wrong alias, in evidence.csv and `cohort explain` ----------------------
def _site(folder: Path) -> Path:
    sle = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}
    records = [
        {"resourceType": "Patient", "id": "thou-1", "birthDate": "1980-01-01", "gender": "female"},
        {"resourceType": "Condition", "id": "thou-1-sle", "code": sle,
         "subject": {"reference": "Patient/thou-1"}, "onsetDateTime": "2015-01-01"},
        {**observation(PLT, ago(10), valueQuantity=qty(248, "Thou/cumm")), "id": "plt-new",
         "subject": {"reference": "Patient/thou-1"}},
        {**observation(PLT, ago(200), valueQuantity=qty(239, "x10E3/uL")), "id": "plt-old",
         "subject": {"reference": "Patient/thou-1"}},
    ]  # fmt: skip
    site = folder / "site"
    site.mkdir()
    (site / "all.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    return site


def test_a_wrong_site_alias_shows_the_recorded_value_in_evidence_csv_and_explain(
    tmp_path: Path,
) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(REPO / "mappings", mappings)
    with (mappings / "unit_aliases.csv").open("a", encoding="utf-8") as f:
        f.write("Thou/cumm,/uL,a site's alias (wrong: thousands per mm3)\n")
    cfg = write_config(tmp_path, {"s": str(_site(tmp_path))}, mappings=mappings)
    window = f"outside window (before {ago(90)})"
    want = {
        "Observation/plt-new": ("yes", "0.248", "10*3/uL", "most recent; recorded 248 Thou/cumm"),
        "Observation/plt-old": ("ignored", "239", "10*3/uL", f"{window}; recorded 239 x10E3/uL"),
    }
    for flag in ([], ["--no-phi"]):
        out = tmp_path / f"out{len(flag)}"
        args = ["run", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out), *flag]
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
        text = (out / "s" / "evidence.csv").read_text(encoding="utf-8-sig")
        got = {
            r["ref"]: (r["used"], r["value"], r["unit"], r["note"])
            for r in csv.DictReader(io.StringIO(text))
            if r["criterion"] == "platelets"
        }
        assert got == want
        assert list(csv.reader(io.StringIO(text)))[0] == [
            "patient_id", "criterion", "status", "used", "ref", "concept", "value", "unit",
            "date", "note",
        ]  # fmt: skip
    args = ["explain", "thou-1", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "0.248 10*3/uL" in res.output and "most recent; recorded 248 Thou/cumm" in res.output
    assert f"{window}; recorded 239 x10E3/uL" in res.output


def test_a_detected_check_shows_its_result_as_recorded_without_a_conversion_note() -> None:
    # HBV DNA in copies/mL (no conversion to the canonical unit exists) is read as detected by
    # the check's `numeric = "detected"`: the row that made `hbv` fail said "unit or value
    # cannot be converted", which reads as "not read"; only a cut-off (positive_at) reads the
    # number in the canonical unit
    r = run("hbv", observation("29615-2", ago(10), valueQuantity=qty(500, "copies/mL")))
    assert r.status.value == "fail"
    assert rows(r) == [("yes", "500", "copies/mL", "result positive")]
