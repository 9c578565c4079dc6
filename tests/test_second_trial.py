"""A second trial is a criteria file plus mappings: no code. Its cells match the first trial's."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

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
