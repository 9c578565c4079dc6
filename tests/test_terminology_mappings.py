"""Broken mapping files raise MappingError naming file:line and column."""

import shutil
from pathlib import Path

import pytest

from cohort.errors import MappingError
from cohort.terminology import Terminology
from cohort.terminology.csvfile import Record
from cohort.terminology.mappings import concept_row
from cohort.terminology.rows import product_row, value_row

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"


@pytest.fixture()
def copy(in_tmp: Path) -> Path:
    root = in_tmp / "mappings"
    shutil.copytree(MAPPINGS, root)
    return root


def edit_line(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("".join(lines))


def test_bad_match_kind(copy: Path) -> None:
    labs = copy / "concepts" / "labs.csv"
    edit_line(labs, 12, ",exact,", ",prefx,")
    with pytest.raises(MappingError) as err:
        Terminology.load(copy)
    assert str(err.value).startswith(
        "mappings/concepts/labs.csv:12: column 'match': unknown match kind 'prefx'"
    )


def test_missing_column(copy: Path) -> None:
    labs = copy / "concepts" / "labs.csv"
    edit_line(labs, 1, ",verified", "")
    with pytest.raises(
        MappingError, match=r"mappings/concepts/labs.csv:1: missing column 'verified'"
    ):
        Terminology.load(copy)


def test_bad_verified_flag(copy: Path) -> None:
    cond = copy / "concepts" / "conditions.csv"
    edit_line(cond, 3, ",Y,", ",maybe,")
    with pytest.raises(MappingError, match=r"conditions.csv:3: column 'verified': 'maybe'"):
        Terminology.load(copy)


def test_bad_range(copy: Path) -> None:
    cond = copy / "concepts" / "conditions.csv"
    text = cond.read_text().replace("C00-C96,range", "C00-C9,range")
    cond.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "C00-C9,range" in s)
    with pytest.raises(MappingError, match=rf"conditions.csv:{line}: column 'code'"):
        Terminology.load(copy)


def test_bad_numbers_and_flags(copy: Path) -> None:
    ing = copy / "medications" / "ingredients.csv"
    text = ing.read_text()
    ing.write_text(text.replace("prednisone,1,", "prednisone,one,"))
    with pytest.raises(MappingError, match=r"ingredients.csv:\d+: column 'prednisone_factor'"):
        Terminology.load(copy)


def test_bad_systemic_flag(copy: Path) -> None:
    prod = copy / "medications" / "products.csv"
    edit_line(prod, 2, ",Y,", ",yes please,")
    with pytest.raises(MappingError, match=r"products.csv:2: column 'systemic'"):
        Terminology.load(copy)


def test_bad_value_result(copy: Path) -> None:
    values = copy / "values.csv"
    edit_line(values, 2, ",positive,", ",posit,")
    with pytest.raises(MappingError, match=r"values.csv:2: column 'result': 'posit'"):
        Terminology.load(copy)


def test_missing_file(copy: Path) -> None:
    (copy / "units.csv").unlink()
    with pytest.raises(MappingError, match=r"mappings/units.csv: file not found"):
        Terminology.load(copy)


def test_comments_blank_lines_and_local_additions(copy: Path) -> None:
    local = copy / "concepts" / "local.csv"
    local.write_text(
        local.read_text()
        + "\n# a site's own brand name\n"
        + "ianalumab,text,StudyDrugX,exact,,local name,site pharmacy,local,\n"
    )
    term = Terminology.load(copy)
    assert term.concepts_for([], "StudyDrugX 300 mg") == {"ianalumab"}


def test_version_changes_with_content(copy: Path) -> None:
    before = Terminology.load(copy).version
    (copy / "VERSION").write_text("2099.1-1\n")
    after = Terminology.load(copy)
    assert after.version != before and after.human_version == "2099.1-1"


def test_a_cell_too_big_for_csv_is_a_located_error(copy: Path) -> None:
    """A cell over csv's 128 KiB limit was a crash of `run` and `mappings check` (fuzzing);
    whatever that limit is set to elsewhere in the process, such a line is a located error."""
    labs = copy / "concepts" / "labs.csv"
    n = len(labs.read_text().splitlines())
    labs.write_text(labs.read_text() + "x" * 1_000_000 + ",a,b,c\n")
    with pytest.raises(MappingError, match=rf"labs.csv:{n + 1}: line longer than 64 KiB"):
        Terminology.load(copy)


def test_an_expand_range_of_too_many_codes_is_a_located_error(copy: Path) -> None:
    """M32.10..M32.99999999 enumerated a hundred million codes (fuzzing: 6 GB, or a hang)."""
    cond = copy / "concepts" / "conditions.csv"
    lines = cond.read_text().splitlines()
    lines[1] = lines[1] + "M32.10..M32.99999999"  # the row's empty `expand` cell (last)
    cond.write_text("\n".join(lines) + "\n")
    with pytest.raises(MappingError, match=r"conditions.csv:2: column 'expand'.*more than 10,000"):
        Terminology.load(copy)


