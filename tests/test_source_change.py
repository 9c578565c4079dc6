"""Two runs into one store or one OUT with a changed configuration: a site's source moved to
another folder, and `cohort diff` of a folder holding a site the last run did not screen."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_reliability_support import AS_OF, copy_site, write_config

from cohort.cli import cli
from cohort.config import load_config
from cohort.errors import SourceError
from cohort.runner import run

DAY = date.fromisoformat(AS_OF)


def _stored(out: Path, rtype: str) -> int:
    with sqlite3.connect(out / ".cohort" / "store.sqlite") as db:
        sql = "SELECT COUNT(*) FROM resources WHERE type=?"
        return int(db.execute(sql, (rtype,)).fetchone()[0])


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_a_source_moved_to_a_smaller_folder_names_both_paths(tmp_path: Path) -> None:
    """The guard said "<B> lacks 1144 of the 1759 Patient records read from it before": they
    were read from A, the folder the site named until this run. It names both now, and the
    way on; nothing is removed until the removal is accepted."""
    a = copy_site("amr", tmp_path / "a")
    out = tmp_path / "out"
    run(load_config(write_config(tmp_path, {"amr": str(a)})), DAY, out)
    patients = _stored(out, "Patient")
    b = copy_site("amr", tmp_path / "b")
    kept = _lines(b / "Patient.ndjson")[: patients // 4]
    (b / "Patient.ndjson").write_bytes(b"".join(kept))
    with pytest.raises(SourceError) as err:
        run(load_config(write_config(tmp_path, {"amr": str(b)})), DAY, out)
    said = str(err.value)
    lost = patients - len(kept)
    assert said.startswith(f"site amr: its source changed from {a} to {b} since the last")
    assert f"the store holds {patients} Patient records read from {a}" in said
    assert f"{b} lacks {lost} of them" in said
    assert "read from it before" not in said
    assert "max_snapshot_removal" in said and "store" in said.split("):", 1)[1]
    assert _stored(out, "Patient") == patients  # nothing removed
    # the way forward the message gives: accept the removal for one run
    accept = write_config(tmp_path, {"amr": str(b)}, run={"max_snapshot_removal": 1})
    report = run(load_config(accept), DAY, out)
    assert report["status"] == "success"
    assert _stored(out, "Patient") == len(kept)
    # B is the site's source now: a B emptied later is B's own loss, said as before
    (b / "Patient.ndjson").unlink()  # (an empty file is not read whole)
    with pytest.raises(SourceError, match="read from it before"):
        run(load_config(write_config(tmp_path, {"amr": str(b)})), DAY, out)


def test_a_dated_export_folder_of_the_same_population_is_read_without_a_word(
    tmp_path: Path,
) -> None:
    """export-2026-11-28 -> export-2026-11-29: the next night's complete export of the same
    patients drops what it lacks (a record deleted), as a snapshot read of one folder does."""
    first = copy_site("amr", tmp_path / "export-2026-11-28")
    out = tmp_path / "out"
    run(load_config(write_config(tmp_path, {"amr": str(first)})), DAY, out)
    patients = _stored(out, "Patient")
    conditions = _stored(out, "Condition")
    second = copy_site("amr", tmp_path / "export-2026-11-29")
    lines = _lines(second / "Condition.ndjson")
    (second / "Condition.ndjson").write_bytes(b"".join(lines[1:]))
    report = run(load_config(write_config(tmp_path, {"amr": str(second)})), DAY, out)
    assert report["status"] == "success"
    assert report["sites"]["amr"]["stored"]["removed"] == 1
    assert _stored(out, "Patient") == patients and _stored(out, "Condition") == conditions - 1


def test_a_source_moved_to_another_population_of_the_same_size_is_refused(
    tmp_path: Path,
) -> None:
    """The guard let a type through unchecked when the export held as many of its records as
    the last complete read (mappings changed, not records lost), even when that read was of
    another folder: a site pointed at another population's export of the same size (another
    site's folder) dropped every patient it had, exit 0. Those counts now stand only for the
    folder they were read from."""
    a = copy_site("amr", tmp_path / "a")
    out = tmp_path / "out"
    run(load_config(write_config(tmp_path, {"amr": str(a)})), DAY, out)
    patients = _stored(out, "Patient")
    b = tmp_path / "b"
    b.mkdir()
    for path in a.iterdir():  # the same records of other patients: ids not ours
        if path.suffix == ".gz":
            data = gzip.decompress(path.read_bytes()).replace(b"amr-p", b"oth-p")
            (b / path.name).write_bytes(gzip.compress(data))
        else:
            (b / path.name).write_bytes(path.read_bytes().replace(b"amr-p", b"oth-p"))
    with pytest.raises(SourceError) as err:
        run(load_config(write_config(tmp_path, {"amr": str(b)})), DAY, out)
    assert f"its source changed from {a} to {b}" in str(err.value)
    assert f"{b} lacks {patients} of them" in str(err.value)
    with sqlite3.connect(out / ".cohort" / "store.sqlite") as db:  # none of A's removed
        sql = "SELECT COUNT(*) FROM resources WHERE type='Patient' AND id LIKE 'amr-p%'"
        assert db.execute(sql).fetchone()[0] == patients
    # the refused read stored B's records: pointed back at A, unchanged, the site is A's again
    # (A's files were "unchanged since its last complete read", so B's records stayed)
    report = run(load_config(write_config(tmp_path, {"amr": str(a)})), DAY, out)
    assert report["status"] == "success"
    assert report["sites"]["amr"]["stored"]["removed"] == patients
    assert _stored(out, "Patient") == patients


def test_the_cli_exits_5_naming_the_old_and_new_source(tmp_path: Path) -> None:
    a = copy_site("amr", tmp_path / "a")
    out = tmp_path / "out"
    args = ["--log-level", "error", "run", "--as-of", AS_OF, "--out", str(out), "--config"]
    first = CliRunner().invoke(cli, [*args, str(write_config(tmp_path, {"amr": str(a)}))])
    assert first.exit_code == 0, first.output
    b = tmp_path / "b"
    b.mkdir()
    shutil.copy(a / "Patient.ndjson", b / "Patient.ndjson")
    (b / "Patient.ndjson").write_bytes(b"".join(_lines(a / "Patient.ndjson")[:3]))
    second = CliRunner().invoke(cli, [*args, str(write_config(tmp_path, {"amr": str(b)}))])
    assert second.exit_code == 5, second.output
    assert f"its source changed from {a} to {b}" in second.output
    report = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed" and f"changed from {a} to {b}" in report["error"]


def _diff(a: Path, b: Path) -> list[str]:
    result = CliRunner().invoke(cli, ["diff", str(a), str(b)])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_diff_does_not_compare_a_site_folder_left_over_from_an_earlier_run(
    tmp_path: Path,
) -> None:
    """`cohort diff out1 o_diff`, o_diff a copy of out1 into which a run of one site (uci)
    was made: amr's folder there is out1's, not the second run's (its run.json lists uci
    only), yet diff compared it as B's ("site amr: 0 added, ...")."""
    uci, amr = copy_site("uci", tmp_path / "src"), copy_site("amr", tmp_path / "src")
    store = tmp_path / "store.sqlite"
    both = write_config(tmp_path, {"uci": str(uci), "amr": str(amr)}, store=store)
    out1 = tmp_path / "out1"
    run(load_config(both), DAY, out1)
    shutil.copytree(out1, tmp_path / "o_diff")
    o_diff = tmp_path / "o_diff"
    one = write_config(tmp_path, {"uci": str(uci)}, store=store)
    run(load_config(one), DAY, o_diff)
    assert sorted(json.loads((o_diff / "run.json").read_text())["sites"]) == ["uci"]
    lines = _diff(out1, o_diff)
    amr_lines = [ln for ln in lines if ln.startswith("site amr")]
    assert amr_lines == [
        "site amr: in B left over from an earlier run (not in B's run.json): not compared"
    ], lines
    assert [ln for ln in lines if ln.startswith("site uci: ")] == [
        "site uci: 0 added, 0 removed, 0 tier change(s), 0 criterion cell change(s),"
        " 0 eligible_from change(s), 0 to_confirm change(s)"
    ]
    # the other way round: A's folder is the left-over one
    back = [ln for ln in _diff(o_diff, out1) if ln.startswith("site amr")]
    assert back == [
        "site amr: in A left over from an earlier run (not in A's run.json): not compared"
    ]
    # a folder without run.json cannot say: compared as before
    (o_diff / "run.json").unlink()
    plain = [ln for ln in _diff(out1, o_diff) if ln.startswith("site amr")]
    assert plain and plain[0].startswith("site amr: 0 added")
