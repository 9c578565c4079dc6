"""`cohort mappings check|import-valueset|expand-rxnorm --config FILE`: the mappings folder (and
for `check` the criteria file) that `cohort run --config FILE` loads, not the shipped one.

A researcher whose configuration's `[trial] mappings` names a copy they edit ran
`cohort mappings check`, which checked the shipped folder (exit 0), while `cohort run` stopped
on their copy's mistake (exit 4); the tools had only `--mappings DIR`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from researcher_helpers import ROOT, TRIAL, edit, run_uci, site_config

from cohort.cli import cli

DATA = ROOT / "tests" / "data" / "tools"


def _copy(tmp_path: Path, name: str = "site-mappings") -> Path:
    m = tmp_path / name
    shutil.copytree(ROOT / "mappings", m)
    return m


def _cohort(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_check_with_config_checks_the_folder_and_trial_the_run_loads(tmp_path: Path) -> None:
    m = _copy(tmp_path)
    line = edit(m / TRIAL, "fail_below = 8.0", 'fail_below = "8.0"', "fail")
    (m / "trials" / "draft.toml").write_text("[trial\n")  # not the config's trial: not loaded
    cfg = site_config(tmp_path, m)
    code, output = run_uci(tmp_path, m)
    assert code == 4, output
    (stopped,) = output.splitlines()
    assert stopped.startswith(f"cohort: error: {m / TRIAL}:{line}: criterion 'hemoglobin'")
    result = _cohort("mappings", "check", "--config", str(cfg))
    assert result.exit_code == 4, result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert errors == [stopped.removeprefix("cohort: ")]  # the same line as the run's
    assert "trials sirius-sle-2; 1 error(s)" in result.output
    assert _cohort("mappings", "check").exit_code == 0  # the shipped folder: no such mistake


def test_check_with_config_names_a_trial_id_without_a_file_as_the_run_does(
    tmp_path: Path,
) -> None:
    m = _copy(tmp_path)
    cfg = site_config(tmp_path, m, trial="sirius_sle_2")
    run = _cohort("run", "--config", str(cfg), "--out", str(tmp_path / "out"))
    result = _cohort("mappings", "check", "--config", str(cfg))
    assert run.exit_code == result.exit_code == 3, (run.output, result.output)
    assert "did you mean 'sirius-sle-2'?" in result.output
    assert result.output.splitlines()[-1] == run.output.splitlines()[-1]


def test_check_with_config_reads_unverified_rows_when_the_config_does(tmp_path: Path) -> None:
    """A concept with unverified rows only is "empty" for a run without `use_unverified` (a
    warning), not for one whose configuration sets it."""
    m = _copy(tmp_path)
    labs = m / "concepts" / "labs.csv"
    text = labs.read_text().splitlines()
    text = [ln.replace(",Y,", ",N,") if ln.startswith("body_weight,") else ln for ln in text]
    labs.write_text("\n".join(text) + "\n")
    cfg = site_config(tmp_path, m)
    empty = "concept 'body_weight' is empty"
    assert empty in _cohort("mappings", "check", "--config", str(cfg)).output
    cfg.write_text(cfg.read_text().replace("[trial]\n", "[trial]\nuse_unverified = true\n"))
    result = _cohort("mappings", "check", "--config", str(cfg))
    assert result.exit_code == 0, result.output
    assert empty not in result.output


def test_config_and_mappings_or_trial_cannot_be_given_together(tmp_path: Path) -> None:
    m = _copy(tmp_path)
    cfg = str(site_config(tmp_path, m))
    for args in (
        ["check", "--config", cfg, "--mappings", str(m)],
        ["check", "--config", cfg, "--trial", "sirius-sle-2"],
        ["expand-rxnorm", "--concept", "antimalarial", "--config", cfg, "--mappings", str(m)],
        ["import-valueset", str(DATA / "valueset-ana.json"), "--concept", "ana_titer"]
        + ["--config", cfg, "--mappings", str(m)],
    ):
        result = _cohort("mappings", *args)
        assert result.exit_code == 2, (args, result.output)
        assert "cannot be used with '--config'" in result.output, (args, result.output)


def test_import_valueset_with_config_adds_to_the_configs_folder(tmp_path: Path) -> None:
    m = _copy(tmp_path)
    cfg = site_config(tmp_path, m)
    shipped = (ROOT / "mappings" / "concepts" / "labs.csv").read_bytes()
    vs = str(DATA / "valueset-ana.json")
    result = _cohort(
        "mappings", "import-valueset", vs, "--concept", "ana_titer", "--config", str(cfg)
    )
    assert result.exit_code == 0, result.output
    assert f"to {m / 'concepts' / 'labs.csv'} " in result.output
    assert f"run `cohort mappings check --config {cfg}`" in result.output
    assert (m / "concepts" / "labs.csv").read_bytes() != shipped
    assert (ROOT / "mappings" / "concepts" / "labs.csv").read_bytes() == shipped


@pytest.mark.usefixtures("in_tmp")
def test_expand_rxnorm_with_config_reads_the_configs_folder(tmp_path: Path) -> None:
    m = _copy(tmp_path)
    cfg = site_config(tmp_path, m)
    result = _cohort("mappings", "expand-rxnorm", "--concept", "ianalumab", "--config", str(cfg))
    assert result.exit_code == 4, result.output
    assert "no RxNorm ingredient rows in site-mappings/concepts/" in result.output


def test_help_names_config(tmp_path: Path) -> None:
    for command in ("check", "import-valueset", "expand-rxnorm"):
        said = " ".join(_cohort("mappings", command, "--help").output.split())
        assert "--config PATH Run configuration (TOML):" in said, command
        assert "`cohort run --config FILE` loads" in said and "mappings folder" in said, command
        assert "Not with --mappings" in said, command
