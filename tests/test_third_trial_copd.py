"""A third trial of another shape from the docs alone: COPD-DEMO, a COPD exacerbation-prevention
biologic trial (tests/data/copd_trial): a criteria file and mapping rows, no code of its own.

It needed three options the kinds lacked, each generic (docs/criteria-kinds.md "Patterns"):
a count of conditions in a window (`diagnosis` `min_count`, ">= 2 exacerbations in 12 months"),
an inclusion read from a coded result that is unknown without one (a lab check's `required`:
"current or former smoker") and a strict upper limit (`lab_latest` `pass_below`: "FEV1/FVC <
0.70"). The mapping rows were taken from records of the public data (../shared/data/public-fhir)
or are names, `verified=N` with where they were seen, so the configuration sets
`use_unverified`. The cells of the hand-made patients are derived by hand below; those of the
public data are checked against an oracle written apart from cohort (tests/copd_oracle.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import copd_oracle
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

COPD = ROOT / "tests" / "data" / "copd_trial"
AS_OF = "2026-11-25"
CRITERIA = copd_oracle.CRITERIA
MANUAL = "investigator judgement"

# As of 2026-11-25 every patient (tests/data/copd_trial/data) is a man born 1955-03-10 (71) with
# Chronic obstructive bronchitis (SNOMED 185086009, 2018-04-01); two resolved conditions coded
# locally, "Acute exacerbation of chronic obstructive pulmonary disease", on 2026-02-10 and
# 2026-09-20 (the 12 months start on 2025-11-25); smoking status (LOINC 72166-2) "Former smoker"
# (SNOMED 8517006) on 2026-09-20; FEV1/FVC (19926-5) 58 % on 2025-06-01; an active order of
# fluticasone/salmeterol dry powder inhaler (RxNorm 896209) since 2024-01-15. Except (tier,
# eligible_from, the cells that do not pass):
EXPECTED: Expected = {
    "copd-ok": ("likely", "", {}),
    # Pulmonary emphysema (87433001), "Current every day smoker" (449868002), a fluticasone
    # metered dose inhaler (895994)
    "copd-emphysema": ("likely", "", {}),
    "copd-window-edge": ("likely", "", {}),  # the older one on 2025-11-25: in the 12 months
    "copd-85": ("likely", "", {}),  # born 1941-11-25: 85 on the day, the oldest that passes
    # no FEV1/FVC: unknown, and the criterion is manual when unknown: to confirm
    "copd-no-spiro": ("likely", "", {"fev1_fvc": "unknown"}),
    "copd-no-smoking": ("possible", "", {"smoker": "unknown"}),  # no smoking status at all
    "copd-one-exac": ("excluded", "", {"exacerbations": "fail"}),  # the older on 2025-11-24
    "copd-same-day": ("excluded", "", {"exacerbations": "fail"}),  # both on 2026-09-20: one
    # the second exacerbation is "Exacerbation of asthma (disorder)" (281239006), resolved: no
    # COPD exacerbation (an excluded word) and no active asthma
    "copd-asthma-exac": ("excluded", "", {"exacerbations": "fail"}),
    "copd-never": ("excluded", "", {"smoker": "fail"}),  # "Never smoker" (266919005) 2026-10-15
    "copd-fev-70": ("excluded", "", {"fev1_fvc": "fail"}),  # 70 %: not < 0.70
    "copd-fev-high": ("excluded", "", {"fev1_fvc": "fail"}),  # 75 %; 55 % of 2019 superseded
    # albuterol (745679), a reliever no concept maps, only
    "copd-no-inhaler": ("excluded", "", {"inhaled_therapy": "fail"}),
    # fluticasone (895994) ordered 2025-01-01, stopped: no current one
    "copd-inhaler-stopped": ("excluded", "", {"inhaled_therapy": "fail"}),
    "copd-asthma": ("excluded", "", {"asthma": "fail"}),  # Asthma (195967001), active, 2010
    # prednisone 5 mg oral tablets (312617) ordered 2026-11-10, stopped: 4 weeks from then
    "copd-prednisone": ("excluded", "2026-12-08", {"systemic_steroid": "fail"}),
    # a MedicationStatement "Dupixent 300 mg/2 mL pen" of 2022-03-01 (text only)
    "copd-biologic": ("excluded", "", {"prior_biologic": "fail"}),
    # Non-small cell lung cancer (254637007) of 2015, resolved: ever
    "copd-lung-cancer": ("excluded", "", {"lung_cancer": "fail"}),
    "copd-young": ("excluded", "", {"age": "fail"}),  # born 1990-06-01: 36
    "copd-old": ("excluded", "", {"age": "fail"}),  # born 1935-01-01: 91
    # a woman born 1986 with a Normal pregnancy (72892002) of 2026-09-01, active
    "copd-pregnant": ("excluded", "", {"pregnancy": "fail"}),
    "copd-deceased": ("excluded", "", {"deceased": "fail"}),  # died 2026-10-01
}
# not screened: copd-refuted (its only COPD condition refuted)


def _config(tmp_path: Path, source: Path, site: str = "t1") -> Path:
    return trial_config(tmp_path, COPD, "copd-demo", source, site)


@pytest.mark.usefixtures("in_tmp")
def test_the_copd_trial_on_hand_made_patients(tmp_path: Path) -> None:
    cfg = _config(tmp_path, COPD / "data")
    check_mappings(cfg)
    out = tmp_path / "out"
    run_cohort(cfg, out, AS_OF)
    got = candidate_rows(out / "t1" / "candidates.csv")
    check_rows(got, EXPECTED, CRITERIA)
    assert got["copd-one-exac"]["reasons"] == (
        "exacerbations: COPD exacerbation on 1 date within 12 months (2026-09-20), "
        "needs at least 2"
    )
    assert got["copd-same-day"]["reasons"] == got["copd-one-exac"]["reasons"]
    assert got["copd-never"]["reasons"] == "smoker: smoking history negative on 2026-10-15"
    assert got["copd-no-smoking"]["reasons"] == "smoker: no smoking status result"
    assert got["copd-no-smoking"]["missing"] == "smoking status"
    assert got["copd-fev-70"]["reasons"] == "fev1_fvc: FEV1/FVC 0.7 >= 0.7 on 2025-06-01"
    assert got["copd-no-spiro"]["to_confirm"] == f"FEV1/FVC < 0.70 (most recent); {MANUAL}"
    assert got["copd-inhaler-stopped"]["reasons"] == (
        "inhaled_therapy: no current qualifying therapy (last: fluticasone (inhaled maintenance "
        "therapy), ended 2025-01-01)"
    )
    assert got["copd-prednisone"]["reasons"] == (
        "systemic_steroid: prednisone (systemic corticosteroid) on 2026-11-10, within 4 weeks "
        "(until 2026-12-08)"
    )
    assert got["copd-biologic"]["reasons"] == (
        "prior_biologic: prior asthma/COPD biologic: Dupixent 300 mg/2 mL pen on 2022-03-01"
    )
    # the patients the oracle, written apart, screens and judges alike
    candidates = str(out / "t1" / "candidates.csv")
    lines = copd_oracle.compare(str(COPD / "data"), date(2026, 11, 25), candidates)
    assert lines == ["22 screened by the oracle, 22 rows, 0 difference(s)"]
    for path in (out / "run.json", *(out / "t1").iterdir()):
        assert not SLE_WORDS.search(path.read_text(encoding="utf-8-sig")), path
    explained = CliRunner().invoke(
        cli, ["explain", "copd-one-exac", "--config", str(cfg), "--out", str(out)]
    )
    assert explained.exit_code == 0, explained.output
    assert (
        "rule: diagnosis: concepts=[copd_exacerbation], label=COPD exacerbation, min_months=0,"
        " min_count=2, window_months=12"
    ) in explained.output
    assert "2025-11-24  -- outside the window (12 months, from 2025-11-25)" in explained.output
    assert not SLE_WORDS.search(explained.output), explained.output


@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize("as_of", ["2026-06-01", "2026-02-10", "2025-01-01"])
def test_the_hand_made_patients_on_other_dates_agree_with_the_oracle(
    tmp_path: Path, as_of: str
) -> None:
    """Earlier dates move records out of the windows and after as-of (on 2026-02-10 the first
    exacerbation is the day itself, the second not yet recorded; by 2025-01-01 most charts
    hold only their COPD and their inhaler): every cell is still the oracle's."""
    cfg = _config(tmp_path, COPD / "data")
    out = tmp_path / "out"
    run_cohort(cfg, out, as_of)
    candidates = str(out / "t1" / "candidates.csv")
    lines = copd_oracle.compare(str(COPD / "data"), date.fromisoformat(as_of), candidates)
    assert lines == ["22 screened by the oracle, 22 rows, 0 difference(s)"], "\n".join(lines)



