"""`cohort mappings check` names the mistakes a researcher editing the mapping files alone made
in QA and `check` let through: a threshold in another unit than its concept's, a backup copy of
a concept file, a concept file emptied by Excel, a header written with capitals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cohort.cli import cli
from cohort.tools.check import check_mappings

ROOT = Path(__file__).resolve().parent.parent
TRIAL = Path("mappings/trials/sirius-sle-2.toml")


def _copy(tmp_path: Path) -> Path:
    dest = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", dest)
    return dest


def _replace(path: Path, old: str, new: str) -> int:
    """Replace the one line holding `old` with its text edited; that line's number."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    at = [i for i, ln in enumerate(lines) if old in ln]
    assert len(at) == 1, (old, at)
    lines[at[0]] = lines[at[0]].replace(old, new)
    path.write_text("".join(lines), encoding="utf-8")
    return at[0] + 1


def _check(tmp_path: Path) -> tuple[list[str], list[str]]:
    """Errors and warnings of `cohort mappings check` of the copy, as it prints them."""
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", "mappings"])
    assert result.exit_code in (0, 4), result.output
    lines = result.output.splitlines()
    return (
        [ln.removeprefix("error: ") for ln in lines if ln.startswith("error: ")],
        [ln.removeprefix("warning: ") for ln in lines if ln.startswith("warning: ")],
    )


@pytest.mark.usefixtures("in_tmp")
def test_a_threshold_outside_its_concepts_plausible_range_warns(tmp_path: Path) -> None:
    """Platelets `fail_below = 25000` (per uL, not 10*3/uL) failed every patient, hemoglobin
    `fail_below = 80` (g/L, not g/dL) too, and `check` said nothing; so did a units.csv edit
    that moved creatinine to umol/L (plausible from 10) under the trial's `fail_above = 2.0`
    (mg/dL). Each is a warning at the key's line naming the unit and the plausible range."""
    m = _copy(tmp_path)
    trial = m / "trials" / "sirius-sle-2.toml"
    plt = _replace(trial, "fail_below = 25\n", "fail_below = 25000\n")
    hb = _replace(trial, "fail_below = 8.0\n", "fail_below = 80\n")
    alt = _replace(trial, "fail_below = 7.0 }", "fail_below = 70 }")
    errors, warnings = _check(tmp_path)
    assert errors == []
    assert [w for w in warnings if "plausible range" in w] == [
        f"{TRIAL}:{plt}: criterion 'platelets': key 'fail_below': 25000 is outside the "
        "plausible range of platelets (0-5000 10*3/uL): is it in another unit?",
        f"{TRIAL}:{hb}: criterion 'hemoglobin': key 'fail_below': 80 is outside the plausible "
        "range of hemoglobin (0-30 g/dL): is it in another unit?",
        f"{TRIAL}:{alt}: criterion 'hemoglobin': key 'alt.fail_below': 70 is outside the "
        "plausible range of hemoglobin (0-30 g/dL): is it in another unit?",
    ]
    shutil.rmtree(m)
    m = _copy(tmp_path)
    _replace(m / "units.csv", "creatinine,mg/dL,10000/88.42,0,40,", "creatinine,umol/L,,10,3500,")
    text = (m / "trials" / "sirius-sle-2.toml").read_text(encoding="utf-8").splitlines()
    line = next(n for n, ln in enumerate(text, 1) if '["creatinine"], fail_above = 2.0' in ln)
    errors, warnings = _check(tmp_path)
    assert errors == []
    assert [w for w in warnings if "plausible range" in w] == [
        f"{TRIAL}:{line}: criterion 'severe_lupus_nephritis': key 'measures[2].fail_above': 2 is outside the "
        "plausible range of creatinine (10-3500 umol/L): is it in another unit?"
    ]


@pytest.mark.usefixtures("in_tmp")
def test_a_limit_that_is_no_finite_number_is_an_error_only(tmp_path: Path) -> None:
    """`fail_below = nan` (or `inf`, `1e400`) is an error ("expected a finite number"); `check`
    also warned "nan is outside the plausible range of hemoglobin (0-30 g/dL): is it in another
    unit?", which sends a researcher looking for a unit mistake that is not there."""
    m = _copy(tmp_path)
    trial = m / "trials" / "sirius-sle-2.toml"
    hb = _replace(trial, "fail_below = 8.0\n", "fail_below = nan\n")
    plt = _replace(trial, "fail_below = 25\n", "fail_below = 1e400\n")
    errors, warnings = _check(tmp_path)
    assert sorted(errors) == [
        f"{TRIAL}:{plt}: criterion 'platelets': key 'fail_below': expected a finite number, got inf",
        f"{TRIAL}:{hb}: criterion 'hemoglobin': key 'fail_below': expected a finite number, got nan",
    ]
    assert [w for w in warnings if "plausible range" in w] == []


