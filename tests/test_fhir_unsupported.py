"""A type whose search the server does not support (404/405/501): not pulled, said, and pulled
in full once it is; the screening search, Patient and every type unsupported still fail."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from fhir_fakes import ALL, BASE, SLE, TOKENS, BulkFake, capability, oo, population
from test_fhir_pull import PageFake, run

from cohort.errors import ServerError
from cohort.source.fhir import ServerSettings, pull

UNSUPPORTED = (404, 405, 501)
SX = {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}


def _unsupported(status: int, *rtypes: str, searches_only: bool = True):
    """An `edit` answering `status` (HAPI: 404 "Unknown resource type") to the searches of
    `rtypes` (with `searches_only`, not the _summary=count probes)."""

    def edit(req, st, body):
        path = urlsplit(req.url).path
        query = dict(parse_qsl(urlsplit(req.url).query))
        probe = query.get("_summary") == "count"
        if any(path.endswith("/" + t) for t in rtypes) and not (searches_only and probe):
            return status, oo("Unknown resource type", "not-supported")
        return st, body

    return edit


@pytest.mark.parametrize("status", UNSUPPORTED)
def test_a_type_the_server_does_not_support_is_not_pulled_and_said(store, status):
    """A server without a MedicationAdministration endpoint (HAPI answers 404 "Unknown resource
    type", others 405 or 501) failed the whole run, exit 6 every night, though the data of
    every other type was there: it is now skipped like a type missing from the
    CapabilityStatement, with a warning naming the type and the status."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = _unsupported(status, "MedicationAdministration")
        rep = run(store)
    counts = store.count_by_type("uci")
    assert counts["Observation"] == 3 and counts["MedicationRequest"] == 3
    assert counts["Immunization"] == 3 and counts["Patient"] == 3
    assert "MedicationAdministration" not in rep.marks and "Observation" in rep.marks
    assert (
        f"MedicationAdministration: the server does not support its search (HTTP {status});"
        " not pulled"
    ) in rep.warnings
    assert not any("patient=" in w or "?" in w for w in rep.warnings), rep.warnings
    # the newly screened patients are complete: the other types are not searched again in full
    assert json.loads(store.get_mark("uci", "fhir:complete")) == ["p0", "p1", "p2"]


def test_a_type_unsupported_one_night_is_pulled_in_full_once_it_is_supported(store):
    """As for a type missing from the CapabilityStatement: the night it is unsupported, its mark
    goes, so that the patients newly screened that night (complete without it) get their older
    records of the type once the server supports it, not only the changes since the old mark."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        run(store)
        assert store.get_mark("uci", "fhir:Immunization")
        fake.clock = "2026-11-26T10:00:00Z"
        fake.add({"resourceType": "Condition", "id": "cx", "subject": {"reference": "Patient/px"},
                  "code": SX}, "2026-11-26T09:00:00Z")
        fake.add({"resourceType": "Immunization", "id": "imx",
                  "patient": {"reference": "Patient/px"}}, "2026-11-01T00:00:00Z")
        fake.edit = _unsupported(404, "Immunization", searches_only=False)
        rep = run(store)
        assert rep.patients_new == 1 and store.get("uci", "Immunization", "imx") is None
        assert not store.get_mark("uci", "fhir:Immunization")
        assert "px" in json.loads(store.get_mark("uci", "fhir:complete"))
        fake.edit = None
        fake.clock = "2026-11-27T10:00:00Z"
        run(store)
    assert store.get("uci", "Immunization", "imx") is not None  # px's of 2026-11-01


def test_a_screening_search_the_server_does_not_support_still_fails(store):
    """A wrong base URL (a 404 to every search) must not read as "no patients screened"."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = _unsupported(404, "Condition", searches_only=False)
        with pytest.raises(ServerError, match="HTTP 404"):
            run(store)
    assert not store.get_mark("uci", "fhir:complete")


@pytest.mark.parametrize("status", UNSUPPORTED)
def test_patient_unsupported_still_fails_the_run(store, status):
    """Charts without their Patient (birth date, sex) would read as unknown everywhere."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = _unsupported(status, "Patient")
        with pytest.raises(ServerError, match=f"HTTP {status}"):
            run(store)
    assert not store.get_mark("uci", "fhir:complete")


def test_patient_left_out_of_the_capability_statement_is_still_pulled(store):
    """A CapabilityStatement without Patient skipped the charts' Patients with a warning (every
    age and sex then unknown) while a Patient 404 failed the run: Patient is asked for
    regardless, and a server that answers it has its Patients stored."""
    cap = capability(types=[t for t in ALL if t != "Patient"])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = PageFake(rsps, cap=cap)
        population(fake)
        rep = run(store)
    assert store.count_by_type("uci")["Patient"] == 3
    assert not any(w.startswith("Patient:") for w in rep.warnings), rep.warnings


def test_every_type_unsupported_still_fails_the_run(store):
    """Screening answered, the CapabilityStatement without Patient (asked for all the same and
    answered), every search by patient 404: charts of Patients alone are no result (exit 6), no patient
    marked complete."""
    cap = capability(types=[t for t in ALL if t != "Patient"])

    def edit(req, st, body):
        if "patient" in dict(parse_qsl(urlsplit(req.url).query)):
            return 404, oo("Unknown resource type", "not-supported")
        return st, body

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = PageFake(rsps, cap=cap)
        population(fake)
        fake.edit = edit
        with pytest.raises(ServerError, match="HTTP 404"):
            run(store)
    assert not store.get_mark("uci", "fhir:complete")


def test_a_later_page_404_is_still_searched_again_from_the_first(store):
    """(the paging state expired: not a type the server lacks)"""
    gone = {"n": 0}
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, st, body):
            later = urlsplit(req.url).path.endswith("/Observation") and "_offset" in req.url
            if later and not gone["n"]:
                gone["n"] += 1
                return 404, oo("Search id not found", "not-found")
            return st, body

        fake.edit = edit
        rep = run(store)
    assert store.count_by_type("uci")["Observation"] == 3 and "Observation" in rep.marks
    assert not any("does not support" in w for w in rep.warnings), rep.warnings


def test_a_restarted_search_whose_first_page_404s_fails_the_run(store):
    """A later page 404 (paging state expired), then the first page 404 when searched again:
    the server answered that type's search tonight, so this is a server fault, not a type it
    lacks; skipping it would leave tonight's charts without the type (exit 6 instead)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = PageFake(rsps)
        population(fake)
        seen = {"later": 0}

        def edit(req, st, body):
            if not urlsplit(req.url).path.endswith("/Observation"):
                return st, body
            query = dict(parse_qsl(urlsplit(req.url).query))
            if query.get("_summary") == "count":
                return st, body
            if "_offset" in req.url:
                seen["later"] += 1
                return 404, oo("Search id not found", "not-found")
            if seen["later"]:
                return 404, oo("Unknown resource type", "not-supported")
            return st, body

        fake.edit = edit
        with pytest.raises(ServerError, match="HTTP 404"):
            run(store)
    assert seen["later"] == 1
    assert not store.get_mark("uci", "fhir:complete")


