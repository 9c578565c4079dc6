"""Server quirks (a refused _count, Observation categories, a Bulk kick-off's Medication or
_typeFilter) learned one night and used from the start on later ones; and parallel searches
refused before the shared _count switch flips."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
import test_fhir_bulk as tb
from fhir_fakes import BASE, HGB, SLE, TOKENS, oo, population
from test_fhir_pull import OBS_CAT, SLEDAI, CategoryFake, PageFake, _sledai_population, settings

from cohort.source.fhir import pull
from cohort.source.fhir.client import FhirClient
from cohort.source.fhir.plan import DEFAULT_CATEGORIES


def _query(req) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(req.url).query))


def _said(rep) -> list[str]:
    """run.json's warnings but the one every night gives a fake server listing no combo-code."""
    return [w for w in rep.warnings if not w.startswith("Observation: the server lists neither")]


def _path(req) -> str:
    return urlsplit(req.url).path.rsplit("/", 1)[1]


def test_two_parallel_searches_refused_for_count_each_retry_without_it(store):
    """Reviewer's suspicion: with concurrency > 1, a search sent with _count before another
    search's refusal switched _count off, and refused after it, falls back wrongly (no retry
    without _count: the run fails, or _lastUpdated / _include is dropped). Refuted: each
    refusal is judged by what its own request carried (62d2f7a). Here on the search path: two
    Immunization searches run concurrently (a per-type _count maximum), both are in flight with
    _count before either is answered, and each is asked once more without it."""
    both_sent = threading.Barrier(2, timeout=10)
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            if _path(req) == "Immunization" and "_count" in _query(req):
                both_sent.wait()  # neither is answered before both were sent with _count
                return 400, oo("_count exceeds the maximum page size (500)")
            return status, body

        fake.edit = edit
        rep = pull("uci", settings(concurrency=2, patient_batch=1), store, TOKENS,
                   screen_tokens=[SLE])
    imm = [q for q in fake.log if q.startswith("Immunization")]
    # the first two ids in parallel, each refused with _count and retried without; the third
    # patient's search goes without _count from the start
    assert imm == ["Immunization?_count&patient"] * 2 + ["Immunization?patient"] * 3, imm
    assert store.count_by_type("uci")["Immunization"] == 3
    assert _said(rep) == [
        "server rejected _count; searched without _count, with the server's own page size, "
        "from then on"
    ]
    # learned once (both searches confirmed it), from the search that carried _count
    assert list(rep.quirks) == ["no-count"] and list(remembered(store)) == ["no-count"]


# -- learned fallbacks remembered across nights --------------------------------------------------

DAY = 86400.0
T0 = datetime(2026, 11, 25, 10, tzinfo=UTC).timestamp()  # night 1, by the client's clock
KEY = f"fhir:quirks:{BASE}"
# a quiet incremental night's requests when no search sends _count: the screening search, then
# one _summary=count probe per type (nothing changed: no batched patient search)
QUIET = [
    "metadata?",
    "Medication?_lastUpdated&_summary",
    "Condition?_lastUpdated&code",
    "Patient?_lastUpdated&_summary",
    "Condition?_lastUpdated&_summary",
    "Observation?_lastUpdated&_summary&code",
    "MedicationRequest?_lastUpdated&_summary",
    "MedicationStatement?_lastUpdated&_summary",
    "MedicationAdministration?_lastUpdated&_summary",
    "Immunization?_lastUpdated&_summary",
    "Procedure?_lastUpdated&_summary&code",
]


def night(store, at: float, *, full_refresh=False, tokens=TOKENS, **cfg):
    """One pull whose client clock says `at` (what learned quirks are dated by)."""
    s = settings(**cfg)
    client = FhirClient(s, clock=lambda: at, sleep=lambda _: None)
    return pull("uci", s, store, tokens, screen_tokens=[SLE], client=client,
                full_refresh=full_refresh)


def refuse_count(req, status, body):
    if "_count" in _query(req):
        return 400, oo("Unknown search parameter: _count")
    return status, body


def remembered(store) -> dict[str, str]:
    return json.loads(store.get_mark("uci", KEY) or "{}")


