"""Mapping CSV files as Excel saves them, and the mapping version over every edited file."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner
from researcher_helpers import TRIAL, check_all, copy_mappings, edit, run_uci

from cohort.cli import cli
from cohort.errors import MappingError
from cohort.model import Code
from cohort.terminology import Terminology
from cohort.terminology.mappings import read_csv


def test_the_mapping_version_changes_with_the_criteria_and_reading_rules(tmp_path: Path) -> None:
    """mappings/README.md: "any edit changes it"; an edit of a criteria file or of rules.toml
    left the mapping version as it was, so `cohort diff` showed both runs with the same
    version."""
    m = copy_mappings(tmp_path)
    versions = [Terminology.load(m).version]
    edit(m / TRIAL, "fail_below = 8.0", "fail_below = 9.0", "fail")
    versions.append(Terminology.load(m).version)
    edit(m / "rules.toml", '"cancelled", "draft"', '"cancelled"', '"')
    versions.append(Terminology.load(m).version)
    assert len(set(versions)) == 3


LOCAL = "concepts/local.csv"
ROW = ["hemoglobin", "http://example.org/fhir/uci/lab", "HGB-LOCAL", "exact", "", "Hb, blood"]
ROW += ["site lab", "local", ""]


def test_an_excel_saved_file_reads(tmp_path: Path) -> None:
    """(Found right, kept so:) a BOM, CRLF line ends, a quoted cell with a comma, trailing
    empty columns in the header and every row, and a blank last line all read."""
    m = copy_mappings(tmp_path)
    path = m / LOCAL
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerows([[*r, "", ""] for r in [*rows, ROW]])
        fh.write("\r\n")
    got = [r.values["display"] for r in read_csv(m, path, ("concept",))]
    assert got[-1] == "Hb, blood"
    code, lines = check_all(m)
    assert code == 0, lines


@pytest.mark.usefixtures("in_tmp")
def test_extra_cells_say_to_quote_a_comma(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    with (m / LOCAL).open("a", encoding="utf-8") as fh:
        fh.write(
            "hemoglobin,http://example.org/fhir/uci/lab,HGB-LOCAL,exact,,Hb, blood,lab,local,\n"
        )
    n = len((m / LOCAL).read_text(encoding="utf-8").splitlines())
    with pytest.raises(MappingError) as err:
        list(read_csv(m, m / LOCAL, ("concept",)))
    assert str(err.value) == (
        f"mappings/{LOCAL}:{n}: 10 cells but 9 columns (a cell holding a comma must be in double "
        'quotes: "a, b"; no extra commas at the end)'
    )


@pytest.mark.usefixtures("in_tmp")
def test_a_semicolon_separated_file_says_so(tmp_path: Path) -> None:
    """A European Excel saves "CSV" with semicolons: the error was "missing column 'concept'"
    of a header that plainly has it."""
    m = copy_mappings(tmp_path)
    path = m / LOCAL
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines())) + [ROW]
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh, delimiter=";", lineterminator="\r\n").writerows(rows)
    code, lines = check_all(m)
    assert code == 4
    assert (
        f"error: mappings/{LOCAL}:1: missing column 'concept' (the header is separated by "
        "semicolons, not commas: save the file as 'CSV UTF-8 (Comma delimited)', or set Excel's "
        "list separator to a comma)"
    ) in lines
    code, output = run_uci(tmp_path, m)
    assert code == 4 and "separated by semicolons" in output


@pytest.mark.usefixtures("in_tmp")
def test_a_file_not_in_utf8_names_its_line(tmp_path: Path) -> None:
    """Excel's plain "CSV" is Windows-1252: the error said "cannot be read (UnicodeDecodeError)"
    with no line, and `import-valueset` into such a file crashed with a traceback (exit 1)."""
    m = copy_mappings(tmp_path)
    path = m / LOCAL
    n = len(path.read_text(encoding="utf-8").splitlines()) + 1
    path.write_bytes(
        path.read_bytes() + b"hemoglobin,http://x.org/lab,HB,exact,,H\xe9moglobine,l,local,\n"
    )
    expected = (
        f"mappings/{LOCAL}:{n}: not UTF-8 text (byte 0xe9): save it as 'CSV UTF-8' (Excel: "
        "File > Save As > CSV UTF-8 (Comma delimited))"
    )
    code, lines = check_all(m)
    assert code == 4 and f"error: {expected}" in lines
    vs = tmp_path / "vs.json"
    vs.write_text(
        '{"resourceType": "ValueSet", "url": "http://x/vs", "expansion": {"contains": '
        '[{"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}]}}'
    )
    args = ["mappings", "import-valueset", str(vs), "--concept", "hemoglobin"]
    result = CliRunner().invoke(cli, [*args, "--mappings", str(m), "--file", LOCAL])
    assert result.exit_code == 4 and "not UTF-8 text (byte 0xe9)" in result.output


def test_a_version_file_not_in_utf8_is_a_located_error_for_check_and_run(tmp_path: Path) -> None:
    """mappings/VERSION saved by Notepad in the Windows code page ("2026.11 café"): `cohort
    mappings check` and `cohort run` ended in an internal error (UnicodeDecodeError, exit 1)."""
    m = copy_mappings(tmp_path)
    (m / "VERSION").write_bytes(b"2026.11-1 caf\xe9\n")
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    expected = "mappings/VERSION:1: not UTF-8 text (byte 0xe9)"
    assert result.exit_code == 4 and expected in result.output, result.output
    code, output = run_uci(tmp_path, m)
    assert code == 4 and expected in output


UNCLOSED = (
    "a double quote opened here is not closed on its line (a cell cannot run over several "
    "lines; close the quote or remove it)"
)
PLT_LOCAL = "platelets,http://example.org/lab,PLT-LOCAL,exact,,"


@pytest.mark.parametrize(
    "broken",
    [
        # the quote in the last cell: the four platelet LOINC rows after it were read as part of
        # its `verified` cell and vanished; `check` and `run` exited 0
        PLT_LOCAL + 'PLT local count,"site lab, checked by J,local,',
        # the quote in `display`: an error, but at line 16 (where a later quote closed it),
        # blaming column 'verified'
        PLT_LOCAL + '"PLT, local count,site lab,local,',
    ],
    ids=["last_cell", "display"],
)
@pytest.mark.usefixtures("in_tmp")
def test_an_unclosed_quote_is_an_error_at_its_row(tmp_path: Path, broken: str) -> None:
    """A double quote never closed made csv read the following lines into one cell: rows
    vanished without a word, or the error named a later line and the wrong column."""
    m = copy_mappings(tmp_path)
    first = "platelets,http://loinc.org,777-3,"
    n = edit(m / "concepts" / "labs.csv", first, f"{broken}\n{first}", PLT_LOCAL)
    expected = f"mappings/concepts/labs.csv:{n}: {UNCLOSED}"
    code, lines = check_all(m)
    assert code == 4 and f"error: {expected}" in lines, lines
    code, output = run_uci(tmp_path, m)
    assert code == 4 and output.strip().splitlines()[-1] == f"cohort: error: {expected}"


@pytest.mark.usefixtures("in_tmp")
def test_an_unclosed_quote_on_the_last_line_is_an_error(tmp_path: Path) -> None:
    """At the end of the file csv closes the cell itself: the row read as if quoted right."""
    m = copy_mappings(tmp_path)
    path = m / LOCAL
    n = len(path.read_text(encoding="utf-8").splitlines()) + 1
    with path.open("a", encoding="utf-8") as fh:
        fh.write('hemoglobin,http://example.org/lab,HB,exact,,"Hb,lab,local,\n')
    with pytest.raises(MappingError) as err:
        list(read_csv(m, path, ("concept",)))
    assert str(err.value) == f"mappings/{LOCAL}:{n}: {UNCLOSED}"


@pytest.mark.usefixtures("in_tmp")
def test_a_quoted_cell_over_two_lines_is_an_error_and_rows_keep_their_lines(
    tmp_path: Path,
) -> None:
    """A cell a quote carries over a line break (Alt+Enter in Excel) is refused at the line its
    row starts; rows before it keep their own lines."""
    m = copy_mappings(tmp_path)
    path = m / LOCAL
    text = path.read_text(encoding="utf-8")
    n = len(text.splitlines()) + 1
    path.write_text(
        text + 'hemoglobin,http://example.org/lab,HB,exact,,"Hb\nblood",lab,local,\n',
        encoding="utf-8",
    )
    got: list[str] = []
    with pytest.raises(MappingError) as err:
        got.extend(rec.where for rec in read_csv(m, path, ("concept",)))
    assert str(err.value) == f"mappings/{LOCAL}:{n}: {UNCLOSED}"
    assert got[-1] == f"mappings/{LOCAL}:{n - 1}"


TEXT_CELL = "type the code again in a cell formatted as Text (docs/mappings-howto.md, section 3)"


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        # a long SNOMED CT id in Excel's General format: saved back as shown; it matched nothing
        # and `check` and `run` said nothing
        (
            "conditions.csv",
            "sct,308751000119106,",
            "sct,3.08751E+14,",
            f"'3.08751E+14' is a number Excel wrote in scientific notation, not a code: {TEXT_CELL}",
        ),
        # the last digit of an SCTID is a check digit (Verhoeff): a mistyped digit, or a long
        # id Excel rounded to 15 significant digits, matched nothing either
        (
            "conditions.csv",
            "sct,55464009,",
            "sct,55464008,",
            "SNOMED CT '55464008' has a wrong check digit (a digit mistyped, or a long number "
            f"Excel rounded: {TEXT_CELL})",
        ),
        (
            "conditions.csv",
            "sct,55464009,",
            "sct,SLE,",
            "'SLE' is not a SNOMED CT identifier (6 to 18 digits)",
        ),
        # a LOINC code Excel read as a date (777-3 -> Mar-77): an error, but no word of why
        (
            "labs.csv",
            "loinc.org,777-3,",
            "loinc.org,Mar-77,",
            f"'Mar-77' is not a LOINC code (NNNNN-N): Excel turned it into a date; {TEXT_CELL}",
        ),
        (
            "labs.csv",
            "loinc.org,5048-4,",
            "loinc.org,4/1/5048,",
            f"'4/1/5048' is not a LOINC code (NNNNN-N): Excel turned it into a date; {TEXT_CELL}",
        ),
    ],
    ids=[
        "snomed_scientific",
        "snomed_check_digit",
        "snomed_not_digits",
        "loinc_mar",
        "loinc_d/m/y",
    ],
)
@pytest.mark.usefixtures("in_tmp")
def test_a_code_excel_altered_is_an_error_saying_how_to_fix_it(
    tmp_path: Path, file: str, old: str, new: str, message: str
) -> None:
    m = copy_mappings(tmp_path)
    n = edit(m / "concepts" / file, old, new, new)
    expected = f"mappings/concepts/{file}:{n}: column 'code': {message}"
    code, lines = check_all(m)
    assert code == 4 and f"error: {expected}" in lines, lines
    code, output = run_uci(tmp_path, m)
    assert code == 4 and output.strip().splitlines()[-1] == f"cohort: error: {expected}"


def test_a_cvx_code_excel_stripped_of_its_zero_still_matches(tmp_path: Path) -> None:
    """(Found right, kept so:) CVX "03" saved back by Excel as "3" is the same code (codes
    compare without leading zeros), so the MMR row still maps an Immunization coded 03."""
    m = copy_mappings(tmp_path)
    edit(m / "concepts" / "vaccines.csv", "cvx,03,", "cvx,3,", "cvx")
    code, lines = check_all(m)
    assert code == 0, lines
    term = Terminology.load(m)
    assert "live_vaccine" in term.concepts_for([Code("http://hl7.org/fhir/sid/cvx", "03")])


@pytest.mark.usefixtures("in_tmp")
def test_a_concept_file_not_named_csv_is_a_warning(tmp_path: Path) -> None:
    """A site's own rows saved as `concepts/site-x.CSV` (or kept as an .xlsx) were never read:
    every code in it stayed unmapped and `check` said nothing."""
    m = copy_mappings(tmp_path)
    header = (m / LOCAL).read_text(encoding="utf-8").splitlines()[0]
    (m / "concepts" / "site-x.CSV").write_text(header + "\n" + ",".join(ROW) + "\n")
    (m / "concepts" / "labs.xlsx").write_bytes(b"PK\x03\x04")
    (m / "concepts" / ".~lock.labs.csv#").write_text("lock")  # LibreOffice's: not reported
    code, lines = check_all(m)
    assert code == 0, lines
    assert [line for line in lines if "not read" in line] == [
        "warning: mappings/concepts/labs.xlsx: not read: only files ending in .csv are (save "
        "the rows as 'CSV UTF-8 (Comma delimited)' under a name ending in .csv)",
        "warning: mappings/concepts/site-x.CSV: not read: only files ending in .csv are (save "
        "the rows as 'CSV UTF-8 (Comma delimited)' under a name ending in .csv)",
    ]


@pytest.mark.parametrize(
    ("file", "row", "column", "shown", "name"),
    [
        # a site's lab code copied from its lab catalogue's web page, a zero-width space after it
        (
            LOCAL,
            "platelets,http://example.org/lab,PLT\u200b,exact,,PLT,site lab,local,",
            "code",
            "PLT\\u200b",
            "U+200B ZERO WIDTH SPACE",
        ),
        # a brand name copied from a PDF label, a soft hyphen inside it
        (
            "concepts/medications.csv",
            "anifrolumab,anifrolumab,text,Saph\u00adnelo,exact,,Saphnelo,site pharmacy,local,",
            "code",
            "Saph\\u00adnelo",
            "U+00AD SOFT HYPHEN",
        ),
        (
            LOCAL,
            "platelets,http://example.org/\u200blab,PLT,exact,,PLT,site lab,local,",
            "system",
            "http://example.org/\\u200blab",
            "U+200B ZERO WIDTH SPACE",
        ),
        # a result wording for values.csv, a no-break space inside it
        (
            "values.csv",
            "string,,Not\u00a0detected,negative,site lab wording,local",
            "code",
            "Not\\u00a0detected",
            "U+00A0 NO-BREAK SPACE",
        ),
    ],
    ids=["zero_width_code", "soft_hyphen_name", "zero_width_system", "values_nbsp"],
)
@pytest.mark.usefixtures("in_tmp")
def test_an_invisible_character_in_a_code_is_an_error(
    tmp_path: Path, file: str, row: str, column: str, shown: str, name: str
) -> None:
    """A code or name pasted with an invisible character in it (a zero-width space, a soft
    hyphen) was accepted by `check` and `run` and matched nothing: the platelet counts under
    the site's code stayed unknown without a word."""
    m = copy_mappings(tmp_path)
    path = m / file
    n = len(path.read_text(encoding="utf-8").splitlines()) + 1
    with path.open("a", encoding="utf-8") as fh:
        fh.write(row + "\n")
    expected = (
        f"mappings/{file}:{n}: column '{column}': '{shown}' holds an invisible character "
        f"({name}; text copied from a web page or a PDF can carry one): type it again"
    )
    code, lines = check_all(m)
    assert code == 4 and f"error: {expected}" in lines, lines
    code, output = run_uci(tmp_path, m)
    assert code == 4 and output.strip().splitlines()[-1] == f"cohort: error: {expected}"


