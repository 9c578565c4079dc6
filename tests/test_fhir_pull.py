"""Query plan and incremental pull against an in-memory fake FHIR server."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from fhir_fakes import ALL, BASE, HGB, SLE, TOKENS, FakeFhir, capability, oo, population

from cohort.merged import merges_of
from cohort.source.fhir import ServerSettings, pull
from cohort.store import Store


def settings(**kw) -> ServerSettings:
    return ServerSettings.from_dict({"base_url": BASE, "max_retries": 1, **kw}, "sites[0].server")


def run(store, fake=None, **kw):
    return pull("uci", settings(**kw.pop("cfg", {})), store, TOKENS, screen_tokens=[SLE], **kw)


def test_first_pull_gets_screened_patients_only(store):
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        rep = run(store)
    counts = store.count_by_type("uci")
    assert counts["Patient"] == 3 and store.get("uci", "Patient", "px") is None
    assert counts["Condition"] == 6 and counts["Observation"] == 3  # only mapped codes
    assert counts["Medication"] == 3 and counts["Immunization"] == 3
    assert rep.patients_screened == 3 and rep.patients_new == 3 and not rep.incremental
    assert rep.requests["metadata"] == 1
    assert all("_lastUpdated" not in q for q in fake.log)
    assert any("_include" in q for q in fake.log if q.startswith("MedicationRequest"))
    d = rep.to_dict()
    json.dumps(d)
    assert "screened" not in d["marks"] and "Observation" in d["marks"]
    row = store.get("uci", "Observation", "o0")
    assert row is not None


def test_second_run_only_incremental_queries(store):
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        run(store)
        fake.log.clear()
        rep = run(store)
    searches = [q for q in fake.log if not q.startswith("metadata")]
    assert searches and all("_lastUpdated" in q for q in searches)
    assert rep.incremental and rep.stored == 0 and rep.updated == 0


def test_no_change_rerun_is_one_count_probe_per_type(store):
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        run(store)
        first = [q for q in fake.log if "patient" in q.split("?")[1]]
        fake.log.clear()
        run(store)
    # the first pull searched per patient batch; the rerun is one `_summary=count` probe of the
    # Medications changed, the incremental screening search and one probe per type (with the
    # mapped codes where the plan uses them)
    assert first
    assert fake.log == [
        "metadata?",
        "Medication?_lastUpdated&_summary",
        "Condition?_count&_lastUpdated&code",
        "Patient?_lastUpdated&_summary",
        "Condition?_lastUpdated&_summary",
        "Observation?_lastUpdated&_summary&code",
        "MedicationRequest?_lastUpdated&_summary",
        "MedicationStatement?_lastUpdated&_summary",
        "MedicationAdministration?_lastUpdated&_summary",
        "Immunization?_lastUpdated&_summary",
        "Procedure?_lastUpdated&_summary&code",
    ]


def test_a_change_reruns_only_that_types_batched_search(store):
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        run(store)
        fake.clock = "2026-11-26T10:00:00Z"
        fake.add({**fake.db[("Observation", "o1")], "status": "amended"}, "2026-11-26T09:00:00Z")
        fake.log.clear()
        rep = run(store)
    batched = {q.split("?")[0] for q in fake.log if "patient" in q.split("?")[1]}
    assert batched == {"Observation"}
    assert rep.updated == 1 and store.get("uci", "Observation", "o1")["status"] == "amended"


def test_changes_and_new_patient_picked_up(store):
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        run(store)
        fake.clock = "2026-11-26T10:00:00Z"
        fake.add({**fake.db[("Observation", "o1")], "status": "amended"}, "2026-11-26T09:00:00Z")
        # px newly gets an SLE condition: full history once, incl. an old Observation
        fake.add(
            {
                "resourceType": "Condition",
                "id": "cx",
                "subject": {"reference": "Patient/px"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]},
            },
            "2026-11-26T09:00:00Z",
        )
        fake.log.clear()
        rep = run(store)
    assert rep.updated == 1 and rep.patients_new == 1
    assert store.get("uci", "Observation", "o1")["status"] == "amended"
    assert store.get("uci", "Observation", "ox") is not None  # old record of a new patient
    assert store.get("uci", "Patient", "px") is not None


def test_full_refresh_ignores_marks(store):
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        run(store)
        fake.log.clear()
        rep = run(store, full_refresh=True)
    assert all("_lastUpdated" not in q for q in fake.log) and rep.unchanged > 0


def test_no_medication_statement_and_no_include(store):
    types = [t for t in capability()["rest"][0]["resource"] if t["type"] != "MedicationStatement"]
    cap = capability(includes=False)
    cap["rest"][0]["resource"] = [
        r for r in cap["rest"][0]["resource"] if r["type"] != "MedicationStatement"
    ]
    assert types
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps, cap=cap)
        population(fake)
        rep = run(store)
    assert any("MedicationStatement" in w for w in rep.warnings)
    assert not any(q.startswith("MedicationStatement") for q in fake.log)
    assert store.count_by_type("uci")["Medication"] == 3
    assert any(q.startswith("Medication?_count&_id") for q in fake.log)


def test_observation_demands_category(store):
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps, demand_category=True)
        population(fake)
        rep = run(store)
    assert store.count_by_type("uci")["Observation"] == 3
    assert any("category" in w for w in rep.warnings)


def test_configured_category_sent_up_front(store):
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps, demand_category=True)
        population(fake)
        run(store, cfg={"observation_category": ["laboratory", "vital-signs"]})
    obs = [q for q in fake.log if q.startswith("Observation")]
    assert obs and all("category" in q for q in obs)


def test_no_lastupdated_in_capability(store):
    cap = capability(no_params={t: {"_lastUpdated"} for t in ("Observation", "Condition")})
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps, cap=cap)
        population(fake)
        run(store)
        fake.log.clear()
        rep = run(store)
    assert any("_lastUpdated" in w for w in rep.warnings)
    assert all("_lastUpdated" not in q for q in fake.log if q.startswith("Observation"))


def test_lastupdated_rejected_at_runtime(store):
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        run(store)
        fake.reject_lastupdated = True
        rep = run(store)
    assert any("rejected _lastUpdated" in w for w in rep.warnings)
    assert store.count_by_type("uci")["Observation"] == 3


def test_long_code_lists_split_under_url_limit(store):
    many = [f"http://loinc.org|{i}-{i % 10}" for i in range(300)] + TOKENS["Observation"]
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        pull(
            "uci",
            settings(max_url_length=1800),
            store,
            {**TOKENS, "Observation": many},
            screen_tokens=[SLE] * 1,
        )
        urls = [c.request.url for c in rsps.calls]
    assert max(len(u) for u in urls) <= 1800 + 100
    assert store.count_by_type("uci")["Observation"] == 3


def test_server_refusing_long_urls_gets_shorter_ones(store, tmp_path):
    many = [f"http://loinc.org|{i}-{i % 10}" for i in range(400)] + TOKENS["Observation"]
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        fake.max_url = 1500  # e.g. IIS maxQueryString: longer requests get 414
        population(fake)
        rep = pull("uci", settings(), store, {**TOKENS, "Observation": many}, screen_tokens=[SLE])
        ok = [c.request.url for c in rsps.calls if c.response.status_code == 200]
    assert any("URL limit lowered" in w for w in rep.warnings)
    assert max(len(u) for u in ok) <= 1500
    with Store(tmp_path / "ref.db") as ref, responses.RequestsMock() as rsps:
        population(FakeFhir(rsps))
        pull("uci", settings(), ref, {**TOKENS, "Observation": many}, screen_tokens=[SLE])
        assert store.count_by_type("uci") == ref.count_by_type("uci")


def test_killed_run_resumes_to_same_result(store, tmp_path):
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        orig = Store.put_resources
        calls = {"n": 0}

        def boom(self, *a, **k):
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt
            return orig(self, *a, **k)

        Store.put_resources = boom  # type: ignore[method-assign]
        try:
            with pytest.raises(KeyboardInterrupt):
                run(store)
        finally:
            Store.put_resources = orig  # type: ignore[method-assign]
        run(store)
        with Store(tmp_path / "ref.db") as ref:
            run(ref)
            assert store.count_by_type("uci") == ref.count_by_type("uci")


def test_codes_searched_without_system_by_default_and_escaped():
    from cohort.source.fhir.pull import search_values

    toks = ["http://loinc.org|718-7", "urn:oid:1.2|718-7", "http://x|a,b", "local"]
    assert search_values(toks, False) == ["718-7", "a\\,b", "local"]
    assert search_values(toks, True)[0] == "http://loinc.org|718-7"


def test_patient_ids_fill_each_url_before_a_new_request(store):
    """UUID ids: 100 do not fit one Observation URL (codes take half of it). Each search must
    carry as many ids as fit, not a full URL plus a short remainder per 100 ids."""
    import logging
    import uuid

    from cohort.source.fhir.pull import Puller
    from cohort.source.fhir.search import queries

    p = Puller("uci", settings(), store, TOKENS, [SLE], False, None, logging.getLogger("t"))
    pids = [str(uuid.UUID(int=i + 1)) for i in range(250)]
    groups = [dict(q)["patient"].split(",") for q in queries(p, "Observation", pids, None, 100)]
    assert [p for g in groups for p in g] == pids
    sizes = [len(g) for g in groups]
    assert len(groups) > 1 and sizes[0] < 100  # the URL limit, not the batch, splits here
    assert sizes[:-1] == [sizes[0]] * (len(sizes) - 1)  # only the last group is short
    assert sizes[-1] <= sizes[0]


def _searched_ids(calls, rtype: str) -> list[list[str]]:
    out = []
    for c in calls:
        u = urlsplit(c.request.url)
        q = dict(parse_qsl(u.query))
        if u.path.endswith("/" + rtype) and "patient" in q and "_offset" not in q:
            out.append(q["patient"].split(","))
    return out


def test_searches_grow_for_types_with_few_records_per_patient(store):
    """600 screened patients with 5 lab results each and an immunization for every tenth:
    Immunization searches grow past 100 ids once a patient is seen to yield little, while
    Observation searches (5 per patient, page 1000 -> at most 180 ids) stay near a page."""
    n = 600
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps, page=1000)
        for i in range(n):
            pid = f"p{i:04d}"
            fake.add({"resourceType": "Patient", "id": pid})
            system, code = SLE.split("|")
            ref = {"reference": f"Patient/{pid}"}
            coding = {"coding": [{"system": system, "code": code}]}
            fake.add({"resourceType": "Condition", "id": f"c{i}", "subject": ref, "code": coding})
            system, code = HGB.split("|")
            for k in range(5):
                fake.add(
                    {
                        "resourceType": "Observation",
                        "id": f"o{i}-{k}",
                        "subject": ref,
                        "code": {"coding": [{"system": system, "code": code}]},
                    }
                )
            if i % 10 == 0:
                fake.add({"resourceType": "Immunization", "id": f"i{i}", "patient": ref})
        rep = run(store)
        imm, obs = (
            _searched_ids(rsps.calls, "Immunization"),
            _searched_ids(rsps.calls, "Observation"),
        )
    assert rep.patients_screened == n
    for groups in (imm, obs):
        assert sorted(p for g in groups for p in g) == [f"p{i:04d}" for i in range(n)]
    assert [len(g) for g in imm[:2]] == [100, 100]  # before anything is known
    assert len(imm) == 3 and len(imm[2]) == n - 200  # then the rest at once
    assert max(len(g) for g in obs) <= int(0.9 * 1000 / 5) and len(obs) < n / 100 + 1
    counts = store.count_by_type("uci")
    assert counts["Observation"] == 5 * n and counts["Immunization"] == n // 10


def test_patient_batch_one_searches_one_patient_at_a_time(store):
    """A server that takes one patient per search (`patient_batch = 1`) never gets two."""
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps, page=1000)
        population(fake, n=5)
        run(store, cfg={"patient_batch": 1})
        obs = _searched_ids(rsps.calls, "Observation")
        groups = obs + _searched_ids(rsps.calls, "Condition")
    assert groups and all(len(g) == 1 for g in groups)
    assert sorted(g[0] for g in obs) == [f"p{i}" for i in range(5)]
    assert store.count_by_type("uci")["Observation"] == 5


class PageFake(FakeFhir):
    """FakeFhir whose answers a test can alter: `edit(request, status, body) -> (status, body)`."""

    edit = None

    def _get(self, req):
        status, hdr, body = super()._get(req)
        if self.edit is not None:
            status, body = self.edit(req, status, json.loads(body))
            body = json.dumps(body)
        return status, hdr, body


def _outcome(severity: str, code: str) -> dict:
    issue = {"severity": severity, "code": code, "diagnostics": "no matching patient MRN 123456"}
    return {"resource": {"resourceType": "OperationOutcome", "issue": [issue]},
            "search": {"mode": "outcome"}}


def _pages_of(rtype: str, req) -> bool:
    return urlsplit(req.url).path.endswith("/" + rtype) and "patient=" in req.url


def test_search_outcome_warning_is_reported_without_its_text(store):
    """OperationOutcome entries in search pages were dropped without a word; a warning (a
    parameter the server ignored, data withheld) is now a run.json warning naming severity
    and code only (the diagnostics may quote a patient)."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            if _pages_of("Observation", req):
                body["entry"].append(_outcome("warning", "suppressed"))
            return status, body

        fake.edit = edit
        rep = run(store)
    assert store.count_by_type("uci")["Observation"] == 3
    w = [w for w in rep.warnings if w.startswith("Observation:") and "combo-code" not in w]
    assert w == ["Observation: the server attached an OperationOutcome to search results "
                 "(warning suppressed); the results were kept"]
    assert "123456" not in json.dumps(rep.to_dict())


