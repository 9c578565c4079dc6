"""Researcher review of `import-valueset` and `expand-rxnorm`: what a VSAC download holds."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import responses
from click.testing import CliRunner, Result
from researcher_helpers import commented_rows, copy_mappings

from cohort.cli import cli
from cohort.tools.rxnav import BASE

ROOT = Path(__file__).resolve().parent.parent
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
SCT_US = "http://snomed.info/sct/731000124108/version/20240301"


def _vs(tmp_path: Path, body: dict[str, Any], name: str = "vs.json") -> Path:
    vs = {"resourceType": "ValueSet", "url": "http://example.org/fhir/ValueSet/t", **body}
    path = tmp_path / name
    path.write_text(json.dumps(vs), encoding="utf-8")
    return path


def _import(m: Path, vs: Path, concept: str, *extra: str) -> Result:
    args = ["mappings", "import-valueset", str(vs), "--concept", concept, "--mappings", str(m)]
    return CliRunner().invoke(cli, [*args, *extra])


def _check(m: Path) -> Result:
    return CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])


def test_compose_exclude_codes_are_not_imported(tmp_path: Path) -> None:
    # the ValueSet lists D69.3 and D69.41 and excludes D69.41 (Evans syndrome): only D69.3 is
    # a member, so D69.41 must not become a row
    m = copy_mappings(tmp_path)
    compose = {
        "include": [
            {
                "system": ICD,
                "concept": [
                    {"code": "D69.3", "display": "Immune thrombocytopenic purpura"},
                    {"code": "D69.41", "display": "Evans syndrome"},
                ],
            }
        ],
        "exclude": [{"system": ICD, "concept": [{"code": "D69.41"}]}],
    }
    result = _import(m, _vs(tmp_path, {"compose": compose}), "itp", "--new-concept")
    assert result.exit_code == 0, result.output
    codes = [r["code"] for r in commented_rows(m / "concepts" / "local.csv") if r["concept"] == "itp"]
    assert codes == ["D69.3"]
    assert f"skipped: {ICD}|D69.41: excluded by the ValueSet's compose.exclude" in result.output


def test_compose_selecting_codes_by_a_filter_is_refused_whole(tmp_path: Path) -> None:
    # `is-a 302215000` (thrombocytopenic disorder) needs a terminology server to list its
    # codes: importing the two listed ones alone would look like the whole value set
    m = copy_mappings(tmp_path)
    compose = {
        "include": [
            {"system": ICD, "concept": [{"code": "D69.3", "display": "ITP"}]},
            {"system": SCT, "filter": [{"property": "concept", "op": "is-a", "value": "302215000"}]},
        ]
    }
    before = (m / "concepts" / "local.csv").read_bytes()
    vs = _vs(tmp_path, {"compose": compose})
    result = _import(m, vs, "itp", "--new-concept")
    assert result.exit_code == 4
    assert f"{vs}: compose.include[2] selects codes by a filter" in result.output
    assert "expansion" in result.output and "nothing was written" in result.output
    assert (m / "concepts" / "local.csv").read_bytes() == before


def test_abstract_and_incomplete_entries_are_listed_not_dropped(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    contains = [
        {"system": ICD, "code": "D69.6", "abstract": True, "display": "Thrombocytopenia"},
        {"system": ICD, "display": "no code"},
        {"code": "D69.59", "display": "no system"},
        {"system": ICD, "code": "D69.3", "display": "Immune thrombocytopenic purpura"},
    ]
    result = _import(m, _vs(tmp_path, {"expansion": {"contains": contains}}), "itp", "--new-concept")
    assert result.exit_code == 0, result.output
    assert f"skipped: {ICD}|D69.6: abstract in the expansion" in result.output
    assert "skipped: expansion.contains entry 2 ('no code'): no code" in result.output
    assert "skipped: expansion.contains entry 3 (D69.59): no system" in result.output
    assert "added 1 row(s) for 'itp'" in result.output and "(3 skipped)" in result.output


def test_codes_a_prefix_row_covers_or_an_exclude_row_removes_are_skipped(tmp_path: Path) -> None:
    # sle has prefix rows M32 and M32.1 (so M32.11 is mapped already) and an exclude=Y row
    # for M32.0 (drug-induced lupus is not SLE): neither becomes a new exact row
    m = copy_mappings(tmp_path)
    contains = [
        {"system": ICD, "version": "2026", "code": "M32.11", "display": "Endocarditis in SLE"},
        {"system": ICD, "version": "2026", "code": "M32.0", "display": "Drug-induced SLE"},
    ]
    vs = _vs(tmp_path, {"expansion": {"contains": contains}})
    result = _import(m, vs, "sle")
    assert result.exit_code == 0, result.output
    assert f"skipped: {ICD}|M32.11: already mapped to 'sle'" in result.output
    assert f"skipped: {ICD}|M32.0: excluded from 'sle' by an exclude=Y row" in result.output
    assert "added 0 row(s)" in result.output
    assert (m / "concepts" / "conditions.csv").read_bytes() == (
        ROOT / "mappings" / "concepts" / "conditions.csv"
    ).read_bytes()


def test_a_code_mapped_to_another_concept_is_named_with_its_line(tmp_path: Path) -> None:
    # 718-7 is hemoglobin (labs.csv line 17); a platelet ValueSet that carries it by mistake
    # must say so, not add it in silence (verified=N rows are not compared by `check`)
    m = copy_mappings(tmp_path)
    contains = [
        {"system": LOINC, "version": "2.76", "code": "718-7", "display": "Hemoglobin"},
        {"system": LOINC, "version": "2.76", "code": "777-3", "display": "Platelets"},
    ]
    result = _import(m, _vs(tmp_path, {"expansion": {"contains": contains}}), "platelets")
    assert result.exit_code == 0, result.output
    labs = m / "concepts" / "labs.csv"
    assert (
        f"note: {LOINC}|718-7: also mapped to 'hemoglobin' ({labs}:17): added; "
        "delete the new row if the code is not one of 'platelets'"
    ) in result.output
    assert "added 1 row(s)" in result.output


def test_an_ingredient_a_typo_away_from_a_listed_one_is_refused(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    contains = [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1311628"}]
    before = (m / "concepts" / "medications.csv").read_bytes()
    vs = _vs(tmp_path, {"expansion": {"contains": contains}})
    result = _import(m, vs, "antimalarial", "--ingredient", "hydroxychloroquin")
    assert result.exit_code == 4
    assert (
        "--ingredient 'hydroxychloroquin' is not in medications/ingredients.csv "
        "(did you mean 'hydroxychloroquine'?)"
    ) in result.output
    assert (m / "concepts" / "medications.csv").read_bytes() == before
    result = _import(m, vs, "antimalarial", "--ingredient", "Hydroxychloroquine")
    assert result.exit_code == 0, result.output
    assert _check(m).exit_code == 0


def test_a_new_concept_a_typo_away_from_a_criterion_s_is_refused(tmp_path: Path) -> None:
    # `check` (and so `run`) stops on rows of 'hiv_tst' beside the criteria's 'hiv_test':
    # --new-concept may not write a folder that no longer runs
    m = copy_mappings(tmp_path)
    contains = [{"system": LOINC, "code": "7917-8", "display": "HIV 1 Ab"}]
    vs = _vs(tmp_path, {"expansion": {"contains": contains}})
    result = _import(m, vs, "hiv_tst", "--new-concept")
    assert result.exit_code == 4
    assert "--concept 'hiv_tst' is a typo away from 'hiv_test'" in result.output
    assert _check(m).exit_code == 0
    result = _import(m, vs, "thrombopoietin_x", "--new-concept")
    assert result.exit_code == 0, result.output


def test_a_searchset_bundle_holding_one_valueset_is_imported(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    vs = {
        "resourceType": "ValueSet",
        "url": "http://example.org/fhir/ValueSet/b",
        "title": "B",
        "expansion": {"contains": [{"system": ICD, "code": "D69.3", "display": "ITP"}]},
    }
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": vs}]}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    result = _import(m, path, "itp", "--new-concept")
    assert result.exit_code == 0, result.output
    rows = [r for r in commented_rows(m / "concepts" / "local.csv") if r["concept"] == "itp"]
    assert [(r["code"], r["source"]) for r in rows] == [
        ("D69.3", "ValueSet http://example.org/fhir/ValueSet/b expansion (B)")
    ]
    two = {**bundle, "entry": [{"resource": vs}, {"resource": {**vs, "url": "u2"}}]}
    path.write_text(json.dumps(two))
    result = _import(m, path, "itp")
    assert result.exit_code == 4
    assert f"{path}: a Bundle of 2 ValueSets: save each one to a file of its own" in result.output


def test_other_json_says_what_to_download(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    cs = tmp_path / "cs.json"
    cs.write_text('{"resourceType": "CodeSystem", "url": "x"}')
    result = _import(m, cs, "sle")
    assert result.exit_code == 4
    assert f"{cs}: a CodeSystem, not a FHIR ValueSet: download the value set" in result.output
    cut = tmp_path / "cut.json"
    cut.write_text('{"resourceType": "ValueSet", "expansion": {"contains": [')
    result = _import(m, cut, "sle")
    assert result.exit_code == 4
    assert f"{cut}: not JSON (line 1, column 57" in result.output
    assert "download it again" in result.output


@responses.activate
def test_expand_rxnorm_server_error_says_nothing_changed_and_what_to_do(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    before = (m / "medications" / "products.csv").read_bytes()
    responses.add(responses.GET, re.compile(re.escape(BASE) + ".*"), status=503)
    args = ["mappings", "expand-rxnorm", "--concept", "antimalarial", "--mappings", str(m)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 6
    assert result.output.strip().count("\n") == 0
    assert "RxNav answered HTTP 503 for RxCUI 5521" in result.output
    assert "try again later (nothing was changed)" in result.output
    assert (m / "medications" / "products.csv").read_bytes() == before


@responses.activate
def test_expand_rxnorm_names_an_rxcui_rxnav_has_no_products_for(tmp_path: Path) -> None:
    # RxNav answers an RxCUI it retired (or a non-ingredient) with no concept groups
    m = copy_mappings(tmp_path)
    responses.add(
        responses.GET,
        re.compile(re.escape(BASE) + r"/rxcui/\d+/related\.json.*"),
        json={"relatedGroup": {"conceptGroup": [{"tty": "SCD"}, {"tty": "SBD"}]}},
    )
    args = ["mappings", "expand-rxnorm", "--concept", "antimalarial", "--mappings", str(m)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "note: RxCUI 5521 (hydroxychloroquine): RxNav lists no products" in result.output
    assert "note: RxCUI 2393 (chloroquine): RxNav lists no products" in result.output


def test_file_outside_concepts_is_refused(tmp_path: Path) -> None:
    # units.csv has a `concept` column too: the rows were written there with empty units,
    # which `check` and `run` then stop on
    m = copy_mappings(tmp_path)
    contains = [{"system": LOINC, "code": "13056-7", "display": "Platelets in Plasma"}]
    vs = _vs(tmp_path, {"expansion": {"contains": contains}})
    for name in ("units.csv", "values.csv", "medications/products.csv"):
        before = (m / name).read_bytes()
        result = _import(m, vs, "platelets", "--file", name)
        assert result.exit_code == 4
        assert (
            f"--file {m / name}: not a concept file of {m} (a .csv in concepts/): "
            "nothing was written"
        ) in result.output
        assert (m / name).read_bytes() == before
    other = copy_mappings(tmp_path / "other")
    result = _import(m, vs, "platelets", "--file", str(other / "concepts" / "labs.csv"))
    assert result.exit_code == 4 and "not a concept file of" in result.output


def test_a_missing_concept_file_says_how_to_start_one(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    contains = [{"system": LOINC, "code": "13056-7", "display": "Platelets in Plasma"}]
    vs = _vs(tmp_path, {"expansion": {"contains": contains}})
    result = _import(m, vs, "platelets", "--file", "concepts/site-x.csv")
    assert result.exit_code == 4
    assert "concepts/site-x.csv: concept file not found" in result.output
    assert "concept,system,code,match,exclude,display,source,verified" in result.output


def test_one_page_of_a_paged_expansion_is_refused(tmp_path: Path) -> None:
    # a server's $expand with count=2 answers 2 of the 5 codes (expansion.total 5): the file
    # is a page, and importing it would look like the whole value set
    m = copy_mappings(tmp_path)
    contains = [
        {"system": ICD, "code": "D69.3", "display": "ITP"},
        {"system": ICD, "code": "D69.41", "display": "Evans syndrome"},
    ]
    before = (m / "concepts" / "local.csv").read_bytes()
    vs = _vs(tmp_path, {"expansion": {"total": 5, "offset": 0, "contains": contains}})
    result = _import(m, vs, "itp", "--new-concept")
    assert result.exit_code == 4
    assert (
        f"{vs}: holds 2 of the expansion's 5 codes (one page of it): download the whole "
        "expansion"
    ) in result.output
    assert (m / "concepts" / "local.csv").read_bytes() == before
    # the whole expansion (total = what it holds, nested entries counted) is imported
    whole = [{**contains[0], "contains": [contains[1]]}]
    vs = _vs(tmp_path, {"expansion": {"total": 2, "contains": whole}})
    assert _import(m, vs, "itp", "--new-concept").exit_code == 0


def test_a_second_import_of_a_large_set_counts_the_codes_mapped_already(tmp_path: Path) -> None:
    """Re-importing an updated 10,000-code set printed a line per code mapped already: the
    first 20 are listed, the rest counted in one line; the total still says how many."""
    m = copy_mappings(tmp_path)
    local = "http://hospital.example.org/fhir/CodeSystem/lab"
    codes = [{"system": local, "code": f"PLT-{i}", "display": f"Platelets {i}"}
             for i in range(45)]  # fmt: skip
    vs = _vs(tmp_path, {"expansion": {"contains": codes}})
    args = ["mappings", "import-valueset", str(vs), "--concept", "platelets", "--mappings", str(m)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "added 45 row(s)" in first.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    listed = [line for line in again.output.splitlines() if "already mapped" in line]
    assert len(listed) == 21
    assert listed[0] == f"skipped: {local}|PLT-0: already mapped to 'platelets'"
    assert listed[-1] == "skipped: ... and 25 more code(s) already mapped to 'platelets'"
    assert "added 0 row(s) for 'platelets'" in again.output and "(45 skipped)" in again.output
