"""Extractor: FHIR dicts -> PatientFacts (dates, references, reading rules, exposures, dosage)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from criteria_helpers import (
    ICD,
    LOINC,
    RXNORM,
    SNOMED,
    UCUM,
    ago,
    cc,
    condition,
    dosage,
    facts,
    immunization,
    medication,
    medication_resource,
    observation,
    patient,
    procedure,
    qty,
    rules,
    status,
    terminology,
)

from cohort.extract import Extractor, parse_date
from cohort.model import Code, Quantity
from cohort.store import reference_id


# --- dates and references ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-04", date(2026, 3, 4)),
        ("2026-03-04T10:15:00Z", date(2026, 3, 4)),
        ("2026-03-04T23:59:59+09:00", date(2026, 3, 4)),
        ("2026-03", date(2026, 3, 1)),
        ("2026", date(2026, 1, 1)),
        ("2026-02-30", None),
        ("garbage", None),
        ("", None),
        (None, None),
        (20260304, None),
    ],
)
def test_parse_date(value: Any, expected: date | None) -> None:
    assert parse_date(value) == expected


@pytest.mark.parametrize(
    ("ref", "rtype", "expected"),
    [
        ("Patient/123", "Patient", "123"),
        ("Medication/med-1", "Medication", "med-1"),
        ("https://fhir.example.org/r4/Medication/m9", "Medication", "m9"),
        ("https://fhir.example.org/r4/Medication/m9/_history/3", "Medication", "m9"),
        ("Medication/m9/_history/3", "Medication", "m9"),
        ("Patient/p1 ", "Patient", "p1"),  # trailing space
        ("Patient/p2/", "Patient", "p2"),  # trailing slash
        ("Patient/p3?x=1#f", "Patient", "p3"),
        ("m9", "Medication", None),
        ("Patient/123", "Medication", None),  # another type
        ("Patient/bad id", "Patient", None),  # whitespace: names nobody
        ("Patient/p\u200f1", "Patient", None),  # a right-to-left mark
        ("Patient/p\u00001", "Patient", None),
        ("Patient/caf\u00e9", "Patient", None),
        ("Patient/o'brien", "Patient", None),  # the CSV guard's mark
        ("Patient/" + "x" * 257, "Patient", None),
        # not FHIR ids, but ids servers issue (pulled records are not validated): kept, or
        # their patients and Medications would be dropped without a word
        ("Patient/" + "x" * 65, "Patient", "x" * 65),
        ("Patient/a_b", "Patient", "a_b"),
        ("Medication/m_1%2F", "Medication", "m_1%2F"),
        (None, "Patient", None),
        ({"reference": "Patient/1"}, "Patient", None),
    ],
)
def test_reference_id(ref: Any, rtype: str, expected: str | None) -> None:
    """One reference parser for the store, screening, facts and the server pull (three used to
    disagree: "Patient/p1 " was p1 in the store and "p1 " to screening, found by fuzzing)."""
    assert reference_id(ref, rtype) == expected


# --- reading rules: dropped records ------------------------------------------------------------
@pytest.mark.parametrize(
    "resource",
    [
        condition("M32.14", verification="refuted"),
        condition("M32.14", verification="entered-in-error"),
        observation("777-3", "2026-11-01", status="entered-in-error"),
        observation("777-3", "2026-11-01", status="cancelled"),
        observation("777-3", "2026-11-01", status="registered"),
        medication("MedicationStatement", "8640", status="entered-in-error"),
        medication("MedicationStatement", "8640", status="not-taken"),
        medication("MedicationRequest", "8640", status="cancelled"),
        medication("MedicationRequest", "8640", status="draft"),
        medication("MedicationRequest", "8640", status="entered-in-error"),
        medication("MedicationAdministration", "8640", status="not-done"),
        medication("MedicationAdministration", "8640", status="entered-in-error"),
        immunization("03", "2026-11-01", status="not-done"),
        immunization("03", "2026-11-01", status="entered-in-error"),
        procedure("20720000", when="2026-11-01", status="not-done"),
        procedure("20720000", when="2026-11-01", status="entered-in-error"),
    ],
)
def test_dropped_records(resource: dict) -> None:
    pf = facts(resource)
    ref = f"{resource['resourceType']}/{resource['id']}"
    assert [d.ref for d in pf.dropped] == [ref]
    assert not (
        pf.conditions or pf.observations or pf.exposures or pf.immunizations or pf.procedures
    )


@pytest.mark.parametrize(
    "resource",
    [
        observation("777-3", "2026-11-01", status="preliminary"),
        observation("777-3", "2026-11-01", status="amended"),
        medication("MedicationStatement", "8640", status="completed"),
        medication("MedicationStatement", "8640", status="stopped"),
        medication("MedicationRequest", "8640", status="stopped"),
        condition("M32.14", verification="unconfirmed"),
        condition("M32.14", verification=None),
    ],
)
def test_kept_records(resource: dict) -> None:
    assert facts(resource).dropped == []


def test_a_status_that_is_not_a_string_on_an_unvalidated_type_is_not_a_drop() -> None:
    # Patient.status is not an element validation checks, so such a record is stored; reading
    # it once stopped the whole run (unhashable list in the drop-status lookup)
    pf = facts({"resourceType": "Patient", "id": "p1", "birthDate": "1990", "status": ["x"]})
    assert pf.dropped == [] and pf.patient.birth_date == "1990"


def test_exposures_come_from_the_three_medication_types_only() -> None:
    pf = facts(
        medication("MedicationStatement", "8640"),
        medication("MedicationRequest", "8640"),
        medication("MedicationAdministration", "8640", status="completed"),
        medication_resource("8640", mid="x"),
        condition("M32.14"),
    )
    assert sorted(e.ref.split("/")[0] for e in pf.exposures) == [
        "MedicationAdministration",
        "MedicationRequest",
        "MedicationStatement",
    ]


# --- Patient -----------------------------------------------------------------------------------
def test_patient_fields() -> None:
    p = patient(
        "1990-04-02",
        pid="abc",
        gender="female",
        name=[{"given": ["Ana", "M"], "family": "Lopez"}],
        identifier=[
            {"type": cc("MR", "http://terminology.hl7.org/CodeSystem/v2-0203"), "value": "MRN-7"}
        ],
        telecom=[{"system": "email", "value": "a@x"}, {"system": "phone", "value": "555-1"}],
        address=[{"postalCode": "92660"}],
    )
    pf = facts(p, pid="abc")
    assert pf.patient.id == "abc"
    assert pf.patient.birth_date == "1990-04-02"
    assert pf.patient.sex == "female"
    assert pf.patient.name == "Ana M Lopez"
    assert pf.patient.mrn == "MRN-7"
    assert pf.patient.phone == "555-1"
    assert pf.patient.postal_code == "92660"


# The QA sample (tests/data/mrn, from real exports): the Epic MRN with only `type.text`, with a
# coded MR, and with no type at all (its site-specific system only); each beside the EPI id.
MRN_DATA = Path(__file__).resolve().parent / "data" / "mrn"
EPIC_MRN = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def _mrns(mrn_systems: tuple[str, ...] = ()) -> dict[str, str]:
    lines = (MRN_DATA / "Patient.ndjson").read_text().splitlines()
    extractor = Extractor(rules(), {}.get, mrn_systems=mrn_systems)
    out = {}
    for line in lines:
        res = json.loads(line)
        out[res["id"]] = extractor.facts(res["id"], [res]).patient.mrn
    return out


def test_mrn_of_the_three_qa_variants() -> None:
    """Only a coded MR was read: the type.text "MRN" one left the mrn column empty, and one
    known by its system alone needs the site's `mrn_system`."""
    assert _mrns() == {"m1": "00012345", "m2": "00012345", "m3": ""}
    assert _mrns((EPIC_MRN,)) == {"m1": "00012345", "m2": "00012345", "m3": "00012345"}
    assert _mrns(("urn:oid:other", EPIC_MRN)) == _mrns((EPIC_MRN,))