@pytest.mark.parametrize("severity,code", [("error", "processing"), ("warning", "incomplete"),
                                           ("warning", "too-costly")])
def test_search_outcome_error_or_truncation_fails_the_pull(store, severity, code):
    """A 200 page whose OperationOutcome entry says the search failed or was truncated passed
    as a complete result: the type's mark advanced past records never fetched. Now the pull
    fails (exit 6), marks of that type untouched, and the next run searches again."""
    from cohort.errors import ServerError

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = PageFake(rsps)
        population(fake)
        run(store)
        before = store.get_mark("uci", "fhir:Observation")
        fake.clock = "2026-11-26T10:00:00Z"
        fake.add({**fake.db[("Observation", "o1")], "status": "amended"}, "2026-11-26T09:00:00Z")

        def edit(req, status, body):
            if _pages_of("Observation", req):
                body["entry"] = [_outcome(severity, code)]  # the amended record left out
            return status, body

        fake.edit = edit
        with pytest.raises(ServerError, match=f"Observation: .*incomplete \\({severity} {code}\\)"):
            run(store)
        assert store.get_mark("uci", "fhir:Observation") == before
        fake.edit = None
        run(store)
    assert store.get("uci", "Observation", "o1")["status"] == "amended"


def test_include_flagged_incomplete_reads_medications_separately(store):
    """A server that caps _include results per page and says so (warning incomplete) lost
    Medications; the search is repeated without _include and Medications read by id."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            if _pages_of("MedicationRequest", req) and "_include" in req.url:
                body["entry"] = [e for e in body["entry"] if e["search"]["mode"] == "match"]
                body["entry"].append(_outcome("warning", "incomplete"))
            return status, body

        fake.edit = edit
        rep = run(store)
    assert store.count_by_type("uci")["Medication"] == 3
    assert any("_include incomplete" in w for w in rep.warnings)


def test_total_larger_than_the_matches_returned_is_a_warning(store):
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            if _pages_of("Immunization", req):
                body["total"] = 5
            return status, body

        fake.edit = edit
        rep = run(store)
    assert ("Immunization: the server's Bundle.total overcounts (a search returned 3 of the 5 "
            "matches its total announced, read twice alike); later shortfalls against total by up "
            "to as many not read again") in rep.warnings


def test_expired_paging_state_restarts_the_search_once(store):
    """HAPI forgets a search's pages after a while (410 Gone on its _getpages link): the run
    failed with "GET /r4/Observation: HTTP 410". The search is now repeated from page 1."""
    gone = {"n": 0}
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            if _pages_of("Observation", req) and "_offset" in req.url and not gone["n"]:
                gone["n"] += 1
                return 410, oo("Search id has expired", "not-found")
            return status, body

        fake.edit = edit
        rep = run(store)
    assert gone["n"] == 1 and store.count_by_type("uci")["Observation"] == 3
    assert any("no longer had a search's later pages (HTTP 410)" in w for w in rep.warnings)


def _shifting(fake, attempts: dict, shifted_attempts: int):
    """An `edit` paging the patients' Condition search by offset over a result set that moved
    after page 1 (sekmet orders by its write sequence: c0 and c0b, updated meanwhile, went
    last; on later reads more) on the first `shifted_attempts` reads of the search."""
    order = [r for (t, _), r in sorted(fake.db.items()) if t == "Condition"]

    def edit(req, status, body):
        if not _pages_of("Condition", req):
            return status, body
        off = int(dict(parse_qsl(urlsplit(req.url).query)).get("_offset", 0))
        if off == 0:
            attempts["n"] += 1
        elif attempts["n"] <= shifted_attempts:
            k = attempts["n"] + 1
            moved = order[k:] + order[:k]
            body["entry"] = [{"resource": r, "search": {"mode": "match"}} for r in moved[off:off + 2]]
        return status, body

    return edit


def test_results_moving_while_paged_are_searched_again(store):
    """Offset paging over records updated meanwhile: the updated records came twice (pages 1
    and 3), so the count matched the total, and c1b, which slid onto page 1, never came. A full
    refresh removed it as deleted on the server (a real server did so to a patient being
    charted during the run). A match seen twice in one search now repeats it."""
    attempts = {"n": 0}
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        run(store)
        fake.edit = _shifting(fake, attempts, 1)
        rep = run(store, full_refresh=True)
    assert store.get("uci", "Condition", "c1b") is not None and rep.removed == 0
    assert attempts["n"] == 2
    assert any("Condition: a search's results moved while its pages were read" in w
               for w in rep.warnings), rep.warnings


def test_results_that_keep_moving_fail_the_pull_removing_nothing(store):
    from cohort.errors import ServerError

    attempts = {"n": 0}
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        run(store)
        fake.edit = _shifting(fake, attempts, 99)
        with pytest.raises(ServerError, match="kept moving while its pages were read"):
            run(store, full_refresh=True)
    assert attempts["n"] == 3 and store.get("uci", "Condition", "c1b") is not None


def test_results_short_of_their_total_after_a_deletion_are_searched_again(store):
    """Records deleted on the server after page 1 (c0, c0b) move the rest back: c1b slid onto
    page 1 unseen, the search returned 4 of its total 6, a warning only, and a full refresh
    removed c1b as deleted on the server. A read short of its total is now read again."""
    reads = {"n": 0}
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        run(store)

        def edit(req, status, body):
            if _pages_of("Condition", req) and "_offset" not in req.url:
                reads["n"] += 1
                if reads["n"] == 1:
                    body["total"] = 6
                    del fake.db[("Condition", "c0")], fake.db[("Condition", "c0b")]
            return status, body

        fake.edit = edit
        rep = run(store, full_refresh=True)
    assert reads["n"] == 2
    assert store.get("uci", "Condition", "c1b") is not None
    assert store.get("uci", "Condition", "c0b") is None  # (deleted there: removed)
    assert any("Condition: a search's results moved while its pages were read" in w
               for w in rep.warnings), rep.warnings


def test_a_record_listed_twice_alike_on_a_second_read_is_kept(store):
    """A server that lists one record twice in a search, the same on every read (nothing
    moved), is read twice and taken as it is, with no warning (it used to be taken at once)."""
    attempts = {"n": 0}
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            if _pages_of("Condition", req):
                if "_offset" not in req.url:
                    attempts["n"] += 1
                body["entry"] = body["entry"] + body["entry"][:1]
            return status, body

        fake.edit = edit
        rep = run(store)
    assert attempts["n"] == 2 and store.count_by_type("uci")["Condition"] == 6
    assert not any("moved" in w for w in rep.warnings), rep.warnings


def test_a_server_always_short_of_its_total_in_another_order_each_read_is_taken(store):
    """A server that counts in its total records it then withholds (access filtering after
    the count), and whose order is not stable between reads, returned the same records in
    another order on every read: three reads that "differ" failed the pull, exit 6, every
    night. The reads are compared as sets of records: the second read is taken, warned of."""
    attempts = {"n": 0}
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            if _pages_of("Condition", req) and "_offset" not in req.url:
                attempts["n"] += 1
                body["total"] = len(body["entry"]) + 5
                if attempts["n"] % 2 == 0:
                    body["entry"] = body["entry"][::-1]
            return status, body

        fake.edit = edit
        rep = run(store)
    assert attempts["n"] == 2 and store.count_by_type("uci")["Condition"] == 6
    assert ("Condition: the server's Bundle.total overcounts (a search returned 6 of the 7 "
            "matches its total announced, read twice alike); later shortfalls against total by up "
            "to as many not read again") in rep.warnings


def test_later_page_400_is_not_taken_for_a_rejected_parameter(store):
    """A 400 on a server's own next link (an invalid continuation token) was read as the
    server rejecting `_lastUpdated` (or `_include`): the type was pulled in full for every
    known patient with a false warning. Now it fails naming the type and page."""
    from cohort.errors import ServerError

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = PageFake(rsps)
        population(fake)
        run(store)
        fake.clock = "2026-11-26T10:00:00Z"
        for i in range(3):
            fake.add({**fake.db[("Observation", f"o{i}")], "status": "amended"},
                     "2026-11-26T09:00:00Z")

        def edit(req, status, body):
            if _pages_of("Observation", req) and "_offset" in req.url:
                return 400, oo("Invalid continuation token")
            return status, body

        fake.edit = edit
        fake.log.clear()
        with pytest.raises(ServerError, match="Observation: page 2 of a search failed: .*HTTP 400"):
            run(store)
    searches = [q for q in fake.log if q.startswith("Observation?") and "patient" in q]
    assert all("_lastUpdated" in q for q in searches)  # never retried without it


def test_type_missing_from_capability_one_night_is_pulled_in_full_when_back(store):
    """A night whose CapabilityStatement lacks Observation still marks that night's newly
    screened patients complete; the Observation mark stayed, so once the type was back only
    changes since it were searched and the new patient's older Observations were never
    fetched. The mark is now dropped while the type is missing."""
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        run(store)
        fake.cap = capability(types=[t for t in ALL if t != "Observation"])
        fake.clock = "2026-11-26T10:00:00Z"
        fake.add({"resourceType": "Condition", "id": "cx", "subject": {"reference": "Patient/px"},
                  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}},
                 "2026-11-26T09:00:00Z")
        rep = run(store)
        assert rep.patients_new == 1 and store.get("uci", "Observation", "ox") is None
        fake.cap = capability()
        fake.clock = "2026-11-27T10:00:00Z"
        run(store)
    assert store.get("uci", "Observation", "ox") is not None  # px's Observation of 2026-11-01


def test_a_record_without_an_id_is_left_out_with_a_warning(store):
    """A server record without an id failed the whole pull with StoreError, exit 8 ("local store
    error: disk, permissions"), every night; it is now left out with a warning."""
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        fake.db[("Immunization", "im0")].pop("id")
        rep = run(store)
    assert store.count_by_type("uci")["Immunization"] == 2
    assert "Immunization: record(s) without an id left out" in rep.warnings


def test_a_referenced_medication_that_is_gone_does_not_fail_every_night(store):
    """Without _include and _id search, Medications are read one by one; one that is gone
    (404) failed the pull, and so every night while a record still referenced it."""
    cap = capability(no_params={"Medication": {"_id"}}, includes=False)
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps, cap=cap)
        population(fake)
        del fake.db[("Medication", "m1")]
        rep = run(store)
    assert store.get("uci", "MedicationRequest", "mr1") is not None
    assert store.count_by_type("uci")["Medication"] == 2
    assert "Medication: a referenced Medication is gone (HTTP 404)" in rep.warnings


