"""A researcher's retuning of the criteria file's parameters: a mistaken value is refused by
`cohort mappings check` and `cohort run` (exit 4) at its file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from researcher_helpers import TRIAL, check_all, copy_mappings, edit, run_uci

# (case, old text, new text, marker of the line named, message after "FILE:LINE: ")
COUNT_MISTAKES = [
    (
        "a negative number of A grades",
        "min_a = 1",
        "min_a = -1",
        "min_a",
        "criterion 'bilag': key 'min_a': -1 is negative",
    ),
    (
        "a negative number of B grades",
        "min_b = 2",
        "min_b = -2",
        "min_b",
        "criterion 'bilag': key 'min_b': -2 is negative",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "marker", "message"),
    [c[1:] for c in COUNT_MISTAKES],
    ids=[c[0] for c in COUNT_MISTAKES],
)
def test_a_negative_grade_count_is_refused_at_its_key(
    old: str, new: str, marker: str, message: str, tmp_path: Path
) -> None:
    """`min_a = -1` (a sign typed by mistake) was accepted without an error: every patient with
    a readable BILAG grade has at least -1 A grades, so `bilag` passed for all of them; the
    other counts and limits (`min_years`, `min_titer`, `max_daily_mg`) were refused already."""
    m = copy_mappings(tmp_path)
    line = edit(m / TRIAL, old, new, marker)
    expected = f"{m / TRIAL}:{line}: {message}"
    code, lines = check_all(m)
    assert code == 4 and f"error: {expected}" in lines, "\n".join(lines)
    code, output = run_uci(tmp_path, m)
    assert code == 4, output
    assert output.splitlines() == [f"cohort: error: {expected}"]