@pytest.mark.parametrize(
    "text",
    ["MRN", "MR", " mrn ", "Medical Record Number", "Medical record no.", "medical record #",
     "MEDICAL  RECORD  NUMBER", "Medical record"],
)
def test_mrn_by_type_text(text: str) -> None:
    ident = [{"type": {"text": "EPI"}, "value": "E1"}, {"type": {"text": text}, "value": "M-1"}]
    assert facts(patient("1990-01-01", identifier=ident)).patient.mrn == "M-1"


@pytest.mark.parametrize(
    "text", ["EPI", "SSN", "Mr. Smith's id", "MRN (old)", "record number", "Medical"]
)
def test_other_type_texts_are_no_mrn(text: str) -> None:
    ident = [{"type": {"text": text}, "value": "X-1"}]
    assert facts(patient("1990-01-01", identifier=ident)).patient.mrn == ""


def test_mrn_preference_system_then_coded_then_text() -> None:
    coded = {"type": cc("MR", V2_0203), "system": "urn:oid:old", "value": "CODED"}
    text = {"type": {"text": "Medical Record Number"}, "value": "TEXT"}
    by_system = {"system": EPIC_MRN, "value": "SYSTEM"}

    def mrn(*idents: dict[str, Any], systems: tuple[str, ...] = ()) -> str:
        res = patient("1990-01-01", identifier=list(idents))
        return Extractor(rules(), {}.get, mrn_systems=systems).facts("p1", [res]).patient.mrn

    # the configured system wins over a coded MR, in either order, whatever its type says
    assert mrn(coded, by_system, systems=(EPIC_MRN,)) == "SYSTEM"
    assert mrn(by_system, coded, text, systems=(EPIC_MRN,)) == "SYSTEM"
    assert mrn({**by_system, "type": {"text": "EPI"}}, coded, systems=(EPIC_MRN,)) == "SYSTEM"
    # a coded MR wins over a type text; a text one over nothing
    assert mrn(coded, text) == "CODED" and mrn(text, coded) == "CODED"
    assert mrn(text, by_system) == "TEXT"
    # a configured system none of them has: the rest as without one
    assert mrn(text, coded, systems=("urn:oid:9",)) == "CODED"
    # an identifier of the system without a value is no MRN: the next level's is
    assert mrn({"system": EPIC_MRN}, coded, systems=(EPIC_MRN,)) == "CODED"


def test_several_mrns_at_one_level_the_last_listed_not_a_retired_one() -> None:
    """Of several at one level the last listed (as the coded-MR reading always did), but an
    identifier whose `use` is `old` (a retired MRN a merge kept) only when no other is there:
    the coordinator searches the EHR by the current one."""
    current = {"type": cc("MR", V2_0203), "use": "usual", "value": "A"}
    retired = {"type": cc("MR", V2_0203), "use": "old", "value": "B"}
    assert facts(patient("1990-01-01", identifier=[current, retired])).patient.mrn == "A"
    assert facts(patient("1990-01-01", identifier=[retired, current])).patient.mrn == "A"
    assert facts(patient("1990-01-01", identifier=[retired])).patient.mrn == "B"
    # a retired coded MR still wins over a type text (levels first)
    text = {"type": {"text": "MRN"}, "value": "T"}
    assert facts(patient("1990-01-01", identifier=[text, retired])).patient.mrn == "B"
    texts = [{"type": {"text": "MRN"}, "value": "A"}, {"type": {"text": "MR"}, "value": "B"}]
    assert facts(patient("1990-01-01", identifier=texts)).patient.mrn == "B"


def _contact(as_of: date | None = None, **fields: Any) -> tuple[str, str, str]:
    """(name, phone, postal_code) read from a Patient with these elements."""
    p = Extractor(rules(), {}.get, as_of=as_of).facts("p1", [patient("1990-01-01", **fields)])
    return p.patient.name, p.patient.phone, p.patient.postal_code


