"""`cohort mappings coverage` suggests a concept for a lab whose unit UCUM cannot read (a local
spelling not yet in unit_aliases.csv) by its display, and says to add the unit there
(docs/mappings-howto.md)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from researcher_helpers import copy_mappings, site_config
from test_tools_suggest import lab

from cohort.cli import cli
from cohort.terminology import Terminology
from cohort.tools.suggest import Suggester

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "tests" / "data" / "tools" / "site-x"
LAB = "http://example.org/fhir/site-x/lab"
# (K/cumm: thousands per cubic millimetre as a lab report writes it; not UCUM, not an alias)
ALIAS_HINT = (
    "UCUM cannot read unit 'K/cumm': add it to unit_aliases.csv as the UCUM unit it means"
    " (10*3/uL, or one that converts to it)"
)


@pytest.fixture(scope="module")
def sug() -> Suggester:
    return Suggester(Terminology.load(ROOT / "mappings"))


def test_a_lab_in_a_unit_ucum_cannot_read_is_suggested_by_its_display(sug: Suggester) -> None:
    u = lab("PLT-A", "PLATELET CT AUTO", "K/cumm", 248.0, 258.0, system=LAB)
    assert sug.suggest(u) == ("platelets", f"display words, {ALIAS_HINT}")
    assert sug.unread_units(u, "platelets") == ["K/cumm"]


def test_several_unread_units_are_each_named(sug: Suggester) -> None:
    u = lab("PLT-A", "PLATELET COUNT", "K/cumm", 248.0, system=LAB)
    u.quantities += lab("PLT-A", "PLATELET COUNT", "Thou/cumm", 250.0).quantities
    concept, why = sug.suggest(u)
    assert concept == "platelets"
    assert why == (
        "display words, UCUM cannot read units 'K/cumm', 'Thou/cumm': add them to"
        " unit_aliases.csv as the UCUM unit they mean (10*3/uL, or one that converts to it)"
    )


def test_a_unit_ucum_reads_that_does_not_convert_still_rules_a_concept_out(
    sug: Suggester,
) -> None:
    # fL is a volume: no platelet count, whatever the display says
    assert sug.suggest(lab("PLT-A", "PLATELET CT AUTO", "fL", 10.3, system=LAB)) == ("", "")
    # an alias the table has reads as its unit: no hint
    concept, why = sug.suggest(lab("PLT-A", "PLATELET CT AUTO", "K/uL", 248.0, system=LAB))
    assert (concept, why) == ("platelets", "display words, unit converts to 10*3/uL")


def test_an_unread_unit_is_no_evidence_for_another_analyte(sug: Suggester) -> None:
    # (UCUM is case-sensitive: FL is no femtolitre) words alone must then match strongly
    u = lab("MPV", "PLATELET MEAN VOLUME", "FL", 10.3, system=LAB)
    assert sug.suggest(u) == ("", "")


def _site(tmp_path: Path) -> Path:
    """Site X with its platelet counts under the lab's own code, in K/cumm."""
    data = tmp_path / "site-x"
    shutil.copytree(SITE, data)
    for path in data.glob("*.json"):
        bundle = json.loads(path.read_text())
        for entry in bundle["entry"]:
            res = entry["resource"]
            for coding in res.get("code", {}).get("coding", []):
                if coding.get("code") == "777-3":
                    coding.update(system=LAB, code="PLT-A", display="PLATELET CT AUTO")
                    res["valueQuantity"] = {"value": res["valueQuantity"]["value"], "unit": "K/cumm"}
        path.write_text(json.dumps(bundle))
    return data


def _coverage(cfg: Path, out: Path) -> tuple[str, dict[str, str]]:
    args = ["--log-level", "error", "run", "--config", str(cfg), "--as-of", "2026-11-25"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    args = ["mappings", "coverage", "--config", str(cfg), "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with (out / "coverage.csv").open(encoding="utf-8-sig", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["code"] == "PLT-A")
    return result.output, row


def test_coverage_suggests_the_concept_and_the_alias_to_add(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    cfg = site_config(tmp_path, m, site="site-x", source=_site(tmp_path))
    output, row = _coverage(cfg, tmp_path / "out")
    assert (row["section"], row["units"]) == ("unmapped", "K/cumm")
    assert (row["suggestion"], row["why"]) == ("platelets", f"display words, {ALIAS_HINT}")
    line = next(t for t in output.splitlines() if "|PLT-A" in t)
    assert line.rstrip().endswith("platelets (unit K/cumm: add it to unit_aliases.csv)"), line
    # the alias added, the unit converts: the evidence the other codes get
    with (m / "unit_aliases.csv").open("a", encoding="utf-8") as fh:
        fh.write("K/cumm,10*3/uL,site-x lab\n")
    output, row = _coverage(cfg, tmp_path / "out2")
    assert (row["suggestion"], row["why"]) == ("platelets", "display words, unit converts to 10*3/uL")
    line = next(t for t in output.splitlines() if "|PLT-A" in t)
    assert line.rstrip().endswith(" platelets"), line