@pytest.mark.parametrize("status", (405, 501))
def test_medication_reads_the_server_does_not_support_keep_the_records(store, status):
    """Medications read one by one (no _include, no _id search) where the server answers
    405/501 to a read: the run failed every night. The records stay, the marks of their types
    stay put (read again, Medications with them, once it does), and one read says it."""
    cap = capability(no_params={"Medication": {"_id"}}, includes=False)
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps, cap=cap)
        population(fake)
        fake.edit = _unsupported(status, "m0", "m1", "m2")
        rep = run(store)
        assert store.count_by_type("uci")["MedicationRequest"] == 3
        assert "Medication" not in store.count_by_type("uci")
        assert "MedicationRequest" not in rep.marks and "Immunization" in rep.marks
        assert (
            f"Medication: the server does not support reading Medications (HTTP {status});"
            " referenced Medications not read; the marks of the records referencing them were"
            " not advanced"
        ) in rep.warnings
        reads = [q for q in fake.log if q.startswith("Medication/")]
        assert len(reads) == 1  # (not one refused read per Medication)
        fake.edit = None
        fake.clock = "2026-11-26T10:00:00Z"
        run(store)
    assert store.count_by_type("uci")["Medication"] == 3


@pytest.mark.parametrize("status", UNSUPPORTED)
def test_a_medication_search_the_server_does_not_support_keeps_the_records(store, status):
    """Medications read by an _id search answered 404/405/501: as a 403, the records are kept
    and the marks of their types held."""

    def edit(req, st, body):
        if urlsplit(req.url).path.endswith("/MedicationRequest") and "_include" in req.url:
            body["entry"] = [e for e in body["entry"]
                             if e["resource"]["resourceType"] != "Medication"]
        return _unsupported(status, "Medication")(req, st, body)

    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = edit
        rep = run(store)
    assert store.count_by_type("uci")["MedicationRequest"] == 3
    assert "MedicationRequest" not in rep.marks and "Immunization" in rep.marks
    assert any(w.startswith(f"Medication: the server does not support its search (HTTP {status})")
               for w in rep.warnings), rep.warnings


