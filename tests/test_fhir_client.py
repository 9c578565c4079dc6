"""HTTP client: retries, Retry-After, paging, loop guard, OperationOutcome, 401 refresh, settings."""

from __future__ import annotations

import json

import pytest
import requests
import responses
from fhir_fakes import BASE, oo

from cohort.errors import ConfigError, ServerError
from cohort.source.fhir.client import FhirClient, retry_after
from cohort.source.fhir.settings import ServerSettings


def client(**kw) -> tuple[FhirClient, list[float]]:
    waits: list[float] = []
    s = ServerSettings.from_dict({"base_url": BASE, "max_retries": 4, **kw}, "t")
    return FhirClient(s, sleep=waits.append, clock=lambda: 1_700_000_000.0), waits


def bundle(ids, next_url=None) -> dict:
    b = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": {"resourceType": "Patient", "id": i}} for i in ids],
    }
    if next_url:
        b["link"] = [{"relation": "next", "url": next_url}]
    return b


@responses.activate
def test_paging_absolute_and_relative_next():
    responses.get(
        f"{BASE}/Patient",
        json=bundle(["a"], f"{BASE}/Patient?page=2"),
        match=[responses.matchers.query_param_matcher({"_count": "1000", "x": "1"})],
    )
    responses.get(
        f"{BASE}/Patient",
        json=bundle(["b"], "Patient?page=3"),
        match=[responses.matchers.query_param_matcher({"page": "2"})],
    )
    responses.get(
        f"{BASE}/Patient",
        json=bundle(["c"]),
        match=[responses.matchers.query_param_matcher({"page": "3"})],
    )
    c, _ = client()
    pages = list(c.search("Patient", [("x", "1")]))
    assert [p for p, _, _ in pages] == [1, 2, 3]
    assert [b["entry"][0]["resource"]["id"] for _, b, _ in pages] == ["a", "b", "c"]
    assert c.stats.by_type["Patient"].requests == 3


@responses.activate
def test_next_link_loop_guard():
    responses.get(f"{BASE}/Patient", json=bundle(["a"], "Patient?page=2"))
    c, _ = client()
    pages = []
    with pytest.raises(ServerError, match="repeated a next link"):
        for page in c.search("Patient", []):  # first, page=2, then the repeated link fails
            pages.append(page)
    assert len(pages) == 2


@responses.activate
def test_next_link_to_other_host_refused():
    responses.get(f"{BASE}/Patient", json=bundle(["a"], "https://evil.invalid/Patient?p=2"))
    c, _ = client()
    with pytest.raises(ServerError, match="another host"):
        list(c.search("Patient", []))


@pytest.mark.parametrize("link", ["http://[x/Patient?p=2", 5, ["Patient?p=2"], "ftp://h/p"])
@responses.activate
def test_next_link_that_is_not_an_http_url_is_a_server_error(link):
    """A next link urljoin refuses (a bad IPv6 host), or that is no string, or no http(s) URL,
    fails the search with a ServerError (exit code 6), not an internal error."""
    responses.get(f"{BASE}/Patient", json=bundle(["a"], link))
    c, _ = client()
    with pytest.raises(ServerError, match="not an http"):
        list(c.search("Patient", []))


@responses.activate
def test_429_retry_after_seconds_and_http_date():
    responses.get(f"{BASE}/metadata", status=429, headers={"Retry-After": "7"})
    responses.get(
        f"{BASE}/metadata", status=429, headers={"Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT"}
    )  # clock + 10 s
    responses.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement"})
    c, waits = client()
    body, _ = c.get_json("metadata", key="metadata")
    assert body["resourceType"] == "CapabilityStatement"
    assert waits == [7.0, 10.0]
    st = c.stats.by_type["metadata"]
    assert st.requests == 3 and st.retries == 2 and st.waits == 17.0