def _next_day(fake, n: int = 1) -> None:
    fake.log.clear()
    fake.clock = f"2026-11-{25 + n:02d}T10:00:00Z"


def test_a_refused_count_is_remembered_and_not_sent_the_next_night(store, caplog):
    """A server refusing _count had every night's first search refused (the connector then
    searched without it): one refused request a night, for good. Now the refusal is kept in
    the store's marks (per site and base URL); the next night sends no _count at all."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = refuse_count
        first = night(store, T0)
        assert fake.log[1:3] == ["Condition?_count&code", "Condition?code"]
        assert remembered(store) == {"no-count": "2026-11-25T10:00:00Z"}
        assert first.quirks == {"no-count": "2026-11-25T10:00:00Z"}
        _next_day(fake)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="cohort.fhir"):
            rep = night(store, T0 + DAY)
    assert fake.log == QUIET
    assert _said(rep) == [] and rep.to_dict()["quirks"] == {"no-count": "2026-11-25T10:00:00Z"}
    said = [r.getMessage() for r in caplog.records if "quirk" in r.getMessage()]
    assert said == [
        "fhir uci: server quirks remembered from earlier nights: no-count (learned "
        "2026-11-25); tried again after 30 days or with --full-refresh"
    ]


def test_a_remembered_count_refusal_is_tried_again_after_30_days(store):
    """A quirk is not kept for ever: a server upgrade would go unnoticed. After 30 days the
    full request is tried again: refused, the quirk is learned again (newly dated); accepted,
    it is forgotten and later nights send _count."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = refuse_count
        night(store, T0)
        _next_day(fake)
        night(store, T0 + 29.9 * DAY)
        assert fake.log == QUIET
        _next_day(fake, 2)
        night(store, T0 + 30 * DAY)
        assert fake.log == [*QUIET[:2], "Condition?_count&_lastUpdated&code", *QUIET[2:]]
        assert remembered(store) == {"no-count": "2026-12-25T10:00:00Z"}
        # the server is upgraded: 30 days on, _count is accepted and forgotten as a quirk
        fake.edit = None
        _next_day(fake, 3)
        rep = night(store, T0 + 60 * DAY)
        assert fake.log == [*QUIET[:2], "Condition?_count&_lastUpdated&code", *QUIET[3:]]
        assert remembered(store) == {} and rep.quirks == {}
        _next_day(fake, 4)
        night(store, T0 + 61 * DAY)
    assert fake.log == [*QUIET[:2], "Condition?_count&_lastUpdated&code", *QUIET[3:]]


@pytest.mark.parametrize("upgraded", [True, False])
def test_full_refresh_tries_remembered_quirks_again(store, upgraded):
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = refuse_count
        night(store, T0)
        fake.edit = None if upgraded else refuse_count
        _next_day(fake)
        night(store, T0 + DAY, full_refresh=True)
    assert fake.log[1] == "Condition?_count&code"
    assert remembered(store) == ({} if upgraded else {"no-count": "2026-11-26T10:00:00Z"})


def _answers(*statuses):
    """An edit answering the screening search (with _count) `statuses` in turn, then 400
    naming _count; everything without _count as the fake would."""
    left = list(statuses)

    def edit(req, status, body):
        if "_count" not in _query(req):
            return status, body
        if left:
            code = left.pop(0)
            return code, oo("busy", "transient" if code != 401 else "login")
        return 400, oo("Unknown search parameter: _count")

    return edit


@pytest.mark.parametrize("status", [401, 429, 503])
def test_an_error_that_is_no_refusal_teaches_nothing(store, status, tmp_path):
    """A 401 that survives a token refresh, and a 429 or 5xx past the retries, fail the run:
    no quirk is learned from them."""
    from cohort.errors import ServerError

    token = tmp_path / "token"
    token.write_text("t0k3n\n")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = _answers(status, status)
        with pytest.raises(ServerError):
            night(store, T0, auth="bearer", token_file=str(token))
    assert fake.log == ["metadata?", "Condition?_count&code", "Condition?_count&code"]
    assert remembered(store) == {}


