"""`cohort diff` and `cohort explain` after a researcher's edit: what changed, and why."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from click.testing import CliRunner
from researcher_helpers import TRIAL, copy_mappings, run_uci

from cohort.cli import cli
from cohort.criteria.base import Criterion
from cohort.tools.diff import diff_site


def _candidates(
    path: Path, criteria: list[str], rows: list[list[str]], confirm: tuple[str, ...] = ()
) -> None:
    path.mkdir(parents=True)
    head = ["rank", "patient_id", "tier", "score", "eligible_from", "reasons", *criteria]
    with (path / "candidates.csv").open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*head, "change", "to_confirm"])
        for i, r in enumerate(rows):
            w.writerow([*r, "", confirm[i] if i < len(confirm) else ""])


def test_diff_names_criteria_taken_out_and_changed_eligible_from(tmp_path: Path) -> None:
    """With a criterion commented out (or added) `cohort diff` showed the tier changes with "0
    criterion cell change(s)", nothing saying why; a changed washout window moved eligible_from
    and the diff showed nothing at all."""
    from cohort.tools.diff import NONE

    a, b = tmp_path / "a", tmp_path / "b"
    _candidates(
        a / "s",
        ["weight", "washout"],
        [
            ["1", "p1", "excluded", "1", "", "", "fail", "pass"],
            ["2", "p2", "excluded", "1", "2026-12-23", "", "pass", "fail"],
            ["3", "p3", "likely", "2", "", "", "pass", "pass"],
        ],
    )
    _candidates(
        b / "s",
        ["washout", "sledai"],
        [
            ["1", "p1", "likely", "1", "", "", "pass", "pass"],
            ["2", "p2", "excluded", "1", "2026-12-30", "", "fail", "unknown"],
            ["3", "p3", "likely", "2", "", "", "pass", "pass"],
        ],
    )
    d = diff_site("s", a, b)
    assert d.criteria_removed == ["weight"] and d.criteria_added == ["sledai"]
    assert d.dates == [("p2", "2026-12-23", "2026-12-30")]
    assert ("p1", "weight", "fail", NONE) in d.cells and (
        "p2",
        "sledai",
        NONE,
        "unknown",
    ) in d.cells
    assert not [c for c in d.cells if c[0] == "p3"]
    result = CliRunner().invoke(cli, ["diff", str(a), str(b)])
    assert "criteria only in A (not in B's trial): weight" in result.output
    assert "criteria only in B (new in B's trial): sledai" in result.output
    assert "1 eligible_from change(s)" in result.output


def test_explain_shows_manual_when_unknown_in_the_rule() -> None:
    """Turning `manual_when_unknown` on or off did not show in `cohort explain`'s rule line."""
    from cohort.config import SiteConfig
    from cohort.tools.explain import rule_summary

    crit = Criterion("w", "lab_latest", "inclusion", "t", {"concepts": ["x"]}, True)
    assert rule_summary(crit, SiteConfig("s", "s", "x")).endswith(", manual_when_unknown=true")


def test_diff_shows_a_criterion_made_manual(tmp_path: Path) -> None:
    """`manual_when_unknown = true` on a criterion moved patients from possible to likely and
    the diff showed the tier change alone (the cell stays `unknown`): now the item that joined
    `to_confirm` is shown."""
    a, b = tmp_path / "a", tmp_path / "b"
    row = ["1", "p1", "possible", "1", "", "weight: no body_weight", "unknown"]
    _candidates(a / "s", ["weight"], [row], ("consent",))
    _candidates(b / "s", ["weight"], [[*row[:2], "likely", *row[3:]]], ("Body weight; consent",))
    d = diff_site("s", a, b)
    assert d.confirm == [("p1", "-", "Body weight")] and d.cells == []
    result = CliRunner().invoke(cli, ["diff", str(a), str(b)])
    assert "1 to_confirm change(s)" in result.output


def test_explain_rule_writes_booleans_as_the_trial_file_does() -> None:
    """explain printed `systemic_only=True` beside `manual_when_unknown=true` (found by review)."""
    from cohort.config import SiteConfig
    from cohort.criteria.base import Criterion
    from cohort.tools.explain import rule_summary

    crit = Criterion("w", "washout", "exclusion", "t", {"concepts": ["x"], "systemic_only": True})
    assert rule_summary(crit, SiteConfig("s", "s", "x")) == "washout: concepts=[x], systemic_only=true"


def test_diff_says_when_the_criteria_or_the_mappings_changed(tmp_path: Path) -> None:
    """`cohort diff` gave each folder's mapping version, one hash over the criteria and the
    mapping files together: a researcher could not tell which of the two an edit was in."""
    m = copy_mappings(tmp_path)

    def run(name: str) -> Path:
        code, output = run_uci(tmp_path, m, name)
        assert code == 0, output
        return tmp_path / name

    def diff(a: Path, b: Path) -> list[str]:
        result = CliRunner().invoke(cli, ["diff", str(a), str(b)])
        assert result.exit_code == 0, result.output
        return result.output.splitlines()

    first = run("first")
    report = json.loads((first / "run.json").read_text())
    trial_bytes = (m / TRIAL).read_bytes()
    assert report["criteria_digest"] == "sha256:" + hashlib.sha256(trial_bytes).hexdigest()
    assert report["mappings_digest"].startswith("sha256:")
    same = diff(first, first)
    assert not [ln for ln in same if "changed between the runs" in ln]

    (m / TRIAL).write_text(
        (m / TRIAL).read_text().replace("fail_below = 25", "fail_below = 50", 1)
    )
    criteria = run("criteria")
    lines = diff(first, criteria)
    assert lines[2] == "criteria changed between the runs", lines
    assert "mappings changed between the runs" not in lines

    with (m / "concepts" / "labs.csv").open("a") as fh:
        fh.write("ana_titer,http://loinc.org,33800-4,exact,,Nuclear Ab [Titer],test,Y,\n")
    mappings = run("mappings")
    lines = diff(criteria, mappings)
    assert lines[2] == "mappings changed between the runs", lines
    assert "criteria changed between the runs" not in lines
    both = diff(first, mappings)
    assert both[2:4] == ["criteria changed between the runs", "mappings changed between the runs"]
    # a VERSION bump alone is neither
    (m / "VERSION").write_text("2099.1\n")
    bumped = run("bumped")
    assert not [ln for ln in diff(mappings, bumped) if "changed between the runs" in ln]
