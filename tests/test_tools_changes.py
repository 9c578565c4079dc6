"""What changed between runs (change column, run.json) and `cohort diff`."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from cohort.cli import cli
from cohort.tools.changes import PreviousRun, read_previous
from cohort.tools.diff import diff_outputs

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "tests" / "data" / "tools" / "site-x"


def _cfg(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        '[trial]\nid = "sirius-sle-2"\nmappings = "mappings"\n'
        f'[[sites]]\nid = "site-x"\nname = "Site X"\nsource = "{SITE}"\n'
    )
    return cfg


def _run(cfg: Path, out: Path, as_of: str) -> None:
    result = CliRunner().invoke(
        cli, ["run", "--config", str(cfg), "--as-of", as_of, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "site-x" / "candidates.csv").open(encoding="utf-8-sig", newline="") as fh:
        return {r["patient_id"]: r for r in csv.DictReader(fh)}


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """Rewrite a candidates.csv as an earlier run would have left it."""
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_first_run_has_no_change_and_previous_is_read(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    _run(cfg, out, "2026-11-25")
    assert all(r["change"] == "" for r in _rows(out).values())
    prev = read_previous(out / "site-x" / "candidates.csv")
    assert isinstance(prev, PreviousRun) and isinstance(prev, dict)
    assert prev["x-p003"] == "likely" and prev.trial == "sirius-sle-2"
    assert prev.cells["x-p001"]["ana_titer"] == "unknown"
    assert read_previous(tmp_path / "missing.csv") == {}


def test_criteria_changed_without_tier_change(tmp_path: Path) -> None:
    """A cell that differs without a tier change is named; a tier change and new/removed win."""
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    _run(cfg, out, "2026-11-25")
    # make the previous output say the patient was excluded with the same cells otherwise
    path = out / "site-x" / "candidates.csv"
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(text.splitlines()))
    for r in rows:
        if r["patient_id"] == "x-p003":
            r["weight"] = "unknown"  # only a criterion cell differs
        if r["patient_id"] == "x-p002":
            r["patient_id"] = "x-gone"
    _write_rows(path, rows)
    _run(cfg, out, "2026-12-20")
    now = _rows(out)
    assert now["x-p001"]["change"] == "tier possible -> excluded"
    assert now["x-p002"]["change"] == "new"
    assert now["x-p003"]["change"] == "criteria changed: weight"
    report = json.loads((out / "run.json").read_text())
    # p001 (tier changed because a criterion did) and p003 (weight) have changed cells
    assert report["sites"]["site-x"]["changes"] == {
        "new": 1,
        "removed": 1,
        "tier_changed": 1,
        "criteria_changed": 2,
        "newly_likely": 0,
        "no_longer_likely": 0,
    }


def test_previous_run_of_another_trial_is_not_compared(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    _run(cfg, out, "2026-11-25")
    report = json.loads((out / "run.json").read_text())
    report["trial"] = "another-trial"
    (out / "run.json").write_text(json.dumps(report))
    _run(cfg, out, "2026-12-20")
    assert all(r["change"] == "" for r in _rows(out).values())
    assert json.loads((out / "run.json").read_text())["sites"]["site-x"]["changes"]["removed"] == 0


def test_diff_folders(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    _run(cfg, a, "2026-11-25")
    _run(cfg, b, "2026-12-20")
    d = diff_outputs(a, b)
    [site] = d.sites
    assert site.site == "site-x" and not site.added and not site.removed
    assert ("x-p001", "possible", "excluded") in site.tiers
    assert ("x-p001", "platelets", "pass", "fail") in site.cells
    result = CliRunner().invoke(cli, ["diff", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "mapping sha256:" in result.output
    assert "site site-x: 0 added, 0 removed, 1 tier change(s)" in result.output
    # a site present in one folder only, and identical folders
    shutil.rmtree(b / "site-x")
    result = CliRunner().invoke(cli, ["diff", str(a), str(b)])
    assert result.exit_code == 0 and "site site-x: only in A" in result.output
    result = CliRunner().invoke(cli, ["diff", str(a), str(a)])
    assert "0 added, 0 removed, 0 tier change(s), 0 criterion cell change(s)" in result.output


def test_diff_of_damaged_outputs_is_no_crash(tmp_path: Path) -> None:
    """A run.json that is JSON but not an object, and a candidates.csv row cut short (or an
    unterminated quote at its end), are read as far as they go (found by fuzzing: TypeError)."""
    cfg = _cfg(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    _run(cfg, a, "2026-11-25")
    _run(cfg, b, "2026-12-20")
    (a / "run.json").write_text("[]")
    csv_path = a / "site-x" / "candidates.csv"
    lines = csv_path.read_text(encoding="utf-8-sig").splitlines()
    lines[1] = ",".join(lines[1].split(",")[:3])  # rank, patient_id, tier
    csv_path.write_text("\ufeff" + "\r\n".join(lines) + '\r\n1,"abc,def', encoding="utf-8")
    for args in (["diff", str(a), str(b)], ["diff", str(b), str(a)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert "site site-x:" in result.output


def test_everyone_is_new_after_a_run_that_screened_nobody(tmp_path: Path) -> None:
    """A coordinator whose site screened nobody last night (a header-only candidates.csv)
    saw tonight's first patients with an empty `change` cell and "0 new" in summary.html:
    a run with no rows was taken for no previous run at all."""
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    _run(cfg, out, "2026-11-25")
    path = out / "site-x" / "candidates.csv"
    header = path.read_text(encoding="utf-8-sig").splitlines()[0]
    path.write_text("\ufeff" + header + "\r\n", encoding="utf-8")
    assert read_previous(path) == {}
    _run(cfg, out, "2026-11-26")
    rows = _rows(out)
    assert rows and all(r["change"] == "new" for r in rows.values())
    page = (out / "site-x" / "summary.html").read_text(encoding="utf-8")
    assert f'<p id="change-counts"><b>{len(rows)}</b> new' in page
    report = json.loads((out / "run.json").read_text())
    assert report["sites"]["site-x"]["changes"]["new"] == len(rows)


def test_first_run_summary_says_there_is_nothing_to_compare(tmp_path: Path) -> None:
    """On the first run summary.html said "0 new · 0 newly eligible · 0 other changes", as
    if the run had been compared with a previous one and nothing had changed."""
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    _run(cfg, out, "2026-11-25")
    page = (out / "site-x" / "summary.html").read_text(encoding="utf-8")
    assert 'id="change-counts"' not in page and 'id="no-previous-run"' in page
    _run(cfg, out, "2026-11-26")
    page = (out / "site-x" / "summary.html").read_text(encoding="utf-8")
    assert '<p id="change-counts"><b>0</b> new' in page and 'id="no-previous-run"' not in page


def test_summary_lists_patients_no_longer_screened_or_no_longer_eligible(tmp_path: Path) -> None:
    """A patient the coordinator was calling who dropped out of the list (SLE condition
    refuted) was only a number in run.json, and one who became excluded was one of the
    "other changes": summary.html named neither, so the coordinator kept calling them."""
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    _run(cfg, out, "2026-11-25")
    path = out / "site-x" / "candidates.csv"
    rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    gone = dict(rows[0], patient_id="x-gone", name="Gone Person", tier="likely")
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([*rows, gone])
    _run(cfg, out, "2026-12-20")
    page = (out / "site-x" / "summary.html").read_text(encoding="utf-8")
    report = json.loads((out / "run.json").read_text())
    assert report["sites"]["site-x"]["changes"]["removed"] == 1
    assert "<b>1</b> no longer screened" in page
    removed = re.findall(r'<tr class="removed">(.*?)</tr>', page)
    assert len(removed) == 1 and "x-gone" in removed[0] and "Gone Person" in removed[0]
    assert "(was likely)" in removed[0]
    now = _rows(out)
    assert now["x-p001"]["change"] == "tier possible -> excluded"
    assert "<b>1</b> no longer eligible" in page
    assert re.search(r'<tr class="change">.*?x-p001.*?tier possible -&gt; excluded', page)


def _table_ids(page: str, table_id: str) -> list[str]:
    """The patient ids of a summary.html table's rows, in order ([] when there is no table)."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    return re.findall(r'<td class="pid">([^<]*)</td>', table.group(1)) if table else []