def test_full_refresh_removes_what_the_server_no_longer_has(store):
    """Records deleted on the server stayed in the store for good: docs/scheduling.md said a
    monthly --full-refresh bounds how long they linger, but a full refresh only added and
    updated. It now drops the records it no longer finds (and those of patients no longer
    screened) of every type it fetched in full; an incremental run still keeps them."""
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        run(store)
        del fake.db[("Observation", "o1")]  # deleted on the server
        del fake.db[("Condition", "c2")]  # p2 is no longer screened
        rep = run(store)
        assert rep.removed == 0 and store.get("uci", "Observation", "o1") is not None
        rep = run(store, full_refresh=True)
    assert store.get("uci", "Observation", "o1") is None
    assert store.get("uci", "Patient", "p2") is None and store.get("uci", "Immunization", "im2") is None
    assert store.get("uci", "Medication", "m2") is None  # referenced only by p2's request
    assert store.get("uci", "Observation", "o0") is not None and store.get("uci", "Medication", "m0")
    assert rep.removed == 8 and rep.to_dict()["removed"] == 8


def test_full_refresh_keeps_types_it_did_not_fetch(store):
    """A type missing from the CapabilityStatement on the night of a full refresh, and
    Medications while a medication type is missing, are not swept."""
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        run(store)
        store.put_resources("uci", [({"resourceType": "Medication", "id": "mz"}, "t")], source=BASE)
        fake.cap = capability(types=[t for t in ALL if t not in ("Immunization",
                                                                 "MedicationStatement")])
        rep = run(store, full_refresh=True)
        assert rep.removed == 0 and store.count_by_type("uci")["Immunization"] == 3
        assert store.get("uci", "Medication", "mz") is not None
        fake.cap = capability()
        rep = run(store, full_refresh=True)
    assert rep.removed == 1 and store.get("uci", "Medication", "mz") is None


