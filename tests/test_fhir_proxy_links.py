"""Links a server behind a reverse proxy writes with its internal address: followed at the base
URL when their path lies under the base's, refused elsewhere; credentials only to the base."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import responses
from fhir_fakes import BASE, SLE, TOKENS, BulkFake, population
from test_fhir_client import bundle, client
from test_fhir_pull import PageFake, run

from cohort.errors import ServerError
from cohort.source.fhir import ServerSettings, pull

INTERNAL = "http://10.0.0.5:8080/r4"  # (BASE is https://fhir.example.invalid/r4)
NOTE = "the server's links name another host ({}); followed at the base URL"


@responses.activate
def test_next_links_naming_an_internal_host_are_followed_at_the_base_url(monkeypatch):
    """A server behind a reverse proxy wrote its own address into Bundle.link next; every
    search failed with "refusing to follow a link to another host", exit 6 every night. A link
    whose path is the base's or under it is followed at the base URL, the token going to the
    base host only, with one warning naming the host (never the query)."""
    monkeypatch.setenv("TOK", "secret-token")
    responses.get(f"{BASE}/Patient", json=bundle(["a"], f"{INTERNAL}/Patient?page=2"),
                  match=[responses.matchers.query_param_matcher({"_count": "1000"})])
    responses.get(f"{BASE}/Patient", json=bundle(["b"], f"{INTERNAL}/Patient?page=3"),
                  match=[responses.matchers.query_param_matcher({"page": "2"})])
    responses.get(f"{BASE}/Patient", json=bundle(["c"]),
                  match=[responses.matchers.query_param_matcher({"page": "3"})])
    c, _ = client(auth="bearer", token_env="TOK")
    pages = list(c.search("Patient", []))
    assert [b["entry"][0]["resource"]["id"] for _, b, _ in pages] == ["a", "b", "c"]
    assert all(urlsplit(call.request.url).netloc == "fhir.example.invalid"
               for call in responses.calls)
    assert all(call.request.headers["Authorization"] == "Bearer secret-token"
               for call in responses.calls)
    assert c.warnings == [NOTE.format("10.0.0.5:8080")]


@pytest.mark.parametrize(
    "link",
    ["http://localhost:8080/r4?_getpages=abc&_getpagesoffset=50",
     "http://localhost:8080/r4/?_getpages=abc&_getpagesoffset=50"],
)
@responses.activate
def test_a_hapi_getpages_link_at_the_base_path_is_followed_at_the_base_url(link):
    responses.get(f"{BASE}/Observation", json=bundle(["a"], link))
    responses.get(f"{BASE}", json=bundle(["b"]),
                  match=[responses.matchers.query_param_matcher(
                      {"_getpages": "abc", "_getpagesoffset": "50"})])
    responses.get(f"{BASE}/", json=bundle(["b"]),
                  match=[responses.matchers.query_param_matcher(
                      {"_getpages": "abc", "_getpagesoffset": "50"})])
    c, _ = client()
    pages = list(c.search("Observation", []))
    assert len(pages) == 2 and urlsplit(responses.calls[1].request.url).netloc == \
        "fhir.example.invalid"
    assert c.warnings == [NOTE.format("localhost:8080")]
    assert not any("_getpages" in w for w in c.warnings)


@pytest.mark.parametrize(
    "link",
    [
        "http://10.0.0.5:8080/r4x/Patient?page=2",  # (a string prefix of the base path only)
        "http://10.0.0.5:8080/Patient?page=2",
        "http://10.0.0.5:8080/fhir/r4/Patient?page=2",
        "http://10.0.0.5:8080/r4/../admin/Patient?page=2",
        "http://10.0.0.5:8080/r4/%2e%2e/admin?page=2",
    ],
)
@responses.activate
def test_a_link_on_another_host_outside_the_base_path_is_still_refused(link):
    responses.get(f"{BASE}/Patient", json=bundle(["a"], link))
    c, _ = client()
    with pytest.raises(ServerError, match=r"another host \(10.0.0.5:8080\)"):
        list(c.search("Patient", []))
    assert len(responses.calls) == 1


def test_only_search_paging_links_are_rebased():
    """(a URL the connector builds or is given elsewhere keeps the strict check)"""
    c, _ = client()
    with pytest.raises(ServerError, match="another host"):
        c.url(f"{INTERNAL}/Patient")
    assert c.url(f"{INTERNAL}/Patient?x=1", rebase=True) == f"{BASE}/Patient?x=1"


def test_a_search_pull_through_a_proxy_says_so_once(store):
    """A whole pull whose every next link names the internal host: one warning in run.json."""

    class ProxiedFake(PageFake):
        def _get(self, req):
            status, hdr, body = super()._get(req)
            data = json.loads(body)
            for ln in data.get("link") or [] if isinstance(data, dict) else []:
                ln["url"] = f"{INTERNAL}/{ln['url']}"
            return status, hdr, json.dumps(data)

    with responses.RequestsMock() as rsps:
        fake = ProxiedFake(rsps)
        population(fake)
        rep = run(store)
    assert store.count_by_type("uci")["Observation"] == 3  # (two pages: page size 2)
    assert rep.warnings.count(NOTE.format("10.0.0.5:8080")) == 1
    assert not any("_offset" in w or "patient=" in w for w in rep.warnings)


def test_a_bulk_status_url_naming_an_internal_host_is_polled_at_the_base_url(tmp_path, store):
    """The kick-off's Content-Location checked like a next link (the same code path): one
    naming the proxy's internal address was refused, exit 6 every night."""

    class ProxiedBulk(BulkFake):
        def _get(self, req):
            status, hdr, body = super()._get(req)
            if hdr.get("Content-Location"):
                hdr = {**hdr, "Content-Location": hdr["Content-Location"].replace(BASE, INTERNAL)}
            return status, hdr, body

    s = ServerSettings.from_dict({"base_url": BASE, "bulk": True, "max_retries": 1,
                                  "spool_dir": str(tmp_path / "spool")}, "w")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = ProxiedBulk(rsps)
        population(fake)
        rep = pull("uci", s, store, TOKENS, screen_tokens=[SLE])
    # (responses refuses a request to any host but BASE's: the status URL was polled there)
    assert rep.mode == "bulk" and store.get("uci", "Observation", "o0") is not None
    assert NOTE.format("10.0.0.5:8080") in rep.warnings


