"""A night's incremental pull leaves the store as a fresh pull of the server would (the outputs
of the nightly run are those of a run into a fresh OUT folder): changes the incremental
searches or a Bulk export `_since` do not carry are still read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import responses
from fhir_fakes import BASE, SLE, TOKENS, BulkFake, population

from cohort.source.fhir import ServerSettings, pull
from cohort.source.fhir.client import FhirClient
from cohort.store import Store

NIGHT2 = "2026-11-26T10:00:00Z"


def _pull(store: Store, bulk: bool, tmp_path, **kw):
    s = ServerSettings.from_dict(
        {"base_url": BASE, "max_retries": 1, "bulk": bulk, "spool_dir": str(tmp_path / "spool"),
         **kw.pop("cfg", {})},
        "sites[0].server",
    )
    client = FhirClient(s, sleep=lambda _: None)
    return pull("uci", s, store, kw.pop("tokens", TOKENS), screen_tokens=[SLE], client=client, **kw)


@contextmanager
def _fresh(tmp_path, bulk: bool, **kw) -> Iterator[Store]:
    """A store pulled fresh from the same server: what the incremental one should hold."""
    with Store(tmp_path / "fresh.db") as fresh:
        _pull(fresh, bulk, tmp_path / "f", **kw)
        yield fresh


def _rows(store: Store, rtype: str) -> dict[str, dict]:
    return {r["id"]: r for r in store.iter_type("uci", rtype)}


@pytest.mark.parametrize("bulk", [False, True], ids=["search", "bulk"])
def test_a_medication_changed_on_the_server_is_read_again(tmp_path, bulk):
    """A Medication corrected on the server (its code), referenced by a request that did not
    change: the incremental searches (their _include answers for changed records only) and a
    Patient-level export (Medication is outside the compartment) did not bring it again, and
    the store kept the old code for good (rituximab read as VAY736), where a fresh pull reads
    the new one."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = BulkFake(rsps)
        population(fake)
        with Store(tmp_path / "inc.db") as inc:
            _pull(inc, bulk, tmp_path)
            fake.clock = NIGHT2
            rituximab = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                     "code": "121191"}]}
            fake.add({**fake.db[("Medication", "m1")], "code": rituximab}, "2026-11-26T09:00:00Z")
            rep = _pull(inc, bulk, tmp_path)
            with _fresh(tmp_path, bulk) as fresh:
                assert _rows(inc, "Medication") == _rows(fresh, "Medication")
            assert _rows(inc, "Medication")["m1"]["code"] == rituximab
    assert rep.incremental


def test_a_full_refresh_reads_stored_medications_again(tmp_path):
    """A full refresh (after a server restore) from a server without _include read by id only
    the referenced Medications not stored: a stored one changed on the server kept its old
    code, the sweep counting it as found."""
    from fhir_fakes import capability

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = BulkFake(rsps, cap=capability(includes=False))
        population(fake)
        with Store(tmp_path / "inc.db") as inc:
            _pull(inc, False, tmp_path)
            fake.clock = NIGHT2
            fake.add({**fake.db[("Medication", "m1")], "code": {"text": "rituximab"}},
                     "2026-11-26T09:00:00Z")
            del fake.db[("MedicationRequest", "mr2")]  # m2 no longer referenced: swept
            _pull(inc, False, tmp_path, full_refresh=True)
            with _fresh(tmp_path, False) as fresh:
                assert _rows(inc, "Medication") == _rows(fresh, "Medication")
            assert _rows(inc, "Medication")["m1"]["code"] == {"text": "rituximab"}
            assert "m2" not in _rows(inc, "Medication")


@pytest.mark.parametrize("bulk", [False, True], ids=["search", "bulk"])
def test_records_of_a_code_no_longer_mapped_go_on_the_night_the_mappings_change(tmp_path, bulk):
    """A mapping edit that unmaps a code (a row marked verified=N): the night after, the
    Observations are pulled in full by the codes now mapped (docs: as a full refresh of that
    type), but the stored ones of the code no longer mapped stayed, their dates counting for
    `last_seen` (score, rank) where a fresh pull never fetches them. They are now swept like a
    full refresh's; expected, they are not held against max_snapshot_removal (12 of 13)."""
    creatinine = "http://loinc.org|2160-0"
    both = {**TOKENS, "Observation": [*TOKENS["Observation"], creatinine]}
    narrowed = {**TOKENS, "Observation": [creatinine]}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = BulkFake(rsps)
        population(fake, n=12)
        fake.add({"resourceType": "Observation", "id": "cr0", "code": {"coding": [
            {"system": "http://loinc.org", "code": "2160-0"}]}, "subject": {"reference": "Patient/p0"}})
        with Store(tmp_path / "inc.db") as inc:
            _pull(inc, bulk, tmp_path, tokens=both)
            _pull(inc, bulk, tmp_path, tokens=both)
            fake.clock = NIGHT2
            rep = _pull(inc, bulk, tmp_path, tokens=narrowed)
            with _fresh(tmp_path, bulk, tokens=narrowed) as fresh:
                assert set(_rows(inc, "Observation")) == set(_rows(fresh, "Observation")) == {"cr0"}
                assert inc.count_by_type("uci") == fresh.count_by_type("uci")
    assert rep.removed == 12


