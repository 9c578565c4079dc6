"""A second trial of another disease from the docs alone: DKD-DEMO, type 2 diabetes with chronic
kidney disease (tests/data/dkd_trial): a criteria file and mapping rows, no code of its own.

The mapping rows were taken from records of the public data (../shared/data/public-fhir), each
`verified=N` with the file it was seen in, so the configuration sets `use_unverified`. The cells
of the hand-made patients are derived by hand below; those of the public data are checked against
an oracle written apart from cohort (tests/dkd_oracle.py)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dkd_oracle
import pytest
from click.testing import CliRunner
from trial_helpers import (
    ROOT,
    SLE_WORDS,
    Expected,
    candidate_rows,
    check_mappings,
    check_rows,
    public_data,
    run_cohort,
    trial_config,
)

from cohort.cli import cli

DKD = ROOT / "tests" / "data" / "dkd_trial"
AS_OF = "2026-11-25"
CRITERIA = dkd_oracle.CRITERIA
MANUAL = "pregnancy test (women of childbearing potential); investigator judgement"

# As of 2026-11-25 every patient (tests/data/dkd_trial/data) is a man born 1960-05-01 with type 2
# diabetes (SNOMED 44054006, 2015) and CKD stage 3 (433144002, 2024-01-10); on 2026-11-02 eGFR 45
# mL/min/{1.73_m2}, HbA1c 7.9 % and potassium 4.5 mmol/L, on 2026-10-01 UACR 120 mg/g; on
# lisinopril (RxNorm 314076) ordered 2025-06-01, active. Except (tier, eligible_from, the cells
# that do not pass):
EXPECTED: Expected = {
    "dkd-ok": ("likely", "", {}),
    "dkd-egfr-edge": ("likely", "", {}),  # eGFR 75: not above 75
    "dkd-k-edge": ("likely", "", {}),  # potassium 4.8: not above 4.8
    # no lisinopril: "losartan 50 mg tablet", text only, in an active MedicationStatement
    "dkd-arb-text": ("likely", "", {}),
    # a Normal pregnancy of 2020-01-15 still marked active: over 300 days old, unknown, and the
    # criterion is manual when unknown: to confirm, the tier stays likely
    "dkd-pregnancy-stale": ("likely", "", {"pregnancy": "unknown"}),
    # eGFR, HbA1c and potassium on 2026-06-01: before 2026-08-27, outside the 90 days
    "dkd-old-labs": (
        "possible",
        "",
        {"egfr_min": "unknown", "egfr_max": "unknown", "hba1c": "unknown", "potassium": "unknown"},
    ),
    # a second eGFR at the same instant, 80: >= 25 either way; above 75 only if it is the latest
    "dkd-egfr-tie": ("possible", "", {"egfr_max": "unknown"}),
    "dkd-egfr-high": ("excluded", "", {"egfr_max": "fail"}),  # 82 > 75
    "dkd-egfr-low": ("excluded", "", {"egfr_min": "fail"}),  # 20 < 25
    "dkd-uacr-low": ("excluded", "", {"uacr": "fail"}),  # 12 < 30
    "dkd-a1c-high": ("excluded", "", {"hba1c": "fail"}),  # 12.5 > 12
    "dkd-k-high": ("excluded", "", {"potassium": "fail"}),  # 5.2 > 4.8
    "dkd-no-ckd": ("excluded", "", {"ckd": "fail"}),  # no CKD condition
    "dkd-young": ("excluded", "", {"adult": "fail"}),  # born 2010-02-01: 16
    # lisinopril only in an order stopped 2025-01-01 (one day)
    "dkd-stopped": ("excluded", "", {"raas_blocker": "fail"}),
    # a renal dialysis (265764009) on 2019-05-01: ever, so no date it would pass from
    "dkd-dialysis": ("excluded", "", {"dialysis_transplant_procedure": "fail"}),
    # History of renal transplant (161665007), 2010
    "dkd-transplant": ("excluded", "", {"dialysis_transplant_condition": "fail"}),
    # a woman born 1990 with a Normal pregnancy (72892002) of 2026-09-01, active: 85 days old
    "dkd-pregnant": ("excluded", "", {"pregnancy": "fail"}),
    "dkd-deceased": ("excluded", "", {"deceased": "fail"}),  # died 2026-11-10
}
# not screened: ckd-only (CKD without type 2 diabetes), t2dm-refuted (refuted)


def _config(tmp_path: Path, source: Path, site: str = "t1") -> Path:
    return trial_config(tmp_path, DKD, "dkd-demo", source, site)


@pytest.mark.usefixtures("in_tmp")
def test_the_dkd_trial_on_hand_made_patients(tmp_path: Path) -> None:
    cfg = _config(tmp_path, DKD / "data")
    check_mappings(cfg)
    out = tmp_path / "out"
    run_cohort(cfg, out, AS_OF)
    got = candidate_rows(out / "t1" / "candidates.csv")
    check_rows(got, EXPECTED, CRITERIA)
    assert got["dkd-egfr-high"]["reasons"] == "egfr_max: eGFR 82 mL/min/{1.73_m2} > 75 on 2026-11-02"
    assert got["dkd-a1c-high"]["reasons"] == "hba1c: 12.5 % > 12 on 2026-11-02"
    assert got["dkd-k-high"]["reasons"] == "potassium: 5.2 mmol/L > 4.8 on 2026-11-02"
    assert got["dkd-uacr-low"]["reasons"] == "uacr: 12 mg/g < 30 on 2026-10-01"
    assert got["dkd-stopped"]["reasons"] == (
        "raas_blocker: no current qualifying therapy (last: lisinopril (ACE inhibitor), "
        "ended 2025-01-01)"
    )
    assert got["dkd-dialysis"]["reasons"] == (
        "dialysis_transplant_procedure: prior dialysis: Renal dialysis (procedure) on 2019-05-01"
    )
    assert got["dkd-pregnancy-stale"]["to_confirm"] == f"Not pregnant; {MANUAL}"
    assert got["dkd-old-labs"]["missing"] == (
        "eGFR within 90 days; HbA1c within 90 days; potassium within 90 days"
    )
    # the patients the oracle, written apart, screens and judges alike
    candidates = str(out / "t1" / "candidates.csv")
    lines = dkd_oracle.compare(str(DKD / "data"), date(2026, 11, 25), candidates)
    assert lines == ["19 screened by the oracle, 19 rows, 0 difference(s)"]
    # a second night: the changes legend and every output speak of this trial only
    run_cohort(cfg, out, "2026-11-26")
    html = (out / "t1" / "summary.html").read_text(encoding="utf-8")
    assert "Trial <b>DKD-DEMO (type 2 diabetes with chronic kidney disease)</b> (dkd-demo)" in html
    assert "No longer screened" in html
    for path in (out / "run.json", *(out / "t1").iterdir()):
        assert not SLE_WORDS.search(path.read_text(encoding="utf-8-sig")), path
    coverage = CliRunner().invoke(
        cli, ["mappings", "coverage", "--config", str(cfg), "--out", str(out)]
    )
    assert coverage.exit_code == 0, coverage.output
    assert not SLE_WORDS.search(coverage.output), coverage.output
    explained = CliRunner().invoke(
        cli, ["explain", "dkd-dialysis", "--config", str(cfg), "--out", str(out)]
    )
    assert explained.exit_code == 0, explained.output
    assert "rule: any_record: procedures=[dialysis, kidney_transplant]" in explained.output
    assert not SLE_WORDS.search(explained.output), explained.output



@pytest.mark.public_data
@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize("as_of", ["2021-04-01", "2019-12-31"])
def test_the_dkd_trial_on_the_public_synthea_bundles(tmp_path: Path, as_of: str) -> None:
    """The 617 Synthea bundles (data to 2021-03-31), read from their archive: every cell is the
    oracle's, and nothing of the first trial shows."""
    archive = public_data() / "generated-sample-data-r4" / "R4_SYNTHEA_617_bundles.tar.xz"
    cfg = _config(tmp_path, archive, "synthea")
    out = tmp_path / "out"
    run_cohort(cfg, out, as_of)
    candidates = out / "synthea" / "candidates.csv"
    lines = dkd_oracle.compare(str(archive), date.fromisoformat(as_of), str(candidates))
    assert lines[-1].endswith(" 0 difference(s)"), "\n".join(lines)
    assert not lines[-1].startswith("0 screened"), lines[-1]
    for path in (out / "run.json", *(out / "synthea").iterdir()):
        assert not SLE_WORDS.search(path.read_text(encoding="utf-8-sig")), path


