"""A status, intent, doNotPerform or Condition abatement sent without a value (`_name` alone)."""

# Sent as its `_name` extension alone (FHIR R4 JSON: no value, e.g. a data-absent-reason). The
# record may be one the reading rules drop (entered-in-error, cancelled, a proposal, an order
# not to give the drug) or one that stays open (active): a criterion it could change is
# unknown, never read as if the status were the most permissive one.

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import responses
from criteria_helpers import (
    AS_OF,
    ago,
    condition,
    days_before,
    facts,
    immunization,
    medication,
    observation,
    procedure,
    qty,
    rules,
    settled,
    terminology,
    trial,
)
from fhir_fakes import BASE, SLE, TOKENS, FakeFhir, population
from test_absent_primitives import ABSENT
from test_line_triage import LOADED, _same
from test_reliability_support import write_config

from cohort.config import load_config
from cohort.evaluate import evaluate, make_context
from cohort.extract import Extractor, Triage
from cohort.runner import run
from cohort.source.fhir import ServerSettings, pull
from cohort.source.validate import check
from cohort.store import Store

RTX, HCQ = "121191", "5521"  # rituximab, hydroxychloroquine (RxNorm)
W36 = timedelta(weeks=36)


def unknown_status(res: dict[str, Any], name: str = "status") -> dict[str, Any]:
    """`res` with `name` sent as its data-absent-reason extension alone."""
    out = {k: v for k, v in res.items() if k != name}
    out["_" + name] = ABSENT
    return out


def rituximab(days: int, rid: str = "a1", **kw: Any) -> dict[str, Any]:
    """A rituximab administration `days` before as-of, completed."""
    kw.setdefault("status", "completed")
    return medication("MedicationAdministration", RTX, when=ago(days), rid=rid, **kw)


# --- validation ---------------------------------------------------------------------------------
def test_records_so_sent_are_valid() -> None:
    order = {**medication("MedicationRequest", RTX, authored=ago(5)), "intent": "order"}
    for res in (
        unknown_status(rituximab(10)),
        unknown_status(order),
        unknown_status(order, "intent"),
        {**order, "_doNotPerform": ABSENT},
        unknown_status(observation("777-3", ago(5), valueQuantity=qty(20, "10*3/uL", "10*3/uL"))),
        {**condition("B18.1"), "_abatementDateTime": ABSENT},
    ):
        assert check(res, "fast") is None, res


# --- medication records: status, intent, doNotPerform not known ---------------------------------
def test_a_dose_in_the_window_whose_status_is_not_known_is_unknown() -> None:
    """Rituximab given 100 days ago (window 36 weeks): a fail until 100 days ago + 36 weeks when
    completed, nothing when entered in error. It read as given (status ""): fail."""
    r = settled("washout_b_cell_depletion", unknown_status(rituximab(100)))
    assert r.status == "unknown", r.reason
    assert r.reason.startswith(
        "MedicationAdministration/a1: status not given (it may not count or may be ongoing):"
        " check the chart; read as given: fail: "
    ), r.reason
    assert r.eligible_from is None
    [row] = [e for e in r.evidence if e.ref == "MedicationAdministration/a1"]
    assert row.note.endswith("status not given: it may not count or may be ongoing")
    # with its status, as before
    done = settled("washout_b_cell_depletion", rituximab(100))
    assert (done.status, done.eligible_from) == ("fail", days_before(100) + W36)


def test_an_ended_course_outside_the_window_changes_nothing() -> None:
    """Rituximab from 400 to 390 days ago (ended: no status keeps it open): outside the 36-week
    window whether it counts or not: pass, as before."""
    stmt = medication("MedicationStatement", RTX, start=ago(400), end=ago(390), rid="s1")
    r = settled("washout_b_cell_depletion", unknown_status(stmt))
    assert r.status == "pass", r.reason
    assert "status not given" not in r.reason


