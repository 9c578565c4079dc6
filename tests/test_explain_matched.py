"""`cohort explain` names the mapping row each evidence row was matched through."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from researcher_helpers import copy_mappings, csv_rows, run_uci, site_config

from cohort.cli import cli

MATCHED = re.compile(r"^    matched: (.+)$")
ONE = re.compile(r"^(?P<system>[^|]+)\|(?P<code>.+) \((?P<file>.+):(?P<line>\d+)\)$")


def _explain(tmp_path: Path, m: Path, pid: str) -> list[str]:
    cfg = site_config(tmp_path, m)
    args = ["explain", pid, "--config", str(cfg), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, [*args, "--as-of", "2026-11-25"])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def _line_of(file: str, n: int) -> list[str]:
    text = Path(file).read_text(encoding="utf-8-sig").splitlines()
    return text[n - 1].split(",")


def test_explain_names_the_mapping_row_each_evidence_row_matched(tmp_path: Path) -> None:
    m = copy_mappings(tmp_path)
    code, output = run_uci(tmp_path, m)
    assert code == 0, output
    rows = csv_rows(tmp_path / "out" / "uci" / "candidates.csv")
    checked = 0
    files: set[str] = set()
    for row in rows[:3]:
        lines = _explain(tmp_path, m, row["patient_id"])
        for i, line in enumerate(lines):
            found = MATCHED.match(line)
            if not found:
                continue
            # under an evidence line of a concept: that concept's row, at the line named
            evidence = lines[i - 1].strip().split("  ")
            assert evidence[0].startswith(("used: ", "ignored: ")), lines[i - 1]
            concept = evidence[1]
            for each in found.group(1).split("; "):
                one = ONE.match(each)
                assert one, each
                cells = _line_of(one["file"], int(one["line"]))
                assert one["code"] in cells, (each, cells)
                if Path(one["file"]).name == "products.csv":
                    # a product's concept: that of its ingredient's rows (rxcui, ingredient, ...)
                    assert cells[0] == one["code"], (each, cells)
                    meds = (m / "concepts" / "medications.csv").read_text(encoding="utf-8")
                    assert f"{concept},{cells[1]}," in meds, (each, cells)
                else:
                    assert cells[0] == concept, (each, cells)
                files.add(Path(one["file"]).name)
                checked += 1
    assert checked >= 5
    assert Path(one["file"]).is_relative_to(m)  # the configuration's copy, not the shipped one
    assert {"conditions.csv", "labs.csv"} <= files
