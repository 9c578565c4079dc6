"""The first night after an upgrade of cohort (docs/operations.md "Upgrading cohort").

An upgrade is another version of cohort's code over the old store and the old OUT. It is
reproduced here without old commits: `cohort.codeversion.code_digest` answers another digest
(what a changed tree hashes to), and the lists or run.json an earlier cohort left are written
as it left them (no `code_version`, a criterion cell its rules read otherwise). Found by an
upgrade differential (78a8541 night 1 -> main night 2 against a fresh run of main): the
outputs and store matched the fresh run's, but `change` and "changes since the last run" gave
13 of 200 Synthea-backed patients as `criteria changed` with nothing in their charts changed,
and nothing said the lists compared with were another version's.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner
from fhir_fakes import BASE, SLE, TOKENS, BulkFake, population
from test_reliability_support import write_config

import cohort.codeversion as codeversion
from cohort.cli import cli
from cohort.config import load_config
from cohort.errors import SourceError
from cohort.runner import run
from cohort.samples import generate
from cohort.source.fhir import ServerSettings, pull
from cohort.source.fhir.client import FhirClient
from cohort.store import Store
from cohort.tools.changes import upgrade_warnings

D1, D2 = date(2026, 11, 25), date(2026, 11, 26)
UPGRADE = "were written by another version of cohort"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("upgrade") / "site"
    generate(folder, patients=40, seed=5, as_of=D1, site="t", fmt="ndjson")
    return folder


def _config(generated: Path, tmp_path: Path) -> Path:
    site = tmp_path / "site"
    shutil.copytree(generated, site)
    return write_config(tmp_path, {"t": str(site)})


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / "run.json").read_text(encoding="utf-8"))


def _rows(out: Path) -> tuple[list[str], list[dict[str, str]]]:
    with (out / "t" / "candidates.csv").open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _as_an_earlier_cohort_left_it(out: Path, flip: bool = True) -> tuple[str, str, str]:
    """run.json without `code_version` (no cohort before this one wrote it) and, with `flip`,
    one patient's first `pass` cell read otherwise, as earlier rules could have read it:
    (patient, criterion, the cell now)."""
    report = _report(out)
    report.pop("code_version")
    (out / "run.json").write_text(json.dumps(report), encoding="utf-8")
    head, body = _rows(out)
    criteria = head[head.index("reasons") + 1 : head.index("change")]
    row = next(r for r in body if r["tier"] == "excluded")
    crit = next(c for c in criteria if row[c] == "pass")
    if flip:
        row[crit] = "unknown"
        with (out / "t" / "candidates.csv").open("w", encoding="utf-8-sig", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=head)
            w.writeheader()
            w.writerows(body)
    return row["patient_id"], crit, "pass"


def _upgrade(monkeypatch: pytest.MonkeyPatch) -> None:
    """cohort's code as another version of it hashes."""
    monkeypatch.setattr(codeversion, "code_digest", lambda: "ab" * 32)


def test_run_json_names_the_code_version(generated: Path, tmp_path: Path) -> None:
    run(load_config(_config(generated, tmp_path)), D1, tmp_path / "out")
    version = _report(tmp_path / "out")["code_version"]
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", version)
    assert version == "sha256:" + codeversion.code_digest()[:12]


