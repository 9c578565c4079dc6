"""Operational failure modes of file sources in the nightly run: an export read while it is
still being written, damaged or mislabelled files, links, a moved source folder, odd dates.

Each test's docstring says what went wrong before. The rule they hold the run to: bad input is
located and reported, and never makes a snapshot read drop records it merely could not read.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_reliability_support import REPO, write_config


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31"])
def test_an_as_of_date_at_the_calendar_ends_is_a_usage_error(tmp_path: Path, as_of: str) -> None:
    """`--as-of 0001-01-01` (or 9999-12-31) crashed the evaluation with an OverflowError
    traceback (exit 1, "internal error" in run.json). Now it is a usage error (exit 2) before
    anything runs, and the outputs are left alone."""
    config = write_config(tmp_path, {"amr": str(REPO / "sample_bundles" / "amr")})
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "cohort", "run", "--config", str(config), "--as-of", as_of,
         "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr[-1500:]
    assert "Traceback" not in res.stderr and as_of in res.stderr
    assert not out.exists()