@pytest.mark.public_data
@pytest.mark.usefixtures("in_tmp")
def test_the_dkd_trial_on_the_ten_patient_bulk_export(tmp_path: Path) -> None:
    """The one patient with type 2 diabetes had a kidney transplant in 1990 (History of renal
    transplant, onset 1990-10-28; the transplantation regime from 1990-11) and died on
    1994-11-11: excluded by those three, whatever the labs (this export has no Observations)."""
    source = public_data() / "sample-bulk-fhir-datasets" / "10-patients"
    cfg = _config(tmp_path, source, "bulk10")
    out = tmp_path / "out"
    run_cohort(cfg, out, "2023-03-31")
    got = candidate_rows(out / "bulk10" / "candidates.csv")
    assert len(got) == 1
    (row,) = got.values()
    fails = {c for c in CRITERIA if row[c] == "fail"}
    assert fails == {"dialysis_transplant_condition", "dialysis_transplant_procedure", "deceased"}
    assert (row["tier"], row["eligible_from"]) == ("excluded", "")
    candidates = str(out / "bulk10" / "candidates.csv")
    lines = dkd_oracle.compare(str(source), date(2023, 3, 31), candidates)
    assert lines == ["1 screened by the oracle, 1 rows, 0 difference(s)"]


@pytest.mark.public_data
@pytest.mark.usefixtures("in_tmp")
def test_the_dkd_trial_on_the_thousand_patient_bulk_export(tmp_path: Path) -> None:
    """The 1000-patients export holds Patient resources only (MANIFEST.md): no Condition, so no
    one is screened, and run.json says why in the trial's own words."""
    source = public_data() / "sample-bulk-fhir-datasets" / "1000-patients"
    cfg = _config(tmp_path, source, "bulk1000")
    out = tmp_path / "out"
    run_cohort(cfg, out, AS_OF)
    assert candidate_rows(out / "bulk1000" / "candidates.csv") == {}
    warnings = json.loads((out / "run.json").read_text(encoding="utf-8"))["warnings"]
    assert any(
        "none screened: no patient has a Condition mapped to the screening concept 't2dm'" in w
        for w in warnings
    ), warnings
