"""`cohort run` and the mapping checks: a near-miss concept stops it as `mappings check` does,
and the warnings `mappings check` would print are counted on stderr and listed in run.json.

QA: a researcher editing mapping CSVs without a programmer typed `platelet` for `platelets` in
concepts/labs.csv; `mappings check` warned (exit 0, among four warnings expected on clean files)
and `cohort run` said nothing while the platelet criterion lost the row's results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from researcher_helpers import copy_mappings, edit, site_config

from cohort.cli import cli


def _run(cfg: Path, out: Path) -> Result:
    args = ["run", "--config", str(cfg), "--as-of", "2026-11-25", "--out", str(out)]
    return CliRunner().invoke(cli, args)


def _count_checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The folders `check_mappings` is called on from now on (runcheck looks it up per call)."""
    import cohort.tools.check

    calls: list[Path] = []
    checked = cohort.tools.check.check_mappings

    def counted(root: Path, *args: object, **kwargs: object) -> object:
        calls.append(root)
        return checked(root, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cohort.tools.check, "check_mappings", counted)
    return calls


def _check(cfg: Path) -> list[str]:
    result = CliRunner().invoke(cli, ["mappings", "check", "--config", str(cfg)])
    return result.output.splitlines()


@pytest.mark.usefixtures("in_tmp")
def test_a_near_miss_concept_stops_the_run_as_check_does(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    row = "platelets,http://loinc.org,777-3,"
    line = edit(m / "concepts" / "labs.csv", row, row.replace("platelets", "platelet"), "plate")
    cfg = site_config(tmp_path, m)
    result = _run(cfg, tmp_path / "out")
    assert result.exit_code == 4, result.output
    stopped = result.stderr.splitlines()[-1]
    assert stopped.startswith(
        f"cohort: error: mappings/concepts/labs.csv:{line}: column 'concept': no criteria file "
        "names concept 'platelet' (did you mean 'platelets'?)"
    ), stopped
    errors = [ln for ln in _check(cfg) if ln.startswith("error:")]
    assert errors == [stopped.removeprefix("cohort: ")]  # the line `mappings check` prints
    assert not (tmp_path / "out" / "uci" / "candidates.csv").exists()  # nothing screened
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["status"] == "failed" and "'platelet'" in report["error"]


@pytest.mark.usefixtures("in_tmp")
def test_the_run_counts_mapping_warnings_and_lists_them_in_run_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = copy_mappings(tmp_path)
    cfg = site_config(tmp_path, m)
    # clean files (unverified rows included, being notes): no line, an empty list
    result = _run(cfg, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "mapping warning" not in result.stderr
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["mapping_warnings"] == []
    assert report["mappings_dir"] == str(m)
    # two mistakes `mappings check` warns of: a label naming no concept, and the platelet
    # code mapped to hemoglobin too
    with (m / "labels.csv").open("a", encoding="utf-8") as fh:
        fh.write("platelet_count,platelet count\n")
    with (m / "concepts" / "local.csv").open("a", encoding="utf-8") as fh:
        fh.write("hemoglobin,http://loinc.org,777-3,exact,,Platelets,site lab,Y,\n")
    warned = [ln.removeprefix("warning: ") for ln in _check(cfg) if ln.startswith("warning:")]
    assert len(warned) == 2, warned
    calls = _count_checks(monkeypatch)
    result = _run(cfg, tmp_path / "out")
    assert result.exit_code == 0, result.output
    said = [ln for ln in result.stderr.splitlines() if "mapping warning" in ln]
    assert len(said) == 1 and said[0].endswith(
        "2 mapping warning(s): run `cohort mappings check` for them"
    ), result.stderr
    assert "platelet_count" not in result.stderr  # (the count only: check lists them)
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["mapping_warnings"] == warned
    assert calls == [m]  # once per run


def test_the_run_s_checks_leave_ucum_to_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading asks UCUM nothing (the registry is built where the run needs it anyway, and a
    unit UCUM cannot read stops the run after the read: test_mappings_consistency)."""
    import cohort.terminology.units as units
    from cohort.config import default_config
    from cohort.ingest import Loaded

    def no_ucum(unit: str) -> None:
        raise AssertionError(f"loading asked UCUM about {unit!r}")

    monkeypatch.setattr(units, "parse_ucum", no_ucum)
    assert Loaded.from_config(default_config()).mapping_warnings == []


@pytest.mark.usefixtures("in_tmp")
def test_the_checks_are_kept_for_unchanged_mappings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks cost ~0.4-0.8 s a run: a rerun on the same mappings and code reads their
    answer from the state folder; any edit to the mappings checks again."""
    m = copy_mappings(tmp_path)
    cfg = site_config(tmp_path, m)
    calls = _count_checks(monkeypatch)
    assert _run(cfg, tmp_path / "out").exit_code == 0
    assert _run(cfg, tmp_path / "out").exit_code == 0
    assert calls == [m]
    with (m / "labels.csv").open("a", encoding="utf-8") as fh:
        fh.write("platelet_count,platelet count\n")
    result = _run(cfg, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert calls == [m, m]
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert len(report["mapping_warnings"]) == 1  # the edit's warning, not the kept answer
    # and a typo'd concept still stops the run after clean nights
    row = "platelets,http://loinc.org,777-3,"
    edit(m / "concepts" / "labs.csv", row, row.replace("platelets", "platelet"), "plate")
    assert _run(cfg, tmp_path / "out").exit_code == 4


LOCAL_SLE = "http://example.org/fhir/site-x/problems"


def _write_site(data: Path) -> None:
    """Two patients; one has SLE coded only with a code local to the site (not yet mapped)."""
    data.mkdir()
    patients = [
        {"resourceType": "Patient", "id": pid, "birthDate": "1990-01-01", "gender": "female"}
        for pid in ("p1", "p2")
    ]
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": LOCAL_SLE, "code": "PL-0417"}]},
    }
    (data / "Patient.ndjson").write_text("\n".join(json.dumps(p) for p in patients) + "\n")
    (data / "Condition.ndjson").write_text(json.dumps(condition) + "\n")


@pytest.mark.usefixtures("in_tmp")
def test_a_site_that_reads_patients_but_screens_none_is_a_warning(tmp_path: Path) -> None:
    """QA: a site whose SLE codes are its own (or public data with no SLE patient) screened
    nobody, exit 0 and not a word: research IT could not tell a broken mapping from an empty
    cohort. run.json and the log now say so, naming the site and pointing at coverage."""
    m = copy_mappings(tmp_path)
    _write_site(tmp_path / "data")
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        f'[trial]\nid = "sirius-sle-2"\nmappings = "{m}"\n'
        f'[[sites]]\nid = "s1"\nsource = "{tmp_path / "data"}"\n'
    )
    result = _run(cfg, tmp_path / "out")
    assert result.exit_code == 0, result.output
    said = (
        "2 patient(s) read, none screened: no patient has a Condition mapped to a screening "
        "concept ('sle', 'lupus_unspecified'): a site's own codes count only once mapped "
        "(`cohort mappings coverage --site s1` lists the stored codes no concept maps)"
    )
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["sites"]["s1"]["screened"] == 0
    assert report["sites"]["s1"]["warnings"] == [said]
    assert report["warnings"] == [f"s1: {said}"]
    assert f"site s1: {said}" in result.stderr
    # the site's code mapped: screened, and no such warning
    with (m / "concepts" / "local.csv").open("a", encoding="utf-8") as fh:
        fh.write(f"sle,{LOCAL_SLE},PL-0417,exact,,SLE (problem list),site-x,local,\n")
    result = _run(cfg, tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["sites"]["s1"]["screened"] == 1
    assert report["warnings"] == [] and "none screened" not in result.stderr


@pytest.mark.usefixtures("in_tmp")
def test_none_screened_says_when_the_screening_rows_are_all_unverified(tmp_path: Path) -> None:
    """A second trial's codes taken from the data are verified=N: a run without
    `use_unverified` screened nobody and said only that a site's own codes count once mapped,
    though the site's code was mapped (docs/mappings-howto.md)."""
    m = copy_mappings(tmp_path)
    _write_site(tmp_path / "data")
    with (m / "concepts" / "local.csv").open("a", encoding="utf-8") as fh:
        fh.write(f"sle,{LOCAL_SLE},PL-0417,exact,,SLE (problem list),site-x,N,\n")
    trial = m / "trials" / "sirius-sle-2.toml"
    text = trial.read_text(encoding="utf-8")
    # a trial screening on a concept whose one row is that unverified one
    trial.write_text(
        text.replace('screen_concepts = ["sle", "lupus_unspecified"]', 'screen_concepts = ["sle"]'),
        encoding="utf-8",
    )
    conditions = m / "concepts" / "conditions.csv"
    lines = conditions.read_text(encoding="utf-8").splitlines(keepends=True)
    conditions.write_text("".join(ln for ln in lines if not ln.startswith("sle,")), "utf-8")
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        f'[trial]\nid = "sirius-sle-2"\nmappings = "{m}"\n'
        f'[[sites]]\nid = "s1"\nsource = "{tmp_path / "data"}"\n'
    )
    result = _run(cfg, tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["sites"]["s1"]["warnings"] == [
        "2 patient(s) read, none screened: no patient has a Condition mapped to the screening "
        "concept 'sle': a site's own codes count only once mapped (`cohort mappings coverage "
        "--site s1` lists the stored codes no concept maps); 'sle' has only unverified rows "
        "(verified=N), which a run reads only with use_unverified = true in [trial]"
    ]