def _phone(value: str, **kw: Any) -> dict[str, Any]:
    return {"system": "phone", "value": value, **kw}


ENDED = {"start": "2016-12-06", "end": "2020-07-22"}


def test_patient_old_name_phone_and_address_listed_first_are_not_read() -> None:
    """The coordinator's CSV showed a name and a ZIP the patient no longer has: the first
    listed was read, an `old` one (US Core's Amy Shaw, now Baxter)."""
    got = _contact(
        name=[{"use": "old", "given": ["Amy"], "family": "Shaw"},
              {"use": "usual", "given": ["Amy"], "family": "Baxter"}],
        telecom=[_phone("555-0100", use="old"), _phone("555-0199", use="home")],
        address=[{"use": "old", "postalCode": "74047"}, {"postalCode": "74048"}],
    )  # fmt: skip
    assert got == ("Amy Baxter", "555-0199", "74048")


@pytest.mark.parametrize("as_of", [None, date(2026, 11, 25)])
def test_patient_entries_whose_period_ended_are_not_read(as_of: date | None) -> None:
    got = _contact(
        as_of,
        name=[{"given": ["Amy"], "family": "Shaw", "period": ENDED},
              {"given": ["Amy"], "family": "Baxter", "period": {"start": "2020-07-22"}}],
        telecom=[_phone("555-0100", period=ENDED), _phone("555-0199")],
        address=[{"postalCode": "74047", "period": ENDED}, {"postalCode": "74048"}],
    )  # fmt: skip
    assert got == ("Amy Baxter", "555-0199", "74048")


def test_patient_a_period_ending_after_as_of_is_current() -> None:
    """As of the run's day an end still to come has not ended; without a day (a tool that
    gives none) any end ranks below an entry with none."""
    later = {"start": "2020-01-01", "end": "2027-06"}
    fields: dict[str, Any] = {
        "address": [{"use": "temp", "postalCode": "10001", "period": later},
                    {"use": "home", "postalCode": "74048", "period": ENDED}],
    }  # fmt: skip
    assert _contact(date(2026, 11, 25), **fields)[2] == "10001"
    assert _contact(date(2027, 7, 1), **fields)[2] == "74048"  # both ended: the home one
    fields["address"][1]["period"] = {"start": "2010-01-01"}
    assert _contact(date(2026, 11, 25), **fields)[2] == "74048"  # home over temp
    assert _contact(None, **fields)[2] == "74048"


def test_patient_name_official_or_usual_over_nickname_and_maiden() -> None:
    names = [
        {"use": "nickname", "given": ["Mandy"]},
        {"use": "maiden", "given": ["Amanda"], "family": "Shaw"},
        {"given": ["A."], "family": "Baxter"},
        {"use": "official", "given": ["Amanda"], "family": "Baxter"},
    ]
    assert _contact(name=names)[0] == "Amanda Baxter"
    assert _contact(name=names[:3])[0] == "A. Baxter"  # no use: before a nickname
    assert _contact(name=names[:2])[0] == "Amanda Shaw"  # a maiden name over a nickname
    # an entry naming nobody is passed over, as before
    assert _contact(name=[{"use": "official", "family": ""}, names[0]])[0] == "Mandy"


def test_patient_phone_by_rank_then_use() -> None:
    """ContactPoint.rank orders the phones (1 first), whatever their use; unranked ones after
    the ranked; an e-mail is no phone; one without a value is none."""
    assert _contact(telecom=[_phone("555-0001", use="home"), _phone("555-0002", rank=1)])[1] == (
        "555-0002"
    )
    assert _contact(telecom=[_phone("555-0003", rank=3), _phone("555-0002", rank=2)])[1] == (
        "555-0002"
    )
    assert _contact(telecom=[_phone("555-0004", use="temp"), _phone("555-0005", use="mobile")])[
        1
    ] == "555-0005"
    assert _contact(
        telecom=[{"system": "email", "value": "a@x", "rank": 1}, _phone(""), _phone("555-0006")]
    )[1] == "555-0006"
    # a retired phone loses to any current one, ranked first or not
    assert _contact(telecom=[_phone("555-0007", use="old", rank=1), _phone("555-0008")])[1] == (
        "555-0008"
    )


def test_patient_address_home_over_billing_and_work() -> None:
    address = [
        {"use": "billing", "postalCode": "10001"},
        {"use": "work", "postalCode": "10002"},
        {"postalCode": "10003"},
        {"use": "home", "postalCode": "10004"},
    ]
    assert _contact(address=address)[2] == "10004"
    assert _contact(address=address[:3])[2] == "10003"
    assert _contact(address=address[:2])[2] == "10002"
    # an address without a postal code gives none: the next one's
    assert _contact(address=[{"use": "home", "city": "Mounds"}, address[0]])[2] == "10001"


def test_patient_only_retired_entries_are_still_read() -> None:
    """A name, a phone, a ZIP no longer current are better than none for finding the chart."""
    got = _contact(
        name=[{"use": "old", "given": ["Amy"], "family": "Shaw", "period": ENDED}],
        telecom=[_phone("555-0100", use="old")],
        address=[{"use": "old", "postalCode": "74047", "period": ENDED}],
    )
    assert got == ("Amy Shaw", "555-0100", "74047")


def test_patient_contact_elements_of_the_wrong_shape_are_passed_over() -> None:
    got = _contact(
        name=["Amy", {"use": ["old"], "given": ["Amy"], "family": "Baxter"}],
        telecom=[_phone("555-0100", rank="1", period="2020"), "555"],
        address=[None, {"postalCode": "74048", "period": {"end": "someday"}}],
    )
    assert got == ("Amy Baxter", "555-0100", "74048")


