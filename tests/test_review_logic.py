"""Second review of the day's logic changes: each test failed before its fix."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from cohort.cli import cli
from cohort.model import Code
from cohort.terminology import Terminology

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def test_icd10cm_prefix_shorter_than_a_code_is_not_an_error(tmp_path: Path) -> None:
    """An ICD-10-CM `prefix` row is a code's leading characters: "C" (every C code) or "M3"
    matched as prefixes, but the code-shape rule for whole codes called them malformed, and
    since run refuses what check calls an error, such a row stopped the nightly run (exit 4)."""
    m = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, m)
    with (m / "concepts" / "conditions.csv").open("a", encoding="utf-8") as fh:
        fh.write(f"malignancy,{ICD},C,prefix,,any C code,review test,Y,\n")
        fh.write(f"sle,{ICD},M32.,prefix,,M32 with its dot,review test,Y,\n")
    term = Terminology.load(m)  # raised MappingError: 'C' is not shaped like an ICD-10-CM code
    assert "malignancy" in term.concepts_for([Code(ICD, "C50.911")])
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 0, result.output
    # a malformed prefix is still an error
    with (m / "concepts" / "conditions.csv").open("a", encoding="utf-8") as fh:
        fh.write(f"sle,{ICD},M32-1,prefix,,typo,review test,Y,\n")
    result = CliRunner().invoke(cli, ["mappings", "check", "--mappings", str(m)])
    assert result.exit_code == 4 and "'M32-1' is not shaped like" in result.output
