"""`cohort mappings import-valueset` and `expand-rxnorm` (HTTP mocked with `responses`)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import requests
import responses
from click.testing import CliRunner, Result
from researcher_helpers import commented_rows, copy_mappings

from cohort.cli import cli
from cohort.model import Code
from cohort.terminology import Terminology
from cohort.tools.rxnav import BASE

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "tools"


def _import_ana(m: Path, concept: str = "ana_titer") -> Result:
    """`cohort mappings import-valueset` of the ANA test ValueSet into the mappings `m`."""
    args = ["mappings", "import-valueset", str(DATA / "valueset-ana.json"), "--concept"]
    return CliRunner().invoke(cli, [*args, concept, "--mappings", str(m)])


def test_import_expansion_skips_duplicates_and_bad_codes(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    args = [
        "mappings",
        "import-valueset",
        str(DATA / "valueset-ana.json"),
        "--concept",
        "ana_titer",
    ]
    result = CliRunner().invoke(cli, [*args, "--mappings", str(m)])
    assert result.exit_code == 0, result.output
    assert "added 1 row(s) for 'ana_titer'" in result.output
    assert "5048-4: already mapped" in result.output  # duplicate of a shipped row
    assert "33800-5: LOINC '33800-5' has a wrong check digit" in result.output
    new = [r for r in commented_rows(m / "concepts" / "labs.csv") if r["code"] == "33800-4"]
    assert len(new) == 1 and new[0]["concept"] == "ana_titer" and new[0]["verified"] == "N"
    assert new[0]["source"] == (
        "ValueSet http://example.org/fhir/ValueSet/ana-titer|2026.1 expansion "
        "(ANA titer tests (test fixture))"
    )
    # importing again adds nothing; the files still pass the check
    result = CliRunner().invoke(cli, [*args, "--mappings", str(m)])
    assert "added 0 row(s)" in result.output
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0, result.output


def test_import_compose_into_chosen_file_verified(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    result = CliRunner().invoke(
        cli,
        [
            "mappings",
            "import-valueset",
            str(DATA / "valueset-compose.json"),
            "--concept",
            "ana_titer",
            "--mappings",
            str(m),
            "--file",
            "concepts/local.csv",
            "--verified",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [r for r in commented_rows(m / "concepts" / "local.csv") if r["concept"] == "ana_titer"]
    assert [r["code"] for r in rows] == ["ANA-T", "ANA-T2"]
    assert all(
        r["verified"] == "Y" and r["system"] == "http://example.org/fhir/site-x/lab" for r in rows
    )
    assert rows[0]["source"] == "ValueSet http://example.org/fhir/ValueSet/site-x-ana (SiteXAna)"


def test_import_errors(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Patient"}')
    result = CliRunner().invoke(
        cli, ["mappings", "import-valueset", str(bad), "--concept", "x", "--mappings", str(m)]
    )
    assert result.exit_code == 4 and "not a FHIR ValueSet" in result.output
    vs = str(DATA / "valueset-ana.json")
    result = CliRunner().invoke(
        cli, ["mappings", "import-valueset", vs, "--concept", "belimumab", "--mappings", str(m)]
    )
    assert result.exit_code == 4 and "give --ingredient" in result.output


def _register_rxnav() -> None:
    """5521 (hydroxychloroquine) answers the fixture; every other ingredient has no products."""
    body = (DATA / "rxnav-related-5521.json").read_text()
    empty = '{"relatedGroup": {"conceptGroup": [{"tty": "SCD"}]}}'

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        wanted = "/rxcui/5521/related.json?tty=SCD+SBD+GPCK+BPCK"
        return 200, {}, body if str(request.url).endswith(wanted) else empty

    responses.add_callback(
        responses.GET,
        re.compile(re.escape(BASE) + r"/rxcui/\d+/related\.json.*"),
        callback=answer,
        content_type="application/json",
    )


@responses.activate
def test_expand_rxnorm_appends_products(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    _register_rxnav()
    args = ["mappings", "expand-rxnorm", "--concept", "antimalarial", "--mappings", str(m)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # 979092 (the SCD) is shipped already: kept as it is, the other two added
    assert "added 2 product(s)" in result.output and "1 already present" in result.output
    products = {r["rxcui"]: r for r in commented_rows(m / "medications" / "products.csv")}
    tab = products["979094"]
    assert tab["ingredient"] == "hydroxychloroquine" and tab["systemic"] == "Y"
    assert tab["source"].startswith("RxNav related.json 20")
    assert products["979092"]["source"].startswith("openFDA NDC directory")
    assert products["999000"]["systemic"] == "N"  # a cream is not systemic (rules.toml words)
    urls = [c.request.url for c in responses.calls]
    assert any("/rxcui/5521/related.json?tty=SCD+SBD+GPCK+BPCK" in u for u in urls)
    # again: nothing new
    result = CliRunner().invoke(cli, args)
    assert "added 0 product(s)" in result.output and "3 already present" in result.output
    assert CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)]).exit_code == 0


@responses.activate
def test_expand_rxnorm_offline_is_one_line_exit_6(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    responses.add(
        responses.GET, re.compile(".*"), body=requests.ConnectionError("network unreachable")
    )
    before = (m / "medications" / "products.csv").read_text()
    result = CliRunner().invoke(
        cli, ["mappings", "expand-rxnorm", "--concept", "belimumab", "--mappings", str(m)]
    )
    assert result.exit_code == 6
    assert result.output.strip().count("\n") == 0 and "cannot reach RxNav" in result.output
    assert (m / "medications" / "products.csv").read_text() == before


def test_expand_rxnorm_concept_without_rxcui(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    result = CliRunner().invoke(
        cli, ["mappings", "expand-rxnorm", "--concept", "ianalumab", "--mappings", str(m)]
    )
    assert result.exit_code == 4 and "no RxNorm ingredient rows" in result.output


def test_import_valueset_saved_with_a_byte_order_mark(tmp_path: Path) -> None:
    """A ValueSet saved by a Windows tool opens with a BOM: read as without one (json.loads
    refused it: "Unexpected UTF-8 BOM")."""
    m = copy_mappings(tmp_path)
    vs = tmp_path / "vs.json"
    vs.write_bytes(b"\xef\xbb\xbf" + (DATA / "valueset-ana.json").read_bytes())
    args = ["mappings", "import-valueset", str(vs), "--concept", "ana_titer"]
    result = CliRunner().invoke(cli, [*args, "--mappings", str(m)])
    assert result.exit_code == 0, result.output
    assert "added 1 row(s) for 'ana_titer'" in result.output


def test_import_into_an_excel_saved_file_keeps_its_bom_and_crlf(tmp_path: Path) -> None:
    """A concept file saved by Excel ("CSV UTF-8": BOM, CRLF) lost its byte order mark (Excel
    then opened it in the Windows code page: "Sjögren" read "SjÃ¶gren") and got LF rows among
    its CRLF ones."""
    m = copy_mappings(tmp_path)
    labs = m / "concepts" / "labs.csv"
    lines = labs.read_text(encoding="utf-8").splitlines()
    labs.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    before = labs.read_bytes()
    result = _import_ana(m)
    assert result.exit_code == 0 and "added 1 row(s)" in result.output, result.output
    after = labs.read_bytes()
    assert after.startswith(before)  # every byte kept, the BOM included
    added = after[len(before) :]
    assert added.endswith(b"\r\n") and added.count(b"\n") == added.count(b"\r\n") == 1
    assert [r["code"] for r in commented_rows(labs)][-1] == "33800-4"


def test_import_into_a_file_with_lf_line_ends_and_no_bom_keeps_them(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    labs = m / "concepts" / "labs.csv"
    before = labs.read_bytes()
    assert not before.startswith(b"\xef\xbb\xbf") and b"\r" not in before
    result = _import_ana(m)
    assert result.exit_code == 0, result.output
    after = labs.read_bytes()
    assert after.startswith(before) and b"\r" not in after


def test_a_concept_name_ending_in_a_line_break_is_refused(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    before = (m / "concepts" / "labs.csv").read_bytes()
    result = _import_ana(m, "ana_titer\n")
    assert result.exit_code == 4, result.output
    assert "use a-z, 0-9 and _" in result.output
    assert (m / "concepts" / "labs.csv").read_bytes() == before


def test_a_display_holding_a_unicode_line_separator_keeps_its_row_whole(tmp_path: Path) -> None:
    """A display with U+2028 or NEL (U+0085, "…" read from cp1252 as Latin-1) was appended as
    it came (the csv writer quotes only CR and LF), and every later read split the row there:
    `mappings check` and every `cohort run` stopped on a broken line (exit 4)."""
    m = copy_mappings(tmp_path)
    vs = tmp_path / "vs.json"
    entry = {"system": "http://loinc.org", "code": "33800-4", "display": "ANA\u2028titer \x85 IFA"}
    vs.write_text(
        json.dumps({"resourceType": "ValueSet", "expansion": {"contains": [entry]}}),
        encoding="utf-8",
    )
    args = ["mappings", "import-valueset", str(vs), "--concept", "ana_titer"]
    result = CliRunner().invoke(cli, [*args, "--mappings", str(m)])
    assert result.exit_code == 0 and "added 1 row(s)" in result.output, result.output
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0, result.output
    rows = [r for r in commented_rows(m / "concepts" / "labs.csv") if r["code"] == "33800-4"]
    assert [r["display"] for r in rows] == [entry["display"]] and rows[0]["verified"] == "N"


def test_import_into_a_file_with_cr_line_ends_keeps_them(tmp_path: Path) -> None:
    """Excel for Mac's older "CSV (Macintosh)" ends lines with CR alone: rows were appended
    with LF."""
    m = copy_mappings(tmp_path)
    labs = m / "concepts" / "labs.csv"
    labs.write_bytes(labs.read_bytes().replace(b"\n", b"\r"))
    before = labs.read_bytes()
    result = _import_ana(m)
    assert result.exit_code == 0 and "added 1 row(s)" in result.output, result.output
    after = labs.read_bytes()
    assert after.startswith(before) and b"\n" not in after and after.endswith(b"\r")
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0, result.output


def test_expand_rxnorm_timeout_of_zero_is_a_usage_error(tmp_path: Path) -> None:
    """`--timeout 0` (or below) ended in an internal error (requests' ValueError, exit 1)."""
    m = copy_mappings(tmp_path)
    for value in ("0", "-1"):
        args = ["mappings", "expand-rxnorm", "--concept", "antimalarial", "--timeout", value]
        result = CliRunner().invoke(cli, [*args, "--mappings", str(m)])
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--timeout'" in result.output


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cells(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def test_import_valueset_guards_text_a_spreadsheet_reads_as_a_formula(tmp_path: Path) -> None:
    """docs/excel.md: no cell of ours starts with `=`. A ValueSet's display (an outside
    download) was copied as it was: "=HYPERLINK(...)" became a live formula when the researcher
    opened labs.csv in Excel. Displays are guarded as the output CSVs are (and kept on one line);
    a code or system is never altered: its row is refused."""
    m = copy_mappings(tmp_path)
    vs = tmp_path / "vs.json"
    link = '=HYPERLINK("http://evil.example/","Nuclear Ab titer")'
    local = "http://example.org/lab"
    contains = [
        {"system": "http://loinc.org", "code": "33800-4", "display": link},
        {"system": local, "code": "ANA-1", "display": "-ANA, site lab\r\nsecond line"},
        {"system": local, "code": "=1+2", "display": "a code that is a formula"},
        {"system": "@evil", "code": "ANA-2", "display": "a system that is a formula"},
        {"system": local, "code": "ANA\n3", "display": "a code over two lines"},
    ]
    body = {"resourceType": "ValueSet", "url": "http://x/vs", "title": "+ANA\nlist"}
    vs.write_text(json.dumps({**body, "expansion": {"contains": contains}}), encoding="utf-8")
    args = ["mappings", "import-valueset", str(vs), "--concept", "ana_titer", "--verified"]
    result = CliRunner().invoke(cli, [*args, "--mappings", str(m)])
    assert result.exit_code == 0, result.output
    assert "added 2 row(s)" in result.output and "(3 skipped)" in result.output
    refused = "a spreadsheet reads as a formula (a code or system is never altered)"
    assert f"skipped: {local}|=1+2: code '=1+2' starts with '=', which {refused}" in result.output
    assert f"skipped: @evil|ANA-2: system '@evil' starts with '@', which {refused}" in (
        result.output
    )
    assert f"skipped: {local}|ANA\\x0a3: code 'ANA\\x0a3' holds a line break" in result.output
    labs = m / "concepts" / "labs.csv"
    added = [row for row in _cells(labs) if "33800-4" in row or "ANA-1" in row]
    assert len(added) == 2
    assert not any(cell.startswith(FORMULA_STARTS) for row in added for cell in row), added
    rows = {r["code"]: r for r in commented_rows(labs)}
    assert rows["33800-4"]["display"] == "'" + link
    assert rows["ANA-1"]["display"] == "'-ANA, site lab second line"
    assert rows["ANA-1"]["source"] == "ValueSet http://x/vs expansion (+ANA list)"
    # read back, the rows match as imported: codes and systems as they came
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0, result.output
    term = Terminology.load(m)
    for system, code in (("http://loinc.org", "33800-4"), (local, "ANA-1")):
        assert "ana_titer" in term.concepts_for([Code(system, code)])


@responses.activate
def test_expand_rxnorm_guards_a_product_name_a_spreadsheet_reads_as_a_formula(
    tmp_path: Path,
) -> None:
    """A product name from RxNav went into products.csv as it came, like a ValueSet display.
    (A made-up RxCUI: the answer is a stub, and the real tablet is shipped already.)"""
    m = copy_mappings(tmp_path)
    name = "=cmd|' /C calc'!A0 hydroxychloroquine 300 MG Oral Tablet"
    prop = {"rxcui": "9990001", "name": name, "tty": "SCD"}
    body = {"relatedGroup": {"conceptGroup": [{"tty": "SCD", "conceptProperties": [prop]}]}}
    responses.add(responses.GET, re.compile(re.escape(BASE) + ".*"), json=body)
    args = ["mappings", "expand-rxnorm", "--concept", "antimalarial", "--mappings", str(m)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "added 1 product(s)" in result.output, result.output
    products = m / "medications" / "products.csv"
    added = [row for row in _cells(products) if "9990001" in row]
    assert added and not any(cell.startswith(FORMULA_STARTS) for cell in added[0]), added
    assert {r["rxcui"]: r for r in commented_rows(products)}["9990001"]["display"] == "'" + name
    assert CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)]).exit_code == 0


