"""The order of a criterion's evidence rows (QA review): the used ones first, as the criterion
gives them, then the ignored ones newest first, undated last; the same in evidence.csv and in
`cohort explain`. Set-aside results came in stored-record order (weights of 2015, 2011, 2017,
...), and a superseded result after older ones outside the window."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
from click.testing import CliRunner
from criteria_helpers import ago, context, medication, observation, qty, run, trial
from test_reliability_support import AS_OF, write_config

from cohort.cli import cli
from cohort.criteria.ordering import evidence_day, in_order
from cohort.evaluate import evaluate
from cohort.model import Evidence, Result, Status

PLT = "777-3"  # platelets
WEIGHT = "29463-7"  # body weight


def _plt(days: int | None, value: float, rid: str, when: str | None = None) -> dict:
    return observation(
        PLT, when or (ago(days) if days is not None else None),
        valueQuantity=qty(value, "10*3/uL", "10*3/uL"), rid=rid,
    )  # fmt: skip


def _evaluated(cid: str, *resources: dict) -> Result:
    return next(r for r in evaluate(trial(), context(*resources)) if r.criterion == cid)


def test_evidence_day_reads_every_shape_of_an_evidence_date() -> None:
    from datetime import date

    assert evidence_day("2026-05-03") == date(2026, 5, 3)
    assert evidence_day("2026-05") == date(2026, 5, 1)  # a partial date by its first day
    assert evidence_day("2026") == date(2026, 1, 1)
    assert evidence_day("2025-01-01..ongoing") == date(2025, 1, 1)  # an exposure by its start
    assert evidence_day("2025-03..2025-06-30") == date(2025, 3, 1)
    assert evidence_day("..2020-12-31") == date(2020, 12, 31)  # no start: by its end
    assert evidence_day("../2020-12-31") == date(2020, 12, 31)
    assert evidence_day("2020-01-01/2020-03-01") == date(2020, 1, 1)
    assert evidence_day("") is None
    assert evidence_day("..ongoing") is None


def test_ignored_rows_are_newest_first_undated_last_ties_kept() -> None:
    def ev(ref: str, when: str) -> Evidence:
        return Evidence(ref, "c", date=when)

    used = (ev("u2", "2001-01-01"), ev("u1", "2026-01-01"))  # as the criterion gives them
    ignored = (
        ev("a", "2015-06-01"), ev("b", ""), ev("c", "2026-05"), ev("d", "2011-01-01"),
        ev("e", "2026-05-01"), ev("f", "2026"), ev("g", ""), ev("h", "2026-11-30"),
    )  # fmt: skip
    r = in_order(Result("x", Status.PASS, "", used, ignored))
    assert r.evidence == used
    # 2026-05 and 2026-05-01 are one day (kept in their order); 2026 reads as 2026-01-01
    assert [e.ref for e in r.ignored] == ["h", "c", "e", "f", "a", "d", "b", "g"]


def test_a_result_already_in_order_is_returned_as_it_is() -> None:
    r = Result("x", Status.PASS, "", (), (Evidence("a", date="2026-01-02"), Evidence("b")))
    assert in_order(r) is r


def test_platelets_set_aside_come_newest_first_after_the_one_used() -> None:
    """Stored out of order; the superseded one (20 days) came after those outside the window."""
    resources = [
        _plt(400, 180, "old-400"),
        _plt(200, 170, "old-200"),
        _plt(None, 160, "undated"),
        _plt(None, 150, "partial", when="2025-01"),
        _plt(10, 150, "newest"),
        _plt(1000, 140, "old-1000"),
        _plt(20, 130, "superseded"),
        _plt(-10, 120, "after"),
    ]
    kind = run("platelets", *resources)  # the criterion's own order: the record order
    assert [e.ref for e in kind.ignored][:2] == ["Observation/old-400", "Observation/old-200"]
    r = _evaluated("platelets", *resources)
    assert str(r.status) == "pass"
    assert [e.ref for e in r.evidence] == ["Observation/newest"]
    assert [(e.ref.split("/")[1], e.date) for e in r.ignored] == [
        ("after", ago(-10)),
        ("superseded", ago(20)),
        ("old-200", ago(200)),
        ("old-400", ago(400)),  # 2025-10-21
        ("partial", "2025-01"),
        ("old-1000", ago(1000)),
        ("undated", ""),
    ]


def test_used_rows_keep_the_criterion_s_order() -> None:
    """`severe_lupus_nephritis` lists the results it read: kept as it gives them."""
    creat = [
        observation("2160-0", ago(d), valueQuantity=qty(v, "mg/dL", "mg/dL"), rid=f"cr{d}")
        for d, v in ((5, 1.0), (40, 1.1), (20, 0.9), (400, 3.0), (300, 2.0))
    ]
    kind = run("severe_lupus_nephritis", *creat)
    r = _evaluated("severe_lupus_nephritis", *creat)
    assert r.evidence == kind.evidence
    days = [e.date for e in r.ignored]
    assert days == sorted(days, reverse=True)
    assert {e.ref for e in r.ignored} == {e.ref for e in kind.ignored}


# --- end to end: evidence.csv and `cohort explain` agree ----------------------------------------
WEIGHTS = [  # (id, days before as-of, kg), in the order the records are stored
    ("w2015", 3970, 61), ("w2011", 5440, 58), ("w2017", 3220, 63), ("wnew", 30, 66),
    ("w2019", 2490, 64), ("w2018", 2850, 62), ("w-recent", 100, 65), ("w-nodate", None, 60),
]  # fmt: skip


def _site(folder: Path) -> Path:
    sle = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}
    subject = {"reference": "Patient/ord-1"}
    records = [
        {"resourceType": "Patient", "id": "ord-1", "birthDate": "1980-01-01", "gender": "female"},
        {"resourceType": "Condition", "id": "ord-1-sle", "code": sle, "subject": subject,
         "onsetDateTime": "2015-01-01"},
    ]  # fmt: skip
    for rid, days, kg in WEIGHTS:
        o = observation(WEIGHT, ago(days) if days is not None else None,
                        valueQuantity=qty(kg, "kg", "kg"), rid=rid)  # fmt: skip
        records.append({**o, "subject": subject})
    site = folder / "site"
    site.mkdir()
    (site / "all.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    return site


def test_evidence_csv_and_explain_list_weights_in_the_same_order(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"s": str(_site(tmp_path))})
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = (out / "s" / "evidence.csv").read_text(encoding="utf-8-sig")
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["criterion"] == "weight"]
    want = [
        ("yes", "Observation/wnew", ago(30)),  # the most recent, used
        ("ignored", "Observation/w-recent", ago(100)),  # superseded
        ("ignored", "Observation/w2019", ago(2490)),  # then outside the window, newest first
        ("ignored", "Observation/w2018", ago(2850)),
        ("ignored", "Observation/w2017", ago(3220)),
        ("ignored", "Observation/w2015", ago(3970)),
        ("ignored", "Observation/w2011", ago(5440)),
        ("ignored", "Observation/w-nodate", ""),  # undated last
    ]
    assert [(r["used"], r["ref"], r["date"]) for r in rows] == want
    assert rows[1]["note"] == "superseded by a newer result"
    args = ["explain", "ord-1", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    start = next(i for i, line in enumerate(lines) if "] weight - " in line)
    end = lines.index("", start)  # (the criterion's block ends at a blank line)
    shown = [
        tuple(line.split()[:2])
        for line in lines[start:end]
        if line.startswith(("  used: ", "  ignored: "))
    ]
    assert shown == [("used:" if u == "yes" else "ignored:", ref) for u, ref, _ in want]


# --- records the reading rules dropped (QA audit): in evidence.csv as in `cohort explain` --------
HB = "718-7"  # hemoglobin


def test_a_dropped_record_is_an_ignored_row_of_the_criteria_reading_its_concept() -> None:
    """A cancelled hemoglobin of 6.0, newer than the 12.5 used: `cohort explain` listed it as
    ignored, evidence.csv did not. Now every reader of the result has it, dated and valued as a
    result is, the note naming the reading rule; a dropped record of no criterion's concept is
    evidence of none."""
    used = observation(HB, ago(15), valueQuantity=qty(12.5, "g/dL", "g/dL"), rid="hb-used")
    cancelled = observation(
        HB, ago(2), status="cancelled", valueQuantity=qty(60, "g/L", "g/L"), rid="hb-cancelled"
    )
    old = observation(HB, ago(400), valueQuantity=qty(11, "g/dL", "g/dL"), rid="hb-old")
    unmapped = observation("0000-0", ago(1), status="entered-in-error", rid="no-concept")
    r = _evaluated("hemoglobin", used, cancelled, old, unmapped)
    assert str(r.status) == "pass" and [e.ref for e in r.evidence] == ["Observation/hb-used"]
    assert r.ignored[0] == Evidence(
        "Observation/hb-cancelled", "hemoglobin", "6", "g/dL", ago(2),
        "dropped by the reading rules: status cancelled", "60", "g/L",
    )  # fmt: skip
    assert [e.ref for e in r.ignored] == ["Observation/hb-cancelled", "Observation/hb-old"]
    every = evaluate(trial(), context(used, cancelled, old, unmapped))
    assert not any(e.ref == "Observation/no-concept" for x in every for e in x.ignored)


def test_a_dropped_medication_record_shows_its_dates() -> None:
    belimumab = medication(
        "MedicationStatement", text="belimumab", status="entered-in-error",
        start=ago(30), end=ago(10), rid="bel",
    )  # fmt: skip
    r = _evaluated("washout_belimumab", belimumab)
    assert str(r.status) == "pass" and r.evidence == ()
    assert [(e.ref, e.concept, e.date, e.note) for e in r.ignored] == [(
        "MedicationStatement/bel", "belimumab", f"{ago(30)}..{ago(10)}",
        "dropped by the reading rules: status entered-in-error",
    )]  # fmt: skip


def _hb_site(folder: Path) -> Path:
    sle = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}
    subject = {"reference": "Patient/hb-1"}
    records = [
        {"resourceType": "Patient", "id": "hb-1", "birthDate": "1980-01-01", "gender": "female"},
        {"resourceType": "Condition", "id": "hb-1-sle", "code": sle, "subject": subject,
         "onsetDateTime": "2015-01-01"},
    ]  # fmt: skip
    for rid, days, status, value in (
        ("hb-used", 15, "final", 12.5), ("hb-cancelled", 2, "cancelled", 6.0),
        ("hb-old", 400, "final", 11.0), ("hb-undated", None, "final", 10.0),
    ):  # fmt: skip
        o = observation(HB, ago(days) if days is not None else None, status=status,
                        valueQuantity=qty(value, "g/dL", "g/dL"), rid=rid)  # fmt: skip
        records.append({**o, "subject": subject})
    site = folder / "site"
    site.mkdir()
    (site / "all.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    return site


def test_evidence_csv_lists_the_dropped_result_explain_shows_in_the_same_order(
    tmp_path: Path,
) -> None:
    cfg = write_config(tmp_path, {"s": str(_hb_site(tmp_path))})
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = (out / "s" / "evidence.csv").read_text(encoding="utf-8-sig")
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["criterion"] == "hemoglobin"]
    want = [
        ("yes", "Observation/hb-used", ago(15), "most recent"),
        ("ignored", "Observation/hb-cancelled", ago(2),
         "dropped by the reading rules: status cancelled"),
        ("ignored", "Observation/hb-old", ago(400), f"outside window (before {ago(90)})"),
        ("ignored", "Observation/hb-undated", "", "no date"),
    ]  # fmt: skip
    assert [(r["used"], r["ref"], r["date"], r["note"]) for r in rows] == want
    assert (rows[1]["value"], rows[1]["unit"]) == ("6", "g/dL")
    args = ["explain", "hb-1", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    start = next(i for i, line in enumerate(lines) if "] hemoglobin - " in line)
    end = lines.index("", start)
    shown = [line for line in lines[start:end] if line.startswith(("  used: ", "  ignored: "))]
    assert [tuple(line.split()[:2]) for line in shown] == [
        ("used:" if u == "yes" else "ignored:", ref) for u, ref, _, _ in want
    ]
    assert shown[1].endswith(f"hemoglobin  6 g/dL  {ago(2)}  -- {want[1][3]}")
    assert "records dropped by the reading rules" not in res.output
