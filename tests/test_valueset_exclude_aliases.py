"""`mappings import-valueset`: a `compose.exclude` names its code system as the include does or
by an alias of it (mappings/systems.csv: an OID, an edition URI), and a code as the tool
compares codes (ICD-10-CM with or without its dot); either way the code is left out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from researcher_helpers import commented_rows, copy_mappings

from cohort.cli import cli

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
ICD_OID = "urn:oid:2.16.840.1.113883.6.90"
SCT = "http://snomed.info/sct"
SCT_US = "http://snomed.info/sct/731000124108/version/20240301"
SCT_OID = "urn:oid:2.16.840.1.113883.6.96"


def _import(tmp_path: Path, compose: dict[str, Any]) -> tuple[list[str], str]:
    m = copy_mappings(tmp_path)
    vs = {"resourceType": "ValueSet", "url": "http://example.org/fhir/ValueSet/t", "compose": compose}
    path = tmp_path / "vs.json"
    path.write_text(json.dumps(vs), encoding="utf-8")
    args = ["mappings", "import-valueset", str(path), "--concept", "itp", "--mappings", str(m), "--new-concept"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    codes = [r["code"] for r in commented_rows(m / "concepts" / "local.csv") if r["concept"] == "itp"]
    return codes, result.output


@pytest.mark.parametrize(
    ("include", "exclude"),
    [(ICD, ICD_OID), (ICD_OID, ICD), (ICD, "ICD-10-CM")],
)
def test_an_exclude_naming_the_system_by_an_alias_excludes(tmp_path: Path, include: str, exclude: str) -> None:
    # D69.3 and D69.41 listed, D69.41 (Evans syndrome) excluded: only D69.3 is a member
    compose = {
        "include": [{"system": include, "concept": [{"code": "D69.3"}, {"code": "D69.41"}]}],
        "exclude": [{"system": exclude, "concept": [{"code": "D69.41"}]}],
    }
    codes, output = _import(tmp_path, compose)
    assert codes == ["D69.3"]
    assert f"skipped: {include}|D69.41: excluded by the ValueSet's compose.exclude" in output


def test_an_exclude_in_an_edition_uri_or_oid_excludes_a_snomed_code(tmp_path: Path) -> None:
    compose = {
        "include": [{"system": SCT_US, "concept": [{"code": "302215000"}, {"code": "13670005"}]}],
        "exclude": [
            {"system": SCT, "concept": [{"code": "13670005"}]},
            {"system": SCT_OID, "concept": [{"code": "302215000"}]},
        ],
    }
    codes, output = _import(tmp_path, compose)
    assert codes == []
    assert f"skipped: {SCT_US}|13670005: excluded by the ValueSet's compose.exclude" in output
    assert f"skipped: {SCT_US}|302215000: excluded by the ValueSet's compose.exclude" in output


def test_an_exclude_writing_an_icd_code_without_its_dot_excludes(tmp_path: Path) -> None:
    compose = {
        "include": [{"system": ICD, "concept": [{"code": "D69.3"}, {"code": "D69.41"}]}],
        "exclude": [{"system": ICD, "concept": [{"code": "D6941"}]}],
    }
    codes, _ = _import(tmp_path, compose)
    assert codes == ["D69.3"]


def test_an_exclude_of_another_system_excludes_nothing(tmp_path: Path) -> None:
    # (WHO ICD-10 is not ICD-10-CM: systems.csv keeps them apart)
    compose = {
        "include": [{"system": ICD, "concept": [{"code": "D69.3"}, {"code": "D69.41"}]}],
        "exclude": [{"system": "http://hl7.org/fhir/sid/icd-10", "concept": [{"code": "D69.41"}]}],
    }
    codes, _ = _import(tmp_path, compose)
    assert codes == ["D69.3", "D69.41"]
