"""Another trial of another shape from the docs alone (the fifth, after DKD-DEMO, COPD-DEMO and
HF-DEMO): OBESITY-DEMO, a GLP-1-class weight management trial (tests/data/obesity_trial), mostly
vital signs: a criteria file and mapping rows, no code of its own.

Its rules needed one generic kind, tested apart: `lab_change` ("body weight stable: no change
> 5 kg between the two most recent weights within 90 days", tests/test_lab_change.py); and
`mappings check` no longer warns of a name row in conditions.csv and procedures.csv as of a
backup copy (tests/test_mappings_mistakes.py). The mapping rows were taken from records of the
public data (../shared/data/public-fhir), each `verified=N` with the file it was seen in; the
drugs and conditions no public record carries (GLP-1 agonists, bariatric surgery, pancreatitis,
type 1 diabetes) are names, never invented codes. The cells of the hand-made patients are
derived by hand below; those of the public data are checked against an oracle written apart
from cohort (tests/obesity_oracle.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import obesity_oracle
import pytest
from trial_helpers import (
    ROOT,
    SLE_WORDS,
    candidate_rows,
    check_mappings,
    check_rows,
    public_data,
    run_cohort,
    trial_config,
)

OB = ROOT / "tests" / "data" / "obesity_trial"
AS_OF = "2026-11-25"
CRITERIA = obesity_oracle.CRITERIA
MANUAL = (
    "no personal or family history of medullary thyroid cancer or MEN2 (family history is not "
    "read); investigator judgement"
)

# As of 2026-11-25 every patient (tests/data/obesity_trial/data) is a woman born 1975-06-01 (51)
# with obesity (SNOMED 162864005, onset 2020-03-01, active, confirmed); on 2026-10-15 a BMI of
# 33 kg/m2, a body weight of 95 kg (93 kg on 2026-09-01: +2 kg), HbA1c 6.1 % and eGFR
# 85 mL/min/{1.73_m2}. 6 months before as-of is 2026-05-25, 90 days 2026-08-27. Except (tier,
# eligible_from, the cells that do not pass):
EXPECTED: dict[str, tuple[str, str, dict[str, str]]] = {
    "ob-ok": ("likely", "", {}),
    # BMI 28 with an active hypertension (38341003): the limit is 27
    "ob-bmi-alt": ("likely", "", {}),
    # BMI 27, at the lower limit, with "Diabetes" (44054006, Synthea's type 2)
    "ob-t2dm": ("likely", "", {}),
    "ob-weight-edge": ("likely", "", {}),  # 98 - 93 = 5 kg: not more than 5
    # 209 [lb_av] = 94.80 kg: +1.8 kg from 93
    "ob-weight-lb": ("likely", "", {}),
    # liraglutide taken 2025-01-01 to 2026-03-01: ended before the 90 days
    "ob-glp1-old": ("likely", "", {}),
    "ob-hba1c-edge": ("likely", "", {}),  # 9.9 %: below 10
    # BMI of 2026-04-01 only: before 2026-05-25
    "ob-bmi-old": ("possible", "", {"bmi": "unknown"}),
    # the other weight of 2026-07-01 is outside the 90 days: one is no change
    "ob-weight-one": ("possible", "", {"weight_stable": "unknown"}),
    # BMI 28 with hypertension recorded as provisional: the limit may be 27 or 30
    "ob-bmi-provisional": ("possible", "", {"bmi": "unknown"}),
    "ob-obesity-provisional": ("possible", "", {"obesity_diagnosis": "unknown"}),
    "ob-bmi-low": ("excluded", "", {"bmi": "fail"}),  # 28 < 30, no comorbidity
    # 101 kg on 2026-10-15 after 95 on 2026-09-01: +6 (an older 101 of 2026-08-28 not read)
    "ob-weight-gain": ("excluded", "", {"weight_stable": "fail"}),
    # "Laparoscopic sleeve gastrectomy" (text only) of 2019-05-01
    "ob-bariatric-proc": ("excluded", "", {"bariatric_procedure": "fail"}),
    # "History of bariatric surgery" (text only), a Condition
    "ob-bariatric-hx": ("excluded", "", {"bariatric_history": "fail"}),
    # semaglutide taken to 2026-10-01: in the 90 days until 2026-12-29, out from 2026-12-30
    "ob-glp1-recent": ("excluded", "2026-12-30", {"glp1_washout": "fail"}),
    # "Acute pancreatitis" of 2015, resolved: history counts
    "ob-pancreatitis": ("excluded", "", {"pancreatitis": "fail"}),
    "ob-t1dm": ("excluded", "", {"t1dm": "fail"}),  # "Type 1 diabetes mellitus"
    "ob-hba1c-high": ("excluded", "", {"hba1c": "fail"}),  # 10.0 %: at the limit fails
    "ob-egfr-low": ("excluded", "", {"egfr": "fail"}),  # 25 < 30
    # Normal pregnancy (72892002), active, onset 2026-09-01
    "ob-pregnant": ("excluded", "", {"pregnancy": "fail"}),
    "ob-young": ("excluded", "", {"age": "fail"}),  # born 2010-01-01: 16
    "ob-old": ("excluded", "", {"age": "fail"}),  # born 1950-01-01: 76
    "ob-deceased": ("excluded", "", {"deceased": "fail"}),  # died 2026-11-01
    # obesity with onset 2026-12-01: screened, no diagnosis yet on the as-of date
    "ob-later": ("excluded", "", {"obesity_diagnosis": "fail"}),
}
# not screened: ob-refuted (its obesity refuted)


def _config(tmp_path: Path, source: Path, site: str = "t1") -> Path:
    return trial_config(tmp_path, OB, "obesity-demo", source, site)


@pytest.mark.usefixtures("in_tmp")
def test_the_obesity_trial_on_hand_made_patients(tmp_path: Path) -> None:
    cfg = _config(tmp_path, OB / "data")
    check_mappings(cfg)
    out = tmp_path / "out"
    run_cohort(cfg, out, AS_OF)
    got = candidate_rows(out / "t1" / "candidates.csv")
    check_rows(got, EXPECTED, CRITERIA)
    assert {pid: got[pid]["to_confirm"] for pid in EXPECTED} == dict.fromkeys(EXPECTED, MANUAL)
    assert got["ob-weight-gain"]["reasons"] == (
        "weight_stable: body weight changed by +6 kg (2026-09-01 to 2026-10-15), more than 5"
    )
    assert got["ob-weight-one"]["reasons"] == (
        "weight_stable: only 1 body weight result since 2026-08-27: two are needed to tell a change"
    )
    assert got["ob-weight-one"]["missing"] == "two body weights within 90 days"
    assert got["ob-bmi-low"]["reasons"] == "bmi: 28 kg/m2 < 30 on 2026-10-15"
    assert got["ob-bmi-provisional"]["reasons"] == (
        "bmi: 28 kg/m2: limit 27 or 30, as hypertension or (pre)diabetes is recorded as "
        "provisional: confirm it"
    )
    assert got["ob-bariatric-proc"]["reasons"] == (
        "bariatric_procedure: prior bariatric surgery: Laparoscopic sleeve gastrectomy on 2019-05-01"
    )
    assert got["ob-glp1-recent"]["reasons"] == (
        "glp1_washout: semaglutide (GLP-1 receptor agonist) last 2026-10-01, within 90 days "
        "(until 2026-12-30)"
    )
    assert got["ob-hba1c-high"]["reasons"] == "hba1c: 10 % >= 10 on 2026-10-15"
    # the patients the oracle, written apart, screens and judges alike
    candidates = str(out / "t1" / "candidates.csv")
    lines = obesity_oracle.compare(str(OB / "data"), date(2026, 11, 25), candidates)
    assert lines == ["25 screened by the oracle, 25 rows, 0 difference(s)"]
    for path in (out / "run.json", *(out / "t1").iterdir()):
        assert not SLE_WORDS.search(path.read_text(encoding="utf-8-sig")), path



# (as-of, a patient and the cells the date makes of them); Synthea records a weight about once
# a year, so the weight criterion is mostly unknown: these two patients have two within 90 days
PUBLIC_DATES = [
    # weights of 2019-12-10 and 2020-02-11 (94.52 kg both): stable; every criterion passes
    ("2020-03-01", "948e608d-e408-4788-8cf2-8157c49c2940", {"weight_stable": "pass", "bmi": "pass"}),
    # weights of 2021-02-18 and 2021-03-11 (80.09 kg both)
    ("2021-04-01", "ab4e7a7d-8b0d-41e1-9ce9-3877d7615aed", {"weight_stable": "pass"}),
]


@pytest.mark.public_data
@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize(("as_of", "pid", "cells"), PUBLIC_DATES)
def test_the_obesity_trial_on_the_public_synthea_bundles(
    tmp_path: Path, as_of: str, pid: str, cells: dict[str, str]
) -> None:
    """The 617 Synthea bundles, read from their archive: 206 patients with an obesity
    condition; every cell is the oracle's, and nothing of the first trial shows."""
    archive = public_data() / "generated-sample-data-r4" / "R4_SYNTHEA_617_bundles.tar.xz"
    cfg = _config(tmp_path, archive, "synthea")
    out = tmp_path / "out"
    run_cohort(cfg, out, as_of)
    candidates = out / "synthea" / "candidates.csv"
    lines = obesity_oracle.compare(str(archive), date.fromisoformat(as_of), str(candidates))
    assert lines == ["206 screened by the oracle, 206 rows, 0 difference(s)"], "\n".join(lines)
    row = candidate_rows(candidates)[pid]
    assert {c: row[c] for c in cells} == cells, row["reasons"]
    for path in (out / "run.json", *(out / "synthea").iterdir()):
        assert not SLE_WORDS.search(path.read_text(encoding="utf-8-sig")), path


@pytest.mark.public_data
@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize(
    ("folder", "screened"),
    [("pathling/ndjson", 3), ("sample-bulk-fhir-datasets/10-patients", 5)],
)
def test_the_obesity_trial_on_public_ndjson(tmp_path: Path, folder: str, screened: int) -> None:
    """Two Bulk-style NDJSON exports with a few obese patients: the oracle agrees."""
    source = public_data() / folder
    cfg = _config(tmp_path, source, "bulk")
    out = tmp_path / "out"
    run_cohort(cfg, out, "2023-01-01")
    candidates = out / "bulk" / "candidates.csv"
    lines = obesity_oracle.compare(str(source), date(2023, 1, 1), str(candidates))
    assert lines == [f"{screened} screened by the oracle, {screened} rows, 0 difference(s)"]