def test_a_refusal_after_429_and_503_retries_is_learned(store):
    """429 and 503 are retried as ever (backoff, or Retry-After); the refusal that follows them
    is learned."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = _answers(429, 503)
        rep = night(store, T0, max_retries=3)
        assert fake.log[1:5] == ["Condition?_count&code"] * 3 + ["Condition?code"]
        assert rep.retries["Condition"] == 2
        fake.edit = None
        _next_day(fake)
        night(store, T0 + DAY)
    assert fake.log == QUIET and remembered(store) == {"no-count": "2026-11-25T10:00:00Z"}


def test_a_later_page_refused_teaches_nothing(store):
    """A next link answered 400 (expired paging state, the search restarted) is no refusal of
    _count: nothing is learned."""
    refused = []
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            if "_offset" in _query(req) and not refused:
                refused.append(req.url)
                return 400, oo("Invalid page id")
            return status, body

        fake.edit = edit
        rep = night(store, T0)
    assert refused and any("searched again from the first page" in w for w in rep.warnings)
    assert remembered(store) == {} and rep.quirks == {}


def test_an_unreadable_quirks_mark_is_taken_for_none(store):
    store.set_mark("uci", KEY, "{not json")
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        rep = night(store, T0)
    assert fake.log[1] == "Condition?_count&code" and rep.quirks == {}


class EpicFake(CategoryFake):
    """Observation searches (the _summary=count probe too) need one category value; `probed`:
    the categories of the Observation probes, in order."""

    def __init__(self, rsps):
        super().__init__(rsps)
        self.probed: list[str] = []

        def edit(req, status, body):
            q = _query(req)
            if _path(req) != "Observation":
                return status, body
            if "_summary" in q:
                self.probed.append(q.get("category", ""))
            if "category" not in q:
                return 400, oo("Observation search requires a category parameter")
            if "," in q["category"]:
                return 400, oo("category: only one value is allowed")
            return status, body

        self.edit = edit


@pytest.mark.parametrize("configured", [[], ["laboratory", "survey"]])
def test_observation_category_fallbacks_are_remembered(store, configured):
    """A server that requires category and takes one value per search (Epic) refused one or
    two Observation searches every night (without category, then with the list) before the
    connector searched category by category, and the change probe of a quiet night too. Now
    the next night's probes and searches go one category at a time from the start."""
    tokens = {**TOKENS, "Observation": [HGB, SLEDAI]}
    cats = configured or list(DEFAULT_CATEGORIES)
    with responses.RequestsMock() as rsps:
        fake = EpicFake(rsps)
        _sledai_population(fake)
        night(store, T0, tokens=tokens, observation_category=configured)
        obs = [q for q in fake.log if q.startswith("Observation")]
        refused = ([] if configured else ["Observation?_count&code&patient"]) + [
            "Observation?_count&category&code&patient"]
        assert obs[: len(refused) + 1] == [*refused, "Observation?_count&category&code&patient"]
        learned = {"category-each": "2026-11-25T10:00:00Z"}
        if not configured:
            learned["observation-category"] = "2026-11-25T10:00:00Z"
        assert remembered(store) == learned
        _next_day(fake)
        rep = night(store, T0 + DAY, tokens=tokens, observation_category=configured)
        # the quiet night: one probe per category, none refused, no search
        assert fake.log == [
            *QUIET[:2], "Condition?_count&_lastUpdated&code", *QUIET[3:5],
            *["Observation?_lastUpdated&_summary&category&code"] * len(cats), *QUIET[6:]]
        assert fake.probed == cats
        # a night with a new survey score: probes up to the survey one, then the searches
        fake.add({"resourceType": "Observation", "id": "s9", "status": "final",
                  "subject": {"reference": "Patient/p1"},
                  "code": {"coding": [{"system": SLEDAI.split("|")[0], "code": "SLEDAI2K"}]},
                  "category": [{"coding": [{"system": OBS_CAT, "code": "survey"}]}]},
                 "2026-11-27T01:00:00Z")
        _next_day(fake, 2)
        fake.probed.clear()
        night(store, T0 + 2 * DAY, tokens=tokens, observation_category=configured)
    probes = cats[: cats.index("survey") + 1]
    searched = [q for q in fake.log if q.startswith("Observation") and "_summary" not in q]
    assert fake.probed == probes
    assert searched == ["Observation?_count&_lastUpdated&category&code&patient"] * len(cats)
    assert store.get("uci", "Observation", "s9") is not None
    # (configured categories: the warning naming those left out, as every night)
    assert len(_said(rep)) == len(configured[:1]), rep.warnings
    assert all(w.startswith("Observation: searched category=") for w in _said(rep))



