"""A second trial is a criteria file plus mappings: no code. Its cells match the first trial's."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cohort.cli import cli

ROOT = Path(__file__).resolve().parent.parent
CRITERIA = ("platelets", "hbv", "washout_belimumab")


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return {r["patient_id"]: r for r in csv.DictReader(fh)}


def test_second_trial_runs_from_data_only(tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    shutil.copy(ROOT / "tests" / "data" / "trials" / "demo-second.toml", mappings / "trials")
    cfg = tmp_path / "demo.toml"
    cfg.write_text(
        f'[trial]\nid = "demo-second"\nmappings = "{mappings}"\n'
        f'[[sites]]\nid = "uci"\nsource = "{ROOT / "sample_bundles" / "uci"}"\n'
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    got = _rows(out / "uci" / "candidates.csv")
    with (ROOT / "tests" / "data" / "sample_expected.csv").open(encoding="utf-8") as fh:
        expected = {r["patient_id"]: r for r in csv.DictReader(fh) if r["site"] == "uci"}
    # same screening concept except lupus_unspecified, which this trial does not screen
    screened = {pid for pid, r in expected.items() if r["scenario"] != "lupus_unspecified_only"}
    assert set(got) == screened
    header = list(next(iter(got.values())))
    assert header[6:9] == list(CRITERIA) and "ana_titer" not in header
    for pid in screened:
        want = {c: expected[pid][c] for c in CRITERIA}
        assert {c: got[pid][c] for c in CRITERIA} == want, pid
        statuses = set(want.values())
        tier = (
            "excluded" if "fail" in statuses else "possible" if "unknown" in statuses else "likely"
        )
        assert got[pid]["tier"] == tier, pid


def test_a_trial_id_without_its_file_names_the_config_key(tmp_path: Path) -> None:
    """The config's `[trial] id` typed `demo_second` for trials/demo-second.toml: the run
    stopped with "cannot read criteria file: No such file or directory" (exit 4), not naming
    the config key that was wrong nor the trials there are."""
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    shutil.copy(ROOT / "tests" / "data" / "trials" / "demo-second.toml", mappings / "trials")
    cfg = tmp_path / "demo.toml"
    cfg.write_text(
        f'[trial]\nid = "demo_second"\nmappings = "{mappings}"\n'
        f'[[sites]]\nid = "uci"\nsource = "{ROOT / "sample_bundles" / "uci"}"\n'
    )
    result = CliRunner().invoke(
        cli, ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 3, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"cohort: error: {cfg} [trial]: key 'id': no criteria file "
        f"{mappings / 'trials' / 'demo_second.toml'} (did you mean 'demo-second'?)"
    )


# LUNA-LN, a lupus nephritis trial unlike SIRIUS-SLE 2 (tests/data/second_trial): another
# screening concept, an age range, a result in another unit (eGFR, a site's local code), other
# washouts and windows, a condition exclusion, a vaccine window; other criterion ids.
SECOND = ROOT / "tests" / "data" / "second_trial"
LUNA = (
    "adult",
    "ln_diagnosis",
    "proteinuria",
    "egfr",
    "mmf_background",
    "rtx_washout",
    "cyc_cni_washout",
    "esrd",
    "live_vax",
)
# as of 2026-11-25, every patient born 1985 with lupus nephritis (M32.14) since 2025-01-10,
# UPCR 1.8 mg/mg and eGFR 65 mL/min/{1.73_m2} on 2026-11-02, on mycophenolate; except:
LUNA_EXPECTED: dict[str, tuple[str, str, set[str]]] = {
    "ln-ok": ("likely", "", set()),
    "ln-75": ("likely", "", set()),  # 75th birthday on as_of: 75 is in 18..75
    "ln-egfr-alias": ("likely", "", set()),  # 45 "mL/min/1.73m2" (unit text, an alias) >= 30
    "ln-upcr-mmol": ("likely", "", set()),  # 150 mg/mmol = 1.33 mg/mg >= 1.0
    "ln-76": ("excluded", "", {"adult"}),  # 76th birthday on as_of
    "ln-old": ("excluded", "", {"adult"}),  # 78
    "ln-young": ("excluded", "", {"adult"}),  # 16
    "ln-egfr25": ("excluded", "", {"egfr"}),  # 25 < 30
    "ln-upcr-low": ("excluded", "", {"proteinuria"}),  # 0.4 g/g = 0.4 mg/mg < 1.0
    "ln-recent": ("excluded", "", {"ln_diagnosis"}),  # 2026-10-01: under 3 months
    "ln-esrd": ("excluded", "", {"esrd"}),  # active N18.6
    "ln-nomeds": ("excluded", "", {"mmf_background"}),  # hydroxychloroquine only
    # rituximab given 2026-08-01: 6 months later
    "ln-rtx": ("excluded", "2027-02-01", {"rtx_washout"}),
    # tacrolimus ended 2026-10-15: 8 weeks (56 days) later
    "ln-tacro": ("excluded", "2026-12-10", {"cyc_cni_washout"}),
    # MMR 2026-11-10: 30 days later
    "ln-mmr": ("excluded", "2026-12-10", {"live_vax"}),
}


def _luna_config(tmp_path: Path) -> Path:
    """A researcher's copy of the shipped mappings with the trial's rows added, and a config."""
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    for extra in (SECOND / "mappings").rglob("*.csv"):
        target = mappings / extra.relative_to(SECOND / "mappings")
        with target.open("a", encoding="utf-8") as fh:
            fh.write(extra.read_text(encoding="utf-8"))
    shutil.copy(SECOND / "mappings" / "trials" / "luna-ln.toml", mappings / "trials")
    cfg = tmp_path / "luna.toml"
    cfg.write_text(
        f'[trial]\nid = "luna-ln"\nmappings = "{mappings}"\n'
        f'[[sites]]\nid = "t2"\nsource = "{SECOND / "data"}"\n'
    )
    return cfg


@pytest.mark.usefixtures("in_tmp")
def test_a_lupus_nephritis_trial_runs_from_data_only(tmp_path: Path) -> None:
    """A second trial with other criteria needed code: the age kind had no maximum, UCUM
    could not read eGFR's unit `mL/min/{1.73_m2}`, and summary.html said patients no longer
    screened had "no SLE condition"."""
    cfg = _luna_config(tmp_path)
    checked = CliRunner().invoke(cli, ["mappings", "check", "--config", str(cfg)])
    assert checked.exit_code == 0, checked.output
    assert not [ln for ln in checked.output.splitlines() if "lupus_nephritis" in ln], checked.output
    out = tmp_path / "out"
    args = ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    got = _rows(out / "t2" / "candidates.csv")
    assert set(got) == set(LUNA_EXPECTED)  # sle-only has SLE without nephritis: not screened
    assert list(next(iter(got.values())))[6 : 6 + len(LUNA)] == list(LUNA)
    for pid, (tier, eligible, failing) in LUNA_EXPECTED.items():
        row = got[pid]
        assert (row["tier"], row["eligible_from"]) == (tier, eligible), pid
        assert {c for c in LUNA if row[c] != "pass"} == failing, (pid, row["reasons"])
    assert got["ln-76"]["reasons"] == "adult: age 76 > 75"
    # the concept has no label: named as its id, "egfr 25 ...", which the cell does not repeat
    assert got["ln-egfr25"]["reasons"] == "egfr: 25 mL/min/{1.73_m2} < 30 on 2026-11-02"
    # a second night: the page's changes legend speaks of this trial, not of SLE
    args[4] = "2026-11-26"
    assert CliRunner().invoke(cli, args).exit_code == 0
    html = (out / "t2" / "summary.html").read_text(encoding="utf-8")
    assert "No longer screened" in html and "SLE" not in html
    # the page names its trial: a site screening two trials has two pages alike otherwise
    assert "Trial <b>LUNA-LN (add-on therapy in active lupus nephritis)</b> (luna-ln)" in html
    args = ["explain", "ln-76", "--config", str(cfg), "--out", str(out)]
    explained = CliRunner().invoke(cli, args)
    assert explained.exit_code == 0, explained.output
    assert "[fail] adult - Age 18 to 75 years (inclusion)" in explained.output
    assert "rule: age: min_years=18, max_years=75" in explained.output


def test_a_site_code_of_a_condition_is_searched_as_a_condition(tmp_path: Path) -> None:
    """A site's own problem-list code for end-stage renal disease, in local.csv (as
    docs/criteria-kinds.md allows for any record) and read by a condition check: `check`
    accepted it and a run from files read it, but a FHIR server was asked for it as an
    Observation (a local.csv row takes the file of the concept's other rows, else
    Observation), so the patient's Condition was never pulled and the exclusion passed."""
    _luna_config(tmp_path)
    mappings = tmp_path / "mappings"
    with (mappings / "concepts" / "local.csv").open("a", encoding="utf-8") as fh:
        fh.write("esrd_site,http://example.org/fhir/site-t2/problems,PL-ESRD,exact,,ESRD,")
        fh.write("site-t2 build team,local,\n")
    trial_file = mappings / "trials" / "luna-ln.toml"
    text = trial_file.read_text(encoding="utf-8")
    text = text.replace('condition = ["esrd"]', 'condition = ["esrd", "esrd_site"]')
    trial_file.write_text(text, encoding="utf-8")
    from cohort.criteria.loading import load_trial
    from cohort.terminology import Terminology

    term = Terminology.load(mappings)
    trial = load_trial(trial_file)
    tokens = term.search_tokens(trial.concepts(), trial.concept_records())
    local = "http://example.org/fhir/site-t2/problems|PL-ESRD"
    assert local in tokens["Condition"] and local not in tokens["Observation"]
    # a local code of a result (eGFR) is still searched as an Observation
    assert "http://example.org/fhir/site-t2/lab|EGFR-CKDEPI" in tokens["Observation"]
    assert trial.concept_records()["esrd_site"] == {"conditions"}


def test_the_records_each_concept_of_a_trial_is_read_as() -> None:
    from cohort.criteria.loading import load_trial

    records = load_trial(ROOT / "mappings" / "trials" / "sirius-sle-2.toml").concept_records()
    assert records["sle"] == {"conditions"}  # screen_concepts and the diagnosis
    assert records["aiha"] == {"conditions"}  # hemoglobin's alt
    assert records["sledai"] == {"labs"}
    assert records["plasmapheresis"] == {"procedures"}
    assert records["live_vaccine"] == {"vaccines"}
    assert records["belimumab"] == {"medications"}
    assert records["hcv_rna"] == {"labs"}  # a check's unless_later