def test_a_record_moved_to_an_unscreened_chart_leaves_with_a_bulk_export(tmp_path):
    """A result filed on the wrong chart and moved on the server to the right one, a patient
    not screened: the incremental export holds it (changed), under that patient, and the load
    passed over it as not screened's, so the stored copy stayed on the first chart (a low
    platelet count excluding the wrong patient) where a fresh pull has none. It is now removed
    (counted under `removed`). (The search path cannot see it: docs/scheduling.md.)"""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = BulkFake(rsps)
        population(fake)
        with Store(tmp_path / "inc.db") as inc:
            _pull(inc, True, tmp_path)
            fake.clock = NIGHT2
            fake.add({**fake.db[("Observation", "o1")], "subject": {"reference": "Patient/px"}},
                     "2026-11-26T09:00:00Z")
            rep = _pull(inc, True, tmp_path)
            with _fresh(tmp_path, True) as fresh:
                assert set(_rows(inc, "Observation")) == set(_rows(fresh, "Observation"))
            assert inc.get("uci", "Observation", "o1") is None
    assert rep.incremental and rep.removed == 1


def test_a_bulk_night_after_a_mapping_change_fetching_a_new_patient_removes_nothing(tmp_path):
    """Bulk: the searches' own marks keep the codes of the last night a new patient was
    searched; the first such night after a mapping change (a full export) must not take the
    difference for a full pull of Observations and sweep what that night's export did not hold
    (every known patient's)."""
    creatinine = "http://loinc.org|2160-0"
    both = {**TOKENS, "Observation": [*TOKENS["Observation"], creatinine]}

    def diagnosed(fake, pid: str, when: str) -> None:
        fake.clock = when.replace("09:", "10:")
        fake.add({"resourceType": "Patient", "id": pid}, when)
        fake.add({"resourceType": "Condition", "id": f"c-{pid}", "code": {"coding": [
            {"system": "http://snomed.info/sct", "code": "55464009"}]},
            "subject": {"reference": f"Patient/{pid}"}}, when)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = BulkFake(rsps)
        population(fake, n=12)
        with Store(tmp_path / "inc.db") as inc:
            _pull(inc, True, tmp_path)
            diagnosed(fake, "py", "2026-11-26T09:00:00Z")
            _pull(inc, True, tmp_path)  # (py searched: the searches' marks are set)
            fake.clock = "2026-11-27T10:00:00Z"
            _pull(inc, True, tmp_path, tokens=both)  # (a full export, no patient searched)
            diagnosed(fake, "pz", "2026-11-28T09:00:00Z")
            rep = _pull(inc, True, tmp_path, tokens=both)
            with _fresh(tmp_path, True, tokens=both) as fresh:
                assert inc.count_by_type("uci") == fresh.count_by_type("uci")
    assert rep.patients_new == 1 and rep.removed == 0


@pytest.mark.parametrize("bulk", [False, True], ids=["search", "bulk"])
def test_a_night_with_no_medication_change_lists_no_stored_medication(tmp_path, bulk, monkeypatch):
    """The nightly Medication change check listed every stored Medication id (Store.ids) before
    its `_summary=count` probe, whose answer (none changed) then made the list useless: on
    every quiet night. The probe now comes first; the ids are listed only when some Medication
    changed (and then searched by _id as before)."""
    listed: list[str] = []
    ids = Store.ids

    def spy(self, site, rtype):
        listed.append(rtype)
        return ids(self, site, rtype)

    monkeypatch.setattr(Store, "ids", spy)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = BulkFake(rsps)
        population(fake)
        with Store(tmp_path / "inc.db") as inc:
            _pull(inc, bulk, tmp_path)
            listed.clear()
            fake.clock = NIGHT2
            fake.log.clear()
            _pull(inc, bulk, tmp_path)
            assert "Medication?_lastUpdated&_summary" in fake.log
            assert "Medication" not in listed
            fake.add({**fake.db[("Medication", "m1")], "code": {"text": "rituximab"}},
                     "2026-11-26T11:00:00Z")
            fake.clock = "2026-11-27T10:00:00Z"
            _pull(inc, bulk, tmp_path)
            assert listed.count("Medication") == 1
            assert _rows(inc, "Medication")["m1"]["code"] == {"text": "rituximab"}


@pytest.mark.parametrize("bulk", [False, True], ids=["search", "bulk"])
def test_a_medication_changed_during_a_night_after_its_check_is_read_the_next(tmp_path, bulk):
    """The nightly check of the stored Medications runs first, from the earliest of the
    medication types' marks (the Bulk mark); those marks move to clocks read later the same
    night (the medication types' searches, the export's transactionTime). A Medication
    corrected on the server between the check and those clocks (more than sync_overlap: a
    long night of searches, a kick-off waiting on the server), referenced by records that did
    not change, fell between two checks and kept its old code for good. The next night's
    check now starts from when the last one ran, when that is earlier."""

    class Mid(BulkFake):
        armed = False

        def _get(self, req):
            if self.armed and ("/Condition" in req.url or "$export" in req.url):
                self.armed = False  # (after tonight's Medication check)
                rituximab = {**self.db[("Medication", "m1")], "code": {"text": "rituximab"}}
                self.add(rituximab, "2026-11-26T10:10:00Z")
                self.clock = "2026-11-26T10:30:00Z"  # (the searches, the export: later)
            return super()._get(req)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = Mid(rsps)
        population(fake)
        with Store(tmp_path / "inc.db") as inc:
            _pull(inc, bulk, tmp_path)
            fake.clock = NIGHT2
            fake.armed = True
            _pull(inc, bulk, tmp_path)
            assert not fake.armed
            fake.clock = "2026-11-27T10:00:00Z"
            _pull(inc, bulk, tmp_path)
            assert _rows(inc, "Medication")["m1"]["code"] == {"text": "rituximab"}
