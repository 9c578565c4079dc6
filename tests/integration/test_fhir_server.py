"""Integration: sample_bundles loaded into a real sekmet-fhir server, pulled back via `pull`."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from loader import load_dir, post_transaction, put_entries
from server import start_sekmet

from cohort.config import default_config
from cohort.runner import Loaded
from cohort.screening import screened_ids
from cohort.source.fhir import PullReport, ServerSettings, pull
from cohort.source.files import ReadStats, read_path
from cohort.store import Store

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_bundles"
AS_OF = "2026-11-25"
MEDS = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")


@pytest.fixture(scope="module")
def loaded() -> Loaded:
    return Loaded.from_config(default_config())


def tokens_of(loaded: Loaded) -> tuple[dict[str, list[str]], list[str]]:
    term, trial = loaded.term, loaded.trial
    screen = [t for ts in term.search_tokens(trial.screen_concepts).values() for t in ts]
    return term.search_tokens(trial.concepts()), screen


def do_pull(site: str, base: str, store: Store, loaded: Loaded, **kw) -> PullReport:
    tokens, screen = tokens_of(loaded)
    cfg = {"base_url": base, "sync_overlap": 0, **kw.pop("cfg", {})}
    return pull(site, ServerSettings.from_dict(cfg, "test"), store, tokens, screen_tokens=screen, **kw)


def file_store(site: str, path: Path) -> Store:
    store = Store(path)
    store.put_resources(site, read_path(SAMPLES / site, ReadStats()), source=str(SAMPLES / site))
    return store


def _canon(r: dict, store: Store, site: str) -> str:
    """Content without server-assigned id/meta; a Medication reference is replaced by its content."""
    d = {k: v for k, v in r.items() if k not in ("id", "meta")}
    ref = (d.pop("medicationReference", None) or {}).get("reference", "")
    if ref.startswith("Medication/"):
        med = store.get(site, "Medication", ref.split("/", 1)[1])
        d["medication"] = {k: v for k, v in (med or {"missing": ref}).items() if k not in ("id", "meta")}
    return json.dumps(d, sort_keys=True)


def needed(loaded: Loaded, store: Store, site: str, ids: list[str] | None = None) -> Counter[str]:
    """Content of what the criteria can use for the screened patients (ids are server-assigned
    for POSTed entries, so resources are compared by content)."""
    tokens, _ = tokens_of(loaded)
    codes = {t: {x.rpartition("|")[2] for x in v} for t, v in tokens.items()}
    out: Counter[str] = Counter()
    for _pid, resources in store.iter_by_patient(site, ids or screened_ids(site, store, loaded)):
        for r in resources:
            rt = r["resourceType"]
            if rt in ("Observation", "Procedure"):
                have = {str(c.get("code")) for c in (r.get("code") or {}).get("coding") or []}
                if not have & codes.get(rt, set()):
                    continue
            out[_canon(r, store, site)] += 1
    return out


def stored(store: Store, site: str) -> Counter[str]:
    return Counter(_canon(r, store, site) for t in store.count_by_type(site) if t != "Medication"
                   for r in store.iter_type(site, t))


def covers(have: Counter[str], want: Counter[str]) -> list[str]:
    return [k[:200] for k, n in want.items() if have[k] < n]


@pytest.mark.parametrize("site", ["uci", "amr"])
def test_pull_matches_file_source(site, site_server, loaded, tmp_path):
    srv = site_server(site)
    with file_store(site, tmp_path / "files.db") as fs, Store(tmp_path / "server.db") as ss:
        rep = do_pull(site, srv.base_url, ss, loaded)
        assert screened_ids(site, ss, loaded) == screened_ids(site, fs, loaded)
        missing = covers(stored(ss, site), needed(loaded, fs, site))
        assert not missing, missing[:5]
        print(f"\n{site}: first pull {rep.total_requests} requests {rep.requests} "
              f"{sum(rep.bytes.values())} bytes {rep.elapsed.get('total', 0):.2f}s")
        again = do_pull(site, srv.base_url, ss, loaded)
        print(f"{site}: no-change rerun {again.total_requests} requests {again.requests} "
              f"{sum(again.bytes.values())} bytes {again.elapsed.get('total', 0):.2f}s")
        assert again.incremental and again.stored == again.updated == 0
        # (besides its probe for Medications changed since: the samples' first pull is 10)
        assert again.total_requests - again.requests["Medication"] <= rep.total_requests
        json.dumps(again.to_dict())


def test_incremental_pull_fetches_exactly_the_changes(loaded, tmp_path):
    srv = start_sekmet(tmp_path / "srv")
    try:
        s = requests.Session()
        load_dir(s, srv.base_url, SAMPLES / "uci")
        with Store(tmp_path / "server.db") as ss:
            do_pull("uci", srv.base_url, ss, loaded)
            screened = screened_ids("uci", ss, loaded)
            pid = screened[0]
            obs = next(r for r in ss.iter_type("uci", "Observation")
                       if r["subject"]["reference"].endswith(pid))
            cond = next(r for r in ss.iter_type("uci", "Condition"))
            obs2 = {k: v for k, v in obs.items() if k != "meta"} | {"status": "amended"}
            cond2 = {k: v for k, v in cond.items() if k != "meta"} | {"recordedDate": "2020-01-01"}
            new_mr = {"resourceType": "MedicationRequest", "id": "it-new-mr", "status": "active",
                      "intent": "order", "subject": {"reference": f"Patient/{pid}"},
                      "medicationCodeableConcept": {"text": "hydroxychloroquine 200 mg"},
                      "authoredOn": "2026-11-01"}
            post_transaction(s, srv.base_url, put_entries([obs2, cond2, new_mr]))
            rep = do_pull("uci", srv.base_url, ss, loaded)
            assert rep.incremental and rep.patients_new == 0
            # the changed SLE Condition may come twice (screen query + the patient's conditions)
            assert (rep.stored, rep.updated) == (1, 2) and rep.unchanged <= 1, rep.to_dict()
            assert ss.get("uci", "Observation", obs["id"])["status"] == "amended"
            assert ss.get("uci", "MedicationRequest", "it-new-mr") is not None
    finally:
        srv.stop()


def test_bulk_export_matches_search(site_server, loaded, tmp_path):
    srv = site_server("uci")
    with Store(tmp_path / "a.db") as a, Store(tmp_path / "b.db") as b:
        do_pull("uci", srv.base_url, a, loaded)
        rep = do_pull("uci", srv.base_url, b, loaded, cfg={"bulk": True, "spool_dir": str(tmp_path / "sp")})
        assert rep.mode == "bulk", rep.warnings
        assert screened_ids("uci", a, loaded) == screened_ids("uci", b, loaded)
        assert not covers(stored(b, "uci"), needed(loaded, a, "uci"))
        again = do_pull("uci", srv.base_url, b, loaded, cfg={"bulk": True, "spool_dir": str(tmp_path / "sp")})
        assert again.incremental and again.stored == 0


@pytest.mark.parametrize("bulk", [False, True], ids=["search", "bulk"])
def test_panel_whose_only_mapped_code_is_a_component_is_pulled(loaded, tmp_path, bulk):
    """sekmet lists combo-code: a CBC panel (58410-2, no mapping) whose platelet count (777-3)
    is a component is found by the searches and the export's _typeFilter, which asked by code
    only before."""
    srv = start_sekmet(tmp_path / "srv")
    # an overlap, as cohort's own default has: the panel is written moments after the first
    # pull, and with none it can fall within the instant its `_lastUpdated` mark names (one
    # fresh-clone CI run missed it)
    cfg = {"bulk": True, "spool_dir": str(tmp_path / "sp")} if bulk else {}
    cfg["sync_overlap"] = 5
    try:
        s = requests.Session()
        load_dir(s, srv.base_url, SAMPLES / "uci")
        with Store(tmp_path / "a.db") as a:
            do_pull("uci", srv.base_url, a, loaded, cfg=cfg)
            pid = screened_ids("uci", a, loaded)[0]
            cbc = {"resourceType": "Observation", "id": "it-cbc", "status": "final",
                   "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2026-11-20",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2"}]},
                   "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
                                  "valueQuantity": {"value": 20, "unit": "10*3/uL",
                                                    "system": "http://unitsofmeasure.org", "code": "10*3/uL"}}]}
            post_transaction(s, srv.base_url, put_entries([cbc]))
            rep = do_pull("uci", srv.base_url, a, loaded, cfg=cfg)
            assert rep.mode == ("bulk" if bulk else "search")
            assert rep.incremental and a.get("uci", "Observation", "it-cbc") is not None
            assert not any("combo-code" in w for w in rep.warnings), rep.warnings
    finally:
        srv.stop()


def _keypair(tmp_path: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv, pub = tmp_path / "client.pem", tmp_path / "client.pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def test_bearer_and_smart_backend_auth(loaded, tmp_path, monkeypatch):
    priv, pub = _keypair(tmp_path)
    auth = {"types": ["bearer", "smart"], "tokens": ["static-it-token"],
            "smart_clients": [{"client_id": "cohort-it", "public_key_path": str(pub),
                               "scopes": "system/*.read system/*.write"}]}
    srv = start_sekmet(tmp_path / "srv", server_auth=auth)
    try:
        s = requests.Session()
        s.headers["Authorization"] = "Bearer static-it-token"
        load_dir(s, srv.base_url, SAMPLES / "uci")
        monkeypatch.setenv("IT_TOKEN", "static-it-token")
        with Store(tmp_path / "a.db") as a, Store(tmp_path / "b.db") as b, Store(tmp_path / "c.db") as c:
            do_pull("uci", srv.base_url, a, loaded, cfg={"auth": "bearer", "token_env": "IT_TOKEN"})
            rep = do_pull("uci", srv.base_url, b, loaded,
                          cfg={"auth": "smart-backend", "client_id": "cohort-it", "private_key_file": str(priv)})
            assert rep.requests.get("auth", 0) == 2  # discovery + one token
            assert stored(a, "uci") == stored(b, "uci") and stored(a, "uci")
            bulk = do_pull("uci", srv.base_url, c, loaded,
                           cfg={"auth": "smart-backend", "client_id": "cohort-it", "private_key_file": str(priv),
                                "bulk": True, "spool_dir": str(tmp_path / "sp")})
            assert bulk.mode == "bulk" and not covers(stored(c, "uci"), needed(loaded, a, "uci"))
            with pytest.raises(Exception, match="401"):
                do_pull("uci", srv.base_url, Store(tmp_path / "d.db"), loaded)
    finally:
        srv.stop()


# A transaction Bundle's POST entries get ids the server makes up, where the file reader
# keeps the Bundle's own (its urn:uuid fullUrls): a reason that names a record (a partial-date
# result, docs/rules.md) names it by the id of the source it was read from.
_RECORD = re.compile(r"\b(Observation|Condition|MedicationStatement|MedicationRequest)/[A-Za-z0-9.-]+")


def _csv(path: Path) -> str:
    return _RECORD.sub(r"\1/<id>", path.read_text(encoding="utf-8-sig"))


@pytest.mark.parametrize("server_table", ["", "[sites.server]\nbulk = true\n"], ids=["search", "bulk"])
def test_cli_csv_equals_file_source(site_server, tmp_path, server_table):
    """`cohort run` against the server URL writes the same candidates.csv as from the files."""
    from click.testing import CliRunner

    from cohort.cli import cli

    for site in ("uci", "amr"):
        srv = site_server(site)
        outs = {}
        for kind, source in (("files", str(SAMPLES / site)), ("server", srv.base_url)):
            cfg = tmp_path / f"{site}-{kind}.toml"
            cfg.write_text(f'[trial]\nid = "sirius-sle-2"\n[store]\npath = "{tmp_path / (site + kind)}.db"\n'
                           f'[[sites]]\nid = "{site}"\nname = "{site}"\nsource = "{source}"\n'
                           + (server_table if kind == "server" else ""))
            out = tmp_path / f"out-{site}-{kind}"
            res = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--as-of", AS_OF, "--out", str(out)])
            assert res.exit_code == 0, res.output
            outs[kind] = _csv(out / site / "candidates.csv")
        assert outs["server"] == outs["files"]


def test_loader_reads_gzip(tmp_path):
    p = tmp_path / "x.ndjson.gz"
    p.write_bytes(gzip.compress(b'{"resourceType":"Patient","id":"a"}\n'))
    from loader import _ndjson
    assert _ndjson(p) == [{"resourceType": "Patient", "id": "a"}]


class _RefusingCombo(requests.adapters.HTTPAdapter):
    """A transport answering a search with combo-code 400 (an OperationOutcome naming it), as a
    server that lists combo-code and refuses it; everything else goes to sekmet. `asked`: the
    Observation searches by patient (sorted parameter names), "refused " before the refused."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing = True
        self.asked: list[str] = []

    def send(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        from urllib.parse import parse_qsl, urlsplit

        q = dict(parse_qsl(urlsplit(request.url).query))
        refuse = self.refusing and "combo-code" in q
        if urlsplit(request.url).path.endswith("/Observation") and "patient" in q:
            self.asked.append(("refused " if refuse else "") + "&".join(sorted(q)))
        if not refuse:
            return super().send(request, *args, **kwargs)
        r = requests.Response()
        r.status_code, r.url, r.request = 400, request.url, request
        r.headers["Content-Type"] = "application/fhir+json"
        r._content = json.dumps({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "not-supported",
             "diagnostics": "Unknown search parameter 'combo-code'"}]}).encode()
        return r