@pytest.mark.usefixtures("in_tmp")
def test_a_backup_copy_of_a_concept_file_warns_once_per_pair(tmp_path: Path) -> None:
    """Excel's "labs - Copy.csv" beside labs.csv was loaded as concept rows without a word (an
    edit to labs.csv no longer removed a code). One warning per pair of files, at the copy,
    with the count and the lines; a row repeated within one file stays tolerated."""
    m = _copy(tmp_path)
    labs = m / "concepts" / "labs.csv"
    shutil.copy(labs, m / "concepts" / "labs - Copy.csv")
    shutil.copy(labs, m / "concepts" / "labs_old.csv")
    rows = len(labs.read_text(encoding="utf-8").splitlines()) - 1
    errors, warnings = _check(tmp_path)
    copies = [w for w in warnings if "repeat" in w]
    tail = "): a backup copy? every CSV in concepts/ is loaded (move it out of the folder)"
    span = f"(lines 2-{rows + 1} here = lines 2-{rows + 1} there"
    assert copies == [
        f"mappings/concepts/labs - Copy.csv: {rows} rows repeat mappings/concepts/labs.csv "
        + span + tail,
        f"mappings/concepts/labs_old.csv: {rows} rows repeat mappings/concepts/labs - Copy.csv "
        + span + tail,
        f"mappings/concepts/labs_old.csv: {rows} rows repeat mappings/concepts/labs.csv "
        + span + tail,
    ], warnings
    assert not [e for e in errors if "labs" in e], errors
    (m / "concepts" / "labs - Copy.csv").unlink()
    (m / "concepts" / "labs_old.csv").unlink()
    # one row of labs.csv again in local.csv, and twice in labs.csv itself
    row = labs.read_text(encoding="utf-8").splitlines()[12]
    with labs.open("a", encoding="utf-8") as fh:
        fh.write(row + "\n")
    with (m / "concepts" / "local.csv").open("a", encoding="utf-8") as fh:
        fh.write(row + "\n")
    local = len((m / "concepts" / "local.csv").read_text(encoding="utf-8").splitlines())
    errors, warnings = _check(tmp_path)
    assert [w for w in warnings if "repeat" in w] == [
        f"mappings/concepts/local.csv: 1 row repeats mappings/concepts/labs.csv (line {local} "
        "here = line 13 there): the same row in two files (keep it in one)"
    ]


@pytest.mark.usefixtures("in_tmp")
def test_a_name_in_the_files_of_two_sorts_of_record_is_no_copy(tmp_path: Path) -> None:
    """A concept read from Condition and from Procedure records (bariatric surgery: a
    "history of" condition, and the operation) needs its name row in conditions.csv and in
    procedures.csv, each key reading its own file's rows: the repeat warning told the
    researcher to keep it in one file, which would silently drop the other records. A row of
    two files of one sort (labs.csv and local.csv, above) still warns."""
    m = _copy(tmp_path)
    row = "bariatric_surgery,text,bariatric,exact,,bariatric,a name,N,\n"
    for name in ("conditions.csv", "procedures.csv"):
        with (m / "concepts" / name).open("a", encoding="utf-8") as fh:
            fh.write(row)
    _errors, warnings = _check(tmp_path)
    assert [w for w in warnings if "repeat" in w] == [], warnings


@pytest.mark.usefixtures("in_tmp")
def test_a_concept_file_with_only_its_header_is_named_first(tmp_path: Path) -> None:
    """labs.csv saved by Excel with its rows lost gave 18 errors blaming the criteria file
    ("unknown concept 'ana_titer'") and none naming labs.csv. The empty file is the first
    error, and each unknown concept error says a concept file is empty."""
    m = _copy(tmp_path)
    labs = m / "concepts" / "labs.csv"
    labs.write_text(labs.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    errors, _ = _check(tmp_path)
    assert errors[0] == (
        "mappings/concepts/labs.csv: no rows (only its header): nothing is read from it (rows "
        "lost in Excel? restore them from a copy)"
    )
    unknown = [e for e in errors if "unknown concept" in e]
    assert unknown and "unknown concept 'ana_titer'" in unknown[0]
    assert all(e.endswith("(mappings/concepts/labs.csv has no rows)") for e in unknown), unknown
    # a site's own file without rows (no own codes yet) is only a warning
    shutil.copy(ROOT / "mappings" / "concepts" / "labs.csv", labs)
    header = (m / "concepts" / "local.csv").read_text(encoding="utf-8").splitlines()[0]
    (m / "concepts" / "site.csv").write_text(header + "\n", encoding="utf-8")
    report = check_mappings(m)
    assert report.findings.errors == []
    assert report.findings.warnings == ["mappings/concepts/site.csv: no rows (only its header)"]


@pytest.mark.usefixtures("in_tmp")
def test_a_header_with_capitals_says_column_names_are_lower_case(tmp_path: Path) -> None:
    """`Concept,System,Code,...` gave "missing column 'concept'", which the researcher read as
    the column being there; the error now says what was found."""
    m = _copy(tmp_path)
    labs = m / "concepts" / "labs.csv"
    _replace(labs, "concept,system,code,", "Concept,System,Code,")
    errors, _ = _check(tmp_path)
    assert errors[0] == (
        "mappings/concepts/labs.csv:1: missing column 'concept' "
        "(column names are lower case: found 'Concept')"
    )