def test_summary_lists_patients_newly_likely_and_no_longer_likely(tmp_path: Path) -> None:
    """A patient gone from possible to likely (the first a coordinator wants to call) and one
    gone from likely to possible were only counted among the "other changes": summary.html
    named neither."""
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    _run(cfg, out, "2026-11-25")
    path = out / "site-x" / "candidates.csv"
    rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    assert [(r["patient_id"], r["tier"]) for r in rows] == [
        ("x-p003", "likely"),
        ("x-p001", "possible"),
        ("x-p002", "excluded"),
    ]
    # the previous run: x-p003 possible, x-p001 likely, and one of x-p002's cells otherwise
    rows[0]["tier"], rows[1]["tier"] = "possible", "likely"
    rows[2]["age"] = "fail" if rows[2]["age"] != "fail" else "pass"
    _write_rows(path, rows)
    _run(cfg, out, "2026-11-26")
    now = _rows(out)
    assert now["x-p003"]["change"] == "tier possible -> likely"
    assert now["x-p001"]["change"] == "tier likely -> possible"
    assert now["x-p002"]["change"] == "criteria changed: age"
    page = (out / "site-x" / "summary.html").read_text(encoding="utf-8")
    counts = re.search(r'<p id="change-counts">(.*?)</p>', page)
    assert counts
    text = re.sub(r"</?b>", "", counts.group(1))
    assert text == (
        "0 new · 0 newly eligible · 1 newly likely · 1 no longer likely · "
        "0 no longer eligible · 0 no longer screened · 1 other changes"
    )
    assert _table_ids(page, "newly-likely") == ["x-p003"]
    assert _table_ids(page, "no-longer-likely") == ["x-p001"]
    assert "tier possible -&gt; likely" in page and "tier likely -&gt; possible" in page
    # neither is listed again among the other changes' table
    assert _table_ids(page, "changes-table") == []


