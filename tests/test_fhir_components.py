"""Observations whose only mapped code is a component's (a platelet count inside a CBC panel):
the search path asks for them with `combo-code` (or `code` and `component-code`) where the
server's CapabilityStatement lists it, and says so in run.json where it lists neither."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from fhir_fakes import BASE, SLE, TOKENS, FakeFhir, capability, oo, population

from cohort.source.fhir import ServerSettings, pull

PLT = "http://loinc.org|777-3"
CBC = "http://loinc.org|58410-2"
# what the searches ask for: HGB (population's mapped lab) and the platelet count
OBS_TOKENS = {**TOKENS, "Observation": [TOKENS["Observation"][0], PLT]}
UNSEARCHABLE = (
    "Observation: the server lists neither combo-code nor component-code in its"
    " CapabilityStatement; Observations whose only mapped code is a component's (a platelet"
    " count inside a CBC panel) cannot be searched and are not pulled"
)


def cc(tok: str) -> dict:
    s, c = tok.split("|")
    return {"coding": [{"system": s, "code": c}]}


def panel(rid: str, pid: str, part: str = PLT) -> dict:
    """A CBC panel whose own code maps to nothing, with the mapped code as a component."""
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "subject": {"reference": f"Patient/{pid}"},
        "code": cc(CBC),
        "component": [{"code": cc(part), "valueQuantity": {"value": 20, "unit": "10*3/uL"}}],
    }


def settings(**kw) -> ServerSettings:
    return ServerSettings.from_dict({"base_url": BASE, "max_retries": 1, **kw}, "sites[0].server")


def run(store, **kw):
    cfg = kw.pop("cfg", {})
    return pull("uci", settings(**cfg), store, OBS_TOKENS, screen_tokens=[SLE], **kw)


def observation_queries(log: list[str]) -> list[str]:
    return [q for q in log if q.startswith("Observation?")]


def server(rsps, params: list[str]) -> FakeFhir:
    fake = FakeFhir(rsps, page=50, cap=capability(more_params={"Observation": params}))
    population(fake)
    fake.add(panel("cbc0", "p0"), "2026-11-01T00:00:00Z")
    fake.add(panel("cbcx", "px"), "2026-11-01T00:00:00Z")  # px is not screened
    return fake


def test_combo_code_fetches_a_panel_whose_mapped_code_is_a_component(store):
    """A server listing combo-code: the Observation searches ask by combo-code instead of
    code (its own code or a component's), as many requests as by code; the panel is stored."""
    with responses.RequestsMock() as rsps:
        fake = server(rsps, ["combo-code", "component-code"])
        rep = run(store)
    assert store.get("uci", "Observation", "cbc0") is not None
    assert store.get("uci", "Observation", "o0") is not None  # its own code still matches
    assert store.get("uci", "Observation", "cbcx") is None and store.get("uci", "Observation", "o0x") is None
    assert observation_queries(fake.log) == ["Observation?_count&combo-code&patient"]
    assert UNSEARCHABLE not in rep.warnings


def test_component_code_alone_adds_one_batched_search_per_code_search(store):
    """A server listing component-code but not combo-code: each batched code search has a
    component-code twin with the same patients and codes; the panel is stored once."""
    with responses.RequestsMock() as rsps:
        fake = server(rsps, ["component-code"])
        rep = run(store)
    assert store.get("uci", "Observation", "cbc0") is not None
    assert sorted(observation_queries(fake.log)) == [  # (sent concurrently: in either order)
        "Observation?_count&code&patient",
        "Observation?_count&component-code&patient",
    ]
    assert store.count_by_type("uci")["Observation"] == 4  # o0..o2 and cbc0
    assert UNSEARCHABLE not in rep.warnings
    with responses.RequestsMock() as rsps:
        fake = server(rsps, ["component-code"])
        run(store)
    # the next night's count probe has the twin too
    assert observation_queries(fake.log) == [
        "Observation?_lastUpdated&_summary&code",
        "Observation?_lastUpdated&_summary&component-code",
    ]


def test_no_component_search_parameter_is_a_warning(store):
    """A server listing neither: searched by code as before (the panel is not found), and
    run.json says which results cannot be searched."""
    with responses.RequestsMock() as rsps:
        fake = server(rsps, [])
        rep = run(store)
    assert store.get("uci", "Observation", "cbc0") is None
    assert observation_queries(fake.log) == ["Observation?_count&code&patient"]
    assert UNSEARCHABLE in rep.warnings


def test_combo_code_once_listed_pulls_known_patients_observations_in_full(store):
    """The Observation mark of a night searched by code did not cover component-only results:
    once the server lists combo-code the known patients' Observations are pulled in full
    (no _lastUpdated) that night, and incrementally (one count probe) the next."""
    with responses.RequestsMock() as rsps:
        fake = server(rsps, [])
        run(store)
        fake.cap = capability(more_params={"Observation": ["combo-code"]})
        fake.log.clear()
        run(store)
        assert store.get("uci", "Observation", "cbc0") is not None
        assert observation_queries(fake.log) == ["Observation?_count&combo-code&patient"]
        fake.log.clear()
        run(store)
    assert observation_queries(fake.log) == ["Observation?_lastUpdated&_summary&combo-code"]


class RefusingCombo(FakeFhir):
    """Lists combo-code, and answers a search with it 400 (an OperationOutcome naming it)."""

    refusing = True

    def _get(self, req):
        if self.refusing and "combo-code" in dict(parse_qsl(urlsplit(req.url).query)):
            self.log.append("refused")
            return 400, {}, json.dumps(oo("Unknown search parameter 'combo-code'"))
        return super()._get(req)


def test_combo_code_refused_falls_back_to_code_with_a_warning(store):
    """A server that lists combo-code but refuses it (400 naming it) is searched by code for
    the rest of the run, with a warning: the run does not fail."""
    with responses.RequestsMock() as rsps:
        fake = RefusingCombo(rsps, page=50, cap=capability(more_params={"Observation": ["combo-code"]}))
        population(fake)
        fake.add(panel("cbc0", "p0"), "2026-11-01T00:00:00Z")
        rep = run(store)
    assert store.get("uci", "Observation", "o0") is not None
    assert store.get("uci", "Observation", "cbc0") is None
    assert [q for q in fake.log if q == "refused" or q.startswith("Observation?")] == [
        "refused", "Observation?_count&code&patient"]
    assert (
        "Observation: server refused combo-code (HTTP 400); searched by code: Observations whose"
        " only mapped code is a component's are not pulled"
    ) in rep.warnings


class RefusingComponent(FakeFhir):
    """Lists component-code, and answers a search with it 400 naming no parameter."""

    def _get(self, req):
        if "component-code" in dict(parse_qsl(urlsplit(req.url).query)):
            self.log.append("refused")
            return 400, {}, json.dumps(oo("Bad request"))
        return super()._get(req)


def test_component_code_refused_drops_those_searches_with_a_warning(store):
    """A server refusing component-code (a 400 naming nothing) keeps its code searches and
    _lastUpdated; the component-code searches of that run are dropped after the refusal."""
    with responses.RequestsMock() as rsps:
        fake = RefusingComponent(rsps, page=50, cap=capability(more_params={"Observation": ["component-code"]}))
        population(fake, n=3)
        rep = run(store, cfg={"patient_batch": 1, "concurrency": 1})
    obs = [q for q in fake.log if q == "refused" or q.startswith("Observation?")]
    # _count is dropped first for a bare 400 (docs/scheduling.md), then component-code
    assert obs == ["Observation?_count&code&patient", "refused", "refused",
                   "Observation?code&patient", "Observation?code&patient"]
    assert store.count_by_type("uci")["Observation"] == 3
    assert (
        "Observation: server refused component-code (HTTP 400); searched by code: Observations"
        " whose only mapped code is a component's are not pulled"
    ) in rep.warnings


def _observation_asks(fake) -> list[str]:
    return [q for q in fake.log if q == "refused" or q.startswith("Observation?")]


def test_combo_code_refused_is_remembered_so_later_nights_stay_incremental(store):
    """A server listing combo-code but refusing it: night 1 fell back to code and its mark is
    one of searches by code, but each later night asked by combo-code again (the hash of a
    combo-code mark), refused, and pulled the known patients' Observations in full by code:
    every night. The refusal is now remembered (quirk `observation-code-only`): the next night
    searches by code from the start, incrementally (one count probe), run.json saying why."""
    with responses.RequestsMock() as rsps:
        fake = RefusingCombo(rsps, page=50, cap=capability(more_params={"Observation": ["combo-code"]}))
        population(fake)
        fake.add(panel("cbc0", "p0"), "2026-11-01T00:00:00Z")
        rep = run(store)
        assert set(rep.quirks) == {"observation-code-only"}
        fake.log.clear()
        rep = run(store)
    assert _observation_asks(fake) == ["Observation?_lastUpdated&_summary&code"]
    assert (
        "Observation: the server refused combo-code or component-code on an earlier night;"
        " searched by code: Observations whose only mapped code is a component's are not pulled"
    ) in rep.warnings
    assert not any("HTTP 400" in w for w in rep.warnings), rep.warnings


def test_component_code_refused_is_remembered_so_later_nights_stay_incremental(store):
    """The same for a server listing only component-code and refusing it: the twin searches
    are not sent again, and the code searches stay incremental."""
    cap = capability(more_params={"Observation": ["component-code"]})
    with responses.RequestsMock() as rsps:
        fake = RefusingComponent(rsps, page=50, cap=cap)
        population(fake, n=3)
        rep = run(store, cfg={"patient_batch": 1, "concurrency": 1})
        # (not no-count: the bare 400 dropped _count first, but _count was not what it refused)
        assert set(rep.quirks) == {"observation-code-only"}
        fake.log.clear()
        rep = run(store, cfg={"patient_batch": 1, "concurrency": 1})
    asks = _observation_asks(fake)
    assert "refused" not in asks and asks[0] == "Observation?_lastUpdated&_summary&code", asks


def test_combo_code_accepted_again_forgets_the_quirk(store):
    """Tried again (--full-refresh) and accepted: the quirk is forgotten, combo-code used."""
    with responses.RequestsMock() as rsps:
        fake = RefusingCombo(rsps, page=50, cap=capability(more_params={"Observation": ["combo-code"]}))
        population(fake)
        fake.add(panel("cbc0", "p0"), "2026-11-01T00:00:00Z")
        run(store)
        fake.refusing = False  # (the server upgraded: combo-code answered)
        rep = run(store, full_refresh=True)
    assert "observation-code-only" not in rep.quirks
    assert store.get("uci", "Observation", "cbc0") is not None


# -- the night a remembered observation-code-only is tried again (30 days on) ---------------------

T0 = 1795600800.0  # 2026-11-25T10:00:00Z, by the client's clock (what quirks are dated by)
DAY = 86400.0


def night_at(store, at: float, **cfg):
    from cohort.source.fhir.client import FhirClient

    s = settings(**cfg)
    client = FhirClient(s, clock=lambda: at, sleep=lambda _: None)
    return pull("uci", s, store, OBS_TOKENS, screen_tokens=[SLE], client=client)


class Asking(FakeFhir):
    """Lists `params` for Observation; refuses a search with `refused` (400, naming it when
    `named`) while `refusing`; logs each Observation search with its parameters, refused or not."""

    refusing = True

    def __init__(self, rsps, params: list[str], refused: str, named: bool = True):
        super().__init__(rsps, page=50, cap=capability(more_params={"Observation": params}))
        self.refused, self.named = refused, named
        self.asks: list[str] = []

    def _get(self, req):
        q = parse_qsl(urlsplit(req.url).query)
        if urlsplit(req.url).path.endswith("/Observation"):
            keys = "&".join(sorted(k for k, _ in q))
            if self.refusing and self.refused in dict(q):
                self.asks.append("refused " + keys)
                why = f"Unknown search parameter '{self.refused}'" if self.named else "Bad request"
                return 400, {}, json.dumps(oo(why))
            self.asks.append(keys)
        return super()._get(req)


def _population(fake) -> None:
    population(fake)
    fake.add(panel("cbc0", "p0"), "2026-11-01T00:00:00Z")


def _amend_o1(fake) -> None:
    fake.clock = "2026-12-25T10:00:00Z"
    fake.add({**fake.db[("Observation", "o1")], "status": "amended"}, "2026-12-24T10:00:00Z")


@pytest.mark.parametrize("param", ["combo-code", "component-code"])
def test_a_reprobe_refused_again_keeps_the_observation_mark(store, param):
    """The night a remembered observation-code-only is tried again (30 days on), the Observation
    mark was taken for one of other searches (its hash now names combo-code): every known
    patient's Observations were pulled in full by code once the server refused again. Now the
    _lastUpdated of each search is that of the parameters it ends up with: the refused search
    by combo-code asked without (what a mark of searches by code never covered), its fallback
    by code with the mark's _lastUpdated; no search of the known patients by code goes without
    it, nothing is swept, and the mark stays one of searches by code."""
    with responses.RequestsMock() as rsps:
        fake = Asking(rsps, [param], param, named=param == "combo-code")
        _population(fake)
        night_at(store, T0, concurrency=1)
        mark = store.get_mark("uci", "fhir:Observation")
        assert set(json.loads(store.get_mark("uci", f"fhir:quirks:{BASE}"))) == {
            "observation-code-only"}
        _amend_o1(fake)
        fake.asks.clear()
        rep = night_at(store, T0 + 30 * DAY, concurrency=1)
    asks = fake.asks
    assert any(a.startswith("refused") for a in asks), asks
    # every search by code (of patients known since night 1) asks with _lastUpdated
    assert all("_lastUpdated" in a for a in asks if not a.startswith("refused")), asks
    # the refused search asked for what the mark never covered: in full
    assert all("_lastUpdated" not in a for a in asks if a.startswith("refused")), asks
    assert store.get("uci", "Observation", "o1")["status"] == "amended"
    assert rep.updated >= 1 and rep.removed == 0
    assert rep.quirks == {"observation-code-only": "2026-12-25T10:00:00Z"}
    assert store.get_mark("uci", "fhir:Observation").split("|")[1] == mark.split("|")[1]
    assert not any("full" in w for w in rep.warnings), rep.warnings


@pytest.mark.parametrize("param", ["combo-code", "component-code"])
def test_a_reprobe_accepted_pulls_what_searches_by_code_could_not_see(store, param):
    """Tried again and accepted (the server upgraded): the panel whose only mapped code is a
    component's, older than the mark, is pulled, as searches by code never saw it: the search
    by combo-code (component-code) asks without _lastUpdated; a search by code beside it (the
    component-code twin's) keeps the mark's, which covered what it asks."""
    with responses.RequestsMock() as rsps:
        fake = Asking(rsps, [param], param, named=param == "combo-code")
        _population(fake)
        night_at(store, T0, concurrency=1)
        assert store.get("uci", "Observation", "cbc0") is None
        fake.refusing = False
        _amend_o1(fake)
        fake.asks.clear()
        rep = night_at(store, T0 + 30 * DAY, concurrency=1)
    assert store.get("uci", "Observation", "cbc0") is not None
    assert store.get("uci", "Observation", "o1")["status"] == "amended"
    wide = [a for a in fake.asks if param in a.split("&")]
    assert wide and all("_lastUpdated" not in a for a in wide), fake.asks
    assert all("_lastUpdated" in a for a in fake.asks if a not in wide), fake.asks
    assert rep.quirks == {}


def test_a_server_no_longer_listing_combo_code_is_searched_by_code_in_full_once(store):
    """The other way round (the mark of searches by combo-code, the server now lists neither):
    the mark covers results a search by code cannot find, so the known patients' Observations
    are pulled in full by code once, and what that no longer finds (the panel) is swept, as a
    fresh pull would not have it; the night after, incrementally."""
    with responses.RequestsMock() as rsps:
        fake = server(rsps, ["combo-code"])
        run(store)
        assert store.get("uci", "Observation", "cbc0") is not None
        fake.cap = capability()
        fake.log.clear()
        rep = run(store)
        assert observation_queries(fake.log) == ["Observation?_count&code&patient"]
        assert store.get("uci", "Observation", "cbc0") is None and rep.removed == 1
        fake.log.clear()
        run(store)
    assert observation_queries(fake.log) == ["Observation?_lastUpdated&_summary&code"]