def test_a_record_without_an_end_may_be_ongoing() -> None:
    """Hydroxychloroquine started 30 days ago, no end: current if active, a one-day record if
    completed. `background_therapy` read it as one day (status ""): fail; now unknown."""
    stmt = medication("MedicationStatement", HCQ, start=ago(30), rid="s2")
    r = settled("background_therapy", unknown_status(stmt))
    assert r.status == "unknown", r.reason
    assert r.reason.startswith(
        "MedicationStatement/s2: status not given (it may not count or may be ongoing):"
        " check the chart; read as given: fail: "
    ), r.reason
    assert settled("background_therapy", stmt).status == "pass"  # active


def test_an_exclusion_failing_on_another_record_fails_with_no_date() -> None:
    """A completed dose 10 days ago fails until 10 days ago + 36 weeks; an older dose whose
    status is not known may be on hold (open): it fails as surely, but until no known date."""
    r = settled("washout_b_cell_depletion", rituximab(10, "a2"), unknown_status(rituximab(100)))
    assert r.status == "fail"
    assert r.eligible_from is None
    assert r.reason.endswith(
        "; MedicationAdministration/a1: status not given (it may not count or may be ongoing):"
        " it may fail for longer, check the chart"
    ), r.reason
    alone = settled("washout_b_cell_depletion", rituximab(10, "a2"))
    assert alone.eligible_from == days_before(10) + W36


@pytest.mark.parametrize("name", ["intent", "doNotPerform"])
def test_an_order_whose_intent_or_do_not_perform_is_not_known_is_unknown(name: str) -> None:
    """An active rituximab order of 100 days ago: open, a fail with no end; a proposal, or an
    order not to give it, is no prescription (dropped): pass. It read as an order: fail."""
    order = {**medication("MedicationRequest", RTX, authored=ago(100), rid="r1"), "intent": "order"}
    doubted = unknown_status(order, name)
    r = settled("washout_b_cell_depletion", doubted)
    assert r.status == "unknown", r.reason
    assert r.reason.startswith(
        f"MedicationRequest/r1: {name} not given (it may not count): check the chart;"
        " read as given: fail: "
    ), r.reason
    assert settled("washout_b_cell_depletion", order).status == "fail"
    # a known value still decides: a proposal is dropped whatever doNotPerform says
    proposal = {**doubted, "intent": "proposal"} if name == "doNotPerform" else None
    if proposal is not None:
        assert settled("washout_b_cell_depletion", proposal).status == "pass"


def test_a_status_with_its_value_is_read_as_before() -> None:
    res = {**rituximab(100), "_status": ABSENT}  # a value and an extension: the value counts
    r = settled("washout_b_cell_depletion", res)
    assert (r.status, r.eligible_from) == ("fail", days_before(100) + W36)
    # an `_status` with only an id is no element (ele-1): the record is read as before
    no_element = {**unknown_status(rituximab(100)), "_status": {"id": "s"}}
    r = settled("washout_b_cell_depletion", no_element)
    assert (r.status, r.eligible_from) == ("fail", days_before(100) + W36)


def test_the_only_medication_record_whose_status_is_not_known_may_be_none() -> None:
    """An ibuprofen statement (no criterion's drug) started 30 days ago is the only medication
    record: if it counts, no antimalarial is current (fail); if entered in error there is no
    medication record at all (unknown). So unknown; the triage keeps it whole for that reading
    (summarised, it would only count as a medication record)."""
    stmt = medication("MedicationStatement", text="ibuprofen", start=ago(30), rid="s3")
    doubted = unknown_status(stmt)
    assert settled("background_therapy", stmt).status == "fail"
    assert settled("background_therapy", doubted).status == "unknown"
    triage = Triage(LOADED.rules, LOADED.relevant)
    assert triage.offer_checked(stmt) is True
    assert triage.offer_checked(doubted) is False
    order = {**medication("MedicationRequest", text="ibuprofen", authored=ago(3)), "intent": "order"}
    assert triage.offer_checked(order) is True
    assert triage.offer_checked(unknown_status(order, "intent")) is False
    assert triage.offer_checked({**order, "_doNotPerform": ABSENT}) is False
    assert triage.offer_checked({**order, "doNotPerform": False, "_doNotPerform": ABSENT}) is True