@pytest.mark.usefixtures("in_tmp")
def test_a_row_typed_with_semicolons_says_so(tmp_path: Path) -> None:
    """A row added by hand with semicolons (as a European Excel writes them) to a comma file:
    the error blamed an "invalid concept name" holding the whole line."""
    m = copy_mappings(tmp_path)
    path = m / LOCAL
    n = len(path.read_text(encoding="utf-8").splitlines()) + 1
    with path.open("a", encoding="utf-8") as fh:
        fh.write(";".join(ROW) + "\n")  # its display "Hb, blood" holds a comma: two cells
    expected = (
        f"mappings/{LOCAL}:{n}: 2 cells but 9 columns: the row is separated by semicolons, "
        "not commas (write commas, or save the file as 'CSV UTF-8 (Comma delimited)')"
    )
    code, lines = check_all(m)
    assert code == 4 and f"error: {expected}" in lines, lines
    code, output = run_uci(tmp_path, m)
    assert code == 4 and output.strip().splitlines()[-1] == f"cohort: error: {expected}"


@pytest.mark.usefixtures("in_tmp")
def test_a_system_with_a_code_or_page_after_it_is_an_error(tmp_path: Path) -> None:
    """A site row's system copied from a LOINC web page (`https://loinc.org/777-3/`): marked
    verified=local, `check` said nothing (a site's own system) and the row matched nothing."""
    m = copy_mappings(tmp_path)
    path = m / LOCAL
    n = len(path.read_text(encoding="utf-8").splitlines()) + 1
    with path.open("a", encoding="utf-8") as fh:
        fh.write("platelets,https://loinc.org/777-3/,777-3,exact,,PLT,site lab,local,\n")
    expected = (
        f"mappings/{LOCAL}:{n}: column 'system': unknown code system 'https://loinc.org/777-3/' "
        "(did you mean 'http://loinc.org'?)"
    )
    code, lines = check_all(m)
    assert code == 4 and f"error: {expected}" in lines, lines
    code, output = run_uci(tmp_path, m)
    assert code == 4 and output.strip().splitlines()[-1] == f"cohort: error: {expected}"