def test_observation_category_quirks_tried_again_after_30_days(store):
    """30 days on, an upgraded server that now takes a category list is searched with one
    again (the category-each quirk forgotten); its still required category is learned anew."""
    tokens = {**TOKENS, "Observation": [HGB, SLEDAI]}
    with responses.RequestsMock() as rsps:
        fake = EpicFake(rsps)
        _sledai_population(fake)
        night(store, T0, tokens=tokens)
        edit = fake.edit

        def lists_taken(req, status, body):
            if "," in _query(req).get("category", ""):
                return status, body
            return edit(req, status, body)

        fake.edit = lists_taken
        _next_day(fake)
        night(store, T0 + 30 * DAY, tokens=tokens)
        obs = [q for q in fake.log if q.startswith("Observation")]
        assert obs == [
            "Observation?_lastUpdated&_summary&code",  # the probe: refused (no category)
            "Observation?_count&_lastUpdated&code&patient",  # refused (no category)
            "Observation?_count&_lastUpdated&category&code&patient",  # the list: taken
        ]
        assert remembered(store) == {"observation-category": "2026-12-25T10:00:00Z"}
        _next_day(fake, 2)
        night(store, T0 + 31 * DAY, tokens=tokens)
    assert [q for q in fake.log if q.startswith("Observation")] == [
        "Observation?_lastUpdated&_summary&category&code"]


# -- Bulk kick-off -------------------------------------------------------------------------------

EXPORTED = ("Patient,Condition,Observation,MedicationRequest,MedicationStatement,"
            "MedicationAdministration,Immunization,Procedure")
FILTERS = [("_typeFilter", "Observation?code=718-7"), ("_typeFilter", "Procedure?code=127788007")]


def bulk_night(tmp_path, store, at: float, **cfg):
    s = tb.settings(tmp_path, bulk_group="g1", **cfg)
    client = FhirClient(s, clock=lambda: at, sleep=lambda _: None)
    return pull("uci", s, store, TOKENS, screen_tokens=[SLE], client=client)


def _kickoffs(tmp_path, refuse):
    kick: list = []
    tb.setup_server(tb.ndjson([tb.obs(1, "p1")]), {}, kick, [])
    tb._refusing_kickoff(kick, lambda q: refuse[0](q))
    return kick


def _with_medication(q) -> bool:
    return "Medication" in dict(q)["_type"].split(",")


def _with_filter(q) -> bool:
    return any(k == "_typeFilter" for k, _ in q)


@responses.activate
@pytest.mark.parametrize("refused", ["medication", "medication+filter"])
def test_a_bulk_kickoff_refused_with_medication_is_remembered(tmp_path, store, refused):
    """HAPI and IBM FHIR refuse Medication in a Group export's _type (and a server may refuse
    _typeFilter): every night's kick-off was refused once or twice before the one it took.
    Now the next night asks at once for what the server took."""
    both = refused == "medication+filter"
    refuse = [lambda q: _with_medication(q) or (both and _with_filter(q))]
    kick = _kickoffs(tmp_path, refuse)
    bulk_night(tmp_path, store, T0)
    # (both: without Medication, then without _typeFilter only, each refused, then neither)
    assert len(kick) == (4 if both else 2)
    learned = {"bulk-no-medication": "2026-11-25T10:00:00Z"}
    if both:
        learned["bulk-no-typefilter"] = "2026-11-25T10:00:00Z"
    assert remembered(store) == learned
    kick.clear()
    rep = bulk_night(tmp_path, store, T0 + DAY)
    since = ("_since", "2026-11-25T09:55:00Z")
    assert kick == [[("_type", EXPORTED), *([] if both else FILTERS), since]]
    assert not [w for w in rep.warnings if w.startswith("bulk: server refused")], rep.warnings
    assert rep.quirks == learned


