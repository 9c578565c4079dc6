"""A researcher's typos in the mapping files, found by role-play (retuning SIRIUS-SLE 2 from the
docs alone): each was accepted without a word, or its message did not say what to write."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from researcher_helpers import TRIAL, check_all, copy_mappings, edit, run_uci

from cohort.cli import cli

LOCAL = "concepts/local.csv"


def _errors(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln.startswith("error: ")]


def _both_stop(tmp_path: Path, m: Path, expected: str) -> None:
    """`mappings check` lists `expected` (after "error: ") and `run` stops on it (exit 4)."""
    code, lines = check_all(m)
    assert code == 4, lines
    assert _errors(lines) == [f"error: {expected}"], lines
    code, output = run_uci(tmp_path, m)
    assert code == 4, output
    assert f"cohort: error: {expected}" in output, output


@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize(
    ("file", "column", "wrong"),
    [
        # the plausible range left unread: a platelet count of 1e12 passed again
        ("units.csv", "plausible_min", "plausable_min"),
        # the server-search codes of every prefix row left unread
        ("concepts/labs.csv", "expand", "expnad"),
    ],
)
def test_a_misspelt_optional_column_is_an_error(
    tmp_path: Path, file: str, column: str, wrong: str
) -> None:
    """An optional column spelt wrong in the header was read as a column of no meaning: its
    cells were dropped without a word."""
    m = copy_mappings(tmp_path)
    edit(m / file, f",{column}", f",{wrong}", wrong)
    _both_stop(
        tmp_path,
        m,
        f"mappings/{file}:1: unknown column '{wrong}' (did you mean '{column}'?): "
        f"nothing reads it: write '{column}'",
    )


@pytest.mark.usefixtures("in_tmp")
def test_a_misspelt_required_column_names_the_one_written(tmp_path: Path) -> None:
    """`concpet,system,...` said only "missing column 'concept'" of a header the researcher
    sees a concept column in."""
    m = copy_mappings(tmp_path)
    edit(m / LOCAL, "concept,system", "concpet,system", "concpet")
    _both_stop(
        tmp_path, m, f"mappings/{LOCAL}:1: missing column 'concept' (found 'concpet': write 'concept')"
    )


@pytest.mark.usefixtures("in_tmp")
def test_a_column_of_the_researchers_own_still_reads(tmp_path: Path) -> None:
    """(Kept so:) a column that is no misspelling of one the file has (a researcher's own
    `comment`) is read by nothing and is no error."""
    m = copy_mappings(tmp_path)
    edit(m / LOCAL, "verified,expand", "verified,expand,comment", "comment")
    code, lines = check_all(m)
    assert code == 0, lines


# (file, line appended, the first line's key as the message names it, its column, what differs)
TWICE = [
    (
        "units.csv",
        "platelets,10*3/uL,,0,500,a second line",
        "column 'concept': 'platelets' is also on line 2 with another unit or bounds",
    ),
    (
        "medications/ingredients.csv",
        "prednisolone,1.25,a second line",
        "column 'ingredient': 'prednisolone' is also on line {first} with another "
        "prednisone_factor (1 there, 1.25 here)",
    ),
    (
        "medications/products.csv",
        "979092,chloroquine,hydroxychloroquine sulfate 200 MG Oral Tablet,Y,a second line",
        "column 'rxcui': '979092' is also on line {first} with another ingredient or systemic "
        "(hydroxychloroquine there, chloroquine here)",
    ),
    (
        "values.csv",
        "string,,positive,negative,a second line,Y",
        "column 'code': 'positive' is also on line 2 with another result "
        "(positive there, negative here)",
    ),
]


def _first_line(path: Path, start: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, ln in enumerate(lines, 1) if ln.startswith(start))


@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize(("file", "row", "said"), TWICE, ids=[t[0] for t in TWICE])
def test_a_line_twice_with_another_value_is_an_error(
    tmp_path: Path, file: str, row: str, said: str
) -> None:
    """The same unit concept, ingredient, product or result word on a second line with other
    content: the later line won without a word (`Positive` read as negative, a steroid's
    factor changed), as an alias twice did before it became an error."""
    m = copy_mappings(tmp_path)
    path = m / file
    key = row.split(",")[0] if file != "values.csv" else "string,,Positive,"
    first = _first_line(path, key)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(row + "\n")
    n = len(path.read_text(encoding="utf-8").splitlines())
    message = said.format(first=first)
    _both_stop(tmp_path, m, f"mappings/{file}:{n}: {message}: delete the wrong line")


@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize(
    "file", ["units.csv", "medications/ingredients.csv", "medications/products.csv", "values.csv"]
)
def test_a_line_repeated_as_it_is_is_no_error(tmp_path: Path, file: str) -> None:
    """(Kept so:) a line copied twice reads the same whichever is taken: no error."""
    m = copy_mappings(tmp_path)
    path = m / file
    second = path.read_text(encoding="utf-8").splitlines()[1]
    with path.open("a", encoding="utf-8") as fh:
        fh.write(second + "\n")
    code, lines = check_all(m)
    assert code == 0, lines


@pytest.mark.usefixtures("in_tmp")
def test_a_word_for_a_number_is_told_to_be_written_in_digits(tmp_path: Path) -> None:
    """`fail_below = twenty` was told to quote it ("text is written in quotes"), and the
    quoted text was then refused as no number."""
    m = copy_mappings(tmp_path)
    line = edit(m / TRIAL, "fail_below = 25\n", "fail_below = twenty\n", "fail_below")
    _both_stop(
        tmp_path,
        m,
        f"mappings/{TRIAL}:{line}: criterion 'platelets': key 'fail_below': 'twenty' is not a "
        'value: a number is written in digits (25.5), text in quotes ("twenty")',
    )


@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize(
    ("written", "meant"),
    [
        # unit_aliases.csv reads it: its line says what UCUM writes
        ("x10^3/uL", "unit_aliases.csv reads it as 10*3/uL: write 10*3/uL"),
        # no alias: what UCUM looks like
        (
            "IntlU/mL",
            "write the unit in UCUM (10*3/uL, [IU]/mL, mg/dL, umol/L; https://ucum.org), "
            "or map a lab's spelling to it in unit_aliases.csv",
        ),
    ],
)
def test_a_unit_ucum_does_not_know_says_what_to_write(
    tmp_path: Path, written: str, meant: str
) -> None:
    """`UCUM cannot parse 'x10^3/uL'` said nothing of what to write instead."""
    m = copy_mappings(tmp_path)
    line = edit(m / "units.csv", "platelets,10*3/uL,", f"platelets,{written},", "platelets")
    _both_stop(
        tmp_path,
        m,
        f"mappings/units.csv:{line}: column 'unit': UCUM cannot parse '{written}': {meant}",
    )


@pytest.mark.usefixtures("in_tmp")
@pytest.mark.parametrize(
    ("added", "where", "said"),
    [
        # a misspelt key of the second site: its line 14, not "[[sites]] #2" to count out
        ("min_ag = 18\n", 14, "[[sites]] #2: unknown key 'min_ag' (did you mean 'min_age'?)"),
        ('id = "AMR site"\n', 13, "[[sites]] #2: key 'id': 'AMR site' must be lower-case "),
        ("", 3, "[trial]: unknown key 'mapings' (did you mean 'mappings'?)"),
    ],
)
def test_a_config_mistake_names_its_line(
    tmp_path: Path, added: str, where: int, said: str
) -> None:
    """A TOML slip in the configuration named its line, a wrong key or value did not
    (`site.toml [[sites]] #2: unknown key 'min_ag'`): the researcher counted tables."""
    cfg = tmp_path / "site.toml"
    second = 'id = "amr"\n' if not added.startswith("id") else ""
    cfg.write_text(
        '[trial]\nid = "sirius-sle-2"\n'
        + ("mapings" if not added else "mappings")
        + ' = "mappings"\n\n'
        + '[[sites]]\nid = "uci"\nsource = "data/uci"\n\n'
        + '# the second site\n\n[[sites]]\nsource = "data/amr"\n'
        + second
        + added
    )
    copy_mappings(tmp_path)
    result = CliRunner().invoke(cli, ["mappings", "check", "--config", str(cfg)])
    assert result.exit_code == 3, result.output
    assert f"cohort: error: {cfg}:{where}: {said}" in result.output, result.output
