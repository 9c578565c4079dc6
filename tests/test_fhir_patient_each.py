"""A server that takes one patient per search (Epic, athena): a search of several patients
refused with HTTP 400 is asked patient by patient, and the quirk remembered."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from fhir_fakes import SLE, TOKENS, oo, population
from test_fhir_pull import PageFake, settings
from test_fhir_quirks import DAY, KEY, T0

from cohort.source.fhir import pull
from cohort.source.fhir.client import FhirClient

NOTE = "server takes one patient per search; searched patient by patient"


def _listed(req) -> bool:
    """Whether the request searches several patients (patient=a,b or Patient?_id=a,b)."""
    return any(k in ("patient", "_id") and "," in v for k, v in parse_qsl(urlsplit(req.url).query))


def refuse_lists(text: str):
    def edit(req, status, body):
        return (400, oo(text)) if _listed(req) else (status, body)

    return edit


def night(store, at: float):
    s = settings()
    client = FhirClient(s, clock=lambda: at, sleep=lambda _: None)
    return pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=client)


@pytest.mark.parametrize(
    "text",
    [
        "Only one value is allowed for search parameter patient",  # (names the parameter)
        "A search for multiple patients is not supported",  # (names none: tried last)
    ],
)
def test_a_server_refusing_searches_of_several_patients_is_searched_patient_by_patient(
    store, text
):
    """Every clinical type's first search, of the three screened patients, was refused with
    HTTP 400 and the run failed "GET /r4/Patient: HTTP 400: error invalid" each night: no
    list, and nothing saying that the server takes one patient per search. Now the search is
    asked once per patient: every record of the three patients is pulled, as from a server
    taking lists, with one run.json warning."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = refuse_lists(text)
        rep = night(store, T0)
    counts = store.count_by_type("uci")
    # population(): per screened patient p0..p2 a Patient, two Conditions, a hemoglobin, a
    # MedicationRequest with its Medication, an Immunization; px is not screened
    assert counts["Patient"] == 3 and store.get("uci", "Patient", "px") is None
    assert counts["Condition"] == 6 and counts["Observation"] == 3
    assert counts["MedicationRequest"] == 3 and counts["Medication"] == 3
    assert counts["Immunization"] == 3
    assert NOTE in rep.warnings
    # (only this: a refusal naming no parameter first drops _count, which did not help)
    assert json.loads(store.get_mark("uci", KEY)) == {"patient-each": "2026-11-25T10:00:00Z"}


def test_a_remembered_one_patient_server_gets_no_list_the_next_night(store):
    """The quirk learned, the next night's searches carry one patient each from the start:
    no refused request, and a hemoglobin added that day is pulled."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = refuse_lists("Only one value is allowed for search parameter patient")
        night(store, T0)
        refused: list[str] = []

        def count_refusals(req, status, body):
            if _listed(req):
                refused.append(urlsplit(req.url).path)
                return 400, oo("Only one value is allowed for search parameter patient")
            return status, body

        fake.edit = count_refusals
        fake.clock = "2026-11-26T10:00:00Z"
        fake.add({"resourceType": "Observation", "id": "o1new", "subject": {"reference": "Patient/p1"},
                  "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]}})
        rep = night(store, T0 + DAY)
    assert refused == []
    assert rep.to_dict()["quirks"] == {"patient-each": "2026-11-25T10:00:00Z"}
    # the three of night 1 and the new one, asked for by one patient per search
    assert store.count_by_type("uci")["Observation"] == 4
    assert store.get("uci", "Observation", "o1new") is not None
    assert "Observation?_count&_lastUpdated&code&patient" in fake.log