def test_full_refresh_missing_most_of_a_type_removes_nothing(store):
    """A full refresh that finds far fewer records of a type than are stored (a server
    answering in part) fails with exit 6 and removes nothing, like a file snapshot."""
    from cohort.errors import ServerError

    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps, page=1000)
        population(fake, n=30)
        run(store)
        for i in range(20):
            del fake.db[("Observation", f"o{i}")]
        with pytest.raises(ServerError, match="Observation: the full refresh no longer found 20 of"
                                              " the 30 records.*Nothing was removed"):
            run(store, full_refresh=True)
        assert store.count_by_type("uci")["Observation"] == 30
        run(store, full_refresh=True, max_removal=1.0)
    assert store.count_by_type("uci")["Observation"] == 10


@pytest.mark.parametrize(
    "cs,why",
    [
        ({"resourceType": "OperationOutcome", "issue": []}, "got OperationOutcome"),
        ({"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]}, "lists none"),
        ({"resourceType": "CapabilityStatement",
          "rest": [{"mode": "server", "resource": ["Patient", "Condition"]}]}, "lists none"),
    ],
)
def test_metadata_that_states_nothing_pullable_fails_before_any_mark_moves(store, cs, why):
    """A metadata answer that is no CapabilityStatement (a 200 OperationOutcome), or one that
    lists none of the types pulled, made a run that pulled nothing but screening and still
    marked the newly screened patients complete; a `resource` list of strings crashed it
    (AttributeError, exit 1). Now exit 6 before anything is recorded."""
    from cohort.errors import ServerError

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeFhir(rsps, cap=cs)
        population(fake)
        with pytest.raises(ServerError, match=why):
            run(store)
    assert store.get_mark("uci", "fhir:complete") is None


def test_capability_elements_of_odd_shapes_are_passed_over():
    """searchParam, operation or resource entries that are strings (or null) crashed the
    CapabilityStatement read with AttributeError."""
    from cohort.source.fhir.plan import Capability

    cap = Capability.parse({"resourceType": "CapabilityStatement", "software": "x", "rest": [
        {"mode": "server", "operation": [None, {"name": "$export"}], "searchParam": ["_id"],
         "resource": ["Patient", {"type": "Observation", "searchParam": ["code"],
                                   "searchInclude": "x", "operation": "y"}]}]})
    assert cap.has_type("Observation") and not cap.has_type("Patient")
    assert cap.has_param("Observation", "code") and "export" in cap.operations


def _merge(fake, old: str, new: str, when: str = "2026-11-01T00:00:00Z") -> None:
    """`old`'s Patient says it was replaced by `new` (FHIR Patient.link), as a merge leaves it."""
    link = {"type": "replaced-by", "other": {"reference": f"Patient/{new}"}}
    fake.add({**fake.db[("Patient", old)], "link": [link]}, when)


def _unscreened(fake, pid: str, when: str = "2026-11-01T00:00:00Z") -> None:
    """A patient with a mapped lab and no screening Condition."""
    fake.add({"resourceType": "Patient", "id": pid}, when)
    fake.add(
        {
            "resourceType": "Observation",
            "id": f"o-{pid}",
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        },
        when,
    )


def test_chart_that_replaced_a_screened_one_is_pulled_with_it(store):
    """A merge that left the SLE diagnosis on the old chart and tonight's labs on the chart that
    replaced it: both charts are pulled (cohort reads them as one patient), also down a chain
    of merges and a loop of them, and the next night pulls the new chart's changes."""
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        for pid in ("q7", "q8", "q9"):
            _unscreened(fake, pid)
        _merge(fake, "p0", "q7")
        _merge(fake, "q7", "q8")  # a chain: p0 -> q7 -> q8
        _merge(fake, "p1", "q9")
        fake.add({**fake.db[("Patient", "q9")], "link": [
            {"type": "replaced-by", "other": {"reference": "Patient/p1"}}]})  # a loop
        rep = run(store)
        for pid in ("q7", "q8", "q9"):
            assert store.get("uci", "Patient", pid) is not None
            assert store.get("uci", "Observation", f"o-{pid}") is not None
        assert store.get("uci", "Patient", "px") is None  # still no one else
        assert rep.patients_screened == 6 and rep.patients_new == 6
        fake.clock = "2026-11-26T10:00:00Z"
        fake.add({**fake.db[("Observation", "o-q8")], "status": "amended"}, "2026-11-26T09:00:00Z")
        rep = run(store)
    assert store.get("uci", "Observation", "o-q8")["status"] == "amended"
    assert rep.incremental and rep.patients_new == 0 and rep.patients_screened == 6


def test_chart_a_screened_one_replaced_is_pulled_with_it(store):
    """The reverse merge: the screened chart says it replaced an old one (Patient.link
    replaces), whose records (here a lab; no screening Condition) are pulled and read with it;
    the old Patient need not say replaced-by. A chart no link names stays out."""
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        for pid in ("q7", "q8"):
            _unscreened(fake, pid)
        link = {"type": "replaces", "other": {"reference": "Patient/q7"}}
        fake.add({**fake.db[("Patient", "p0")], "link": [link]}, "2026-11-01T00:00:00Z")
        rep = run(store)
    assert store.get("uci", "Patient", "q7") is not None
    assert store.get("uci", "Observation", "o-q7") is not None
    assert store.get("uci", "Observation", "o-q8") is None
    assert rep.patients_screened == 4
    assert merges_of(store, "uci").into == {"q7": "p0"}


class _LaterForQ7(FakeFhir):
    """The server's clock moves on when the chart that replaced p0 is fetched."""

    def _get(self, req):
        if "q7" in req.url:
            self.clock = "2026-11-25T11:00:00Z"
        return super()._get(req)


def test_a_later_pass_for_replacing_charts_does_not_move_the_marks(store):
    """The marks stay at the first pass's clocks: a change made to a screened patient while the
    charts that replaced others were being pulled is fetched the next night."""
    with responses.RequestsMock() as rsps:
        fake = _LaterForQ7(rsps)
        population(fake)
        _unscreened(fake, "q7")
        _merge(fake, "p0", "q7")
        rep = run(store)
    assert store.get("uci", "Observation", "o-q7") is not None
    stamps = {k: rep.marks[k].split("|")[0] for k in ("Patient", "Condition", "Observation")}
    assert all(v < "2026-11-25T11" for v in stamps.values()), stamps


def test_a_mark_is_the_earlier_clock_when_two_fall_in_one_second(store):
    """Marks took the earliest server clock by comparing text: 10:00:00Z (a clock on the
    second: sekmet's meta.lastUpdated ".000Z", a Date header) sorted after 10:00:00.500000Z
    ('.' < 'Z'), so the mark moved half a second past a search's clock and, with
    sync_overlap = 0, a record changed in that half second was never pulled."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake, n=2)
        run(store, cfg={"sync_overlap": 0})
        fake.clock = "2026-11-26T10:00:00.000Z"
        _unscreened(fake, "p2")
        fake.add({"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p2"},
                  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]}})

        def edit(req, status, body):
            if _pages_of("Observation", req) and "p2" in req.url:  # (the new patient's search)
                body["meta"]["lastUpdated"] = "2026-11-26T10:00:00.500Z"
            return status, body

        fake.edit = edit
        rep = run(store, cfg={"sync_overlap": 0})
    assert rep.patients_new == 1
    assert rep.marks["Observation"].split("|")[0] == "2026-11-26T10:00:00Z", rep.marks


def _without_included_medications(req, status, body):
    if _pages_of("MedicationRequest", req) and "_include" in req.url:
        body["entry"] = [e for e in body["entry"] if e["resource"]["resourceType"] != "Medication"]
    return status, body


def test_a_medication_left_out_of_an_include_answer_is_read_by_id(store):
    """A server that takes _include but leaves a Medication out of its answer (another page, a
    scope that hides it, _include ignored) left the MedicationRequest without a drug code (a
    VAY736 request unseen: prior_ianalumab passed) and run.json silent: Medications were read
    by id only where _include was known unsupported. (From the server-connector audit.)"""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = _without_included_medications
        run(store)
    assert store.get("uci", "MedicationRequest", "mr0") is not None
    assert store.count_by_type("uci")["Medication"] == 3
    assert any(q.startswith("Medication?_count&_id") for q in fake.log)


def test_a_referenced_medication_the_server_does_not_return_is_a_warning(store):
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        del fake.db[("Medication", "m1")]
        fake.edit = _without_included_medications
        rep = run(store)
    assert store.count_by_type("uci")["Medication"] == 2
    assert "Medication: 1 referenced Medication(s) not returned by the server" in rep.warnings


def _next_night_mr1_stopped(fake):
    """The next night: the server has mr1 again, stopped since the last pull."""
    fake.clock = "2026-11-26T10:00:00Z"
    fake.add({**fake.db[("MedicationRequest", "mr1")], "status": "stopped"}, "2026-11-26T09:00:00Z")


def test_medications_already_included_or_stored_are_not_read_again(store):
    with responses.RequestsMock() as rsps:
        # (a server listing combo-code: no warning that components cannot be searched)
        fake = FakeFhir(rsps, cap=capability(more_params={"Observation": ["combo-code"]}))
        population(fake)
        run(store)
        _next_night_mr1_stopped(fake)
        rep = run(store)
    # (one probe for Medications changed on the server since the last night: none)
    meds = [q for q in fake.log if q.startswith("Medication?") or q.startswith("Medication/")]
    assert meds == ["Medication?_lastUpdated&_summary"]
    assert store.get("uci", "MedicationRequest", "mr1")["status"] == "stopped"
    assert not rep.warnings, rep.warnings


def _refuse_include(req, status, body):
    if "_include" in dict(parse_qsl(urlsplit(req.url).query)):
        return 400, oo("Unsupported _include value: MedicationRequest:medication")
    return status, body


@pytest.mark.parametrize("said", [True, False])
def test_a_refused_include_on_an_incremental_night_is_not_blamed_on_lastupdated(store, said):
    """On an incremental night any 400 was taken for a refused _lastUpdated (tested first):
    against a server refusing _include (its CapabilityStatement silent about it) every night
    pulled all medication records of the known patients in full, and run.json said "server
    rejected _lastUpdated". The parameter the error names is dropped; a bare 400 drops
    _include first. (From the server-connector audit.)"""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            status, body = _refuse_include(req, status, body)
            return (status, body if said or status != 400 else oo("Bad request"))

        run(store)
        fake.edit = edit  # (from the incremental night on: a refusal the first night is
        _next_night_mr1_stopped(fake)  # remembered, later nights do not ask, quirks.py)
        fake.log.clear()
        rep = run(store)
    assert store.get("uci", "MedicationRequest", "mr1")["status"] == "stopped"
    assert not any("rejected _lastUpdated" in w for w in rep.warnings), rep.warnings
    assert "MedicationRequest: server rejected _include; Medications read separately" in rep.warnings
    searched = [q for q in fake.log if q.startswith("MedicationRequest?") and "patient" in q]
    assert searched and all("_lastUpdated" in q for q in searched), searched
    assert store.count_by_type("uci")["Medication"] == 3


def test_a_bare_400_to_an_incremental_search_without_include_drops_lastupdated(store):
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        run(store)
        fake.clock = "2026-11-26T10:00:00Z"
        fake.add({**fake.db[("Immunization", "im1")], "status": "entered-in-error"},
                 "2026-11-26T09:00:00Z")

        def edit(req, status, body):
            if _pages_of("Immunization", req) and "_lastUpdated" in req.url:
                return 400, oo("Bad request")
            return status, body

        fake.edit = edit
        rep = run(store)
    assert store.get("uci", "Immunization", "im1")["status"] == "entered-in-error"
    assert "Immunization: server rejected _lastUpdated; full pull of that type" in rep.warnings


SLEDAI = "http://example.org/fhir/uci/flowsheet|SLEDAI2K"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"


class CategoryFake(PageFake):
    """A server that files Observations under a category and filters by it (FakeFhir's
    `category` matches everything)."""

    def _match(self, res, key, value):
        if key == "category":
            cats = {c.get("code") for cc in res.get("category") or [] for c in cc.get("coding", [])}
            return bool(cats & set(value.split(",")))
        return super()._match(res, key, value)


def _sledai_population(fake):
    """population() with each patient's Observations a laboratory Hgb and a survey SLEDAI."""
    population(fake)
    fake.db = {k: v for k, v in fake.db.items() if k[0] != "Observation"}
    for i in range(3):
        for oid, tok, cat in ((f"o{i}", HGB, "laboratory"), (f"s{i}", SLEDAI, "survey")):
            s, c = tok.split("|")
            fake.add({"resourceType": "Observation", "id": oid, "status": "final",
                      "subject": {"reference": f"Patient/p{i}"},
                      "code": {"coding": [{"system": s, "code": c}]},
                      "category": [{"coding": [{"system": OBS_CAT, "code": cat}]}]},
                     "2026-11-01T00:00:00Z")


def test_widening_observation_category_pulls_known_patients_older_observations(store):
    """The Observation mark's hash covered the mapped codes, not `observation_category`: a site
    adding "survey" after noticing SLEDAI missing got only survey Observations changed since
    the mark, never the known patients' existing scores. (From the server-connector audit.)"""
    tokens = {**TOKENS, "Observation": [HGB, SLEDAI]}
    with responses.RequestsMock() as rsps:
        fake = CategoryFake(rsps)
        _sledai_population(fake)
        pull("uci", settings(observation_category=["laboratory"]), store, tokens,
             screen_tokens=[SLE])
        assert store.get("uci", "Observation", "s0") is None
        fake.clock = "2026-11-26T10:00:00Z"
        pull("uci", settings(observation_category=["laboratory", "survey"]), store, tokens,
             screen_tokens=[SLE])
    assert store.get("uci", "Observation", "s0") is not None


def test_an_observation_mark_without_categories_is_as_before(store):
    """(No category configured: the mark's hash is the codes' alone, as stores hold it.)"""
    from cohort.source.fhir.plan import search_values, token_hash

    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        rep = run(store)
    codes = search_values(TOKENS["Observation"], False)
    assert rep.marks["Observation"].split("|")[1] == token_hash(codes)


def test_a_configured_observation_category_is_said_with_what_it_leaves_out(store):
    """docs/scheduling.md's example `observation_category = ["laboratory", "vital-signs"]`
    searched only those: the site-mapped SLEDAI score (a survey Observation) was never
    fetched, and run.json had no word of it. (From the server-connector audit.)"""
    tokens = {**TOKENS, "Observation": [HGB, SLEDAI]}
    with responses.RequestsMock() as rsps:
        fake = CategoryFake(rsps)
        _sledai_population(fake)
        rep = pull("uci", settings(observation_category=["laboratory", "vital-signs"]), store,
                   tokens, screen_tokens=[SLE])
    assert store.get("uci", "Observation", "o0") is not None
    assert store.get("uci", "Observation", "s0") is None
    assert (
        "Observation: searched category=laboratory,vital-signs only (observation_category); "
        "mapped Observations under another category (survey, exam, social-history, procedure, "
        "imaging, therapy, activity) are not pulled"
    ) in rep.warnings


def test_the_documented_observation_category_example_covers_the_shipped_flowsheet_scores():
    """The shipped trial maps SLEDAI-2K and BILAG-2004 (survey/exam-type flowsheet rows): the
    docs' example category list must not leave them out."""
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "scheduling.md").read_text()
    line = next(ln for ln in doc.splitlines() if "observation_category = [" in ln)
    assert '"survey"' in line and '"exam"' in line, line


@pytest.mark.parametrize("said", ["Unknown search parameter: _count", "Bad request"])
def test_a_server_refusing_count_is_searched_without_it(store, said):
    """Every search sends _count: a server refusing it (or a _count above its maximum) with 400
    failed every night at the first screening search, exit 6. The search is repeated once
    without _count, and no later one sends it. (From the server-connector audit.)"""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            if "_count" in dict(parse_qsl(urlsplit(req.url).query)):
                return 400, oo(said)
            return status, body

        fake.edit = edit
        rep = run(store)
    assert store.count_by_type("uci")["Observation"] == 3
    assert store.count_by_type("uci")["Medication"] == 3
    assert rep.warnings[0] == (
        "server rejected _count; searched" if "_count" in said else
        "Condition: server refused a search (HTTP 400) naming no parameter; tried"
    ) + " without _count, with the server's own page size, from then on"
    assert sum("_count" in q for q in fake.log) == 1, fake.log
    assert not any("_include" in w or "_lastUpdated" in w for w in rep.warnings), rep.warnings


def test_a_400_that_is_not_about_count_still_fails_the_run(store):
    from cohort.errors import ServerError

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = lambda req, status, body: (
            (400, oo("Bad request")) if _pages_of("Immunization", req) else (status, body))
        with pytest.raises(ServerError, match="Immunization.*HTTP 400"):
            run(store)


def _forbid(*rtypes):
    def edit(req, status, body):
        if any(urlsplit(req.url).path.endswith("/" + t) for t in rtypes):
            return 403, oo("Insufficient scope", "forbidden")
        return status, body

    return edit


def test_a_type_outside_the_granted_scope_is_not_pulled_and_said(store):
    """docs/scheduling.md's example scope grants no MedicationStatement; a server that has the
    type answers its search 403. That was taken for a refused _include (a false warning), and
    the second 403 ended the run with exit 7 every night though every other type was readable.
    (From the server-connector audit.)"""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = _forbid("MedicationStatement")
        rep = run(store)
    assert store.count_by_type("uci")["MedicationRequest"] == 3
    assert store.count_by_type("uci")["Medication"] == 3
    assert "MedicationStatement" not in rep.marks
    assert not any("_include" in w for w in rep.warnings), rep.warnings
    assert (
        "MedicationStatement: the server refused its search (HTTP 403: outside the access the "
        "credentials grant?); not pulled"
    ) in rep.warnings


def test_a_refused_type_names_the_configured_scope():
    from types import SimpleNamespace

    from cohort.source.fhir.fallback import refusal

    s = SimpleNamespace(auth="smart-backend", scope="system/Patient.rs system/Condition.rs")
    assert refusal(SimpleNamespace(s=s), "Procedure") == (
        "Procedure: the server refused its search (HTTP 403: outside the scope granted? "
        "[sites.server] scope = 'system/Patient.rs system/Condition.rs')"
    )


def test_a_type_refused_one_night_is_pulled_in_full_when_granted(store):
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = _forbid("Immunization")
        run(store)
        assert store.count_by_type("uci").get("Immunization", 0) == 0
        fake.edit = None
        fake.clock = "2026-11-26T10:00:00Z"
        run(store)
    assert store.count_by_type("uci")["Immunization"] == 3  # records of 2026-11-01


def test_a_medication_search_refused_keeps_the_medication_records(store):
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            status, body = _without_included_medications(req, status, body)
            return _forbid("Medication")(req, status, body)

        fake.edit = edit
        rep = run(store)
    assert store.count_by_type("uci")["MedicationRequest"] == 3
    assert any(w.startswith("Medication: the server refused its search (HTTP 403")
               for w in rep.warnings), rep.warnings


@pytest.mark.parametrize("screen_refused", [True, False])
def test_every_search_refused_is_still_an_auth_error(store, screen_refused):
    """(credentials or a scope that grants nothing: exit 7, as before, no mark moved)"""
    from cohort.errors import AuthError

    def edit(req, status, body):
        query = dict(parse_qsl(urlsplit(req.url).query))
        if screen_refused or "patient" in query or "_id" in query:
            return 403, oo("Insufficient scope", "forbidden")
        return status, body

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = edit
        with pytest.raises(AuthError, match="HTTP 403"):
            run(store)
    assert not store.get_mark("uci", "fhir:complete")


def test_a_category_demand_named_in_expression_is_understood(store):
    """Only the text of an OperationOutcome (diagnostics, details.text) was read for the
    parameter a server requires: one saying "Required search parameter missing from request"
    and naming `category` in `expression` (where FHIR puts it) failed the run. (From the
    server-connector audit.)"""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            q = dict(parse_qsl(urlsplit(req.url).query))
            if _pages_of("Observation", req) and "category" not in q:
                return 400, {"resourceType": "OperationOutcome", "issue": [{
                    "severity": "fatal", "code": "required",
                    "details": {"text": "Required search parameter missing from request"},
                    "expression": ["category"]}]}
            return status, body

        fake.edit = edit
        rep = run(store)
    assert store.count_by_type("uci")["Observation"] == 3
    assert any(w.startswith("Observation: server requires 'category'") for w in rep.warnings)



@pytest.mark.parametrize("configured", [[], ["laboratory", "survey"]])
def test_a_category_demanded_one_value_per_search_is_searched_category_by_category(
    store, configured
):
    """A server requiring category but taking one value per search (Epic documents its
    Observation `category` as no list) answered the comma-joined categories 400 again, and the
    run failed. (From the server-connector audit.)"""
    tokens = {**TOKENS, "Observation": [HGB, SLEDAI]}
    with responses.RequestsMock() as rsps:
        fake = CategoryFake(rsps)
        _sledai_population(fake)

        def edit(req, status, body):
            q = dict(parse_qsl(urlsplit(req.url).query))
            if urlsplit(req.url).path.endswith("/Observation") and "_summary" not in q:
                if "category" not in q:
                    return 400, oo("Observation search requires a category parameter")
                if "," in q["category"]:
                    return 400, oo("category: only one value is allowed")
            return status, body

        fake.edit = edit
        rep = pull("uci", settings(observation_category=configured), store, tokens,
                   screen_tokens=[SLE])
    assert store.get("uci", "Observation", "o0") is not None
    assert store.get("uci", "Observation", "s0") is not None
    assert store.count_by_type("uci")["Observation"] == 6
    assert any(w.startswith("Observation: server takes one category per search")
               for w in rep.warnings), rep.warnings


@pytest.mark.parametrize("by_id", [True, False])
def test_medications_refused_one_night_are_read_once_granted(store, by_id):
    """A referenced Medication the server refused (403: Medication outside the token's scope)
    left the medication records stored without their drug code, and the medication types'
    marks moved past them: once Medication was granted, nothing read them again (the records
    are not changed, so no incremental search returns them) and a VAY736 request stayed unseen
    for good. The marks of the types whose Medications went unread now stay where they were
    (review)."""
    cap = capability(no_params={} if by_id else {"Medication": {"_id"}})
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = PageFake(rsps, cap=cap)
        population(fake)

        def edit(req, status, body):
            status, body = _without_included_medications(req, status, body)
            if "/Medication?" in req.url or "/Medication/" in req.url:
                return 403, oo("Insufficient scope", "forbidden")
            return status, body

        fake.edit = edit
        run(store)
        assert store.count_by_type("uci").get("Medication", 0) == 0
        fake.edit = _without_included_medications
        fake.clock = "2026-11-26T10:00:00Z"
        rep = run(store)
    assert store.count_by_type("uci")["Medication"] == 3, rep.warnings
    assert not any("could not be read" in w or "refused" in w for w in rep.warnings)


def test_search_pull_drops_stored_records_of_types_not_read(store):
    """A site moved from Bulk to search: the Encounters an earlier version's Bulk load stored
    are dropped by the search pull too (counted); the types cohort reads stay."""
    store.put_resources("uci", [({"resourceType": "Encounter", "id": "e1",
                                  "subject": {"reference": "Patient/p0"}}, "bulk 0009.Encounter.ndjson:1")],
                        source=BASE)
    with responses.RequestsMock() as rsps:
        fake = FakeFhir(rsps)
        population(fake)
        rep = run(store)
    assert rep.to_dict()["dropped_types"] == {"Encounter": 1}
    assert store.get("uci", "Encounter", "e1") is None
    assert store.count_by_type("uci")["Medication"] == 3


def test_a_base_url_whose_host_changed_case_is_the_same_server(store):
    """QA: `LOCALHOST` -> `localhost` in the config was "base_url changed since the last pull:
    full refresh", with its removals; a host (and scheme) is case-insensitive, a path is not."""
    from cohort.source.fhir.pull import same_server

    upper = BASE.upper().replace("/R4", "/r4")  # HTTPS://FHIR.EXAMPLE.../r4
    with responses.RequestsMock() as rsps:
        population(FakeFhir(rsps))
        run(store)
        rep = run(store, cfg={"base_url": upper})
    assert rep.incremental and not any("base_url changed" in w for w in rep.warnings)
    assert same_server(BASE, upper) and same_server(BASE + "/", BASE)
    assert not same_server(BASE, BASE.replace("/r4", "/R4"))