@responses.activate
def test_429_storm_gives_up_with_clear_error():
    responses.get(f"{BASE}/Patient", status=429, headers={"Retry-After": "1"})
    c, waits = client()
    with pytest.raises(ServerError, match="HTTP 429"):
        c.get_json("Patient", key="Patient")
    assert len(waits) == 4


@responses.activate
def test_5xx_burst_then_success_with_capped_backoff():
    for code in (500, 502, 503):
        responses.get(f"{BASE}/Patient", status=code)
    responses.get(f"{BASE}/Patient", json=bundle([]))
    c, waits = client(max_wait=1.5)
    c.get_json("Patient", key="Patient")
    assert len(waits) == 3 and all(0 < w <= 1.5 for w in waits)
    assert c.stats.by_type["Patient"].retries == 3


@responses.activate
def test_500_hiding_a_timeout_halves_page_size():
    timeout = oo("Query timed out after 30s", code="timeout")
    responses.get(
        f"{BASE}/Observation",
        status=500,
        json=timeout,
        match=[responses.matchers.query_param_matcher({"_count": "200"})],
    )
    responses.get(
        f"{BASE}/Observation",
        json=bundle(["o"]),
        match=[responses.matchers.query_param_matcher({"_count": "100"})],
    )
    c, _ = client(max_retries=1, page_size=200)
    pages = list(c.search("Observation", []))
    assert len(pages) == 1 and any("page size reduced" in w for w in c.warnings)


@responses.activate
def test_connection_error_retried():
    responses.get(f"{BASE}/Patient", body=requests.ConnectionError("reset"))
    responses.get(f"{BASE}/Patient", json=bundle([]))
    c, waits = client()
    c.get_json("Patient", key="Patient")
    assert len(waits) == 1


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
         "the server's TLS certificate does not verify"),
        ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)", "no TLS at that port"),
    ],
)
@responses.activate
def test_a_tls_failure_no_retry_can_mend_is_not_retried(text: str, said: str) -> None:
    """QA: https to a plain-http port (or a certificate the hospital's CA signs, without
    `ca_bundle`) was retried 6 times, with back-offs, before exit 6 said "SSLError"."""
    err = requests.exceptions.SSLError(
        f"HTTPSConnectionPool(host='h', port=443): Max retries exceeded with url: "
        f"/r4/Patient?identifier=secret-mrn (Caused by SSLError(SSLError(1, '{text}')))"
    )
    responses.get(f"{BASE}/Patient", body=err)
    c, waits = client()
    with pytest.raises(ServerError) as e:
        c.get_json("Patient?identifier=secret-mrn", key="Patient")
    assert waits == [] and said in str(e.value), str(e.value)
    assert "secret-mrn" not in str(e.value)


@responses.activate
def test_another_tls_failure_is_retried() -> None:
    responses.get(f"{BASE}/Patient", body=requests.exceptions.SSLError("EOF occurred in violation of protocol"))
    responses.get(f"{BASE}/Patient", json=bundle([]))
    c, waits = client()
    c.get_json("Patient", key="Patient")
    assert len(waits) == 1


@responses.activate
def test_operation_outcome_one_line_without_query():
    responses.get(f"{BASE}/Observation", status=400, json=oo("Unknown code system"))
    c, _ = client()
    with pytest.raises(ServerError) as e:
        c.get_json("Observation?patient=secret-id", key="Observation")
    msg = str(e.value)
    # severity and code only: the diagnostics text may quote patients (tests/test_phi_audit.py)
    assert msg == "GET /r4/Observation: HTTP 400: error invalid"
    assert "secret-id" not in msg and "\n" not in msg


@responses.activate
def test_401_refreshes_token_once(tmp_path):
    tok = tmp_path / "tok"
    tok.write_text("old\n")
    seen: list[str] = []

    def cb(req):
        seen.append(req.headers["Authorization"])
        if req.headers["Authorization"] == "Bearer old":
            tok.write_text("new\n")
            return 401, {}, json.dumps(oo("expired", "login"))
        return 200, {}, json.dumps(bundle([]))

    responses.add_callback(responses.GET, f"{BASE}/Patient", callback=cb)
    c, _ = client(auth="bearer", token_file=str(tok))
    c.get_json("Patient", key="Patient")
    assert seen == ["Bearer old", "Bearer new"]