# --- results, procedures, vaccines --------------------------------------------------------------
def test_a_result_whose_status_is_not_known_may_not_count() -> None:
    """A platelet count of 20 five days ago fails `platelets`; cancelled or entered in error,
    the older count of 150 in the window decides: pass. It read as a result: fail."""
    k = "10*3/uL"
    newer = observation("777-3", ago(5), valueQuantity=qty(20, k, k))
    older = observation("777-3", ago(20), valueQuantity=qty(150, k, k))
    assert settled("platelets", newer, older).status == "fail"
    r = settled("platelets", unknown_status(newer), older)
    assert r.status == "unknown", r.reason
    assert r.reason.startswith(f"Observation/{newer['id']}: status not given (it may not count):")
    # both readings agree: the older count of 20 fails either way
    low = observation("777-3", ago(20), valueQuantity=qty(20, k, k))
    assert settled("platelets", unknown_status(newer), low).status == "fail"


def test_a_vaccine_or_procedure_whose_status_is_not_known_is_unknown() -> None:
    """A live MMR vaccine 10 days ago fails `live_vaccine` (4 weeks); not done, it passes. A
    plasmapheresis 30 days ago fails `washout_24wk`; not done, it passes."""
    vaccine = immunization("03", ago(10))
    assert settled("live_vaccine", vaccine).status == "fail"
    assert settled("live_vaccine", unknown_status(vaccine)).status == "unknown"
    done = procedure("20720000", when=ago(30))
    assert settled("washout_24wk", done).status == "fail"
    assert settled("washout_24wk", unknown_status(done)).status == "unknown"
    # one of 300 days ago with an end is out of the window either way
    old = procedure("20720000", start=ago(300), end=ago(299))
    assert settled("washout_24wk", unknown_status(old)).status == "pass"


# --- Condition abatement given without a date ---------------------------------------------------
@pytest.mark.parametrize(
    "abatement",
    [{"_abatementDateTime": ABSENT}, {"_abatementString": ABSENT}, {"abatementString": "in 2019"}],
)
def test_an_undated_abatement_of_an_active_condition_is_unknown(abatement: dict[str, Any]) -> None:
    """An abatement says the condition ended, at a time not given; clinicalStatus active says it
    did not (FHIR con-4: an abated condition is inactive, resolved or in remission): it may or
    may not be over on as-of. It read as no abatement: `hbv` failed."""
    c = {**condition("B18.1"), **abatement}
    [f] = facts(c).conditions
    assert (f.abatement, f.abatement_undated) == (None, True)
    r = settled("hbv", c)
    assert r.status == "unknown", r.reason
    assert r.reason == (
        "chronic hepatitis B condition abated on a date not given: cannot tell if still active"
        f" on {AS_OF}"
    )


@pytest.mark.parametrize("clinical", ["resolved", "inactive", "remission", None])
def test_an_undated_abatement_of_a_condition_not_active_changes_nothing(
    clinical: str | None,
) -> None:
    c = {**condition("B18.1", clinical=clinical), "_abatementDateTime": ABSENT}
    assert settled("hbv", c).status == "pass"


def test_an_abatement_companion_with_only_an_id_is_no_abatement() -> None:
    c = {**condition("B18.1"), "_abatementDateTime": {"id": "a"}}
    assert facts(c).conditions[0].abatement_undated is False
    assert settled("hbv", c).status == "fail"
    dated = {**condition("B18.1", abatement=ago(10)), "_abatementDateTime": ABSENT}
    assert settled("hbv", dated).status == "pass"  # the date decides