@responses.activate
def test_bulk_kickoff_quirks_are_tried_again_after_30_days(tmp_path, store):
    """30 days on, the full kick-off is asked again: a server upgraded to take _typeFilter but
    not Medication is asked once more without Medication only, and _typeFilter is forgotten."""
    refuse = [lambda q: _with_medication(q) or _with_filter(q)]
    kick = _kickoffs(tmp_path, refuse)
    bulk_night(tmp_path, store, T0)
    refuse[0] = _with_medication
    kick.clear()
    bulk_night(tmp_path, store, T0 + 30 * DAY)
    since = ("_since", "2026-11-25T09:55:00Z")
    assert kick == [[("_type", f"{EXPORTED},Medication"), *FILTERS, since],
                    [("_type", EXPORTED), *FILTERS, since]]
    assert remembered(store) == {"bulk-no-medication": "2026-12-25T10:00:00Z"}
    kick.clear()
    bulk_night(tmp_path, store, T0 + 31 * DAY)
    assert kick == [[("_type", EXPORTED), *FILTERS, since]]


def test_two_parallel_observation_searches_refused_for_categories_split_each(store, caplog):
    """The category fallbacks' shared switches (the categories added, one category per search)
    under the same race: two Observation searches in flight without category, then both with
    the list, before either is answered. Each ends category by category, nothing else is
    dropped, and each quirk is learned (and logged) once."""
    tokens = {**TOKENS, "Observation": [HGB, SLEDAI]}
    both_sent = threading.Barrier(2, timeout=10)
    with responses.RequestsMock() as rsps:
        fake = EpicFake(rsps)
        _sledai_population(fake)
        refuse, sent = fake.edit, []

        def edit(req, status, body):
            cat = _query(req).get("category")
            if _path(req) == "Observation":
                sent.append(cat)
                if cat is None or "," in cat:
                    both_sent.wait()
            return refuse(req, status, body)

        fake.edit = edit
        with caplog.at_level(logging.INFO, logger="cohort.fhir"):
            rep = night(store, T0, tokens=tokens, concurrency=2, patient_batch=1)
    cats = list(DEFAULT_CATEGORIES)
    assert sent[:4] == [None, None, ",".join(cats), ",".join(cats)]
    # the two first searches category by category, then the third patient's from the start
    assert sorted(sent[4:]) == sorted(cats * 3)
    assert store.count_by_type("uci")["Observation"] == 6
    assert not any("_lastUpdated" in w or "_count" in w for w in rep.warnings), rep.warnings
    assert remembered(store) == {"category-each": "2026-11-25T10:00:00Z",
                                 "observation-category": "2026-11-25T10:00:00Z"}
    said = [r.getMessage() for r in caplog.records if "quirk learned" in r.getMessage()]
    assert sorted(said) == [
        "fhir uci: server quirk learned: category-each (takes one Observation category per "
        "search); remembered for 30 days",
        "fhir uci: server quirk learned: observation-category (requires category in an "
        "Observation search); remembered for 30 days",
    ]


def _with_combo(q) -> bool:
    return any(k == "_typeFilter" and v.startswith("Observation?combo-code=") for k, v in q)