def test_the_first_night_after_an_upgrade_reads_again_and_says_the_lists_are_another_version(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(_config(generated, tmp_path))
    out = tmp_path / "out"
    run(cfg, D1, out)
    before = _report(out)["code_version"]
    _upgrade(monkeypatch)
    report = run(cfg, D2, out)
    # the file source is read again (its stamp holds the code's digest), not taken as unchanged
    assert "files_unchanged" not in report["sites"]["t"]
    assert report["code_version"] == "sha256:" + "ab" * 6
    said = [w for w in report["warnings"] if UPGRADE in w]
    assert said == [
        f"the lists in {out} of site t {UPGRADE} (code {before}; this run's sha256:abababababab): "
        "the `change` column and summary.html's changes since the last run "
        "include what the upgrade changed, not only the records"
    ]
    page = (out / "t" / "summary.html").read_text(encoding="utf-8")
    assert 'id="cohort-changed"' in page
    # the night after, the same code again: nothing said
    again = run(cfg, date(2026, 11, 27), out)
    assert not [w for w in again["warnings"] if UPGRADE in w]
    assert 'id="cohort-changed"' not in (out / "t" / "summary.html").read_text(encoding="utf-8")


def test_lists_of_a_cohort_before_code_versions_count_as_another_version(
    generated: Path, tmp_path: Path
) -> None:
    cfg = load_config(_config(generated, tmp_path))
    out = tmp_path / "out"
    run(cfg, D1, out)
    pid, crit, now = _as_an_earlier_cohort_left_it(out)
    report = run(cfg, D1, out)
    # the cell the earlier rules read otherwise is still named: it did change in the lists
    rows = {r["patient_id"]: r for r in _rows(out)[1]}
    assert rows[pid][crit] == now
    assert rows[pid]["change"] == f"criteria changed: {crit}"
    assert report["sites"]["t"]["changes"]["criteria_changed"] == 1
    said = [w for w in report["warnings"] if UPGRADE in w]
    assert said == [
        f"the lists in {out} of site t {UPGRADE} (an earlier one, which did not record its code): "
        "the `change` column and summary.html's changes since the last run "
        "include what the upgrade changed, not only the records"
    ]
    page = (out / "t" / "summary.html").read_text(encoding="utf-8")
    assert re.search(r'<p id="cohort-changed"[^>]*>[^<]*another version of cohort', page)


def test_lists_no_run_json_describes_are_not_called_another_version(
    generated: Path, tmp_path: Path
) -> None:
    """Without run.json (an exit 11) whose the lists are is unknown: no claim either way."""
    cfg = load_config(_config(generated, tmp_path))
    out = tmp_path / "out"
    run(cfg, D1, out)
    (out / "run.json").unlink()
    report = run(cfg, D2, out)
    assert not [w for w in report["warnings"] if UPGRADE in w]
    assert 'id="cohort-changed"' not in (out / "t" / "summary.html").read_text(encoding="utf-8")


def test_a_failed_run_keeps_the_code_version_of_the_lists_it_keeps(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(_config(generated, tmp_path))
    out = tmp_path / "out"
    run(cfg, D1, out)
    before = _report(out)["code_version"]
    shutil.rmtree(tmp_path / "site")
    _upgrade(monkeypatch)
    with pytest.raises(SourceError):
        run(cfg, D2, out)
    failed = _report(out)
    assert failed["status"] == "failed" and failed["code_version"] == "sha256:" + "ab" * 6
    assert failed["outputs_code_version"] == before
    assert failed["outputs_sites"]["t"]["code_version"] == before


def test_diff_and_explain_say_the_lists_are_another_cohort_s(
    generated: Path, tmp_path: Path
) -> None:
    cfg_path = _config(generated, tmp_path)
    cfg = load_config(cfg_path)
    out, older = tmp_path / "out", tmp_path / "older"
    run(cfg, D1, out)
    shutil.copytree(out, older)
    report = _report(older)
    report["code_version"] = "sha256:0123456789ab"
    (older / "run.json").write_text(json.dumps(report), encoding="utf-8")
    runner = CliRunner()
    said = runner.invoke(cli, ["diff", str(older), str(out)])
    assert said.exit_code == 0, said.output
    assert "cohort changed between the runs (code sha256:0123456789ab -> " in said.output
    same = runner.invoke(cli, ["diff", str(out), str(out)])
    assert "cohort changed" not in same.output
    # lists an earlier cohort wrote (no code_version; the copy kept before an upgrade)
    report.pop("code_version")
    (older / "run.json").write_text(json.dumps(report), encoding="utf-8")
    said = runner.invoke(cli, ["diff", str(older), str(out)])
    now = _report(out)["code_version"]
    assert f"cohort changed between the runs (code not recorded: an earlier cohort -> {now})" in (
        said.output
    )
    # no run.json at all: whose the lists are is unknown, nothing said
    (older / "run.json").unlink()
    assert "cohort changed" not in runner.invoke(cli, ["diff", str(older), str(out)]).output
    (older / "run.json").write_text(json.dumps({**report, "code_version": "sha256:0123456789ab"}))
    pid = _rows(out)[1][0]["patient_id"]
    args = ["explain", pid, "--config", str(cfg_path), "--out", str(older)]
    told = runner.invoke(cli, args)
    assert told.exit_code == 0, told.output
    note = [line for line in told.output.splitlines() if line.startswith("note:")]
    assert note == [
        "note: this may not match candidates.csv: cohort's code is not the lists' "
        "(sha256:0123456789ab)"
    ]
    args[-1] = str(out)
    assert "note:" not in runner.invoke(cli, args).output


@pytest.mark.parametrize("bulk", [False, True], ids=["search", "bulk"])
def test_a_server_pull_after_an_upgrade_goes_on_from_its_marks(
    tmp_path: Path, bulk: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marks hold what was asked (types, mapped codes), not cohort's code: an upgrade
    alone pulls incrementally (a file source, whose stamp holds the code, is read again)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = BulkFake(rsps)
        population(fake)
        with Store(tmp_path / "store.db") as store:
            _pull(store, bulk, tmp_path)
            _upgrade(monkeypatch)
            fake.clock = "2026-11-26T10:00:00Z"
            fake.log.clear()
            rep = _pull(store, bulk, tmp_path)
    assert rep.incremental is True
    assert not [w for w in rep.warnings if "full" in w]
    if bulk:  # the export asks for what changed since the mark
        kickoffs = [q for q in fake.log if q.startswith("Patient/$export")]
        assert kickoffs and all("_since" in q for q in kickoffs)
    else:  # every search of a type asks for what changed since its mark
        searches = [q for q in fake.log if q.split("?")[0] in ("Condition", "Observation")]
        assert searches and all("_lastUpdated" in q for q in searches)


def _pull(store: Store, bulk: bool, tmp_path: Path) -> Any:
    s = ServerSettings.from_dict(
        {"base_url": BASE, "max_retries": 1, "bulk": bulk, "spool_dir": str(tmp_path / "spool")},
        "sites[0].server",
    )
    client = FhirClient(s, sleep=lambda _: None)
    return pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=client)


def test_one_warning_names_every_site_whose_lists_one_other_cohort_wrote(tmp_path: Path) -> None:
    by_site = {"uci": "code sha256:0123456789ab", "amr": "code sha256:0123456789ab", "x": ""}
    by_site["y"] = "an earlier one, which did not record its code"
    said = upgrade_warnings(tmp_path, by_site)
    assert [w.split(" were written")[0] for w in said] == [
        f"the lists in {tmp_path} of sites uci, amr",
        f"the lists in {tmp_path} of site y",
    ]
    assert "(code sha256:0123456789ab)" in said[0]
    assert upgrade_warnings(tmp_path, {"uci": ""}) == []