@responses.activate
def test_401_twice_is_an_error(monkeypatch):
    monkeypatch.setenv("TOK", "abc")
    responses.get(f"{BASE}/Patient", status=401, json=oo("no", "login"))
    c, _ = client(auth="bearer", token_env="TOK", token_file="")
    with pytest.raises(ServerError, match="HTTP 401"):
        c.get_json("Patient", key="Patient")
    assert len(responses.calls) == 1  # env token unchanged: no pointless retry
    assert "abc" not in repr(c.auth)


def test_retry_after_parsing():
    assert retry_after("5", 0) == 5.0
    assert retry_after("garbage", 0) is None
    assert retry_after(None, 0) is None
    # a digit to str.isdigit but not to float(): ValueError crashed the run (exit 1)
    assert retry_after("\u00b2", 0) is None


@pytest.mark.parametrize(
    "url,ok",
    [
        ("http://fhir.example.invalid/r4", False),
        ("http://127.0.0.1:8080/fhir", True),
        ("http://localhost/fhir", True),
        ("http://[::1]:9/fhir", True),
        ("https://x.invalid/fhir", True),
    ],
)
def test_http_refused_for_non_loopback(url, ok):
    if ok:
        ServerSettings.from_dict({"base_url": url}, "sites[0].server")
    else:
        with pytest.raises(ConfigError, match="sites\\[0\\].server: key 'base_url'.*http"):
            ServerSettings.from_dict({"base_url": url}, "sites[0].server")
    assert ServerSettings.from_dict({"base_url": url, "allow_http": True}, "w").allow_http


@pytest.mark.parametrize(
    "d,key",
    [
        ({"base_url": BASE, "auth": "kerberos"}, "auth"),
        ({"base_url": BASE, "concurrency": "2"}, "concurrency"),
        ({"base_url": BASE, "bogus": 1}, "bogus"),
        ({"base_url": BASE, "auth": "bearer"}, "token_env"),
        ({"base_url": BASE, "auth": "smart-backend", "client_id": "x"}, "private_key_file"),
        ({"base_url": BASE, "alg": "HS256"}, "alg"),
        ({}, "base_url"),
    ],
)
def test_settings_errors_name_where_and_key(d, key):
    with pytest.raises(ConfigError, match=f"sites\\[1\\].server.*{key}"):
        ServerSettings.from_dict(d, "sites[1].server")


def test_settings_defaults_and_repr_has_no_secret(monkeypatch):
    monkeypatch.setenv("FHIR_TOKEN", "s3cr3t")
    s = ServerSettings.from_dict(
        {"base_url": BASE + "/", "auth": "bearer", "token_env": "FHIR_TOKEN", "timeout": 30}, "w"
    )
    assert s.base_url == BASE and s.concurrency == 2 and s.patient_batch == 1000 and s.timeout == 30.0
    c = FhirClient(s)
    assert "s3cr3t" not in repr(s) + repr(c.auth)


@responses.activate
def test_response_and_token_file_with_a_byte_order_mark(tmp_path):
    """A page that opens with a UTF-8 BOM is read (it was "response is not JSON"), and a token
    file saved with one sends the token, not U+FEFF and the token."""
    token = tmp_path / "token"
    token.write_bytes(b"\xef\xbb\xbfsecret-token\n")
    body = b"\xef\xbb\xbf" + json.dumps(bundle(["a"])).encode()
    responses.get(f"{BASE}/Patient", body=body, content_type="application/fhir+json")
    c, _ = client(auth="bearer", token_file=str(token))
    pages = list(c.search("Patient", []))
    assert [e["resource"]["id"] for _, b, _ in pages for e in b["entry"]] == ["a"]
    assert responses.calls[0].request.headers["Authorization"] == "Bearer secret-token"