def test_an_unknown_concept_is_refused_naming_close_matches(tmp_path: Path) -> None:
    """`--concept ana_titr` (a typo) wrote rows of a new concept `ana_titr` to local.csv, which
    no criterion reads: the import looked done and changed nothing."""
    m = copy_mappings(tmp_path)
    before = {p.name: p.read_bytes() for p in (m / "concepts").glob("*.csv")}
    result = _import_ana(m, "ana_titr")
    assert result.exit_code == 4, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert "'ana_titr'" in lines[0] and "did you mean 'ana_titer'" in lines[0]
    assert "--new-concept" in lines[0]
    assert {p.name: p.read_bytes() for p in (m / "concepts").glob("*.csv")} == before


def test_an_unknown_concept_far_from_any_is_refused_without_a_suggestion(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    result = _import_ana(m, "zzqx")
    assert result.exit_code == 4, result.output
    assert "'zzqx'" in result.output and "did you mean" not in result.output


def test_new_concept_flag_adds_a_deliberately_new_concept(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    args = ["mappings", "import-valueset", str(DATA / "valueset-ana.json"), "--concept"]
    result = CliRunner().invoke(cli, [*args, "ana_reflex", "--new-concept", "--mappings", str(m)])
    assert result.exit_code == 0, result.output
    rows = [r for r in commented_rows(m / "concepts" / "local.csv") if r["concept"] == "ana_reflex"]
    assert {r["code"] for r in rows} >= {"33800-4", "5048-4"}


def test_a_concept_the_criteria_name_without_rows_yet_is_known(tmp_path: Path) -> None:
    """A concept a criteria file names but whose rows were all deleted is no new concept."""
    m = copy_mappings(tmp_path)
    labs = m / "concepts" / "labs.csv"
    lines = labs.read_text().splitlines(keepends=True)
    labs.write_text("".join(ln for ln in lines if not ln.startswith("ana_titer,")))
    assert "ana_titer" in (m / "trials" / "sirius-sle-2.toml").read_text()
    result = _import_ana(m)
    assert result.exit_code == 0, result.output
    assert "added 2 row(s) for 'ana_titer'" in result.output
