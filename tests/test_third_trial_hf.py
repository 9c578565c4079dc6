"""Another trial of another shape from the docs alone (the fourth, after DKD-DEMO and COPD-DEMO):
HF-DEMO, heart failure with reduced ejection fraction (tests/data/hf_trial): a criteria file and
mapping rows, no code of its own.

Its rules needed two generic additions, each tested apart: a condition check's window
("no acute MI within 90 days", tests/test_condition_check_window.py) and the kind
`recent_record` ("an influenza vaccination within 12 months", tests/test_recent_record.py).
The mapping rows were taken from records of the public data (../shared/data/public-fhir), each
`verified=N` with the file it was seen in, so the configuration sets `use_unverified`. The cells
of the hand-made patients are derived by hand below; those of the public data are checked
against an oracle written apart from cohort (tests/hf_oracle.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import hf_oracle
import pytest
from click.testing import CliRunner
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

from cohort.cli import cli

HF = ROOT / "tests" / "data" / "hf_trial"
AS_OF = "2026-11-25"
CRITERIA = hf_oracle.CRITERIA
MANUAL = (
    "BNP >= 150 pg/mL within 12 months where no NT-proBNP; no heart transplant or LVAD (no code "
    "in the public data to map); no current IV inotrope; investigator judgement"
)

# As of 2026-11-25 every patient (tests/data/hf_trial/data) is a man born 1955-03-01 (71) with
# chronic congestive heart failure (SNOMED 88805009, onset 2022-04-10, confirmed); on 2026-10-15
# NT-proBNP 1200 pg/mL, LVEF 32 %, eGFR 48 mL/min/{1.73_m2}, potassium 4.4 mmol/L and a blood
# pressure panel (55284-4) whose systolic component (8480-6) reads 118 mm[Hg]; on Lasix 40mg
# (RxNorm 315971) ordered 2025-01-10, active; an influenza vaccine (CVX 140) on 2026-10-01.
# 12 months before as-of is 2025-11-25, 90 days 2026-08-27. Except (tier, eligible_from, the
# cells that do not pass):
EXPECTED: dict[str, tuple[str, str, dict[str, str]]] = {
    "hf-ok": ("likely", "", {}),
    "hf-lvef-edge": ("likely", "", {}),  # LVEF 40: not above 40
    "hf-k-edge": ("likely", "", {}),  # potassium 5.0: not above 5.0
    # no Lasix: "furosemide 20 mg tablet", text only, in an active MedicationStatement
    "hf-diuretic-text": ("likely", "", {}),
    # a myocardial infarction (22298006) of 2015-06-01, still marked active: not within 90 days
    "hf-mi-old": ("likely", "", {}),
    "hf-no-ntprobnp": ("possible", "", {"nt_probnp": "unknown"}),
    # the vaccine dated "2025-11": some of its days are in the 12 months, some before them
    "hf-flu-partial": ("possible", "", {"flu_vaccine": "unknown"}),
    # eGFR, potassium and blood pressure of 2026-06-01: before 2026-08-27, outside the 90 days
    "hf-bp-old": ("possible", "", {"egfr": "unknown", "potassium": "unknown", "sbp": "unknown"}),
    # heart failure recorded as provisional: not established
    "hf-provisional": ("possible", "", {"hf_diagnosis": "unknown"}),
    # the systolic component a number with no unit (as Synthea writes some): not in mm[Hg]
    "hf-sbp-nounit": ("possible", "", {"sbp": "unknown"}),
    # a myocardial infarction dated "2026-08": its days before 2026-08-27 are outside the 90 days
    "hf-mi-partial": ("possible", "", {"recent_mi": "unknown"}),
    "hf-ntprobnp-low": ("excluded", "", {"nt_probnp": "fail"}),  # 450 < 600
    "hf-lvef-high": ("excluded", "", {"lvef": "fail"}),  # 55 > 40
    "hf-stopped": ("excluded", "", {"loop_diuretic": "fail"}),  # Lasix stopped 2025-01-01
    "hf-flu-old": ("excluded", "", {"flu_vaccine": "fail"}),  # vaccine 2025-10-01
    # MI onset 2026-10-01: in the 90 days up to 2026-12-30, out of them from 2026-12-31
    "hf-mi-recent": ("excluded", "2026-12-31", {"recent_mi": "fail"}),
    "hf-egfr-low": ("excluded", "", {"egfr": "fail"}),  # 18 < 20
    "hf-k-high": ("excluded", "", {"potassium": "fail"}),  # 5.3 > 5.0
    "hf-sbp-low": ("excluded", "", {"sbp": "fail"}),  # systolic 90 < 95
    "hf-young": ("excluded", "", {"age": "fail"}),  # born 1990-01-01: 36
    "hf-old": ("excluded", "", {"age": "fail"}),  # born 1940-01-01: 86
    "hf-deceased": ("excluded", "", {"deceased": "fail"}),  # died 2026-11-10
    # heart failure with onset 2026-12-01: screened (a condition whatever its date), no
    # diagnosis yet on the as-of date
    "hf-later": ("excluded", "", {"hf_diagnosis": "fail"}),
}
# not screened: hf-refuted (its heart failure refuted)


def _config(tmp_path: Path, source: Path, site: str = "t1") -> Path:
    return trial_config(tmp_path, HF, "hf-demo", source, site)


@pytest.mark.usefixtures("in_tmp")
def test_the_hf_trial_on_hand_made_patients(tmp_path: Path) -> None:
    cfg = _config(tmp_path, HF / "data")
    check_mappings(cfg)
    out = tmp_path / "out"
    run_cohort(cfg, out, AS_OF)
    got = candidate_rows(out / "t1" / "candidates.csv")
    check_rows(got, EXPECTED, CRITERIA)
    assert {pid: got[pid]["to_confirm"] for pid in EXPECTED} == dict.fromkeys(EXPECTED, MANUAL)
    assert got["hf-flu-old"]["reasons"] == (
        "flu_vaccine: no influenza vaccine within 12 months (last on 2025-10-01)"
    )
    assert got["hf-flu-partial"]["reasons"] == (
        "flu_vaccine: influenza vaccine recorded only as 2025-11: cannot tell if within 12 months"
    )
    assert got["hf-mi-recent"]["reasons"] == (
        "recent_mi: acute myocardial infarction, onset 2026-10-01"
    )
    assert got["hf-sbp-low"]["reasons"] == "sbp: systolic BP 90 mm[Hg] < 95 on 2026-10-15"
    assert got["hf-ntprobnp-low"]["reasons"] == "nt_probnp: NT-proBNP 450 pg/mL < 600 on 2026-10-15"
    assert got["hf-lvef-high"]["reasons"] == "lvef: 55 % > 40 on 2026-10-15"
    assert got["hf-stopped"]["reasons"] == (
        "loop_diuretic: no current qualifying therapy (last: furosemide (loop diuretic), "
        "ended 2025-01-01)"
    )
    assert got["hf-old"]["reasons"] == "age: 86 > 85"
    assert got["hf-later"]["reasons"] == (
        "hf_diagnosis: no qualifying diagnosis (heart failure dated 2026-12-01, after the as-of date)"
    )
    assert got["hf-sbp-nounit"]["missing"] == "systolic BP: readable value/unit (check the lab's unit)"
    assert got["hf-mi-partial"]["reasons"] == (
        "recent_mi: acute myocardial infarction condition recorded only as 2026-08: "
        "cannot tell if within 90 days"
    )
    assert got["hf-no-ntprobnp"]["missing"] == "NT-proBNP within 12 months (or a BNP: see to_confirm)"
    # the patients the oracle, written apart, screens and judges alike
    candidates = str(out / "t1" / "candidates.csv")
    lines = hf_oracle.compare(str(HF / "data"), date(2026, 11, 25), candidates)
    assert lines == ["23 screened by the oracle, 23 rows, 0 difference(s)"]
    for path in (out / "run.json", *(out / "t1").iterdir()):
        assert not SLE_WORDS.search(path.read_text(encoding="utf-8-sig")), path
    explained = CliRunner().invoke(
        cli, ["explain", "hf-mi-old", "--config", str(cfg), "--out", str(out)]
    )
    assert explained.exit_code == 0, explained.output
    text = explained.output
    assert "rule: recent_record: immunizations=[influenza_vaccine], window_months=12" in text
    assert 'rule: checks: checks=[{"condition":["acute_mi"],"window_days":90,"then":"fail"}]' in text
    # the old infarction, still marked active, is read and set aside
    assert "2015-06-01  -- outside window (before 2026-08-27)" in text
    assert "influenza vaccine on 2026-10-01, within 12 months" in text



# (as-of, a patient and the cell the date makes of them)
PUBLIC_DATES = [
    # a myocardial infarction of 1997-03-02 (22298006) within the 90 days; her heart failure is
    # dated 2012: screened, but no diagnosis yet
    ("1997-04-15", "9df87ee4-4ade-45c5-8601-910e8ff9db99", {"recent_mi": "fail", "hf_diagnosis": "fail"}),
    # his latest blood pressure panels (2019-06-23, 2019-06-28) give the systolic pressure as a
    # number with no unit (Synthea writes 343 such components): not in mm[Hg], unknown
    ("2019-07-01", "6c1a94c7-5d69-4041-8785-96f2c563ce82", {"sbp": "unknown", "egfr": "fail"}),
]


@pytest.mark.public_data
@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize(("as_of", "pid", "cells"), PUBLIC_DATES)
def test_the_hf_trial_on_the_public_synthea_bundles(
    tmp_path: Path, as_of: str, pid: str, cells: dict[str, str]
) -> None:
    """The 617 Synthea bundles, read from their archive: 49 patients with chronic congestive
    heart failure; every cell is the oracle's, and nothing of the first trial shows."""
    archive = public_data() / "generated-sample-data-r4" / "R4_SYNTHEA_617_bundles.tar.xz"
    cfg = _config(tmp_path, archive, "synthea")
    out = tmp_path / "out"
    run_cohort(cfg, out, as_of)
    candidates = out / "synthea" / "candidates.csv"
    lines = hf_oracle.compare(str(archive), date.fromisoformat(as_of), str(candidates))
    assert lines == ["49 screened by the oracle, 49 rows, 0 difference(s)"], "\n".join(lines)
    row = candidate_rows(candidates)[pid]
    assert {c: row[c] for c in cells} == cells, row["reasons"]
    for path in (out / "run.json", *(out / "synthea").iterdir()):
        assert not SLE_WORDS.search(path.read_text(encoding="utf-8-sig")), path


@pytest.mark.public_data
@pytest.mark.usefixtures("in_tmp")
def test_the_hf_trial_on_the_inferno_bulk_export(tmp_path: Path) -> None:
    """The Inferno reference server's export: one patient with chronic congestive heart failure,
    who died in 1977, his last influenza vaccine of 1977-05-13."""
    source = public_data() / "inferno-reference-server" / "bulk-ndjson"
    cfg = _config(tmp_path, source, "inferno")
    out = tmp_path / "out"
    run_cohort(cfg, out, "2023-03-31")
    candidates = out / "inferno" / "candidates.csv"
    (row,) = candidate_rows(candidates).values()
    assert {c for c in CRITERIA if row[c] == "fail"} == {"flu_vaccine", "deceased"}
    assert row["reasons"] == (
        "flu_vaccine: no influenza vaccine within 12 months (last on 1977-05-13); "
        "deceased: 1977-07-14"
    )
    lines = hf_oracle.compare(str(source), date(2023, 3, 31), str(candidates))
    assert lines == ["1 screened by the oracle, 1 rows, 0 difference(s)"]