@pytest.mark.parametrize("charset", ["ISO-8859-1", "windows-1252", "UTF-16"])
@responses.activate
def test_a_page_in_the_charset_its_content_type_names_is_read(charset):
    """A page encoded as its Content-Type says (`charset=ISO-8859-1`, a legacy server or
    gateway: FHIR asks for UTF-8) failed as "response is not JSON" (exit 6) every night while
    a record held a letter outside ASCII (a family name "Müller"); it is read in that charset.
    A page that is no JSON in it either is still a ServerError."""
    page = bundle(["a"])
    page["entry"][0]["resource"]["name"] = [{"family": "Müller"}]
    body = json.dumps(page, ensure_ascii=False).encode(charset)
    ctype = f"application/fhir+json; charset={charset}"
    responses.get(f"{BASE}/Patient", body=body, content_type=ctype)
    c, _ = client()
    got, _ = c.get_json("Patient", key="Patient")
    assert got["entry"][0]["resource"]["name"] == [{"family": "Müller"}]
    responses.replace(responses.GET, f"{BASE}/Patient", body=b'{"resourceType": "Bun',
                      content_type=ctype)
    with pytest.raises(ServerError, match="not JSON"):
        c.get_json("Patient", key="Patient")


@responses.activate
def test_http_next_link_on_the_same_host_is_followed_over_https(monkeypatch):
    """A server behind a TLS proxy that writes http:// into its next links got the bearer token
    sent in clear text (the host matched, the scheme was not looked at); the link is now
    followed over https, with a warning."""
    monkeypatch.setenv("TOK", "secret-token")
    plain = BASE.replace("https://", "http://")
    responses.get(f"{BASE}/Patient", json=bundle(["a"], f"{plain}/Patient?page=2"),
                  match=[responses.matchers.query_param_matcher({"_count": "1000"})])
    responses.get(f"{BASE}/Patient", json=bundle(["b"]),
                  match=[responses.matchers.query_param_matcher({"page": "2"})])
    responses.get(f"{plain}/Patient", json=bundle(["b"]))
    c, _ = client(auth="bearer", token_env="TOK")
    pages = list(c.search("Patient", []))
    assert [b["entry"][0]["resource"]["id"] for _, b, _ in pages] == ["a", "b"]
    assert all(call.request.url.startswith("https://") for call in responses.calls)
    assert any("http://" in w for w in c.warnings)


def test_credentials_never_sent_over_plain_http(monkeypatch):
    """A foreign (Bulk file) URL on plain http with credentials is refused before any request."""
    monkeypatch.setenv("TOK", "secret-token")
    c, _ = client(auth="bearer", token_env="TOK")
    with responses.RequestsMock() as rsps, pytest.raises(ServerError, match="over http"):
        c.request("GET", "http://files.example.invalid/x.ndjson", key="x", foreign=True)
    assert not rsps.calls


@responses.activate
def test_redirect_to_another_host_is_refused(monkeypatch):
    """A proxy that redirects a search to another host (an SSO login page) had its answer used
    as the server's: a JSON body from there was taken for the search result. The credentials
    do not follow (requests drops them) and the answer is refused with a clear error."""
    monkeypatch.setenv("TOK", "secret-token")
    responses.get(f"{BASE}/Patient", status=302, headers={"Location": "https://sso.invalid/login"})
    responses.get("https://sso.invalid/login", json={"resourceType": "Bundle", "type": "searchset"})
    c, _ = client(auth="bearer", token_env="TOK")
    with pytest.raises(ServerError, match=r"redirected to another host \(sso.invalid\)"):
        c.get_json("Patient?patient=secret-id", key="Patient")
    assert responses.calls[1].request.headers.get("Authorization") is None