# --- the line triage and a file run -------------------------------------------------------------
def test_the_line_triage_reads_these_records_as_the_parsed_ones() -> None:
    subject = {"reference": "Patient/p1"}
    body = {"subject": subject, "_status": ABSENT}
    lines = [
        orjson.dumps({**body, "resourceType": "Observation", "id": "o1",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
                      "effectiveDateTime": "2026-01-02"}),
        orjson.dumps({**body, "resourceType": "Observation", "id": "o2",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                      "effectiveDateTime": "2026-01-02"}),
        orjson.dumps({**body, "resourceType": "Procedure", "id": "p1",
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "73761001"}]}}),
        orjson.dumps({**body, "resourceType": "Immunization", "id": "i1", "patient": subject,
                      "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]},
                      "occurrenceDateTime": "2026-01-01"}),
        orjson.dumps({"resourceType": "Condition", "id": "c1", "subject": subject,
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "195662009"}]},
                      "recordedDate": "2026-01-02", "_abatementDateTime": ABSENT}),
    ]  # fmt: skip
    _same(lines)


def test_a_file_run_reads_them_so(tmp_path: Path) -> None:
    """From an NDJSON file and a Bundle: the statement whose status is not known makes
    `background_therapy` unknown, the hepatitis B abated on a date not given `hbv` unknown."""
    sle = condition("M32.9", onset="2015-01-01", rid="sle")
    hbv = {**condition("B18.1", rid="hbv"), "_abatementDateTime": ABSENT}
    hcq = unknown_status(medication("MedicationStatement", HCQ, start=ago(30), rid="s2"))
    pat = {"resourceType": "Patient", "id": "p1", "birthDate": "1990-01-01"}
    (tmp_path / "site").mkdir()
    records = [pat, sle, hbv, hcq]
    (tmp_path / "site" / "all.ndjson").write_text("\n".join(json.dumps(r) for r in records))
    (tmp_path / "bundle").mkdir()
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in records]}  # fmt: skip
    (tmp_path / "bundle" / "b.json").write_text(json.dumps(bundle))
    sites = {"s": str(tmp_path / "site"), "b": str(tmp_path / "bundle")}
    out = tmp_path / "out"
    run(load_config(write_config(tmp_path, sites)), date(2026, 11, 25), out)
    for site in sites:
        with (out / site / "candidates.csv").open(encoding="utf-8-sig", newline="") as f:
            [row] = list(csv.DictReader(f))
        assert row["background_therapy"] == "unknown", site
        assert row["hbv"] == "unknown", site


def test_a_server_search_reads_them_so(tmp_path: Path) -> None:
    """Pulled by a FHIR search (not validated, not triaged), the same reading."""
    hbv = {**condition("B18.1", rid="hbv"), "_abatementDateTime": ABSENT}
    hcq = unknown_status(medication("MedicationStatement", HCQ, start=ago(30), rid="s2"))
    settings = ServerSettings.from_dict({"base_url": BASE, "max_retries": 1}, "sites[0].server")
    with Store(tmp_path / "s.db") as store, responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps, page=50)
        population(fake, n=1)
        for res in (hbv, hcq):
            fake.add({**res, "subject": {"reference": "Patient/p0"}}, "2026-11-01T00:00:00Z")
        tokens = {**TOKENS, "Condition": [SLE, "http://hl7.org/fhir/sid/icd-10-cm|B18.1"],
                  "MedicationStatement": [f"http://www.nlm.nih.gov/research/umls/rxnorm|{HCQ}"]}  # fmt: skip
        pull("uci", settings, store, tokens, screen_tokens=[SLE])
        [(pid, records)] = list(store.iter_by_patient("uci", ["p0"]))
        assert {r["id"] for r in records} >= {"hbv", "s2"}
        pf = Extractor(rules(), lambda _: None).facts(pid, records)
    got = {r.criterion: r for r in evaluate(trial(), make_context(pf, terminology(), AS_OF, rules()))}
    assert got["background_therapy"].status == "unknown", got["background_therapy"].reason
    assert got["hbv"].status == "unknown", got["hbv"].reason