@responses.activate
@pytest.mark.parametrize("refused", ["combo-code", "typefilter"])
def test_a_bulk_kickoff_learns_only_what_the_server_refused(tmp_path, store, refused):
    """The kick-off fallback dropped Medication first and kept it dropped: a server refusing
    only combo-code in _typeFilter (or only _typeFilter) was taken to refuse Medication too
    (bulk-no-medication learned: its Medications read by id every night for 30 days, though
    the export would have held them). Each thing is now asked without on its own first, with
    the rest back; only what the kick-off taken lacks is learned."""
    import test_fhir_bulk as fb

    refuse = [_with_combo if refused == "combo-code" else _with_filter]
    kick = _kickoffs(tmp_path, refuse)
    responses.replace(responses.GET, f"{BASE}/metadata", json=fb.COMBO_CAP)
    rep = bulk_night(tmp_path, store, T0)
    taken = kick[-1]
    assert _with_medication(taken) and not refuse[0](taken), kick
    quirk = "bulk-no-combo-code" if refused == "combo-code" else "bulk-no-typefilter"
    assert rep.quirks == {quirk: "2026-11-25T10:00:00Z"}
    said = [w for w in rep.warnings if w.startswith("bulk: server refused")]
    assert said[0] == ("bulk: server refused the export kick-off (HTTP 400); asked again without"
                       " Medication in _type (referenced Medications are read by id)")
    assert "without Medication too" in said[1], said
    kick.clear()
    bulk_night(tmp_path, store, T0 + DAY)
    assert len(kick) == 1 and _with_medication(kick[0]) and not refuse[0](kick[0]), kick


# -- a refused _include or _lastUpdated, remembered per type ---------------------------------------

MEDS = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")


def refuse_include(req, status, body):
    if "_include" in _query(req):
        return 400, oo("Unsupported _include value")
    return status, body


@pytest.mark.parametrize("named", [True, False])
def test_a_refused_include_is_remembered(store, named):
    """A server refusing _include of Medication (named, or a bare 400: _include is dropped
    first) had each medication type's first search refused every night, the Medications read
    by id after it. The refusal is now a quirk of the type (`no-include:<type>`): the next
    night's searches go without _include from the start, with no refused request; the
    Medications are read by id as on the night it was learned."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            status, body = refuse_include(req, status, body)
            return status, (body if named or status != 400 else oo("Bad request"))

        fake.edit = edit
        first = night(store, T0)
        learned = {f"no-include:{t}": "2026-11-25T10:00:00Z" for t in MEDS}
        assert first.quirks == learned and remembered(store) == learned
        fake.add({**fake.db[("MedicationRequest", "mr1")], "id": "mr9",
                  "medicationReference": {"reference": "Medication/m9"}}, "2026-11-26T09:00:00Z")
        fake.add({"resourceType": "Medication", "id": "m9", "code": {"text": "VAY736"}},
                 "2026-11-26T09:00:00Z")
        _next_day(fake)
        rep = night(store, T0 + DAY)
    assert not any("_include" in q for q in fake.log), fake.log
    assert store.get("uci", "Medication", "m9") is not None  # (read by id)
    assert rep.quirks == learned
    assert not any("_include" in w for w in _said(rep)), rep.warnings


def test_a_remembered_include_refusal_is_tried_again_after_30_days(store):
    """30 days on, _include is asked again by the next search of the type: accepted (the
    server upgraded), that type's quirk is forgotten; the others, not searched that quiet night
    (nothing changed), wait for their next search."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)
        fake.edit = refuse_include
        night(store, T0)
        fake.edit = None
        _next_day(fake)
        fake.add({**fake.db[("MedicationRequest", "mr1")], "status": "stopped"},
                 "2026-11-26T09:00:00Z")
        rep = night(store, T0 + 30 * DAY)
    asked = [q for q in fake.log if q.startswith("MedicationRequest?") and "patient" in q]
    assert asked and all("_include" in q for q in asked), fake.log
    rest = {f"no-include:{t}": "2026-11-25T10:00:00Z" for t in MEDS[1:]}
    assert rep.quirks == rest and remembered(store) == rest


def _refusing_lastupdated_on_immunization(fake, store):
    """A first night, then a server refusing _lastUpdated on Immunization searches: the
    second night's report."""
    population(fake)
    night(store, T0)

    def edit(req, status, body):
        if _path(req) == "Immunization" and "_lastUpdated" in _query(req):
            return 400, oo("Unknown search parameter _lastUpdated")
        return status, body

    fake.edit = edit
    _next_day(fake)
    return night(store, T0 + DAY)


