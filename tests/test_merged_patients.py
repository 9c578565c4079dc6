"""Merged charts (Patient.link replaced-by): one person is one candidate row, with all records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from criteria_helpers import ago, condition, patient
from researcher_helpers import csv_rows, run_records

from cohort.cli import cli


def _for(pid: str, res: dict[str, Any]) -> dict[str, Any]:
    return {**res, "subject": {"reference": f"Patient/{pid}"}}


def _replaced(old: str, new: str, **extra: Any) -> dict[str, Any]:
    link = [{"other": {"reference": f"Patient/{new}"}, "type": "replaced-by"}]
    return patient("1980-05-01", pid=old, active=False, link=link, **extra)


def _run(
    tmp_path: Path, records: list[dict[str, Any]], run_table: str = "", name: str = "out"
) -> dict[str, dict[str, str]]:
    site = run_records(tmp_path, records, run_table, name)
    return {row["patient_id"]: row for row in csv_rows(site / "candidates.csv")}


def test_a_merged_chart_is_one_candidate_with_the_old_records(tmp_path: Path) -> None:
    # the SLE diagnosis sits on the old chart, the recent one on the chart that replaced it
    records = [
        _replaced("old1", "new1"),
        patient(
            "1980-05-01",
            pid="new1",
            link=[{"other": {"reference": "Patient/old1"}, "type": "replaces"}],
        ),
        _for("old1", condition("M32.14", onset=ago(3000), rid="c-old")),
        _for("new1", condition("M32.14", onset=ago(30), rid="c-new")),
        patient("1990-01-01", pid="other"),
        _for("other", condition("M32.14", onset=ago(30), rid="c-other")),
    ]
    rows = _run(tmp_path, records)
    assert set(rows) == {"new1", "other"}
    # the old chart's diagnosis, 3000 days back, counts for the person: over 6 months
    assert rows["new1"]["sle_diagnosis"] == "pass"
    assert rows["other"]["sle_diagnosis"] == "fail"
    # demographics are the surviving chart's (the old one is not read as the Patient)
    assert rows["new1"]["birth_date"] == "1980-05-01"


def test_a_chain_of_merges_ends_at_the_last_stored_patient(tmp_path: Path) -> None:
    records = [
        _replaced("a", "b"),
        _replaced("b", "c"),
        patient("1970-03-03", pid="c"),
        _for("a", condition("M32.14", onset=ago(3000), rid="c-a")),
        _for("b", condition("M32.14", onset=ago(20), rid="c-b")),
    ]
    rows = _run(tmp_path, records)
    assert list(rows) == ["c"]
    assert rows["c"]["sle_diagnosis"] == "pass"
    assert rows["c"]["birth_date"] == "1970-03-03"


def test_a_merge_into_a_patient_not_in_the_data_or_a_loop_leaves_the_charts_apart(
    tmp_path: Path,
) -> None:
    records = [
        _replaced("x", "missing"),
        _replaced("p", "q"),
        _replaced("q", "p"),
        _for("x", condition("M32.14", onset=ago(3000), rid="c-x")),
        _for("p", condition("M32.14", onset=ago(3000), rid="c-p")),
        _for("q", condition("M32.14", onset=ago(3000), rid="c-q")),
    ]
    rows = _run(tmp_path, records)
    assert set(rows) == {"x", "p", "q"}


def _replaces(new: str, *olds: str, **extra: Any) -> dict[str, Any]:
    link = [{"other": {"reference": f"Patient/{old}"}, "type": "replaces"} for old in olds]
    return patient("1975-07-07", pid=new, link=link, **extra)


def test_a_chart_that_says_it_replaced_another_is_read_with_it(tmp_path: Path) -> None:
    # only the surviving chart says so (link replaces); the old Patient has no link, or is
    # not in the data at all
    records = [
        _replaces("new1", "old1", "gone1"),
        patient("1980-05-01", pid="old1"),
        _for("old1", condition("M32.14", onset=ago(3000), rid="c-old")),
        _for("gone1", condition("M32.14", onset=ago(2000), rid="c-gone")),
        _for("new1", condition("M32.14", onset=ago(30), rid="c-new")),
    ]
    rows = _run(tmp_path, records)
    assert list(rows) == ["new1"]
    assert rows["new1"]["sle_diagnosis"] == "pass"
    assert rows["new1"]["birth_date"] == "1975-07-07"


def test_a_chart_two_say_they_replaced_or_its_own_link_decides(tmp_path: Path) -> None:
    records = [
        # two charts say they replaced `both`: neither is taken, it stays apart
        _replaces("a", "both"),
        _replaces("b", "both"),
        _for("both", condition("M32.14", onset=ago(3000), rid="c-both")),
        # `own` says c replaced it; d's replaces link to it is not taken
        _replaced("own", "c"),
        patient("1970-03-03", pid="c"),
        _replaces("d", "own"),
        _for("own", condition("M32.14", onset=ago(3000), rid="c-own")),
        _for("d", condition("M32.14", onset=ago(30), rid="c-d")),
    ]
    rows = _run(tmp_path, records)
    assert set(rows) == {"both", "c", "d"}
    assert rows["c"]["sle_diagnosis"] == "pass"
    assert rows["d"]["sle_diagnosis"] == "fail"  # only its own, recent diagnosis


def test_a_chart_claimed_by_two_charts_merged_into_each_other_goes_to_the_last(
    tmp_path: Path,
) -> None:
    # a merged b into c, and left b's replaces link to x beside c's own: x is c's, as b is
    records = [
        patient("1980-05-01", pid="b", active=False, link=[
            {"other": {"reference": "Patient/x"}, "type": "replaces"},
            {"other": {"reference": "Patient/c"}, "type": "replaced-by"}]),
        _replaces("c", "x", "b"),
        _for("x", condition("M32.14", onset=ago(3000), rid="c-x")),
        _for("c", condition("M32.14", onset=ago(30), rid="c-c")),
    ]
    rows = _run(tmp_path, records)
    assert list(rows) == ["c"]
    assert rows["c"]["sle_diagnosis"] == "pass"  # x's diagnosis, 3000 days back


def test_a_link_type_spelt_with_json_escapes_still_merges(tmp_path: Path) -> None:
    # an NDJSON line is stored as read, and JSON may spell any character as a \uXXXX escape:
    # "repl\u0061ces" is "replaces" (the store's byte pre-filter for linked Patients missed
    # them, and both charts were candidates)
    data = tmp_path / "data"
    data.mkdir()
    lines = [
        json.dumps(_replaces("new1", "old1")).replace('"replaces"', '"repl\\u0061ces"'),
        json.dumps(_replaced("old2", "new2")).replace('"replaced-by"', '"r\\u0065placed-by"'),
        json.dumps(patient("1970-03-03", pid="new2")),
    ]
    (data / "Patient.ndjson").write_text("\n".join(lines) + "\n")
    records = [
        _for("old1", condition("M32.14", onset=ago(3000), rid="c-old1")),
        _for("new1", condition("M32.14", onset=ago(30), rid="c-new1")),
        _for("old2", condition("M32.14", onset=ago(3000), rid="c-old2")),
        _for("new2", condition("M32.14", onset=ago(30), rid="c-new2")),
    ]
    rows = _run(tmp_path, records)
    assert set(rows) == {"new1", "new2"}
    assert rows["new1"]["sle_diagnosis"] == rows["new2"]["sle_diagnosis"] == "pass"


def test_merged_charts_read_in_forked_workers_as_in_one_process(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = []
    for i in range(300):  # above EVAL_FORK_MIN: evaluation forks per core
        old, new = f"o{i:03d}", f"n{i:03d}"
        records += [
            _replaced(old, new),
            patient("1980-05-01", pid=new),
            _for(old, condition("M32.14", onset=ago(3000), rid=f"co{i}")),
            _for(new, condition("M32.14", onset=ago(10), rid=f"cn{i}")),
        ]
    forked = _run(tmp_path, records)
    serial = _run(tmp_path, records, "[run]\nworkers = 1\n", "serial")
    assert forked == serial
    assert len(forked) == 300 and all(pid.startswith("n") for pid in forked)
    assert {r["sle_diagnosis"] for r in forked.values()} == {"pass"}


def test_explain_reads_a_merged_chart_as_screening_does(tmp_path: Path) -> None:
    records = [
        _replaced("old1", "new1"),
        patient("1980-05-01", pid="new1"),
        _for("old1", condition("M32.14", onset=ago(3000), rid="c-old")),
    ]
    _run(tmp_path, records)
    for asked in ("old1", "new1"):
        args = ["explain", asked, "--config", str(tmp_path / "site.toml")]
        args += ["--out", str(tmp_path / "out"), "--as-of", "2026-11-25"]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert "patient new1 at site s1" in result.output
        assert "merged charts: read with the records of old1" in result.output
        sle = result.output.split("[pass] sle_diagnosis", 1)[1].split("\n\n", 1)[0]
        assert "Condition/c-old" in sle


def test_explain_names_the_link_a_merge_read(tmp_path: Path) -> None:
    # only new1 says so (replaces): old1 has no link, gone1 no Patient at all
    records = [
        _replaces("new1", "old1", "gone1"),
        patient("1980-05-01", pid="old1"),
        _for("gone1", condition("M32.14", onset=ago(3000), rid="c-gone")),
    ]
    _run(tmp_path, records)
    args = ["explain", "gone1", "--config", str(tmp_path / "site.toml")]
    args += ["--out", str(tmp_path / "out"), "--as-of", "2026-11-25"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "patient new1 at site s1" in result.output
    assert "replaced-by new1" not in result.output  # (was said: no record has that link)
    line = "merged charts: read with the records of gone1, old1 (Patient.link replaced-by or"
    assert line + " replaces: merged into new1)" in result.output


def test_coverage_counts_a_merged_chart_as_the_person_screening_reads(tmp_path: Path) -> None:
    # the SLE diagnosis is on the old chart only: screening reads new1 as screened, so a code
    # no mapping has, charted on new1 or old1, is one screened patient's (was: none screened,
    # and two patients)
    from criteria_helpers import observation

    from cohort.config import load_config
    from cohort.tools.coverage import coverage_report

    records = [
        _replaced("old1", "new1"),
        patient("1980-05-01", pid="new1"),
        _for("old1", condition("M32.14", onset=ago(3000), rid="c-old")),
        _for("new1", observation("99999-9", ago(10), valueString="x", rid="o-new")),
        _for("old1", observation("99999-9", ago(900), valueString="y", rid="o-old")),
    ]
    rows = _run(tmp_path, records)
    assert list(rows) == ["new1"]
    report = coverage_report(load_config(tmp_path / "site.toml"), tmp_path / "out", "s1")
    (unmapped,) = [u for u in report.unmapped if u.code == "99999-9"]
    assert unmapped.patients == {"new1"}
    assert unmapped.screened == {"new1"}


def test_an_inactive_or_replaced_chart_is_listed_for_checking_never_likely(
    tmp_path: Path,
) -> None:
    """Patient.active false (usually an obsolete chart, sometimes a patient not seen for a
    while) and a chart replaced by one not in the data stay candidates (dropping them would
    lose a patient silently), but `active_record` is unknown: possible, not likely. A merged
    old chart, inactive as EHRs leave it, is not read as the Patient (its survivor's is)."""
    sle = {"onset": ago(3000)}
    records = [
        # merged: the old chart is inactive, the survivor active: one row, active_record pass
        _replaced("old1", "new1"),
        patient("1980-05-01", pid="new1"),
        _for("old1", condition("M32.14", rid="c-old1", **sle)),
        # replaced by a chart not in the data: read as it is, and flagged
        _replaced("x", "missing"),
        _for("x", condition("M32.14", rid="c-x", **sle)),
        # inactive, no link: flagged, still a row
        patient("1980-05-01", pid="dormant", active=False),
        _for("dormant", condition("M32.14", rid="c-dormant", **sle)),
        # the chart that survived a merge is itself inactive: flagged
        _replaced("old2", "new2"),
        patient("1980-05-01", pid="new2", active=False),
        _for("old2", condition("M32.14", rid="c-old2", **sle)),
    ]
    rows = _run(tmp_path, records)
    assert set(rows) == {"new1", "x", "dormant", "new2"}
    assert rows["new1"]["active_record"] == "pass"
    for pid in ("x", "dormant", "new2"):
        assert rows[pid]["active_record"] == "unknown", pid
    assert "replaced by Patient/missing (not in the data)" in rows["x"]["reasons"]
    assert "Patient.active false" in rows["dormant"]["reasons"]


def test_charts_whose_merge_links_loop_are_flagged_without_calling_the_other_missing(
    tmp_path: Path,
) -> None:
    """p replaced-by q and q replaced-by p (and a replaced-by p, a chain into the loop): no
    merge (docs/rules.md), so each is read as it is and `active_record` is unknown; the reason
    said "replaced by Patient/q (not in the data)" of a chart that is in the data, a row of the
    same CSV: the coordinator looked for a chart that is there. It names the loop instead."""
    link = lambda other: [{"other": {"reference": f"Patient/{other}"}, "type": "replaced-by"}]  # noqa: E731
    records = [
        patient("1980-05-01", pid="p", link=link("q")),
        patient("1980-05-01", pid="q", link=link("p")),
        patient("1980-05-01", pid="a", link=link("p")),
        _for("p", condition("M32.14", onset=ago(3000), rid="c-p")),
        _for("q", condition("M32.14", onset=ago(3000), rid="c-q")),
        _for("a", condition("M32.14", onset=ago(3000), rid="c-a")),
        # beside them, a chart replaced by one that is not in the data, as before
        patient("1980-05-01", pid="x", link=link("missing")),
        _for("x", condition("M32.14", onset=ago(3000), rid="c-x")),
    ]
    rows = _run(tmp_path, records)
    assert set(rows) == {"p", "q", "a", "x"}
    for pid, other in (("p", "q"), ("q", "p"), ("a", "p")):
        assert rows[pid]["active_record"] == "unknown", pid
        reasons = rows[pid]["reasons"]
        assert f"replaced by Patient/{other} (the merge links loop)" in reasons, reasons
        assert "not in the data" not in reasons
    assert "replaced by Patient/missing (not in the data)" in rows["x"]["reasons"]
    args = ["explain", "p", "--config", str(tmp_path / "site.toml")]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "replaced by Patient/q (the merge links loop)" in result.output


def test_a_refused_patient_record_keeps_its_merge_links(tmp_path: Path) -> None:
    """A Patient record the validator refuses is stored as a stub (docs/rules.md "Records that
    cannot be read"), which kept no `link`: the merge it states was lost, and the other chart's
    records were silently not read for the person (a positive HBsAg on the old chart: `hbv`
    passed). The stub keeps its well-formed links, so the charts are read together; the
    Patient's own criteria stay unknown (it could not be read)."""
    hbsag = {"resourceType": "Observation", "status": "final", "valueString": "Positive",
             "code": {"coding": [{"system": "http://loinc.org", "code": "5196-1"}]},
             "effectiveDateTime": ago(10)}  # fmt: skip
    records = [
        # the survivor is refused (a deceasedDateTime that is no date), its `replaces` names old1
        _replaces("new1", "old1", deceasedDateTime="around 2020"),
        patient("1980-05-01", pid="old1"),
        _for("new1", condition("M32.14", onset=ago(3000), rid="c-new1")),
        _for("old1", {**hbsag, "id": "h-old1"}),
        # the old chart is refused (active is no boolean), its own replaced-by names new2
        {**_replaced("old2", "new2"), "active": "no"},
        patient("1980-05-01", pid="new2"),
        _for("new2", condition("M32.14", onset=ago(3000), rid="c-new2")),
        _for("old2", {**hbsag, "id": "h-old2"}),
    ]
    rows = _run(tmp_path, records)
    assert set(rows) == {"new1", "new2"}
    assert rows["new1"]["hbv"] == "fail", rows["new1"]["reasons"]
    assert rows["new2"]["hbv"] == "fail", rows["new2"]["reasons"]
    # the refused survivor's own criteria: it could not be read
    for crit in ("age", "deceased", "active_record"):
        assert rows["new1"][crit] == "unknown", crit
    assert rows["new2"]["active_record"] == "pass"