def test_run_json_counts_the_summary_lists_of_newly_likely_and_no_longer_likely(
    tmp_path: Path,
) -> None:
    """run.json counted tier moves only as `tier_changed`: a monitor reading it could not say
    "1 newly likely" without parsing summary.html. Its counts are the lengths of the lists."""
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    _run(cfg, out, "2026-11-25")
    path = out / "site-x" / "candidates.csv"
    first = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    tiers = {r["patient_id"]: r["tier"] for r in first}
    assert tiers == {"x-p003": "likely", "x-p001": "possible", "x-p002": "excluded"}

    def again(before: dict[str, str], as_of: str) -> tuple[dict[str, int], str]:
        """Run once more after a previous run that had the tiers `before`."""
        _write_rows(path, [dict(r, tier=before[r["patient_id"]]) for r in first])
        _run(cfg, out, as_of)
        report = json.loads((out / "run.json").read_text())
        page = (out / "site-x" / "summary.html").read_text(encoding="utf-8")
        return report["sites"]["site-x"]["changes"], page

    # x-p003 possible -> likely, x-p001 likely -> possible
    before = {"x-p003": "possible", "x-p001": "likely", "x-p002": "excluded"}
    changes, page = again(before, "2026-11-26")
    assert _table_ids(page, "newly-likely") == ["x-p003"]
    assert _table_ids(page, "no-longer-likely") == ["x-p001"]
    assert changes["newly_likely"] == len(_table_ids(page, "newly-likely")) == 1
    assert changes["no_longer_likely"] == len(_table_ids(page, "no-longer-likely")) == 1
    assert changes["tier_changed"] == 2

    # excluded -> likely is newly eligible, not newly likely; possible -> excluded neither
    before = {"x-p003": "excluded", "x-p001": "likely", "x-p002": "possible"}
    changes, page = again(before, "2026-11-27")
    now = _rows(out)
    assert now["x-p003"]["change"] == "tier excluded -> likely"
    assert now["x-p002"]["change"] == "tier possible -> excluded"
    assert _table_ids(page, "newly-likely") == [] and changes["newly_likely"] == 0
    assert _table_ids(page, "no-longer-likely") == ["x-p001"]
    assert changes["no_longer_likely"] == 1 and changes["tier_changed"] == 3

    # --no-phi leaves the lists out of summary.html; run.json counts them all the same
    before = {"x-p003": "possible", "x-p001": "possible", "x-p002": "excluded"}
    _write_rows(path, [dict(r, tier=before[r["patient_id"]]) for r in first])
    result = CliRunner().invoke(
        cli,
        ["run", "--config", str(cfg), "--as-of", "2026-11-28", "--out", str(out), "--no-phi"],
    )
    assert result.exit_code == 0, result.output
    changes = json.loads((out / "run.json").read_text())["sites"]["site-x"]["changes"]
    assert (changes["newly_likely"], changes["no_longer_likely"]) == (1, 0)
    page = (out / "site-x" / "summary.html").read_text(encoding="utf-8")
    assert _table_ids(page, "newly-likely") == [] and 'id="change-counts"' in page


