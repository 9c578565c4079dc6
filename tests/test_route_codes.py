"""Route codes (mappings/routes.csv): a dosage route sent as a SNOMED CT code only, with no
display or text, is named by the file's display, which the reading rules' non-systemic words
then read (SPEC: systemic corticosteroids only; docs/rules.md "Systemic or not")."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from criteria_helpers import MAPPINGS, RXNORM, SNOMED, ago, cc, dosage, medication, mg, rules

from cohort.cli import cli
from cohort.config import default_config
from cohort.errors import MappingError
from cohort.extract import Extractor, ReadingRules
from cohort.ingest import Loaded
from cohort.terminology import Terminology
from cohort.tools.check import check_mappings

OPHTHALMIC, ORAL = "54485002", "26643006"
DEXAMETHASONE = "3264"


def _coded_route(code: str, system: str = SNOMED) -> dict:
    """A MedicationStatement of dexamethasone 6 mg whose dosage route is a bare coding."""
    d = {**dosage(mg(6)), "route": cc(code, system)}
    return stmt(d)


def stmt(d: dict) -> dict:
    return medication("MedicationStatement", DEXAMETHASONE, start=ago(20), dosages=[d])


def _copy(tmp_path: Path) -> Path:
    dest = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, dest)
    return dest


def _replace_line(path: Path, old: str, new: str) -> int:
    """The one line holding `old`, replaced by `new`; its line number."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    at = [i for i, ln in enumerate(lines) if old in ln]
    assert len(at) == 1, (old, at)
    lines[at[0]] = new + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    return at[0] + 1


# --- reading a coded route --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "system", "route"),
    [
        (OPHTHALMIC, SNOMED, "ophthalmic use"),  # FHIR R4 route-codes display
        (ORAL, SNOMED, "oral use"),
        (OPHTHALMIC, "urn:oid:2.16.840.1.113883.6.96", "ophthalmic use"),  # SNOMED's OID alias
        (OPHTHALMIC, "SNOMED-CT", "ophthalmic use"),  # Synthea's name, a systems.csv alias
        (OPHTHALMIC, "http://loinc.org", ""),  # another system: no route named
        ("99999999", SNOMED, ""),  # a code routes.csv does not list: as before, nothing
    ],
)
def test_a_route_code_without_display_is_named_by_routes_csv(
    code: str, system: str, route: str
) -> None:
    e = Extractor(rules(), {}.get).facts("p1", [_coded_route(code, system)]).exposures[0]
    assert e.routes == ((route,) if route else ())


def test_a_display_or_text_already_there_is_kept() -> None:
    d = {**dosage(mg(6)), "route": cc(OPHTHALMIC, SNOMED, "Eye drops", "Ophthalmic route")}
    e = Extractor(rules(), {}.get).facts("p1", [stmt(d)]).exposures[0]
    assert e.routes == ("eye drops | ophthalmic route",)


def test_a_display_less_coding_beside_a_text_is_named_too() -> None:
    # "OU" (both eyes) is no non-systemic word; the code says ophthalmic
    d = {**dosage(mg(6)), "route": cc(OPHTHALMIC, SNOMED, "OU")}
    e = Extractor(rules(), {}.get).facts("p1", [stmt(d)]).exposures[0]
    assert e.routes == ("ou | ophthalmic use",)


def test_reading_rules_alone_read_no_route_code() -> None:
    """Rules loaded without the terminology (rxnav's classification) name no coded route."""
    bare = ReadingRules.load(MAPPINGS / "rules.toml")
    e = Extractor(bare, {}.get).facts("p1", [_coded_route(OPHTHALMIC)]).exposures[0]
    assert e.routes == ()


def test_a_run_reads_route_codes() -> None:
    """`cohort run` (and explain, coverage) build their Extractor from Loaded's rules."""
    loaded = Loaded.from_config(default_config())
    e = Extractor(loaded.rules, {}.get).facts("p1", [_coded_route(OPHTHALMIC)]).exposures[0]
    assert e.routes == ("ophthalmic use",)


