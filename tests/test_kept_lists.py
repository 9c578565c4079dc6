"""A failed night keeps the earlier run's lists in OUT: its run.json describes them (as-of date,
mapping version, when written; per site), and `cohort diff` and `cohort explain` go by that,
not by the run that failed (audit: diff showed the failed run's mapping version beside lists
another version wrote, explain judged as of today beside lists of another day)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from researcher_helpers import copy_mappings, csv_rows

from cohort.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SITE_X = ROOT / "tests" / "data" / "tools" / "site-x"
LOCAL = "2026.11-6-local"
# a rituximab administration for x-p001 the failed night reads into the store
RITUXIMAB = {
    "resourceType": "MedicationAdministration",
    "id": "x-p001-rtx",
    "status": "completed",
    "medicationCodeableConcept": {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "121191"}]
    },
    "subject": {"reference": "Patient/x-p001"},
    "effectiveDateTime": "2026-11-20",
}


@dataclass
class Night:
    cfg: Path
    out: Path
    before: Path  # a copy of OUT after the good run (2026-11-25)
    failed: Result  # the failed run (2026-11-26)


def _run(cfg: Path, out: Path, as_of: str) -> Result:
    args = ["--log-level", "error", "run", "--config", str(cfg), "--as-of", as_of]
    return CliRunner().invoke(cli, [*args, "--out", str(out)])


def _report(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return report


def failed_night(
    tmp_path: Path, sites: tuple[str, ...] = ("x",), *, edit: bool = True, read: bool = False
) -> Night:
    """A good run (shipped mappings, as of 2026-11-25; OUT copied to `before`), then a night
    whose last site's source folder is gone (exit 5, lists kept): with `edit` the mappings'
    VERSION says 2026.11-6-local by then, with `read` the first site's export holds a new
    record that night (read into the store before the next site failed)."""
    m = copy_mappings(tmp_path)
    for sid in sites:
        shutil.copytree(SITE_X, tmp_path / sid)
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        f'[trial]\nid = "sirius-sle-2"\nmappings = "{m}"\n'
        + "".join(f'[[sites]]\nid = "{s}"\nsource = "{tmp_path / s}"\n' for s in sites)
    )
    out = tmp_path / "out"
    assert _run(cfg, out, "2026-11-25").exit_code == 0
    before = tmp_path / "before"
    shutil.copytree(out, before)
    if edit:
        (m / "VERSION").write_text(LOCAL + "\n")
    if read:
        (tmp_path / sites[0] / "rtx.ndjson").write_text(json.dumps(RITUXIMAB) + "\n")
    (tmp_path / sites[-1]).rename(tmp_path / f"{sites[-1]}.away")
    failed = _run(cfg, out, "2026-11-26")
    assert failed.exit_code == 5, failed.output
    return Night(cfg, out, before, failed)


def test_a_failed_run_json_describes_the_lists_it_kept(tmp_path: Path) -> None:
    """It named the kept lists' trial and configuration only: not their as-of date, mapping
    version or when they were written, so nothing could tell whose the lists were."""
    night = failed_night(tmp_path)
    good, report = _report(night.before), _report(night.out)
    assert report["status"] == "failed" and report["previous_outputs_kept"] is True
    assert report["mapping_human_version"] == LOCAL  # (the failed run's own)
    kept = {
        "as_of": "2026-11-25",
        "mapping_version": good["mapping_version"],
        "mapping_human_version": good["mapping_human_version"],
        "written_at": good["finished"],
        "criteria_digest": good["criteria_digest"],
        "mappings_digest": good["mappings_digest"],
        "code_version": good["code_version"],
    }
    assert {k: report[f"outputs_{k}"] for k in kept} == kept
    assert report["outputs_sites"] == {"x": {**kept, "store_changed_since": False}}
    # a second failed night still describes them (not the first failed run)
    assert _run(night.cfg, night.out, "2026-11-27").exit_code == 5
    again = _report(night.out)
    assert again["as_of"] == "2026-11-27" and again["outputs_as_of"] == "2026-11-25"
    assert again["outputs_sites"] == report["outputs_sites"]


def test_diff_after_a_failed_night_shows_the_version_of_the_lists_kept(tmp_path: Path) -> None:
    """`cohort diff OLD OUT` printed the failed run's mapping version for B (2026.11-6-local)
    beside 0 changes, though B's lists were 2026.11-5's: a researcher checking a mapping edit
    was told it changed nothing."""
    night = failed_night(tmp_path)
    good, failed = _report(night.before), _report(night.out)
    result = CliRunner().invoke(cli, ["diff", str(night.before), str(night.out)])
    assert result.exit_code == 0, result.output
    stamp = f"{good['mapping_version']} ({good['mapping_human_version']}), as of 2026-11-25"
    lines = result.output.splitlines()
    assert lines[:3] == [
        f"A: {night.before}  mapping {stamp}",
        f"B: {night.out}  mapping {stamp}",
        f"  B: the last run (as of 2026-11-26, mapping {failed['mapping_version']} ({LOCAL}))"
        " failed: these lists are an earlier run's",
    ]
    assert LOCAL not in lines[1]


def test_explain_after_a_failed_night_judges_as_of_the_lists_kept(tmp_path: Path) -> None:
    """`cohort explain P --out OUT` after a failed night judged as of today ("tier likely")
    beside a candidates.csv of 2026-11-25 saying otherwise. It now takes the kept lists'
    date, and says in one line what may still differ from them (here: the mappings)."""
    night = failed_night(tmp_path)
    good = _report(night.before)
    tiers = {r["patient_id"]: r["tier"] for r in csv_rows(night.out / "x" / "candidates.csv")}
    args = ["explain", "x-p001", "--config", str(night.cfg), "--out", str(night.out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "patient x-p001 at site x, as of 2026-11-25 (the lists', from run.json: the last run,"
        f" as of 2026-11-26, failed and kept them): tier {tiers['x-p001']}"
    )
    assert lines[2] == (
        "note: this may not match candidates.csv: the mappings are not the lists' "
        f"({good['mapping_version']} ({good['mapping_human_version']}))"
    )
    assert "store" not in result.output.split("\n\n", 1)[0]  # no record was read that night
    # an explicit date is the reader's: no note
    result = CliRunner().invoke(cli, [*args, "--as-of", "2026-11-25"])
    assert not [ln for ln in result.output.splitlines() if ln.startswith("note:")]


def test_explain_says_when_a_failed_night_read_records_into_the_store(tmp_path: Path) -> None:
    """Site x's new records were read into the store before site y failed: explain reads the
    store as it is now, which the kept lists never saw; it says so rather than silently
    differing from candidates.csv."""
    night = failed_night(tmp_path, ("x", "y"), edit=False, read=True)
    tiers = {r["patient_id"]: r["tier"] for r in csv_rows(night.out / "x" / "candidates.csv")}
    report = _report(night.out)
    assert report["outputs_sites"]["x"]["store_changed_since"] is True
    assert report["outputs_sites"]["y"]["store_changed_since"] is False
    args = ["explain", "x-p001", "--config", str(night.cfg), "--out", str(night.out)]
    result = CliRunner().invoke(cli, [*args, "--site", "x"])
    assert result.exit_code == 0, result.output
    # (the rituximab record of 2026-11-20 excludes x-p001 now; the kept list predates it)
    assert tiers["x-p001"] == "possible" and ": tier excluded" in result.output.splitlines()[0]
    assert result.output.splitlines()[2] == (
        "note: this may not match candidates.csv: a run that failed since they were written"
        " read site x's records into the store"
    )
    result = CliRunner().invoke(cli, [*args, "--site", "y"])
    assert not [ln for ln in result.output.splitlines() if ln.startswith("note:")]
    # a second failed night (nothing read) still says so: the store still differs
    assert _run(night.cfg, night.out, "2026-11-27").exit_code == 5
    assert _report(night.out)["outputs_sites"]["x"]["store_changed_since"] is True


def test_the_store_watch_tells_a_read_that_wrote_from_one_that_did_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read that failed has no counts in run.json: whether it wrote anything is told by
    the store itself (a source folder gone writes nothing: no note for it). The store's path
    may be relative (OUT/.cohort/store.sqlite with a relative --out)."""
    from cohort.report.kept import StoreWatch
    from cohort.store import Store

    monkeypatch.chdir(tmp_path)
    path = Path("out") / ".cohort" / "store.sqlite"
    for writes, expected in ((False, set()), (True, {"y"})):
        watch = StoreWatch()
        with Store(path) as store, watch.on(path):
            watch.reading("x")
            store.set_mark("x", "k", "v")  # (x's read completed: its counts say what it did)
            watch.reading("y")
            if writes:
                store.set_mark("y", "k", "v")
        assert watch.changed({"x": {"stored": {"inserted": 0, "updated": 0}}}) == expected
    assert sorted(p.name for p in path.parent.iterdir()) == ["store.sqlite"]  # (no WAL left)