def test_run_json_counts_no_tier_moves_on_a_first_run(tmp_path: Path) -> None:
    """Nothing to compare with: the counts are there, 0 (a monitor reads them every night)."""
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    _run(cfg, out, "2026-11-25")
    changes = json.loads((out / "run.json").read_text())["sites"]["site-x"]["changes"]
    assert changes["newly_likely"] == 0 and changes["no_longer_likely"] == 0


def test_previous_name_is_read_without_the_formula_guard(tmp_path: Path) -> None:
    """candidates.csv guards a cell that opens like a formula with "'"; reading the previous
    run undid it for patient_id only, so summary.html's "no longer screened" list showed a
    name such as "-Ann" as "'-Ann"."""
    path = tmp_path / "candidates.csv"
    path.write_text(
        "rank,patient_id,tier,score,eligible_from,reasons,change,name\r\n"
        "1,'-p1,likely,1,,,,'-Ann\r\n"
        "2,p2,likely,1,,,,'Brien O\r\n",
        encoding="utf-8",
    )
    prev = read_previous(path)
    assert prev.names == {"-p1": "-Ann", "p2": "'Brien O"}


def test_a_failed_first_run_of_a_new_trial_does_not_make_the_old_lists_its_own(
    tmp_path: Path,
) -> None:
    """The first run of a new trial failed (its copied file still said the old id: exit 4) and
    wrote run.json naming the new trial; the next run then took the old trial's lists, kept in
    OUT, for its own previous run and filled the `change` column against them."""
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    _run(cfg, out, "2026-11-25")
    trials = tmp_path / "mappings" / "trials"
    shutil.copy(trials / "sirius-sle-2.toml", trials / "my-trial.toml")
    cfg.write_text(cfg.read_text().replace('id = "sirius-sle-2"', 'id = "my-trial"'))
    args = ["run", "--config", str(cfg), "--as-of", "2026-12-20", "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 4
    report = json.loads((out / "run.json").read_text())
    assert report["trial"] == "my-trial" and report["outputs_trial"] == "sirius-sle-2"
    mine = trials / "my-trial.toml"
    mine.write_text(mine.read_text().replace('id = "sirius-sle-2"', 'id = "my-trial"', 1))
    _run(cfg, out, "2026-12-20")
    assert all(r["change"] == "" for r in _rows(out).values())
    report = json.loads((out / "run.json").read_text())
    assert report["sites"]["site-x"]["changes"] == {
        "new": 0,
        "removed": 0,
        "tier_changed": 0,
        "criteria_changed": 0,
        "newly_likely": 0,
        "no_longer_likely": 0,
    }
    assert 'id="no-previous-run"' in (out / "site-x" / "summary.html").read_text()


def test_summary_says_the_lists_were_of_another_trial_not_first_run(tmp_path: Path) -> None:
    """After the trial id changed, summary.html said "the first run" though OUT held the other
    trial's lists, which the run does not compare with: it now names that trial."""
    cfg = _cfg(tmp_path)
    out = tmp_path / "out"
    _run(cfg, out, "2026-11-25")
    trials = tmp_path / "mappings" / "trials"
    mine = trials / "my-trial.toml"
    text = (trials / "sirius-sle-2.toml").read_text()
    mine.write_text(text.replace('id = "sirius-sle-2"', 'id = "my-trial"', 1))
    cfg.write_text(cfg.read_text().replace('id = "sirius-sle-2"', 'id = "my-trial"'))
    _run(cfg, out, "2026-12-20")
    page = (out / "site-x" / "summary.html").read_text(encoding="utf-8")
    said = re.search(r'<p id="no-previous-run"[^>]*>(.*?)</p>', page, re.S)
    assert said and "first run" not in said[1]
    assert "of another trial (sirius-sle-2)" in said[1]
