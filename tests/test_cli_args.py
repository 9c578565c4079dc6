"""Command-line arguments refused, or not found, with the documented exit code: an --as-of in
another ISO 8601 form than YYYY-MM-DD (Python 3.11's date.fromisoformat reads week dates and
basic forms, and `--as-of 2026-W48-7` ran as of 2026-11-29), and a patient `cohort explain`
does not find in the store (exit 5, "data source cannot be read", alerted on as a broken
source)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cohort.cli import cli
from cohort.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parent.parent

# what date.fromisoformat reads in Python 3.11 besides YYYY-MM-DD, and a few more slips
# ... and "": `--as-of "$DAY"` in a cron line whose variable is unset ran as of today, exit 0
NOT_YYYY_MM_DD = ["2026-W48-7", "2026W487", "2026-W48", "20270106", "2026-1-5", " 2026-11-29", ""]


def _args(command: str, value: str, out: Path) -> list[str]:
    if command == "run":
        return ["run", "--as-of", value, "--out", str(out)]
    if command == "explain":
        return ["explain", "uci-p001", "--as-of", value, "--out", str(out)]
    return ["sample", "--as-of", value, "--out", str(out)]


@pytest.mark.parametrize("command", ["run", "explain", "sample"])
@pytest.mark.parametrize("value", NOT_YYYY_MM_DD)
def test_an_as_of_not_written_yyyy_mm_dd_is_a_usage_error_naming_it(
    tmp_path: Path, command: str, value: str
) -> None:
    result = CliRunner().invoke(cli, _args(command, value, tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert f"'{value}'" in result.output and "YYYY-MM-DD" in result.output, result.output
    assert "--as-of" in result.output, result.output
    assert not (tmp_path / "out").exists()  # (nothing run, nothing written)


@pytest.mark.parametrize("command", ["explain", "sample"])
def test_a_yyyy_mm_dd_as_of_is_still_read(tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(cli, _args(command, "2026-11-25", tmp_path / "out"))
    assert result.exit_code != 2, result.output


def test_explain_a_patient_not_in_the_store_is_the_usage_code_not_a_source_error(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    ran = CliRunner().invoke(cli, ["run", "--as-of", "2026-11-25", "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    result = CliRunner().invoke(cli, ["explain", "nobody", "--out", str(out)])
    assert result.output == (
        "cohort: error: patient 'nobody' is not in the local store for any site\n"
    )
    assert result.exit_code == 2
    assert EXIT_CODES[result.exit_code] != EXIT_CODES[5]


@pytest.mark.parametrize("command", ["run", "explain", "sample", "coverage"])
def test_an_empty_out_is_a_usage_error_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """`--out "$OUT"` in a cron line whose variable is unset took the working directory for
    OUT: `cohort run` wrote its lists (PHI) into ./<site>/ (a site's own source folder, when
    the config sat beside it), run.json and the store into the working directory, exit 0."""
    monkeypatch.chdir(tmp_path)
    args = {
        "run": ["run", "--as-of", "2026-11-25", "--out", ""],
        "explain": ["explain", "uci-p001", "--out", ""],
        "sample": ["sample", "--patients", "1", "--out", ""],
        "coverage": ["mappings", "coverage", "--out", ""],
    }[command]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "--out" in result.output and "''" in result.output, result.output
    assert list(tmp_path.iterdir()) == []
