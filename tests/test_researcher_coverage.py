"""`cohort mappings coverage` as a researcher reads it: a site's local platelet code, first
unmapped, then mapped by a row not yet verified."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from researcher_helpers import copy_mappings, site_config

from cohort.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "tests" / "data" / "tools" / "site-x"
LAB = "http://example.org/fhir/site-x/laboratory-information-system/codes"
TRIAL = "trials/sirius-sle-2.toml"
PLT_ROW = f"platelets,{LAB},PLT,exact,,PLATELET COUNT,site-x lab build team,N,\n"


def _project(tmp_path: Path) -> tuple[Path, Path]:
    """Site X's data with its platelet counts under the lab's own code (system long enough
    to be cut on the terminal), a copy of the mappings and a config."""
    data = tmp_path / "site-x"
    shutil.copytree(SITE, data)
    for path in data.glob("*.json"):
        bundle = json.loads(path.read_text())
        for entry in bundle["entry"]:
            for coding in entry["resource"].get("code", {}).get("coding", []):
                if coding.get("code") == "777-3":
                    coding.update(system=LAB, code="PLT", display="PLATELET COUNT")
        path.write_text(json.dumps(bundle))
    m = copy_mappings(tmp_path)
    return site_config(tmp_path, m, site="site-x", source=data), m


def _coverage(cfg: Path, out: Path) -> tuple[str, dict[str, str]]:
    args = ["--log-level", "error", "run", "--config", str(cfg), "--as-of", "2026-11-25"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        cli, ["mappings", "coverage", "--config", str(cfg), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    with (out / "coverage.csv").open(encoding="utf-8-sig", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["code"] == "PLT")
    return result.output, row


def test_coverage_suggests_the_concept_of_a_singular_display(tmp_path: Path) -> None:
    """ "PLATELET COUNT" suggested nothing: display words were compared whole, and "platelet"
    is not "platelets" (the concept's name and its rows' displays)."""
    cfg, _ = _project(tmp_path)
    output, row = _coverage(cfg, tmp_path / "out")
    assert row["section"] == "unmapped" and row["suggestion"] == "platelets", row
    assert row["why"].startswith("display words"), row


@pytest.mark.usefixtures("in_tmp")
def test_coverage_names_the_unverified_row_that_maps_a_code(tmp_path: Path) -> None:
    """A local code whose row is still verified=N (not read by a run) was listed as unmapped
    with no word of the row: the researcher added a second row for it instead of verifying
    the first."""
    cfg, m = _project(tmp_path)
    local = m / "concepts" / "local.csv"
    n = len(local.read_text().splitlines()) + 1
    with local.open("a", encoding="utf-8") as fh:
        fh.write(PLT_ROW)
    output, row = _coverage(cfg, tmp_path / "out")
    where = f"mappings/concepts/local.csv:{n}"
    assert row["section"] == "unmapped" and row["suggestion"] == "platelets", row
    assert row["why"] == (
        f"only a verified=N row maps it ({where}): set verified to Y or local once checked, "
        "or use_unverified = true"
    )
    line = next(t for t in output.splitlines() if "|PLT" in t)
    assert line.rstrip().endswith(f"platelets (verified=N row {where})"), line


def test_coverage_shows_a_cut_system_as_cut(tmp_path: Path) -> None:
    """The terminal table cut a long `system|code` from the left without a mark ("ttp://..."):
    copied from there, the system was wrong."""
    cfg, _ = _project(tmp_path)
    output, row = _coverage(cfg, tmp_path / "out")
    assert row["system"] == LAB  # the whole system in coverage.csv
    line = next(t for t in output.splitlines() if "|PLT" in t)
    cell = line.split()[2]
    assert cell.startswith("…") and cell.endswith("/codes|PLT") and len(cell) == 48, line
    assert f",{LAB},PLT," in (tmp_path / "out" / "coverage.csv").read_text(encoding="utf-8-sig")


def _concept_rows(m: Path) -> list[dict[str, str]]:
    """The rows of the concept files a run reads (not verified=N), as the CSV has them."""
    rows: list[dict[str, str]] = []
    for path in sorted((m / "concepts").glob("*.csv")):
        text = path.read_text(encoding="utf-8-sig").splitlines()
        lines = [t for t in text if t.strip() and not t.lstrip().startswith("#")]
        rows += [r for r in csv.DictReader(lines) if r["verified"].strip() != "N"]
    return rows


def test_coverage_lists_unseen_rows_of_the_trials_concepts_only(tmp_path: Path) -> None:
    """The rows never seen in the data were listed for every concept of the mappings folder,
    also those the configured trial never reads (a second trial got 4256 rows in 80 concepts):
    only the concepts the trial's criteria file names are listed (its screening concepts
    too), and one line says how many rows of the others were left out."""
    cfg, m = _project(tmp_path)
    toml = (m / TRIAL).read_text(encoding="utf-8")

    def named(concept: str) -> bool:  # (every concept of a criteria file is a quoted string)
        return f'"{concept}"' in toml

    other = [r for r in _concept_rows(m) if not named(r["concept"].strip())]
    assert {"heart_failure", "cirrhosis"} <= {r["concept"].strip() for r in other}
    output, _ = _coverage(cfg, tmp_path / "out")
    with (tmp_path / "out" / "coverage.csv").open(encoding="utf-8-sig", newline="") as fh:
        unseen = [r for r in csv.DictReader(fh) if r["section"] == "mapped_never_seen"]
    assert unseen and all(named(r["suggestion"]) for r in unseen), {
        r["suggestion"] for r in unseen if not named(r["suggestion"])
    }
    assert "sle" in {r["suggestion"] for r in unseen}  # a screening concept's rows are listed
    concepts = len({r["concept"].strip() for r in other})
    assert (
        f"left out: {len(other)} mapped row(s) of {concepts} concept(s) the trial sirius-sle-2 "
        "does not read" in output.splitlines()
    )


def test_coverage_says_nothing_was_left_out_only_when_something_was(tmp_path: Path) -> None:
    """A mappings folder holding only the trial's concepts printed "left out: 0 mapped row(s)
    of 0 concept(s) the trial ... does not read" every time: a line with nothing to say."""
    cfg, m = _project(tmp_path)
    toml = (m / TRIAL).read_text(encoding="utf-8")
    for path in sorted((m / "concepts").glob("*.csv")):
        head, *lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [ln for ln in lines if ln.startswith("#") or f'"{ln.split(",")[0]}"' in toml]
        path.write_text(head + "".join(kept), encoding="utf-8")
    assert [r for r in _concept_rows(m) if f'"{r["concept"].strip()}"' not in toml] == []
    output, _ = _coverage(cfg, tmp_path / "out")
    assert "mapped rows never seen in the data:" in output
    assert [ln for ln in output.splitlines() if ln.startswith("left out:")] == []