@pytest.mark.usefixtures("in_tmp")
def test_lock_and_temp_files_beside_mapping_files_are_skipped_with_a_note(tmp_path: Path) -> None:
    """Excel (`~$labs.csv`), LibreOffice (`.~lock.labs.csv#`) and editors (`.labs.csv.swp`,
    `labs.csv~`, `#labs.csv#`, Emacs's `.#labs.csv` link) leave files beside one being edited
    in a shared folder: Excel's lock file and a hidden `._labs.csv` were read as concept files
    (`missing column 'concept'`, exit 4: the nightly run stopped while a researcher had the
    file open), the Emacs link stopped `check` and `run` ("file not found"), and the lock files
    changed the mapping version. They are skipped, each named by a `check` note."""
    m = copy_mappings(tmp_path)
    version = Terminology.load(m).version
    concepts, trials = m / "concepts", m / "trials"
    labs = (concepts / "labs.csv").read_text(encoding="utf-8")
    (concepts / "~$labs.csv").write_bytes(b"\x0bJane Smith" + b"\x00" * 40 + b"J\x00a\x00n\x00")
    (concepts / ".~lock.labs.csv#").write_text(",Jane Smith,ws12,27.11.2026 09:14,file:///j;")
    (concepts / ".labs.csv.swp").write_bytes(b"b0VIM 9.0\x00\x00\x10\x00")
    (concepts / "labs.csv~").write_text(labs + "platelets,http://loinc.org,BROKEN,exact\n")
    (concepts / "#labs.csv#").write_text(labs.replace("concept,", "concpt,", 1))
    (concepts / "._labs.csv").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    (concepts / ".#labs.csv").symlink_to("jane@ws12.4242:1764230000")
    (trials / "~$sirius-sle-2.toml").write_bytes(b"\x0bJane Smith\x00\x00")
    (trials / ".#sirius-sle-2.toml").symlink_to("jane@ws12.4242:1764230000")
    (trials / "sirius-sle-2.toml~").write_text("[trial]\nid = 'old'\n")
    (m / "~$units.csv").write_bytes(b"\x0bJane Smith\x00\x00")
    code, lines = check_all(m)
    assert code == 0, lines
    assert not [ln for ln in lines if ln.startswith("error") or "~" in ln and "warning" in ln]
    excel = "an Excel lock file: the file is open in Excel"
    editor = "an editor's lock or autosave file"
    notes = [ln for ln in lines if ln.startswith("note:") and "unverified row(s)" not in ln]
    assert notes == [
        f"note: mappings/concepts/{name}: skipped, never read as mappings ({what})"
        for name, what in [
            ("#labs.csv#", editor),
            (".#labs.csv", editor),
            ("._labs.csv", "a hidden file"),
            (".labs.csv.swp", "an editor's swap file"),
            (".~lock.labs.csv#", "a LibreOffice lock file: the file is open in LibreOffice"),
            ("labs.csv~", "an editor's backup copy"),
            ("~$labs.csv", excel),
        ]
    ] + [
        f"note: mappings/trials/{name}: skipped, never read as mappings ({what})"
        for name, what in [
            (".#sirius-sle-2.toml", editor),
            ("sirius-sle-2.toml~", "an editor's backup copy"),
            ("~$sirius-sle-2.toml", excel),
        ]
    ] + [f"note: mappings/~$units.csv: skipped, never read as mappings ({excel})"]
    assert Terminology.load(m).version == version
    code, output = run_uci(tmp_path, m)
    assert code == 0, output