@responses.activate
def test_next_links_with_html_escaped_ampersands_are_read_as_plain_ones():
    """A server (or gateway) that HTML-escapes its next links writes `&amp;` between the query's
    parameters. Followed as written, the server read `amp;_offset` as an unknown parameter,
    answered the first page again, and the run failed each night "server repeated a next link"
    (or, with `amp;code` ignored, pulled records of codes not asked for). Read as `&`, once
    said in a warning."""
    responses.get(f"{BASE}/Patient", json=bundle(["a"], f"{BASE}/Patient?_id=a,b,c&amp;_count=1&amp;_offset=1"),
                  match=[responses.matchers.query_param_matcher({"_id": "a,b,c", "_count": "1000"})])
    responses.get(f"{BASE}/Patient", json=bundle(["b"], "Patient?_id=a,b,c&amp;_count=1&amp;_offset=2"),
                  match=[responses.matchers.query_param_matcher({"_id": "a,b,c", "_count": "1", "_offset": "1"})])
    responses.get(f"{BASE}/Patient", json=bundle(["c"]),
                  match=[responses.matchers.query_param_matcher({"_id": "a,b,c", "_count": "1", "_offset": "2"})])
    c, _ = client()
    pages = list(c.search("Patient", [("_id", "a,b,c")]))
    assert [b["entry"][0]["resource"]["id"] for _, b, _ in pages] == ["a", "b", "c"]
    assert c.warnings == ["the server's next links escape '&' as '&amp;'; read as '&'"]