def test_a_reprobe_night_of_observation_code_only_sends_no_full_observation_pull(loaded, tmp_path):
    """sekmet behind a transport refusing combo-code (which sekmet lists): night 1 learns the
    quirk observation-code-only; 30 days on it is tried again, refused again, and the known
    patients' Observations are searched by code since the mark (no full pull, as the nights
    before), a changed result read; then, combo-code accepted, the panel whose only mapped code
    is a component's, older than the mark, is pulled."""
    from cohort.source.fhir.client import FhirClient

    srv = start_sekmet(tmp_path / "srv")
    t0 = 1795600800.0  # 2026-11-25T10:00:00Z by the client's clock (quirks are dated by it)
    transport = _RefusingCombo()
    tokens, screen = tokens_of(loaded)

    def night(store: Store, at: float) -> PullReport:
        s = ServerSettings.from_dict({"base_url": srv.base_url, "sync_overlap": 0}, "test")
        session = requests.Session()
        session.mount(srv.base_url, transport)
        client = FhirClient(s, session=session, clock=lambda: at)
        return pull("uci", s, store, tokens, screen_tokens=screen, client=client)

    try:
        s = requests.Session()
        load_dir(s, srv.base_url, SAMPLES / "uci")
        with Store(tmp_path / "a.db") as a:
            night(a, t0)
            pid = screened_ids("uci", a, loaded)[0]
            cbc = {"resourceType": "Observation", "id": "it-cbc", "status": "final",
                   "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2026-11-20",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2"}]},
                   "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
                                  "valueQuantity": {"value": 20, "unit": "10*3/uL"}}]}
            post_transaction(s, srv.base_url, put_entries([cbc]))
            night(a, t0 + 86400)  # (the quirk used: by code, incrementally)
            obs = next(r for r in a.iter_type("uci", "Observation")
                       if r["subject"]["reference"].endswith(pid))
            post_transaction(s, srv.base_url, put_entries(
                [{k: v for k, v in obs.items() if k != "meta"} | {"status": "amended"}]))
            transport.asked.clear()
            rep = night(a, t0 + 30 * 86400)
            asked = transport.asked
            assert any(q.startswith("refused") for q in asked), asked
            assert all("_lastUpdated" in q for q in asked if not q.startswith("refused")), asked
            assert a.get("uci", "Observation", obs["id"])["status"] == "amended"
            assert a.get("uci", "Observation", "it-cbc") is None  # (by code: not seen)
            assert rep.removed == 0 and list(rep.quirks) == ["observation-code-only"]
            assert rep.quirks["observation-code-only"].startswith("2026-12-25")
            # the server takes combo-code: tried again, the panel older than the mark comes
            transport.refusing = False
            transport.asked.clear()
            rep = night(a, t0 + 60 * 86400)
            assert a.get("uci", "Observation", "it-cbc") is not None
            assert rep.quirks == {} and transport.asked, transport.asked
    finally:
        srv.stop()