def test_the_run_reads_the_contact_columns_as_of_its_day(tmp_path: Path) -> None:
    """candidates.csv's postal code is the one current on the run's `--as-of` day: a home
    address whose period ends after it is still the patient's."""
    import csv

    from test_reliability_support import write_config

    from cohort.config import load_config
    from cohort.runner import run

    sle = {"coding": [{"system": SNOMED, "code": "55464009"}]}
    records = [
        patient("1990-01-01", pid="z1", address=[
            {"use": "home", "postalCode": "11111", "period": {"end": "2027-01-01"}},
            {"use": "billing", "postalCode": "22222"},
        ]),
        {"resourceType": "Condition", "id": "z1-sle", "code": sle,
         "subject": {"reference": "Patient/z1"}, "onsetDateTime": "2015-01-01"},
    ]  # fmt: skip
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "z.ndjson").write_text("\n".join(json.dumps(r) for r in records))
    for as_of, postal in ((date(2026, 11, 25), "11111"), (date(2027, 2, 1), "22222")):
        out = tmp_path / f"out-{as_of}"
        run(load_config(write_config(tmp_path, {"s": str(tmp_path / "site")})), as_of, out)
        with (out / "s" / "candidates.csv").open(encoding="utf-8-sig", newline="") as f:
            [row] = list(csv.DictReader(f))
        assert row["postal_code"] == postal


@pytest.mark.public_data
def test_us_core_patient_example_reads_the_current_name_and_zip() -> None:
    """US Core's Patient example lists Amy V. Shaw's old name and address (use old, period
    ended 2020-07-22) before the current ones."""
    from test_public_data import _root

    res = json.loads((_root() / "us-core-examples" / "patient-example.json").read_text())
    for as_of in (None, date(2026, 11, 25)):
        p = Extractor(rules(), {}.get, as_of=as_of).facts(res["id"], [res]).patient
        assert (p.name, p.phone, p.postal_code) == ("Amy V. Baxter", "555-555-5555", "74048")


def test_patient_partial_birth_date_kept_as_recorded() -> None:
    assert facts(patient("2014-11")).patient.birth_date == "2014-11"


# --- Condition ---------------------------------------------------------------------------------
def test_condition_dates_and_statuses() -> None:
    c = condition(
        "M32.14",
        onset="2019-05-01T08:00:00Z",
        recorded="2019-06-01",
        abatement="2025-01-02",
        clinical="resolved",
        text="SLE nephritis",
    )
    [f] = facts(c).conditions
    assert f.ref == f"Condition/{c['id']}"
    assert f.codes == (Code(ICD, "M32.14"),)
    assert "SLE nephritis" in f.text
    assert (f.onset, f.recorded, f.abatement) == (
        date(2019, 5, 1),
        date(2019, 6, 1),
        date(2025, 1, 2),
    )
    assert f.clinical_status == "resolved"
    assert f.verification_status == "confirmed"


def test_condition_onset_period_and_abatement_period() -> None:
    c = condition("M32.14", onset_period="2018-02-03")
    c["abatementPeriod"] = {"start": "2024-01-01", "end": "2024-03-01"}
    [f] = facts(c).conditions
    assert f.onset == date(2018, 2, 3)
    assert f.abatement == date(2024, 3, 1)


@pytest.mark.parametrize(
    ("onset", "birth", "first", "last"),
    [
        # onset[x] Age / Range: days from the birth date, a partial one widening them
        ({"onsetAge": qty(20, "a", ucum=True)}, "1990-01-01", date(2010, 1, 1), date(2010, 12, 31)),
        ({"onsetAge": qty(20, "a", ucum=True)}, "1990", date(2010, 1, 1), date(2011, 12, 30)),
        ({"onsetAge": qty(20.5, "a", ucum=True)}, "1990-01-01", date(2010, 1, 1), date(2010, 12, 31)),
        ({"onsetAge": qty(18, "mo", ucum=True)}, "2020-01-15", date(2021, 7, 15), date(2021, 8, 14)),
        ({"onsetAge": qty(2, "wk", ucum=True)}, "2020-01-15", date(2020, 1, 29), date(2020, 2, 4)),
        ({"onsetAge": qty(3, "d", ucum=True)}, "2020-01-15", date(2020, 1, 18), None),
        ({"onsetAge": {**qty(20, "a", ucum=True), "comparator": "<"}}, "1990-01-01", date(1990, 1, 1), date(2010, 12, 31)),
        ({"onsetAge": {**qty(20, "a", ucum=True), "comparator": ">"}}, "1990-01-01", date(2010, 1, 1), date.max),
        ({"onsetRange": {"low": qty(18, "a", ucum=True), "high": qty(20, "a", ucum=True)}}, "1990-01-01", date(2008, 1, 1), date(2010, 12, 31)),
        ({"onsetRange": {"high": qty(20, "a", ucum=True)}}, "1990-01-01", date(1990, 1, 1), date(2010, 12, 31)),
        ({"onsetRange": {"low": qty(18, "a", ucum=True)}}, "1990-01-01", date(2008, 1, 1), date.max),
        # onsetPeriod with only an end: on or before it (any day up to it)
        ({"onsetPeriod": {"end": "2024-03"}}, None, date.min, date(2024, 3, 31)),
        ({"onsetPeriod": {"end": "2024-03-02"}}, None, date.min, date(2024, 3, 2)),
    ],
)  # fmt: skip
def test_condition_onset_age_range_and_period_end(
    onset: dict[str, Any], birth: str | None, first: date, last: date | None
) -> None:
    c = {**condition("M32.14", recorded="2026-10-01"), **onset}
    # the Patient after its Condition: ages are read once every record is
    [f] = facts(c, patient(birth)).conditions
    assert (f.onset, f.onset_last, f.onset_undated) == (first, last, False)
    assert f.recorded == date(2026, 10, 1)