@responses.activate
def test_redirect_on_the_same_host_is_followed():
    responses.get(f"{BASE}/Patient", status=301, headers={"Location": f"{BASE}/Patient/"})
    responses.get(f"{BASE}/Patient/", json=bundle(["a"]))
    c, _ = client()
    body, _ = c.get_json("Patient", key="Patient")
    assert body["entry"][0]["resource"]["id"] == "a"


@responses.activate
def test_html_page_with_200_names_its_content_type():
    """A proxy's login page served 200 text/html said only "response is not JSON"."""
    responses.get(f"{BASE}/Patient", body="<html>Sign in</html>", content_type="text/html")
    c, _ = client()
    with pytest.raises(ServerError) as e:
        c.get_json("Patient?patient=secret-id", key="Patient")
    assert str(e.value) == (
        "GET /r4/Patient: response is not JSON (text/html): a login or error page from a proxy?"
    )


@pytest.mark.parametrize(
    "exc",
    [requests.exceptions.ChunkedEncodingError("cut"), requests.exceptions.ContentDecodingError("gz")],
)
@responses.activate
def test_body_cut_or_garbled_in_transit_is_retried(exc):
    """A connection dropped mid-body (ChunkedEncodingError) or a damaged gzip body
    (ContentDecodingError) escaped as an internal error (exit 1, traceback); both are now
    retried, and a ServerError (exit 6) once the retries are spent."""
    responses.get(f"{BASE}/Patient", body=exc)
    responses.get(f"{BASE}/Patient", json=bundle(["a"]))
    c, waits = client()
    body, _ = c.get_json("Patient", key="Patient")
    assert body["entry"][0]["resource"]["id"] == "a" and len(waits) == 1
    responses.replace(responses.GET, f"{BASE}/Patient", body=exc)
    with pytest.raises(ServerError, match=f"GET /r4/Patient: {type(exc).__name__} after 5 attempts"):
        c.get_json("Patient", key="Patient")


@responses.activate
def test_redirect_loop_is_a_server_error():
    """A redirect loop (an SSO proxy bouncing between two URLs) escaped as TooManyRedirects."""
    responses.get(f"{BASE}/Patient", body=requests.exceptions.TooManyRedirects("loop"))
    c, waits = client()
    with pytest.raises(ServerError, match="GET /r4/Patient: TooManyRedirects"):
        c.get_json("Patient", key="Patient")
    assert waits == []


@responses.activate
def test_gzip_header_on_a_plain_body_is_a_server_error():
    responses.get(f"{BASE}/Patient", body=b"not gzip", headers={"Content-Encoding": "gzip"})
    c, _ = client(max_retries=0)
    with pytest.raises(ServerError, match="ContentDecodingError after 1 attempts"):
        c.get_json("Patient", key="Patient")


def test_server_time_is_utc_text_so_the_earliest_is_the_smallest():
    """Marks take the earliest server clock of a type's searches by comparing text: a server
    giving Bundle.meta.lastUpdated with a local offset on one page and only a Date header on
    another made 05:00-05:00 (10:00Z) the earliest next to 09:00+00:00, and the mark moved an
    hour past records never fetched. Clocks are now UTC text."""
    from cohort.source.fhir.answer import server_time

    r = requests.Response()
    r.headers["Date"] = "Wed, 25 Nov 2026 09:00:00 GMT"
    local = server_time({"meta": {"lastUpdated": "2026-11-25T05:00:00.250-05:00"}}, r)
    header = server_time({"resourceType": "Bundle"}, r)
    assert local == "2026-11-25T10:00:00.250000Z" and header == "2026-11-25T09:00:00Z"
    assert min(local, header) == header
    assert server_time({"meta": {"lastUpdated": "yesterday"}}, r) == header


