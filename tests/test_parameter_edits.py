"""A researcher's retuning of the criteria file: a criterion switched off (its block commented
out or deleted) leaves `cohort mappings check` and `cohort run` working; a misspelt concept is
still refused (mistaken values: test_researcher_criteria.TRIAL_MISTAKES)."""

from __future__ import annotations

from pathlib import Path

import pytest
from researcher_helpers import TRIAL, check_all, copy_mappings, edit, run_uci


def _without_block(text: str, crit: str, comment: bool) -> str:
    """The criteria file with the `[[criteria]]` block of `crit` deleted or commented out."""
    at = text.index(f'id = "{crit}"')
    start = text.rindex("[[criteria]]", 0, at)
    end = text.find("[[criteria]]", at)
    block = text[start:end]
    kept = "".join(f"# {ln}" for ln in block.splitlines(keepends=True)) if comment else ""
    return text[:start] + kept + text[end:]


@pytest.mark.parametrize("comment", [True, False], ids=["commented out", "deleted"])
def test_switching_off_a_criterion_is_no_misspelt_concept(comment: bool, tmp_path: Path) -> None:
    """docs/criteria-kinds.md: to switch a criterion off, comment its block out (or delete
    it): its column leaves candidates.csv. Switching `hbv` off stopped `check` and `run` (exit
    4): its concept `chronic_hbv`, now named by no criterion, was taken for a typo of
    `chronic_hcv` ("its rows reach no criterion")."""
    m = copy_mappings(tmp_path)
    trial = m / TRIAL
    trial.write_text(_without_block(trial.read_text(), "hbv", comment), encoding="utf-8")
    code, lines = check_all(m)
    assert code == 0, "\n".join(lines)
    assert not [ln for ln in lines if "chronic_hbv" in ln]
    code, output = run_uci(tmp_path, m)
    assert code == 0, output
    header = (tmp_path / "out" / "uci" / "candidates.csv").read_text(encoding="utf-8-sig")
    columns = header.splitlines()[0].split(",")
    assert "hbv" not in columns and "hcv" in columns


def test_a_misspelt_concept_row_is_still_refused(tmp_path: Path) -> None:
    """A concept row a typo away from a concept the criteria name, with no label and named in
    no comment of a criteria file, is still the error it was (its rows reach no criterion)."""
    m = copy_mappings(tmp_path)
    line = edit(
        m / "concepts" / "labs.csv",
        "platelets,http://loinc.org,777-3,",
        "platelts,http://loinc.org,777-3,",
        "platelts",
    )
    code, lines = check_all(m)
    assert code == 4
    assert (
        f"error: {m / 'concepts' / 'labs.csv'}:{line}: column 'concept': no criteria file names "
        "concept 'platelts' (did you mean 'platelets'?): its rows reach no criterion"
    ) in lines