# (file, line, the cell as shipped, the row's text with {} for that cell, column)
_FACTOR = ("medications/ingredients.csv", 34, "prednisone,{},", "1", "prednisone_factor")
_MOLAR = ("units.csv", 4, "hemoglobin,g/dL,{},", "10000/0.6206", "molar_mass_g_per_mol")
_MAX = ("units.csv", 2, ",0,{},", "5000", "plausible_max")
_MIN = ("units.csv", 2, ",{},5000,", "0", "plausible_min")


@pytest.mark.parametrize(
    ("where", "raw"),
    [
        # a prednisone factor of NaN read every prednisone dose as NaN mg, never above the limit
        (_FACTOR, "NaN"),
        (_FACTOR, "nan"),
        (_FACTOR, "inf"),
        (_FACTOR, "Infinity"),
        (_FACTOR, "1/inf"),  # 0
        (_FACTOR, "1e400"),
        (_FACTOR, "1e300/1e-300"),
        (_MOLAR, "nan/0.6206"),
        (_MAX, "inf"),
        (_MIN, "nan"),
    ],
)
def test_a_number_that_is_not_finite_is_a_located_error(
    copy: Path, where: tuple[str, int, str, str, str], raw: str
) -> None:
    """`float()` reads `nan`, `NaN`, `inf` and `Infinity` (while `NA`, `n/a` and `?` are
    refused): a prednisone factor of NaN was accepted and a 60 mg/day prednisone fail became a
    pass (NaN > 40 is false); `1/inf` made it 0."""
    path, line, row, shipped, column = where
    edit_line(copy / path, line, row.format(shipped), row.format(raw))
    with pytest.raises(MappingError) as err:
        Terminology.load(copy)
    assert str(err.value) == (
        f"mappings/{path}:{line}: column '{column}': expected a finite number, got '{raw}'"
    )


def test_a_copy_outside_the_working_folder_is_named_by_its_absolute_path(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A researcher's copy at /srv/trial/mappings was named `mappings/units.csv` (the folder's
    last name), which read as the shipped file when run from the project folder, while the
    criteria file's errors in the same output gave the full path."""
    (copy / "units.csv").unlink()
    elsewhere = tmp_path / "project"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(MappingError) as err:
        Terminology.load(copy)
    assert str(err.value) == f"{copy.resolve()}/units.csv: file not found"


def test_a_copy_under_the_working_folder_is_named_from_it(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from the folder holding it, the copy reads `mappings/units.csv` as the shipped one
    does from the project folder; from higher up, the path from there."""
    (copy / "units.csv").unlink()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MappingError) as err:
        Terminology.load(copy)
    assert str(err.value) == "mappings/units.csv: file not found"
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(MappingError) as err:
        Terminology.load(Path(tmp_path.name) / "mappings")
    assert str(err.value) == f"{tmp_path.name}/mappings/units.csv: file not found"


def _concept_record(exclude: str, verified: str) -> Record:
    cells = {"concept": "sle", "system": "http://snomed.info/sct", "code": "55464009"}
    return Record("f.csv:2", {**cells, "match": "exact", "exclude": exclude, "verified": verified})


@pytest.mark.parametrize(
    ("exclude", "verified", "excluded", "flag"),
    [("y", "n", True, "N"), ("n", "y", False, "Y"), ("Y", "Local", True, "local"), ("", "N", False, "N")],
)  # fmt: skip
def test_yes_no_columns_read_in_either_case(
    exclude: str, verified: str, excluded: bool, flag: str
) -> None:
    """`exclude` read `y` while `verified` refused `n`: every such column reads either case."""
    row = concept_row(_concept_record(exclude, verified), "f.csv", medication=False)
    assert (row.exclude, row.verified) == (excluded, flag)
    product = {"rxcui": "1092437", "ingredient": "belimumab", "systemic": "n"}
    assert product_row(Record("p.csv:2", product)) == ("1092437", "belimumab", False)
    value = {"kind": "string", "code": "Positive", "result": "positive", "verified": "y"}
    assert value_row(Record("v.csv:2", value))[4] == "Y"


@pytest.mark.parametrize(
    ("exclude", "verified", "said"),
    [
        ("yes", "Y", "f.csv:2: column 'exclude': 'yes' is not Y, N or empty (either case)"),
        ("", "yes", "f.csv:2: column 'verified': 'yes' is not Y, N or local (either case)"),
        ("", "", "f.csv:2: column 'verified': '' is not Y, N or local (either case)"),
    ],
)
def test_a_yes_no_cell_that_is_neither_names_what_is_read(
    exclude: str, verified: str, said: str
) -> None:
    with pytest.raises(MappingError) as err:
        concept_row(_concept_record(exclude, verified), "f.csv", medication=False)
    assert str(err.value) == said
    product = {"rxcui": "1092437", "ingredient": "belimumab", "systemic": "yes"}
    with pytest.raises(MappingError) as err:
        product_row(Record("p.csv:2", product))
    assert str(err.value) == "p.csv:2: column 'systemic': 'yes' is not Y or N (either case)"