def test_a_refused_lastupdated_is_remembered_per_type(store):
    """A server refusing _lastUpdated on Immunization searches: each night asked with it,
    was refused, and pulled the type in full. The refusal is now a quirk of that type only
    (`no-lastupdated:Immunization`): later nights pull Immunizations in full from the start
    (run.json says so), with no refused request; the other types stay incremental."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        rep = _refusing_lastupdated_on_immunization(fake, store)
        assert "Immunization: server rejected _lastUpdated; full pull of that type" in rep.warnings
        assert rep.quirks == {"no-lastupdated:Immunization": "2026-11-26T10:00:00Z"}
        _next_day(fake, 2)
        rep = night(store, T0 + 2 * DAY)
    imm = [q for q in fake.log if q.startswith("Immunization")]
    assert imm and all("_lastUpdated" not in q for q in imm), imm  # in full, none refused
    others = [q for q in fake.log if q.split("?")[0] not in ("metadata", "Immunization")]
    assert others and all("_lastUpdated" in q for q in others), others
    assert rep.quirks == {"no-lastupdated:Immunization": "2026-11-26T10:00:00Z"}
    assert any(w.startswith("Immunization: the server refused _lastUpdated on an earlier night")
               for w in rep.warnings), rep.warnings


def test_a_full_refresh_tries_a_remembered_lastupdated_refusal_again(store):
    """--full-refresh promises to try remembered quirks again, but a full refresh sends no
    _lastUpdated, so `no-lastupdated:<type>` was neither tried nor forgotten: after a server
    upgrade the type was still pulled in full every night until its 30 days were up. A full
    refresh now forgets it; the next night asks with _lastUpdated again (learning it anew if
    the server still refuses)."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        rep = _refusing_lastupdated_on_immunization(fake, store)
        assert rep.quirks == {"no-lastupdated:Immunization": "2026-11-26T10:00:00Z"}
        fake.edit = None  # the server is upgraded: it takes _lastUpdated now
        _next_day(fake, 2)
        rep = night(store, T0 + 2 * DAY, full_refresh=True)
        assert rep.quirks == {}, rep.quirks
        fake.log.clear()
        _next_day(fake, 3)
        rep = night(store, T0 + 3 * DAY)
    imm = [q for q in fake.log if q.startswith("Immunization")]
    assert imm and all("_lastUpdated" in q for q in imm), imm
    assert rep.quirks == {}, rep.quirks
    assert not any("Immunization" in w for w in rep.warnings), rep.warnings


def test_include_dropped_before_count_for_a_bare_400_is_not_learned(store):
    """A bare 400 drops _include first, then _count: a server refusing only _count (no name
    given) is searched without both, but only no-count is learned, _include not being what it
    refused (its next search with _include and without _count is answered)."""
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            if "_count" in _query(req):
                return 400, oo("Bad request")
            return status, body

        fake.edit = edit
        rep = night(store, T0)
    assert list(rep.quirks) == ["no-count"], rep.quirks


def test_a_parallel_search_refused_for_count_does_not_learn_no_include(store):
    """Two MedicationRequest searches in flight with _count and _include, a server refusing
    _count with a bare 400: a bare 400 drops _include first. The search answered after the
    other switched _count off retried without _include and, _count being off by then, without
    _count too: answered, it took _include for the server's reason (no-include learned, the
    Medications read by id for 30 days). A fallback is learned only when its retry differs
    from the refused request by that fallback alone: here no-count only."""
    both_sent = threading.Barrier(2, timeout=10)
    switched = threading.Event()
    first = threading.Lock()
    with responses.RequestsMock() as rsps:
        fake = PageFake(rsps)
        population(fake)

        def edit(req, status, body):
            q = _query(req)
            if _path(req) != "MedicationRequest" or "patient" not in q:
                return status, body
            if "_count" not in q:
                switched.set()
                return status, body
            if "_include" in q:
                both_sent.wait()
                if not first.acquire(blocking=False):  # (the second: after the switch)
                    switched.wait(timeout=10)
            return 400, oo("Bad request")

        fake.edit = edit
        rep = pull("uci", settings(concurrency=2, patient_batch=1), store, TOKENS,
                   screen_tokens=[SLE])
    assert list(rep.quirks) == ["no-count"], rep.quirks