@pytest.mark.parametrize(
    ("onset", "birth"),
    [
        ({"onsetString": "since childhood"}, "1990-01-01"),
        ({"onsetAge": qty(20, "a", ucum=True)}, None),  # no birth date
        ({"onsetAge": qty(20, "a", ucum=True)}, "19"),  # no birth date that reads
        ({"onsetAge": qty(20, "furlong", ucum=True)}, "1990-01-01"),  # no age unit
        ({"onsetAge": {"unit": "a"}}, "1990-01-01"),  # no value
        ({"onsetAge": qty(-1, "a", ucum=True)}, "1990-01-01"),
        ({"onsetRange": {}}, "1990-01-01"),
        ({"onsetPeriod": {}}, "1990-01-01"),
        ({"onsetDateTime": "sometime"}, "1990-01-01"),
    ],
)
def test_condition_onset_given_but_undated(onset: dict[str, Any], birth: str | None) -> None:
    # an onset the record gives but that cannot be dated: not "no onset" (no recordedDate reading)
    c = {**condition("M32.14", recorded="2026-10-01"), **onset}
    [f] = facts(patient(birth), c).conditions
    assert (f.onset, f.onset_last, f.onset_undated) == (None, None, True)


def test_condition_without_onset_is_not_undated() -> None:
    [f] = facts(condition("M32.14", recorded="2026-10-01")).conditions
    assert (f.onset, f.onset_undated) == (None, False)


def test_condition_without_status_has_empty_status() -> None:
    [f] = facts(condition("M32.14", clinical=None)).conditions
    assert f.clinical_status == ""


LOCAL = {"system": "http://ehr.example.org/status", "code": "A", "display": "Active"}
THO = "http://terminology.hl7.org/CodeSystem/"


@pytest.mark.parametrize(
    ("codings", "clinical", "verification"),
    [
        # the coding of the status's own code system, wherever it is (audit 2) ...
        ([LOCAL, {"system": THO + "condition-clinical", "code": "active"},
          {"system": THO + "condition-ver-status", "code": "provisional"}],
         "active", "provisional"),
        # ... also written https, with www. or a trailing slash, in another case
        ([LOCAL, {"system": "https://Terminology.HL7.org/CodeSystem/condition-clinical/",
                  "code": "remission"}], "remission", "A"),
        # ... before a local coding whose code looks like one of its codes
        ([{"system": "http://ehr.example.org/status", "code": "active"},
          {"system": THO + "condition-clinical", "code": "resolved"}], "resolved", "active"),
        # else the first coding with one of its value set's codes (another system, or none)
        ([LOCAL, {"system": "http://ehr.example.org/other", "code": "relapse"},
          {"code": "differential"}], "relapse", "differential"),
        # else the first coding, as before
        ([LOCAL, {"code": "B"}], "A", "A"),
        ([], "", ""),
    ],
)  # fmt: skip
def test_condition_status_read_from_its_code_system(
    codings: list[dict[str, str]], clinical: str, verification: str
) -> None:
    c = condition("M32.14", verification=None)
    c["clinicalStatus"] = c["verificationStatus"] = {"coding": codings}
    [f] = facts(c).conditions
    assert (f.clinical_status, f.verification_status) == (clinical, verification)


def test_refuted_in_a_later_coding_drops_the_condition() -> None:
    c = condition("M32.14", verification=None)
    refuted = {"system": THO + "condition-ver-status", "code": "refuted"}
    c["verificationStatus"] = {"coding": [LOCAL, refuted]}
    assert [(d.ref, d.why) for d in facts(c).dropped] == [
        (f"Condition/{c['id']}", "verificationStatus refuted")
    ]
    assert rules().drop_reason(c) == "verificationStatus refuted"


# --- Observation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"effectiveDateTime": "2026-10-01T09:00:00Z"}, date(2026, 10, 1)),
        ({"effectivePeriod": {"start": "2026-10-02", "end": "2026-10-03"}}, date(2026, 10, 2)),
        ({"effectiveInstant": "2026-10-04T00:00:00Z"}, date(2026, 10, 4)),
        ({"issued": "2026-10-05T12:00:00Z"}, date(2026, 10, 5)),
        ({"effectiveDateTime": "2026-10-01", "issued": "2026-10-09"}, date(2026, 10, 1)),
        ({}, None),
        # effectiveTiming: its earliest event (not the first listed), else
        # repeat.boundsPeriod's start (its end when it has no start, as effectivePeriod's)
        ({"effectiveTiming": {"event": ["2026-10-01T08:00:00Z", "2026-09-30"]}},
         date(2026, 9, 30)),
        # an event that does not read leaves the earliest unknown (as a Period's start that
        # does not read): not the next one that reads; `issued` where there is one
        ({"effectiveTiming": {"event": ["someday", 5, "2026-10-06"]}}, None),
        ({"effectiveTiming": {"event": ["Aug 2026", "2026-11-20"]},
          "issued": "2026-11-21T09:00:00Z"}, date(2026, 11, 21)),
        ({"effectiveTiming": {"repeat": {"boundsPeriod": {"start": "2026-10-07"},
                                         "frequency": 2}}}, date(2026, 10, 7)),
        ({"effectiveTiming": {"repeat": {"boundsPeriod": {"end": "2026-10-08"}}}},
         date(2026, 10, 8)),
        ({"effectiveTiming": {"event": ["2026-10-03"],
                              "repeat": {"boundsPeriod": {"start": "2026-10-01"}}}},
         date(2026, 10, 3)),
        # after effectivePeriod, before effectiveInstant and issued (FHIR's order of the choices)
        ({"effectivePeriod": {"start": "2026-10-02"},
          "effectiveTiming": {"event": ["2026-09-01"]}}, date(2026, 10, 2)),
        ({"effectiveTiming": {"event": ["2026-10-03"]},
          "effectiveInstant": "2026-10-04T00:00:00Z", "issued": "2026-10-05T12:00:00Z"},
         date(2026, 10, 3)),
        # a malformed Timing reads as none (as a malformed effectivePeriod): `issued` dates it
        ({"effectiveTiming": {"event": [5]}, "issued": "2026-10-05T12:00:00Z"},
         date(2026, 10, 5)),
        ({"effectiveTiming": {"event": "2026-10-01", "repeat": []},
          "issued": "2026-10-05T12:00:00Z"}, date(2026, 10, 5)),
        ({"effectiveTiming": ["2026-10-01"], "issued": "2026-10-05T12:00:00Z"}, date(2026, 10, 5)),
        ({"effectiveTiming": {"event": [None]}}, None),
    ],
)  # fmt: skip
def test_observation_date(fields: dict, expected: date | None) -> None:
    o = observation("777-3", None, valueQuantity=qty(1, "K/uL"))
    o.update(fields)
    [f] = facts(o).observations
    assert f.when == expected