def test_a_stored_medications_check_the_server_does_not_support_holds_the_marks(store):
    """The nightly search of the stored Medications changed on the server answered 404: the run
    failed before screening. As for a 403, it is said and the medication types' marks held."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        run(store)
        fake.clock = "2026-11-26T10:00:00Z"
        fake.add({**fake.db[("Medication", "m1")], "code": {"text": "ianalumab"}},
                 "2026-11-26T09:00:00Z")
        fake.edit = _unsupported(404, "Medication")
        rep = run(store)
    assert (
        "Medication: the server does not support its search (HTTP 404); stored Medications not"
        " read again; the marks of the records referencing them were not advanced"
    ) in rep.warnings
    assert "MedicationRequest" not in rep.marks and "Immunization" in rep.marks


def _bulk_settings(tmp_path, **kw) -> ServerSettings:
    return ServerSettings.from_dict(
        {"base_url": BASE, "bulk": True, "spool_dir": str(tmp_path / "spool"), "max_retries": 1,
         **kw}, "w")


class NoExportFake(BulkFake):
    """A server whose CapabilityStatement advertises $export but whose kick-off answers
    `status` (an export module switched off, a proxy that does not route it)."""

    status = 405

    def _get(self, req):
        if "$export" in urlsplit(req.url).path:
            self.log.append("$export")
            return self.status, {"Content-Type": "application/fhir+json"}, json.dumps(
                oo("Operation not supported", "not-supported"))
        return super()._get(req)


@pytest.mark.parametrize("status", UNSUPPORTED)
def test_an_export_kick_off_the_server_does_not_support_falls_back_to_search(
    tmp_path, store, status
):
    """A server advertising $export that answers the kick-off 404/405/501 failed every night;
    it is searched instead, as one that does not advertise $export, with a warning."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = NoExportFake(rsps)
        fake.status = status
        population(fake)
        rep = pull("uci", _bulk_settings(tmp_path), store, TOKENS, screen_tokens=[SLE])
    assert fake.log.count("$export") == 1
    assert rep.mode == "search"
    assert (
        f"bulk: the server does not support the export kick-off (HTTP {status}); used search"
        " instead"
    ) in rep.warnings
    assert store.count_by_type("uci")["Observation"] == 3
    assert json.loads(store.get_mark("uci", "fhir:complete")) == ["p0", "p1", "p2"]
    assert not store.get_mark("uci", "fhir:bulk")
    assert not (tmp_path / "spool" / "uci" / "job.json").exists()


def test_a_group_export_answered_404_still_fails(tmp_path, store):
    """(Group/<id>/$export 404: most likely no such Group, a configuration error, and a search
    would pull other patients than the group's)"""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = NoExportFake(rsps)
        fake.status = 404
        population(fake)
        with pytest.raises(ServerError, match="HTTP 404"):
            pull("uci", _bulk_settings(tmp_path, bulk_group="g1"), store, TOKENS,
                 screen_tokens=[SLE])


class GappyBulk(BulkFake):
    """BulkFake whose searches of the types in `missing` answer 404 (its export is as before)."""

    missing: frozenset[str] = frozenset()

    def _get(self, req):
        path = urlsplit(req.url).path
        if any(path.endswith("/" + t) for t in self.missing):
            return 404, {}, json.dumps(oo("Unknown resource type", "not-supported"))
        return super()._get(req)


def test_a_bulk_nights_new_patients_are_not_complete_without_an_unsupported_type(tmp_path, store):
    """A Bulk night fetching a newly screened patient by search, Immunization unsupported: as
    for a type refused (403), the patient is not marked complete, so that its older
    Immunizations (before the export's _since) are fetched once the type is supported."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = GappyBulk(rsps)
        population(fake)
        s = _bulk_settings(tmp_path)
        pull("uci", s, store, TOKENS, screen_tokens=[SLE])
        fake.clock = "2026-11-26T10:00:00Z"
        fake.add({"resourceType": "Condition", "id": "cx", "subject": {"reference": "Patient/px"},
                  "code": SX}, "2026-11-26T09:00:00Z")
        fake.add({"resourceType": "Immunization", "id": "imx",
                  "patient": {"reference": "Patient/px"}}, "2026-11-01T00:00:00Z")
        fake.missing = frozenset({"Immunization"})
        rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE])
        assert "px" not in json.loads(store.get_mark("uci", "fhir:complete"))
        assert any("Immunization: the server does not support its search (HTTP 404)" in w
                   for w in rep.warnings), rep.warnings
        fake.missing = frozenset()
        fake.clock = "2026-11-27T10:00:00Z"
        pull("uci", s, store, TOKENS, screen_tokens=[SLE])
    assert store.get("uci", "Immunization", "imx") is not None
    assert "px" in json.loads(store.get_mark("uci", "fhir:complete"))