@responses.activate
def test_links_naming_the_default_port_are_the_servers_own(monkeypatch):
    """A server behind a proxy that writes the port into its links (HAPI given a Host header
    of "host:443") had every search fail with "refusing to follow a link to another host" (exit
    6 every night), and a Bulk file there went without the token: "host:443" is "host". A link
    to another port, or one naming a user, is still refused."""
    monkeypatch.setenv("TOK", "secret-token")
    explicit = BASE.replace(".invalid/", ".invalid:443/")
    responses.get(
        f"{BASE}/Patient",
        json=bundle(["a"], f"{explicit}/Patient?page=2"),
        match=[responses.matchers.query_param_matcher({"_count": "1000"})],
    )
    responses.get(
        f"{BASE}/Patient",
        json=bundle(["b"]),
        match=[responses.matchers.query_param_matcher({"page": "2"})],
    )
    c, _ = client(auth="bearer", token_env="TOK")
    pages = list(c.search("Patient", []))
    assert [b["entry"][0]["resource"]["id"] for _, b, _ in pages] == ["a", "b"]
    assert responses.calls[1].request.headers["Authorization"] == "Bearer secret-token"
    assert c.same_host(f"{explicit}/Binary/1") and c.same_host("https://FHIR.example.invalid/r4")
    for other in (
        "https://fhir.example.invalid:8443/r4/Patient",
        "https://u@fhir.example.invalid/r4/P",
        "https://fhir.example.invalid:x/r4/Patient",
    ):
        assert not c.same_host(other)
        with pytest.raises(ServerError, match="another host"):
            c.url(other)


@responses.activate
def test_retry_after_date_is_read_on_the_servers_clock():
    """A Retry-After HTTP-date was counted from the local clock: a machine 60 s ahead of the
    server read "10 s from now" as already past, retried at once and spent every retry in
    a moment (exit 6). It is counted from the answer's Date header when there is one."""
    later = {
        "Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT",
        "Date": "Tue, 14 Nov 2023 22:13:20 GMT",
    }
    responses.get(f"{BASE}/metadata", status=503, headers=later)
    responses.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement"})
    c, waits = client()
    c.clock = lambda: 1_700_000_000.0 + 60  # the server's Date is 22:13:20 + 60 s here
    c.get_json("metadata", key="metadata")
    assert waits == [10.0]
    assert retry_after("Tue, 14 Nov 2023 22:13:30 GMT", 0, "not a date") == 1_700_000_010.0


@responses.activate
def test_a_client_told_the_server_refuses_count_sends_none():
    """(pull's fallback sets send_count = False after a 400 naming _count, or naming nothing)"""
    responses.get(
        f"{BASE}/Patient",
        json=bundle(["a"]),
        match=[responses.matchers.query_param_matcher({"x": "1"})],
    )
    c, _ = client()
    c.send_count = False
    pages = list(c.search("Patient", [("x", "1")]))
    assert [p for p, _, _ in pages] == [1]


def test_an_outcome_text_carries_the_expression_and_location_it_names():
    from cohort.source.fhir.client import operation_outcome_text

    body = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "fatal", "code": "required", "details": {"text": "Required parameter missing"},
         "expression": ["category"], "location": ["Observation.category", 7]}]}
    assert operation_outcome_text(body) == (
        "fatal required: Required parameter missing [category, Observation.category]")


@pytest.mark.parametrize("hint", ["0", "Tue, 14 Nov 2023 22:13:00 GMT"])  # now, 10 s ago
@responses.activate
def test_retry_after_now_or_past_still_backs_off(hint):
    """A 429 saying "Retry-After: 0" (or a date already past) was retried at once: a burst spent
    every retry in a moment against a server that had just said it was overloaded. The wait is
    the server's ask or the client's own backoff, whichever is longer."""
    for _ in range(3):
        responses.get(f"{BASE}/metadata", status=429, headers={"Retry-After": hint})
    responses.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement"})
    c, waits = client()
    body, _ = c.get_json("metadata", key="metadata")
    assert body["resourceType"] == "CapabilityStatement"
    # backoff(attempt) is 0.5 * 2**attempt times a jitter in [0.5, 1]
    assert len(waits) == 3
    assert all(w >= 0.25 * 2**i for i, w in enumerate(waits))