# --- the shipped file ---------------------------------------------------------------------------
# Read by hand from rules.toml's non_systemic_words: a route these name is not systemic.
NON_SYSTEMIC = {
    "6064005",  # Topical route
    "10547007",  # Auricular use (otic)
    "16857009",  # Vaginal use
    "37161004",  # Rectal use
    "45890007",  # Transdermal use
    "46713006",  # Nasal use
    "54485002",  # Ophthalmic use
    "372449004",  # Dental use
    "372452007",  # Endotracheopulmonary use
    "372457001",  # Gingival use
    "372468001",  # Intraocular use
    "372473007",  # Oromucosal use
    "418401004",  # Intravitreal route
    "418664002",  # Oropharyngeal route
    "446105004",  # Conjunctival route
    "447081004",  # Lower respiratory tract route
    "447694001",  # Respiratory tract route
    "448598008",  # Cutaneous route
}
SYSTEMIC = {
    "26643006",  # Oral use
    "47625008",  # Intravenous use
    "78421000",  # Intramuscular use
    "34206005",  # SC use
    "37839007",  # Sublingual use (systemic: rules.toml)
    "54471007",  # Buccal use (systemic: rules.toml)
}


def test_shipped_routes_read_as_the_rules_say() -> None:
    with (MAPPINGS / "routes.csv").open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if not r["system"].startswith("#")]
    pattern = rules().non_systemic
    read = {r["code"]: not pattern.search(r["display"]) for r in rows}
    assert {c for c, systemic in read.items() if not systemic} == NON_SYSTEMIC
    assert {c for c, systemic in read.items() if systemic} == SYSTEMIC
    assert all(r["verified"] == "Y" and r["source"].strip() for r in rows)


def test_mappings_check_counts_the_route_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(MAPPINGS.parent)
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", "mappings"])
    assert result.exit_code == 0, result.output
    assert f", {len(NON_SYSTEMIC | SYSTEMIC)} route codes, trials " in result.output


def test_terminology_names_routes_through_system_aliases() -> None:
    term = Terminology.load(MAPPINGS)
    assert term.route_name(SNOMED, OPHTHALMIC) == "Ophthalmic use"
    assert term.route_name("https://snomed.info/sct/", OPHTHALMIC) == "Ophthalmic use"
    assert term.route_name(SNOMED, " 54485002 ") == "Ophthalmic use"
    assert term.route_name(RXNORM, OPHTHALMIC) == ""
    assert term.route_name("", OPHTHALMIC) == ""


# --- mistakes in routes.csv ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "column", "said"),
    [
        ("http://snomed.info/sct,54485003,Ophthalmic use,x,Y", "code", "check digit"),
        ("http://snomed.info/sct,,Ophthalmic use,x,Y", "code", "empty"),
        ("http://snomed.info/sct,54485002,,x,Y", "display", "empty"),
        ("http://snomed.info/sct,54485002,Ophthalmic use,x,maybe", "verified", "'maybe'"),
        ("http://snomed.inf/sct,54485002,Ophthalmic use,x,Y", "system", "did you mean"),
    ],
)
def test_a_bad_routes_row_names_file_line_and_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, column: str, said: str
) -> None:
    root = _copy(tmp_path)
    n = _replace_line(root / "routes.csv", ",54485002,", line)
    with pytest.raises(MappingError) as exc:
        Terminology.load(root)
    where = f"routes.csv:{n}: column '{column}'"
    assert where in str(exc.value) and said in str(exc.value)
    report = check_mappings(root)
    assert [e for e in report.findings.errors if where in e and said in e], report.findings.errors
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", "mappings"])
    assert result.exit_code == 4
    assert f"mappings/{where}" in result.output


def test_a_code_on_two_lines_with_two_displays_is_an_error(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    with (root / "routes.csv").open("a", encoding="utf-8") as fh:
        fh.write("http://snomed.info/sct,54485002,Oral use,x,Y\n")
    n = len((root / "routes.csv").read_text(encoding="utf-8").splitlines())
    with pytest.raises(MappingError, match=rf"routes.csv:{n}: column 'code': .*line \d+"):
        Terminology.load(root)


def test_an_unverified_route_is_read_only_with_use_unverified(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _replace_line(
        root / "routes.csv", ",54485002,", "http://snomed.info/sct,54485002,Ophthalmic use,x,N"
    )
    assert Terminology.load(root).route_name(SNOMED, OPHTHALMIC) == ""
    assert Terminology.load(root, use_unverified=True).route_name(SNOMED, OPHTHALMIC)


def test_a_folder_without_routes_csv_reads_no_route_code(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "routes.csv").unlink()
    assert Terminology.load(root).route_name(SNOMED, OPHTHALMIC) == ""
    assert not check_mappings(root).findings.errors


def test_routes_csv_is_in_the_mapping_version(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    before = Terminology.load(root).version
    _replace_line(
        root / "routes.csv", ",54485002,", "http://snomed.info/sct,54485002,Ophthalmic route,x,Y"
    )
    assert Terminology.load(root).version != before
