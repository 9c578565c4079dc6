"""What the tests of a trial written from the docs share: its mappings, config, run and rows."""

from __future__ import annotations

import csv
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cohort.cli import cli

ROOT = Path(__file__).resolve().parent.parent
# words of the first trial that another trial's outputs must not carry
SLE_WORDS = re.compile(r"\bSLE\b|lupus|SIRIUS|ianalumab", re.IGNORECASE)


def trial_config(tmp_path: Path, trial: Path, trial_id: str, source: Path, site: str) -> Path:
    """A researcher's copy of the shipped mappings with the trial's rows appended (`trial`:
    tests/data/<name>, whose mappings/ holds rows without a header and trials/<trial_id>.toml),
    and a configuration of one site reading the unverified rows (the trial's rows are
    verified=N). The mappings copy is made once per tmp_path; each site has its own store."""
    mappings = tmp_path / "mappings"
    if not mappings.exists():
        shutil.copytree(ROOT / "mappings", mappings)
        for extra in (trial / "mappings").rglob("*.csv"):
            target = mappings / extra.relative_to(trial / "mappings")
            with target.open("a", encoding="utf-8") as fh:
                fh.write(extra.read_text(encoding="utf-8"))
        shutil.copy(trial / "mappings" / "trials" / f"{trial_id}.toml", mappings / "trials")
    cfg = tmp_path / f"{site}.toml"
    cfg.write_text(
        f'[trial]\nid = "{trial_id}"\nmappings = "{mappings}"\nuse_unverified = true\n'
        f'[store]\npath = "{tmp_path / site}.sqlite"\n'
        f'[[sites]]\nid = "{site}"\nsource = "{source}"\n',
        encoding="utf-8",
    )
    return cfg


def run_cohort(cfg: Path, out: Path, as_of: str) -> None:
    """`cohort run` of the configuration, which must exit 0."""
    args = ["run", "--config", str(cfg), "--as-of", as_of, "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output


def candidate_rows(path: Path) -> dict[str, dict[str, str]]:
    """candidates.csv's rows by patient_id."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return {r["patient_id"]: r for r in csv.DictReader(fh)}


def public_data() -> Path:
    """The public FHIR test data (COHORT_PUBLIC_DATA, else ../shared/data/public-fhir); the
    test is skipped when it is not there."""
    env = os.environ.get("COHORT_PUBLIC_DATA")
    for cand in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data" / "public-fhir"]:
        if cand.is_dir():
            return cand
    pytest.skip("public FHIR test data not found (set COHORT_PUBLIC_DATA)")


def check_mappings(cfg: Path) -> None:
    """`cohort mappings check` of the configuration: no error, no warning, and nothing of the
    first trial said."""
    checked = CliRunner().invoke(cli, ["mappings", "check", "--config", str(cfg)])
    assert checked.exit_code == 0, checked.output
    assert "0 error(s), 0 warning(s)" in checked.output
    assert not SLE_WORDS.search(checked.output), checked.output


Expected = dict[str, tuple[str, str, dict[str, str]]]  # pid -> (tier, eligible_from, not pass)


def check_rows(
    got: dict[str, dict[str, str]], expected: Expected, criteria: tuple[str, ...]
) -> None:
    """candidates.csv's rows are the expected patients, its criterion columns (after the first
    six) the trial's in order, and each row's tier, eligible_from and cells that do not pass
    the expected ones (derived by hand in the test)."""
    assert set(got) == set(expected)
    assert list(next(iter(got.values())))[6 : 6 + len(criteria)] == list(criteria)
    for pid, (tier, eligible, other) in expected.items():
        row = got[pid]
        assert (row["tier"], row["eligible_from"]) == (tier, eligible), (pid, row["reasons"])
        cells = {c: row[c] for c in criteria if row[c] != "pass"}
        assert cells == other, (pid, row["reasons"])
