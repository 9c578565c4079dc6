"""Search pages with no entry and a next link (Epic filters a page after paging it): a few are
followed, an endless chain of them fails the search instead of paging on."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from fhir_fakes import BASE
from test_fhir_client import bundle, client

from cohort.errors import ServerError


def _pages(entries_at: dict[int, list[str]], last: int | None):
    """Page n (query page=n, the first without) holds entries_at.get(n, []); every page links
    to the next one but `last`."""

    def answer(req):
        n = int(dict(parse_qsl(urlsplit(req.url).query)).get("page", "1"))
        nxt = None if n == last else f"{BASE}/Patient?page={n + 1}"
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle(entries_at.get(n, []), nxt))

    return answer


@responses.activate
def test_a_few_empty_pages_with_a_next_link_are_followed():
    responses.add_callback(responses.GET, re.compile(re.escape(BASE) + r"/Patient.*"),
                           callback=_pages({1: ["a"], 5: ["b"]}, last=5))
    c, _ = client()
    got = [e["resource"]["id"] for _, b, _ in c.search("Patient", []) for e in b["entry"]]
    assert got == ["a", "b"] and len(responses.calls) == 5


@responses.activate
def test_an_endless_chain_of_empty_pages_fails_the_search():
    """A server whose last page always links to one more, empty, page (each link new: the
    loop guard never saw one twice) was paged for 100,000 pages per search (the harness
    stopped it after 2,233 requests in two minutes on the first search). After 20 empty pages
    in a row the search fails, exit 6, as incomplete (nothing of it recorded as complete)."""
    responses.add_callback(responses.GET, re.compile(re.escape(BASE) + r"/Patient.*"),
                           callback=_pages({1: ["a"]}, last=None))
    c, _ = client()
    with pytest.raises(ServerError) as caught:
        list(c.search("Patient", []))
    assert str(caught.value) == (
        "Patient: the server sent 20 pages in a row with no entry, each with a next link "
        "(page 21); search incomplete"
    )
    assert len(responses.calls) == 21  # (the first page and 20 empty ones)


def test_later_pages_that_only_repeat_earlier_records_fail_the_search(tmp_path):
    """A server (or a gateway dropping `_offset`) answering every next link with the first
    page again: each read brought c0 and c1 twice, read twice alike it was taken as the
    server listing them twice, and p2 (on the page never served) was silently not screened:
    exit 0 and 51 of 143 candidates in the proxy harness, no warning (no Bundle.total to
    fall short of). A later page of nothing but records of earlier pages, on two reads alike,
    now fails the search as incomplete."""
    from fhir_fakes import SLE, TOKENS, population
    from test_fhir_pull import PageFake, settings

    from cohort.source.fhir import pull
    from cohort.store import Store

    first: dict[str, list] = {}

    def edit(req, status, body):
        if urlsplit(req.url).path.endswith("/Condition"):
            if "_offset" not in req.url:
                first["entry"] = body["entry"]
            else:
                body["entry"] = first["entry"]  # (the next link's page: the first again)
        return status, body

    with Store(tmp_path / "s.db") as store, responses.RequestsMock() as rsps:
        fake = PageFake(rsps)  # (two records a page: c0, c1 | c2)
        population(fake)
        fake.edit = edit
        with pytest.raises(ServerError) as caught:
            pull("uci", settings(), store, TOKENS, screen_tokens=[SLE])
    assert str(caught.value) == (
        "Condition: a search's later pages repeated only records of its earlier pages, on two "
        "reads alike (the server does not page as its next links say); search incomplete"
    )