def test_a_timing_s_events_give_the_earliest_and_its_time() -> None:
    """Timing.event lists the times it occurred: the earliest is when the result was observed,
    and on one day its time orders it among that day's results (ObservationFact.stamp); a
    partial event is read as its first day, and its last day kept."""
    o = observation("777-3", None, valueQuantity=qty(1, "K/uL"))
    o["effectiveTiming"] = {"event": ["2026-10-01T10:00:00Z", "2026-10-01T08:00:00Z",
                                      "2026-10-01"]}  # fmt: skip
    [f] = facts(o).observations
    assert (f.when, f.stamp, f.when_last) == (date(2026, 10, 1), "2026-10-01T08:00:00Z", None)
    o["effectiveTiming"] = {"event": ["2026-10-15", "2026-10"]}
    [f] = facts(o).observations
    assert (f.when, f.stamp, f.when_last) == (date(2026, 10, 1), "", date(2026, 10, 15))
    # the earliest of a year and a day in it is on or before that day: not the whole year
    o["effectiveTiming"] = {"event": ["2026", "2026-01-10T08:00:00Z"]}
    [f] = facts(o).observations
    assert (f.when, f.stamp, f.when_last) == (date(2026, 1, 1), "", date(2026, 1, 10))
    # a month and its first day: that day, the whole date with its time
    o["effectiveTiming"] = {"event": ["2026-03", "2026-03-01T07:30:00Z"]}
    [f] = facts(o).observations
    assert (f.when, f.stamp, f.when_last) == (date(2026, 3, 1), "2026-03-01T07:30:00Z", None)


def test_observation_values() -> None:
    q = observation(
        "777-3",
        "2026-10-01",
        valueQuantity=qty(150, "K/uL", "10*3/uL", "<"),
        ref_low=qty(140, "K/uL"),
        interpretation="N",
    )
    i = observation("X", "2026-10-01", valueInteger=7)
    s = observation("X", "2026-10-01", valueString="  1:160 ")
    c = observation("X", "2026-10-01", valueCodeableConcept=cc("10828004", SNOMED, "Positive"))
    r = observation("X", "2026-10-01", valueRatio={"numerator": qty(1), "denominator": qty(160)})
    b = observation("X", "2026-10-01", valueBoolean=True)
    pf = facts(q, i, s, c, r, b)
    fq, fi, fs, fc, fr, fb = pf.observations
    assert fq.codes == (Code(LOINC, "777-3"),)
    assert fq.value.quantity == Quantity(150.0, "K/uL", "10*3/uL", "<", UCUM)
    assert fq.ref_low is not None and fq.ref_low.value == 140
    assert [x.code for x in fq.interpretation] == ["N"]
    assert fq.status == "final"
    assert fi.value.quantity is not None and fi.value.quantity.value == 7
    assert fs.value.string == "1:160"
    assert fc.value.codes[0].code == "10828004" and fc.value.text == "Positive"
    assert fr.value.ratio is not None and fr.value.ratio[1].value == 160
    assert fb.value.boolean is True


def test_quantity_keeps_its_system() -> None:
    """Quantity.code is a UCUM unit only under the UCUM system: the system is kept to tell."""
    kg = {"value": 70, "unit": "kg", "system": SNOMED, "code": "258683005"}
    (o,) = facts(observation("29463-7", "2026-10-01", valueQuantity=kg)).observations
    assert o.value.quantity == Quantity(70.0, "kg", "258683005", "", SNOMED)
    bare = {"value": 70, "unit": "kg"}
    (o,) = facts(observation("29463-7", "2026-10-01", valueQuantity=bare)).observations
    assert o.value.quantity == Quantity(70.0, "kg")


def test_weight_with_a_snomed_unit_code_reads_the_unit_text() -> None:
    kg = {"value": 70, "unit": "kg", "system": SNOMED, "code": "258683005"}
    assert status("weight", observation("29463-7", ago(10), valueQuantity=kg)) == "pass"


def test_observation_components() -> None:
    o = observation(
        "BILAG-2004",
        "2026-10-01",
        components=[{"code": cc("renal", "urn:x", text="Renal"), "valueString": "A"}],
    )
    f, part = facts(o).observations  # (no `relevant`: every coded component is a fact too)
    [(codes, text, value)] = f.components
    assert codes == (Code("urn:x", "renal"),) and text == "Renal"
    assert value.string == "A"
    assert part.ref == f"Observation/{o['id']}#component[0]" and part.value.string == "A"


# --- components and panel headers (docs/rules.md "Panels and components") ---------------------
def _relevant(codes: tuple[Code, ...], text: str) -> bool:
    return bool(terminology().concepts_for(codes, text))