@pytest.mark.public_data
@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize("as_of", ["2021-04-01", "2020-06-30", "2019-12-31"])
def test_the_copd_trial_on_the_public_synthea_bundles(tmp_path: Path, as_of: str) -> None:
    """The 617 Synthea bundles (data to 2021-03-31), read from their archive: 23 patients with
    emphysema or chronic obstructive bronchitis, every cell the oracle's. Synthea writes no
    exacerbation, so every one fails that inclusion; the other cells vary (never smokers,
    FEV1/FVC at or above 0.70, no inhaler, deaths, ages over 85)."""
    archive = public_data() / "generated-sample-data-r4" / "R4_SYNTHEA_617_bundles.tar.xz"
    cfg = _config(tmp_path, archive, "synthea")
    out = tmp_path / "out"
    run_cohort(cfg, out, as_of)
    candidates = out / "synthea" / "candidates.csv"
    lines = copd_oracle.compare(str(archive), date.fromisoformat(as_of), str(candidates))
    assert lines == ["23 screened by the oracle, 23 rows, 0 difference(s)"], "\n".join(lines)
    got = candidate_rows(candidates)
    assert {r["smoker"] for r in got.values()} == {"pass", "fail"}
    assert {"pass", "fail"} <= {r["fev1_fvc"] for r in got.values()}
    for path in (out / "run.json", *(out / "synthea").iterdir()):
        assert not SLE_WORDS.search(path.read_text(encoding="utf-8-sig")), path


@pytest.mark.public_data
@pytest.mark.usefixtures("in_tmp")
def test_the_copd_trial_on_the_pathling_ndjson(tmp_path: Path) -> None:
    """Pathling's Synthea NDJSON (Conditions and Observations, no medication): one patient with
    emphysema, a never smoker by her latest status, FEV1/FVC below 0.70; no medication record
    at all, so no inhaled therapy is unknown, not fail."""
    source = public_data() / "pathling" / "ndjson"
    cfg = _config(tmp_path, source, "pathling")
    out = tmp_path / "out"
    run_cohort(cfg, out, "2009-06-01")
    (row,) = candidate_rows(out / "pathling" / "candidates.csv").values()
    cells = {c: row[c] for c in CRITERIA if row[c] != "pass"}
    assert cells == {"exacerbations": "fail", "smoker": "fail", "inhaled_therapy": "unknown"}
    candidates = str(out / "pathling" / "candidates.csv")
    lines = copd_oracle.compare(str(source), date(2009, 6, 1), candidates)
    assert lines == ["1 screened by the oracle, 1 rows, 0 difference(s)"]
