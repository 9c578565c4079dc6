"""Operational failure modes of file sources in the nightly run: an export read while it is
still being written, damaged or mislabelled files, links, a moved source folder, odd dates.

Each test's docstring says what went wrong before. The rule they hold the run to: bad input is
located and reported, and never makes a snapshot read drop records it merely could not read.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_reliability_support import AS_OF, REPO, copy_site, write_config

from cohort.config import load_config
from cohort.runner import run

DAY = date.fromisoformat(AS_OF)


def _run(config: Path, out: Path, site: str = "amr", **kw: Any) -> dict[str, Any]:
    report = run(load_config(config), DAY, out, **kw)
    return {**report["sites"][site], "warnings": report["warnings"]}


def _stored(out: Path, rtype: str) -> int:
    with sqlite3.connect(out / ".cohort" / "store.sqlite") as db:
        sql = "SELECT COUNT(*) FROM resources WHERE type=?"
        return int(db.execute(sql, (rtype,)).fetchone()[0])


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


def test_a_moved_source_folder_drops_what_the_new_export_lacks(tmp_path: Path) -> None:
    """A site's source path changed (the export moved to another folder): records and census
    of the old path were never swept again, so a record deleted from the export stayed in the
    store for good, and the old path's census of summarised records stayed current beside the
    new one (its codes counted twice, its dates still dating `last_seen`). Now a snapshot read
    is all the site's data, whichever path it came from."""
    src = copy_site("amr", tmp_path / "old")
    unmapped = {
        "resourceType": "Observation",
        "id": "unmapped-1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "99999-9"}]},
        "subject": {"reference": "Patient/amr-p0001"},
        "effectiveDateTime": "2026-11-20",
    }
    (src / "Extra.ndjson").write_bytes(orjson.dumps(unmapped) + b"\n")
    config = write_config(tmp_path, {"amr": str(src)})
    out = tmp_path / "out"
    _run(config, out)
    moved = tmp_path / "new"
    shutil.copytree(src, moved)
    config = write_config(tmp_path, {"amr": str(moved)})
    assert _run(config, out)["stored"]["inserted"] == 0  # the same export: nothing new
    (moved / "Procedure.ndjson").write_bytes(b"")
    (moved / "Extra.ndjson").unlink()
    report = _run(config, out)
    assert report["stored"]["removed"] == 1 and _stored(out, "Procedure") == 0
    with sqlite3.connect(out / ".cohort" / "store.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM census").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM side_dates").fetchone()[0] == 0
        keys = {k for (k,) in db.execute("SELECT key FROM marks")}
    assert not [k for k in keys if str(src) in k]