def _panel(code: str, *parts: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return observation(code, "2026-10-01T08:30:00Z", components=list(parts), rid="pan", **kw)


PLATELETS = {"code": cc("777-3", LOINC), "valueQuantity": qty(10, "10*3/uL", "10*3/uL")}
MCV = {"code": cc("787-2", LOINC), "valueQuantity": qty(90, "fL", "fL")}  # maps to nothing
HBSAG = {
    "code": cc("5196-1", LOINC),
    "valueString": "Reactive",
    "interpretation": [cc("POS", "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation")],
    "referenceRange": [{"low": qty(0, "1", "1")}],
}  # fmt: skip


def test_a_component_is_a_result_of_its_own() -> None:
    o = _panel("24363-4", HBSAG, MCV, status="amended")
    pf = Extractor(rules(), {}.get, _relevant).facts("p1", [o])
    [hbsag] = pf.observations  # the panel's code and MCV map to nothing: no fact
    assert hbsag.ref == "Observation/pan#component[0]"
    assert hbsag.codes == (Code(LOINC, "5196-1"),)
    assert (hbsag.status, hbsag.when, hbsag.stamp) == (
        "amended",
        date(2026, 10, 1),
        o["effectiveDateTime"],
    )
    assert hbsag.value.string == "Reactive"
    assert [c.code for c in hbsag.interpretation] == ["POS"]
    assert hbsag.ref_low == Quantity(0.0, "1", "1", "", UCUM)
    assert not hbsag.panel and not hbsag.absent
    assert pf.other_dates == [date(2026, 10, 1)]  # the panel's own date, for last_seen


def test_a_component_with_only_a_data_absent_reason_is_no_result() -> None:
    absent = {"code": cc("777-3", LOINC), "dataAbsentReason": cc("error")}
    [f] = (
        Extractor(rules(), {}.get, _relevant).facts("p1", [_panel("58410-2", absent)]).observations
    )
    assert f.absent


def test_a_record_whose_components_map_to_nothing_keeps_only_its_date() -> None:
    bp = _panel("85354-9", {"code": cc("8480-6", LOINC), "valueQuantity": qty(120, "mm[Hg]")})
    pf = Extractor(rules(), {}.get, _relevant).facts("p1", [bp])
    assert pf.observations == [] and pf.other_dates == [date(2026, 10, 1)]


def test_a_mapped_panel_keeps_its_own_fact_beside_its_components() -> None:
    hiv = {"code": cc("56888-1", LOINC), "valueString": "Negative"}
    header, part = (
        Extractor(rules(), {}.get, _relevant).facts("p1", [_panel("83101-6", hiv)]).observations
    )
    assert (header.ref, part.ref) == ("Observation/pan", "Observation/pan#component[0]")
    assert header.panel and not part.panel  # no value of its own: a header


@pytest.mark.parametrize(
    ("kw", "panel"),
    [
        ({"hasMember": [{"reference": "Observation/m1"}]}, True),
        ({"components": [MCV]}, True),
        ({"components": [MCV], "valueString": "see components"}, False),
        ({"components": [MCV], "interpretation": "POS"}, False),
        ({"components": [MCV], "dataAbsentReason": cc("error")}, False),
        ({"hasMember": []}, False),
        ({}, False),
    ],
)
def test_panel_header(kw: dict[str, Any], panel: bool) -> None:
    """No value, interpretation or dataAbsentReason of its own, but members or components: a
    panel header, which no criterion reads as a result (the `grades` kind reads its components)."""
    o = observation("83101-6", "2026-10-01", **kw)
    [f, *_] = facts(o).observations
    assert f.panel is panel


# --- exposures: intervals ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "start", "end", "ongoing"),
    [
        (
            {"start": "2026-01-01", "end": "2026-03-01", "status": "completed"},
            date(2026, 1, 1),
            date(2026, 3, 1),
            False,
        ),
        (
            {"start": "2026-01-01", "end": "2026-03-01", "status": "active"},
            date(2026, 1, 1),
            date(2026, 3, 1),
            False,
        ),
        ({"start": "2026-01-01", "status": "active"}, date(2026, 1, 1), None, True),
        ({"start": "2026-01-01", "status": "on-hold"}, date(2026, 1, 1), None, True),
        ({"start": "2026-01-01", "status": "intended"}, date(2026, 1, 1), None, True),
        ({"start": "2026-01-01", "status": "completed"}, date(2026, 1, 1), date(2026, 1, 1), False),
        ({"start": "2026-01-01", "status": "stopped"}, date(2026, 1, 1), date(2026, 1, 1), False),
        (
            {"when": "2026-02-02T10:00:00Z", "status": "completed"},
            date(2026, 2, 2),
            date(2026, 2, 2),
            False,
        ),
        ({"authored": "2026-02-03", "status": "active"}, date(2026, 2, 3), None, True),
        (
            {"authored": "2026-02-03", "status": "completed"},
            date(2026, 2, 3),
            date(2026, 2, 3),
            False,
        ),
        (
            {"start": "2026-01-01", "authored": "2025-12-01", "status": "active"},
            date(2026, 1, 1),
            None,
            True,
        ),
    ],
)
def test_exposure_interval(kw: dict, start: date, end: date | None, ongoing: bool) -> None:
    rtype = "MedicationRequest" if "authored" in kw else "MedicationStatement"
    [e] = facts(medication(rtype, "8640", **kw)).exposures
    assert (e.start, e.end, e.ongoing) == (start, end, ongoing)


def test_exposure_codes_text_and_route() -> None:
    m = medication(
        "MedicationStatement",
        "8640",
        text="Prednisone 5 mg",
        display="Prednisone",
        dosages=[dosage(qty(5, "mg", "mg"), route="Oral Route")],
    )
    [e] = facts(m).exposures
    assert e.ref == f"MedicationStatement/{m['id']}"
    assert e.codes == (Code(RXNORM, "8640", "Prednisone"),)
    assert "Prednisone 5 mg" in e.text
    assert e.route == "oral route"
    assert e.status == "active"


def test_contained_medication() -> None:
    med = medication_resource(
        "198145",
        display="prednisone 10 MG Oral Tablet",
        strength_mg=10,
        ingredient="8640",
        form="Oral Tablet",
        mid="c1",
    )
    m = medication("MedicationRequest", None, med_ref="#c1", contained=[med], authored="2026-01-01")
    [e] = facts(m).exposures
    assert {c.code for c in e.codes} == {"198145", "8640"}
    assert "prednisone 10 MG Oral Tablet" in e.text
    [ing] = e.ingredients
    assert ing.codes == (Code(RXNORM, "8640"),)
    # the strength as it arrived: its units are read by the criteria (cohort/criteria/strength.py)
    assert ing.numerator == Quantity(10, "mg", "mg", "", UCUM)
    assert ing.denominator == Quantity(1, "TAB", "{tbl}", "", UCUM)
    assert "oral tablet" in e.route


