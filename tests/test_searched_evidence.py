"""A criterion that fails or is unknown for the absence of something leaves one evidence row
saying what was searched and what was found, summarised records counted (docs/rules.md)."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner
from criteria_helpers import (
    AS_OF,
    ago,
    condition,
    days_before,
    facts,
    medication,
    observation,
    rules,
    settled,
    terminology,
    trial,
)
from test_reliability_support import write_config

from cohort.cli import cli
from cohort.config import load_config
from cohort.evaluate import evaluate, make_context
from cohort.runner import run
from cohort.screening import add_side
from cohort.store import Store
from cohort.store.census import Side

SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SLE = {"coding": [{"system": SNOMED, "code": "55464009"}]}
LEVORA = {"coding": [{"system": RXNORM, "code": "748879", "display": "Levora 0.15/30 28 Day Pack"}]}
HCQ = {"coding": [{"system": RXNORM, "code": "5521"}]}
HEART_RATE = {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]}
QUALIFYING = "corticosteroid_systemic,antimalarial,dmard_background"


def _ref(pid: str) -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


def _req(rid: str, pid: str, code: dict[str, Any], when: str) -> dict[str, Any]:
    return {"resourceType": "MedicationRequest", "id": rid, "status": "active", "intent": "order",
            "medicationCodeableConcept": code, "subject": _ref(pid), "authoredOn": when}  # fmt: skip


def _site(tmp_path: Path) -> Path:
    """p1: only medication records no concept maps (three, two on one day), and two heart rates
    no concept maps either; p2: no medication record; p3: a current hydroxychloroquine."""
    site = tmp_path / "site"
    site.mkdir()
    pids = ("p1", "p2", "p3")
    patients = [{"resourceType": "Patient", "id": p, "birthDate": "1990-01-01"} for p in pids]
    conds = [{"resourceType": "Condition", "id": f"c{p}", "code": SLE, "subject": _ref(p),
              "onsetDateTime": "2015-01-01"} for p in pids]  # fmt: skip
    meds = [
        _req("r1", "p1", LEVORA, "2026-03-01"),
        _req("r2", "p1", LEVORA, "2026-05-01"),
        _req("r3", "p1", LEVORA, "2026-05-01"),
        _req("r4", "p3", HCQ, "2026-10-01"),
    ]
    obs = [{"resourceType": "Observation", "id": f"o{i}", "status": "final", "code": HEART_RATE,
            "subject": _ref("p1"), "effectiveDateTime": when,
            "valueQuantity": {"value": 71, "unit": "/min", "code": "/min"}}
           for i, when in enumerate(("2026-06-01", "2026-07-01"))]  # fmt: skip
    for name, rows in (("Patient", patients), ("Condition", conds), ("Observation", obs),
                       ("MedicationRequest", meds)):  # fmt: skip
        (site / f"{name}.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    return site


def _evidence(out: Path) -> list[dict[str, str]]:
    with (out / "s" / "evidence.csv").open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _rows(rows: list[dict[str, str]], pid: str, crit: str) -> list[dict[str, str]]:
    return [r for r in rows if r["patient_id"] == pid and r["criterion"] == crit]


def test_absence_leaves_one_searched_row_with_the_summarised_records_counted(
    tmp_path: Path,
) -> None:
    cfg_path = write_config(tmp_path, {"s": str(_site(tmp_path))})
    run(load_config(cfg_path), AS_OF, tmp_path / "out")
    with Store(tmp_path / "out" / ".cohort" / "store.sqlite") as store:
        # the three medication records and two results were summarised, not stored: counted
        side = store.side_facts("s", ["p1"])["p1"]
        assert side[2] == {"MedicationRequest": 3, "Observation": 2}
        assert side[3] == {"Observation": date(2026, 7, 1)}  # the latest of the two results
    rows = _evidence(tmp_path / "out")

    # only medication records no concept maps: a fail resting on one row saying so
    [p1] = _rows(rows, "p1", "background_therapy")
    assert (p1["status"], p1["used"], p1["ref"], p1["concept"]) == ("fail", "yes", "", QUALIFYING)
    assert p1["note"].startswith("searched: medication records of")
    assert f"current on {AS_OF}: none" in p1["note"]
    assert "3 other medication record(s) on file, latest 2026-05-01" in p1["note"]
    assert "not mapped to any concept (see cohort mappings coverage)" in p1["note"]

    # no medication record at all: unknown, the row says none is on file
    [p2] = _rows(rows, "p2", "background_therapy")
    assert (p2["status"], p2["used"], p2["ref"]) == ("unknown", "yes", "")
    assert "no medication records on file" in p2["note"]

    # a qualifying record: as before, the record alone
    p3 = _rows(rows, "p3", "background_therapy")
    assert [(r["status"], r["ref"], r["note"]) for r in p3] == [
        ("pass", "MedicationRequest/r4", "current")
    ]

    # a lab criterion unknown for want of a result says the same of the results on file
    [sledai] = _rows(rows, "p1", "sledai")
    assert sledai["status"] == "unknown" and sledai["ref"] == "" and sledai["concept"] == "sledai"
    assert f"Observation records of sledai in the 90 days before {AS_OF}: none" in sledai["note"]
    assert "2 other Observation record(s) on file, latest 2026-07-01" in sledai["note"]
    [none] = _rows(rows, "p2", "sledai")
    assert "no Observation records on file" in none["note"]

    # `cohort explain` lists the same row
    args = ["explain", "p1", "--config", str(cfg_path), "--out", str(tmp_path / "out")]
    got = CliRunner().invoke(cli, [*args, "--as-of", AS_OF.isoformat()])
    assert got.exit_code == 0, got.output
    lines = got.output.splitlines()
    at = lines.index(next(x for x in lines if "] background_therapy " in x))
    used = [x for x in lines[at : at + 6] if x.startswith("  used: ")]
    assert len(used) == 1 and p1["note"] in used[0]


def test_a_qualifying_record_set_aside_is_the_evidence_and_other_records_are_counted() -> None:
    # a qualifying record that ended: the fail shows it (ignored), no search row beside it
    past = medication(
        "MedicationStatement", "8640", status="completed", start=ago(200), end=ago(100)
    )
    r = settled("background_therapy", past)
    assert r.status.value == "fail" and r.evidence == ()
    assert [e.note for e in r.ignored] == ["not current on the as-of date"]
    # a stored record of no qualifying concept alone (lisinopril): the search row counts it
    other = medication("MedicationStatement", "29046", status="active", start=ago(30))
    r = settled("background_therapy", other)
    assert r.status.value == "fail" and r.ignored == ()
    [row] = r.evidence
    assert row.ref == "" and row.concept == QUALIFYING
    assert f"current on {AS_OF}: none; 1 other medication record(s) on file" in row.note
    assert f"latest {ago(30)}" in row.note


def test_a_pass_keeps_its_evidence_unchanged() -> None:
    current = medication("MedicationStatement", "5521", status="active", start=ago(30))
    r = settled("background_therapy", current)
    assert r.status.value == "pass"
    assert [(e.ref.split("/")[0], e.note) for e in r.evidence] == [("MedicationStatement", "current")]


def test_a_damaged_read_keeps_the_counts_last_read(tmp_path: Path) -> None:
    # (as it keeps the dates: what the file it could not read whole holds is unknown)
    with Store(tmp_path / "s.sqlite") as store:
        gen = store.begin_census("s", "src")
        store.add_census("s", "src", gen, [("p1", "m2026-01-01;MedicationRequest=4")], [])
        store.add_census("s", "src", gen, [("p1", ";MedicationRequest=1,Observation=2")], [])
        store.commit_census("s", "src", gen)
        assert store.side_facts("s", ["p1"])["p1"][2] == {"MedicationRequest": 5, "Observation": 2}
        gen = store.begin_census("s", "src")
        store.add_census("s", "src", gen, [("p1", "m2026-01-01;MedicationRequest=2")], [])
        store.carry_census("s", "src", gen)
        store.commit_census("s", "src", gen)
        got = store.side_facts("s", ["p1"])["p1"]
        assert got[1] == [date(2026, 1, 1)]
        assert got[2] == {"MedicationRequest": 5, "Observation": 2}
        # a second damaged night adds no row of its own
        gen = store.begin_census("s", "src")
        store.add_census("s", "src", gen, [("p1", "m2026-01-01;MedicationRequest=2")], [])
        store.carry_census("s", "src", gen)
        store.commit_census("s", "src", gen)
        assert store.side_facts("s", ["p1"])["p1"][2] == {"MedicationRequest": 5, "Observation": 2}


def _searched(cid: str, *resources: dict[str, Any], side: Side, as_of: date = AS_OF) -> str:
    """The note of `cid`'s one evidence row, the patient's summarised records being `side`."""
    ctx = make_context(add_side(facts(*resources), side), terminology(), as_of, rules(), None)
    [r] = [r for r in evaluate(trial(), ctx) if r.criterion == cid]
    assert r.status.value != "pass"
    [row] = r.evidence
    assert row.ref == ""
    return row.note


def _side(rtype: str, n: int, latest: date | None) -> Side:
    return [], [], {rtype: n}, {rtype: latest} if latest else {}


# (no concept maps either code: a heart rate, and a finding of a made-up code)
HR = "8867-4"
OTHER = "999999999"


def test_the_searched_row_dates_the_other_results_summarised_or_stored() -> None:
    stored = observation(HR, ago(40), valueQuantity={"value": 70, "unit": "/min"})
    # a summarised result more recent than the stored one ...
    note = _searched("neutrophils", stored, side=_side("Observation", 3, days_before(10)))
    assert f"; 4 other Observation record(s) on file, latest {ago(10)}, not mapped" in note
    # ... or older: the stored one is the latest
    note = _searched("neutrophils", stored, side=_side("Observation", 3, days_before(90)))
    assert f"; 4 other Observation record(s) on file, latest {ago(40)}, not mapped" in note
    # summarised results alone
    note = _searched("neutrophils", side=_side("Observation", 3, days_before(90)))
    assert f"; 3 other Observation record(s) on file, latest {ago(90)}, not mapped" in note


def test_the_searched_row_dates_the_other_conditions_summarised_or_stored() -> None:
    stored = condition(OTHER, "http://snomed.info/sct", onset=ago(100))
    note = _searched("sle_diagnosis", stored, side=_side("Condition", 2, days_before(20)))
    assert f"; 3 other Condition record(s) on file, latest {ago(20)}, not mapped" in note
    note = _searched("sle_diagnosis", stored, side=_side("Condition", 2, days_before(200)))
    assert f"; 3 other Condition record(s) on file, latest {ago(100)}, not mapped" in note
    # a record's recordedDate dates it before its onset (as last_seen reads it)
    stored = condition(OTHER, "http://snomed.info/sct", onset=ago(300), recorded=ago(50))
    note = _searched("sle_diagnosis", stored, side=_side("Condition", 2, days_before(200)))
    assert f"; 3 other Condition record(s) on file, latest {ago(50)}, not mapped" in note


def test_the_searched_row_leaves_out_a_latest_it_cannot_tell() -> None:
    stored = observation(HR, ago(40), valueQuantity={"value": 70, "unit": "/min"})
    # a store read before latest dates were kept: counted, not dated (the stored result may
    # not be the latest)
    note = _searched("neutrophils", stored, side=_side("Observation", 3, None))
    assert note.endswith("; 4 other Observation record(s) on file, not mapped to any concept"
                         " (see cohort mappings coverage)")  # fmt: skip
    # an as-of date before the latest summarised result: of those only the latest is kept,
    # so the latest on or before the as-of date is unknown (the stored one may not be it)
    note = _searched(
        "neutrophils", stored, side=_side("Observation", 3, days_before(10)), as_of=days_before(20)
    )
    assert "4 other Observation record(s) on file, not mapped" in note
    assert "latest" not in note


def test_the_census_keeps_the_latest_date_per_type_and_reads_an_older_store(
    tmp_path: Path,
) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        gen = store.begin_census("s", "src")
        rows = [
            ("p1", "2026-01-01,2026-03-03;Condition=1,Condition@2026-01-01,Observation=1,"
                   "Observation@2026-03-03"),
            ("p1", ";Observation=2,Observation@2026-02-02"),  # (another reading process's)
            ("p2", "2026-01-01;Observation=4"),  # written before latest dates were kept
        ]  # fmt: skip
        store.add_census("s", "src", gen, rows, [])
        store.commit_census("s", "src", gen)
        got = store.side_facts("s", ["p1", "p2"])
        assert got["p1"][2:] == (
            {"Condition": 1, "Observation": 3},
            {"Condition": date(2026, 1, 1), "Observation": date(2026, 3, 3)},
        )
        assert got["p2"][2:] == ({"Observation": 4}, {})
        # a damaged read keeps the latest last read where it read none as late
        gen = store.begin_census("s", "src")
        store.add_census("s", "src", gen, [("p1", ";Observation=1,Observation@2026-02-02")], [])
        store.carry_census("s", "src", gen)
        store.commit_census("s", "src", gen)
        got = store.side_facts("s", ["p1"])
        assert got["p1"][3] == {"Condition": date(2026, 1, 1), "Observation": date(2026, 3, 3)}