def test_referenced_medication_is_resolved_by_id() -> None:
    med = medication_resource("5521", mid="m7")
    seen: list[str] = []

    def lookup(mid: str) -> dict | None:
        seen.append(mid)
        return med if mid == "m7" else None

    m = medication("MedicationStatement", None, med_ref="https://x.org/fhir/Medication/m7")
    pf = Extractor(rules(), lookup).facts("p1", [m])
    assert seen == ["m7"]
    assert [c.code for c in pf.exposures[0].codes] == ["5521"]


def test_unresolved_medication_reference_keeps_the_record() -> None:
    m = medication("MedicationStatement", None, med_ref="Medication/gone")
    pf = facts(m)
    assert len(pf.exposures) == 1
    assert pf.exposures[0].codes == ()


def test_missing_contained_medication_keeps_the_record() -> None:
    m = medication("MedicationStatement", None, med_ref="#nope", contained=[])
    assert facts(m).exposures[0].codes == ()


# --- dosage: per_day from timing ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("dkw", "per_day"),
    [
        ({}, None),
        ({"frequency": 1, "period": 1, "period_unit": "d"}, 1.0),
        ({"frequency": 2, "period": 1, "period_unit": "d"}, 2.0),
        ({"frequency": 3, "period": 1, "period_unit": "d"}, 3.0),
        ({"frequency": 1, "period": 12, "period_unit": "h"}, 2.0),
        ({"frequency": 1, "period": 8, "period_unit": "h"}, 3.0),
        ({"frequency": 1, "period": 2, "period_unit": "d"}, 0.5),
        ({"frequency": 1, "period": 1, "period_unit": "wk"}, 1 / 7),
        ({"frequency": 2, "period": 1, "period_unit": "wk"}, 2 / 7),
        ({"timing_code": "QD"}, 1.0),
        ({"timing_code": "BID"}, 2.0),
        ({"timing_code": "bid"}, 2.0),
        ({"timing_code": "TID"}, 3.0),
        ({"timing_code": "QID"}, 4.0),
        ({"timing_code": "QOD"}, 0.5),
        ({"timing_code": "AM"}, 1.0),
        # the rest of FHIR R4's TimingAbbreviation (v3-GTSAbbreviation)
        ({"timing_code": "Q1H"}, 24.0),
        ({"timing_code": "Q2H"}, 12.0),
        ({"timing_code": "Q3H"}, 8.0),
        ({"timing_code": "Q4H"}, 6.0),
        ({"timing_code": "Q6H"}, 4.0),
        ({"timing_code": "Q8H"}, 3.0),
        ({"timing_code": "BED"}, 1.0),
        ({"timing_code": "WK"}, 1 / 7),
        ({"timing_code": "MO"}, 1 / 30),
    ],
)
def test_dosage_per_day(dkw: dict, per_day: float | None) -> None:
    m = medication("MedicationRequest", "8640", dosages=[dosage(qty(5, "mg", "mg"), **dkw)])
    [d] = facts(m).exposures[0].doses
    assert d.quantity == Quantity(5.0, "mg", "mg", system=UCUM)
    if per_day is None:
        assert d.per_day is None
    else:
        assert d.per_day == pytest.approx(per_day)


def test_dosage_on_statement_request_and_administration() -> None:
    s = medication("MedicationStatement", "8640", dosages=[dosage(qty(10, "mg", "mg"))])
    r = medication(
        "MedicationRequest",
        "8640",
        dosages=[dosage(qty(20, "mg", "mg")), dosage(qty(30, "mg", "mg"))],
    )
    a = medication(
        "MedicationAdministration",
        "6902",
        status="completed",
        when="2026-11-01",
        admin_dose=qty(1000, "mg", "mg"),
        admin_route="Intravenous",
    )
    fs, fr, fa = facts(s, r, a).exposures
    assert [d.quantity.value for d in fs.doses if d.quantity] == [10]
    assert [d.quantity.value for d in fr.doses if d.quantity] == [20, 30]
    assert [d.quantity.value for d in fa.doses if d.quantity] == [1000]
    assert fa.route == "intravenous"


def test_dosage_without_dose_quantity() -> None:
    m = medication("MedicationStatement", "8640", dosages=[dosage(None, timing_code="BID")])
    [d] = facts(m).exposures[0].doses
    assert d.quantity is None and d.per_day == 2.0


# --- Immunization, Procedure -------------------------------------------------------------------
def test_immunization() -> None:
    im = immunization("03", "2026-11-01T09:00:00Z")
    [f] = facts(im).immunizations
    assert f.when == date(2026, 11, 1)
    assert f.codes[0].code == "03"
    assert f.status == "completed"


@pytest.mark.parametrize(
    ("kw", "start", "end"),
    [
        ({"when": "2026-10-01"}, date(2026, 10, 1), date(2026, 10, 1)),
        ({"start": "2026-10-01", "end": "2026-10-05"}, date(2026, 10, 1), date(2026, 10, 5)),
        ({"start": "2026-10-01"}, date(2026, 10, 1), date(2026, 10, 1)),
        ({}, None, None),
    ],
)
def test_procedure_dates(kw: dict, start: date | None, end: date | None) -> None:
    [f] = facts(procedure("20720000", **kw)).procedures
    assert (f.start, f.end) == (start, end)


# --- robustness --------------------------------------------------------------------------------
def test_malformed_record_is_dropped_not_fatal() -> None:
    bad = condition("M32.14")
    bad["onsetPeriod"] = "not-a-period"
    good = condition("M32.14", onset="2019-01-01")
    pf = facts(bad, good)
    assert [c.ref for c in pf.conditions] == [f"Condition/{good['id']}"]
    assert [d.ref for d in pf.dropped] == [f"Condition/{bad['id']}"]


def test_unknown_resource_types_are_ignored() -> None:
    pf = facts({"resourceType": "Encounter", "id": "e1", "status": "finished"})
    assert pf.dropped == [] and pf.conditions == [] and pf.observations == []
